"""The synthesis engine in a process of its own, so that the window never waits on it.

In a worker thread, importing torch froze the UI thread for ~390 ms (extension start-up holds
Python's GIL) and the pipeline's per-step Python made it stall up to ~35 ms; a separate process
shares no GIL with the window. The process keeps loaded models between runs, and when it dies
(out of memory, a crashing driver) the window survives and the next run starts a new one.
Large arrays (the radiograph, the masks, the results) travel through shared memory: pickling
a 36 MB array holds the GIL for ~60 ms, a numpy copy into shared memory does not hold it.
The anatomy segmenter runs in a second process serving the same loop (a SegmentJob in, the
masks back), so a study opened during a long generation is still segmented in about a second.
This module is Qt-free: it is what the child process imports.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing as mp
import os
import queue
from collections.abc import Callable
from multiprocessing.shared_memory import SharedMemory

import numpy as np

from xraystudio.errors import GenerationCancelled, XRayStudioError
from xraystudio.image import XRayImage
from xraystudio.masks import MaskStack

log = logging.getLogger(__name__)


def release(blocks: list[SharedMemory]) -> None:
    """Free the blocks a sender created once their job is over (the receiver only copied them)."""
    for block in blocks:
        block.close()
        block.unlink()


@dataclasses.dataclass(frozen=True)
class SharedArray:
    """A numpy array parked in shared memory; the small handle is what gets pickled."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @classmethod
    def put(cls, array: np.ndarray) -> tuple[SharedArray, SharedMemory]:
        """Copy ``array`` into a new block; the caller owns the block and unlinks it."""
        shm = SharedMemory(create=True, size=max(1, array.nbytes))
        view = np.ndarray(array.shape, array.dtype, buffer=shm.buf)
        np.copyto(view, array)
        del view
        return cls(shm.name, tuple(array.shape), array.dtype.str), shm

    def take(self, unlink: bool) -> np.ndarray:
        """A private copy of the array; ``unlink`` frees the block (the last reader does)."""
        # The engine process shares its parent's resource tracker, so opening a block here
        # registers nothing new and the single unlink below balances its creation.
        shm = SharedMemory(name=self.name)
        try:
            view = np.ndarray(self.shape, np.dtype(self.dtype), buffer=shm.buf)
            out = view.copy()
            del view
        finally:
            shm.close()
            if unlink:
                shm.unlink()
        return out


@dataclasses.dataclass
class Job:
    """One generation request, as sent to the engine process (big arrays in shared memory)."""

    model_ref: str | None
    params: dict  # GenerationRequest keywords besides masks and image
    image: XRayImage | None  # with a 1 x 1 stand-in for its values
    values: SharedArray | None
    masks: SharedArray  # (layers, H, W) bool
    layers: list[str]
    spacing_mm: tuple[float, float]
    nodules: list
    device: str = "auto"
    source_nodules: list = dataclasses.field(default_factory=list)

    @classmethod
    def pack(cls, model_ref: str | None, masks: MaskStack, image: XRayImage | None,
             params: dict) -> tuple[Job, list[SharedMemory]]:
        """The job and the shared blocks its sender must unlink once the job is over."""
        blocks = []
        values = None
        if image is not None:
            values, block = SharedArray.put(image.values)
            blocks.append(block)
            image = dataclasses.replace(image, values=np.zeros((1, 1), np.float32))
        layers, block = SharedArray.put(masks.to_array())
        blocks.append(block)
        return cls(model_ref, params, image, values, layers, masks.names, masks.spacing_mm,
                   list(masks.nodules), source_nodules=list(masks.source_nodules)), blocks

    def unpack(self) -> tuple[MaskStack, XRayImage | None]:
        arrays = self.masks.take(unlink=False)
        masks = MaskStack.from_arrays(arrays.shape[1:], dict(zip(self.layers, arrays, strict=True)),
                                      self.spacing_mm, self.nodules, layers=self.layers,
                                      source_nodules=self.source_nodules)
        image = self.image
        if image is not None and self.values is not None:
            image = dataclasses.replace(image, values=self.values.take(unlink=False))
        return masks, image


@dataclasses.dataclass
class GeneratedImage:
    """One result, ready to show: the image, its metrics and where it came from."""

    image: np.ndarray  # float32 [0, 1] at the source size (a SharedArray in transit)
    condition: np.ndarray  # (C, S, S) model input
    layers: list[str]  # which mask layer each leading condition channel holds
    seed: int
    metrics: dict[str, float]
    provenance: dict
    pixels: np.ndarray | None = None  # grey RGB32 words of ``image``, made by the receiver
    # Edit mode: the edited radiograph's modality values at the source size, as its format
    # stores them (for saving it exactly), and where they differ from the source (bool).
    values: np.ndarray | None = None  # a SharedArray in transit
    changed: np.ndarray | None = None  # a SharedArray in transit

    @property
    def is_edit(self) -> bool:
        return self.values is not None

    def take(self) -> None:
        """Replace the shared arrays of a result that arrived with private copies (receiver)."""
        self.image = self.image.take(unlink=True)
        if isinstance(self.values, SharedArray):
            self.values = self.values.take(unlink=True)
        if isinstance(self.changed, SharedArray):
            self.changed = self.changed.take(unlink=True)


