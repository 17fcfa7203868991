"""Project: a folder of studies, generated results and curation decisions that never loses work.

Layout::

    PROJECT/project.json                      name, format version, the study records
    PROJECT/session.json                      exists while the project is open (pid, last action)
    PROJECT/studies/<sid>/masks.npz           the study's current masks and nodule layout
    PROJECT/studies/<sid>/masks/<hash>.npz    the masks a result was made from (content-addressed)
    PROJECT/results/<rid>.png                 the synthetic image, 16-bit grey
    PROJECT/results/<rid>.json                provenance, study, mask hash, decision, star, note
    PROJECT/results/<rid>.edit.npz            edit mode: which pixels changed and their values
    PROJECT/sweeps/<swid>.json                a sweep: axes, settings, its cells' figures and the
                                              result id of each finished cell (explore.sweep)

Why many small files: each user action rewrites only what it changes (one decision is one small
JSON) atomically, so saving after every action stays cheap with thousands of results, and a killed
process loses at most the action in flight. A result's JSON is written last (after its PNG and
masks): it is the commit point, so a PNG without a JSON is a leftover of an interrupted action,
never a half result. ``session.json`` detects crashes: :meth:`Project.close` removes it, so
finding it on opening means the last session ended without closing, and the project reports
``needs_restore`` with the last action it saved.

Source files are referenced by absolute path and by path relative to the project folder; the
relative one is tried first, so a project moved or copied together with its sources still finds
them. A missing source is an error only when its pixels are needed (:meth:`Project.load_study`);
the project, its masks and its results open without it.

An edit-mode result is the source radiograph changed in a few windows. Its PNG is the display
image, as for every result; the exact edited values (the source's modality values, as its format
stores them) are kept as what changed: the changed pixels' mask and their values, a few kB
beside the PNG, so that the full-resolution edit in the source's format can be rebuilt from the
source (:meth:`Project.result_edit`) without storing a second copy of every radiograph.

A Project is not thread-safe: drive it from one thread (the GUI thread); listeners are called on it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from xraystudio.errors import ImageLoadError, MaskError, ProjectError
from xraystudio.io.atomic import atomic_folder, atomic_path, write_text
from xraystudio.io.masks_io import load_masks, save_masks
from xraystudio.masks import MaskStack
from xraystudio.study import Study

log = logging.getLogger(__name__)

FORMAT = "xraystudio-project"
VERSION = 1
PROJECT_JSON = "project.json"
SESSION_JSON = "session.json"
#: An edit-mode result's changed pixels, beside its PNG (``results/<rid>.edit.npz``).
EDIT_SUFFIX = ".edit.npz"
#: Sweeps of the conditioning explorer, one JSON each (``sweeps/<swid>.json``).
SWEEPS = "sweeps"
#: Curation states of a result; "none" means not decided yet.
DECISIONS: tuple[str, ...] = ("none", "accepted", "rejected")

PathLike = str | os.PathLike


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclasses.dataclass
class StudyRecord:
    """What a project keeps about a study: where its source is, and what it looked like."""

    id: str
    name: str
    source: str  # absolute path when last saved
    source_relative: str | None  # relative to the project folder (None across drives)
    format: str  # "DICOM", "PNG", ... as the image loader reported it
    shape: tuple[int, int]
    spacing_mm: tuple[float, float]
    pixel_hash: str
    added: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StudyRecord:
        return cls(
            id=str(d["id"]), name=str(d["name"]), source=str(d["source"]),
            source_relative=d.get("source_relative"), format=str(d.get("format", "")),
            shape=(int(d["shape"][0]), int(d["shape"][1])),
            spacing_mm=(float(d["spacing_mm"][0]), float(d["spacing_mm"][1])),
            pixel_hash=str(d.get("pixel_hash", "")), added=str(d.get("added", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["shape"], d["spacing_mm"] = list(self.shape), list(self.spacing_mm)
        return d


@dataclasses.dataclass
class ResultRecord:
    """A generated image's record: provenance plus the user's curation of it."""

    id: str
    study_id: str
    provenance: dict[str, Any]
    mask_hash: str
    created: str
    decision: str = "none"
    starred: bool = False
    note: str = ""

    @property
    def model(self) -> str | None:
        return (self.provenance.get("model") or {}).get("name")

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.provenance.get("parameters") or {})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ResultRecord:
        decision = str(d.get("decision", "none"))
        if decision not in DECISIONS:
            raise ValueError(f"unknown decision {decision!r}")
        return cls(
            id=str(d["id"]), study_id=str(d["study_id"]), provenance=dict(d["provenance"]),
            mask_hash=str(d["mask_hash"]), created=str(d.get("created", "")), decision=decision,
            starred=bool(d.get("starred", False)), note=str(d.get("note", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ProjectEvent(NamedTuple):
    """A change a view may need to show: ``kind`` is one of "study_added", "masks_updated",
    "result_added", "result_changed", "saved", "moved"; ``id`` the study or result concerned."""

    kind: str
    id: str | None = None


Listener = Callable[[ProjectEvent], None]


@dataclasses.dataclass
class Recovery:
    """What opening a project that was not closed cleanly found.

    Every action up to ``last_action`` is in the project already; ``leftovers`` are files of an
    interrupted action (temporary files, an image whose record was never written, masks of a
    study never added) that :meth:`Project.restore` deletes; ``unreadable`` are result records
    that could not be parsed (skipped, left in place).
    """

    last_action: str | None
    last_time: str | None
    leftovers: list[Path]
    unreadable: list[Path]


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_-")[:40]
    return slug or "study"


def _pid_alive(pid: int) -> bool:
    # os.kill(pid, 0) only probes on POSIX; on Windows it would terminate the process.
    if os.name != "posix":
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _image_pixels(image: np.ndarray) -> np.ndarray:
    """A result image as 16-bit grey: float in [0, 1] is scaled, uint16 kept."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ProjectError(f"a result is a 2-D grey image, got shape {image.shape}")
    if image.dtype == np.uint16:
        return image
    if np.issubdtype(image.dtype, np.floating):
        return np.round(np.clip(image, 0.0, 1.0) * 65535.0).astype(np.uint16)
    raise ProjectError(f"a result image must be float in [0, 1] or uint16, got {image.dtype}")


