"""MaskStack: the one mask model of a study, shared by the canvas, the engine and the exporters.

Layers are named boolean images at the radiograph's resolution and may overlap (clavicles lie over
the lungs), so they are kept as separate channels rather than one label map. Nodules are also
objects (centre, diameter in mm) so that a layout can be listed, moved and resized; their discs
are drawn into the ``nodule`` layer, which the user may also paint freely.

Every edit is one undoable command that stores only the changed rectangle, bit-packed, before and
after; with a memory cap on the history, undo stays bounded on 3000 x 3000 images. Listeners are
told which layer and rectangle changed, so a view can redraw just that part.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from xraystudio.errors import MaskError

ANATOMY: tuple[str, ...] = (
    "right_lung",
    "left_lung",
    "heart",
    "right_clavicle",
    "left_clavicle",
)
NODULE = "nodule"
STRUCTURES: tuple[str, ...] = ANATOMY + (NODULE,)
LUNGS: tuple[str, ...] = ("right_lung", "left_lung")

#: Pixel spacing assumed when a radiograph carries none (a typical digital chest detector).
DEFAULT_SPACING_MM = 0.2


class Rect(NamedTuple):
    """A half-open pixel rectangle [y0, y1) x [x0, x1)."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def empty(self) -> bool:
        return self.y1 <= self.y0 or self.x1 <= self.x0

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def union(self, other: Rect) -> Rect:
        if self.empty:
            return other
        if other.empty:
            return self
        return Rect(
            min(self.y0, other.y0), min(self.x0, other.x0),
            max(self.y1, other.y1), max(self.x1, other.x1),
        )

    def clip(self, shape: tuple[int, int]) -> Rect:
        h, w = shape
        return Rect(max(0, self.y0), max(0, self.x0), min(h, self.y1), min(w, self.x1))


EMPTY = Rect(0, 0, 0, 0)


@dataclasses.dataclass
class Nodule:
    """A stamped nodule: centre in pixels (x right, y down) and diameter in millimetres.

    ``contrast`` is the conspicuity edit mode draws an inserted nodule to (what it adds over its
    surroundings, in units of the radiograph's value range: ``synthesis.conspicuity``); None
    leaves it to the model, as for a nodule the film itself has."""

    id: int
    x: float
    y: float
    diameter_mm: float
    contrast: float | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class _Patch:
    layer: str
    rect: Rect
    before: np.ndarray  # packed bits
    after: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.before.nbytes + self.after.nbytes


@dataclasses.dataclass
class _Command:
    label: str
    patches: list[_Patch]
    nodules_before: list[Nodule]
    nodules_after: list[Nodule]

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.patches)


Listener = Callable[[str, Rect], None]


def _pack(a: np.ndarray) -> np.ndarray:
    return np.packbits(a, axis=None)


def _unpack(p: np.ndarray, rect: Rect) -> np.ndarray:
    n = (rect.y1 - rect.y0) * (rect.x1 - rect.x0)
    return np.unpackbits(p, count=n).astype(bool).reshape(rect.y1 - rect.y0, rect.x1 - rect.x0)