@dataclasses.dataclass
class SegmentJob:
    """One anatomy segmentation request: the display image goes in through shared memory."""

    display: SharedArray  # (H, W) float32 display values in [0, 1]
    resources: str | None  # the sender's XRAYSTUDIO_RESOURCES, which locates the model

    @classmethod
    def pack(cls, display: np.ndarray) -> tuple[SegmentJob, list[SharedMemory]]:
        """The job and the shared block its sender must unlink once the job is over."""
        shared, block = SharedArray.put(np.ascontiguousarray(display, dtype=np.float32))
        return cls(shared, os.environ.get("XRAYSTUDIO_RESOURCES")), [block]


@dataclasses.dataclass
class Segmented:
    """The answer to a SegmentJob: one boolean mask per structure at the display's size."""

    names: list[str]
    masks: SharedArray  # (structures, H, W) bool; the receiver unlinks it

    def take(self) -> dict[str, np.ndarray]:
        arrays = self.masks.take(unlink=True)
        return dict(zip(self.names, arrays, strict=True))


SEGMENT_HINT = "Train one with `xraystudio train-segmenter` or paint the anatomy by hand."

NICENESS = 10

# Events the process sends, each a tuple: ("stage", text), ("progress", Progress, preview uint8
# or None), and one of ("done", [GeneratedImage]), ("cancelled",), ("failed", message) per
# generation Job; ("segmented", Segmented) or ("failed", message) per SegmentJob.
TERMINAL = ("done", "cancelled", "failed", "segmented")


def relay_events(process, handlers: dict[str, Callable[..., None]],
                 terminal: tuple[str, ...] = TERMINAL) -> None:
    """Hand each event of ``process``'s current job to its handler (by kind, with the event's
    fields) until a terminal one: a worker thread's loop, so it may block."""
    while True:
        event = process.next_event(timeout=0.25)
        if event is None:
            continue
        handler = handlers.get(event[0])
        if handler is not None:
            handler(*event[1:])
        if event[0] in terminal:
            return


def serve(jobs: mp.Queue, events: mp.Queue, cancel, threads: int | None) -> None:
    """The engine process: run jobs until a None arrives."""
    if hasattr(os, "nice"):
        # Below the window's priority: when cores are scarce, the scheduler serves the window
        # first; the window needs little CPU, so generation hardly slows down.
        os.nice(NICENESS)
    cache: dict = {}  # loaded engines and segmenters, by what they were loaded from
    if threads:
        import torch

        torch.set_num_threads(threads)
    while True:
        job = jobs.get()
        if job is None:
            return
        handle(job, cache, events, cancel)


def handle(job: Job | SegmentJob, cache: dict, events, cancel) -> None:
    """Run one job and put its events, ending with exactly one terminal event."""
    if getattr(job, "kind", None) == "sweep":  # the conditioning explorer (gui.sweep_job)
        from xraystudio.gui.sweep_job import handle_sweep

        handle_sweep(job, cache, events, cancel)
        return
    if isinstance(job, SegmentJob):
        try:
            events.put(("segmented", _segment(job, cache)))
        except XRayStudioError as exc:
            events.put(("failed", f"{exc}. {SEGMENT_HINT}"))
        except MemoryError:
            events.put(("failed", "The computer ran out of memory while segmenting."))
        except Exception as exc:
            log.exception("segmentation failed")
            events.put(("failed", f"Segmentation failed unexpectedly: {exc}"))
        return
    try:
        events.put(("done", _run(job, cache, events, cancel)))
    except GenerationCancelled:
        events.put(("cancelled",))
    except XRayStudioError as exc:
        events.put(("failed", str(exc)))
    except MemoryError:
        events.put(("failed", "The computer ran out of memory. Generate fewer images at "
                              "once or close other programs, then try again."))
    except Exception as exc:
        log.exception("generation failed")
        events.put(("failed", f"Generation failed unexpectedly: {exc}"))


def _segment_model_dir(resources: str | None):
    """The shipped model's folder as the sender sees it (its XRAYSTUDIO_RESOURCES)."""
    from xraystudio.segmentation.segmenter import default_model_dir

    saved = os.environ.pop("XRAYSTUDIO_RESOURCES", None)
    try:
        if resources is not None:
            os.environ["XRAYSTUDIO_RESOURCES"] = resources
        return default_model_dir()
    finally:
        os.environ.pop("XRAYSTUDIO_RESOURCES", None)
        if saved is not None:
            os.environ["XRAYSTUDIO_RESOURCES"] = saved


