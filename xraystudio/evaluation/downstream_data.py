"""The training images of the downstream benchmark's arms, at one working size.

The arms differ only in what is added to the real training cases:

- ``real``: nothing;
- ``blob``: for every image of the synthetic folder, its source case with a simple blob
  (:func:`~xraystudio.evaluation.edit_eval.blob_insert`) at each inserted nodule's position and
  size, at the contrast the synthetic image was made to (``synthesize`` draws it from the real
  training nodules of the same subtlety and similar size; for a folder without one, it is drawn
  here the same way);
- ``synthetic``: the folder(s) written by ``xraystudio synthesize`` (nnU-Net v2 layout plus
  ``metadata.jsonl``): edit-mode insertions, and ``--remove`` counterparts (a real nodule case
  with its nodule taken out, labelled free of it; blob insertion cannot remove, so its arm gets
  the source case unchanged for such an item);
- ``new_patients``: a folder of ``synthesize --mode layout`` images: new patients drawn from
  training cases' masks, labelled with the nodules the layout sampler put in them.

So the blob and synthetic arms have the same number of images, the same source radiographs, the
same nodule layouts and the same target contrasts: only the insertion method differs. A synthetic
image whose source is a validation case would leak the held-out split into training, so reading a
folder refuses it, as it refuses images of another kind than the arm takes (a layout image is
no edit of its source, so no blob arm can match it).

Images are kept as 8-bit pixels at the working size (JSRT is 8-bit; at 512 px a case costs
0.5 MB), with their per-image mean and standard deviation at that size, which the segmenter
standardises by in training and at inference alike.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import transform

from xraystudio import metrics
from xraystudio.errors import DatasetError
from xraystudio.io.datasets import JsrtDataset
from xraystudio.masks import NODULE
from xraystudio.synthesis.conspicuity import (
    RealNodule,
    draw_contrast,
    positive_contrasts,
    relative_contrast,
    value_span,
)
from xraystudio.training.nodule_segmenter import Pool

log = logging.getLogger(__name__)

METADATA = "metadata.jsonl"
DATASET_JSON = "dataset.json"
#: ``synthesize --mode`` of each kind of folder: edits of the sources (with their removal
#: counterparts), and new patients.
EDIT_MODES: tuple[str, ...] = ("edit", "remove")
LAYOUT_MODES: tuple[str, ...] = ("layout",)
#: Called with (items done, items in all) while a pool loads.
Progress = Callable[[int, int], None]


@dataclasses.dataclass(frozen=True)
class Inserted:
    """One nodule a synthetic image added to its source: centre (source pixels), size, subtlety
    and the contrast it was made to (None when the synthesis set none)."""

    x: float
    y: float
    diameter_mm: float
    subtlety: int | None = None
    contrast: float | None = None


@dataclasses.dataclass(frozen=True)
class SyntheticItem:
    """One line of ``metadata.jsonl``, checked: files exist, the source case is a training case;
    ``nodule_value`` is the nodule's value in the label maps of its folder."""

    id: str
    image: Path
    label: Path
    case: str
    nodules: tuple[Inserted, ...]
    nodule_value: int
    mode: str = "edit"  # synthesize's mode (a folder from before it was recorded: edit)


# ----------------------------------------------------------------------- the synthetic folder
def read_synthetic(
    folders: str | Path | Iterable[str | Path], dataset: JsrtDataset, val_ids: Iterable[str],
    modes: tuple[str, ...] = EDIT_MODES,
) -> list[SyntheticItem]:
    """The items of one or several synthetic nnU-Net folders (say, edit-mode insertions and the
    ``--remove`` counterparts of the real nodule cases), in order.

    Refuses (``DatasetError``) a folder that is not such a dataset, an item whose files are
    missing or that has no source case of ``dataset``, an item of another ``synthesize`` mode
    than ``modes``, an id listed twice, and above all any item made from a validation case:
    training on it would measure the segmenter on its own training data.
    """
    roots = [Path(folders)] if isinstance(folders, (str, Path)) else [Path(f) for f in folders]
    if not roots:
        raise DatasetError("no synthetic folder given")
    val = set(val_ids)
    items = [item for root in roots for item in _read_folder(root, dataset, val)]
    other = sorted({i.mode for i in items} - set(modes))
    if other:
        raise DatasetError(
            f"{', '.join(str(r) for r in roots)} hold(s) {' and '.join(other)}-mode images where "
            f"{' or '.join(modes)}-mode images of `xraystudio synthesize` are expected")
    twice = sorted(k for k, count in Counter(i.id for i in items).items() if count > 1)
    if twice:
        raise DatasetError(f"synthetic image(s) {', '.join(twice[:5])} are listed twice in "
                           f"{', '.join(str(r) for r in roots)}")
    return items


