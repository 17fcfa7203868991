"""The one reader (and writer) of JSRT-style datasets, shared by training and evaluation.

Layout::

    ROOT/images/<case>.png                 8- or 16-bit grey radiograph
    ROOT/masks/<structure>/<case>.png      binary mask per anatomy structure (mode "1")
    ROOT/cases.csv                         case,nodule,x_px,y_px,diameter_px,size_mm,subtlety,
                                           malignant,age,sex[,spacing_mm]

Nodule positions are in the image grid (origin top-left, x right, y down); a nodule is a disc of
``size_mm`` at (x_px, y_px), as JSRT has no nodule outlines. The optional ``spacing_mm`` column
(mm per pixel, square pixels) defaults to JSRT's 0.35 mm. Curated or exported cases are written
in the same layout by :func:`write_case` so that they can be trained on directly.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import logging
import math
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import transform, util

from xraystudio.errors import DatasetError, ImageLoadError
from xraystudio.io.atomic import atomic_open
from xraystudio.io.images import save_png
from xraystudio.io.masks_io import read_mask_png, resize_masks
from xraystudio.masks import ANATOMY, MaskStack, Nodule

log = logging.getLogger(__name__)

JSRT_SPACING_MM = 0.35
CASES_CSV = "cases.csv"
COLUMNS: tuple[str, ...] = (
    "case", "nodule", "x_px", "y_px", "diameter_px", "size_mm",
    "subtlety", "malignant", "age", "sex", "spacing_mm",
)
#: Columns a cases.csv must have; ``spacing_mm`` is optional.
REQUIRED_COLUMNS = COLUMNS[:-1]
_CASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
#: Cell values meaning "unknown" (JSRT writes "?" for one age).
_UNKNOWN = {"", "?", "na", "n/a", "nan", "none"}


@dataclasses.dataclass(frozen=True)
class CaseInfo:
    """One row of cases.csv, typed; the nodule fields are None for normal cases.

    ``id`` is the CSV's ``case`` column.
    """

    id: str
    nodule: bool
    x_px: float | None = None
    y_px: float | None = None
    diameter_px: float | None = None
    size_mm: float | None = None
    subtlety: int | None = None
    malignant: bool | None = None
    age: int | None = None
    sex: str | None = None
    spacing_mm: float = JSRT_SPACING_MM


@dataclasses.dataclass
class Case:
    """A loaded case: image (float32 in [0, 1], H x W), masks and spacing (row, column) in mm."""

    id: str
    image: np.ndarray
    masks: MaskStack
    spacing_mm: tuple[float, float]
    info: CaseInfo


class JsrtDataset:
    """A JSRT-style dataset folder, checked on opening so that a bad layout fails early."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"dataset folder {self.root} does not exist")
        wanted = [Path("images"), *(Path("masks") / s for s in ANATOMY)]
        missing = [str(p) + "/" for p in wanted if not (self.root / p).is_dir()]
        if not (self.root / CASES_CSV).is_file():
            missing.append(CASES_CSV)
        if missing:
            raise DatasetError(
                f"{self.root} is not a JSRT-style dataset: missing {', '.join(missing)}"
            )
        self.cases: list[CaseInfo] = _read_cases(self.root / CASES_CSV)
        self._by_id = {c.id: c for c in self.cases}
        self._check_files()

    def __len__(self) -> int:
        return len(self.cases)

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.cases]

    def _check_files(self) -> None:
        folders = [Path("images"), *(Path("masks") / s for s in ANATOMY)]
        missing = []
        for folder in folders:
            present = {p.stem for p in (self.root / folder).glob("*.png")}
            missing += [str(folder / f"{c.id}.png") for c in self.cases if c.id not in present]
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise DatasetError(
                f"{self.root}: files of cases listed in {CASES_CSV} are missing: "
                f"{', '.join(missing[:5])}{more}"
            )

    def load(self, case_id: str, size: int | None = None) -> Case:
        """Image, anatomy masks and the nodule object of one case, optionally resized to size².

        Resizing anti-aliases the image (scikit-image) and area-averages the masks
        (:func:`resize_masks`); the spacing scales with it.
        """
        info = self._info(case_id)
        image = _read_image(self.root / "images" / f"{case_id}.png")
        masks = self.masks(case_id, (image.shape[0], image.shape[1]))
        if size is not None:
            image = transform.resize(
                image, (size, size), order=1, anti_aliasing=True, preserve_range=True
            )
            image = np.clip(image, 0.0, 1.0).astype(np.float32)
            masks = resize_masks(masks, (size, size))
        return Case(case_id, image, masks, masks.spacing_mm, info)

    def masks(self, case_id: str, shape: tuple[int, int]) -> MaskStack:
        """A case's anatomy masks and nodule at its image's ``shape``, without reading the image:
        for a caller that reads the radiograph itself, with its stored values."""
        info = self._info(case_id)
        arrays = {
            s: read_mask_png(self.root / "masks" / s / f"{case_id}.png", shape) for s in ANATOMY
        }
        nodules = [Nodule(1, info.x_px, info.y_px, info.size_mm)] if info.nodule else []
        spacing = (info.spacing_mm, info.spacing_mm)
        return MaskStack.from_arrays(shape, arrays, spacing, nodules, stamp_nodules=True)

    def _info(self, case_id: str) -> CaseInfo:
        try:
            return self._by_id[case_id]
        except KeyError:
            raise DatasetError(f"no case {case_id!r} in {self.root / CASES_CSV}") from None

    def split(self, val_fraction: float = 0.2, seed: int = 0) -> tuple[list[str], list[str]]:
        """The held-out split every model uses: (train ids, validation ids), each sorted.

        Stratified: nodule and normal cases are split separately, each giving
        ``round(n * val_fraction)`` cases to validation. Within a stratum cases are ordered by a
        SHA-256 hash of ``seed`` and the case id, so the split depends on nothing but the ids
        (not on the CSV order, the numpy version or the platform), and adding cases moves few
        existing ones.
        """
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie between 0 and 1, got {val_fraction}")
        train: list[str] = []
        val: list[str] = []
        for stratum in (True, False):
            ids = sorted(
                (c.id for c in self.cases if c.nodule == stratum),
                key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest(),
            )
            k = math.floor(len(ids) * val_fraction + 0.5)
            val += ids[:k]
            train += ids[k:]
        return sorted(train), sorted(val)


