"""A sweep as a job of the engine process (Qt-free: the child process imports it).

The window sends the study once (through shared memory, as a generation Job) with the sweep
record; the process runs the cells in order on its cached engines and sends each finished cell
at once, so the grid fills while it runs and a cancelled sweep has already delivered every cell
it finished. Events: ("stage", text), ("sweep_progress", SweepProgress), ("sweep_cell",
cell record dict, GeneratedImage or None, cell masks or None), and one terminal event:
("sweep_done", record dict) — done or cancelled — or ("failed", message).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from xraystudio.errors import XRayStudioError
from xraystudio.gui.engine_process import Job, SharedArray, engine_for, generated

log = logging.getLogger(__name__)

SWEEP_TERMINAL = ("sweep_done", "failed")


@dataclasses.dataclass
class SweepJob:
    job: Job  # the study (masks and image in shared memory); its params are unused
    record: dict  # explore.sweep.SweepRecord.to_dict()
    faithfulness: bool = True
    kind: str = "sweep"


@dataclasses.dataclass
class CellMasks:
    """The masks a cell gave the model, when a layer or nodule axis changed them."""

    names: list[str]
    layers: SharedArray  # (layers, H, W) bool; the receiver unlinks it
    nodules: list

    def take(self, spacing_mm, source_nodules):
        from xraystudio.masks import MaskStack

        arrays = self.layers.take(unlink=True)
        return MaskStack.from_arrays(arrays.shape[1:], dict(zip(self.names, arrays, strict=True)),
                                     spacing_mm, self.nodules, layers=self.names,
                                     source_nodules=source_nodules)


def handle_sweep(job: SweepJob, cache: dict, events, cancel) -> None:
    try:
        events.put(("sweep_done", _run(job, cache, events, cancel)))
    except XRayStudioError as exc:
        events.put(("failed", str(exc)))
    except MemoryError:
        events.put(("failed", "The computer ran out of memory during the sweep; the finished "
                              "cells are kept."))
    except Exception as exc:
        log.exception("sweep failed")
        events.put(("failed", f"The sweep failed unexpectedly: {exc}"))


def _run(job: SweepJob, cache: dict, events, cancel) -> dict:
    from xraystudio.explore.sweep import SweepRecord, run_sweep

    record = SweepRecord.from_dict(job.record)
    masks, image = job.job.unpack()
    device = job.job.device

    def engine(ref):
        e = engine_for(cache, ref, device, events)
        events.put(("stage", f"Sweeping with {e.spec.name}…"))
        return e

    def on_cell(outcome) -> None:
        rec = outcome.record
        if outcome.result is None:
            events.put(("sweep_cell", rec.to_dict(), None, None))
            return
        cell = record.sweep.cells()[rec.index]
        cell_masks = record.sweep.masks_for(cell, masks)
        e = engine(cell.values.get("model", record.sweep.model))
        image_out = generated(outcome.result, e, image, cell_masks, metrics=dict(rec.metrics))
        shared = None
        if cell_masks is not masks:
            layers, block = SharedArray.put(np.ascontiguousarray(cell_masks.to_array()))
            block.close()
            shared = CellMasks(cell_masks.names, layers, list(cell_masks.nodules))
        events.put(("sweep_cell", rec.to_dict(), image_out, shared))

    run_sweep(record, masks, image, engine, lambda p: events.put(("sweep_progress", p)),
              cancel=cancel, on_cell=on_cell, faithfulness=job.faithfulness)
    return record.to_dict()
