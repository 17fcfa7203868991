"""The one table from a scheduler's name to its diffusers class, for every network that samples.

The generator, the edit model and the full-resolution stage all sample over a diffusers noise
schedule; a name means the same sampler for each of them.
"""

from __future__ import annotations

from xraystudio.errors import GenerationError
from xraystudio.synthesis.spec import SCHEDULERS


def make_scheduler(config: dict, name: str, allowed: tuple[str, ...] = SCHEDULERS,
                   what: str = "this model"):
    """A sampling scheduler ``name`` over the noise schedule of ``config``."""
    from diffusers import (
        DDIMScheduler,
        DDPMScheduler,
        DPMSolverMultistepScheduler,
        EulerDiscreteScheduler,
        UniPCMultistepScheduler,
    )

    if name not in allowed:
        raise GenerationError(f"unknown scheduler {name!r} for {what}; choose one of {', '.join(allowed)}")
    if name == "dpm++":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++")
    classes = {"ddim": DDIMScheduler, "unipc": UniPCMultistepScheduler,
               "euler": EulerDiscreteScheduler, "ddpm": DDPMScheduler}
    return classes[name].from_config(config)
