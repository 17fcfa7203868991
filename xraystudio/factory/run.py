"""Drive a synthesis run: in one process, in each process of ``accelerate launch``, or on Ray.

Every back-end does the same: plan the items (the same list everywhere), prepare or check the
output folder, take its share of the units, skip the items already done, make the rest, and
write the dataset files if it finds every item done. A killed run loses the unit in flight and
nothing else; rerunning the same command resumes it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

from xraystudio.factory.items import find_sources, plan_items, shard, units
from xraystudio.factory.output import OutputFolder, Tally
from xraystudio.factory.settings import SynthesisSettings

log = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("local", "accelerate", "ray")

#: Called with (items done so far in this process's share, items in that share).
ProgressCallback = Callable[[int, int], None]


@dataclasses.dataclass
class RunSummary:
    total: int  # items in the whole run
    share: int  # items this process was given
    already_done: int  # of those, done before this run
    made: int  # made by this run
    seconds: float
    complete: bool  # the dataset files are written
    tally: Tally  # the whole run by input: not used (and why), failed, spacing sources

    @property
    def failed(self) -> int:
        """Items of the whole run that could not be made (see failed/)."""
        return self.tally.failed

    @property
    def images_per_second(self) -> float:
        return self.made / self.seconds if self.seconds > 0 else 0.0


def _plan(settings: SynthesisSettings):
    sources = find_sources(settings.input, settings.split, settings.limit)
    items = plan_items(sources, settings.mode, settings.per_input, settings.seed)
    return items, units(items, settings.batch)


def synthesize(settings: SynthesisSettings, rank: int = 0, world: int = 1,
               progress: ProgressCallback | None = None) -> RunSummary:
    """This process's share (``rank`` of ``world``) of the run, in this process."""
    from xraystudio.factory.worker import DESCRIPTION, Synthesizer

    started = time.perf_counter()
    items, all_units = _plan(settings)
    worker = Synthesizer(settings)
    folder = OutputFolder(settings.out)
    folder.prepare(worker.fingerprint(), items)
    mine = shard(all_units, rank, world)
    share = sum(len(u) for u in mine)
    already_done = sum(len(folder.done(u)) for u in mine)
    made = 0
    settled = sum(folder.settled(u) for u in mine)  # done, failed or not used
    if progress is not None:
        progress(settled, share)

    def unit_done(unit: list, before: int) -> None:
        nonlocal settled
        settled += folder.settled(unit) - before
        if progress is not None:
            progress(settled, share)

    if settings.overlap:
        made = worker.run_units(mine, lambda p: unit_done(p.unit, p.settled_before))
    else:
        for unit in mine:
            before = folder.settled(unit)
            made += worker.run_unit(unit)
            unit_done(unit, before)
    complete = folder.finish(items, DESCRIPTION, settings.jsrt)
    return RunSummary(len(items), share, already_done, made, time.perf_counter() - started,
                      complete, folder.tally(items))


def synthesize_accelerate(settings: SynthesisSettings,
                          progress: ProgressCallback | None = None) -> RunSummary:
    """One process of ``accelerate launch``: its rank's share on its own device.

    Nothing is gathered to rank 0 and no process waits for another: each writes its own items'
    files, and the last to finish writes the dataset files.
    """
    from accelerate import PartialState

    state = PartialState()
    device = settings.device
    if state.device.type != "cpu" and device in ("cpu", "auto"):
        device = str(state.device)
    mine = dataclasses.replace(settings, device=device)
    log.info("accelerate process %d of %d on %s", state.process_index, state.num_processes, device)
    return synthesize(mine, state.process_index, state.num_processes,
                      progress if state.is_local_main_process else None)


class _RayWorker:
    """A Ray actor: loads the model once, then makes whole units (one per batch row)."""

    def __init__(self, settings: dict) -> None:
        from xraystudio.factory.worker import Synthesizer

        self.settings = SynthesisSettings.from_dict(settings)
        self.worker = Synthesizer(self.settings)
        _, self.units = _plan(self.settings)

    def __call__(self, batch: dict) -> dict:
        made = [self.worker.run_unit(self.units[int(k)]) for k in batch["unit"]]
        return {"unit": batch["unit"], "made": made}


def synthesize_ray(settings: SynthesisSettings, actors: int | None = None,
                   progress: ProgressCallback | None = None) -> RunSummary:
    """The run on a Ray cluster (or a local Ray): Ray Data ``map_batches`` over the pending
    units with one actor per GPU (or ``actors`` CPU actors); ``ray.init()`` joins the cluster
    named by ``RAY_ADDRESS`` or starts a local one."""
    import ray

    from xraystudio.factory.worker import DESCRIPTION, Synthesizer

    started = time.perf_counter()
    items, all_units = _plan(settings)
    folder = OutputFolder(settings.out)
    folder.prepare(Synthesizer(settings).fingerprint(), items)
    pending = [k for k, u in enumerate(all_units) if len(folder.done(u)) < len(u)]
    already_done = len(folder.done(items))
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    n = actors or max(1, gpus)
    made = 0
    if pending:
        ds = ray.data.from_items([{"unit": k} for k in pending])
        ds = ds.map_batches(_RayWorker, fn_constructor_kwargs={"settings": settings.to_dict()},
                            batch_size=1, concurrency=n, num_gpus=1 if gpus else 0, num_cpus=1)
        for row in ds.iter_rows():
            made += int(row["made"])
            if progress is not None:
                progress(already_done + made, len(items))
    complete = folder.finish(items, DESCRIPTION, settings.jsrt)
    return RunSummary(len(items), len(items), already_done, made, time.perf_counter() - started,
                      complete, folder.tally(items))