def _read_image(path: Path) -> np.ndarray:
    """A grey PNG as float32 in [0, 1]: 8-bit over 255, 16-bit over 65535; colour to grey."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L") if im.mode in ("RGB", "RGBA", "P", "LA") else im)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageLoadError(f"cannot read image {path}: {exc}") from exc
    if arr.ndim != 2 or not (arr.dtype == bool or (arr.dtype.kind == "u" and arr.itemsize <= 2)):
        raise ImageLoadError(f"image {path} is not an 8- or 16-bit grey PNG ({arr.dtype})")
    return util.img_as_float32(arr.astype(arr.dtype.newbyteorder("=")))


# ------------------------------------------------------------------------------------- cases.csv
def _read_cases(path: Path) -> list[CaseInfo]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DatasetError(f"{path} lacks the column(s) {', '.join(missing)}")
            cases = [_parse_row(row, f"{path}, line {reader.line_num}") for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    seen: set[str] = set()
    for c in cases:
        if c.id in seen:
            raise DatasetError(f"{path} lists case {c.id!r} twice")
        seen.add(c.id)
    return cases


def _parse_row(row: dict[str, str], where: str) -> CaseInfo:
    def text(col: str) -> str | None:
        value = (row.get(col) or "").strip()
        return None if value.lower() in _UNKNOWN else value

    def number(col: str, kind: type) -> float | int | None:
        value = text(col)
        if value is None:
            return None
        try:
            return kind(float(value))
        except ValueError:
            raise DatasetError(f"{where}: {col} {value!r} is not a number") from None

    def flag(col: str) -> bool | None:
        value = text(col)
        if value is None:
            return None
        lowered = value.lower()
        if lowered in ("1", "true", "yes"):
            return True
        if lowered in ("0", "false", "no"):
            return False
        raise DatasetError(f"{where}: {col} {value!r} is not one of 1/0/TRUE/FALSE")

    case_id = text("case")
    if case_id is None or not _CASE_ID.fullmatch(case_id):
        raise DatasetError(f"{where}: case id {case_id!r} is missing or not a plain file name")
    nodule = flag("nodule")
    if nodule is None:
        raise DatasetError(f"{where}: the nodule column is empty")
    info = CaseInfo(
        id=case_id,
        nodule=nodule,
        x_px=number("x_px", float),
        y_px=number("y_px", float),
        diameter_px=number("diameter_px", float),
        size_mm=number("size_mm", float),
        subtlety=number("subtlety", int),
        malignant=flag("malignant"),
        age=number("age", int),
        sex=text("sex"),
        spacing_mm=number("spacing_mm", float) or JSRT_SPACING_MM,
    )
    if nodule and None in (info.x_px, info.y_px, info.size_mm):
        raise DatasetError(f"{where}: a nodule case needs x_px, y_px and size_mm")
    return info


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _row(info: CaseInfo) -> dict[str, str]:
    row = {col: _cell(getattr(info, "id" if col == "case" else col)) for col in COLUMNS}
    row["nodule"] = "1" if info.nodule else "0"
    return row


# ---------------------------------------------------------------------------------- write_case
def write_case(
    root: str | os.PathLike,
    case_id: str,
    image: np.ndarray,
    masks: MaskStack,
    info: CaseInfo | None = None,
) -> CaseInfo:
    """Write (or replace) one case in the JSRT layout and return the row written.

    ``image`` is saved as 16-bit PNG when it is uint16, else as 8-bit (floats are taken to be in
    [0, 1]). The five anatomy layers are saved as mode "1" PNGs (an absent layer as an empty mask).
    The nodule comes from ``masks.nodules`` (at most one; the layout has one per case), since the
    masks are what the user curated; ``info`` supplies the other columns (subtlety, malignancy,
    age, sex). Files are written before the CSV row, so a crash never leaves a row without files;
    the CSV is rewritten atomically. One writer per dataset at a time.
    """
    root = Path(root)
    if not _CASE_ID.fullmatch(case_id):
        raise DatasetError(f"case id {case_id!r} must be a plain file name (letters, digits, _.-)")
    pixels = _image_pixels(np.asarray(image), masks.shape)
    if len(masks.nodules) > 1:
        raise DatasetError(
            f"case {case_id} has {len(masks.nodules)} nodules; the JSRT layout holds one per case"
        )
    spacing = float(np.mean(masks.spacing_mm))
    base = info or CaseInfo(id=case_id, nodule=False)
    if masks.nodules:
        n = masks.nodules[0]
        row = dataclasses.replace(
            base, id=case_id, nodule=True, x_px=n.x, y_px=n.y, size_mm=n.diameter_mm,
            diameter_px=n.diameter_mm / spacing, spacing_mm=spacing,
        )
    else:
        row = dataclasses.replace(
            base, id=case_id, nodule=False, x_px=None, y_px=None, diameter_px=None,
            size_mm=None, subtlety=None, malignant=None, spacing_mm=spacing,
        )

    write_case_files(root, case_id, pixels, masks)
    _upsert_row(root / CASES_CSV, row)
    log.info("wrote case %s to %s", case_id, root)
    return row


def write_case_files(root: Path, case_id: str, pixels: np.ndarray, masks: MaskStack) -> None:
    """A case's image (integer ``pixels``, as they are) and five anatomy layers, each written
    atomically, without its cases.csv row: for writers that list their cases at the end."""
    save_png(root / "images" / f"{case_id}.png", pixels)
    for structure in ANATOMY:
        layer = np.asarray(masks[structure]) if structure in masks else np.zeros(masks.shape, bool)
        save_png(root / "masks" / structure / f"{case_id}.png", layer.astype(bool))


def _image_pixels(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if image.shape != shape:
        raise DatasetError(
            f"image has shape {image.shape} but the masks are {shape[1]} x {shape[0]} pixels "
            "(a grey image of the same size is needed)"
        )
    if image.dtype in (np.uint8, np.uint16):
        return image
    if np.issubdtype(image.dtype, np.floating):
        return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    raise DatasetError(f"image must be uint8, uint16 or float in [0, 1], got {image.dtype}")


def _upsert_row(path: Path, info: CaseInfo) -> None:
    rows: list[dict[str, str]] = []
    fields = list(COLUMNS)
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = list(reader.fieldnames or []) + [
                c for c in COLUMNS if c not in (reader.fieldnames or [])
            ]
            rows = list(reader)
    new = _row(info)
    at = next((i for i, r in enumerate(rows) if r.get("case") == info.id), len(rows))
    rows[at:at + 1] = [new]
    with atomic_open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n", restval="")
        writer.writeheader()
        writer.writerows(rows)


def write_cases_csv(root: str | os.PathLike, infos: list[CaseInfo]) -> Path:
    """Write a whole cases.csv at once, atomically: for writers that made the case files in
    several processes and list them only when all are there."""
    path = Path(root) / CASES_CSV
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(_row(info) for info in infos)
    return path


def tune_split(dataset: JsrtDataset, train_ids: list[str], n: int) -> tuple[list[str], list[str]]:
    """(ids to train on, tuning ids): ``n`` training cases, nodule and normal in proportion."""
    if n <= 0:
        return train_ids, []
    info = {c.id: c for c in dataset.cases}
    tune: list[str] = []
    left = n
    for stratum in (True, False):
        ids = sorted((i for i in train_ids if info[i].nodule == stratum),
                     key=lambda i: hashlib.sha256(f"tune:{i}".encode()).hexdigest())
        share = max(1, round(n * len(ids) / max(1, len(train_ids)))) if stratum else left
        share = min(share, left, max(0, len(ids) - 1))
        tune += ids[:share]
        left -= share
    return sorted(set(train_ids) - set(tune)), sorted(tune)
