"""The parent's handle on an engine process, so that the window never waits on a model.

In a worker thread, importing torch froze the UI thread for ~390 ms (extension start-up holds
Python's GIL) and the pipeline's per-step Python made it stall up to ~35 ms; a separate process
shares no GIL with the window. The process keeps loaded models between runs, and when it dies
(out of memory, a crashing driver) the window survives and the next run starts a new one.
The anatomy segmenter runs in a second process serving the same loop, so a study opened during
a long generation is still segmented in about a second.
"""

from __future__ import annotations

import multiprocessing as mp
import queue

from xraystudio.engine.protocol import Event, EventKind
from xraystudio.engine.server import serve


class EngineProcess:
    """Started on the first job; ``what`` names its work in the message when it dies."""

    def __init__(self, threads: int | None = None, name: str = "xraystudio-engine",
                 what: str = "generation") -> None:
        self.threads = threads
        self.name = name
        self.what = what
        self._ctx = mp.get_context("spawn")  # fork would copy Qt's threads and locks
        self._proc = None
        self._jobs = self._events = self._cancel = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def submit(self, job) -> None:
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

    def next_event(self, timeout: float) -> Event | None:
        """The next event of the current job, None after ``timeout`` seconds without one."""
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            if not self.running:
                code = self._proc.exitcode if self._proc is not None else None
                if self.what != "generation":
                    return Event(EventKind.FAILED, (
                        f"The {self.what} process stopped unexpectedly (exit code {code}); the "
                        "next run starts a fresh process.",))
                return Event(EventKind.FAILED, (
                    f"The generation process stopped unexpectedly (exit code {code}); it may "
                    "have run out of memory. Try fewer images at once; the next run starts a "
                    "fresh process.",))
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