def _read_folder(root: Path, dataset: JsrtDataset, val: set[str]) -> list[SyntheticItem]:
    if not root.is_dir():
        raise DatasetError(f"synthetic folder {root} does not exist")
    for needed in (DATASET_JSON, METADATA):
        if not (root / needed).is_file():
            raise DatasetError(f"{root} is not a synthetic dataset of xraystudio: no {needed}")
    try:
        info = json.loads((root / DATASET_JSON).read_text(encoding="utf-8"))
        nodule_value = int(info["labels"][NODULE])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{root / DATASET_JSON} has no label value for {NODULE!r}: {exc}") from None
    if info.get("file_ending", ".png") != ".png":
        raise DatasetError(f"{root}: only .png datasets are supported, not {info['file_ending']}")

    items = [_item(root, line, n, nodule_value)
             for n, line in enumerate(_lines(root / METADATA), 1)]
    if not items:
        raise DatasetError(f"{root / METADATA} lists no images")
    known = set(dataset.ids)
    leaking = sorted({i.case for i in items if i.case in val})
    if leaking:
        count = sum(i.case in val for i in items)
        raise DatasetError(
            f"{count} synthetic image(s) in {root} were made from validation case(s) "
            f"{', '.join(leaking[:5])}{' ...' if len(leaking) > 5 else ''}: training on them would "
            "leak the held-out split; synthesize from the training split only"
        )
    unknown = sorted({i.case for i in items if i.case not in known})
    if unknown:
        raise DatasetError(
            f"synthetic images in {root} come from case(s) {', '.join(unknown[:5])} that "
            f"{dataset.root} does not have; give the dataset they were made from"
        )
    return items


def _lines(path: Path) -> list[dict]:
    out = []
    for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except ValueError as exc:
            raise DatasetError(f"{path}, line {n}: not JSON ({exc})") from None
        if not isinstance(row, dict):
            raise DatasetError(f"{path}, line {n}: not a JSON object")
        out.append(row)
    return out


