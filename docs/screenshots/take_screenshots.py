"""Take the README's screenshots of the real window (run under Xvfb for a real X11 window).

    xvfb-run -a python docs/screenshots/take_screenshots.py [--study PNG|DCM] [--model DIR]
                                                            [--only edit|sweep] [--out DIR]

Opens the bundled synthetic sample study (resources/sample/, made by the built-in model; its
masks come from the segmenter) with its masks, then generates with the built-in model and saves
main_window.png, generating.png and compare.png here. When the model has an edit model
(``edit/``), it then stamps a nodule in the patient's left lung, edits the radiograph and saves
edit_compare.png: source | edited | difference at full resolution, zoomed to the edit.
Then it runs a 3 x 3 sweep in the Sweep tab (conditioning scale across, the heart
mask on / off / dilated 10 mm down) and saves sweep.png: the grid with its PSNR heat-map.
``--only edit`` or ``--only sweep`` takes that one alone. Screenshots never show the JSRT or other data of
../shared: their terms forbid redistribution.
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
    parser.add_argument("--study", help="radiograph to open (default: the bundled sample)")
    parser.add_argument("--model", help="model folder (default: the built-in model)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--only", choices=["edit", "sweep"], help="take only this screenshot")
    parser.add_argument("--out", type=Path, default=HERE, help="where to save (default: here)")
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    from PySide6.QtCore import QPointF, QSettings, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    from xraystudio.gui.dialogs import keep_results
    from xraystudio.gui.main_window import MainWindow
    from xraystudio.gui.settings import AppSettings
    from xraystudio.gui.workers import open_study
    from xraystudio.synthesis.model import builtin_model_dir, resources_dir

    keep_results.ask_discard = lambda *a: True  # a demo: its results are not kept on closing
    tmp = Path(tempfile.mkdtemp(prefix="xraystudio-shots-"))
    window = MainWindow(AppSettings(QSettings(str(tmp / "s.ini"), QSettings.Format.IniFormat)))
    window.resize(1600, 1000)
    window.show()
    wait(app, 0.5)

    path = Path(args.study) if args.study else resources_dir() / "sample" / "synthetic_chest.png"
    opened = open_study(path)
    image = opened.study.image
    window.set_study(opened)
    window.layers.set_active("heart")
    wait(app, 0.5)
    canvas = window.canvas
    vp = canvas.viewport()
    QTest.mouseMove(vp, canvas.mapFromScene(QPointF(0.62 * image.shape[1], 0.7 * image.shape[0])))
    wait(app, 0.3)
    if not args.only:
        window.grab().save(str(out / "main_window.png"))
    if args.model:
        window.gen.add_model_folder(args.model)
    elif not builtin_model_dir().is_dir():
        raise SystemExit("the built-in model is missing; pass --model")
    if args.only == "edit":
        edit_shot(app, window, image, out)
        return
    g = window.generator
    if g.edit_mode:  # these shots show the whole-image modes (the model's default one)
        g.mode.setCurrentIndex(g.mode.findData("guided" if g.mode_enabled("guided") else "layout"))
    if args.only == "sweep":
        sweep_shot(app, window, out, args.steps)
        window.setWindowModified(False)
        window.close()
        return
    g.steps.setValue(args.steps)
    g.n_images.setValue(3)
    g.random_seed.setChecked(False)
    g.seed.setValue(1234)
    window.gen.generate()
    wait(app, 120, until=lambda: g.progress.value() > 0.45 * g.progress.maximum())
    # keep working while it runs: stamp a nodule in the left lung
    window.set_tool(window.tools[2])
    h, w = image.shape
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     canvas.mapFromScene(QPointF(0.3 * w, 0.6 * h)))
    wait(app, 0.3)
    window.grab().save(str(out / "generating.png"))

    wait(app, 300, until=lambda: window.gen.generation is None)
    window.tabs.setCurrentIndex(1)
    window.strip.setCurrentRow(0)
    window.compare.show_difference.setChecked(True)
    wait(app, 0.5)
    window.compare.fit()
    wait(app, 0.5)
    window.grab().save(str(out / "compare.png"))
    sweep_shot(app, window, out, args.steps)
    if g.mode_enabled("edit"):
        window.setWindowModified(False)
        window.set_study(open_study(path))
        wait(app, 0.5)
        edit_shot(app, window, image, out)
        return
    window.setWindowModified(False)  # no "save changes?" question
    window.close()


def sweep_shot(app, window, out: Path, steps: int) -> None:
    """A 3 x 3 sweep in the Sweep tab, then sweep.png: the grid with a PSNR heat-map."""
    g = window.generator
    g.steps.setValue(steps)
    g.random_seed.setChecked(False)
    g.seed.setValue(1234)
    panel = window.sweeps.panel
    panel.set_axis_texts(["conditioning_scale=0.5:1.5:3", "layer.heart=on,off,+10mm"])
    window.sweeps.show_tab()
    panel.run.click()
    wait(app, 600, until=lambda: not window.sweeps.running)
    if window.sweeps.record is None or len(window.sweeps.record.done) != 9:
        raise SystemExit(f"the sweep did not finish: {panel.status.text()}")
    from PySide6.QtWidgets import QDockWidget

    for name in ("resultsDock", "galleryDock"):  # room for all three rows of the grid
        window.findChild(QDockWidget, name).hide()
    panel.metric.setCurrentIndex(panel.metric.findData("psnr"))
    panel.heat.setChecked(True)
    wait(app, 0.5)
    panel.fit()
    wait(app, 0.5)
    window.grab().save(str(out / "sweep.png"))


def edit_shot(app, window, image, out: Path) -> None:
    """Stamp a nodule in the patient's left lung, edit the radiograph, save edit_compare.png."""
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtTest import QTest

    g = window.generator
    if not g.mode_enabled("edit"):
        raise SystemExit("the model has no edit model (edit/); pass --model")
    g.mode.setCurrentIndex(g.mode.findData("edit"))
    g.n_images.setValue(1)
    g.random_seed.setChecked(False)
    g.seed.setValue(1234)
    window.set_tool(next(t for t in window.tools if t.name == "Nodule"))
    window.nodules.stamp_size.setValue(14.0)
    h, w = image.shape
    canvas = window.canvas
    QTest.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     canvas.mapFromScene(QPointF(0.68 * w, 0.42 * h)))
    wait(app, 0.3)
    window.gen.generate()
    wait(app, 300, until=lambda: window.gen.generation is None)
    if window.last_error is not None:
        raise SystemExit(f"edit failed: {window.last_error.text()}")
    window.tabs.setCurrentIndex(1)
    window.strip.setCurrentRow(window.strip.count() - 1)
    wait(app, 0.5)
    window.compare.zoom_to_edits()
    wait(app, 0.5)
    window.grab().save(str(out / "edit_compare.png"))
    window.setWindowModified(False)  # no "save changes?" question
    window.close()


if __name__ == "__main__":
    main()
