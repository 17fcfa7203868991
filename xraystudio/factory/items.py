"""Work items: what to make, fixed before anything is made, so any process can take any part.

An item is one output image. Its id names its files and its seed comes from the master seed and
the id alone (never from a counter, a rank or the time), so the same settings give the same
files however the items are shared out, resumed or repeated. Items are grouped into units of
``batch`` consecutive items; a unit is the smallest piece a process takes and one pipeline call's
worth of images, so batch composition, and with it every pixel, does not depend on sharding.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from xraystudio.errors import DatasetError

#: What an item does to its input: insert sampled nodules, remove the real ones, or draw a new
#: patient from the input's masks (layout mode).
MODES: tuple[str, ...] = ("edit", "remove", "layout")
_TAG = {"edit": "e", "remove": "r", "layout": "l"}
RADIOGRAPH_SUFFIXES = (".dcm", ".dicom", ".png", ".tif", ".tiff", ".jpg", ".jpeg")


@dataclasses.dataclass(frozen=True)
class Source:
    """One input: a case of a JSRT-style dataset (``case``), a radiograph file, or a saved mask
    stack without an image (``masks_only``: a layout for a new patient)."""

    name: str
    path: Path
    case: str | None = None
    nodules: tuple[tuple[float, float, float], ...] = ()  # (x, y, diameter mm) known in the input
    masks_only: bool = False

    def to_dict(self) -> dict:
        out = {"name": self.name, "masks" if self.masks_only else "file": str(self.path)}
        if self.case is not None:
            out["case"] = self.case
        return out


@dataclasses.dataclass(frozen=True)
class WorkItem:
    id: str
    source: Source
    mode: str
    index: int
    seed: int


def item_seed(master_seed: int, item_id: str) -> int:
    """A 31-bit seed from the master seed and the item id (stable across platforms)."""
    digest = hashlib.sha256(f"{master_seed}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def find_sources(root: Path, split: str = "all", limit: int | None = None) -> list[Source]:
    """The inputs: a JSRT-style dataset's cases (``split`` of its one train/val split), the
    radiograph files of a folder, or else the saved mask stacks of a folder (``.npz`` files or
    folders of layer PNGs, as the app saves them), sorted by name."""
    from xraystudio.io.datasets import CASES_CSV, JsrtDataset
    from xraystudio.io.masks_io import is_mask_set

    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"input folder {root} does not exist")
    if (root / CASES_CSV).is_file():
        data = JsrtDataset(root)
        train, val = data.split()
        ids = {"all": data.ids, "train": train, "val": val}.get(split)
        if ids is None:
            raise DatasetError(f"split must be all, train or val, got {split!r}")
        by_id = {c.id: c for c in data.cases}
        sources = []
        for cid in sorted(ids):
            info = by_id[cid]
            nod = ((float(info.x_px), float(info.y_px), float(info.size_mm)),) if info.nodule else ()
            sources.append(Source(cid, root / "images" / f"{cid}.png", cid, nod))
    else:
        if split != "all":
            raise DatasetError(f"--split needs a JSRT-style dataset (with {CASES_CSV}); "
                               f"{root} is a folder of radiographs")
        files = sorted(p for p in root.iterdir()
                       if p.is_file() and p.suffix.lower() in RADIOGRAPH_SUFFIXES)
        sources = [Source(p.stem, p) for p in files]
        if not files:
            sets = sorted(p for p in root.iterdir() if not p.name.startswith(".") and is_mask_set(p))
            sources = [Source(p.stem, p, masks_only=True) for p in sets]
        if len({s.name for s in sources}) != len(sources):
            raise DatasetError(f"{root} holds two inputs with the same name stem; "
                               "rename one so their outputs cannot collide")
    if limit is not None:
        sources = sources[:limit]
    if not sources:
        raise DatasetError(f"no radiographs or saved masks found in {root}")
    return sources


def plan_items(sources: list[Source], mode: str, per_input: int, master_seed: int) -> list[WorkItem]:
    """Every item, in a fixed order: input by input, then index."""
    if mode not in MODES:
        raise DatasetError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if per_input < 1:
        raise DatasetError("the number of images per input must be at least 1")
    if mode != "layout" and any(src.masks_only for src in sources):
        raise DatasetError("a folder of masks has no radiographs to edit; draw new patients "
                           "from it with --mode layout")
    items = []
    for src in sources:
        if mode == "remove":
            if src.nodules:  # one nodule-free counterpart per real nodule case
                items.append(WorkItem(f"{src.name}_r000", src, mode, 0,
                                      item_seed(master_seed, f"{src.name}_r000")))
            continue
        for k in range(per_input):
            iid = f"{src.name}_{_TAG[mode]}{k:03d}"
            items.append(WorkItem(iid, src, mode, k, item_seed(master_seed, iid)))
    if not items:
        raise DatasetError("nothing to make: --remove needs inputs with known nodules "
                           "(a JSRT-style dataset's nodule cases)")
    return items


def units(items: list[WorkItem], batch: int) -> list[list[WorkItem]]:
    if batch < 1:
        raise DatasetError("the batch size must be at least 1")
    return [items[i:i + batch] for i in range(0, len(items), batch)]


def shard(all_units: list[list[WorkItem]], rank: int, world: int) -> list[list[WorkItem]]:
    """The units process ``rank`` of ``world`` takes: every world-th, so shards stay balanced."""
    return all_units[rank::world]