def _segment(job: SegmentJob, cache: dict) -> Segmented:
    from xraystudio.segmentation.segmenter import Segmenter

    folder = _segment_model_dir(job.resources)
    key = ("segmenter", str(folder))
    if key not in cache:  # a failed load is not cached: the next job tries again
        cache[key] = Segmenter.load(folder)
    display = job.display.take(unlink=False)
    masks = cache[key].segment(display)
    names = list(masks)
    stacked = np.stack([np.asarray(masks[n], dtype=bool) for n in names]) if names else \
        np.zeros((0, *display.shape), bool)
    shared, block = SharedArray.put(stacked)
    block.close()  # the receiver unlinks it
    return Segmented(names, shared)


def engine_for(engines: dict, model_ref: str | None, device: str, events):
    """The loaded engine of ``model_ref`` (kept in the process between jobs)."""
    from xraystudio.synthesis.engine import Engine

    key = ("engine", model_ref, device)
    if key not in engines:
        events.put(("stage", "Loading the model…"))
        engines[key] = Engine.load(model_ref, device=device)
    return engines[key]


def generated(r, engine, image: XRayImage | None, masks: MaskStack,
              metrics: dict | None = None) -> GeneratedImage:
    """An engine Result as a GeneratedImage whose big arrays wait in shared memory (the
    receiver unlinks them); measured against the source unless ``metrics`` are given."""
    from xraystudio.synthesis.engine import compare_with_source

    if r.values is not None:  # edit mode: measured in its windows, at full size
        from xraystudio.gui.edit_results import edit_metrics

        metrics = {**(metrics or {}), **edit_metrics(image.display(), r.image, r.changed,
                                                     r.provenance,
                                                     image.spacing_mm or masks.spacing_mm)}
    elif metrics is None:
        metrics = compare_with_source(r, image, masks) if image is not None else {}
    shared = {}
    for name in ("image", "values", "changed"):
        array = getattr(r, name)
        if array is not None:
            shared[name], block = SharedArray.put(np.ascontiguousarray(array))
            block.close()  # the receiver unlinks it
    return GeneratedImage(
        condition=r.condition, layers=list(engine.spec.layers), seed=r.seed,
        metrics=metrics, provenance={**r.provenance, "metrics": metrics}, **shared,
    )


def _run(job: Job, engines: dict, events: mp.Queue, cancel) -> list[GeneratedImage]:
    from xraystudio.gui.pixels import to_uint8
    from xraystudio.synthesis.engine import GenerationRequest

    engine = engine_for(engines, job.model_ref, job.device, events)
    if cancel.is_set():
        raise GenerationCancelled("generation cancelled")
    events.put(("stage", f"Generating with {engine.spec.name}…"))

    def progress(p) -> None:
        preview = to_uint8(p.preview) if p.preview is not None else None
        events.put(("progress", dataclasses.replace(p, preview=None), preview))

    masks, image = job.unpack()
    request = GenerationRequest(masks=masks, image=image, **job.params)
    results = engine.generate(request, progress=progress, cancel=cancel)
    return [generated(r, engine, image, masks) for r in results]


class EngineProcess:
    """The parent's handle on the engine process; started on the first job."""

    def __init__(self, threads: int | None = None, name: str = "xraystudio-engine",
                 what: str = "generation") -> None:
        self.threads = threads
        self.name = name
        self.what = what  # for the message when the process dies
        self._ctx = mp.get_context("spawn")  # fork would copy Qt's threads and locks
        self._proc = None
        self._jobs = self._events = self._cancel = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def submit(self, job: Job) -> None:
        if not self.running:
            self._jobs, self._events = self._ctx.Queue(), self._ctx.Queue()
            self._cancel = self._ctx.Event()
            self._proc = self._ctx.Process(
                target=serve, args=(self._jobs, self._events, self._cancel, self.threads),
                name=self.name, daemon=True)
            self._proc.start()
        self._cancel.clear()
        self._jobs.put(job)

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    def next_event(self, timeout: float) -> tuple | None:
        """The next event of the current job, None after ``timeout`` seconds without one."""
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            if not self.running:
                code = self._proc.exitcode if self._proc is not None else None
                if self.what != "generation":
                    return ("failed", f"The {self.what} process stopped unexpectedly (exit "
                                      f"code {code}); the next run starts a fresh process.")
                return ("failed", f"The generation process stopped unexpectedly (exit code "
                                  f"{code}); it may have run out of memory. Try fewer images at "
                                  "once; the next run starts a fresh process.")
            return None

    def close(self, timeout: float = 5.0) -> None:
        if self._proc is None:
            return
        if self._proc.is_alive():
            self.cancel()
            self._jobs.put(None)
            self._proc.join(timeout)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(timeout)
        self._proc = None
