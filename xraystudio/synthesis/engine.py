"""The engine: a generation request in, finished radiographs with provenance out.

One engine serves the GUI, the CLI and the evaluation. ``generate`` blocks; callers that must
stay responsive run it in a worker thread and pass a ``threading.Event`` to cancel. Progress is
reported after every denoising step; a cancelled run raises GenerationCancelled and returns no
image, so a half-denoised picture can never pass for a result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import logging
import secrets
import threading
import time
from collections.abc import Callable

import numpy as np

from xraystudio import __version__
from xraystudio.errors import GenerationCancelled, GenerationError
from xraystudio.image import XRayImage
from xraystudio.masks import LUNGS, MaskStack
from xraystudio.synthesis.condition import Letterbox, build_condition
from xraystudio.synthesis.device import DeviceChoice, pick_device
from xraystudio.synthesis.model import LoadedModel, load_model
from xraystudio.synthesis.spec import ModelSpec

log = logging.getLogger(__name__)

#: Images drawn together in one pipeline call (``Engine.max_batch``): enough to keep a GPU busy
#: with the built-in model; the CPU draws a batch as fast per image as one at a time.
MAX_BATCH = 16

#: edit: the source radiograph, changed only where nodules are added, moved or removed (native
#: resolution); layout: a new patient from the masks; guided: the whole image redrawn at the
#: model's working size over a 1/8 copy of the source.
MODES = ("edit", "layout", "guided")
#: Films the full-resolution stage draws per call on the CPU (memory; see Engine._fine).
FINE_CPU_BATCH = 4


@dataclasses.dataclass
class GenerationRequest:
    """What to generate. None means 'the model's default' for every tunable."""

    masks: MaskStack
    image: XRayImage | None = None
    mode: str | None = None
    seed: int | None = None
    n_images: int = 1
    steps: int | None = None
    scheduler: str | None = None
    guidance_scale: float | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    conditioning_scale: float | None = None
    control_start: float | None = None
    control_end: float | None = None
    preview_every: int = 0  # 0: no previews; k: a preview every k steps
    prior: bool | None = None  # layout mode over the model's layout prior (None: if it has one)
    #: guided mode: how much of the structure guide the model sees, 0 (none: as layout mode
    #: without prior) to 1 (all, the default); the guide and its flag channel are scaled together.
    guide_strength: float | None = None
    #: layout and guided modes: the side of the square the model draws, the model's working
    #: size or, with a full-resolution stage, that size times its scale (None: the largest).
    resolution: int | None = None
    #: films drawn at full resolution: the stage's gain on rib edges and vessels (6-11 mm,
    #: ``fullres.restore_detail``; 1 = as the stage draws; None: the stage's tuned value).
    detail_gain: float | None = None
    #: layout mode over a prior with a variation: how far each seed's patient departs from the
    #: prior's typical look, in units of real films' spread (0: the typical look; None: the
    #: model's default).
    variation: float | None = None


@dataclasses.dataclass(frozen=True)
class Progress:
    image_index: int  # the first of the images drawn together (``batch`` of them)
    n_images: int
    step: int
    total: int
    elapsed_s: float
    eta_s: float
    preview: np.ndarray | None = None  # of the first image of the batch
    stage: str = ""  # layout and guided at full resolution: "coarse", then "full resolution"
    batch: int = 1  # images drawn together in this pipeline call

    @property
    def fraction(self) -> float:
        done = self.image_index * self.total + self.step * self.batch
        return done / max(1, self.n_images * self.total)


@dataclasses.dataclass
class Result:
    image: np.ndarray  # float32 [0, 1], at the source size
    #: float32 [0, 1], the square the model drew (full resolution when drawn so; edit: the
    #: source size)
    working: np.ndarray
    condition: np.ndarray  # (C, S, S) model input (edit: the first window's)
    seed: int
    provenance: dict
    values: np.ndarray | None = None  # edit: modality values as the source's format stores them
    changed: np.ndarray | None = None  # edit: where pixels may differ from the source


