"""Make the images of one unit of work items and write each item's files.

One ``Synthesizer`` per process (or Ray actor) holds the loaded model; it keeps nothing from one
unit to the next, so memory stays flat however many images a run makes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np

from xraystudio import __version__, chest_check
from xraystudio.errors import GenerationError, XRayStudioError
from xraystudio.factory.items import Source, WorkItem
from xraystudio.factory.output import JSRT, OutputFolder
from xraystudio.factory.settings import SynthesisSettings
from xraystudio.image import XRayImage
from xraystudio.io import polarity
from xraystudio.io.images import save_png
from xraystudio.io.nnunet import label_map
from xraystudio.masks import ANATOMY, MaskStack

log = logging.getLogger(__name__)

DESCRIPTION = "Synthetic radiographs made by xraystudio synthesize; not for diagnosis."
#: Threads that encode and write items' files beside the model (PNG encoding releases the GIL);
#: at most this many, and no more than the machine's cores.
WRITERS = 4


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class InputSkipped(XRayStudioError):
    """An input the run does not use: the chest check says it is no frontal chest film. Unlike
    a failure it is final for the run's settings (a rerun does not retry it)."""

    def __init__(self, verdict: chest_check.ChestCheck) -> None:
        super().__init__(verdict.warning)
        self.verdict = verdict


@dataclasses.dataclass
class _Loaded:
    image: XRayImage | None  # None for a mask stack without an image (layout mode)
    masks: MaskStack
    spacing_mm: float
    #: Where the spacing came from: a DICOM tag (ImagerPixelSpacing, PixelSpacing), "assumed"
    #: (the file has none), "dataset" (a JSRT-style cases.csv or its default), "masks" (saved).
    spacing_source: str
    chest: dict | None = None  # the chest check's verdict, for inputs segmented here

    def spacing_record(self) -> dict:
        return {"mm": [float(v) for v in self.masks.spacing_mm], "source": self.spacing_source}


@dataclasses.dataclass
class Prepared:
    """A unit on its way through the stages: read, drawn, written."""

    unit: list[WorkItem]
    settled_before: int  # items of the unit done, failed or not used before it was read
    todo: list[WorkItem]  # items not done before
    ready: list[tuple[WorkItem, _Loaded]] = dataclasses.field(default_factory=list)
    error: XRayStudioError | None = None  # why it must be made item by item


