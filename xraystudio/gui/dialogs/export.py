"""Export… : the accepted results of the open project as nnU-Net, JSRT layout or DICOM.

The export runs in a QThread on its own read-only :class:`Project` (the window's project is not
thread-safe; read-only opening is meant for this and sees every saved action). Cancel raises
from the progress callback, which the core turns into "no output at all".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QThread, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from xraystudio.curation.export import export_project
from xraystudio.curation.project import Project
from xraystudio.errors import XRayStudioError
from xraystudio.gui.dialogs import chest_confirm

log = logging.getLogger(__name__)

FORMATS = (("nnU-Net v2 dataset", "nnunet"), ("JSRT-style layout", "jsrt"),
           ("DICOM Secondary Capture + SEG", "dicom"))
KEEP_LINK_WARNING = ("Keeping the link writes the source file names, the curators' notes and "
                     "(in DICOM) the patient identity into the export: it is then NOT "
                     "de-identified.")


class ExportCancelled(Exception):
    """Raised from the progress callback to stop an export."""


class ExportThread(QThread):
    progressed = Signal(int, int)  # cases done, cases in all
    succeeded = Signal(str)  # output folder
    cancelled = Signal()
    failed = Signal(str)

    def __init__(self, project_folder: Path, out: Path, fmt: str, keep_link: bool,
                 overwrite: bool, parent=None) -> None:
        super().__init__(parent)
        self.args = (project_folder, out, fmt, keep_link, overwrite)
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def _progress(self, done: int, total: int) -> None:
        if self._cancel.is_set():
            raise ExportCancelled
        self.progressed.emit(done, total)

    def run(self) -> None:
        folder, out, fmt, keep_link, overwrite = self.args
        try:
            with Project.open(folder, read_only=True) as project:
                path = export_project(project, out, fmt, keep_link=keep_link,
                                      overwrite=overwrite, progress=self._progress)
        except ExportCancelled:
            self.cancelled.emit()
        except (XRayStudioError, OSError) as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # noqa: BLE001 (a bug must reach the user, not kill the thread)
            log.exception("export failed")
            self.failed.emit(f"{type(exc).__name__}: {exc}")
        else:
            self.succeeded.emit(str(path))


def written_summary(out: Path, cases: int, form: str) -> str:
    """What an export wrote, in words: cases, files, size and where."""
    files = [p for p in out.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    return (f"Wrote {cases} accepted result{'' if cases == 1 else 's'} as {form}: "
            f"{len(files)} files, {size / 1e6:.1f} MB, in {out}")


def _non_empty(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


class ExportDialog(QDialog):
    """Format, output folder, keep-link; a progress bar and Cancel while it runs."""

    def __init__(self, project_folder: Path, start_folder: str = "",
                 parent: QWidget | None = None,
                 flagged: Callable[[], list[str]] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export accepted results")
        self.project_folder = project_folder
        #: The accepted results made from films that failed the chest check (asked about).
        self.flagged = flagged
        self.total = 0  # cases of the export running or done
        self.thread: ExportThread | None = None
        self.result_path: Path | None = None
        self.error: str | None = None

        self.format = QComboBox()
        for label, fmt in FORMATS:
            self.format.addItem(label, fmt)
        self.out = QLineEdit(str(Path(start_folder or project_folder.parent)
                                 / f"{project_folder.name}_export"))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out, 1)
        out_row.addWidget(browse)
        self.keep_link = QCheckBox("Keep the link to the source studies")
        self.warning = QLabel(KEEP_LINK_WARNING)
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #d9534f;")
        self.warning.setVisible(False)
        self.keep_link.toggled.connect(self.warning.setVisible)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status = QLabel("Only accepted results are exported, each marked synthetic.")
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox()
        self.export_button = self.buttons.addButton("Export",
                                                    QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.export_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)

        form = QFormLayout()
        form.addRow("Format", self.format)
        form.addRow("Output folder", out_row)
        form.addRow("", self.keep_link)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.warning)
        layout.addWidget(self.status)
        layout.addWidget(self.progress)
        layout.addWidget(self.buttons)
        self.resize(560, 0)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export into", self.out.text())
        if folder:
            self.out.setText(folder)

    def confirm_overwrite(self, out: Path) -> bool:
        """Ask before replacing an existing output (the core refuses without it)."""
        answer = QMessageBox.question(
            self, "Replace the output?", f"{out} already exists. Replace it with this export?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def start(self) -> None:
        """Start the export in the background (after confirming an overwrite)."""
        if self.thread is not None:
            return
        text = self.out.text().strip()
        if not text:
            self.show_error("Choose an output folder.")
            return
        out = Path(text).expanduser().absolute()
        flagged = self.flagged() if self.flagged is not None else []
        if flagged and not chest_confirm.confirm_unsupported(
                self, f"{len(flagged)} accepted result(s) ({', '.join(flagged[:5])}) were made "
                "from films that failed the chest check", "Export them"):
            return
        overwrite = _non_empty(out)
        if overwrite and not self.confirm_overwrite(out):
            return
        self.error = None
        thread = ExportThread(self.project_folder, out, self.format.currentData(),
                              self.keep_link.isChecked(), overwrite, self)
        thread.progressed.connect(self._on_progress)
        thread.succeeded.connect(self._on_success)
        thread.cancelled.connect(lambda: self.status.setText("Cancelled; nothing was written."))
        thread.failed.connect(self._on_failed)
        thread.finished.connect(self._on_finished)
        self.thread = thread
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.export_button.setEnabled(False)
        self.cancel_button.setText("Cancel")
        self.status.setText("Exporting…")
        thread.start()

    def cancel(self) -> None:
        if self.thread is not None:
            self.thread.cancel()
            self.status.setText("Cancelling…")
        else:
            self.reject()

    def _on_progress(self, done: int, total: int) -> None:
        self.total = total
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.status.setText(f"Exported {done} of {total}")

    def _on_success(self, path: str) -> None:
        self.result_path = Path(path)
        self.status.setText(written_summary(self.result_path, self.total,
                                            self.format.currentText()))

    def _on_failed(self, message: str) -> None:
        self.error = message
        self.status.setText("Failed")
        self.show_error(message)

    def _on_finished(self) -> None:
        thread, self.thread = self.thread, None
        if thread is not None:
            thread.deleteLater()
        self.export_button.setEnabled(True)
        self.progress.setVisible(False)
        if self.result_path is not None:
            # Stays open on what was written (closing at once told the user nothing).
            self.cancel_button.setText("Close")

    def show_error(self, message: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, "Export failed", message,
                          QMessageBox.StandardButton.Ok, self)
        box.open()

    def reject(self) -> None:
        if self.thread is not None:  # Esc while running cancels first
            self.cancel()
            return
        super().reject()
