"""Opening a radiograph with the masks saved beside it (the window's File ▸ Open)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from xraystudio.io.masks_io import load_masks
from xraystudio.study import Study


def mask_sidecar(image_path: Path) -> Path | None:
    """Masks saved beside a radiograph: ``<stem>.masks.npz`` (what the app writes), or
    ``<stem>_masks.npz`` (the bundled sample), or a ``<stem>.masks/`` folder of PNGs."""
    for name in (".masks.npz", "_masks.npz", ".masks"):
        candidate = image_path.with_name(image_path.stem + name)
        if candidate.exists():
            return candidate
    return None


@dataclasses.dataclass
class StudyFile:
    """A study fresh from disk, with what the user should know about how it was read."""

    study: Study
    path: Path
    notes: list[str]
    synthetic: bool  # a generated image (its provenance JSON beside it says so)
    masks_from: Path | None = None  # the masks file or folder read beside it, if any


def read_study(path: str | os.PathLike) -> StudyFile:
    """Open a radiograph and the masks saved beside it, if any."""
    path = Path(path)
    study = Study.open(path)
    notes = list(study.image.notes)
    sidecar = mask_sidecar(path)
    if sidecar is not None:
        # A file without spacing takes the spacing its saved masks were drawn with.
        unknown = study.image.spacing_source == "default"
        masks = load_masks(sidecar, study.shape, None if unknown else study.spacing_mm)
        image = study.image.with_spacing(masks.spacing_mm) if unknown else study.image
        study = Study(image, masks, study.name)
        notes.append(f"masks loaded from {sidecar.name}")
    if study.image.spacing_source == "default":
        notes.append(f"the file has no pixel spacing; assuming {study.spacing_mm[0]:g} mm")
    return StudyFile(study, path, notes, _is_synthetic(path), masks_from=sidecar)


def _is_synthetic(path: Path) -> bool:
    """True when a provenance file (``<stem>.json``) beside the image marks it as generated."""
    meta = path.with_suffix(".json")
    if not meta.is_file():
        return False
    try:
        return bool(json.loads(meta.read_text(encoding="utf-8")).get("synthetic"))
    except (OSError, ValueError, AttributeError):
        return False