class Synthesizer:
    def __init__(self, settings: SynthesisSettings) -> None:
        from xraystudio.synthesis.engine import MAX_BATCH, Engine
        from xraystudio.synthesis.layout_sampler import LAYOUT_SAMPLER_FILE, LayoutSampler

        self.settings = settings
        self.folder = OutputFolder(settings.out)
        self.engine = Engine.load(settings.model, device=settings.device,
                                  optimize=settings.optimize,
                                  max_batch=max(MAX_BATCH, settings.batch))
        sampler_file = settings.sampler or Path(self.engine.model.source) / LAYOUT_SAMPLER_FILE
        # edit and remove modes refuse a resolution as the engine does for an edit request
        self.resolution = self.engine.drawn_resolution(
            "layout" if settings.mode == "layout" else "edit", settings.resolution)
        self.sampler = None
        self.sampler_sha = None
        if settings.mode != "remove":
            if not Path(sampler_file).is_file():
                raise GenerationError(f"no layout sampler at {sampler_file}; pass --sampler FILE "
                                      "(made by `xraystudio fit-layout`)")
            self.sampler = LayoutSampler.load(sampler_file)
            self.sampler_sha = _sha256(Path(sampler_file))
        self._dataset = None
        self._segmenter = None
        self._last: tuple[Source, _Loaded | InputSkipped] | None = None
        self._read_lock = threading.Lock()

    def model_identity(self) -> dict:
        model = self.engine.model
        out = {"name": self.engine.spec.name, "weights_sha256": model.weights_hash}
        if self.settings.mode in ("edit", "remove"):
            out["edit_weights_sha256"] = self.engine.edit_pipe.weights_hash
            out["edit_settings"] = self.engine.edit_pipe.spec.tuned()
        elif self.resolution > self.engine.spec.resolution:
            # New patients are drawn at full resolution: its stage is part of what made them.
            out["fullres_weights_sha256"] = self.engine.fullres_pipe.weights_hash
            out["fullres_settings"] = self.engine.fullres_pipe.spec.tuned()
        return out

    def fingerprint(self) -> dict:
        acc = self.engine.acceleration
        return self.settings.fingerprint(
            self.model_identity(), self.sampler_sha,
            {"half": acc.half, "channels_last": acc.channels_last, "compile": acc.compile}
            if acc.active else None,
            self.resolution if self.resolution not in (None, self.engine.resolutions[-1]) else None)

    # ------------------------------------------------------------------------------ inputs
    def _load(self, item: WorkItem) -> _Loaded:
        """The item's input, read once for the consecutive items made from it (nothing
        downstream changes a loaded image or mask stack: an edit copies the masks). An input
        the chest check refuses raises InputSkipped, for each of its items."""
        with self._read_lock:  # the reading thread, and the item-by-item retries
            return self._load_locked(item)

    def _load_locked(self, item: WorkItem) -> _Loaded:
        if self._last is None or self._last[0] != item.source:
            try:
                loaded: _Loaded | InputSkipped = self._read(item.source)
            except InputSkipped as exc:
                log.warning("%s is not used: %s", item.source.path.name, exc)
                loaded = exc
            self._last = (item.source, loaded)
        if isinstance(self._last[1], InputSkipped):
            raise self._last[1]
        return self._last[1]

    def _read(self, src: Source) -> _Loaded:
        if src.masks_only:
            from xraystudio.io.masks_io import load_masks

            masks = load_masks(src.path, None)
            return _Loaded(None, masks, float(np.mean(masks.spacing_mm)), "masks")
        if src.case is not None:
            from xraystudio.io.datasets import JsrtDataset
            from xraystudio.io.images import read_image

            if self._dataset is None:
                self._dataset = JsrtDataset(self.settings.input)
            image = read_image(src.path)
            masks = self._dataset.masks(src.case, image.shape)
            image = image.with_spacing(masks.spacing_mm)
            return _Loaded(image, masks, float(np.mean(masks.spacing_mm)), "dataset")
        return self._read_radiograph(src)

    def _read_radiograph(self, src: Source) -> _Loaded:
        """A film of a folder: the window's chest check (its labels first: a film labelled as
        a hip is never segmented), its anatomy segmented, then the check of the masks for an
        unlabelled film (kept with ``keep_implausible``)."""
        from xraystudio.segmentation.segmenter import Segmenter
        from xraystudio.study import Study

        study = Study.open(src.path)
        verdict = chest_check.check(study.image)
        if not verdict.supported:
            raise InputSkipped(verdict)
        if self._segmenter is None:
            self._segmenter = Segmenter.load()
        self._segmenter.fill_stack(study.masks, study.image.display())
        verdict = chest_check.check(study.image, chest_check.masks_of(study.masks))
        kept = verdict.source == "segmentation" and self.settings.keep_implausible
        if not verdict.supported and not kept:
            raise InputSkipped(verdict)
        chest = {"kind": verdict.kind, "source": verdict.source, "reason": verdict.reason,
                 "confidence": None if verdict.confidence is None
                 else round(verdict.confidence, 3)}
        if not verdict.supported:
            chest["kept"] = "--keep-implausible"
        source = study.image.spacing_source
        return _Loaded(study.image, study.masks, float(np.mean(study.spacing_mm)),
                       "assumed" if source == "default" else source, chest)

    # ------------------------------------------------------------------------------- units
    def run_unit(self, unit: list[WorkItem]) -> int:
        """Make and write every item of ``unit`` not yet done; returns how many were made.

        An item that cannot be made (an unreadable input, lungs too small for a nodule) must not
        stop an unattended run: the unit is retried item by item, and the one that fails is
        recorded (``failed/<id>.json``, retried by the next run) while the rest go on.
        """
        prepared = self.prepare(unit)
        outputs = self.draw(prepared)
        if outputs is None:
            return self._one_by_one(prepared)
        try:
            return self.write(prepared, outputs)
        except XRayStudioError as exc:
            prepared.error = exc
            return self._one_by_one(prepared)

    def run_units(self, units_: list[list[WorkItem]],
                  on_unit: Callable[[Prepared], None] | None = None, depth: int = 2,
                  writers: int | None = None) -> int:
        """``run_unit`` over ``units_`` with reading, drawing and writing overlapped: the next
        units' inputs are read in one thread and the last units' files encoded and written by
        ``writers`` threads (one item each) while the model draws, at most ``depth`` units
        ahead and behind (memory stays flat). The files are those of ``run_unit`` one unit
        after the other; ``on_unit`` is told of each unit once its files are written. Returns
        how many items were made."""
        writers = writers or min(WRITERS, os.cpu_count() or 1)
        reader = ThreadPoolExecutor(1, thread_name_prefix="synthesize-read")
        writer = ThreadPoolExecutor(writers, thread_name_prefix="synthesize-write")
        reads: deque[Future] = deque()
        writes: deque[tuple[Prepared, list[Future]]] = deque()
        pending = iter(units_)
        made = 0

        def read_ahead() -> None:
            while len(reads) < depth and (unit := next(pending, None)) is not None:
                reads.append(reader.submit(self.prepare, unit))

        def settle(block: bool) -> None:
            nonlocal made
            while writes and (block or all(f.done() for f in writes[0][1])):
                prepared, futures = writes.popleft()
                wait(futures)
                errors = [f.exception() for f in futures if f.exception() is not None]
                made += len(futures) - len(errors)
                for exc in errors:
                    if not isinstance(exc, XRayStudioError):
                        raise exc
                if errors:  # the items not written, again one by one
                    prepared.error = errors[0]
                    made += self._one_by_one(prepared)
                if on_unit is not None:
                    on_unit(prepared)

        try:
            read_ahead()
            while reads:
                prepared = reads.popleft().result()
                read_ahead()
                outputs = self.draw(prepared)
                if outputs is None:
                    made += self._one_by_one(prepared)
                    if on_unit is not None:
                        on_unit(prepared)
                    continue
                while len(writes) >= depth:
                    wait(writes[0][1])
                    settle(block=False)
                writes.append((prepared, [writer.submit(self._write, item, ld, *output)
                                          for (item, ld), output in zip(prepared.ready, outputs)]))
                settle(block=False)
            settle(block=True)
        finally:
            reader.shutdown(wait=True, cancel_futures=True)
            writer.shutdown(wait=True)
        return made

    def prepare(self, unit: list[WorkItem]) -> Prepared:
        """The unit's items not yet done, with their inputs read (the reading stage)."""
        settled = self.folder.settled(unit)
        skipped = self.folder.skipped(unit)
        todo = [i for i in unit
                if i.id not in skipped and not self.folder.item_path(i.id).is_file()]
        prepared = Prepared(unit, settled, todo)
        try:
            for item in todo:
                try:
                    prepared.ready.append((item, self._load(item)))
                except InputSkipped as exc:
                    self.folder.write_skip(item.id, exc.verdict.short, str(exc))
        except XRayStudioError as exc:
            prepared.error = exc
        return prepared

    def draw(self, prepared: Prepared) -> list | None:
        """The model's images of a prepared unit (the drawing stage); None when the unit must
        be made item by item (an input could not be read or an image not made)."""
        if prepared.error is not None:
            return None
        if not prepared.ready:
            return []
        items = [i for i, _ in prepared.ready]
        loaded = [ld for _, ld in prepared.ready]
        try:
            if self.settings.mode == "layout":
                return self._layout(items, loaded)
            return self._edit(items, loaded)
        except XRayStudioError as exc:
            prepared.error = exc
            return None

    def write(self, prepared: Prepared, outputs: list) -> int:
        """Every file of the drawn items (the writing stage); returns how many."""
        for (item, ld), output in zip(prepared.ready, outputs):
            self._write(item, ld, *output)
        return len(outputs)

    def _one_by_one(self, prepared: Prepared) -> int:
        """A unit that failed as a whole, again item by item; a single item's failure is
        recorded."""
        if len(prepared.todo) > 1:
            return sum(self.run_unit([item]) for item in prepared.todo)
        log.warning("%s could not be made: %s", prepared.todo[0].id, prepared.error)
        self.folder.write_failure(prepared.todo[0].id, str(prepared.error))
        return 0

    def _layout_nodules(self, item: WorkItem, ld: _Loaded, existing) -> list:
        rng = np.random.default_rng(item.seed)
        return self.sampler.sample(ld.masks, ld.spacing_mm, rng, existing=existing)

    def _edit(self, todo: list[WorkItem], loaded: list[_Loaded]) -> list:
        from xraystudio.synthesis.edit import EditPlan, EditTask, run_edits

        tasks, plans = [], []
        for item, ld in zip(todo, loaded):
            source_nodules = list(item.source.nodules)
            if item.mode == "remove":
                inserted, removed = [], source_nodules
            else:
                inserted = self._layout_nodules(item, ld, source_nodules)
                removed = []
            # Each sampled nodule is drawn to the contrast the sampler drew for it (a real
            # nodule's of its size and subtlety), so the data is as conspicuous as real data.
            plan = EditPlan([(n.x, n.y, n.diameter_mm) for n in inserted], removed,
                            contrast=[n.contrast for n in inserted] if inserted else None)
            tasks.append(EditTask(ld.image, ld.masks, plan, item.seed))
            plans.append((inserted, removed))
        s = self.settings
        outs = run_edits(self.engine.edit_pipe, tasks, s.steps, s.scheduler)
        results = []
        for (inserted, removed), ld, out in zip(plans, loaded, outs):
            masks = ld.masks.copy()
            for n in list(masks.nodules):
                if (n.x, n.y, n.diameter_mm) in [tuple(r) for r in removed]:
                    masks.remove_nodule(n.id)
            for n in inserted:
                masks.add_nodule(n.x, n.y, n.diameter_mm)
            fmt = out.pixel_format
            try:  # the source's bit depth, air dark (a MONOCHROME1 film mirrored in its range)
                img, turned = polarity.air_dark_stored(
                    fmt.stored(out.values), polarity.source_photometric(ld.image), fmt.lo, fmt.hi)
            except ValueError as exc:
                raise GenerationError(str(exc)) from None
            extra = {"edits": out.describe(), "changed_pixels": int(out.changed.sum()),
                     "polarity": turned}
            results.append((img, masks, inserted, removed, extra))
        return results

    def _layout(self, todo: list[WorkItem], loaded: list[_Loaded]) -> list:
        """New patients: the inputs' anatomy with sampled nodules, the unit in one model call."""
        from xraystudio.synthesis.engine import GenerationRequest

        s = self.settings
        layouts, reqs = [], []
        for item, ld in zip(todo, loaded):
            masks = MaskStack.from_arrays(ld.masks.shape, {a: ld.masks[a] for a in ANATOMY
                                                           if a in ld.masks}, ld.masks.spacing_mm)
            inserted = self._layout_nodules(item, ld, ())
            for n in inserted:
                masks.add_nodule(n.x, n.y, n.diameter_mm)
            layouts.append((masks, inserted))
            reqs.append(GenerationRequest(masks=masks, mode="layout", seed=item.seed,
                                          steps=s.steps, scheduler=s.scheduler,
                                          resolution=self.resolution))
        results = self.engine.generate_batch(reqs)
        return [(np.rint(np.clip(r.image, 0, 1) * 255).astype(np.uint8), masks, inserted, [],
                 {"polarity": polarity.record(polarity.source_photometric(ld.image), "generated"),
                  "drawn_resolution": r.provenance["model"]["drawn_resolution"]})
                for r, (masks, inserted), ld in zip(results, layouts, loaded)]

    # ------------------------------------------------------------------------------ output
    def _write(self, item: WorkItem, ld: _Loaded, img: np.ndarray, masks: MaskStack,
               inserted: list, removed: list, extra: dict) -> None:
        """``img``: the dataset pixels (air dark); ``extra`` holds their polarity record."""
        turned = extra.pop("polarity")
        save_png(self.folder.image_path(item.id), img)
        save_png(self.folder.label_path(item.id), label_map(masks))
        nodules = [n.to_dict() for n in inserted]
        source_nodules = [{"x": x, "y": y, "diameter_mm": d, "subtlety": None}
                          for (x, y, d) in item.source.nodules if (x, y, d) not in removed]
        if self.settings.jsrt and len(masks.nodules) <= 1:
            self._write_jsrt(item.id, img, masks)
        s = self.settings
        self.folder.write_item({
            "id": item.id,
            "image": f"imagesTr/{item.id}_0000.png",
            "label": f"labelsTr/{item.id}.png",
            "synthetic": True,
            "mode": item.mode,
            "source": {"dataset": str(s.input), **item.source.to_dict()},
            "nodules": nodules,
            "source_nodules": source_nodules,
            "removed": [{"x": x, "y": y, "diameter_mm": d} for (x, y, d) in removed],
            "seed": item.seed,
            "spacing_mm": ld.spacing_mm,
            "spacing": ld.spacing_record(),
            "polarity": turned,
            **({"chest_check": ld.chest} if ld.chest is not None else {}),
            "size": [int(img.shape[1]), int(img.shape[0])],
            "provenance": {
                "software": f"xraystudio {__version__}",
                "model": self.model_identity(),
                "sampler_sha256": self.sampler_sha,
                "parameters": {"mode": item.mode, "seed": item.seed, "steps": s.steps,
                               "scheduler": s.scheduler, "batch": s.batch},
                "source_pixel_hash": None if ld.image is None else ld.image.pixel_hash(),
                "source_mask_hash": ld.masks.content_hash(),
                **extra,
            },
        })

    def _write_jsrt(self, item_id: str, img: np.ndarray, masks: MaskStack) -> None:
        from xraystudio.io.datasets import write_case_files

        write_case_files(self.folder.root / JSRT, item_id, img, masks)

