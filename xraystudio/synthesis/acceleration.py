"""Running the denoising networks fast on a GPU: half precision, channels-last, compilation.

A small denoising network at 256 px needs about a millisecond of GPU arithmetic per step; run
eagerly it takes twenty, spent launching kernels one at a time. Compiling the network's forward
with ``torch.compile`` in its ``reduce-overhead`` mode (inductor kernels replayed as CUDA
graphs) removes most of that; channels-last memory and fp16 arithmetic make each kernel cheaper.

Each measure is applied to a network's ``forward`` only (the schedulers' arithmetic and the
noise stay in the precision they had), so the pipelines are unchanged and a run without them is
the same code. Everything is on by default on CUDA and off on the CPU, where compilation costs
minutes and gains little; ``optimize`` turns it on or off, and ``eager`` keeps the cheap measures
without compilation (the window's engine: a first Generate must not wait 30-60 s compiling,
and a window lives through many shapes and settings). A network whose compilation fails,
when it is built or at its first call, runs eagerly: the image still comes out, and the
provenance says what was used. Compilation happens once per process and network for the first
input shape and once more for any batch size (torch's own cache and automatic dynamic shapes;
CUDA graphs are recorded per shape); the time of each first call, compilation included, is counted apart
(``compile_seconds``) so that it is not mistaken for the per-image rate.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any

from xraystudio.errors import GenerationError
from xraystudio.synthesis.device import DeviceChoice

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: ``optimize`` values: auto (on for CUDA only), on (also on the CPU or MPS), off, and eager
#: (as auto without torch.compile: no start-up compilation).
OPTIMIZE = ("auto", "on", "off", "eager")
OPTIMIZE_HELP = ("GPU speed-ups of the denoising networks (fp16 autocast, channels-last, "
                 "torch.compile): auto (default: on CUDA only), on, off (also fp32 weights), "
                 "eager (as auto but never compiled: no start-up wait)")
#: torch.compile mode on CUDA: inductor kernels captured as CUDA graphs.
CUDA_COMPILE_MODE = "reduce-overhead"


@dataclasses.dataclass
class Acceleration:
    """What the engine does to its networks, and what came of it (one per engine)."""

    half: str | None  # "float16 autocast" (fp32 weights run in fp16), or None
    channels_last: bool
    compile: bool
    compile_mode: str | None = None
    compile_seconds: float = 0.0  # first calls per network and shape, compilation included
    failures: dict[str, str] = dataclasses.field(default_factory=dict)  # network -> why eager

    @classmethod
    def plan(cls, device: DeviceChoice, optimize: str = "auto") -> Acceleration:
        """On CUDA with ``auto``: all of it (fp16 autocast only where the weights are fp32
        and no precision was asked for: fp16 weights are half already). ``on`` elsewhere:
        channels-last and compilation, never a precision the user did not choose. ``eager``:
        as ``auto`` without compilation."""
        if optimize not in OPTIMIZE:
            raise GenerationError(f"optimize must be one of {', '.join(OPTIMIZE)}, got {optimize!r}")
        cuda = device.device.startswith("cuda")
        if optimize == "off" or (optimize in ("auto", "eager") and not cuda):
            return cls(half=None, channels_last=False, compile=False)
        if optimize == "eager":
            return cls(half="float16 autocast", channels_last=True, compile=False)
        return cls(half="float16 autocast" if cuda else None, channels_last=True, compile=True,
                   compile_mode=CUDA_COMPILE_MODE if cuda else None)

    @property
    def active(self) -> bool:
        return bool(self.half or self.channels_last or self.compile)

    def record(self, compile_seconds: float | None = None) -> dict:
        """For the provenance: what ran, and the compilation time of this call (``None``: the
        process's so far)."""
        if self.compile and len(self.failures) == 0:
            compiled = f"torch.compile ({self.compile_mode or 'default'})"
        elif self.compile:
            compiled = "partly eager: " + "; ".join(f"{k}: {v}" for k, v in self.failures.items())
        else:
            compiled = "off"
        return {"half": self.half or "off", "channels_last": self.channels_last,
                "compiled": compiled,
                "compile_seconds": round(self.compile_seconds if compile_seconds is None
                                         else compile_seconds, 3)}

    def apply(self, module: torch.nn.Module, name: str, weights_half: bool = False) -> None:
        """Make ``module``'s forward fast, in place (a no-op when nothing is on).

        ``weights_half``: its weights are fp16 or bf16 already, so no autocast is added.
        """
        if not self.active or getattr(module, "_xraystudio_fast", False):
            return
        import torch

        if self.channels_last:
            module.to(memory_format=torch.channels_last)
        module.forward = _FastForward(self, module.forward, name,
                                      None if weights_half else self.half)
        module._xraystudio_fast = True


class _FastForward:
    """A network's forward with the engine's measures; eager again if compilation fails."""

    def __init__(self, owner: Acceleration, eager, name: str, half: str | None) -> None:
        self.owner = owner
        self.eager = eager
        self.name = name
        self.half = half
        self.seen: set[tuple] = set()
        self.compiled = None
        if owner.compile:
            import torch

            try:
                _allow_recompiles()
                # dynamic=None: torch's default, a graph for the first shape, then one for any
                # batch size (edit rounds vary in their number of windows)
                self.compiled = torch.compile(self._forward, mode=owner.compile_mode)
            except Exception as exc:  # noqa: BLE001 - any failure means: run eagerly
                self._give_up(exc)

    def _give_up(self, exc: BaseException) -> None:
        why = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        log.warning("compiling %s failed, it runs eagerly: %s", self.name, why)
        self.owner.failures[self.name] = why
        self.compiled = None

    def _forward(self, *args, **kwargs):
        import torch

        args, kwargs = _map((args, kwargs), self._prepare)
        if self.half is None:
            return self.eager(*args, **kwargs)
        dtype = next((a.dtype for a in args if isinstance(a, torch.Tensor)), torch.float32)
        with torch.autocast("cuda", dtype=torch.float16):
            out = self.eager(*args, **kwargs)
        return _map(out, lambda t: t.to(dtype) if t.is_floating_point() else t)

    def _prepare(self, t):
        import torch

        if self.owner.channels_last and t.ndim == 4:
            return t.contiguous(memory_format=torch.channels_last)
        return t

    def __call__(self, *args, **kwargs):
        if self.compiled is None:
            return self._forward(*args, **kwargs)
        key = _signature((args, kwargs))
        first = key not in self.seen
        started = time.perf_counter()
        try:
            out = self.compiled(*args, **kwargs)
            if self.owner.compile_mode == CUDA_COMPILE_MODE:
                # A CUDA graph's outputs are overwritten by its next replay: keep copies.
                out = _map(out, lambda t: t.clone())
        except Exception as exc:  # noqa: BLE001
            if _out_of_memory(exc):
                raise
            self._give_up(exc)
            return self._forward(*args, **kwargs)
        if first:
            _synchronize(out)
            self.seen.add(key)
            self.owner.compile_seconds += time.perf_counter() - started
        return out


#: Graphs dynamo may keep per function: every network of every engine in a process shares the
#: code of ``_FastForward._forward``, and past torch's default of 8 it would silently run eagerly.
RECOMPILE_LIMIT = 64


def _allow_recompiles() -> None:
    import torch._dynamo.config as config

    for name in ("recompile_limit", "cache_size_limit"):  # the name changed in torch 2.7
        if isinstance(getattr(config, name, None), int):
            setattr(config, name, max(getattr(config, name), RECOMPILE_LIMIT))
            return


def _map(obj: Any, fn):
    """``fn`` over every tensor in nested tuples, lists and dicts (a network's in- and outputs)."""
    import torch

    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, tuple):
        return tuple(_map(o, fn) for o in obj)
    if isinstance(obj, list):
        return [_map(o, fn) for o in obj]
    if isinstance(obj, dict):  # diffusers' output classes are dicts built from keywords
        return type(obj)(**{k: _map(v, fn) for k, v in obj.items()})
    return obj


def _signature(obj: Any) -> tuple:
    """What a compiled graph is specialised on: the inputs' shapes and dtypes (and the
    presence of optional ones)."""
    import torch

    out: list = []

    def visit(o):
        if isinstance(o, torch.Tensor):
            out.append((tuple(o.shape), str(o.dtype)))
        elif isinstance(o, (tuple, list)):
            out.append(len(o))
            for x in o:
                visit(x)
        elif isinstance(o, dict):
            for k in sorted(o):
                out.append(k)
                visit(o[k])
        else:
            out.append(o if isinstance(o, (int, float, str, bool, type(None))) else type(o).__name__)

    visit(obj)
    return tuple(out)


def _synchronize(out: Any) -> None:
    import torch

    tensors: list = []
    _map(out, tensors.append)
    if tensors and tensors[0].is_cuda:
        torch.cuda.synchronize(tensors[0].device)


def _out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()
