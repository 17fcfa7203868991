"""The open project as the window sees it: one owner of the curation core's :class:`Project`.

Why a controller: the core is Qt-free and not thread-safe, and several views (title, gallery,
results strip) must follow it. This object lives on the GUI thread, re-emits the core's events
as a Qt signal so views subscribe instead of being told, and keeps the link between the study
on the canvas and its project record, saving mask edits a moment after they stop (a stroke
emits many small changes; one save per pause is enough and loses at most that pause).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QThread, QTimer, Signal

from xraystudio.curation.project import Project, ProjectEvent, StagedResult
from xraystudio.errors import XRayStudioError
from xraystudio.masks import MaskStack
from xraystudio.study import Study

log = logging.getLogger(__name__)

#: Milliseconds without mask edits before they are written to the project.
MASK_SAVE_DELAY_MS = 400


class StageThread(QThread):
    """Encodes results to staged files off the GUI thread (:meth:`Project.stage_result`)."""

    def __init__(self, project: Project, study_id: str, images: list,
                 masks: MaskStack | list[MaskStack],
                 on_stored: Callable[[list[str]], None] | None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project, self.study_id, self.images = project, study_id, images
        #: The masks each image was made from (one stack for all, or one per image).
        self.masks = masks if isinstance(masks, list) else [masks] * len(images)
        self.on_stored = on_stored
        self.staged: list[StagedResult] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for r, masks in zip(self.images, self.masks):
                edit = (r.changed, r.values) if getattr(r, "is_edit", False) else None
                self.staged.append(self.project.stage_result(r.image, masks, edit=edit))
        except BaseException as exc:  # reported on the GUI thread
            log.exception("staging a result failed")
            self.error = exc


class ProjectController(QObject):
    """Holds at most one open project and the id of the study shown from it."""

    changed = Signal(object)  # ProjectEvent of the core
    projectChanged = Signal()  # opened, closed, moved: titles and lists start over
    failed = Signal(str, str)  # title, message (e.g. an autosave that could not be written)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.study_id: str | None = None
        self._masks: MaskStack | None = None
        self._masks_dirty = False
        self._unsubscribe: Callable[[], None] | None = None
        self._unsubscribe_masks: Callable[[], None] | None = None
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(MASK_SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.flush_masks)
        self._staging: list[StageThread] = []

    # ------------------------------------------------------------- project
    @property
    def is_open(self) -> bool:
        return self.project is not None

    @property
    def writable(self) -> bool:
        return self.project is not None and not self.project.read_only

    @property
    def title(self) -> str:
        if self.project is None:
            return ""
        return self.project.name + (" (read-only)" if self.project.read_only else "")

    def set_project(self, project: Project | None) -> None:
        """Make ``project`` the open one, closing the previous one cleanly."""
        self.close()
        self.project = project
        if project is not None:
            self._unsubscribe = project.subscribe(self._relay)
        self.projectChanged.emit()

    def close(self) -> None:
        """Save pending mask edits and end the session (no restore offered next time)."""
        if self.project is None:
            return
        self.finish_staging()
        self.flush_masks()
        self.detach_study()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        project, self.project = self.project, None
        project.close()
        self.projectChanged.emit()

    def save_as(self, folder: str | Path) -> None:
        assert self.project is not None
        self.flush_masks()
        self.project.save_as(folder)
        self.projectChanged.emit()

    def _relay(self, event: ProjectEvent) -> None:
        self.changed.emit(event)

    # -------------------------------------------------------------- studies
    def study_for(self, source: Path) -> str | None:
        """The project's study whose source is ``source``, if it has one."""
        if self.project is None:
            return None
        source = Path(source).resolve()
        for rec in self.project.studies:
            try:
                if self.project.source_path(rec.id).resolve() == source:
                    return rec.id
            except XRayStudioError:
                continue
        return None

    def attach_study(self, study: Study, keep_masks: bool = False) -> str | None:
        """Link the study on the canvas to the project, adding it when new; returns its id.

        A study already in the project gets the project's masks (they are the saved work),
        unless ``keep_masks`` (masks the user just loaded), which are then saved to it.
        """
        self.detach_study()
        if self.project is None or study.image.source is None:
            return None
        sid = self.study_for(study.image.source)
        if sid is not None and keep_masks and self.writable:
            self.project.update_masks(sid, study.masks)
        elif sid is not None:
            study.masks = self.project.load_masks(sid)
        elif self.writable:
            sid = self.project.add_study(study)
        else:
            return None
        self.study_id = sid
        self._masks = study.masks
        if self.writable:
            self._unsubscribe_masks = study.masks.subscribe(self._on_masks_edited)
        return sid

    def _on_masks_edited(self, *_: object) -> None:
        self._masks_dirty = True
        self._save_timer.start()

    def detach_study(self) -> None:
        self.flush_masks()
        if self._unsubscribe_masks is not None:
            self._unsubscribe_masks()
            self._unsubscribe_masks = None
        self.study_id = None
        self._masks = None

    def flush_masks(self) -> None:
        """Write the attached study's masks now if edits are waiting."""
        self._save_timer.stop()
        if (not self._masks_dirty or self.project is None or self.study_id is None
                or self._masks is None):
            return
        self._masks_dirty = False
        try:
            self.project.update_masks(self.study_id, self._masks)
        except (XRayStudioError, OSError) as exc:
            log.exception("autosave of masks failed")
            self.failed.emit("Cannot save the masks to the project", str(exc))

    # -------------------------------------------------------------- results
    def add_results(self, images: list, masks: MaskStack | list[MaskStack],
                    on_stored: Callable[[list[str]], None] | None = None) -> bool:
        """Store generated images (GeneratedImage) of the attached study in the background,
        in their order; ``masks`` are the ones they were made from (one per image, or one).

        The PNGs are encoded on a worker thread; the results are committed on the GUI thread
        once staged, and ``on_stored(ids)`` is called then. False when nothing will be stored.
        """
        if not self.writable or self.study_id is None:
            return False
        self.flush_masks()
        thread = StageThread(self.project, self.study_id, list(images), masks, on_stored,
                             parent=self)
        thread.finished.connect(lambda t=thread: self._commit(t))
        self._staging.append(thread)
        thread.start()
        return True

    @property
    def staging(self) -> bool:
        """Whether results are still being encoded for the project."""
        return bool(self._staging)

    def finish_staging(self) -> None:
        """Wait for results being encoded and commit them now (before the project closes)."""
        for thread in list(self._staging):
            thread.wait()
            self._commit(thread)

    def _commit(self, thread: StageThread) -> None:
        if thread not in self._staging:
            return  # committed already (finish_staging)
        self._staging.remove(thread)
        thread.deleteLater()
        project = thread.project
        if project is not self.project or project.read_only:
            log.info("discarding %d staged result(s) of a project no longer open",
                     len(thread.staged))
            for staged in thread.staged:
                staged.discard()
            return
        ids: list[str] = []
        error: BaseException | None = thread.error
        for i, staged in enumerate(thread.staged):
            try:
                ids.append(project.add_result(thread.study_id, staged,
                                              thread.images[i].provenance, thread.masks[i]))
            except (XRayStudioError, OSError) as exc:
                log.exception("storing a result failed")
                error = exc
                for rest in thread.staged[i:]:
                    rest.discard()
                break
        if error is not None:
            self.failed.emit("Cannot store the result in the project", str(error))
        if thread.on_stored is not None and ids:
            thread.on_stored(ids)

    def run(self, action: Callable[[Project], None]) -> bool:
        """Apply a curation action; errors (a read-only project) become one message."""
        if self.project is None:
            return False
        try:
            action(self.project)
        except (XRayStudioError, OSError) as exc:
            self.failed.emit("Cannot change the project", str(exc))
            return False
        return True
