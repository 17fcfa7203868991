"""The sweep handler of the engine process.

The window sends the study once (through shared memory, as a generation Job) with the sweep
record; the process runs the cells in order on its cached engines and sends each finished cell
at once (an ITEM event), so the grid fills while it runs and a cancelled sweep has already
delivered every cell it finished. The answer (DONE) is the record as the run ended it, done or
cancelled.
"""

from __future__ import annotations

from xraystudio.engine.generation import Send, engine_for, generated
from xraystudio.engine.protocol import CellMasks, EventKind, SweepJob
from xraystudio.engine.shared import SharedArray
from xraystudio.explore.sweep import SweepRecord, run_sweep


def run_sweep_job(job: SweepJob, cache: dict, send: Send, cancel) -> dict:
    record = SweepRecord.from_dict(job.record)
    masks, image = job.job.unpack()

    def engine(ref):
        e = engine_for(cache, ref, job.job, send)
        send(EventKind.STAGE, f"Sweeping with {e.spec.name}…")
        return e

    def on_cell(outcome) -> None:
        rec = outcome.record
        if outcome.result is None:
            send(EventKind.ITEM, rec.to_dict(), None, None)
            return
        cell = record.sweep.cells()[rec.index]
        cell_masks = record.sweep.masks_for(cell, masks)
        e = engine(cell.values.get("model", record.sweep.model))
        image_out = generated(outcome.result, e, image, cell_masks, metrics=dict(rec.metrics))
        shared = None
        if cell_masks is not masks:
            shared = CellMasks(cell_masks.names, SharedArray.handed_over(cell_masks.to_array()),
                               list(cell_masks.nodules))
        send(EventKind.ITEM, rec.to_dict(), image_out, shared)

    run_sweep(record, masks, image, engine, lambda p: send(EventKind.PROGRESS, p, None),
              cancel=cancel, on_cell=on_cell, faithfulness=job.faithfulness)
    return record.to_dict()
