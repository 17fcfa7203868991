"""Atomic writes: a file is either its old self or completely new, never half written.

The user's work must survive a crash or a killed process at any moment, so every file the app
writes goes to a temporary sibling first, is flushed to disk, and then replaces the target with
``os.replace`` (atomic on POSIX and Windows within one file system).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def _temporary(folder: Path, stem: str, suffix: str) -> Path:
    """A new empty hidden file ``.<stem>.<random>.tmp<suffix>`` in ``folder``: hidden and marked
    ``.tmp`` so that a reader listing the folder, or a recovery after a crash, tells it apart."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{suffix}", dir=folder)
    # mkstemp makes the file private (0600); a saved image or model is an ordinary file.
    os.fchmod(fd, 0o644)
    os.close(fd)
    return Path(tmp)


def _sync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, else it vanishes.

    For writers that want a file name (Pillow, numpy, tifffile) rather than a file object.
    The temporary name keeps the suffix so that writers choosing a format by suffix still work.
    """
    path = Path(path)
    tmp_path = _temporary(path.parent, path.stem, path.suffix)
    try:
        yield tmp_path
        _sync(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def staged_path(folder: str | os.PathLike, suffix: str) -> Iterator[Path]:
    """Yield a hidden temporary path in ``folder`` that stays, written and synced, after the block.

    For a file written now (slowly, perhaps on a worker thread) and given its final name later
    by ``os.replace`` (fast): until then it is a temporary (``.staged.*.tmp<suffix>``), so a
    crash in between leaves nothing that looks like a finished file. On failure it vanishes.
    """
    tmp_path = _temporary(Path(folder), "staged", suffix)
    try:
        yield tmp_path
        _sync(tmp_path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """``open`` for writing, atomically: text (``"w"``) or binary (``"wb"``)."""
    if mode not in ("w", "wb"):
        raise ValueError("atomic_open writes whole files: mode must be 'w' or 'wb'")
    with atomic_path(path) as tmp:
        if "b" not in mode:
            kwargs.setdefault("encoding", "utf-8")
        with open(tmp, mode, **kwargs) as f:
            yield f


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary sibling folder that becomes ``path`` only if the block succeeds.

    For outputs made of many files (exports, a project's Save As): a reader never sees a half
    folder under the final name, and a failure leaves nothing but the old state. An existing
    ``path`` is refused (``FileExistsError``) unless it is an empty folder or ``overwrite``; it
    is then replaced whole, never merged.
    """
    path = Path(path)
    occupied = path.exists() and not (path.is_dir() and not any(path.iterdir()))
    if occupied and not overwrite:
        raise FileExistsError(f"{path} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    # os.mkdir (not mkdtemp, which makes it private) so the result has the usual permissions.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.partial"
    os.mkdir(tmp)
    try:
        yield tmp
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        elif path.exists() or path.is_symlink():
            old = tmp.with_name(tmp.name + ".old")
            os.replace(path, old)
            os.replace(tmp, path)
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            else:
                old.unlink()
            return
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
