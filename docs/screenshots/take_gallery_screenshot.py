"""Take the README's gallery screenshot (run under Xvfb for a real X11 window).

    xvfb-run -a python docs/screenshots/take_gallery_screenshot.py

Everything shown is drawn here: a chest-like picture made of ellipses is the study, and its
"results" are drawn variants of it (model name "drawn-demo"), so the screenshot needs neither
data nor a model and shows no patient image. Saves gallery.png beside this script.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
SHAPE = (512, 448)


def wait(app, seconds: float, until=None) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end and not (until and until()):
        app.processEvents()
        time.sleep(0.01)


def drawn_chest(rng: np.random.Generator, wobble: float = 0.0) -> np.ndarray:
    """A chest-like picture in [0, 1]: bright body, dark lungs, a heart, ribs, some noise."""
    h, w = SHAPE
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 0.75 - 0.25 * (((xx - w / 2) / (w * 0.55)) ** 2)
    for side in (-1, 1):
        cx = w / 2 + side * w * (0.2 + wobble * rng.uniform(-0.02, 0.02))
        lung = (((xx - cx) / (w * 0.15)) ** 2 + ((yy - h * 0.48) / (h * 0.33)) ** 2) < 1
        img = np.where(lung, img - 0.45 + 0.05 * np.sin(yy / 9.0 + side), img)
    heart = (((xx - w * 0.55) / (w * 0.13)) ** 2 + ((yy - h * 0.62) / (h * 0.14)) ** 2) < 1
    img = np.where(heart, img + 0.3, img)
    img += rng.normal(0, 0.02 + 0.03 * wobble, SHAPE)
    return np.clip(img, 0, 1).astype(np.float32)


def make_project(root: Path) -> Path:
    from xraystudio.curation.project import Project

    rng = np.random.default_rng(7)
    source = root / "drawn_chest.png"
    Image.fromarray((drawn_chest(rng) * 255).astype(np.uint8)).save(source)
    folder = root / "demo-project"
    with Project.create(folder, name="demo-project") as project:
        sid = project.add_study(source)
        decisions = ["accepted", "accepted", "rejected", None, "accepted", None, "rejected",
                     None, None, "accepted", None, None]
        for i, decision in enumerate(decisions):
            provenance = {"synthetic": True, "model": {"name": "drawn-demo"},
                          "parameters": {"seed": 100 + i, "steps": 20, "scheduler": "dpm++"}}
            rid = project.add_result(sid, drawn_chest(rng, wobble=1.0), provenance)
            project.decide(rid, decision)
            if i in (1, 4):
                project.star(rid)
            if i == 4:
                project.note(rid, "clean heart border")
    return folder


def main() -> None:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    from xraystudio.gui.main_window import MainWindow
    from xraystudio.gui.settings import AppSettings

    tmp = Path(tempfile.mkdtemp(prefix="xraystudio-shots-"))
    folder = make_project(tmp)
    window = MainWindow(AppSettings(QSettings(str(tmp / "s.ini"), QSettings.Format.IniFormat)))
    window.resize(1400, 900)
    window.show()
    window.switch.open_project(folder)
    wait(app, 10, until=lambda: window.study is not None and window.gallery.list.count() == 12)
    window.gallery_dock.setFloating(True)
    window.gallery_dock.resize(1300, 720)
    window.show_gallery()
    window.gallery.list.setCurrentRow(4)
    wait(app, 3, until=lambda: window.gallery.preview.pixmap() is not None
         and not window.gallery.preview.pixmap().isNull())
    wait(app, 1.0)
    window.gallery_dock.grab().save(str(HERE / "gallery.png"))
    window.projects.close()
    print(f"saved {HERE / 'gallery.png'}")


if __name__ == "__main__":
    main()
