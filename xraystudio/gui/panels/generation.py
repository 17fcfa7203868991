"""The generation panel: which model, with what settings, and how far the current run is.

The panel only collects parameters and shows progress; the main window owns the worker. Model
folders are checked by reading their ``xraystudio.json`` (no torch needed), so adding a model
tells the user at once whether it is usable and whether it takes a text prompt. Edit mode is
offered when the folder has an ``edit/`` model; it changes the open radiograph only where nodules
were added, moved or removed, so the settings of the whole-image modes grey out in it.
"""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from xraystudio.errors import ModelError
from xraystudio.synthesis.edit_pipeline import EDIT_FOLDER
from xraystudio.synthesis.edit_window import EditSpec
from xraystudio.synthesis.fullres import MAX_DETAIL_GAIN
from xraystudio.synthesis.model import (
    BUILTIN_NAME,
    PRIOR_FOLDER,
    builtin_model_dir,
    prior_has_variation,
    read_spec,
)
from xraystudio.synthesis.spec import MAX_VARIATION, SCHEDULERS, Defaults, ModelSpec

BUILTIN = ""  # the model combo's data for the built-in model (Engine.load(None))
PREVIEW_PX = 200
EDIT, LAYOUT, GUIDED = "edit", "layout", "guided"
MODE_TIPS = {
    EDIT: "Change this radiograph only where nodules were stamped, moved or deleted, or where the "
          "Remove tool (X) painted; every other pixel stays the source's, at its full resolution "
          "and in its own format.",
    LAYOUT: "A new patient with this anatomy, drawn from the masks only: a coarse picture at "
            "the model's working size, then (with a full-resolution stage) rib cortex, vessels "
            "and grain at its full resolution.",
    GUIDED: "Redraw the whole image over a coarse copy of this radiograph, at the model's "
            "working size, then at its full resolution when it has that stage.",
}


def model_spec(ref: str) -> ModelSpec | None:
    """The spec of a model folder as the engine reads it (``synthesis.model.read_spec``: an
    xraystudio.json, or a plain diffusers SD ControlNet folder), or None if it is none."""
    try:
        return read_spec(model_folder(ref))
    except ModelError:
        return None


def model_folder(ref: str) -> Path:
    return Path(ref) if ref else builtin_model_dir()


def read_edit_spec(ref: str) -> EditSpec | None:
    """The model folder's edit model spec (``edit/edit.json``), or None when it has none."""
    folder = model_folder(ref) / EDIT_FOLDER
    if not folder.is_dir():
        return None
    try:
        return EditSpec.read(folder)
    except ModelError:
        return None


def resolutions(ref: str, spec: ModelSpec | None) -> list[int]:
    """The sides layout and guided modes can draw with this model, largest (the default) first."""
    if spec is None:
        return []
    from xraystudio.synthesis.fullres import model_resolutions

    try:
        return sorted(model_resolutions(model_folder(ref), spec.kind, spec.resolution), reverse=True)
    except ModelError:
        return [spec.resolution]


def stage_detail_gain(ref: str) -> float | None:
    """The tuned detail gain of the model's full-resolution stage (None if it cannot be read)."""
    from xraystudio.synthesis.fullres import FULLRES_FOLDER, FullresSpec

    try:
        return FullresSpec.read(model_folder(ref) / FULLRES_FOLDER).detail_gain
    except ModelError:
        return None


def double_spin(low: float, high: float, step: float, name: str = "",
                tip: str = "") -> QDoubleSpinBox:
    """A spin box for one of the panel's real-valued settings."""
    spin = QDoubleSpinBox()
    if name:
        spin.setObjectName(name)
    spin.setRange(low, high)
    spin.setSingleStep(step)
    if tip:
        spin.setToolTip(tip)
    return spin


