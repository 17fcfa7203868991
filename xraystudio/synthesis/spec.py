"""ModelSpec: the ``xraystudio.json`` that tells the engine how to drive a model folder.

A ControlNet only makes sense with the condition it was trained on, so the folder says which
mask layers feed which input channel (or which colour, for 3-channel ControlNets trained on
colour-coded masks), the working resolution, whether a structure guide is supported, and the
prompt for models that take text. Unknown keys are refused so typos do not pass silently.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from xraystudio.errors import ModelError
from xraystudio.io.atomic import write_text
from xraystudio.masks import STRUCTURES

SPEC_FILE = "xraystudio.json"
KINDS = ("pixel", "stable-diffusion")
ENCODINGS = ("channels", "rgb")
SCHEDULERS = ("dpm++", "ddim", "unipc", "euler", "ddpm")
#: Layout mode's variation is in units of how far real films spread around the prior's picture;
#: beyond twice that the guide leaves what the ControlNet has seen.
MAX_VARIATION = 2.0

#: Colours of the usual anatomy colour coding of 3-channel ControlNets (RGB, 0-255).
DEFAULT_COLORS: dict[str, tuple[int, int, int]] = {
    "right_lung": (0, 0, 255),
    "left_lung": (0, 255, 0),
    "heart": (255, 0, 0),
    "right_clavicle": (255, 255, 0),
    "left_clavicle": (0, 255, 255),
    "nodule": (255, 255, 255),
}


@dataclasses.dataclass
class Defaults:
    steps: int = 20
    scheduler: str = "dpm++"
    guidance_scale: float = 1.0
    conditioning_scale: float = 1.0
    control_start: float = 0.0
    control_end: float = 1.0
    mode: str = "layout"
    #: Layout mode over a prior with a variation: how far each seed's patient departs from the
    #: typical look (0: the typical look itself; 1: as far as real films do).
    variation: float = 0.0


@dataclasses.dataclass
class ModelSpec:
    """The contents of ``xraystudio.json`` (see the README's model folder section)."""

    name: str
    kind: str = "pixel"
    resolution: int = 256
    spacing_mm: float | None = None
    encoding: str = "channels"
    layers: list[str] = dataclasses.field(default_factory=lambda: list(STRUCTURES))
    colors: dict[str, tuple[int, int, int]] = dataclasses.field(default_factory=dict)
    guide_factor: int | None = None
    guide_nodule_contrast: float = 0.0
    #: The smudge's contrast in layout mode's prior picture (None: ``guide_nodule_contrast``).
    #: The ControlNet reads a prior's guide (flag 0.5) apart from a real one, and draws a
    #: fainter nodule from the same smudge there, so the two are set apart.
    layout_nodule_contrast: float | None = None
    #: The smudge in layout mode's guide when it is drawn with a variation: that guide is
    #: flagged as a real one, and the ControlNet draws from it as it does in guided mode, but
    #: not quite (None: ``guide_nodule_contrast``).
    varied_nodule_contrast: float | None = None
    patch: int = 1
    prompt: str = ""
    negative_prompt: str = ""
    base: str | None = None
    controlnet: str | None = None
    base_config: str | None = None
    description: str = ""
    defaults: Defaults = dataclasses.field(default_factory=Defaults)
    format_version: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ModelError(f"model kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.encoding not in ENCODINGS:
            raise ModelError(f"condition encoding must be channels or rgb, got {self.encoding!r}")
        if self.resolution < 16 or self.resolution % 8:
            raise ModelError(f"resolution must be a multiple of 8 and >= 16, got {self.resolution}")
        if self.patch < 1 or self.resolution % (8 * self.patch):
            raise ModelError("patch must be >= 1 and resolution a multiple of 8 x patch")
        if self.guide_factor is not None and (
            self.guide_factor < 2 or self.resolution % self.guide_factor
        ):
            raise ModelError("guide_factor must be >= 2 and divide the resolution")
        if min(self.guide_nodule_contrast, self.layout_nodule_contrast or 0,
               self.varied_nodule_contrast or 0) < 0:
            raise ModelError("nodule contrasts in the guide must be >= 0")
        if self.encoding == "rgb":
            self.colors = {k: tuple(v) for k, v in (self.colors or DEFAULT_COLORS).items()}
            self.layers = list(self.colors)
        if self.defaults.scheduler not in SCHEDULERS:
            raise ModelError(f"unknown default scheduler {self.defaults.scheduler!r}")
        if not 0 <= self.defaults.variation <= MAX_VARIATION:
            raise ModelError(f"the default variation must be between 0 and {MAX_VARIATION:g}")

    @property
    def supports_guide(self) -> bool:
        return self.guide_factor is not None and self.encoding == "channels"

    @property
    def condition_channels(self) -> int:
        """Input channels of the ControlNet: one per layer, plus guide and guide flag."""
        if self.encoding == "rgb":
            return 3
        return len(self.layers) + (2 if self.supports_guide else 0)

    @property
    def takes_text(self) -> bool:
        return self.kind == "stable-diffusion"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "xraystudio.json") -> ModelSpec:
        data = dict(data)
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ModelError(f"{source}: unknown keys {sorted(unknown)}; known: {sorted(fields)}")
        if "name" not in data:
            raise ModelError(f"{source}: a model needs a 'name'")
        try:
            data["defaults"] = Defaults(**(data.get("defaults") or {}))
        except TypeError as exc:
            raise ModelError(f"{source}: bad 'defaults': {exc}") from exc
        try:
            return cls(**data)
        except TypeError as exc:
            raise ModelError(f"{source}: {exc}") from exc

    @classmethod
    def read(cls, folder: str | os.PathLike) -> ModelSpec:
        path = Path(folder) / SPEC_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"{folder}: no {SPEC_FILE}; this folder is not an xraystudio model") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"{path}: cannot be read ({exc})") from exc
        return cls.from_dict(data, str(path))

    def write(self, folder: str | os.PathLike) -> None:
        write_text(Path(folder) / SPEC_FILE, json.dumps(self.to_dict(), indent=2) + "\n")
