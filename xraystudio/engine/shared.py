"""Numpy arrays in shared memory, so a big array crosses the process boundary without pickling.

Pickling a 36 MB array holds the GIL for ~60 ms (a stall in the window); a numpy copy into
shared memory does not hold it. The small handle is what gets pickled.
"""

from __future__ import annotations

import dataclasses
from multiprocessing.shared_memory import SharedMemory

import numpy as np


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

    @classmethod
    def handed_over(cls, array: np.ndarray) -> SharedArray:
        """Copy ``array`` into a block that the receiver unlinks (a result sent back)."""
        shared, block = cls.put(np.ascontiguousarray(array))
        block.close()
        return shared

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
