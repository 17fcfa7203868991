"""Gallery: every result of the open project, filtered, reviewed from the keyboard.

Why its own list subclass: the window has single-key shortcuts (A, R, S, N … pick tools), and a
window shortcut wins over a widget's key press. The review list claims its keys through
``ShortcutOverride`` while it has focus, so reviewing never switches tools by accident.
Decisions go straight to the project (which saves each at once); the list follows the project's
events instead of changing itself, so every view shows the same state.
"""

from __future__ import annotations

import json
import logging

from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon, QImage, QKeyEvent, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from xraystudio.curation.project import ProjectEvent, ResultRecord
from xraystudio.gui.dialogs import chest_confirm
from xraystudio.gui.dialogs.chest_confirm import failed_chest_check
from xraystudio.gui.panels.fit_label import FitLabel
from xraystudio.gui.panels.results import metrics_text
from xraystudio.gui.project_controller import ProjectController
from xraystudio.gui.qimage import ArrayImage
from xraystudio.gui.workers import ResultImagesThread, StoredImage

log = logging.getLogger(__name__)

THUMB = 112
PREVIEW = 420
RID = Qt.ItemDataRole.UserRole
#: Review keys: the list handles them itself while it has focus.
NEXT_KEYS = (Qt.Key.Key_Right, Qt.Key.Key_K)
PREVIOUS_KEYS = (Qt.Key.Key_Left, Qt.Key.Key_J)
DECISION_KEYS = {Qt.Key.Key_A: "accepted", Qt.Key.Key_R: "rejected", Qt.Key.Key_U: None}
REVIEW_KEYS = (*NEXT_KEYS, *PREVIOUS_KEYS, *DECISION_KEYS, Qt.Key.Key_S, Qt.Key.Key_N)
BADGES = {"accepted": "✓ accepted", "rejected": "✗ rejected", "none": "undecided"}
TINTS = {"accepted": QColor(46, 160, 67, 90), "rejected": QColor(218, 54, 51, 90)}
ANY = "Any"


def parse_parameters(text: str) -> dict[str, object]:
    """``"steps=20, scheduler=ddim"`` as {"steps": 20, "scheduler": "ddim"}: values are read
    as JSON where they can be (numbers, true/false), else kept as text."""
    wanted: dict[str, object] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            continue
        try:
            wanted[key.strip()] = json.loads(value.strip())
        except ValueError:
            wanted[key.strip()] = value.strip()
    return wanted


def badge_text(rec: ResultRecord) -> str:
    """The item label: decision and star badges, id and seed."""
    seed = rec.parameters.get("seed")
    star = "★ " if rec.starred else ""
    return f"{star}{BADGES[rec.decision]}\n{rec.id}" + ("" if seed is None else f" · seed {seed}")


class ReviewList(QListWidget):
    """Thumbnails; Left/Right or J/K move, A/R/U decide, S stars, N edits the note."""

    keyAction = Signal(str)  # "next", "previous", "accepted", "rejected", "none", "star", "note"

    def event(self, event: QEvent) -> bool:
        if (event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent)
                and event.modifiers() in (Qt.KeyboardModifier.NoModifier,
                                          Qt.KeyboardModifier.KeypadModifier)
                and event.key() in REVIEW_KEYS):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt naming)
        k = event.key()
        if event.modifiers() not in (Qt.KeyboardModifier.NoModifier,
                                     Qt.KeyboardModifier.KeypadModifier) or k not in REVIEW_KEYS:
            super().keyPressEvent(event)
        elif k in NEXT_KEYS:
            self.keyAction.emit("next")
        elif k in PREVIOUS_KEYS:
            self.keyAction.emit("previous")
        elif k in DECISION_KEYS:
            self.keyAction.emit(DECISION_KEYS[k] or "none")
        else:
            self.keyAction.emit("star" if k == Qt.Key.Key_S else "note")