def format_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "—"
    seconds = max(0, round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


class GenerationPanel(QWidget):
    generateRequested = Signal()
    cancelRequested = Signal()
    addModelRequested = Signal()
    #: The chosen model's folder, after every change of model (also by set_models).
    modelChanged = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = QComboBox()
        self.model.setObjectName("modelCombo")
        self.add_model = QPushButton("Add…")
        self.add_model.setToolTip("Add a model folder (with xraystudio.json and safetensors)")
        self.model_note = QLabel()
        self.model_note.setWordWrap(True)
        self.model_note.setStyleSheet("color: palette(mid);")
        self.mode = QComboBox()
        self.mode.setObjectName("modeCombo")
        self.mode.addItem("Edit this radiograph (native resolution)", EDIT)
        self.mode.addItem("New patient from the masks (layout)", LAYOUT)
        self.mode.addItem("Redraw whole image, guided", GUIDED)
        for i in range(self.mode.count()):
            self.mode.setItemData(i, MODE_TIPS[self.mode.itemData(i)],
                                  Qt.ItemDataRole.ToolTipRole)
        self.mode_note = QLabel()
        self.mode_note.setObjectName("modeNote")
        self.mode_note.setWordWrap(True)
        self.mode_note.setStyleSheet("color: palette(mid);")
        self._edit_spec: EditSpec | None = None
        self._spec_defaults = Defaults()
        self.prior = QCheckBox("Start from the layout prior")
        self.prior.setObjectName("priorCheck")
        self.prior.setChecked(True)
        self.prior.setToolTip(
            "Layout mode: start from the exposure and body outline that radiographs with this "
            "anatomy have (the typical look, varied per seed by Variation). Off: draw them at "
            "random, unguided.")
        self._has_prior = False
        self.variation = double_spin(
            0.0, MAX_VARIATION, 0.25, "variationSpin",
            "Layout mode over the typical look: how far each seed's patient departs from it "
            "(exposure, build, surround), in units of how far real radiographs do. 0 = the "
            "typical look for every seed; the model's tuned value by default.")
        self._has_variation = False
        self.resolution = QComboBox()
        self.resolution.setObjectName("resolutionCombo")
        self.resolution.setToolTip(
            "Layout and guided modes: the model's working size, or its full resolution, where a "
            "second stage draws rib cortex, fine vessels and film grain over the coarse picture "
            "(a few seconds more per image).")
        self.detail = double_spin(
            0.25, MAX_DETAIL_GAIN, 0.25, "detailSpin",
            "Full resolution: how strongly rib edges and vessels (6-11 mm) the coarse picture "
            "holds are lifted. 1 = as the second stage draws them; the model's tuned value by "
            "default.")
        self._stage_detail: float | None = None
        self.random_seed = QCheckBox("Random")
        self.random_seed.setChecked(True)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setEnabled(False)
        self.steps = QSpinBox()
        self.steps.setRange(1, 1000)
        self.scheduler = QComboBox()
        self.scheduler.addItems(list(SCHEDULERS))
        self.guidance = double_spin(1.0, 30.0, 0.5)
        self.prompt = QLineEdit()
        self.negative = QLineEdit()
        self.conditioning = double_spin(0.0, 2.0, 0.1)
        self.n_images = QSpinBox()
        self.n_images.setRange(1, 16)
        self.generate = QPushButton("Generate")
        self.generate.setObjectName("generateButton")
        self.generate.setDefault(True)
        self.generate.setToolTip("Generate images from the current masks (Ctrl+Return)")
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.status = QLabel("Ready")
        self.status.setWordWrap(True)
        self.preview = QLabel()
        self.preview.setObjectName("preview")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setFixedHeight(PREVIEW_PX)
        self.preview.setStyleSheet("background: #18181b; color: #888;")
        self.preview.setText("Live preview")

        model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addWidget(self.add_model)
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.random_seed)
        form = QFormLayout()
        form.addRow("Model", model_row)
        form.addRow("", self.model_note)
        form.addRow("Mode", self.mode)
        form.addRow("", self.mode_note)
        form.addRow("", self.prior)
        form.addRow("Variation", self.variation)
        form.addRow("Resolution", self.resolution)
        form.addRow("Detail", self.detail)
        form.addRow("Seed", seed_row)
        form.addRow("Steps", self.steps)
        form.addRow("Scheduler", self.scheduler)
        form.addRow("Conditioning", self.conditioning)
        form.addRow("Guidance", self.guidance)
        form.addRow("Prompt", self.prompt)
        form.addRow("Negative", self.negative)
        form.addRow("Images", self.n_images)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate, 1)
        buttons.addWidget(self.cancel)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.preview)
        layout.addStretch(1)
        self._takes_text = False
        self._text_rows = [(form.labelForField(w), w) for w in
                           (self.guidance, self.prompt, self.negative)]
        self._whole_image_rows = [(form.labelForField(w), w) for w in
                                  (self.resolution, self.conditioning, self.guidance, self.prompt,
                                   self.negative)]

        self._detail_label = form.labelForField(self.detail)
        self._variation_label = form.labelForField(self.variation)
        self.prior.toggled.connect(lambda _on: self._update_prior())
        self.random_seed.toggled.connect(lambda random: self.seed.setEnabled(not random))
        self.resolution.currentIndexChanged.connect(lambda _i: self._update_detail())
        self.mode.currentIndexChanged.connect(self._on_mode)
        self.model.currentIndexChanged.connect(self._on_model)
        self.generate.clicked.connect(self.generateRequested)
        self.cancel.clicked.connect(self.cancelRequested)
        self.add_model.clicked.connect(self.addModelRequested)
        self.set_models([])

    # ---------------------------------------------------------------- models
    def set_models(self, folders: list[str], current: str | None = None) -> None:
        """The built-in model plus ``folders``; keeps or sets the current choice."""
        current = self.model_ref() if current is None and self.model.count() else current
        self.model.blockSignals(True)
        self.model.clear()
        self.model.addItem(f"Built-in ({BUILTIN_NAME})", BUILTIN)
        for folder in folders:
            spec = model_spec(folder)
            self.model.addItem(spec.name if spec else Path(folder).name, folder)
            self.model.setItemData(self.model.count() - 1, folder, Qt.ItemDataRole.ToolTipRole)
        index = max(0, self.model.findData(current if current is not None else BUILTIN))
        self.model.setCurrentIndex(index)
        self.model.blockSignals(False)
        self._on_model(index)

    def model_ref(self) -> str | None:
        """The model reference for Engine.load (None: the built-in model)."""
        data = self.model.currentData()
        return data or None

    def _on_model(self, _index: int) -> None:
        ref = self.model.currentData() or ""
        self.modelChanged.emit(model_folder(ref))
        spec = model_spec(ref)
        if spec is None:
            self.model_note.setText(
                "The built-in model is not installed yet; add a model folder with Add…"
                if not ref else f"{ref} is not a readable model folder")
            takes_text, guide, d = False, True, Defaults()
        else:
            self.model_note.setText(spec.description or f"{spec.kind}, {spec.resolution} px")
            takes_text, guide, d = spec.takes_text, spec.supports_guide, spec.defaults
        self._spec_defaults = d
        self._edit_spec = read_edit_spec(ref) if spec is not None else None
        self.conditioning.setValue(d.conditioning_scale)
        self.guidance.setValue(d.guidance_scale)
        self.prompt.setText(spec.prompt if spec else "")
        self.negative.setText(spec.negative_prompt if spec else "")
        sizes = resolutions(ref, spec)
        self._stage_detail = stage_detail_gain(ref) if len(sizes) > 1 else None
        self.detail.setValue(self._stage_detail or 1.0)
        self.resolution.clear()
        for size in sizes:
            self.resolution.addItem(
                f"{size} px" + (" (full resolution)" if size != sizes[-1] else
                                " (working size)" if len(sizes) > 1 else ""), size)
        px = f", {sizes[0]} px" if sizes else ""
        self.mode.setItemText(self.mode.findData(GUIDED), f"Redraw whole image, guided ({px[2:]})"
                              if px else "Redraw whole image, guided")
        self.mode.setItemText(self.mode.findData(LAYOUT), f"New patient from the masks (layout{px})")
        self._set_mode_enabled(EDIT, self._edit_spec is not None)
        self._set_mode_enabled(GUIDED, guide)
        self._has_prior = spec is not None and spec.supports_guide and \
            (model_folder(ref) / PRIOR_FOLDER).is_dir()
        self._has_variation = self._has_prior and prior_has_variation(model_folder(ref))
        self.variation.setValue(d.variation)
        self._takes_text = takes_text
        for label, widget in self._text_rows:
            label.setVisible(takes_text)
            widget.setVisible(takes_text)
        whole = d.mode if d.mode == LAYOUT or d.mode == GUIDED and guide else \
            (GUIDED if guide else LAYOUT)
        default = EDIT if self._edit_spec is not None else whole
        index = self.mode.findData(default)
        if index == self.mode.currentIndex():
            self._on_mode()
        else:
            self.mode.setCurrentIndex(index)  # runs _on_mode

    def _set_mode_enabled(self, mode: str, enabled: bool) -> None:
        self.mode.model().item(self.mode.findData(mode)).setEnabled(enabled)

    def mode_enabled(self, mode: str) -> bool:
        index = self.mode.findData(mode)
        return index >= 0 and self.mode.model().item(index).isEnabled()

    @property
    def edit_mode(self) -> bool:
        return self.mode.currentData() == EDIT

    def _on_mode(self, _index: int | None = None) -> None:
        """Steps and scheduler follow the mode's network; whole-image settings grey out in edit
        mode (they do not act there)."""
        edit = self.edit_mode
        if edit and self._edit_spec is not None:
            self.steps.setValue(self._edit_spec.steps)
            self.scheduler.setCurrentText(self._edit_spec.scheduler)
        else:
            self.steps.setValue(self._spec_defaults.steps)
            self.scheduler.setCurrentText(self._spec_defaults.scheduler)
        for label, widget in self._whole_image_rows:
            label.setEnabled(not edit)
            widget.setEnabled(not edit)
        self.mode_note.setText(MODE_TIPS.get(self.mode.currentData(), ""))
        self._update_prior()
        self._update_detail()

    def _update_prior(self) -> None:
        """Shown for models with a prior; it only acts in layout mode, so it greys out in the
        other modes. The variation acts over the prior: it greys out with the prior off."""
        usable = self._has_prior and self.mode.currentData() == LAYOUT
        self.prior.setEnabled(usable)
        self.prior.setVisible(self._has_prior)
        for widget in (self._variation_label, self.variation):
            widget.setVisible(self._has_variation)
            widget.setEnabled(usable and self._has_variation and self.prior.isChecked())

    @property
    def _full_resolution(self) -> bool:
        return self.resolution.count() > 1 and self.resolution.currentIndex() == 0

    def _update_detail(self) -> None:
        """Shown for models with a full-resolution stage; it acts only when that stage draws
        (layout or guided mode at full resolution), so it greys out otherwise."""
        shown = self._stage_detail is not None
        usable = shown and not self.edit_mode and self._full_resolution
        for widget in (self._detail_label, self.detail):
            widget.setVisible(shown)
            widget.setEnabled(usable)

    # ------------------------------------------------------------ parameters
    def params(self) -> dict:
        """GenerationRequest keyword arguments (without masks and image)."""
        p = {
            "mode": self.mode.currentData(),
            "seed": None if self.random_seed.isChecked() else self.seed.value(),
            "steps": self.steps.value(),
            "scheduler": self.scheduler.currentText(),
            "n_images": self.n_images.value(),
        }
        if p["mode"] == EDIT:
            return p
        p.update(conditioning_scale=self.conditioning.value(), preview_every=1)
        if self.resolution.count():
            p["resolution"] = int(self.resolution.currentData())
        if self.detail.isEnabled():
            p["detail_gain"] = self.detail.value()
        if self._has_prior and p["mode"] == "layout":
            p["prior"] = self.prior.isChecked()
        if self.variation.isEnabled():
            p["variation"] = self.variation.value()
        if self._takes_text:
            p.update(guidance_scale=self.guidance.value(), prompt=self.prompt.text(),
                     negative_prompt=self.negative.text())
        return p

    def saved_state(self) -> dict:
        """What to remember between runs."""
        return {"model": self.model.currentData() or "", "mode": self.mode.currentData(),
                "prior": self.prior.isChecked(),
                "random_seed": self.random_seed.isChecked(), "seed": self.seed.value(),
                "steps": self.steps.value(), "scheduler": self.scheduler.currentText(),
                "resolution": self.resolution.currentData(), "detail": self.detail.value(),
                "variation": self.variation.value(),
                "conditioning": self.conditioning.value(), "guidance": self.guidance.value(),
                "prompt": self.prompt.text(), "negative": self.negative.text(),
                "n_images": self.n_images.value(), "edit_offered": self.mode_enabled(EDIT)}

    def restore(self, state: dict) -> None:
        """Apply ``saved_state`` output; unknown or bad values are skipped."""
        try:
            if state.get("model") is not None:
                index = self.model.findData(state["model"])
                if index >= 0:
                    self.model.setCurrentIndex(index)
            # A mode chosen before this model offered edit mode gives way to edit mode, the
            # default for a model that has one; a mode chosen among all three is kept.
            mode = state.get("mode")
            keep = (mode is not None and self.mode_enabled(mode)
                    and (state.get("edit_offered") or not self.mode_enabled(EDIT)))
            if keep:
                self.mode.setCurrentIndex(self.mode.findData(mode))
            self.prior.setChecked(bool(state.get("prior", True)))
            self.random_seed.setChecked(bool(state.get("random_seed", True)))
            self.seed.setValue(int(state.get("seed", 0)))
            if keep:  # steps and scheduler were the saved mode's
                self.steps.setValue(int(state.get("steps", self.steps.value())))
                if state.get("scheduler") in SCHEDULERS:
                    self.scheduler.setCurrentText(state["scheduler"])
            index = self.resolution.findData(state.get("resolution"))
            if index >= 0:
                self.resolution.setCurrentIndex(index)
            self.detail.setValue(float(state.get("detail", self.detail.value())))
            self.variation.setValue(float(state.get("variation", self.variation.value())))
            self.conditioning.setValue(float(state.get("conditioning", self.conditioning.value())))
            self.guidance.setValue(float(state.get("guidance", self.guidance.value())))
            self.prompt.setText(str(state.get("prompt", self.prompt.text())))
            self.negative.setText(str(state.get("negative", self.negative.text())))
            self.n_images.setValue(int(state.get("n_images", 1)))
        except (TypeError, ValueError):
            pass

    # -------------------------------------------------------------- progress
    def set_running(self, running: bool) -> None:
        self.generate.setEnabled(not running)
        self.cancel.setEnabled(running)
        if running:
            self.progress.setValue(0)
            self.preview.clear()
            self.preview.setText("Live preview")

    def show_stage(self, text: str) -> None:
        self.status.setText(text)

    def show_progress(self, progress, preview) -> None:
        self.progress.setValue(round(1000 * progress.fraction))
        stage = f" ({progress.stage})" if progress.stage else ""
        self.status.setText(
            f"Image {progress.image_index + 1} of {progress.n_images} · step {progress.step} of "
            f"{progress.total}{stage} · {format_eta(progress.elapsed_s)} elapsed · "
            f"ETA {format_eta(progress.eta_s)}"
        )
        if preview is not None:
            h, w = preview.shape
            image = QImage(preview.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
            self.preview.setPixmap(QPixmap.fromImage(image).scaled(
                PREVIEW_PX, PREVIEW_PX, Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation))

    def show_done(self, text: str, complete: bool) -> None:
        self.progress.setValue(self.progress.maximum() if complete else 0)
        self.status.setText(text)
