"""One accepted result as an export writes it: shared by the export plan (:mod:`.export`) and
every format's writer (:mod:`.dicom_export` among them), so a writer need not import the plan."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from xraystudio.curation.records import ResultRecord, StudyRecord


@dataclasses.dataclass
class ExportCase:
    """One accepted result as it will be exported."""

    case_id: str
    result: ResultRecord
    study: StudyRecord
    subject: str  # pseudonym of the source study
    source_path: Path | None  # None when the source file is missing
    source_header: Any | None  # pydicom Dataset (no pixels) when the source is a readable DICOM
