"""Loading and saving the shown study's masks as files (File ▸ Load masks…, Save masks)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from xraystudio.engine.opening import mask_sidecar
from xraystudio.errors import XRayStudioError
from xraystudio.gui.settings import AppSettings
from xraystudio.io.masks_io import load_masks, save_masks
from xraystudio.study import Study


class MaskFiles(QObject):
    loaded = Signal(object)  # the MaskStack read, to replace the study's
    saved = Signal()  # the masks on disk are the study's
    failed = Signal(str, str)  # title, message
    status = Signal(str, int)  # a status line message, how long to show it (ms)

    def __init__(self, settings: AppSettings, study: Callable[[], Study | None],
                 source: Callable[[], Path | None], parent: QWidget) -> None:
        """``study`` is the study shown now, ``source`` the file it was opened from."""
        super().__init__(parent)
        self.settings, self.study, self.source = settings, study, source

    def choose_masks(self) -> None:
        if self.study() is None:
            return
        path, _ = QFileDialog.getOpenFileName(self.parent(), "Load masks",
                                              self.settings.last_folder, "Masks (*.npz)")
        if path:
            self.load_masks(path)

    def choose_mask_folder(self) -> None:
        if self.study() is None:
            return
        path = QFileDialog.getExistingDirectory(self.parent(), "Load a mask folder",
                                                self.settings.last_folder)
        if path:
            self.load_masks(path)

    def load_masks(self, path: str | Path) -> None:
        study = self.study()
        try:
            masks = load_masks(path, study.shape, study.spacing_mm)
        except XRayStudioError as exc:
            self.failed.emit("Cannot load the masks", str(exc))
            return
        self.loaded.emit(masks)
        self.status.emit(f"Masks loaded from {Path(path).name}", 5000)

    def save_masks(self) -> None:
        """Beside the radiograph (``<name>.masks.npz``, or the sidecar it was opened with)."""
        if self.study() is None:
            return
        source = self.source()
        if source is None:
            self.save_masks_as()
            return
        self._write(mask_sidecar(source) or source.with_name(source.stem + ".masks.npz"))

    def save_masks_as(self) -> None:
        study = self.study()
        if study is None:
            return
        start = str(Path(self.settings.last_folder) / f"{study.name}.masks.npz")
        path, _ = QFileDialog.getSaveFileName(self.parent(), "Save masks", start, "Masks (*.npz)")
        if path:
            self._write(Path(path))

    def _write(self, path: Path) -> None:
        try:
            save_masks(self.study().masks, path)
        except (XRayStudioError, OSError) as exc:
            self.failed.emit("Cannot save the masks", str(exc))
            return
        self.saved.emit()
        self.status.emit(f"Masks saved to {path}", 5000)
