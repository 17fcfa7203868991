"""The generation handler of the engine process, and the loaded engines it keeps between jobs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from xraystudio.engine.protocol import EventKind, GeneratedImage, Job
from xraystudio.engine.shared import SharedArray
from xraystudio.errors import GenerationCancelled
from xraystudio.image import XRayImage
from xraystudio.masks import MaskStack

Send = Callable[..., None]  # send(EventKind, *args)


def engine_for(cache: dict, model_ref: str | None, job: Job, send: Send):
    """The loaded engine of ``model_ref`` on the job's device (kept in the process between
    jobs)."""
    from xraystudio.synthesis.engine import Engine

    key = ("engine", model_ref, job.device, job.optimize)
    if key not in cache:
        send(EventKind.STAGE, "Loading the model…")
        cache[key] = Engine.load(model_ref, device=job.device, optimize=job.optimize)
    return cache[key]


def generated(r, engine, image: XRayImage | None, masks: MaskStack,
              metrics: dict | None = None) -> GeneratedImage:
    """An engine Result as a GeneratedImage whose big arrays wait in shared memory (the
    receiver unlinks them); measured against the source unless ``metrics`` are given."""
    from xraystudio.synthesis.engine import compare_with_source

    if r.values is not None:  # edit mode: measured in its windows, at full size
        from xraystudio.engine.edit_results import edit_metrics

        metrics = {**(metrics or {}), **edit_metrics(image.display(), r.image, r.changed,
                                                     r.provenance,
                                                     image.spacing_mm or masks.spacing_mm)}
    elif metrics is None:
        metrics = compare_with_source(r, image, masks) if image is not None else {}
    shared = {name: SharedArray.handed_over(getattr(r, name))
              for name in ("image", "values", "changed") if getattr(r, name) is not None}
    return GeneratedImage(
        condition=r.condition, layers=list(engine.spec.layers), seed=r.seed,
        metrics=metrics, provenance={**r.provenance, "metrics": metrics}, **shared,
    )


def run_generation(job: Job, cache: dict, send: Send, cancel) -> list[GeneratedImage]:
    from xraystudio.engine.pixels import to_uint8
    from xraystudio.synthesis.engine import GenerationRequest

    engine = engine_for(cache, job.model_ref, job, send)
    if cancel.is_set():
        raise GenerationCancelled("generation cancelled")
    send(EventKind.STAGE, f"Generating with {engine.spec.name}…")

    def progress(p) -> None:
        preview = to_uint8(p.preview) if p.preview is not None else None
        send(EventKind.PROGRESS, dataclasses.replace(p, preview=None), preview)

    masks, image = job.unpack()
    request = GenerationRequest(masks=masks, image=image, **job.params)
    results = engine.generate(request, progress=progress, cancel=cancel)
    return [generated(r, engine, image, masks) for r in results]
