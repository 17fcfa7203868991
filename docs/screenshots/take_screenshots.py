"""Take the README's screenshots of the real window (run under Xvfb for a real X11 window).

    xvfb-run -a python docs/screenshots/take_screenshots.py --jsrt ../shared/data/jsrt \
        [--case JPCLN001] [--model DIR]

Opens a JSRT case with its anatomy masks and listed nodule, paints, then generates with the
given model (default: a tiny random model, whose images are noise — rerun with the built-in
model for meaningful ones) and saves main_window.png, generating.png and compare.png here.
The radiograph is read from the given folder; nothing of it is copied into the repository.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def wait(app, seconds: float, until=None) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end and not (until and until()):
        app.processEvents()
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jsrt", required=True, help="a JSRT-style dataset folder")
    parser.add_argument("--case", default="JPCLN001")
    parser.add_argument("--model", help="model folder (default: a tiny random model)")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()

    from PySide6.QtCore import QPointF, QSettings, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    from xraystudio.gui.main_window import MainWindow
    from xraystudio.gui.settings import AppSettings
    from xraystudio.gui.workers import OpenedStudy
    from xraystudio.io.datasets import JsrtDataset
    from xraystudio.io.radiograph import load_radiograph
    from xraystudio.study import Study

    tmp = Path(tempfile.mkdtemp(prefix="xraystudio-shots-"))
    window = MainWindow(AppSettings(QSettings(str(tmp / "s.ini"), QSettings.Format.IniFormat)))
    window.resize(1600, 1000)
    window.show()
    wait(app, 0.5)

    dataset = JsrtDataset(args.jsrt)
    case = dataset.load(args.case)
    path = Path(args.jsrt) / "images" / f"{args.case}.png"
    image = load_radiograph(path).with_spacing(case.spacing_mm)
    window.set_study(OpenedStudy(Study(image, case.masks, args.case), path, [], False))
    window.layers.set_active("heart")
    wait(app, 0.5)
    canvas = window.canvas
    vp = canvas.viewport()
    QTest.mouseMove(vp, canvas.mapFromScene(QPointF(0.62 * image.shape[1], 0.7 * image.shape[0])))
    wait(app, 0.3)
    window.grab().save(str(HERE / "main_window.png"))

    model = args.model
    if model is None:
        from xraystudio.synthesis.tiny import make_tiny_pixel_model

        model = str(make_tiny_pixel_model(tmp / "tiny", resolution=64))
    window.add_model_folder(model)
    g = window.generator
    g.steps.setValue(args.steps)
    g.n_images.setValue(3)
    g.random_seed.setChecked(False)
    g.seed.setValue(1234)
    window.generate()
    wait(app, 120, until=lambda: g.progress.value() > 450)
    # keep working while it runs: stamp a nodule in the left lung
    window.set_tool(window.tools[2])
    h, w = image.shape
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     canvas.mapFromScene(QPointF(0.3 * w, 0.6 * h)))
    wait(app, 0.3)
    window.grab().save(str(HERE / "generating.png"))

    wait(app, 300, until=lambda: window.generation is None)
    window.tabs.setCurrentIndex(1)
    window.strip.setCurrentRow(0)
    window.compare.show_difference.setChecked(True)
    wait(app, 0.5)
    window.compare.fit()
    wait(app, 0.5)
    window.grab().save(str(HERE / "compare.png"))
    window.setWindowModified(False)  # no "save changes?" question
    window.close()


if __name__ == "__main__":
    main()
