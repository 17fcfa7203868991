"""Saving, loading and resampling a MaskStack.

Two formats, chosen by the path: ``*.npz`` is one compressed file that round-trips everything
(layers in order, spacing, nodule objects); any other path is a folder with one PNG per layer
(``<layer>.png``, 8-bit 0/255) plus ``nodules.json``, which other tools can read and write. A folder
made elsewhere may hold any subset of layers in most PNG modes, so loading is lenient about content
and strict about size. Loaded stacks carry no undo history: the file is the base state.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from xraystudio.errors import MaskError
from xraystudio.io.atomic import atomic_open, atomic_path, write_text
from xraystudio.io.json_files import read_json_object
from xraystudio.masks import NODULE, STRUCTURES, MaskStack, Nodule

log = logging.getLogger(__name__)

FORMAT = "xraystudio-masks"
VERSION = 1
NODULES_JSON = "nodules.json"
_META = "meta"
_LAYER_PREFIX = "layer_"
# PNG modes whose pixels are single values; colour modes are handled separately.
_GREY_MODES = {"1", "L", "I", "I;16", "I;16B", "I;16L", "F"}
_COLOUR_MODES = {"LA", "RGB", "RGBA", "P", "PA"}

PathLike = str | os.PathLike


def _meta(stack: MaskStack) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "shape": list(stack.shape),
        "spacing_mm": list(stack.spacing_mm),
        "layers": stack.names,
        "nodules": [n.to_dict() for n in stack.nodules],
        "source_nodules": [n.to_dict() for n in stack.source_nodules],
    }


def save_masks(stack: MaskStack, path: PathLike) -> None:
    """Write ``stack`` to ``path`` (``.npz`` file, or a folder of PNGs), each file atomically."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        arrays = {f"{_LAYER_PREFIX}{name}": np.asarray(stack[name]) for name in stack.names}
        arrays[_META] = np.array(json.dumps(_meta(stack)))
        with atomic_open(path, "wb") as f:
            np.savez_compressed(f, **arrays)
        return
    path.mkdir(parents=True, exist_ok=True)
    for name in stack.names:
        with atomic_path(path / f"{name}.png") as tmp:
            Image.fromarray(np.asarray(stack[name], dtype=np.uint8) * 255).save(tmp, format="PNG")
    write_text(path / NODULES_JSON, json.dumps(_meta(stack), indent=2) + "\n")


def read_mask_png(path: PathLike, shape: tuple[int, int]) -> np.ndarray:
    """One binary mask from an image file: nonzero is inside; in colour, alpha 0 is outside.

    Modes "1", "L", "I;16" (and other grey modes) count any nonzero value; RGB counts any nonzero
    channel; with alpha (RGBA, LA, palette transparency) a transparent pixel is outside whatever its
    colour, as painting programs leave colour under erased pixels.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            # Size and mode come from the header: check them before decoding any pixels.
            (width, height), mode = im.size, im.mode
            if (height, width) != tuple(shape):
                raise MaskError(
                    f"mask file {path} is {width} x {height} pixels but the image is "
                    f"{shape[1]} x {shape[0]}; resize the masks or load the matching image"
                )
            if mode not in _GREY_MODES | _COLOUR_MODES:
                raise MaskError(
                    f"mask file {path} has PNG mode {mode!r}; use a grey, RGB or RGBA image"
                )
            # Palette images carry transparency in the palette: expand it to an alpha channel.
            arr = np.asarray(im.convert("RGBA") if mode in ("P", "PA") else im)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise MaskError(f"cannot read mask file {path}: {exc}") from exc
    if arr.ndim == 2:
        return arr != 0
    if mode == "RGB":
        return arr.any(axis=-1)
    return arr[..., :-1].any(axis=-1) & (arr[..., -1] != 0)


def load_masks(
    path: PathLike, shape: tuple[int, int] | None,
    spacing_mm: tuple[float, float] | None = None,
) -> MaskStack:
    """Read a stack saved by :func:`save_masks` (or a folder of PNGs made elsewhere).

    ``shape`` is the image's (rows, columns); every mask must match it. None reads a stack saved
    without its image (a layout to draw a new patient from) at its saved size, else at that of
    its first PNG. ``spacing_mm`` is the image's pixel spacing: given, it wins over the one
    stored with the masks (the radiograph is the authority); otherwise the stored one is used,
    else the MaskStack default.
    """
    path = Path(path)
    if path.suffix.lower() == ".npz":
        arrays, meta = _read_npz(path)
    elif path.is_dir():
        arrays, meta = _read_folder(path, shape)
    else:
        raise MaskError(f"no masks at {path}: expected a .npz file or a folder of PNGs")
    if shape is None:  # an .npz stack says its size; a folder's was found while reading it
        shape = meta.get("shape") or (next(iter(arrays.values())).shape if arrays else None)
        if not isinstance(shape, (list, tuple)) or len(shape) != 2:
            raise MaskError(f"{path} does not say the size of its masks")
    shape = (int(shape[0]), int(shape[1]))
    saved_shape = meta.get("shape")
    if saved_shape is not None and tuple(saved_shape) != shape:
        raise MaskError(
            f"masks in {path} are {saved_shape[1]} x {saved_shape[0]} pixels but the image is "
            f"{shape[1]} x {shape[0]}; resize the masks or load the matching image"
        )
    saved_spacing = meta.get("spacing_mm")
    if spacing_mm is not None and saved_spacing is not None and not np.allclose(
        spacing_mm, saved_spacing
    ):
        log.warning("masks in %s were saved with spacing %s mm; using the image's %s mm",
                    path, saved_spacing, spacing_mm)
    spacing = spacing_mm if spacing_mm is not None else saved_spacing
    nodules = _nodules(meta.get("nodules", []), path)
    try:
        return MaskStack.from_arrays(
            shape,
            arrays,
            None if spacing is None else (float(spacing[0]), float(spacing[1])),
            nodules,
            stamp_nodules=NODULE not in arrays,
            # Files written before edit mode list no source nodules: theirs came with the image.
            source_nodules=(_nodules(meta["source_nodules"], path)
                            if "source_nodules" in meta else None),
        )
    except MaskError as exc:
        raise MaskError(f"{path}: {exc}") from exc


def is_mask_set(path: PathLike) -> bool:
    """Whether ``path`` looks like a saved mask stack (an .npz file, or a folder of layer PNGs)."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() == ".npz"
    return path.is_dir() and ((path / NODULES_JSON).is_file() or any(
        (path / f"{name}.png").is_file() for name in STRUCTURES))


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data[_META]))
            arrays = {name: data[f"{_LAYER_PREFIX}{name}"] for name in meta["layers"]}
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        raise MaskError(f"cannot read mask file {path}: {exc}") from exc
    if meta.get("format") != FORMAT:
        raise MaskError(f"{path} is not an xraystudio mask file")
    return arrays, meta


