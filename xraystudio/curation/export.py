"""Exports of a project's accepted results: nnU-Net v2, the JSRT-style layout, DICOM SC + SEG.

Every export is honest and safe by construction:

- it holds only ACCEPTED results, each flagged synthetic (``metadata.jsonl``: one JSON line per
  case with ``synthetic: true`` and the provenance);
- it is de-identified by default: cases are numbered (``case_0001``), never named after source
  files, which often carry patient names; each source study gets a pseudonym (``SYN0001``),
  stable within the export so users can split training data by subject without leakage; the
  source file name and the curator's note are left out of the provenance. ``keep_link=True``
  keeps them (and, in DICOM, the patient identity and a reference to the source image);
- it is atomic: built in a temporary sibling folder renamed at the end, so a failed or cancelled
  export leaves nothing that looks complete, and an existing output is replaced only with
  ``overwrite=True``.

Every exported image is air dark (the sense of MONOCHROME2) whatever its source's photometric
(:mod:`xraystudio.io.polarity`): an edit of a MONOCHROME1 film, exported at its source's bit
depth, is mirrored within its stored range; each case records the source's photometric and the
transform in ``metadata.jsonl`` (``polarity``), and dataset.json declares it.

nnU-Net labels are exclusive, but the masks overlap (clavicles over lungs, nodules inside a
lung), so one label map is made by painting the structures in order (``io.nnunet.LABELS``),
each over the previous: nodule over clavicles over heart over lungs. The small, clinically important structure
wins where they overlap; the overlapped parts of larger structures are lost in that format (the
DICOM SEG keeps every structure whole).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from xraystudio.curation.export_case import ExportCase
from xraystudio.curation.project import Project
from xraystudio.curation.records import StudyRecord
from xraystudio.errors import ProjectError
from xraystudio.io import polarity
from xraystudio.io.atomic import atomic_folder
from xraystudio.io.images import save_png
from xraystudio.io.nnunet import dataset_json, label_map
from xraystudio.masks import MaskStack

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("nnunet", "jsrt", "dicom")
METADATA = "metadata.jsonl"
NOT_FOR_DIAGNOSIS = "Synthetic radiographs made by xraystudio; not for diagnosis."

#: Called with (cases done, cases in all) after each case; an exception raised by it (a
#: cancel) aborts the export, which then leaves no output.
ProgressCallback = Callable[[int, int], None]


def export_project(project: Project, out: str | os.PathLike, fmt: str, *,
                   keep_link: bool = False, overwrite: bool = False,
                   progress: ProgressCallback | None = None) -> Path:
    """Export the accepted results of ``project`` to the folder ``out``; returns its path."""
    if fmt not in FORMATS:
        raise ProjectError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    cases = plan_cases(project, keep_link)
    if not cases:
        raise ProjectError(f"project {project.folder} has no accepted results to export")
    out = Path(out).absolute()
    try:
        with atomic_folder(out, overwrite=overwrite) as tmp:
            writer = _WRITERS[fmt](tmp, keep_link)
            rows = []
            for done, case in enumerate(cases, 1):
                made = source_values(project, case) if writer.source_values else None
                if made is None:  # the display pixels the result was saved as (air dark)
                    made = (project.result_pixels(case.result.id),
                            polarity.record(_photometric(case), "display"))
                pixels, turned = made
                masks = project.result_masks(case.result.id)
                rows.append({**_metadata(case, keep_link), "polarity": turned,
                             **writer.add(case, pixels, masks)})
                if progress is not None:
                    progress(done, len(cases))
            writer.finish(rows)
            with open(tmp / METADATA, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(row) + "\n" for row in rows)
    except FileExistsError:
        raise ProjectError(
            f"{out} already exists; choose a new folder or allow overwriting it (--force)"
        ) from None
    log.info("exported %d cases of %s as %s to %s", len(cases), project.folder, fmt, out)
    return out


def plan_cases(project: Project, keep_link: bool) -> list[ExportCase]:
    """The accepted results in order, numbered, each with its source study's pseudonym.

    Pseudonyms follow source studies (the DICOM StudyInstanceUID where the source is a readable
    DICOM, else the project's study), numbered in order of first appearance.
    """
    subjects: dict[str, str] = {}
    sources: dict[str, tuple[Path | None, Any | None]] = {}
    cases = []
    for n, result in enumerate(project.results(decision="accepted"), 1):
        study = project.study(result.study_id)
        if study.id not in sources:
            sources[study.id] = _source(project, study, keep_link)
        path, header = sources[study.id]
        key = str(header.StudyInstanceUID) if header is not None and "StudyInstanceUID" in header \
            else f"project:{study.id}"
        subject = subjects.setdefault(key, f"SYN{len(subjects) + 1:04d}")
        cases.append(ExportCase(f"case_{n:04d}", result, study, subject, path, header))
    return cases


def _source(project: Project, study: StudyRecord, keep_link: bool
            ) -> tuple[Path | None, Any | None]:
    try:
        path = project.source_path(study.id)
    except ProjectError:
        if keep_link:
            raise ProjectError(
                f"cannot keep the link to the source of study {study.id!r}: its file is missing "
                f"({study.source}); export without keeping the link, or restore the file"
            ) from None
        log.info("source of study %s is missing; it gets a pseudonym of its own", study.id)
        return None, None
    if study.format != "DICOM":
        return path, None
    import pydicom

    try:
        return path, pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable header only loses the grouping
        log.warning("cannot read the DICOM header of %s: %s", path, exc)
        return path, None


def _photometric(case: ExportCase) -> str | None:
    """The source's photometric without reading its pixels (None: a DICOM that is missing)."""
    if case.source_header is not None:
        return str(case.source_header.get("PhotometricInterpretation", "")) or None
    return None if case.study.format == "DICOM" else polarity.AIR_DARK


def source_values(project: Project, case: ExportCase) -> tuple[np.ndarray, dict] | None:
    """An edit result at its source's own bit depth, air dark, and its polarity record: the
    source's stored integers with the edited pixels replaced (a 12-bit DICOM gives 12-bit values
    in a 16-bit PNG, an 8-bit PNG stays 8-bit), a MONOCHROME1 source's mirrored within its
    stored range. None for other results, and, with a warning, where the source is missing, has
    changed since the edit (pixel hash), or stores signed or > 16-bit values."""
    edit = project.result_edit(case.result.id)
    if edit is None:
        return None
    if case.source_path is None:
        log.warning("%s: the source of this edit is missing; exported as display pixels",
                    case.case_id)
        return None
    from xraystudio.study import Study
    from xraystudio.synthesis.edit import PixelFormat

    image = Study.open(case.source_path).image
    want = (case.result.provenance.get("source_image") or {}).get("pixel_hash")
    changed, values = edit
    if (want and image.pixel_hash() != want) or changed.shape != image.shape:
        log.warning("%s: the source changed since the edit; exported as display pixels",
                    case.case_id)
        return None
    fmt = PixelFormat.of(image)
    full = image.values.copy()
    full[changed] = values
    try:
        return polarity.air_dark_stored(fmt.stored(full), polarity.source_photometric(image),
                                        fmt.lo, fmt.hi)
    except ValueError:
        log.warning("%s: the source stores signed or > 16-bit values; exported as display "
                    "pixels", case.case_id)
        return None


def deidentified_provenance(provenance: dict[str, Any]) -> dict[str, Any]:
    """Provenance without the source file's name (often a patient's name or ID)."""
    out = json.loads(json.dumps(provenance))
    if isinstance(out.get("source_image"), dict):
        out["source_image"].pop("file", None)
    return out


def _metadata(case: ExportCase, keep_link: bool) -> dict[str, Any]:
    r = case.result
    row: dict[str, Any] = {
        "case": case.case_id, "synthetic": True, "not_for_diagnosis": True,
        "subject": case.subject, "result_id": r.id, "mask_hash": r.mask_hash,
        "starred": r.starred,
        "provenance": r.provenance if keep_link else deidentified_provenance(r.provenance),
    }
    if keep_link:
        row.update(study_id=case.study.id, note=r.note,
                   source=None if case.source_path is None else str(case.source_path))
    return row


class _NnUnetWriter:
    """nnU-Net v2 raw dataset: imagesTr/<case>_0000.png, labelsTr/<case>.png, dataset.json."""

    source_values = True  # edits in their source's bit depth (air dark)

    def __init__(self, root: Path, keep_link: bool) -> None:
        self.root = root

    def add(self, case: ExportCase, pixels: np.ndarray, masks: MaskStack) -> dict[str, str]:
        image = f"imagesTr/{case.case_id}_0000.png"
        label = f"labelsTr/{case.case_id}.png"
        save_png(self.root / image, pixels)
        save_png(self.root / label, label_map(masks))
        return {"image": image, "label": label}

    def finish(self, rows: list[dict[str, Any]]) -> None:
        dataset = dataset_json(
            len(rows), NOT_FOR_DIAGNOSIS, synthetic=True,
            overlap_resolution="labels painted in increasing order, later over earlier",
            **polarity.DECLARATION)
        (self.root / "dataset.json").write_text(json.dumps(dataset, indent=2) + "\n",
                                                encoding="utf-8")


class _JsrtWriter:
    """The JSRT-style layout read by ``xraystudio train`` (one nodule per case at most)."""

    source_values = True

    def __init__(self, root: Path, keep_link: bool) -> None:
        self.root = root

    def add(self, case: ExportCase, pixels: np.ndarray, masks: MaskStack) -> dict[str, str]:
        from xraystudio.io.datasets import write_case

        write_case(self.root, case.case_id, pixels, masks)
        return {"image": f"images/{case.case_id}.png"}

    def finish(self, rows: list[dict[str, Any]]) -> None:
        """Nothing more: write_case keeps cases.csv complete after every case."""


class _DicomWriter:
    """<case>_sc.dcm (Secondary Capture) and <case>_seg.dcm (SEG referencing it) per case.

    Edit results too are Secondary Captures of their 16-bit display pixels here (MONOCHROME2,
    air dark): a de-identified SC + SEG pair is what this export promises; the edited DICOM in
    the source's own pixel format is what Save writes beside the source."""

    source_values = False

    def __init__(self, root: Path, keep_link: bool) -> None:
        from xraystudio.curation.dicom_export import DicomStudies

        self.root = root
        self.studies = DicomStudies(keep_link)

    def add(self, case: ExportCase, pixels: np.ndarray, masks: MaskStack) -> dict[str, str]:
        sc, seg = self.studies.make(case, pixels, masks)
        names = {"sc": f"{case.case_id}_sc.dcm", "seg": f"{case.case_id}_seg.dcm"}
        sc.save_as(self.root / names["sc"], enforce_file_format=True)
        seg.save_as(self.root / names["seg"], enforce_file_format=True)
        return {**names, "sop_instance_uid": str(sc.SOPInstanceUID)}

    def finish(self, rows: list[dict[str, Any]]) -> None:
        """Nothing more: each case is two self-contained files."""


_WRITERS: dict[str, type] = {"nnunet": _NnUnetWriter, "jsrt": _JsrtWriter, "dicom": _DicomWriter}