def _write_png(pixels: np.ndarray, path: Path) -> None:
    """Encode 16-bit grey pixels as a PNG at ``path`` (the slow part of storing a result)."""
    Image.fromarray(pixels).save(path, format="PNG")


def _write_edit(path: Path, changed: np.ndarray, values: np.ndarray) -> None:
    """The changed pixels (a packed mask) and their edited values (float32), compressed."""
    changed = np.asarray(changed, bool)
    if changed.shape != values.shape:
        raise ProjectError(f"edit mask {changed.shape} and values {values.shape} differ in shape")
    with open(path, "wb") as f:
        np.savez_compressed(f, shape=np.asarray(changed.shape), changed=np.packbits(changed),
                            values=np.asarray(values, np.float32)[changed])


def read_edit(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """What :func:`_write_edit` wrote: (changed mask, values of the changed pixels)."""
    try:
        with np.load(path) as data:
            shape = tuple(int(v) for v in data["shape"])
            changed = np.unpackbits(data["changed"], count=shape[0] * shape[1])
            changed = changed.astype(bool).reshape(shape)
            values = data["values"].astype(np.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise ProjectError(f"cannot read the edit {path}: {exc}") from exc
    if values.shape != (int(changed.sum()),):
        raise ProjectError(f"the edit {path} is inconsistent")
    return changed, values


def _staging_path(folder: Path, suffix: str) -> Path:
    """A fresh hidden temporary name in ``folder`` that :func:`_leftovers` treats as a leftover."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".staged.", suffix=f".tmp{suffix}", dir=folder)
    os.fchmod(fd, 0o644)
    os.close(fd)
    return Path(tmp)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


@dataclasses.dataclass
class StagedResult:
    """A result encoded to temporary files by :meth:`Project.stage_result`, not yet in the project.

    Hand it to :meth:`Project.add_result` (fast: renames and one small JSON) or :meth:`discard` it.
    Until then its files are leftovers: a crash leaves nothing that looks like a result.
    """

    shape: tuple[int, int]
    png: Path
    mask_hash: str | None = None
    masks_file: Path | None = None  # None: the snapshot already existed or no masks were given
    masks: MaskStack | None = None
    edit_file: Path | None = None  # edit mode: the changed pixels and their values

    def discard(self) -> None:
        for path in (self.png, self.masks_file, self.edit_file):
            if path is not None:
                path.unlink(missing_ok=True)


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
        self._sweeps: dict[str, dict[str, Any]] = _read_sweeps(folder / SWEEPS)
        self.recovery = recovery
        self._listeners: list[Listener] = []
        self._closed = False
        if not read_only and recovery is None:
            # A project awaiting restore keeps the crashed session's mark (and its last action)
            # until the user restores it or changes it, so declining keeps the offer for next time.
            self._write_session("open")

    # ----------------------------------------------------------------- create / open / close
    @classmethod
    def create(cls, folder: PathLike, name: str | None = None) -> Project:
        """A new, empty project in ``folder`` (which must not exist or be empty)."""
        folder = Path(folder).absolute()
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise ProjectError(f"{folder} already exists and is not an empty folder")
        meta = {"name": name or folder.name, "created": _now()}
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
        meta = _read_json(folder / PROJECT_JSON, what="project file")
        if meta.get("format") != FORMAT:
            raise ProjectError(f"{folder / PROJECT_JSON} is not an xraystudio project file")
        if int(meta.get("version", 0)) > VERSION:
            raise ProjectError(
                f"{folder} was saved by a newer xraystudio (project version {meta['version']})"
            )
        try:
            studies = {
                s["id"]: StudyRecord.from_dict(s) for s in meta.get("studies", [])
            }
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ProjectError(f"malformed study record in {folder / PROJECT_JSON}: {exc}") from exc
        results, unreadable = _read_results(folder / "results", studies)
        recovery = None
        session_file = folder / SESSION_JSON
        if session_file.exists() and not read_only:
            session = _read_session(session_file)
            pid = session.get("pid")
            if (session.get("host") == socket.gethostname() and isinstance(pid, int)
                    and pid != os.getpid() and _pid_alive(pid)):
                raise ProjectError(
                    f"{folder} is open in another xraystudio (process {pid}); close it there first"
                )
            recovery = Recovery(
                last_action=session.get("last_action"), last_time=session.get("time"),
                leftovers=_leftovers(folder, studies, results), unreadable=unreadable,
            )
            log.warning("project %s was not closed cleanly (last action: %s)",
                        folder, recovery.last_action)
        elif unreadable:
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
        for path in self.recovery.leftovers:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        log.info("restored %s (%d leftover files removed)", self.folder,
                 len(self.recovery.leftovers))
        self.recovery = None
        self._write_session("restore")

    def close(self) -> None:
        """End the session cleanly: the next :meth:`open` will not offer to restore."""
        if self._closed:
            return
        if not self.read_only:
            (self.folder / SESSION_JSON).unlink(missing_ok=True)
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

    def _changed(self, kind: str, item_id: str | None, action: str) -> None:
        self._write_session(action)
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
        study_id = self._new_study_id(study.name or study.image.source.stem)
        source_path = Path(study.image.source).absolute()
        save_masks(masks, self._masks_file(study_id))
        self._studies[study_id] = StudyRecord(
            id=study_id, name=study.name, source=str(source_path),
            source_relative=self._relative(source_path), format=study.image.format,
            shape=study.shape, spacing_mm=masks.spacing_mm,
            pixel_hash=study.image.pixel_hash(), added=_now(),
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
                     edit: tuple[np.ndarray, np.ndarray] | None = None) -> StagedResult:
        """Encode a result to temporary files in the project folder; thread-safe.

        The slow part of :meth:`add_result` (PNG encoding, the masks snapshot), touching no project
        state, so it may run on a worker thread while the GUI thread keeps driving the project.
        The files are hidden temporaries: :meth:`restore` removes them if the process dies before
        :meth:`add_result` commits them. ``edit`` is an edit-mode result's (changed, values):
        where it differs from its source and its full-size edited values.
        """
        pixels = _image_pixels(image)
        results_dir = self._results_dir
        png = _staging_path(results_dir, ".png")
        staged = StagedResult(shape=(int(pixels.shape[0]), int(pixels.shape[1])), png=png)
        try:
            _write_png(pixels, png)
            _fsync(png)
            if masks is not None:
                staged.masks = masks
                staged.mask_hash = masks.content_hash()
                staged.masks_file = _staging_path(results_dir, ".npz")
                save_masks(masks, staged.masks_file)
            if edit is not None:
                staged.edit_file = _staging_path(results_dir, ".npz")
                _write_edit(staged.edit_file, *edit)
                _fsync(staged.edit_file)
        except BaseException:
            staged.discard()
            raise
        return staged

    def add_result(self, study_id: str, image: np.ndarray | StagedResult,
                   provenance: Mapping[str, Any], masks: MaskStack | None = None,
                   edit: tuple[np.ndarray, np.ndarray] | None = None) -> str:
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
            pixels = _image_pixels(image)
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
                snapshot.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(staged.masks_file, snapshot)
                staged.masks_file = None
            else:
                save_masks(masks, snapshot)
        result_id = self._new_result_id()
        if staged is None:
            if edit is not None:
                with atomic_path(self._results_dir / f"{result_id}{EDIT_SUFFIX}") as tmp:
                    _write_edit(tmp, *edit)
            with atomic_path(self._results_dir / f"{result_id}.png") as tmp:
                _write_png(pixels, tmp)
        else:
            if staged.edit_file is not None:  # before the PNG: a PNG never lacks its edit
                shutil.move(staged.edit_file, self._results_dir / f"{result_id}{EDIT_SUFFIX}")
                staged.edit_file = None
            shutil.move(staged.png, self._results_dir / f"{result_id}.png")
            if staged.masks_file is not None:
                staged.masks_file.unlink(missing_ok=True)
                staged.masks_file = None
        record = ResultRecord(id=result_id, study_id=study_id,
                              provenance=json.loads(json.dumps(dict(provenance))),
                              mask_hash=mask_hash, created=_now())
        self._write_result(record)
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
        path = self.result_path(result_id)
        try:
            with Image.open(path) as im:
                arr = np.asarray(im)
        except OSError as exc:
            raise ProjectError(f"cannot read result image {path}: {exc}") from exc
        if arr.dtype != np.uint16 or arr.ndim != 2:
            raise ProjectError(f"result image {path} is not a 16-bit grey PNG")
        return arr

    def result_image(self, result_id: str) -> np.ndarray:
        """The result as float32 in [0, 1], for display and metrics."""
        return self.result_pixels(result_id).astype(np.float32) / np.float32(65535.0)

    def edit_path(self, result_id: str) -> Path:
        """Where an edit-mode result's changed pixels are kept (absent for other results)."""
        return self._results_dir / f"{self.result(result_id).id}{EDIT_SUFFIX}"

    def result_edit(self, result_id: str) -> tuple[np.ndarray, np.ndarray] | None:
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
        self._write_result(record)
        self._results[result_id] = record
        self._changed("result_changed", result_id, action)

    # --------------------------------------------------------------------------------- sweeps
    def save_sweep(self, record: Mapping[str, Any]) -> str:
        """Store (or update) a sweep record (``explore.sweep.SweepRecord.to_dict()``); returns
        its id, given here when the record has none. One small atomic JSON per sweep, rewritten
        as its cells finish, so a sweep interrupted by a crash reopens with the cells it had."""
        self._check_open()
        data = json.loads(json.dumps(dict(record)))
        sid = data.get("study")
        if sid is not None and sid not in self._studies:
            raise ProjectError(f"no study {sid!r} in project {self.folder}")
        if not data.get("id"):
            numbers = [int(k[1:]) for k in self._sweeps if k[1:].isdigit()]
            numbers += [int(p.stem[1:]) for p in (self.folder / SWEEPS).glob("s*.json")
                        if p.stem[1:].isdigit()]
            data["id"] = f"s{max(numbers, default=0) + 1:04d}"
        sweep_id = str(data["id"])
        if not re.fullmatch(r"[A-Za-z0-9_-]+", sweep_id):
            raise ProjectError(f"bad sweep id {sweep_id!r}")
        write_text(self.folder / SWEEPS / f"{sweep_id}.json", json.dumps(data, indent=2) + "\n")
        self._sweeps[sweep_id] = data
        self._changed("sweep_saved", sweep_id, f"saved sweep {sweep_id}")
        return sweep_id

    def sweeps(self, study: str | None = None) -> list[dict[str, Any]]:
        """Sweep records in creation order, of one study or all."""
        return [copy_json(d) for d in self._sweeps.values()
                if study is None or d.get("study") == study]

    def sweep(self, sweep_id: str) -> dict[str, Any]:
        try:
            return copy_json(self._sweeps[sweep_id])
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
                for sub in ("studies", "results", SWEEPS):
                    if (self.folder / sub).is_dir():
                        shutil.copytree(self.folder / sub, tmp / sub,
                                        ignore=shutil.ignore_patterns(".*"))
                self._write_project(tmp / PROJECT_JSON, moved)
        except FileExistsError:
            raise ProjectError(f"{target} already exists and is not an empty folder") from None
        old, self.folder, self._studies = self.folder, target, moved
        (old / SESSION_JSON).unlink(missing_ok=True)
        self._changed("moved", None, f"saved as {target}")

    # ------------------------------------------------------------------------------ internals
    @property
    def _results_dir(self) -> Path:
        return self.folder / "results"

    def _masks_file(self, study_id: str, mask_hash: str | None = None) -> Path:
        base = self.folder / "studies" / study_id
        return base / "masks.npz" if mask_hash is None else base / "masks" / f"{mask_hash}.npz"

    def _relative(self, path: Path) -> str | None:
        return _relative_to(path, self.folder)

    def _new_study_id(self, name: str) -> str:
        base = _slug(name)
        taken = set(self._studies) | {
            p.name for p in (self.folder / "studies").glob("*") if p.is_dir()
        }
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}-{n}", n + 1
        return candidate

    def _new_result_id(self) -> str:
        # Stems of stray PNGs count too: an id is never reused for a different image.
        numbers = [int(m.group(1)) for p in self._results_dir.glob("r*.*")
                   if (m := re.fullmatch(r"r(\d+)", p.stem))]
        numbers += [int(r[1:]) for r in self._results if r[1:].isdigit()]
        return f"r{max(numbers, default=0) + 1:05d}"

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
        return dataclasses.replace(rec, source=str(src), source_relative=_relative_to(src, folder))

    def _write_project(self, path: Path | None = None,
                       studies: Mapping[str, StudyRecord] | None = None) -> None:
        records = (self._studies if studies is None else studies).values()
        meta = {
            "format": FORMAT, "version": VERSION, "name": self.name, "created": self.created,
            "saved": _now(), "studies": [s.to_dict() for s in records],
        }
        write_text(path or self.folder / PROJECT_JSON, json.dumps(meta, indent=2) + "\n")

    def _write_result(self, record: ResultRecord) -> None:
        write_text(self._results_dir / f"{record.id}.json",
                   json.dumps(record.to_dict(), indent=2) + "\n")

    def _write_session(self, action: str) -> None:
        session = {"pid": os.getpid(), "host": socket.gethostname(), "last_action": action,
                   "time": _now()}
        write_text(self.folder / SESSION_JSON, json.dumps(session) + "\n")


def copy_json(data: Any) -> Any:
    return json.loads(json.dumps(data))


def _read_sweeps(folder: Path) -> dict[str, dict[str, Any]]:
    sweeps: dict[str, dict[str, Any]] = {}
    for path in _visible(folder, "*.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("cannot read sweep record %s: %s", path, exc)
            continue
        if isinstance(data, dict) and data.get("id") == path.stem:
            sweeps[path.stem] = data
        else:
            log.warning("skipped malformed sweep record %s", path)
    return sweeps


def _relative_to(path: Path, folder: Path) -> str | None:
    try:
        return Path(os.path.relpath(path, folder)).as_posix()
    except ValueError:  # another drive on Windows
        return None


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise ProjectError(f"{path.parent} is not an xraystudio project (no {path.name})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProjectError(f"cannot read {what} {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ProjectError(f"{what} {path} does not hold a JSON object")
    return data


def _read_session(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _visible(folder: Path, pattern: str) -> Iterator[Path]:
    return (p for p in sorted(folder.glob(pattern)) if not p.name.startswith("."))


def _read_results(folder: Path, studies: Mapping[str, StudyRecord]
                  ) -> tuple[dict[str, ResultRecord], list[Path]]:
    results: dict[str, ResultRecord] = {}
    unreadable: list[Path] = []
    for path in _visible(folder, "*.json"):
        try:
            record = ResultRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("cannot read result record %s: %s", path, exc)
            unreadable.append(path)
            continue
        if record.study_id not in studies:
            log.warning("result %s belongs to unknown study %s", record.id, record.study_id)
            unreadable.append(path)
            continue
        results[record.id] = record
    return dict(sorted(results.items())), unreadable


def _leftovers(folder: Path, studies: Mapping[str, StudyRecord],
               results: Mapping[str, ResultRecord]) -> list[Path]:
    """Files an interrupted action left: temporaries, unrecorded images, unrecorded studies."""
    found = [p for p in folder.rglob(".*.tmp*") if p.is_file()]
    found += [p for p in _visible(folder / "results", "*.png") if p.stem not in results]
    found += [p for p in _visible(folder / "results", f"*{EDIT_SUFFIX}")
              if p.name[: -len(EDIT_SUFFIX)] not in results]
    found += [p for p in _visible(folder / "studies", "*") if p.is_dir() and p.name not in studies]
    return found