def _read_folder(
    path: Path, shape: tuple[int, int] | None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    # Dot files include the temporaries of an interrupted atomic write.
    files = {
        p.stem: p for p in path.iterdir()
        if p.suffix.lower() == ".png" and not p.name.startswith(".") and p.is_file()
    }
    meta: dict[str, Any] = {}
    meta_file = path / NODULES_JSON
    if meta_file.is_file():
        try:
            meta = read_json_object(meta_file)
        except (OSError, ValueError) as exc:
            raise MaskError(f"cannot read {meta_file}: {exc}") from exc
    if not files and not meta:
        raise MaskError(f"no mask PNGs or {NODULES_JSON} in {path}")
    if shape is None:  # a stack without its image: its saved size, else its first PNG's
        shape = meta.get("shape") or (_png_shape(files[min(files)]) if files else None)
        if not isinstance(shape, (list, tuple)) or len(shape) != 2:
            raise MaskError(f"{path} does not say the size of its masks")
        shape = (int(shape[0]), int(shape[1]))
    # Known layers in their usual order, then the saved order, then any others by name.
    order = [*STRUCTURES, *meta.get("layers", []), *sorted(files)]
    names = [n for n in dict.fromkeys(order) if n in files]
    return {name: read_mask_png(files[name], shape) for name in names}, meta


def _png_shape(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.height, im.width
    except OSError as exc:
        raise MaskError(f"cannot read {path}: {exc}") from exc


def _nodules(items: Any, source: Path) -> list[Nodule]:
    try:
        return [
            Nodule(int(d["id"]), float(d["x"]), float(d["y"]), float(d["diameter_mm"]),
                   None if d.get("contrast") is None else float(d["contrast"]))
            for d in items
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise MaskError(f"malformed nodule list in {source}: {exc}") from exc


def resize_masks(stack: MaskStack, shape: tuple[int, int]) -> MaskStack:
    """Resample every layer to ``shape``; nodule centres and spacing follow, sizes in mm stay.

    Layers are area-averaged (Pillow's box filter) and kept where at least half a new pixel was
    inside, so a one-pixel vessel or clavicle edge survives a 2x reduction that nearest-neighbour
    sampling would drop or break up. Pixel centres map as ``(x + 0.5) * scale - 0.5``.
    """
    h, w = int(shape[0]), int(shape[1])
    sy, sx = h / stack.shape[0], w / stack.shape[1]
    arrays: Mapping[str, np.ndarray] = {
        name: _resize_layer(np.asarray(stack[name]), (h, w)) for name in stack.names
    }
    def scaled(n: Nodule) -> Nodule:
        return Nodule(n.id, float(np.clip((n.x + 0.5) * sx - 0.5, 0, w - 1)),
                      float(np.clip((n.y + 0.5) * sy - 0.5, 0, h - 1)), n.diameter_mm,
                      n.contrast)

    spacing = (stack.spacing_mm[0] / sy, stack.spacing_mm[1] / sx)
    return MaskStack.from_arrays((h, w), arrays, spacing, [scaled(n) for n in stack.nodules],
                                 layers=(), source_nodules=[scaled(n) for n in stack.source_nodules])


def _resize_layer(layer: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if layer.shape == shape:
        return layer.copy()
    im = Image.fromarray(layer.astype(np.float32))
    return np.asarray(im.resize((shape[1], shape[0]), Image.Resampling.BOX)) >= 0.5
