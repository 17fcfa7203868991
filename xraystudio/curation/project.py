"""Project: a folder of studies, generated results and curation decisions that never loses work.

:class:`Project` is what callers use; the jobs behind it live beside it: the folder's format
(:mod:`.project_folder`), the session mark and crash recovery (:mod:`.session`), a result's
files (:mod:`.result_files`), the sweeps (:mod:`.sweep_store`) and the records (:mod:`.records`).

Every change is saved when it is made, each rewriting only what it changes, atomically. Closing
removes the session mark, so finding it on opening means the last session ended without
closing, and the project reports ``needs_restore`` with the last action it saved.

A missing source file is an error only when its pixels are needed (:meth:`Project.load_study`);
the project, its masks and its results open without it.

A Project is not thread-safe: drive it from one thread (the GUI thread); listeners are called on
it. Only :meth:`Project.stage_result`, which touches no project state, may run on another.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from xraystudio.curation import result_files, session
from xraystudio.curation.project_folder import (
    PROJECT_JSON,
    RESULTS,
    STUDIES,
    SWEEPS,
    masks_file,
    new_result_id,
    new_study_id,
    read_project_file,
    read_results,
    relative_to,
    write_project_file,
    write_result_record,
)
from xraystudio.curation.records import (
    DECISIONS,
    EventKind,
    Listener,
    ProjectEvent,
    ResultRecord,
    StudyRecord,
    now,
)
from xraystudio.curation.result_files import Edit, StagedResult, read_edit
from xraystudio.curation.session import Recovery
from xraystudio.curation.sweep_store import SweepStore
from xraystudio.errors import ImageLoadError, MaskError, ProjectError
from xraystudio.io.atomic import atomic_folder
from xraystudio.io.json_files import copy_json
from xraystudio.io.masks_io import load_masks, save_masks
from xraystudio.masks import MaskStack
from xraystudio.study import Study

#: What callers import from here: the Project and what it hands out (each lives in its module).
__all__ = [
    "Project", "ProjectEvent", "Recovery", "ResultRecord", "StagedResult", "StudyRecord",
    "read_edit",
]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike


class Project:
    """An open project folder. Make one with :meth:`create` or :meth:`open`; :meth:`close` it."""

    def __init__(self, folder: Path, meta: dict[str, Any], studies: dict[str, StudyRecord],
                 results: dict[str, ResultRecord], recovery: Recovery | None,
                 read_only: bool = False) -> None:
        self.folder = folder
        self.read_only = read_only
        self.name: str = str(meta.get("name") or folder.name)
        self.created: str = str(meta.get("created", ""))
        self._studies = studies
        self._results = results
        self._sweeps = SweepStore(folder / SWEEPS)
        self.recovery = recovery
        self._listeners: list[Listener] = []
        self._closed = False
        if not read_only and recovery is None:
            # A project awaiting restore keeps the crashed session's mark (and its last action)
            # until the user restores it or changes it, so declining keeps the offer for next time.
            session.write_session(folder, "open")

    # ----------------------------------------------------------------- create / open / close
    @classmethod
    def create(cls, folder: PathLike, name: str | None = None) -> Project:
        """A new, empty project in ``folder`` (which must not exist or be empty)."""
        folder = Path(folder).absolute()
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise ProjectError(f"{folder} already exists and is not an empty folder")
        meta = {"name": name or folder.name, "created": now()}
        project = cls(folder, meta, {}, {}, None)
        project._write_project()
        log.info("created project %s", folder)
        return project

    @classmethod
    def open(cls, folder: PathLike, read_only: bool = False) -> Project:
        """Open a project; ``needs_restore`` tells whether its last session ended uncleanly.

        ``read_only`` (for exports) neither takes the session nor allows changes, so it works
        while the app has the project open; every file it reads is written atomically.
        """
        folder = Path(folder).absolute()
        meta, studies = read_project_file(folder)
        results, unreadable = read_results(folder / RESULTS, studies)
        recovery = None if read_only else session.recover(folder, studies, results, unreadable)
        if recovery is None and unreadable:
            log.warning("skipped unreadable result records: %s", unreadable)
        return cls(folder, meta, studies, results, recovery, read_only)

    @property
    def needs_restore(self) -> bool:
        """True when the previous session did not close the project (a crash, a kill)."""
        return self.recovery is not None

    def restore(self) -> None:
        """Accept the recovered state: delete leftovers of the interrupted action."""
        if self.recovery is None:
            return
        self._check_open()
        session.remove_leftovers(self.recovery)
        log.info("restored %s (%d leftover files removed)", self.folder,
                 len(self.recovery.leftovers))
        self.recovery = None
        session.write_session(self.folder, "restore")

    def close(self) -> None:
        """End the session cleanly: the next :meth:`open` will not offer to restore."""
        if self._closed:
            return
        if not self.read_only:
            session.end_session(self.folder)
        self._closed = True

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------ listeners
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` after each change; returns a function to unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _changed(self, kind: EventKind, item_id: str | None, action: str) -> None:
        session.write_session(self.folder, action)
        for fn in list(self._listeners):
            fn(ProjectEvent(kind, item_id))

    # -------------------------------------------------------------------------------- studies
    @property
    def studies(self) -> list[StudyRecord]:
        return list(self._studies.values())

    def study(self, study_id: str) -> StudyRecord:
        try:
            return self._studies[study_id]
        except KeyError:
            raise ProjectError(f"no study {study_id!r} in project {self.folder}") from None

    def add_study(self, source: PathLike | Study, masks: MaskStack | None = None) -> str:
        """Add a study by its file (with empty masks) or as an open Study; returns its id.

        The project keeps a reference to the file, not a copy of its pixels: radiographs are
        large and often cannot be duplicated freely.
        """
        self._check_open()
        study = source if isinstance(source, Study) else Study.open(source)
        if study.image.source is None:
            raise ProjectError("a study must come from a file to be added to a project")
        masks = masks if masks is not None else study.masks
        if masks.shape != study.shape:
            raise MaskError(f"masks are {masks.shape} but the image is {study.shape}")
        study_id = new_study_id(self.folder, study.name or study.image.source.stem, set(self._studies))
        source_path = Path(study.image.source).absolute()
        save_masks(masks, self._masks_file(study_id))
        self._studies[study_id] = StudyRecord(
            id=study_id, name=study.name, source=str(source_path),
            source_relative=relative_to(source_path, self.folder), format=study.image.format,
            shape=study.shape, spacing_mm=masks.spacing_mm,
            pixel_hash=study.image.pixel_hash(), added=now(),
        )
        self._write_project()
        self._changed("study_added", study_id, f"added study {study_id}")
        return study_id

    def source_path(self, study_id: str) -> Path:
        """The study's source file: relative to the project first, else the absolute path."""
        rec = self.study(study_id)
        candidates = []
        if rec.source_relative is not None:
            candidates.append((self.folder / rec.source_relative).resolve())
        candidates.append(Path(rec.source))
        for path in candidates:
            if path.is_file():
                return path
        tried = " or ".join(str(p) for p in dict.fromkeys(candidates))
        raise ProjectError(f"source file of study {study_id!r} is missing: {tried}")

    def load_study(self, study_id: str) -> Study:
        """The study's radiograph and current masks; the source file must be present."""
        rec = self.study(study_id)
        path = self.source_path(study_id)
        try:
            study = Study.open(path, default_spacing_mm=rec.spacing_mm[0])
        except ImageLoadError as exc:
            raise ProjectError(f"cannot open the source of study {study_id!r}: {exc}") from exc
        if study.shape != rec.shape:
            raise ProjectError(
                f"source {path} of study {study_id!r} is now {study.shape[1]} x {study.shape[0]} "
                f"pixels but was {rec.shape[1]} x {rec.shape[0]} when added"
            )
        if study.image.pixel_hash() != rec.pixel_hash:
            log.warning("source %s of study %s changed since it was added", path, study_id)
        if study.spacing_mm != rec.spacing_mm:
            study.image = study.image.with_spacing(rec.spacing_mm)
        study.masks = self.load_masks(study_id)
        study.name = rec.name
        return study

    def load_masks(self, study_id: str, mask_hash: str | None = None) -> MaskStack:
        """The study's current masks, or the snapshot a result was made from (by its hash)."""
        rec = self.study(study_id)
        path = self._masks_file(study_id, mask_hash)
        if mask_hash is not None and not path.is_file():
            path = self._masks_file(study_id)  # made from the masks as they are still
        try:
            return load_masks(path, rec.shape, rec.spacing_mm)
        except MaskError as exc:
            raise ProjectError(f"masks of study {study_id!r}: {exc}") from exc

    def update_masks(self, study_id: str, masks: MaskStack) -> None:
        """Save the study's edited masks (one atomic file write)."""
        self._check_open()
        rec = self.study(study_id)
        if masks.shape != rec.shape:
            raise MaskError(f"masks are {masks.shape} but study {study_id!r} is {rec.shape}")
        save_masks(masks, self._masks_file(study_id))
        self._changed("masks_updated", study_id, f"updated masks of {study_id}")

    # -------------------------------------------------------------------------------- results
    def stage_result(self, image: np.ndarray, masks: MaskStack | None = None,
                     edit: Edit | None = None) -> StagedResult:
        """Encode a result to temporary files in the project folder; thread-safe.

        The slow part of :meth:`add_result` (PNG encoding, the masks snapshot), touching no project
        state, so it may run on a worker thread while the GUI thread keeps driving the project.
        The files are hidden temporaries: :meth:`restore` removes them if the process dies before
        :meth:`add_result` commits them. ``edit`` is an edit-mode result's (changed, values):
        where it differs from its source and its full-size edited values.
        """
        return result_files.stage_result(self._results_dir, image, masks, edit)

    def add_result(self, study_id: str, image: np.ndarray | StagedResult,
                   provenance: Mapping[str, Any], masks: MaskStack | None = None,
                   edit: Edit | None = None) -> str:
        """Store a generated image with its provenance; returns the result id.

        ``image`` is the pixels or a :class:`StagedResult` from :meth:`stage_result` (then only
        files are renamed into place and the record written: fast, for the GUI thread).
        ``masks`` are those the image was generated from (default: the staged masks, else the
        study's saved masks); they are kept with the result so that later mask edits do not
        change its labels. ``edit`` is as for :meth:`stage_result` (with pixels, not staged).
        """
        self._check_open()
        rec = self.study(study_id)
        staged = image if isinstance(image, StagedResult) else None
        if staged is None:
            pixels = result_files.image_pixels(image)
            shape = pixels.shape
        else:
            shape = staged.shape
            if not staged.png.is_file():
                raise ProjectError(f"the staged result {staged.png} is gone")
        if tuple(shape) != tuple(rec.shape):
            if staged is not None:
                staged.discard()
            raise ProjectError(
                f"result is {shape[1]} x {shape[0]} pixels but study "
                f"{study_id!r} is {rec.shape[1]} x {rec.shape[0]}"
            )
        if masks is None and staged is not None:
            masks = staged.masks
        masks = masks if masks is not None else self.load_masks(study_id)
        mask_hash = masks.content_hash()
        if provenance.get("mask_hash") not in (None, mask_hash):
            log.warning("provenance of a result of %s names masks %s, stored with masks %s",
                        study_id, provenance.get("mask_hash"), mask_hash)
        snapshot = self._masks_file(study_id, mask_hash)
        if not snapshot.is_file():
            if staged is not None and staged.masks_file is not None \
                    and staged.mask_hash == mask_hash:
                staged.take_masks(snapshot)
            else:
                save_masks(masks, snapshot)
        result_id = new_result_id(self.folder, self._results)
        result_files.write_result_files(self._results_dir, result_id,
                                        pixels if staged is None else staged, edit)
        record = ResultRecord(id=result_id, study_id=study_id,
                              provenance=copy_json(dict(provenance)),
                              mask_hash=mask_hash, created=now())
        write_result_record(self._results_dir, record)
        self._results[result_id] = record
        self._changed("result_added", result_id, f"added result {result_id}")
        return result_id

    def result(self, result_id: str) -> ResultRecord:
        try:
            return self._results[result_id]
        except KeyError:
            raise ProjectError(f"no result {result_id!r} in project {self.folder}") from None

    def result_path(self, result_id: str) -> Path:
        return self._results_dir / f"{self.result(result_id).id}.png"

    def result_pixels(self, result_id: str) -> np.ndarray:
        """The result exactly as stored: 16-bit grey (exports copy these, losslessly)."""
        return result_files.read_png(self.result_path(result_id))

    def result_image(self, result_id: str) -> np.ndarray:
        """The result as float32 in [0, 1], for display and metrics."""
        return self.result_pixels(result_id).astype(np.float32) / np.float32(65535.0)

    def edit_path(self, result_id: str) -> Path:
        """Where an edit-mode result's changed pixels are kept (absent for other results)."""
        return self._results_dir / f"{self.result(result_id).id}{result_files.EDIT_SUFFIX}"

    def result_edit(self, result_id: str) -> Edit | None:
        """An edit-mode result's (changed mask, values of the changed pixels), or None for a
        result that is not an edit. The full edited values are the source's with these
        pixels replaced (the source's pixel hash is in the provenance)."""
        path = self.edit_path(result_id)
        return read_edit(path) if path.is_file() else None

    def result_masks(self, result_id: str) -> MaskStack:
        rec = self.result(result_id)
        return self.load_masks(rec.study_id, rec.mask_hash)

    def decide(self, result_id: str, decision: str | None) -> None:
        """Accept, reject, or (with None or "none") undo the decision on a result."""
        decision = decision or "none"
        if decision not in DECISIONS:
            raise ProjectError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
        self._update_result(result_id, f"{decision} {result_id}", decision=decision)

    def star(self, result_id: str, starred: bool = True) -> None:
        self._update_result(result_id, f"{'starred' if starred else 'unstarred'} {result_id}",
                            starred=bool(starred))

    def note(self, result_id: str, text: str) -> None:
        self._update_result(result_id, f"noted {result_id}", note=str(text))

    def results(self, study: str | None = None, decision: str | None = None,
                model: str | None = None, parameters: Mapping[str, Any] | None = None,
                starred: bool | None = None) -> list[ResultRecord]:
        """Results in creation order, filtered; None means "any" for every filter.

        ``decision`` is "none" (undecided), "accepted" or "rejected"; ``parameters`` matches
        results whose generation parameters include all the given key/value pairs.
        """
        if decision is not None and decision not in DECISIONS:
            raise ProjectError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")

        def keep(r: ResultRecord) -> bool:
            params = r.parameters
            return ((study is None or r.study_id == study)
                    and (decision is None or r.decision == decision)
                    and (model is None or r.model == model)
                    and (starred is None or r.starred == starred)
                    and all(params.get(k) == v for k, v in (parameters or {}).items()))

        return [r for r in self._results.values() if keep(r)]

    def _update_result(self, result_id: str, action: str, **changes: Any) -> None:
        self._check_open()
        record = dataclasses.replace(self.result(result_id), **changes)
        write_result_record(self._results_dir, record)
        self._results[result_id] = record
        self._changed("result_changed", result_id, action)

    # --------------------------------------------------------------------------------- sweeps
    def save_sweep(self, record: Mapping[str, Any]) -> str:
        """Store (or update) a sweep record (``explore.sweep.SweepRecord.to_dict()``); returns
        its id, given here when the record has none (:class:`.sweep_store.SweepStore`)."""
        self._check_open()
        sid = record.get("study")
        if sid is not None and sid not in self._studies:
            raise ProjectError(f"no study {sid!r} in project {self.folder}")
        sweep_id = self._sweeps.save(record)
        self._changed("sweep_saved", sweep_id, f"saved sweep {sweep_id}")
        return sweep_id

    def sweeps(self, study: str | None = None) -> list[dict[str, Any]]:
        """Sweep records in creation order, of one study or all."""
        return self._sweeps.records(study)

    def sweep(self, sweep_id: str) -> dict[str, Any]:
        try:
            return self._sweeps.record(sweep_id)
        except KeyError:
            raise ProjectError(f"no sweep {sweep_id!r} in project {self.folder}") from None

    # ------------------------------------------------------------------------ save / save as
    def save(self) -> None:
        """Write the project file again. Every change is already saved when it is made; this
        exists for the user's explicit Save and to rewrite a project after it was moved."""
        self._check_open()
        self._write_project()
        self._changed("saved", None, "saved")

    def save_as(self, folder: PathLike) -> None:
        """Copy the project to ``folder`` (new, or empty) and continue working there.

        The copy is built in a temporary sibling and renamed at the end, so an interrupted
        Save As leaves no half project. Relative source paths are recomputed for the new place.
        """
        self._check_open()
        target = Path(folder).absolute()
        moved = {sid: self._moved_record(rec, target) for sid, rec in self._studies.items()}
        try:
            with atomic_folder(target) as tmp:
                for sub in (STUDIES, RESULTS, SWEEPS):
                    if (self.folder / sub).is_dir():
                        shutil.copytree(self.folder / sub, tmp / sub,
                                        ignore=shutil.ignore_patterns(".*"))
                self._write_project(tmp / PROJECT_JSON, moved)
        except FileExistsError:
            raise ProjectError(f"{target} already exists and is not an empty folder") from None
        old, self.folder, self._studies = self.folder, target, moved
        self._sweeps.folder = target / SWEEPS
        session.end_session(old)
        self._changed("moved", None, f"saved as {target}")

    # ------------------------------------------------------------------------------ internals
    @property
    def _results_dir(self) -> Path:
        return self.folder / RESULTS

    def _masks_file(self, study_id: str, mask_hash: str | None = None) -> Path:
        return masks_file(self.folder, study_id, mask_hash)

    def _check_open(self) -> None:
        if self._closed:
            raise ProjectError(f"project {self.folder} is closed")
        if self.read_only:
            raise ProjectError(f"project {self.folder} is open read-only")

    def _moved_record(self, rec: StudyRecord, folder: Path) -> StudyRecord:
        """``rec`` with its source paths as seen from a project now in ``folder``."""
        try:
            src = self.source_path(rec.id)
        except ProjectError:
            src = Path(rec.source)
        return dataclasses.replace(rec, source=str(src), source_relative=relative_to(src, folder))

    def _write_project(self, path: Path | None = None,
                       studies: Mapping[str, StudyRecord] | None = None) -> None:
        records = (self._studies if studies is None else studies).values()
        write_project_file(path or self.folder / PROJECT_JSON, self.name, self.created, records)