ProgressCallback = Callable[[Progress], None]


def _scheduler(pipe, name: str):
    from xraystudio.synthesis.schedulers import make_scheduler

    return make_scheduler(pipe.scheduler.config, name)


class Engine:
    """A loaded model on a device, ready to generate."""

    def __init__(self, model: LoadedModel, device: DeviceChoice, optimize: str = "off",
                 max_batch: int = MAX_BATCH) -> None:
        """``optimize`` is off for an engine built around networks someone else owns (a
        training loop's); ``load`` turns it on for CUDA."""
        from xraystudio.synthesis.acceleration import Acceleration

        self.model = model
        self.device = device
        #: images (edit mode: images' windows) per pipeline call
        self.max_batch = max(1, int(max_batch))
        self.acceleration = Acceleration.plan(device, optimize)
        self._lock = threading.Lock()
        self._edit_pipe = None
        self._fullres_pipe = None
        pipe = model.pipe
        half_weights = device.dtype != "float32"
        for name in ("unet", "controlnet"):
            if getattr(pipe, name, None) is not None:
                self.acceleration.apply(getattr(pipe, name), name, half_weights)

    @classmethod
    def load(
        cls,
        model_ref: str | None = None,
        device: str = "auto",
        precision: str = "auto",
        allow_download: bool = False,
        optimize: str = "auto",
        max_batch: int = MAX_BATCH,
    ) -> Engine:
        """``optimize`` (auto, on, off): the GPU measures of ``synthesis.acceleration``; off
        also means plain fp32 (no fp16 weights on CUDA, no bf16 autocast on a CPU) unless
        ``precision`` asks for another."""
        import torch

        if optimize == "off" and precision == "auto":
            precision = "fp32"
        choice = pick_device(device, precision)
        model = load_model(model_ref, device=choice.device, dtype=getattr(torch, choice.dtype),
                           allow_download=allow_download)
        log.info("loaded %s on %s", model.spec.name, choice.label)
        return cls(model, choice, optimize, max_batch)

    @property
    def spec(self) -> ModelSpec:
        return self.model.spec

    @property
    def has_edit(self) -> bool:
        from pathlib import Path

        from xraystudio.synthesis.edit_pipeline import EDIT_FOLDER

        return (Path(self.model.source) / EDIT_FOLDER).is_dir()

    @property
    def edit_pipe(self):
        """The model folder's edit model (``edit/``), loaded on first use."""
        if self._edit_pipe is None:
            if not self.has_edit:
                raise GenerationError(f"{self.spec.name} has no edit model; use layout or guided mode")
            from xraystudio.synthesis.edit_pipeline import load_edit_model

            self._edit_pipe = load_edit_model(self.model.source, self.device.device)
            self.acceleration.apply(self._edit_pipe.unet, "edit unet")
        return self._edit_pipe

    @property
    def has_fullres(self) -> bool:
        return len(self.resolutions) > 1

    @property
    def fullres_pipe(self):
        """The model folder's full-resolution stage (``fullres/``), loaded on first use."""
        if self._fullres_pipe is None:
            if not self.has_fullres:
                raise GenerationError(f"{self.spec.name} has no full-resolution stage")
            from xraystudio.synthesis.fullres import load_fullres_model

            self._fullres_pipe = load_fullres_model(self.model.source, self.device.device)
            self.acceleration.apply(self._fullres_pipe.unet, "fullres unet")
        return self._fullres_pipe

    @functools.cached_property
    def resolutions(self) -> tuple[int, ...]:
        """The sides layout and guided modes can draw, smallest first (read once, not on
        every request)."""
        from xraystudio.synthesis.fullres import model_resolutions

        return model_resolutions(self.model.source, self.spec.kind, self.spec.resolution)

    def drawn_resolution(self, mode: str, requested: int | None) -> int | None:
        """The side ``mode`` draws at when ``requested`` is asked for (None: the largest the
        model draws); None for edit mode, which keeps the source's own size and refuses a
        resolution. The one rule for requests and for ``synthesize``, which checks it up front."""
        if mode == "edit":
            if requested is not None:
                raise GenerationError("edit mode draws at the source's own resolution; "
                                      "a resolution applies to layout and guided modes")
            return None
        sizes = self.resolutions
        size = sizes[-1] if requested is None else int(requested)
        if size not in sizes:
            raise GenerationError(f"{self.spec.name} draws at {' or '.join(map(str, sizes))} px,"
                                  f" not {size}")
        return size

    def _settings(self, req: GenerationRequest) -> dict:
        d = self.spec.defaults
        if req.mode:
            mode = req.mode
        elif req.image is None:
            mode = "layout"
        else:
            mode = "edit" if self.has_edit else d.mode
        if mode not in MODES:
            raise GenerationError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode == "edit" and req.image is None:
            raise GenerationError("edit mode needs a source radiograph")
        if mode == "guided":
            if not self.spec.supports_guide:
                raise GenerationError(f"{self.spec.name} has no guided mode; use layout mode")
            if req.image is None:
                raise GenerationError("guided mode needs a source radiograph")
        has_prior = self.model.prior is not None
        if req.prior and not has_prior:
            raise GenerationError(f"{self.spec.name} has no layout prior")
        s = {
            "mode": mode,
            "prior": mode == "layout" and (has_prior if req.prior is None else bool(req.prior)),
            "steps": int(d.steps if req.steps is None else req.steps),
            "scheduler": d.scheduler if req.scheduler is None else req.scheduler,
            "conditioning_scale": float(d.conditioning_scale if req.conditioning_scale is None
                                        else req.conditioning_scale),
            "control_start": float(d.control_start if req.control_start is None else req.control_start),
            "control_end": float(d.control_end if req.control_end is None else req.control_end),
        }
        if self.spec.takes_text:
            s["guidance_scale"] = float(d.guidance_scale if req.guidance_scale is None
                                        else req.guidance_scale)
            s["prompt"] = self.spec.prompt if req.prompt is None else req.prompt
            s["negative_prompt"] = (self.spec.negative_prompt if req.negative_prompt is None
                                    else req.negative_prompt)
        variation = self._variation(req, s["prior"])
        if variation is not None:
            s["variation"] = variation
        if req.guide_strength is not None:
            if mode != "guided":
                raise GenerationError("guide strength applies to guided mode only")
            if not 0 <= float(req.guide_strength) <= 1:
                raise GenerationError("guide strength must be between 0 and 1")
            s["guide_strength"] = float(req.guide_strength)
        size = self.drawn_resolution(mode, req.resolution)
        if size is not None:
            s["resolution"] = size
        if req.detail_gain is not None:
            from xraystudio.synthesis.fullres import MAX_DETAIL_GAIN

            if size is None or size <= self.spec.resolution:
                raise GenerationError("the detail gain applies to films drawn at full resolution")
            if not 0 < float(req.detail_gain) <= MAX_DETAIL_GAIN:
                raise GenerationError(f"the detail gain must be above 0 and at most {MAX_DETAIL_GAIN:g}")
            s["detail_gain"] = float(req.detail_gain)
        if not 1 <= s["steps"] <= 1000:
            raise GenerationError("steps must be between 1 and 1000")
        if not 0 <= s["control_start"] < s["control_end"] <= 1:
            raise GenerationError("control start/end must satisfy 0 <= start < end <= 1")
        if req.n_images < 1:
            raise GenerationError("the number of images must be at least 1")
        return s

    def _variation(self, req: GenerationRequest, prior: bool) -> float | None:
        """Layout mode's variation (None where it does not apply: no prior, or a prior without
        one, asked for nothing)."""
        from xraystudio.synthesis.spec import MAX_VARIATION

        has = prior and self.model.prior.has_variation
        if req.variation is None:
            return float(self.spec.defaults.variation) if has else None
        if not 0 <= float(req.variation) <= MAX_VARIATION:
            raise GenerationError(f"the variation must be between 0 and {MAX_VARIATION:g}")
        if not prior:
            raise GenerationError("the variation applies to layout mode over the layout prior")
        if not has and float(req.variation):
            raise GenerationError(f"{self.spec.name}'s layout prior has no variation "
                                  "(fit one with `xraystudio fit-variation`)")
        return float(req.variation)

    def conditions(self, req: GenerationRequest, s: dict, seeds: list[int]) -> list[np.ndarray]:
        """The model input for each seed: one shared input, unless layout mode draws each seed's
        own patient around the prior's picture."""
        if not s.get("variation"):
            return [self.condition(req, s["mode"], s["prior"], s.get("resolution"))] * len(seeds)
        return [self.condition(req, s["mode"], s["prior"], s.get("resolution"), s["variation"], seed)
                for seed in seeds]

    def condition(self, req: GenerationRequest, mode: str, prior: bool = False,
                  resolution: int | None = None, variation: float = 0.0,
                  seed: int = 0) -> np.ndarray:
        """The model input; with ``prior`` (layout mode) the guide is the layout prior's picture,
        with ``variation`` one patient drawn around it by ``seed``.
        Drawn at ``resolution`` above the working size, the nodule smudges are the
        full-resolution stage's (``FullresSpec.smudges``)."""
        spec = self.spec
        if resolution is not None and resolution > spec.resolution:
            spec = dataclasses.replace(spec, **self.fullres_pipe.spec.smudges())
        display = req.image.display() if (mode == "guided" and req.image is not None) else None
        cond = build_condition(spec, req.masks, display)
        if display is not None and req.guide_strength is not None and spec.supports_guide:
            cond[len(spec.layers):] *= np.float32(req.guide_strength)
        if prior:
            from xraystudio.synthesis.prior import with_prior_guide

            cond = with_prior_guide(cond, spec, self.model.prior,
                                    Letterbox(req.masks.shape, spec.resolution), variation, seed)
        return cond

    def generate(
        self,
        req: GenerationRequest,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> list[Result]:
        """Generate ``req.n_images`` images (seeds ``seed``, ``seed + 1``, ...), up to
        ``max_batch`` of them per pipeline call, each the image its seed gives alone."""
        settings = self._settings(req)
        base_seed = secrets.randbits(31) if req.seed is None else int(req.seed)
        if settings["mode"] == "edit":
            return self._edit(req, settings, base_seed, progress, cancel)
        seeds = [base_seed + k for k in range(req.n_images)]
        return self._draw([req] * req.n_images, self.conditions(req, settings, seeds), seeds,
                          settings, progress, cancel)

    def generate_batch(self, reqs: list[GenerationRequest],
                       progress: ProgressCallback | None = None,
                       cancel: threading.Event | None = None) -> list[Result]:
        """One image for each request, drawn together (``max_batch`` per pipeline call) so a
        GPU is kept busy (layout and guided modes; edit batching is
        ``synthesis.edit.run_edits``).

        Each request needs its own seed and the same settings as the others; its image is the
        one ``generate`` makes for it alone (every sample has its own noise generator).
        """
        if not reqs:
            return []
        s = self._settings(reqs[0])
        if not self.batchable(reqs):
            raise GenerationError("a batch is for layout or guided mode, one image per request "
                                  "with a seed each, and the same settings")
        conds = [self.conditions(r, s, [int(r.seed)])[0] for r in reqs]
        return self._draw(reqs, conds, [int(r.seed) for r in reqs], s, progress, cancel)

    def batchable(self, reqs: list[GenerationRequest]) -> bool:
        """Whether ``generate_batch`` draws these requests together: layout or guided mode,
        one image each with its own seed, settings alike (masks and seeds may differ)."""
        try:
            settings = [self._settings(r) for r in reqs]
        except GenerationError:
            return False
        return (all(s == settings[0] for s in settings) and settings[0]["mode"] != "edit"
                and all(r.n_images == 1 and r.seed is not None for r in reqs))

    def _draw(self, reqs: list[GenerationRequest], conds: list[np.ndarray], seeds: list[int],
              s: dict, progress: ProgressCallback | None,
              cancel: threading.Event | None) -> list[Result]:
        """Layout and guided modes: image k from ``conds[k]`` and ``seeds[k]``, ``max_batch``
        per pipeline call, each call through the full-resolution stage when asked for."""
        pipe = self.model.pipe
        pipe.scheduler = _scheduler(pipe, s["scheduler"])
        started = time.perf_counter()
        coarse_steps = s["steps"]
        fine = s["resolution"] > self.spec.resolution
        total = coarse_steps + (self.fullres_pipe.spec.steps if fine else 0)
        n = len(reqs)
        preview_every = max(r.preview_every for r in reqs)
        results: list[Result] = []
        with self._lock:
            for first in range(0, n, self.max_batch):
                chunk = slice(first, min(n, first + self.max_batch))
                size = chunk.stop - first
                chunk_started = time.perf_counter()
                compiled_before = self.acceleration.compile_seconds

                def report(done: int, stage: str, preview: np.ndarray | None = None,
                           first: int = first, size: int = size) -> None:
                    if progress is None:
                        return
                    elapsed = time.perf_counter() - started
                    all_done = first * total + done * size
                    eta = elapsed / max(all_done, 1) * (n * total - all_done)
                    progress(Progress(first, n, done, total, elapsed, eta, preview,
                                      stage if fine else "coarse", size))

                def on_step(p, i, t, kwargs):
                    if cancel is not None and cancel.is_set():
                        p._interrupt = True
                    preview = None
                    if preview_every and ((i + 1) % preview_every == 0 or i + 1 == coarse_steps):
                        preview = self._preview(kwargs.get("latents"))
                    report(i + 1, "coarse", preview)
                    return kwargs

                with self._memory_errors():
                    working = self._run(np.stack(conds[chunk]), seeds[chunk], s, on_step)
                if working is None or (cancel is not None and cancel.is_set()):
                    raise GenerationCancelled("generation cancelled; no image was kept")
                if fine:
                    report(coarse_steps, "full resolution", working[0] if preview_every else None)

                    def on_fine(i: int, _n: int) -> bool:
                        report(coarse_steps + i, "full resolution")
                        return cancel is not None and cancel.is_set()

                    with self._memory_errors():
                        working = self._fine(working, seeds[chunk], on_fine, s.get("detail_gain"))
                    if working is None:
                        raise GenerationCancelled("generation cancelled; no image was kept")
                compile_s = self.acceleration.compile_seconds - compiled_before
                seconds = (time.perf_counter() - chunk_started - compile_s) / size
                for req, cond, seed, work in zip(reqs[chunk], conds[chunk], seeds[chunk], working):
                    box = Letterbox(req.masks.shape, work.shape[0])
                    prov = self._provenance(req, s, seed, cond, seconds, size, compile_s)
                    results.append(Result(image=np.clip(box.from_working(work), 0, 1),
                                          working=work, condition=cond, seed=seed,
                                          provenance=prov))
        return results

    def _fine(self, coarse: np.ndarray, seeds: list[int], on_step=None,
              detail_gain: float | None = None) -> np.ndarray | None:
        """(B, S, S) coarse pictures in [0, 1] -> (B, S·scale, S·scale) films in [0, 1].

        On the CPU at most ``FINE_CPU_BATCH`` films go through at once: a 1024 px film holds
        about 150 MB of activations, so 16 at once would pass the 3 GB budget. ``on_step`` sees
        the steps of the whole batch (0 to the stage's steps) whatever the split.
        """
        per_call = len(seeds) if self.device.device != "cpu" else FINE_CPU_BATCH
        calls = range(0, len(seeds), per_call)
        films = []
        for j, first in enumerate(calls):
            def step(i: int, n: int, j: int = j) -> bool:
                return on_step is not None and bool(on_step((j * n + i) // len(calls), n))

            out = self.fullres_pipe(coarse[first:first + per_call] * 2.0 - 1.0,
                                    seeds[first:first + per_call], on_step=step,
                                    autocast=self.device.autocast, detail_gain=detail_gain)
            if out is None:
                return None
            films.append(out)
        return ((np.concatenate(films) + 1.0) / 2.0).clip(0, 1).astype(np.float32)

    @contextlib.contextmanager
    def _memory_errors(self):
        """An out-of-memory error becomes advice; the device's cache is freed first."""
        import torch

        try:
            yield
        except GenerationCancelled:
            raise
        except torch.OutOfMemoryError as exc:  # type: ignore[attr-defined]
            self._free()
            raise GenerationError(
                f"the {self.device.device} ran out of memory; generate fewer images at once, "
                "close other GPU programs, or use --device cpu"
            ) from exc
        except RuntimeError as exc:
            if "out of memory" in str(exc).lower():
                self._free()
                raise GenerationError(
                    f"the {self.device.device} ran out of memory; generate fewer images "
                    "at once or use --device cpu"
                ) from exc
            raise

    def _edit(self, req: GenerationRequest, settings: dict, base_seed: int,
              progress: ProgressCallback | None, cancel: threading.Event | None) -> list[Result]:
        """Edit mode: the source changed only at the study's edits (see synthesis.edit);
        ``max_batch`` images' windows go through the model together."""
        from xraystudio.synthesis.edit import EditTask, plan_from_masks, run_edits

        pipe = self.edit_pipe
        steps = settings["steps"] if req.steps is not None else pipe.spec.steps
        scheduler = req.scheduler or pipe.spec.scheduler
        settings = {"mode": "edit", "steps": steps, "scheduler": scheduler}
        plan = plan_from_masks(req.masks)
        started = time.perf_counter()
        n = req.n_images
        results = []
        with self._lock:
            for first in range(0, n, self.max_batch):
                size = min(n, first + self.max_batch) - first
                chunk_started = time.perf_counter()
                compiled_before = self.acceleration.compile_seconds

                def on_step(i: int, total: int, first: int = first, size: int = size) -> None:
                    if progress is not None:
                        elapsed = time.perf_counter() - started
                        done = first * total + i * size
                        eta = elapsed / max(done, 1) * (n * total - done)
                        progress(Progress(first, n, i, total, elapsed, eta, batch=size))

                tasks = [EditTask(req.image, req.masks, plan, base_seed + k)
                         for k in range(first, first + size)]
                with self._memory_errors():
                    outs = run_edits(pipe, tasks, steps, scheduler, on_step, cancel)
                compile_s = self.acceleration.compile_seconds - compiled_before
                seconds = (time.perf_counter() - chunk_started - compile_s) / size
                for task, out in zip(tasks, outs):
                    display = dataclasses.replace(req.image, values=out.values).display()
                    cond = out.conditions[0]
                    prov = self._provenance(req, settings, task.seed, cond, seconds, size,
                                            compile_s)
                    prov["model"]["edit_weights_sha256"] = pipe.weights_hash
                    prov["model"]["edit_settings"] = pipe.spec.tuned()
                    prov["edits"] = out.describe()
                    prov["changed_pixels"] = int(out.changed.sum())
                    results.append(Result(image=display, working=display, condition=cond,
                                          seed=task.seed, provenance=prov, values=out.values,
                                          changed=out.changed))
        return results

    def _run(self, conds: np.ndarray, seeds: list[int], s: dict,
             on_step) -> np.ndarray | None:
        """Denoise the (B, C, S, S) conditions, sample k from seed k: (B, S, S) in [0, 1], or
        None when interrupted."""
        import torch

        pipe = self.model.pipe
        device = torch.device(self.device.device)
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
        autocast = (
            torch.autocast("cpu", dtype=torch.bfloat16) if self.device.autocast == "bfloat16"
            else contextlib.nullcontext()
        )
        cond_t = torch.from_numpy(conds)
        with torch.inference_mode(), autocast:
            if self.spec.kind == "pixel":
                out = pipe(
                    cond_t.to(device), num_inference_steps=s["steps"], generator=generators,
                    controlnet_conditioning_scale=s["conditioning_scale"],
                    control_guidance_start=s["control_start"],
                    control_guidance_end=s["control_end"], callback_on_step_end=on_step,
                )
                if out is None:
                    return None
                return ((out[:, 0].float().cpu().numpy() + 1.0) / 2.0).clip(0, 1).astype(np.float32)
            n = len(seeds)
            out = pipe(
                prompt=[s["prompt"]] * n,
                negative_prompt=[s["negative_prompt"]] * n if s["negative_prompt"] else None,
                image=cond_t.to(device, dtype=pipe.unet.dtype),
                height=self.spec.resolution, width=self.spec.resolution,
                num_inference_steps=s["steps"], guidance_scale=s["guidance_scale"],
                controlnet_conditioning_scale=s["conditioning_scale"],
                control_guidance_start=s["control_start"], control_guidance_end=s["control_end"],
                generator=generators, output_type="np", callback_on_step_end=on_step,
            )
            if pipe.interrupt:
                return None
            return np.asarray(out.images, np.float32).mean(axis=-1).clip(0, 1)

    def _preview(self, latents) -> np.ndarray | None:
        """A cheap look at the current sample (pixel models only; latents need the VAE)."""
        if latents is None or self.spec.kind != "pixel":
            return None
        from xraystudio.synthesis.pipelines import unpack

        arr = unpack(latents[:1].float(), self.model.pipe.patch)[0, 0].cpu().numpy()
        return ((arr + 1.0) / 2.0).clip(0, 1).astype(np.float32)

    def _free(self) -> None:
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _fullres_provenance(self, s: dict) -> dict:
        """What resolution the model really drew, and with which stage."""
        if "resolution" not in s:
            return {}
        out: dict = {"drawn_resolution": s["resolution"]}
        if s["resolution"] > self.spec.resolution:
            fine = self.fullres_pipe
            settings = fine.spec.tuned()
            if "detail_gain" in s:
                settings["detail_gain"] = s["detail_gain"]
            out["fullres"] = {"weights_sha256": fine.weights_hash, "scale": fine.spec.scale,
                              "settings": settings}
        return out

    def _provenance(self, req: GenerationRequest, s: dict, seed: int, cond: np.ndarray,
                    seconds: float, batch: int = 1, compile_seconds: float = 0.0) -> dict:
        import hashlib

        image = req.image
        return {
            "synthetic": True,
            "software": f"xraystudio {__version__}",
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "model": {"name": self.spec.name, "kind": self.spec.kind, "source": self.model.source,
                      "weights_sha256": self.model.weights_hash,
                      "resolution": self.spec.resolution, **self._fullres_provenance(s)},
            "parameters": {**s, "seed": seed, "n_images": req.n_images},
            "device": self.device.label,
            "batch": batch,  # images drawn together (the same pixels as one at a time)
            "acceleration": self.acceleration.record(compile_seconds),
            "seconds": round(seconds, 3),  # per image, without compilation
            "mask_hash": req.masks.content_hash(),
            "condition_hash": hashlib.sha256(cond.tobytes()).hexdigest()[:16],
            "nodules": [n.to_dict() for n in req.masks.nodules],
            "source_image": None if image is None else {
                "file": image.source.name if image.source else None,
                "pixel_hash": image.pixel_hash(),
                "size": [image.shape[1], image.shape[0]],
                "spacing_mm": list(req.masks.spacing_mm),
            },
        }


def compare_with_source(result: Result, image: XRayImage, masks: MaskStack) -> dict[str, float]:
    """PSNR/SSIM of a result against its source at the model's working size (global and lungs).

    Comparing at the working size measures what the model made, not the upsampling back to a
    3000 px source; it is the resolution the evaluation reports.
    """
    from xraystudio.metrics import compare

    box = Letterbox(masks.shape, result.working.shape[0])
    ref = box.crop(box.to_working(image.display()))
    gen = box.crop(result.working)
    lungs = box.crop(box.working_mask(masks.union(LUNGS)))
    return compare(ref, gen, lungs if lungs.any() else None)
