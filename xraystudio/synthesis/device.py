"""Pick where and in which precision to run: CUDA, Apple MPS or the CPU, overridable."""

from __future__ import annotations

import dataclasses

from xraystudio.errors import GenerationError


@dataclasses.dataclass(frozen=True)
class DeviceChoice:
    device: str
    dtype: str  # weights: float32 / float16 / bfloat16
    autocast: str | None  # CPU bf16 autocast for speed, else None

    @property
    def label(self) -> str:
        extra = f", {self.autocast} autocast" if self.autocast else ""
        return f"{self.device} ({self.dtype}{extra})"


def cpu_has_fast_bf16() -> bool:
    """bf16 autocast pays off only with AMX/AVX512-BF16; elsewhere it is slower than fp32."""
    import torch

    try:
        cap = torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        return False
    return "AMX" in cap.upper() or "AVX512_BF16" in cap.upper()


def pick_device(name: str = "auto", precision: str = "auto") -> DeviceChoice:
    """``name``: auto, cpu, cuda, cuda:N or mps; ``precision``: auto, fp32, fp16, bf16."""
    import torch

    name = name.lower()
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GenerationError("CUDA was asked for but no CUDA GPU is available; use --device cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise GenerationError("Apple MPS was asked for but is not available; use --device cpu")
    if not (name == "cpu" or name == "mps" or name.startswith("cuda")):
        raise GenerationError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps")
    if name.startswith("cuda"):
        if precision in ("auto", "fp16"):
            return DeviceChoice(name, "float16", None)
        return DeviceChoice(name, "bfloat16" if precision == "bf16" else "float32", None)
    if name == "mps":
        return DeviceChoice(name, "float16" if precision == "fp16" else "float32", None)
    if precision == "bf16" or (precision == "auto" and cpu_has_fast_bf16()):
        return DeviceChoice("cpu", "float32", "bfloat16")
    return DeviceChoice("cpu", "float32", None)
