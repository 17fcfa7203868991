"""A result's files: its image as a 16-bit grey PNG and, for an edit, what changed.

An edit-mode result is the source radiograph changed in a few windows. Its PNG is the display
image, as for every result; the exact edited values (the source's modality values, as its format
stores them) are kept as what changed: the changed pixels' mask and their values, a few kB
beside the PNG (``<rid>.edit.npz``), so that the full-resolution edit in the source's format can
be rebuilt from the source without storing a second copy of every radiograph.

Encoding a PNG is slow, so a result can be staged (:func:`stage_result`: encoded to temporaries
off the GUI thread) and later put in place by renames (:func:`write_result_files`). Every file
goes through :mod:`xraystudio.io.atomic`: a crash leaves temporaries, never a half image.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from xraystudio.errors import ProjectError
from xraystudio.io.atomic import atomic_path, staged_path
from xraystudio.io.masks_io import save_masks
from xraystudio.masks import MaskStack

#: An edit-mode result's changed pixels, beside its PNG (``results/<rid>.edit.npz``).
EDIT_SUFFIX = ".edit.npz"

#: An edit: the changed pixels (bool mask) and the edited values (full size).
Edit = tuple[np.ndarray, np.ndarray]


@dataclasses.dataclass
class StagedResult:
    """A result encoded to temporary files by :func:`stage_result`, not yet in the project.

    Hand it to :meth:`Project.add_result` (fast: renames and one small JSON) or :meth:`discard` it.
    Until then its files are leftovers: a crash leaves nothing that looks like a result.
    """

    shape: tuple[int, int]
    png: Path
    mask_hash: str | None = None
    masks_file: Path | None = None  # None: the snapshot already existed or no masks were given
    masks: MaskStack | None = None
    edit_file: Path | None = None  # edit mode: the changed pixels and their values

    def discard(self) -> None:
        for path in (self.png, self.masks_file, self.edit_file):
            if path is not None:
                path.unlink(missing_ok=True)

    def take_masks(self, snapshot: Path) -> None:
        """Move the staged masks to ``snapshot``, the study's file of these masks."""
        assert self.masks_file is not None
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(self.masks_file, snapshot)
        self.masks_file = None


def image_pixels(image: np.ndarray) -> np.ndarray:
    """A result image as 16-bit grey: float in [0, 1] is scaled, uint16 kept."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ProjectError(f"a result is a 2-D grey image, got shape {image.shape}")
    if image.dtype == np.uint16:
        return image
    if np.issubdtype(image.dtype, np.floating):
        return np.round(np.clip(image, 0.0, 1.0) * 65535.0).astype(np.uint16)
    raise ProjectError(f"a result image must be float in [0, 1] or uint16, got {image.dtype}")


def write_png(pixels: np.ndarray, path: Path) -> None:
    """Encode 16-bit grey pixels as a PNG at ``path`` (the slow part of storing a result)."""
    Image.fromarray(pixels).save(path, format="PNG")


def read_png(path: Path) -> np.ndarray:
    """A result's pixels exactly as stored: 16-bit grey."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im)
    except OSError as exc:
        raise ProjectError(f"cannot read result image {path}: {exc}") from exc
    if arr.dtype != np.uint16 or arr.ndim != 2:
        raise ProjectError(f"result image {path} is not a 16-bit grey PNG")
    return arr


def write_edit(path: Path, changed: np.ndarray, values: np.ndarray) -> None:
    """The changed pixels (a packed mask) and their edited values (float32), compressed."""
    changed = np.asarray(changed, bool)
    if changed.shape != values.shape:
        raise ProjectError(f"edit mask {changed.shape} and values {values.shape} differ in shape")
    with open(path, "wb") as f:
        np.savez_compressed(f, shape=np.asarray(changed.shape), changed=np.packbits(changed),
                            values=np.asarray(values, np.float32)[changed])


def read_edit(path: str | os.PathLike) -> Edit:
    """What :func:`write_edit` wrote: (changed mask, values of the changed pixels)."""
    try:
        with np.load(path) as data:
            shape = tuple(int(v) for v in data["shape"])
            changed = np.unpackbits(data["changed"], count=shape[0] * shape[1])
            changed = changed.astype(bool).reshape(shape)
            values = data["values"].astype(np.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise ProjectError(f"cannot read the edit {path}: {exc}") from exc
    if values.shape != (int(changed.sum()),):
        raise ProjectError(f"the edit {path} is inconsistent")
    return changed, values


def stage_result(folder: Path, image: np.ndarray, masks: MaskStack | None = None,
                 edit: Edit | None = None) -> StagedResult:
    """Encode a result to temporaries in ``folder`` (the project's results); thread-safe."""
    pixels = image_pixels(image)
    with staged_path(folder, ".png") as png:
        write_png(pixels, png)
    staged = StagedResult(shape=(int(pixels.shape[0]), int(pixels.shape[1])), png=png)
    try:
        if masks is not None:
            with staged_path(folder, ".npz") as masks_file:
                save_masks(masks, masks_file)
            staged.masks, staged.mask_hash, staged.masks_file = masks, masks.content_hash(), masks_file
        if edit is not None:
            with staged_path(folder, ".npz") as edit_file:
                write_edit(edit_file, *edit)
            staged.edit_file = edit_file
    except BaseException:
        staged.discard()
        raise
    return staged


def write_result_files(folder: Path, result_id: str, image: np.ndarray | StagedResult,
                       edit: Edit | None = None) -> None:
    """Put a result's image (and edit) in ``folder`` as ``result_id``: from pixels, written
    atomically; from a :class:`StagedResult`, renamed into place. The edit goes first: a PNG
    never lacks its edit."""
    if isinstance(image, StagedResult):
        if image.edit_file is not None:
            shutil.move(image.edit_file, folder / f"{result_id}{EDIT_SUFFIX}")
            image.edit_file = None
        shutil.move(image.png, folder / f"{result_id}.png")
        if image.masks_file is not None:
            image.masks_file.unlink(missing_ok=True)
            image.masks_file = None
        return
    if edit is not None:
        with atomic_path(folder / f"{result_id}{EDIT_SUFFIX}") as tmp:
            write_edit(tmp, *edit)
    with atomic_path(folder / f"{result_id}.png") as tmp:
        write_png(image_pixels(image), tmp)
