"""Starting the desktop app: the Qt application, the main window, and what opens first.

Only Qt and the light core are imported here; torch and diffusers load in the generation worker,
so the window is up in about a second.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from xraystudio import __version__
from xraystudio.synthesis.model import resources_dir

log = logging.getLogger(__name__)

SAMPLE_SUFFIXES = (".dcm", ".png", ".tif", ".tiff")


def sample_study_path() -> Path | None:
    """The bundled sample radiograph (``resources/sample/``), if this install has one."""
    folder = resources_dir() / "sample"
    if not folder.is_dir():
        return None
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in SAMPLE_SUFFIXES and not path.name.endswith(".masks.png"):
            return path
    return None


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="xraystudio", add_help=False)
    parser.add_argument("files", nargs="*")
    return parser.parse_known_args(argv)


def run_app(argv: list[str]) -> int:
    """Show the main window; open the first file in ``argv`` (else the sample on first start)."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from xraystudio.gui.main_window import MainWindow
    from xraystudio.gui.settings import AppSettings

    args, qt_args = _parse(argv)
    app = QApplication.instance() or QApplication([sys.argv[0], *qt_args])
    app.setApplicationName("xraystudio")
    app.setOrganizationName("xraystudio")
    app.setApplicationVersion(__version__)
    settings = AppSettings()
    window = MainWindow(settings)
    window.show()
    first = args.files[0] if args.files else None
    if first is None and settings.first_run:
        first = sample_study_path()
        if first is None:
            log.info("no bundled sample study; the window shows how to open a radiograph")
    settings.mark_started()
    if first is not None:
        window.open_file(first)
    # Ctrl+C in the terminal closes the window like the close button (asking to save masks).
    # Python only sees signals when it runs, so a timer hands it control a few times a second.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    wake = QTimer(interval=250)
    wake.timeout.connect(lambda: None)
    wake.start()
    return app.exec()