def _item(root: Path, row: dict, n: int, nodule_value: int) -> SyntheticItem:
    where = f"{root / METADATA}, item {n}"
    try:
        item_id, image, label = str(row["id"]), root / row["image"], root / row["label"]
        case = row["source"]["case"]
        mode = str(row.get("mode", "edit"))
        nodules = tuple(
            Inserted(float(d["x"]), float(d["y"]), float(d["diameter_mm"]),
                     None if d.get("subtlety") is None else int(d["subtlety"]),
                     None if d.get("contrast") is None else float(d["contrast"]))
            for d in row.get("nodules", [])
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{where}: missing or malformed field {exc}") from None
    if not isinstance(case, str) or not case:
        raise DatasetError(
            f"{where} ({item_id}) has no source case: the benchmark needs images made from "
            "the dataset's own cases"
        )
    for path in (image, label):
        if not path.is_file():
            raise DatasetError(f"{where} ({item_id}): file {path} is missing")
    return SyntheticItem(item_id, image, label, case, nodules, nodule_value, mode)


# --------------------------------------------------------------------------------- the pools
def _read_png(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im)
    except (OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None


def _as_float(pixels: np.ndarray, path: Path) -> np.ndarray:
    if pixels.ndim != 2 or pixels.dtype not in (np.uint8, np.uint16):
        raise DatasetError(f"{path} is not an 8- or 16-bit grey PNG ({pixels.dtype}, {pixels.shape})")
    return pixels.astype(np.float32) / np.iinfo(pixels.dtype).max


def _to_size(image: np.ndarray, size: int) -> np.ndarray:
    """Anti-aliased resize to size² (the same for every arm, so none gets sharper pixels)."""
    out = transform.resize(image, (size, size), order=1, anti_aliasing=True, preserve_range=True)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _mask_to_size(mask: np.ndarray, size: int) -> np.ndarray:
    return _to_size(mask.astype(np.float32), size) >= 0.5


def _centres(mask: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return np.zeros((0, 2), np.float32)
    return np.asarray(ndimage.center_of_mass(mask, lab, range(1, n + 1)), np.float32)


class _PoolBuilder:
    """Collects (image, mask, spacing) at native size and keeps them at the working size."""

    def __init__(self, name: str, size: int, count: int) -> None:
        self.name, self.size = name, size
        self.ids: list[str] = []
        self.images = np.empty((count, size, size), np.uint8)
        self.masks = np.empty((count, size, size), bool)
        self.centres: list[np.ndarray] = []
        self.mean = np.empty(count, np.float32)
        self.std = np.empty(count, np.float32)
        self.spacing = np.empty(count, np.float32)

    def add(self, item_id: str, image: np.ndarray, mask: np.ndarray, spacing_mm: float) -> None:
        i = len(self.ids)
        small = _to_size(image, self.size)
        self.images[i] = np.round(small * 255).astype(np.uint8)
        stored = self.images[i] / np.float32(255)
        self.mean[i], self.std[i] = stored.mean(), max(float(stored.std()), 1e-3)
        self.masks[i] = _mask_to_size(mask, self.size)
        self.centres.append(_centres(self.masks[i]))
        self.spacing[i] = spacing_mm * image.shape[1] / self.size
        self.ids.append(item_id)

    def build(self) -> Pool:
        n = len(self.ids)
        return Pool(self.name, self.ids, self.images[:n], self.masks[:n], self.centres,
                    self.mean[:n], self.std[:n], self.spacing[:n])


def real_pool(
    dataset: JsrtDataset, ids: list[str], size: int, name: str = "real",
    progress: Progress | None = None,
) -> tuple[Pool, list[RealNodule]]:
    """Real cases (nodule label = the JSRT disc) and the measured contrasts of their nodules."""
    builder = _PoolBuilder(name, size, len(ids))
    nodules: list[RealNodule] = []
    for k, case_id in enumerate(ids):
        case = dataset.load(case_id)
        builder.add(case_id, case.image, np.asarray(case.masks[NODULE]), case.spacing_mm[1])
        info = case.info
        if info.nodule:
            radius = info.size_mm / case.spacing_mm[1] / 2
            nodules.append(RealNodule(info.size_mm, info.subtlety,
                                      relative_contrast(case.image, info.x_px, info.y_px, radius)))
        if progress:
            progress(k + 1, len(ids))
    return builder.build(), nodules


def synthetic_pool(
    items: list[SyntheticItem], dataset: JsrtDataset, size: int, progress: Progress | None = None,
    name: str = "synthetic",
) -> Pool:
    """A synthetic folder's images with the nodule label of their label maps (edits, or new
    patients drawn from a case's masks: either way at the size and spacing of that case)."""
    spacing = {c.id: c.spacing_mm for c in dataset.cases}
    builder = _PoolBuilder(name, size, len(items))
    for k, item in enumerate(items):
        image = _as_float(_read_png(item.image), item.image)
        label = _read_png(item.label)
        if label.shape != image.shape:
            raise DatasetError(f"{item.label} is {label.shape} but its image is {image.shape}")
        builder.add(item.id, image, label == item.nodule_value, spacing[item.case])
        if progress:
            progress(k + 1, len(items))
    return builder.build()


def blob_pool(
    items: list[SyntheticItem], dataset: JsrtDataset, real: list[RealNodule], size: int,
    progress: Progress | None = None,
) -> Pool:
    """The blob arm: each synthetic item's source with blobs at its inserted nodules.

    The blob image is stored at the source's bit depth, as a synthetic image is; the label is
    the source's own nodule disc plus a disc per blob.
    """
    from xraystudio.evaluation.edit_eval import blob_insert

    real = positive_contrasts(real)
    if not real:
        raise DatasetError("the training split has no nodule with a measurable contrast to "
                           "draw blob contrasts from")
    builder = _PoolBuilder("blob", size, len(items))
    for k, item in enumerate(items):
        case = dataset.load(item.case)
        levels = _levels(dataset.root / "images" / f"{item.case}.png")
        spacing = case.spacing_mm[1]
        image, label = case.image.astype(np.float64), np.asarray(case.masks[NODULE]).copy()
        rng = np.random.default_rng(_stable_seed(item.id))
        yy, xx = np.ogrid[: image.shape[0], : image.shape[1]]
        for n in item.nodules:
            radius = n.diameter_mm / spacing / 2
            target = n.contrast if n.contrast is not None else draw_contrast(
                real, n.diameter_mm, n.subtlety, rng)
            image = blob_insert(image, n.x, n.y, radius,
                                target * value_span(case.image) / _blob_gain(radius))
            label |= (xx - n.x) ** 2 + (yy - n.y) ** 2 <= radius**2
        image = np.round(np.clip(image, 0, 1) * levels) / levels
        builder.add(item.id, image.astype(np.float32), label, spacing)
        if progress:
            progress(k + 1, len(items))
    return builder.build()


def _blob_gain(radius: float) -> float:
    """Measured contrast of a blob of contrast 1, so blobs match the measured real contrasts."""
    from xraystudio.evaluation.edit_eval import blob_insert

    side = int(6 * radius) + 5
    centre = side // 2
    blob = blob_insert(np.zeros((side, side)), centre, centre, radius, 1.0)
    return metrics.nodule_contrast(blob, centre, centre, radius)


def _levels(path: Path) -> int:
    with Image.open(path) as im:
        return 65535 if im.mode.startswith("I") else 255


def _stable_seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
