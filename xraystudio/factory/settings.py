"""What a synthesis run makes; the part that decides the pixels is its fingerprint."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from xraystudio import __version__


@dataclasses.dataclass
class SynthesisSettings:
    input: Path
    out: Path
    mode: str = "edit"  # edit | remove | layout (see factory.items.MODES)
    per_input: int = 1
    seed: int = 0
    batch: int = 4  # items per pipeline call (a unit)
    split: str = "all"  # for a JSRT-style input: all | train | val
    limit: int | None = None  # first N inputs only
    model: str | None = None  # model folder or name; None: the built-in model
    sampler: Path | None = None  # layout sampler file; None: the one beside the model
    steps: int | None = None
    scheduler: str | None = None
    device: str = "cpu"
    jsrt: bool = False  # also write the JSRT-style layout (to train the product's models)
    #: Use unlabelled films whose segmented lungs fail the chest check's plausibility test
    #: (films labelled as another body part or view are never used).
    keep_implausible: bool = False
    optimize: str = "auto"  # the engine's GPU measures (synthesis.acceleration)
    #: read inputs and write files in threads beside the model (the same files either way)
    overlap: bool = True
    #: layout mode: the side the model draws (None: the largest it draws; edit and remove
    #: modes keep the source's own size and refuse one)
    resolution: int | None = None

    def to_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v)
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> SynthesisSettings:
        d = dict(data)
        for key in ("input", "out", "sampler"):
            if d.get(key) is not None:
                d[key] = Path(d[key])
        return cls(**d)

    def fingerprint(self, model: dict, sampler_sha: str | None,
                    acceleration: dict | None = None, drawn_below_largest: int | None = None
                    ) -> dict:
        """Everything that changes an output file. Batch is part of it: the model sees a unit's
        windows together, and a batch of another size may round differently in the last bit;
        so are the GPU measures in use (``acceleration``: fp16 rounds otherwise), but not
        ``overlap``, which changes only when files are written. ``drawn_below_largest``: the
        side layout mode draws when it is not the largest the model draws (the default; an
        explicit largest side makes the same files, and a folder from before the setting
        keeps its fingerprint)."""
        return {
            # 2: every image air dark (MONOCHROME1 sources mirrored), films checked for a chest
            "format": 2,
            "software": f"xraystudio {__version__}",
            "model": model,
            "sampler_sha256": sampler_sha,
            "input": str(Path(self.input).resolve()),
            **{k: getattr(self, k) for k in ("mode", "per_input", "seed", "batch", "split",
                                             "limit", "steps", "scheduler", "jsrt",
                                             "keep_implausible")},
            **({"acceleration": acceleration} if acceleration else {}),
            **({"resolution": drawn_below_largest} if drawn_below_largest else {}),
        }
