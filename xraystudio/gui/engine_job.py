"""The one thread that runs a job in an engine process for the window: generation,
segmentation and sweeps alike.

It packs the job (copying big arrays into shared memory, off the UI thread), submits it, relays
the process's events as signals and releases the shared memory when the job is over. The
thread only waits on a queue (which releases the GIL) and prepares what the UI thread will
show (private copies, display words) through the job's ``receive`` hook, so neither the model
nor its imports ever hold up the window. Every job ends with exactly one of ``done``,
``cancelled`` or ``failed``; an error nobody foresaw, on either side of the process boundary,
becomes ``failed`` with a readable message (its traceback goes to the log).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from multiprocessing.shared_memory import SharedMemory
from typing import Any

from PySide6.QtCore import QThread, Signal

from xraystudio.engine.client import EngineProcess
from xraystudio.engine.protocol import Event, EventKind, unexpected
from xraystudio.engine.shared import release

log = logging.getLogger(__name__)


def _same(value: Any) -> Any:
    return value


class EngineJobThread(QThread):
    stage = Signal(str)  # what is happening, for a status line
    progressed = Signal(object, object)  # Progress (or SweepProgress), preview uint8 or None
    item = Signal(object)  # a partial result (a sweep cell), as ``receive_item`` made it
    done = Signal(object)  # the answer, as ``receive`` made it
    cancelled = Signal()
    failed = Signal(str)  # a readable message

    def __init__(self, engine: EngineProcess, pack: Callable[[], tuple[Any, list[SharedMemory]]],
                 what: str, receive: Callable[[Any], Any] = _same,
                 receive_item: Callable[..., Any] | None = None, parent=None) -> None:
        """``pack`` makes (job, shared blocks); ``what`` names the work in a failure message
        ("Generation failed unexpectedly: ..."); ``receive`` turns the DONE answer, and
        ``receive_item`` an ITEM event's fields, into what the signals carry."""
        super().__init__(parent)
        self.engine = engine
        self.what = what
        self._pack = pack
        self._receive = receive
        self._receive_item = receive_item
        self._submitted = False
        self._ended = False

    def cancel(self) -> None:
        self.engine.cancel()

    def run(self) -> None:
        blocks: list[SharedMemory] = []
        try:
            job, blocks = self._pack()
            self.engine.submit(job)
            self._submitted = True
            self._relay()
        except Exception as exc:  # never leave the window waiting
            log.exception("%s: the job thread failed", self.what)
            self._drain()
            self._end(self.failed, unexpected(self.what, exc))
        finally:
            release(blocks)

    def _relay(self) -> None:
        while True:
            event = self.engine.next_event(timeout=0.25)
            if event is None:
                continue
            if event.terminal:
                self._submitted = False  # the process is done with the job: nothing to drain
            self._dispatch(event)
            if event.terminal:
                return

    def _dispatch(self, event: Event) -> None:
        kind, args = event.kind, event.args
        if kind is EventKind.STAGE:
            self.stage.emit(*args)
        elif kind is EventKind.PROGRESS:
            self.progressed.emit(*args)
        elif kind is EventKind.ITEM:
            self.item.emit(self._receive_item(*args) if self._receive_item else args)
        elif kind is EventKind.DONE:
            self._end(self.done, self._receive(*args))
        elif kind is EventKind.CANCELLED:
            self._end(self.cancelled)
        elif kind is EventKind.FAILED:
            self._end(self.failed, *args)

    def _end(self, signal, *args) -> None:
        if not self._ended:
            self._ended = True
            signal.emit(*args)

    def _drain(self) -> None:
        """After a failure on this side, let the process finish the job (cancelled) so that
        its remaining events do not reach the next job."""
        if not self._submitted:
            return
        self.engine.cancel()
        try:
            while True:
                event = self.engine.next_event(timeout=0.25)
                if event is not None and event.terminal:
                    return
        except Exception:  # the process is gone or its queue broken: nothing left to drain
            log.exception("%s: cannot drain the engine's events", self.what)