class MaskStack:
    """Named overlapping boolean layers of one image, with nodule objects and region undo.

    Coordinates are pixels with x to the right and y down; sizes are millimetres, converted with
    ``spacing_mm`` (row, column spacing). Edits made outside a ``begin``/``commit`` pair are each
    one undo step.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        spacing_mm: tuple[float, float] | None = None,
        layers: Iterable[str] = STRUCTURES,
        *,
        max_undo: int = 200,
        max_undo_bytes: int = 512 * 2**20,
    ) -> None:
        if len(shape) != 2 or min(shape) <= 0:
            raise MaskError(f"mask shape must be two positive sizes, got {shape}")
        self.shape: tuple[int, int] = (int(shape[0]), int(shape[1]))
        sp = spacing_mm if spacing_mm is not None else (DEFAULT_SPACING_MM, DEFAULT_SPACING_MM)
        self.spacing_mm: tuple[float, float] = (float(sp[0]), float(sp[1]))
        self._layers: dict[str, np.ndarray] = {}
        for name in layers:
            self.add_layer(name)
        self.nodules: list[Nodule] = []
        #: The nodules the radiograph itself has (as loaded), never edited: edit mode compares
        #: them with ``nodules`` to find what was added, moved or deleted (see synthesis.edit).
        self.source_nodules: list[Nodule] = []
        self._next_id = 1
        self._undo: deque[_Command] = deque()
        self._redo: list[_Command] = []
        self.max_undo = max_undo
        self.max_undo_bytes = max_undo_bytes
        self._listeners: list[Listener] = []
        self._pending: dict[str, tuple[np.ndarray, Rect]] | None = None
        self._pending_label = ""
        self._pending_nodules: list[Nodule] = []

    @classmethod
    def from_arrays(
        cls,
        shape: tuple[int, int],
        arrays: Mapping[str, np.ndarray],
        spacing_mm: tuple[float, float] | None = None,
        nodules: Iterable[Nodule] = (),
        *,
        layers: Iterable[str] = STRUCTURES,
        stamp_nodules: bool = False,
        source_nodules: Iterable[Nodule] | None = None,
    ) -> MaskStack:
        """A stack built from loaded or computed layers, with no undo history.

        Loading a file, reading a dataset case or resampling must give a stack whose content is
        the base state: undo must not be able to "unload" it. ``layers`` are created empty first
        (so a partial file still yields the standard layers), then each array fills its layer,
        adding names not in ``layers``. Nodules keep their ids; with ``stamp_nodules`` their
        discs are drawn into the nodule layer (for sources that have objects but no pixels).
        ``source_nodules`` are those the radiograph has; by default all of ``nodules``.
        """
        stack = cls(shape, spacing_mm, layers=layers)
        for name, array in arrays.items():
            array = np.asarray(array)
            if array.shape != stack.shape:
                raise MaskError(_size_message(name, array.shape, stack.shape))
            stack.add_layer(name)
            stack._layers[name] = array.astype(bool, copy=True)
        stack.nodules = [copy.copy(n) for n in nodules]
        stack.source_nodules = [copy.copy(n) for n in
                                (stack.nodules if source_nodules is None else source_nodules)]
        stack._next_id = max([1] + [n.id + 1 for n in stack.nodules + stack.source_nodules])
        if stamp_nodules and stack.nodules:
            stack.add_layer(NODULE)
            for n in stack.nodules:
                rect, inside = stack._disc_rect(n)
                stack._layers[NODULE][rect.slices][inside] = True
        return stack

    # ----------------------------------------------------------------- layers
    @property
    def names(self) -> list[str]:
        return list(self._layers)

    def __contains__(self, name: str) -> bool:
        return name in self._layers

    def add_layer(self, name: str) -> None:
        if not name or not name.replace("_", "").isalnum():
            raise MaskError(f"layer names are letters, digits and '_', got {name!r}")
        if name not in self._layers:
            self._layers[name] = np.zeros(self.shape, dtype=bool)

    def __getitem__(self, name: str) -> np.ndarray:
        """A read-only view of one layer; change layers through the edit methods only."""
        view = self._layer(name).view()
        view.flags.writeable = False
        return view

    def _layer(self, name: str) -> np.ndarray:
        try:
            return self._layers[name]
        except KeyError:
            raise MaskError(
                f"no mask layer {name!r}; the layers are {', '.join(self._layers)}"
            ) from None

    def to_array(self, names: Sequence[str] | None = None) -> np.ndarray:
        """(C, H, W) boolean stack of the named layers (all by default)."""
        names = self.names if names is None else list(names)
        return np.stack([self._layer(n) for n in names]) if names else np.zeros(
            (0, *self.shape), bool
        )

    def union(self, names: Iterable[str]) -> np.ndarray:
        out = np.zeros(self.shape, dtype=bool)
        for n in names:
            if n in self._layers:
                out |= self._layers[n]
        return out

    def mm_to_px(self, mm: float) -> float:
        """Millimetres to pixels, with the mean of row and column spacing."""
        return float(mm) / (0.5 * (self.spacing_mm[0] + self.spacing_mm[1]))

    def copy(self) -> MaskStack:
        """An independent copy of layers and nodules, without history or listeners."""
        other = MaskStack(self.shape, self.spacing_mm, layers=())
        other._layers = {k: v.copy() for k, v in self._layers.items()}
        other.nodules = copy.deepcopy(self.nodules)
        other.source_nodules = copy.deepcopy(self.source_nodules)
        other._next_id = self._next_id
        return other

    def content_hash(self) -> str:
        """A stable hash of layer names, pixels and nodules, recorded in provenance."""
        import hashlib

        h = hashlib.sha256()
        h.update(repr(self.shape).encode())
        for name in sorted(self._layers):
            h.update(name.encode())
            h.update(_pack(self._layers[name]).tobytes())
        for n in sorted(self.nodules, key=lambda n: n.id):
            h.update(repr((round(n.x, 3), round(n.y, 3), round(n.diameter_mm, 3))).encode())
            if n.contrast is not None:
                h.update(repr(round(n.contrast, 5)).encode())
        return h.hexdigest()[:16]

    # -------------------------------------------------------------- listeners
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(layer, rect)`` after each change; returns a function to unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _emit(self, layer: str, rect: Rect) -> None:
        if rect.empty:
            return
        for fn in list(self._listeners):
            fn(layer, rect)

    # ---------------------------------------------------------- transactions
    def begin(self, label: str) -> None:
        """Start one undo step that may span many edits (a brush stroke, a nodule move)."""
        if self._pending is not None:
            self.commit()
        self._pending = {}
        self._pending_label = label
        self._pending_nodules = copy.deepcopy(self.nodules)

    def commit(self) -> None:
        """Close the step started by ``begin``; a step that changed nothing leaves no history."""
        if self._pending is None:
            return
        pending, self._pending = self._pending, None
        patches = []
        for layer, (snapshot, rect) in pending.items():
            if rect.empty:
                continue
            after = self._layers[layer][rect.slices]
            before = snapshot[rect.slices]
            if np.array_equal(before, after):
                continue
            patches.append(_Patch(layer, rect, _pack(before), _pack(after)))
        if patches or self._pending_nodules != self.nodules:
            self._push(
                _Command(self._pending_label, patches, self._pending_nodules,
                         copy.deepcopy(self.nodules))
            )

    @property
    def in_step(self) -> bool:
        return self._pending is not None

    def _touch(self, layer: str, rect: Rect) -> None:
        """Record that ``rect`` of ``layer`` is about to change within the current step."""
        assert self._pending is not None
        if layer not in self._pending:
            # One full copy per layer per step (a few ms even at 3000 x 3000) keeps strokes cheap.
            self._pending[layer] = (self._layers[layer].copy(), rect)
        else:
            snap, old = self._pending[layer]
            self._pending[layer] = (snap, old.union(rect))

    def _edit(self, label: str, layer: str, rect: Rect, fn: Callable[[np.ndarray], None]) -> Rect:
        """Apply ``fn`` to the view ``layer[rect]`` as (part of) one undo step."""
        self._layer(layer)
        rect = rect.clip(self.shape)
        if rect.empty:
            return EMPTY
        own = self._pending is None
        if own:
            self.begin(label)
        self._touch(layer, rect)
        fn(self._layers[layer][rect.slices])
        if own:
            self.commit()
        self._emit(layer, rect)
        return rect

    # ----------------------------------------------------------------- undo
    def _push(self, cmd: _Command) -> None:
        self._undo.append(cmd)
        self._redo.clear()
        total = sum(c.nbytes for c in self._undo)
        while self._undo and (len(self._undo) > self.max_undo or total > self.max_undo_bytes):
            total -= self._undo.popleft().nbytes

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_label(self) -> str | None:
        return self._undo[-1].label if self._undo else None

    @property
    def redo_label(self) -> str | None:
        return self._redo[-1].label if self._redo else None

    def history_bytes(self) -> int:
        return sum(c.nbytes for c in self._undo) + sum(c.nbytes for c in self._redo)

    def undo(self) -> bool:
        self.commit()
        if not self._undo:
            return False
        cmd = self._undo.pop()
        self._apply(cmd, before=True)
        self._redo.append(cmd)
        return True

    def redo(self) -> bool:
        self.commit()
        if not self._redo:
            return False
        cmd = self._redo.pop()
        self._apply(cmd, before=False)
        self._undo.append(cmd)
        return True

    def _apply(self, cmd: _Command, *, before: bool) -> None:
        for p in cmd.patches:
            self._layers[p.layer][p.rect.slices] = _unpack(p.before if before else p.after, p.rect)
        self.nodules = copy.deepcopy(cmd.nodules_before if before else cmd.nodules_after)
        self._next_id = max([self._next_id] + [n.id + 1 for n in self.nodules])
        for p in cmd.patches:
            self._emit(p.layer, p.rect)
        if not cmd.patches:
            self._emit(NODULE, Rect(0, 0, *self.shape))

    # ---------------------------------------------------------------- edits
    def paint(
        self,
        layer: str,
        points: Sequence[tuple[float, float]],
        diameter_mm: float,
        value: bool = True,
    ) -> Rect:
        """Brush (or erase with ``value=False``) along a polyline of (x, y) pixel points.

        Each segment is painted as a capsule so that fast mouse moves leave no gaps. Only the
        bounding rectangle is touched, which keeps a stroke update fast on large images.
        """
        if not points:
            return EMPTY
        self._layer(layer)
        r = max(self.mm_to_px(diameter_mm) / 2.0, 0.5)
        pts = np.asarray(points, dtype=float).reshape(-1, 2)
        if len(pts) == 1:
            pts = np.vstack([pts, pts])
        changed = EMPTY
        label = "Brush" if value else "Erase"
        # One call is one undo step, however many segments the polyline has.
        own = self._pending is None
        if own:
            self.begin(label)
        for (xa, ya), (xb, yb) in zip(pts[:-1], pts[1:]):
            rect = Rect(
                int(np.floor(min(ya, yb) - r)), int(np.floor(min(xa, xb) - r)),
                int(np.ceil(max(ya, yb) + r)) + 1, int(np.ceil(max(xa, xb) + r)) + 1,
            ).clip(self.shape)
            if rect.empty:
                continue
            yy, xx = np.ogrid[rect.y0:rect.y1, rect.x0:rect.x1]
            inside = _capsule(xx, yy, xa, ya, xb, yb, r)

            def fn(view: np.ndarray, inside: np.ndarray = inside) -> None:
                view[inside] = value

            changed = changed.union(self._edit(label, layer, rect, fn))
        if own:
            self.commit()
        return changed

    def erase(self, layer: str, points: Sequence[tuple[float, float]], diameter_mm: float) -> Rect:
        return self.paint(layer, points, diameter_mm, value=False)

    def fill_polygon(
        self, layer: str, points: Sequence[tuple[float, float]], value: bool = True
    ) -> Rect:
        """Fill the polygon through (x, y) pixel vertices."""
        pts = np.asarray(points, dtype=float).reshape(-1, 2)
        if len(pts) < 3:
            raise MaskError("a polygon needs at least three points")
        from skimage import draw  # imported on first use: it costs start-up time

        rr, cc = draw.polygon(pts[:, 1], pts[:, 0], shape=self.shape)
        if rr.size == 0:
            return EMPTY
        rect = Rect(int(rr.min()), int(cc.min()), int(rr.max()) + 1, int(cc.max()) + 1)

        def fn(view: np.ndarray) -> None:
            view[rr - rect.y0, cc - rect.x0] = value

        return self._edit("Polygon", layer, rect, fn)

    def flood_fill(self, layer: str, x: float, y: float, value: bool = True) -> Rect:
        """Fill the 4-connected region of equal value that contains (x, y), as a paint bucket."""
        xi, yi = int(round(x)), int(round(y))
        if not (0 <= yi < self.shape[0] and 0 <= xi < self.shape[1]):
            return EMPTY
        arr = self._layer(layer)
        if bool(arr[yi, xi]) == value:
            return EMPTY
        from scipy import ndimage  # imported on first use: it costs start-up time

        labels, _ = ndimage.label(arr == arr[yi, xi])
        region = labels == labels[yi, xi]
        ys, xs = np.nonzero(region)
        rect = Rect(int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1)
        sub = region[rect.slices]

        def fn(view: np.ndarray) -> None:
            view[sub] = value

        return self._edit("Fill", layer, rect, fn)

    def clear(self, layer: str) -> Rect:
        arr = self._layer(layer)
        ys, xs = np.nonzero(arr)

        def fn(view: np.ndarray) -> None:
            view[...] = False

        own = self._pending is None
        if own:
            self.begin(f"Clear {layer}")
        out = EMPTY
        if ys.size:
            rect = Rect(int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1)
            out = self._edit(f"Clear {layer}", layer, rect, fn)
        if layer == NODULE:
            # Objects go too, even if their discs had been erased by hand already.
            self.nodules = []
        if own:
            self.commit()
        return out

    def set_layer(self, layer: str, array: np.ndarray, label: str | None = None) -> Rect:
        """Replace a whole layer (e.g. with a segmentation); the array must match the image."""
        array = np.asarray(array)
        if array.shape != self.shape:
            raise MaskError(_size_message(layer, array.shape, self.shape))
        if layer not in self._layers:
            self.add_layer(layer)
        new = array.astype(bool)

        def fn(view: np.ndarray) -> None:
            view[...] = new

        return self._edit(label or f"Set {layer}", layer, Rect(0, 0, *self.shape), fn)

    def grow(self, layer: str, mm: float, label: str | None = None) -> Rect:
        """Dilate (``mm`` > 0) or erode (``mm`` < 0) a layer by a distance in millimetres.

        Exact in mm with anisotropic spacing: a pixel joins (or leaves) the layer when its
        centre is within ``|mm|`` of the layer's outside (inside), measured with the Euclidean
        distance transform at the study's row and column spacing. One undo step.
        """
        from scipy import ndimage  # imported on first use: it costs start-up time

        arr = self._layer(layer)
        if mm == 0 or not arr.any():
            return EMPTY
        if mm > 0:
            new = ndimage.distance_transform_edt(~arr, sampling=self.spacing_mm) <= mm
        else:
            new = ndimage.distance_transform_edt(arr, sampling=self.spacing_mm) > -mm
        word = "Dilate" if mm > 0 else "Erode"
        return self.set_layer(layer, new, label or f"{word} {layer} by {abs(mm):g} mm")

    # -------------------------------------------------------------- nodules
    def nodule(self, nodule_id: int) -> Nodule:
        for n in self.nodules:
            if n.id == nodule_id:
                return n
        raise MaskError(f"no nodule with id {nodule_id}")

    def _disc_rect(self, n: Nodule) -> tuple[Rect, np.ndarray]:
        r = max(self.mm_to_px(n.diameter_mm) / 2.0, 0.5)
        rect = Rect(
            int(np.floor(n.y - r)), int(np.floor(n.x - r)),
            int(np.ceil(n.y + r)) + 1, int(np.ceil(n.x + r)) + 1,
        ).clip(self.shape)
        yy, xx = np.ogrid[rect.y0:rect.y1, rect.x0:rect.x1]
        return rect, (xx - n.x) ** 2 + (yy - n.y) ** 2 <= r * r

    def _draw_disc(self, n: Nodule, value: bool) -> Rect:
        rect, inside = self._disc_rect(n)
        if rect.empty:
            return EMPTY

        def fn(view: np.ndarray) -> None:
            view[inside] = value

        return self._edit("Nodule", NODULE, rect, fn)

    def _redraw_others(self, rect: Rect, skip: int) -> None:
        """Re-stamp nodules that overlap ``rect`` after a disc there was cleared."""
        for other in self.nodules:
            if other.id == skip:
                continue
            if _overlaps(self._disc_rect(other)[0], rect):
                self._draw_disc(other, True)

    def add_nodule(self, x: float, y: float, diameter_mm: float,
                   contrast: float | None = None) -> Nodule:
        """Stamp a nodule disc of ``diameter_mm`` centred at pixel (x, y) and keep it as an object."""
        if diameter_mm <= 0:
            raise MaskError("a nodule diameter must be positive")
        _check_contrast(contrast)
        if not (0 <= x < self.shape[1] and 0 <= y < self.shape[0]):
            raise MaskError(f"nodule centre ({x:.0f}, {y:.0f}) lies outside the image")
        if NODULE not in self._layers:
            self.add_layer(NODULE)
        own = self._pending is None
        if own:
            self.begin("Stamp nodule")
        n = Nodule(self._next_id, float(x), float(y), float(diameter_mm),
                   None if contrast is None else float(contrast))
        self._next_id += 1
        self.nodules.append(n)
        self._draw_disc(n, True)
        if own:
            self.commit()
        return n

    def update_nodule(
        self,
        nodule_id: int,
        *,
        x: float | None = None,
        y: float | None = None,
        diameter_mm: float | None = None,
    ) -> Nodule:
        """Move and/or resize a nodule as one undo step."""
        n = self.nodule(nodule_id)
        if diameter_mm is not None and diameter_mm <= 0:
            raise MaskError("a nodule diameter must be positive")
        own = self._pending is None
        if own:
            self.begin("Move nodule" if diameter_mm is None else "Resize nodule")
        old_rect = self._draw_disc(n, False)
        self._redraw_others(old_rect, skip=n.id)
        n.x = float(x) if x is not None else n.x
        n.y = float(y) if y is not None else n.y
        n.diameter_mm = float(diameter_mm) if diameter_mm is not None else n.diameter_mm
        self._draw_disc(n, True)
        if own:
            self.commit()
        return n

    def set_nodule_contrast(self, nodule_id: int, contrast: float | None) -> Nodule:
        """Set (or, with None, clear) the contrast edit mode draws a nodule to, as one undo step;
        the mask pixels do not change."""
        _check_contrast(contrast)
        n = self.nodule(nodule_id)
        own = self._pending is None
        if own:
            self.begin("Nodule contrast")
        n.contrast = None if contrast is None else float(contrast)
        if own:
            self.commit()
        self._emit(NODULE, self._disc_rect(n)[0])
        return n

    def remove_nodule(self, nodule_id: int) -> None:
        n = self.nodule(nodule_id)
        own = self._pending is None
        if own:
            self.begin("Delete nodule")
        rect = self._draw_disc(n, False)
        self.nodules = [m for m in self.nodules if m.id != nodule_id]
        self._redraw_others(rect, skip=nodule_id)
        if own:
            self.commit()
        self._emit(NODULE, rect)


def _check_contrast(contrast: float | None) -> None:
    if contrast is not None and not (np.isfinite(contrast) and 0 <= contrast <= 1):
        raise MaskError(f"a nodule contrast is a fraction of the value range in [0, 1], "
                        f"not {contrast}")


def _size_message(layer: str, got: tuple[int, ...], want: tuple[int, int]) -> str:
    size = f"is {got[1]} x {got[0]} pixels" if len(got) == 2 else f"has shape {got}"
    return (
        f"mask {layer!r} {size} but the image is {want[1]} x {want[0]} pixels; "
        "resize it or load the matching image"
    )


def _overlaps(a: Rect, b: Rect) -> bool:
    return a.y0 < b.y1 and b.y0 < a.y1 and a.x0 < b.x1 and b.x0 < a.x1


def _capsule(
    xx: np.ndarray, yy: np.ndarray, xa: float, ya: float, xb: float, yb: float, r: float
) -> np.ndarray:
    """Pixels within ``r`` of the segment (xa, ya)-(xb, yb)."""
    dx, dy = xb - xa, yb - ya
    length2 = dx * dx + dy * dy
    if length2 == 0:
        return (xx - xa) ** 2 + (yy - ya) ** 2 <= r * r
    t = np.clip(((xx - xa) * dx + (yy - ya) * dy) / length2, 0.0, 1.0)
    px, py = xa + t * dx, ya + t * dy
    return (xx - px) ** 2 + (yy - py) ** 2 <= r * r
