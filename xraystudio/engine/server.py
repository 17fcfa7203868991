"""The engine process's loop: each job goes to the handler its type names in :data:`JOB_TYPES`.

Every job ends with exactly one terminal event, and every failure takes the one path in
:func:`handle`: a foreseen error (XRayStudioError) is its own message, running out of memory
says what to try, and anything else is logged with its traceback and reaches the user as one
readable line. To add a job: a dataclass in ``protocol``, a handler ``(job, cache, send,
cancel) -> answer`` in a module of this package, and one row in :data:`JOB_TYPES`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from typing import Any

from xraystudio.engine.generation import run_generation
from xraystudio.engine.protocol import Event, EventKind, Job, SegmentJob, SweepJob, unexpected
from xraystudio.engine.segmentation import SEGMENT_HINT, run_segmentation
from xraystudio.engine.sweep import run_sweep_job
from xraystudio.errors import GenerationCancelled, XRayStudioError

log = logging.getLogger(__name__)

NICENESS = 10


@dataclasses.dataclass(frozen=True)
class JobType:
    """How the process runs one type of job and words its failures."""

    handler: Callable[..., Any]  # (job, cache, send, cancel) -> the DONE event's answer
    what: str  # "Generation failed unexpectedly: ..."
    out_of_memory: str
    hint: str = ""  # added to a foreseen error's message


JOB_TYPES: dict[type, JobType] = {
    Job: JobType(run_generation, "Generation",
                 "The computer ran out of memory. Generate fewer images at once or close other "
                 "programs, then try again."),
    SegmentJob: JobType(run_segmentation, "Segmentation",
                        "The computer ran out of memory while segmenting.", SEGMENT_HINT),
    SweepJob: JobType(run_sweep_job, "The sweep",
                      "The computer ran out of memory during the sweep; the finished cells are "
                      "kept."),
}


def failure_message(exc: BaseException, job_type: JobType) -> str:
    if isinstance(exc, XRayStudioError):
        return f"{exc}. {job_type.hint}" if job_type.hint else str(exc)
    if isinstance(exc, MemoryError):
        return job_type.out_of_memory
    return unexpected(job_type.what, exc)


def handle(job: Any, cache: dict, events, cancel) -> None:
    """Run one job and put its events on ``events``, ending with exactly one terminal event."""

    def send(kind: EventKind, *args) -> None:
        events.put(Event(kind, args))

    job_type = JOB_TYPES.get(type(job))
    if job_type is None:
        send(EventKind.FAILED, f"The engine cannot run a {type(job).__name__}.")
        return
    try:
        answer = job_type.handler(job, cache, send, cancel)
    except GenerationCancelled:
        send(EventKind.CANCELLED)
    except Exception as exc:  # MemoryError included; every failure reaches the user
        if not isinstance(exc, XRayStudioError | MemoryError):
            log.exception("%s failed", type(job).__name__)
        send(EventKind.FAILED, failure_message(exc, job_type))
    else:
        send(EventKind.DONE, answer)


def serve(jobs, events, cancel, threads: int | None) -> None:
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
