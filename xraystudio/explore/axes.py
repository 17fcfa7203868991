"""Sweep axes: ``NAME=VALUES`` parsed into typed values with labels, or one clear error.

Values are a comma list (``seed=1,2,3``, ``scheduler=ddim,dpm++``, ``layer.heart=on,off,+5mm``)
or a range ``START:STOP:COUNT`` of evenly spaced values including both ends
(``conditioning_scale=0.5:1.5:5`` is 0.5, 0.75, 1, 1.25, 1.5); integer axes also take
``START:STOP`` (every integer, both ends included). A mask layer axis ``layer.NAME`` takes ``on``
(as painted), ``off`` (the layer emptied: an ablation) and ``+N``/``-N`` (dilated or eroded by N
mm, ``mm`` optional). Every value is kept with the label the grid, the CSV and the project show.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from xraystudio.errors import SweepError
from xraystudio.synthesis.fullres import MAX_DETAIL_GAIN
from xraystudio.synthesis.spec import MAX_VARIATION, SCHEDULERS

MAX_VALUES = 25  # values on one axis
MAX_AXES = 3
AXIS_NAMES = ("x", "y", "z")
LAYER_PREFIX = "layer."

MODES = ("edit", "layout", "guided")  # = synthesis.engine.MODES


@dataclasses.dataclass(frozen=True)
class AxisKind:
    kind: str  # int, float, choice, onoff, layer, model
    help: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()


#: The parameters a sweep can vary; the keys are GenerationRequest fields where they are one.
KINDS: dict[str, AxisKind] = {
    "seed": AxisKind("int", "random seed", 0, 2**31 - 1),
    "conditioning_scale": AxisKind("float", "ControlNet conditioning scale", 0.0, 5.0),
    "control_start": AxisKind("float", "fraction of the steps before the ControlNet acts", 0.0, 1.0),
    "control_end": AxisKind("float", "fraction of the steps after which the ControlNet stops",
                            0.0, 1.0),
    "steps": AxisKind("int", "denoising steps", 1, 1000),
    "scheduler": AxisKind("choice", "sampler", choices=SCHEDULERS),
    "mode": AxisKind("choice", "generation mode", choices=MODES),
    "guide_strength": AxisKind("float", "guided mode: how much of the structure guide is given",
                               0.0, 1.0),
    "prior": AxisKind("onoff", "layout mode: start from the layout prior"),
    "variation": AxisKind("float", "layout mode: how far each seed's patient departs from the "
                          "prior's typical look", 0.0, MAX_VARIATION),
    "nodule_diameter": AxisKind("float", "diameter of every nodule in mm", 0.5, 100.0),
    "detail_gain": AxisKind("float", "full resolution: gain on rib edges and vessels (1 = as "
                            "the second stage draws them)", 0.25, MAX_DETAIL_GAIN),
    "model": AxisKind("model", "model folder ('builtin' for the built-in model)"),
}
ALIASES = {
    "conditioning": "conditioning_scale", "controlnet_conditioning_scale": "conditioning_scale",
    "start": "control_start", "end": "control_end", "sampler": "scheduler",
    "layout_prior": "prior", "guide": "guide_strength", "nodule": "nodule_diameter",
    "nodule_mm": "nodule_diameter", "diameter": "nodule_diameter", "detail": "detail_gain",
}
_ON = {"on", "true", "yes", "1"}
_OFF = {"off", "false", "no", "0"}
_MM = re.compile(r"^([+-])\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:mm)?$")


def known_axes() -> str:
    return ", ".join([*KINDS, "layer.<name>"])


def _fmt(v: float) -> str:
    return f"{v:g}"


def _number(text: str, kind: str, name: str) -> float | int:
    try:
        value = float(text)
    except ValueError:
        raise SweepError(f"{name}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise SweepError(f"{name}: {text!r} is not a finite number")
    if kind == "int":
        if value != int(value):
            raise SweepError(f"{name} takes whole numbers, got {text!r}")
        return int(value)
    return value


def _range(text: str, kind: str, name: str) -> list[float | int]:
    parts = [p.strip() for p in text.split(":")]
    if len(parts) not in (2, 3) or not all(parts):
        raise SweepError(f"{name}: a range is START:STOP:COUNT, got {text!r}")
    start, stop = (_number(p, "float", name) for p in parts[:2])
    if len(parts) == 2:
        if kind != "int":
            raise SweepError(f"{name}: give the number of values, e.g. "
                             f"{name}={parts[0]}:{parts[1]}:5")
        start, stop = _number(parts[0], "int", name), _number(parts[1], "int", name)
        step = 1 if stop >= start else -1
        count = abs(stop - start) + 1
        if count > MAX_VALUES:
            raise SweepError(f"{name}: {text!r} has {count} values; at most {MAX_VALUES}")
        return list(range(int(start), int(stop) + step, step))
    try:
        count = int(parts[2])
    except ValueError:
        raise SweepError(f"{name}: the count in {text!r} must be a whole number") from None
    if count < 1:
        raise SweepError(f"{name}: the count in {text!r} must be at least 1")
    if count > MAX_VALUES:
        raise SweepError(f"{name}: {count} values; at most {MAX_VALUES} on one axis")
    if count == 1:
        values = [start]
    else:
        values = [start + (stop - start) * i / (count - 1) for i in range(count)]
    if kind == "int":
        values = [int(round(v)) for v in values]
    else:
        values = [round(v, 6) for v in values]
    return values


def layer_value(text: str, name: str) -> str:
    """``on``, ``off`` or a signed distance such as ``+5mm`` (normalised)."""
    t = text.strip().lower()
    if t in _ON:
        return "on"
    if t in _OFF:
        return "off"
    m = _MM.match(t)
    if not m:
        raise SweepError(f"{name}: {text!r} is not on, off, +Nmm (dilate) or -Nmm (erode)")
    mm = float(m.group(2))
    if mm == 0:
        return "on"
    if mm > 200:
        raise SweepError(f"{name}: {text!r} is more than 200 mm")
    return f"{m.group(1)}{_fmt(mm)}mm"


def layer_mm(value: str) -> float | None:
    """The signed distance of a layer value in mm; None for on/off."""
    if value in ("on", "off"):
        return None
    return float(value[:-2])


@dataclasses.dataclass(frozen=True)
class Axis:
    """One swept parameter: its canonical name and values (with their labels)."""

    name: str
    values: tuple[Any, ...]
    labels: tuple[str, ...]

    @property
    def is_layer(self) -> bool:
        return self.name.startswith(LAYER_PREFIX)

    @property
    def layer(self) -> str | None:
        return self.name[len(LAYER_PREFIX):] if self.is_layer else None

    def __len__(self) -> int:
        return len(self.values)

    @property
    def text(self) -> str:
        return f"{self.name}={','.join(self.labels)}"

    def to_dict(self) -> dict:
        return {"name": self.name, "values": list(self.values), "labels": list(self.labels)}

    @classmethod
    def from_dict(cls, d: dict) -> Axis:
        return cls(str(d["name"]), tuple(d["values"]), tuple(str(v) for v in d["labels"]))


def canonical_name(raw: str) -> str:
    name = raw.strip().lower().replace("-", "_")
    if name.startswith(LAYER_PREFIX):
        layer = name[len(LAYER_PREFIX):]
        if not layer or not layer.replace("_", "").isalnum():
            raise SweepError(f"{raw!r}: a layer axis is layer.NAME with a mask layer name, "
                             "e.g. layer.heart")
        return name
    name = ALIASES.get(name, name)
    if name not in KINDS:
        raise SweepError(f"unknown sweep axis {raw.strip()!r}; choose from {known_axes()}")
    return name


def parse_axis(text: str) -> Axis:
    """``NAME=VALUES`` as an Axis, or a SweepError that says what is wrong."""
    if "=" not in text:
        raise SweepError(f"an axis is NAME=VALUES (e.g. conditioning_scale=0.5:1.5:5 or "
                         f"seed=1,2,3), got {text!r}")
    raw_name, raw_values = text.split("=", 1)
    name = canonical_name(raw_name)
    raw_values = raw_values.strip()
    if not raw_values:
        raise SweepError(f"{name}: no values given")
    kind = KINDS[name] if name in KINDS else AxisKind("layer", "mask layer")
    values: list[Any]
    if kind.kind in ("int", "float") and ":" in raw_values and "," not in raw_values:
        values = _range(raw_values, kind.kind, name)
    else:
        items = [v.strip() for v in raw_values.split(",")]
        if any(not v for v in items):
            raise SweepError(f"{name}: empty value in {raw_values!r}")
        if kind.kind in ("int", "float"):
            values = [_number(v, kind.kind, name) for v in items]
        elif kind.kind == "choice":
            values = []
            for v in items:
                if v.lower() not in kind.choices:
                    raise SweepError(f"{name}: {v!r} is not one of {', '.join(kind.choices)}")
                values.append(v.lower())
        elif kind.kind == "onoff":
            values = []
            for v in items:
                if v.lower() in _ON:
                    values.append(True)
                elif v.lower() in _OFF:
                    values.append(False)
                else:
                    raise SweepError(f"{name}: {v!r} is not on or off")
        elif kind.kind == "layer":
            values = [layer_value(v, name) for v in items]
        else:  # model
            values = [None if v.lower() in ("builtin", "built-in", "default") else v
                      for v in items]
    if len(values) > MAX_VALUES:
        raise SweepError(f"{name}: {len(values)} values; at most {MAX_VALUES} on one axis")
    if kind.lo is not None:
        for v in values:
            if not kind.lo <= v <= kind.hi:
                raise SweepError(f"{name}: {_fmt(v)} is outside {_fmt(kind.lo)}..{_fmt(kind.hi)}")
    labels = tuple(_label(v, kind.kind) for v in values)
    if len(set(labels)) != len(labels):
        dup = next(lab for lab in labels if labels.count(lab) > 1)
        raise SweepError(f"{name}: the value {dup} is given twice")
    return Axis(name, tuple(values), labels)


def _label(v: Any, kind: str) -> str:
    if kind == "onoff":
        return "on" if v else "off"
    if kind == "model":
        return "builtin" if v is None else str(v).rstrip("/").rsplit("/", 1)[-1] or str(v)
    if isinstance(v, float):
        return _fmt(v)
    return str(v)


def parse_axes(texts: list[str | None]) -> list[Axis]:
    """The x, y, z axes (None or empty skipped); names must differ, at most three."""
    axes = [parse_axis(t) for t in texts if t and t.strip()]
    if not axes:
        raise SweepError("a sweep needs at least one axis, e.g. --x conditioning_scale=0.5:1.5:5")
    if len(axes) > MAX_AXES:
        raise SweepError(f"a sweep has at most {MAX_AXES} axes (x, y, z), got {len(axes)}")
    names = [a.name for a in axes]
    for n in names:
        if names.count(n) > 1:
            raise SweepError(f"the axis {n} is given twice; sweep each parameter on one axis")
    return axes
