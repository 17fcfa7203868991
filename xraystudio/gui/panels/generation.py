"""The generation panel: which model, with what settings, and how far the current run is.

The panel only collects parameters and shows progress; the main window owns the worker. Model
folders are checked by reading their ``xraystudio.json`` (no torch needed), so adding a model
tells the user at once whether it is usable and whether it takes a text prompt.
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
from xraystudio.synthesis.model import BUILTIN_NAME, PRIOR_FOLDER, builtin_model_dir
from xraystudio.synthesis.spec import SCHEDULERS, Defaults, ModelSpec

BUILTIN = ""  # the model combo's data for the built-in model (Engine.load(None))
PREVIEW_PX = 200


def read_spec(ref: str) -> ModelSpec | None:
    """The spec of a model folder (the built-in one for ``BUILTIN``), or None if unreadable."""
    folder = Path(ref) if ref else builtin_model_dir()
    try:
        return ModelSpec.read(folder)
    except ModelError:
        return None


def format_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "—"
    seconds = max(0, round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


class GenerationPanel(QWidget):
    generateRequested = Signal()
    cancelRequested = Signal()
    addModelRequested = Signal()

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
        self.mode.addItem("Layout (masks only)", "layout")
        self.mode.addItem("Guided by this radiograph", "guided")
        self.prior = QCheckBox("Typical look (layout prior)")
        self.prior.setObjectName("priorCheck")
        self.prior.setChecked(True)
        self.prior.setToolTip(
            "Layout mode: start from the exposure and body outline that radiographs with this "
            "anatomy typically have. Off: draw them at random, for more varied images.")
        self._has_prior = False
        self.random_seed = QCheckBox("Random")
        self.random_seed.setChecked(True)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setEnabled(False)
        self.steps = QSpinBox()
        self.steps.setRange(1, 1000)
        self.scheduler = QComboBox()
        self.scheduler.addItems(list(SCHEDULERS))
        self.guidance = QDoubleSpinBox()
        self.guidance.setRange(1.0, 30.0)
        self.guidance.setSingleStep(0.5)
        self.prompt = QLineEdit()
        self.negative = QLineEdit()
        self.conditioning = QDoubleSpinBox()
        self.conditioning.setRange(0.0, 2.0)
        self.conditioning.setSingleStep(0.1)
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
        form.addRow("", self.prior)
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

        self.random_seed.toggled.connect(lambda random: self.seed.setEnabled(not random))
        self.mode.currentIndexChanged.connect(self._update_prior)
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
            spec = read_spec(folder)
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
        spec = read_spec(ref)
        if spec is None:
            self.model_note.setText(
                "The built-in model is not installed yet; add a model folder with Add…"
                if not ref else f"{ref} is not a readable model folder")
            takes_text, guide, d = False, True, Defaults()
        else:
            self.model_note.setText(spec.description or f"{spec.kind}, {spec.resolution} px")
            takes_text, guide, d = spec.takes_text, spec.supports_guide, spec.defaults
        self.steps.setValue(d.steps)
        self.scheduler.setCurrentText(d.scheduler)
        self.conditioning.setValue(d.conditioning_scale)
        self.guidance.setValue(d.guidance_scale)
        self.prompt.setText(spec.prompt if spec else "")
        self.negative.setText(spec.negative_prompt if spec else "")
        self.mode.setCurrentIndex(self.mode.findData(d.mode if guide else "layout"))
        self.mode.model().item(1).setEnabled(guide)
        if not guide:
            self.mode.setCurrentIndex(0)
        folder = Path(ref) if ref else builtin_model_dir()
        self._has_prior = spec is not None and spec.supports_guide and (folder / PRIOR_FOLDER).is_dir()
        self._update_prior()
        self._takes_text = takes_text
        for label, widget in self._text_rows:
            label.setVisible(takes_text)
            widget.setVisible(takes_text)

    def _update_prior(self) -> None:
        """Shown for models with a prior; it only acts in layout mode, so it greys out in guided."""
        usable = self._has_prior and self.mode.currentData() == "layout"
        self.prior.setEnabled(usable)
        self.prior.setVisible(self._has_prior)

    # ------------------------------------------------------------ parameters
    def params(self) -> dict:
        """GenerationRequest keyword arguments (without masks and image)."""
        p = {
            "mode": self.mode.currentData(),
            "seed": None if self.random_seed.isChecked() else self.seed.value(),
            "steps": self.steps.value(),
            "scheduler": self.scheduler.currentText(),
            "conditioning_scale": self.conditioning.value(),
            "n_images": self.n_images.value(),
            "preview_every": 1,
        }
        if self._has_prior and p["mode"] == "layout":
            p["prior"] = self.prior.isChecked()
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
                "conditioning": self.conditioning.value(), "guidance": self.guidance.value(),
                "prompt": self.prompt.text(), "negative": self.negative.text(),
                "n_images": self.n_images.value()}

    def restore(self, state: dict) -> None:
        """Apply ``saved_state`` output; unknown or bad values are skipped."""
        try:
            if state.get("model") is not None:
                index = self.model.findData(state["model"])
                if index >= 0:
                    self.model.setCurrentIndex(index)
            if state.get("mode") is not None and self.mode.findData(state["mode"]) >= 0:
                self.mode.setCurrentIndex(self.mode.findData(state["mode"]))
            self.prior.setChecked(bool(state.get("prior", True)))
            self.random_seed.setChecked(bool(state.get("random_seed", True)))
            self.seed.setValue(int(state.get("seed", 0)))
            self.steps.setValue(int(state.get("steps", self.steps.value())))
            if state.get("scheduler") in SCHEDULERS:
                self.scheduler.setCurrentText(state["scheduler"])
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
        self.status.setText(
            f"Image {progress.image_index + 1} of {progress.n_images} · step {progress.step} of "
            f"{progress.total} · {format_eta(progress.elapsed_s)} elapsed · "
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