class GalleryPanel(QWidget):
    """Filters, the review list, and a large preview with metrics, provenance and the note."""

    resultSelected = Signal(str)  # result id

    def __init__(self, controller: ProjectController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("gallery")
        self.controller = controller
        self._thumbs: dict[str, QIcon] = {}
        self._previews: dict[str, QImage] = {}
        self._loaders: list[ResultImagesThread] = []  # reading for the current list
        self._retired: list[ResultImagesThread] = []  # stopped, finishing their current image

        self.study_filter = QComboBox()
        self.decision_filter = QComboBox()
        for label, value in ((ANY, None), ("Undecided", "none"), ("Accepted", "accepted"),
                             ("Rejected", "rejected")):
            self.decision_filter.addItem(label, value)
        self.model_filter = QComboBox()
        self.starred_filter = QCheckBox("Starred only")
        self.parameters_filter = QLineEdit()
        self.parameters_filter.setPlaceholderText("Parameters, e.g. steps=20, scheduler=ddim")
        self.parameters_filter.setClearButtonEnabled(True)
        self.count_label = QLabel()
        filters = QHBoxLayout()
        for text, widget in (("Study", self.study_filter), ("Decision", self.decision_filter),
                             ("Model", self.model_filter)):
            filters.addWidget(QLabel(text))
            filters.addWidget(widget)
        filters.addWidget(self.parameters_filter, 1)
        filters.addWidget(self.starred_filter)
        filters.addStretch(1)
        filters.addWidget(self.count_label)

        self.list = ReviewList()
        self.list.setObjectName("galleryList")
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setGridSize(QSize(THUMB + 24, THUMB + 44))
        self.list.setWordWrap(True)
        self.preview = FitLabel("Open or create a project (File menu) to review its results.")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(240, 240)
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.note_edit = QLineEdit()
        self.note_edit.setPlaceholderText("Note (N to edit, Enter to keep)")
        self.note_edit.setEnabled(False)
        keys = QLabel("←/→ or J/K: previous/next · A accept · R reject · U undecide · S star · "
                      "N note")
        keys.setWordWrap(True)
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.addWidget(self.preview, 1)
        side_layout.addWidget(self.info)
        side_layout.addWidget(self.note_edit)
        side_layout.addWidget(keys)
        split = QSplitter()
        split.addWidget(self.list)
        split.addWidget(side)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(filters)
        layout.addWidget(split, 1)

        for combo in (self.study_filter, self.decision_filter, self.model_filter):
            combo.activated.connect(lambda _=0: self.refresh())
        self.starred_filter.toggled.connect(lambda _=False: self.refresh())
        self.parameters_filter.editingFinished.connect(self.refresh)
        self.list.currentItemChanged.connect(self._on_current)
        self.list.keyAction.connect(self.review)
        self.note_edit.returnPressed.connect(self._keep_note)
        controller.changed.connect(self._on_event)
        controller.projectChanged.connect(self.reset)
        self.reset()

    # ------------------------------------------------------------ content
    def reset(self) -> None:
        """Start over for a newly opened (or closed) project."""
        self._stop_loaders()
        self._thumbs.clear()
        self._previews.clear()
        self._fill_filters()
        self.refresh()

    def _fill_filters(self) -> None:
        project = self.controller.project
        keep = (self.study_filter.currentData(), self.model_filter.currentData())
        self.study_filter.clear()
        self.model_filter.clear()
        self.study_filter.addItem(ANY, None)
        self.model_filter.addItem(ANY, None)
        if project is not None:
            for rec in project.studies:
                self.study_filter.addItem(rec.name or rec.id, rec.id)
            for model in sorted({r.model for r in project.results() if r.model}):
                self.model_filter.addItem(model, model)
        for combo, value in zip((self.study_filter, self.model_filter), keep):
            combo.setCurrentIndex(max(0, combo.findData(value)))

    def filters(self) -> dict:
        starred = True if self.starred_filter.isChecked() else None
        return {"study": self.study_filter.currentData(),
                "decision": self.decision_filter.currentData(),
                "model": self.model_filter.currentData(), "starred": starred,
                "parameters": parse_parameters(self.parameters_filter.text()) or None}

    def refresh(self) -> None:
        """Rebuild the list for the current filters, keeping the selection when it still shows."""
        current = self.current_id()
        self.list.clear()
        project = self.controller.project
        records = project.results(**self.filters()) if project is not None else []
        for rec in records:
            self._add_item(rec)
        self._load([r.id for r in records])
        rows = [self.list.item(i).data(RID) for i in range(self.list.count())]
        self.list.setCurrentRow(rows.index(current) if current in rows else (0 if rows else -1))
        self._update_count()
        if not rows:
            self._show(None)

    def _add_item(self, rec: ResultRecord) -> None:
        item = QListWidgetItem(badge_text(rec))
        item.setData(RID, rec.id)
        item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        if rec.id in self._thumbs:
            item.setIcon(self._thumbs[rec.id])
        self._paint_badge(item, rec)
        self.list.addItem(item)

    @staticmethod
    def _paint_badge(item: QListWidgetItem, rec: ResultRecord) -> None:
        item.setText(badge_text(rec))
        tint = TINTS.get(rec.decision)
        item.setBackground(QBrush(tint) if tint is not None else QBrush())
        item.setToolTip(f"{rec.id} of {rec.study_id}: {rec.decision}"
                        + (", starred" if rec.starred else "") + (f"\n{rec.note}" if rec.note
                                                                  else ""))

    def _item(self, rid: str) -> QListWidgetItem | None:
        for i in range(self.list.count()):
            if self.list.item(i).data(RID) == rid:
                return self.list.item(i)
        return None

    def _update_count(self) -> None:
        project = self.controller.project
        total = len(project.results()) if project is not None else 0
        self.count_label.setText(f"{self.list.count()} of {total} results")

    def _on_event(self, event: ProjectEvent) -> None:
        project = self.controller.project
        if project is None:
            return
        if event.kind == "result_added":
            rec = project.result(event.id)
            if rec.model and self.model_filter.findData(rec.model) < 0:
                self.model_filter.addItem(rec.model, rec.model)
            if rec.id in {r.id for r in project.results(**self.filters())}:
                self._add_item(rec)
                self._load([rec.id])
                if self.list.currentRow() < 0:
                    self.list.setCurrentRow(0)
            self._update_count()
        elif event.kind == "result_changed":
            item = self._item(event.id)
            if item is not None:
                self._paint_badge(item, project.result(event.id))
            if event.id == self.current_id():
                self._show(event.id)
        elif event.kind in ("study_added", "moved"):
            self._fill_filters()

    # ------------------------------------------------------------- images
    def _load(self, ids: list[str]) -> None:
        project = self.controller.project
        if project is None:
            return
        todo = [StoredImage(rid, project.result_path(rid)) for rid in ids if rid not in self._thumbs]
        if not todo:
            return
        thread = ResultImagesThread(todo, parent=self)
        thread.loaded.connect(self._on_loaded)
        thread.finished.connect(lambda t=thread: self._loader_done(t))
        self._loaders.append(thread)
        thread.start()

    def _loader_done(self, thread: ResultImagesThread) -> None:
        for threads in (self._loaders, self._retired):
            if thread in threads:
                threads.remove(thread)
        thread.deleteLater()

    def _stop_loaders(self) -> None:
        for thread in self._loaders:
            thread.cancel()
            thread.loaded.disconnect(self._on_loaded)
        self._retired += self._loaders
        self._loaders = []

    def _on_loaded(self, rid: str, image, pixels, _edit=None) -> None:
        wrapped = ArrayImage.wrap(pixels, QImage.Format.Format_RGB32).image
        preview = wrapped.scaled(PREVIEW, PREVIEW, Qt.AspectRatioMode.KeepAspectRatio,
                                 Qt.TransformationMode.SmoothTransformation)
        self._previews[rid] = preview
        self._thumbs[rid] = QIcon(QPixmap.fromImage(
            preview.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                           Qt.TransformationMode.SmoothTransformation)))
        item = self._item(rid)
        if item is not None:
            item.setIcon(self._thumbs[rid])
        if rid == self.current_id():
            self._show(rid)

    def shutdown(self) -> None:
        """Stop and wait for the image readers (the window is closing)."""
        for thread in self._loaders + self._retired:
            thread.cancel()
            thread.wait(5000)

    # ------------------------------------------------------------- review
    def current_id(self) -> str | None:
        item = self.list.currentItem()
        return item.data(RID) if item is not None else None

    def _on_current(self, item: QListWidgetItem | None, _previous=None) -> None:
        rid = item.data(RID) if item is not None else None
        self._show(rid)
        if rid is not None:
            self.resultSelected.emit(rid)

    def _show(self, rid: str | None) -> None:
        project = self.controller.project
        self.note_edit.setEnabled(rid is not None and self.controller.writable)
        if rid is None or project is None:
            self.preview.set_image(None)
            self.preview.setText("No results" if project is not None else
                                 "Open or create a project (File menu) to review its results.")
            self.info.clear()
            self.note_edit.clear()
            return
        rec = project.result(rid)
        image = self._previews.get(rid)
        if image is not None:
            self.preview.set_image(image)
        else:
            self.preview.set_image(None)
            self.preview.setText("Loading…")
        params = {k: v for k, v in rec.parameters.items() if v is not None}
        metrics = rec.provenance.get("metrics") or {}
        self.info.setText(
            f"<b>{rec.id}</b> · study {rec.study_id} · model {rec.model or '?'} · "
            f"{BADGES[rec.decision]}{' · ★' if rec.starred else ''}<br>"
            f"{metrics_text(metrics) if metrics else 'No metrics recorded'}<br>"
            f"<small>{json.dumps(params, default=str)}</small>")
        if not self.note_edit.hasFocus():
            self.note_edit.setText(rec.note)

    def step(self, delta: int) -> None:
        row = self.list.currentRow() + delta
        if 0 <= row < self.list.count():
            self.list.setCurrentRow(row)

    def review(self, action: str) -> None:
        """Apply one review key to the selected result (decisions advance to the next)."""
        rid = self.current_id()
        if action in ("next", "previous"):
            self.step(1 if action == "next" else -1)
        elif rid is None:
            return
        elif action in ("accepted", "rejected", "none"):
            reason = (failed_chest_check(self.controller.project.result(rid).provenance)
                      if action == "accepted" and self.controller.project is not None else None)
            if reason and not chest_confirm.confirm_unsupported(self, reason, "Accept this result"):
                return
            if self.controller.run(lambda p: p.decide(rid, action)) and action != "none":
                self.step(1)
        elif action == "star":
            self.controller.run(lambda p: p.star(rid, not p.result(rid).starred))
        elif action == "note" and self.note_edit.isEnabled():
            self.note_edit.setFocus()
            self.note_edit.selectAll()

    def _keep_note(self) -> None:
        rid = self.current_id()
        text = self.note_edit.text()
        self.list.setFocus()
        if rid is not None:
            self.controller.run(lambda p: p.note(rid, text))
