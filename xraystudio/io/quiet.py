"""Keep libraries quiet while a file is read: their log records, warnings and what C code
prints on stderr become a list of details (logged at INFO, so ``xraystudio -v`` shows them)
instead of lines on the terminal before the one ``error:`` line.

pydicom logs each failing decoder plugin's traceback at ERROR and warns about damaged files;
Pillow and tifffile warn or log about bad tags; OpenJPEG and GDCM print to file descriptor 2.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterable

log = logging.getLogger(__name__)
_FORMAT = logging.Formatter("%(name)s %(levelname)s: %(message)s")


class _Records(logging.Handler):
    """Routes a library logger's records to the list of the thread that is reading a file,
    else to this module's logger at DEBUG."""

    local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        sink = getattr(self.local, "sink", None)
        text = _FORMAT.format(record)
        if sink is not None:
            sink.append(text)
        else:
            log.debug("%s", text)


_handler = _Records()
_hooked: set[str] = set()
_lock = threading.Lock()
_stderr_lock = threading.Lock()


def _hook(names: Iterable[str]) -> None:
    with _lock:
        for name in names:
            if name not in _hooked:
                logger = logging.getLogger(name)
                logger.addHandler(_handler)
                logger.propagate = False
                _hooked.add(name)


@contextlib.contextmanager
def quiet(details: list[str], loggers: Iterable[str] = ()):
    """Inside: records of ``loggers`` and every warning go to ``details`` (this thread's)."""
    _hook(loggers)
    previous = getattr(_Records.local, "sink", None)
    _Records.local.sink = details
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield details
            finally:
                for w in caught:
                    if not any(str(w.message) in d for d in details):
                        details.append(f"{w.category.__name__}: {w.message}")
    finally:
        _Records.local.sink = previous


@contextlib.contextmanager
def c_stderr(details: list[str]):
    """What C code prints on file descriptor 2 inside goes to ``details``."""
    fd = 2  # the descriptor C libraries write to, whatever sys.stderr is
    try:
        os.fstat(fd)
    except OSError:
        yield  # no stderr at all (a GUI started without a console): nothing to keep off it
        return
    with _stderr_lock, tempfile.TemporaryFile() as tmp:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        saved = os.dup(fd)
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read(20000).decode("utf-8", "replace").strip()
            if text:
                details.extend(f"decoder output: {line}" for line in text.splitlines())
