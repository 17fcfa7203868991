"""A 3 x 3 sweep of the built-in model in the real window: event-loop stalls, time, completeness.

Opens the bundled sample study in the app's main window, types a 3 x 3 sweep into the Sweep tab
(``conditioning_scale=0.5:1.5:3`` across, ``layer.heart=on,off,+10mm`` down: an ablation and a
dilation) and runs it in the engine process as a user would, with a 1 ms timer ticking on the UI
thread; the longest gap between ticks is the worst freeze the user could feel (target < 50 ms).
The phase until the first cell (engine process start, torch import, model load) is reported
apart from the rest. Then the grid is exported (PNG, CSV, JSON, off the UI thread, the ticker
still running) and checked: 9 cells, every metric in the CSV, the PNG the size of the grid.

    xvfb-run -a python benchmarks/sweep.py [--model DIR] [--threads 1] [--steps N]

Prints and writes ``benchmarks/results/sweep.json`` (and the exported grid beside it in
``benchmarks/results/sweep/``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
X_AXIS = "conditioning_scale=0.5:1.5:3"
Y_AXIS = "layer.heart=on,off,+10mm"


def gaps_while(app, busy, on_tick=None) -> dict:
    """Run the event loop while ``busy()``; the 1 ms ticker's gaps (ms) before and after the
    first ``on_tick()`` that returns True (e.g. the first finished cell)."""
    from PySide6.QtCore import QElapsedTimer, QTimer

    phases: dict[str, list[float]] = {"first": [], "rest": []}
    state = {"phase": "first"}
    clock = QElapsedTimer()
    timer = QTimer(interval=1)

    long: list[tuple[float, int, str]] = []

    def tick() -> None:
        gap = clock.restart()
        phases[state["phase"]].append(gap)
        if gap > 25:
            long.append((round(time.perf_counter() - t0, 3), gap, state["phase"]))
        if on_tick is not None and state["phase"] == "first" and on_tick():
            state["phase"] = "rest"

    timer.timeout.connect(tick)
    t0 = time.perf_counter()
    clock.start()
    timer.start()
    while busy():
        app.processEvents()
        time.sleep(0.0005)
    timer.stop()
    out = {"seconds": round(time.perf_counter() - t0, 2), "gaps_over_25ms": long}
    for name, gaps in phases.items():
        if gaps:
            out[name] = {"max_stall_ms": max(gaps), "ticks": len(gaps),
                         "p99_gap_ms": sorted(gaps)[int(0.99 * (len(gaps) - 1))]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model folder (default: the built-in model)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the engine process (default 1: a shared box)")
    parser.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    args = parser.parse_args()

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from xraystudio.engine.client import EngineProcess
    from xraystudio.gui.main_window import MainWindow
    from xraystudio.gui.settings import AppSettings
    from xraystudio.gui.workers import open_study
    from xraystudio.synthesis.model import resources_dir
    from xraystudio.synthesis.spec import ModelSpec

    tmp = Path(tempfile.mkdtemp(prefix="xraystudio-sweep-bench-"))
    settings = AppSettings(QSettings(str(tmp / "s.ini"), QSettings.Format.IniFormat))
    settings.auto_segment = False
    window = MainWindow(settings)
    window.gen.engine = EngineProcess(threads=args.threads)
    window.resize(1600, 1000)
    window.show()
    app.processEvents()
    opened = open_study(resources_dir() / "sample" / "synthetic_chest.png")
    window.set_study(opened)
    app.processEvents()
    g = window.generator
    if args.model:
        window.gen.add_model_folder(args.model)
    if args.steps:
        g.steps.setValue(args.steps)
    g.random_seed.setChecked(False)
    g.seed.setValue(1)
    controller = window.sweeps
    panel = controller.panel
    panel.set_axis_texts([X_AXIS, Y_AXIS])
    controller.show_tab()
    app.processEvents()

    handler_ms: list[float] = []  # time spent on the UI thread per finished cell
    on_cell = controller._on_cell

    def timed_on_cell(*a) -> None:
        t = time.perf_counter()
        on_cell(*a)
        handler_ms.append(round((time.perf_counter() - t) * 1e3, 1))

    controller._on_cell = timed_on_cell
    idle = gaps_while(app, lambda t=time.perf_counter() + 3: time.perf_counter() < t)["first"]
    panel.run.click()
    run = gaps_while(app, lambda: controller.running,
                     lambda: any(c.status != "pending" for c in controller.record.cells))
    record = controller.record
    export_dir = RESULTS / "sweep"
    shutil.rmtree(export_dir, ignore_errors=True)
    controller.export_to(export_dir)
    export = gaps_while(app, lambda: controller.exporter is not None)

    rows = list(csv.DictReader((export_dir / "sweep.csv").open()))
    from PIL import Image

    with Image.open(export_dir / "sweep_grid.png") as im:
        grid_size = list(im.size)
    metric_cols = ["psnr", "ssim", "psnr_lungs", "ssim_lungs", "nodule_contrast",
                   "faithfulness_dice", "faithfulness_dice_heart", "diff_to_first"]
    complete = (len(rows) == 9 and all(r["status"] == "done" for r in rows)
                and all(r[m] != "" for r in rows for m in metric_cols if m != "nodule_contrast"
                        or opened.study.masks.nodules))
    spec = ModelSpec.read(args.model) if args.model else None
    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "qpa": app.platformName(), "engine_threads": args.threads},
        "model": args.model or "built-in (xraystudio-cxr)",
        "study": f"bundled sample {opened.study.shape[1]} x {opened.study.shape[0]}",
        "axes": {"x": X_AXIS, "y": Y_AXIS},
        "mode": record.sweep.base.get("mode"), "steps": record.cells[0].parameters.get("steps"),
        "status": record.status,
        "cells_done": len(record.done),
        "seconds_per_cell": [c.seconds for c in record.cells],
        "event_loop_idle_baseline": idle,
        "event_loop_during_sweep": {
            "total_seconds": run["seconds"],
            "until_first_cell_incl_engine_start_and_model_load": run.get("first"),
            "after_first_cell": run.get("rest"),
            "gaps_over_25ms_at_s": run["gaps_over_25ms"],
            "ui_thread_ms_per_finished_cell": handler_ms,
        },
        "event_loop_during_export": export,
        "export": {"files": sorted(p.name for p in export_dir.iterdir()),
                   "csv_rows": len(rows), "csv_columns": list(rows[0]) if rows else [],
                   "grid_png_px": grid_size, "complete": complete},
        "cells": [{"cell": r["cell"], X_AXIS.split("=")[0]: r["conditioning_scale"],
                   "layer.heart": r["layer.heart"], "psnr": r["psnr"], "ssim": r["ssim"],
                   "faithfulness_dice_heart": r["faithfulness_dice_heart"],
                   "diff_to_first": r["diff_to_first"]} for r in rows],
        "targets": {"event_loop_stall_ms": 50},
    }
    if spec is not None:
        report["model_name"] = spec.name
    from xraystudio.gui.dialogs import keep_results

    # No question at closing (it would wait for an answer forever): the cells are throwaway.
    window.setWindowModified(False)
    keep_results.ask_discard = lambda *a: True
    window.close()
    window.gen.engine.close()
    (RESULTS / "sweep.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
