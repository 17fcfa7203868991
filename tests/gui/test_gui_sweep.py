"""The Sweep tab with a tiny random model: the grid fills, zooms together, opens cells in Compare,
overlays metrics and a heat-map, exports, cancels keeping finished cells, and reopens."""

from __future__ import annotations

import csv
import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from xraystudio.engine.client import EngineProcess

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")


class SharedEngine(EngineProcess):
    """An engine process that outlives the windows of the tests (closing one keeps it)."""

    def close(self, timeout: float = 5.0) -> None:
        pass

    def shutdown(self) -> None:
        super().close()


@pytest.fixture(scope="module")
def shared_engine():
    engine = SharedEngine(threads=1)
    yield engine
    engine.shutdown()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    from xraystudio.synthesis.tiny import make_tiny_pixel_model

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return str(make_tiny_pixel_model(tmp_path_factory.mktemp("models") / "tiny"))
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def ready(opened, tiny_model, shared_engine):
    w = opened
    w.gen.engine = shared_engine
    w.study.masks.fill_polygon("right_lung", [(30, 50), (90, 50), (90, 190), (30, 190)])
    w.study.masks.fill_polygon("left_lung", [(110, 50), (170, 50), (170, 190), (110, 190)])
    w.study.masks.fill_polygon("heart", [(80, 120), (130, 120), (130, 180), (80, 180)])
    w.gen.add_model_folder(tiny_model)
    w.generator.steps.setValue(2)
    w.generator.random_seed.setChecked(False)
    w.generator.seed.setValue(3)
    w.sweeps.faithfulness = False  # no anatomy segmenter per cell: keeps the test short
    return w


def run_sweep(qtbot, w, *axes: str) -> None:
    panel = w.sweeps.panel
    panel.set_axis_texts(list(axes))
    w.sweeps.show_tab()
    panel.run.click()
    assert w.sweeps.running
    qtbot.waitUntil(lambda: not w.sweeps.running, timeout=90_000)


def test_sweep_grid_fills_zooms_overlays_opens_and_exports(ready, qtbot, tmp_path):
    w = ready
    panel = w.sweeps.panel
    run_sweep(qtbot, w, "conditioning_scale=0.5,1.5", "layer.heart=on,off")
    record = w.sweeps.record
    assert record.status == "done" and [c.status for c in record.cells] == ["done"] * 4
    assert [c.labels for c in record.cells][1] == {"conditioning_scale": "1.5",
                                                   "layer.heart": "on"}
    assert all(c.seed == 3 for c in record.cells)
    # every cell is an ordinary result in the strip, with its provenance
    assert w.strip.count() == 4
    prov = w.strip.results[2].provenance
    assert prov["sweep"]["values"] == {"conditioning_scale": "0.5", "layer.heart": "off"}
    assert prov["parameters"]["conditioning_scale"] == 0.5
    # the grid: one labelled view per cell, captions with the metric
    assert len(panel.views) == 4 and all(v.item is not None for v in panel.views)
    assert "PSNR" in panel.views[0].caption.text()
    labels = [lab.text() for lab in panel.grid_host.findChildren(type(panel.status))]
    assert "conditioning_scale = 1.5" in labels and "layer.heart\n= off" in labels
    # zoom and pan together
    panel.views[0].scale(3, 3)
    panel.views[0].viewChanged.emit()
    assert all(v.transform().m11() == panel.views[0].transform().m11() for v in panel.views)
    # metric overlay and heat-map
    panel.metric.setCurrentIndex(panel.metric.findData("diff_to_first"))
    assert "Δ first" in panel.views[1].caption.text()
    panel.heat.setChecked(True)
    sheets = {v.holder.styleSheet() for v in panel.views}
    assert len(sheets) > 1 and all("background" in s for s in sheets)
    assert "…" in panel.legend.text()
    # a click opens the cell in Compare
    view = panel.views[3]
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.viewport().rect().center())
    assert w.tabs.currentIndex() == 1 and w.compare.result is w.sweeps.results[3]
    # export: one PNG, CSV and JSON
    thread = w.sweeps.export_to(tmp_path / "grid")
    qtbot.waitUntil(lambda: w.sweeps.exporter is None, timeout=20_000)
    assert thread is not None
    rows = list(csv.DictReader((tmp_path / "grid" / "sweep.csv").open()))
    assert len(rows) == 4 and rows[3]["layer.heart"] == "off" and rows[3]["psnr"]
    assert (tmp_path / "grid" / "sweep_grid.png").stat().st_size > 1000
    assert json.loads((tmp_path / "grid" / "sweep.json").read_text())["status"] == "done"


def test_bad_axes_are_shown_and_nothing_runs(ready):
    w = ready
    w.sweeps.panel.set_axis_texts(["conditioning_scale=0.5:1.5", "", ""])
    w.sweeps.panel.run.click()
    assert not w.sweeps.running
    assert "number of values" in w.sweeps.panel.status.text()
    w.sweeps.panel.set_axis_texts(["layer.spleen=on,off"])
    w.sweeps.panel.run.click()
    assert "no mask layer 'spleen'" in w.sweeps.panel.status.text()


def test_cancel_keeps_finished_cells_and_the_sweep_reopens_from_the_project(ready, qtbot,
                                                                            tmp_path):
    w = ready
    assert w.switch.new_project(tmp_path / "project")
    w.generator.steps.setValue(400)  # long enough to cancel mid-sweep
    panel = w.sweeps.panel
    # cells that differ in a setting go through the model one after the other (cells that
    # differ only in seed would be drawn together, all done at once)
    panel.set_axis_texts(["conditioning_scale=0.5,1,1.5"])
    panel.run.click()
    qtbot.waitUntil(lambda: w.sweeps.record.cells[0].status == "done", timeout=60_000)
    panel.cancel.click()
    qtbot.waitUntil(lambda: not w.sweeps.running, timeout=60_000)
    record = w.sweeps.record
    assert record.status == "cancelled"
    done = [c for c in record.cells if c.status == "done"]
    assert 1 <= len(done) < 3 and done[0].parameters["conditioning_scale"] == 0.5
    assert "Cancelled" in panel.status.text()
    qtbot.waitUntil(lambda: not w.projects.staging and all(c.result for c in done),
                    timeout=20_000)
    project = w.projects.project
    saved = project.sweeps(study=w.projects.study_id)
    assert len(saved) == 1 and saved[0]["status"] == "cancelled"
    rid = done[0].result
    assert project.result(rid).provenance["sweep"]["cell"] == 0
    # close and reopen: the grid comes back with its cells' images
    folder = project.folder
    w.projects.close()
    assert w.sweeps.record is None
    assert w.switch.open_project(folder)
    qtbot.waitUntil(lambda: w.sweeps.record is not None
                    and w.sweeps.record.id == saved[0]["id"], timeout=10_000)
    qtbot.waitUntil(lambda: all(i in w.sweeps.images for i in range(len(done))),
                    timeout=10_000)
    assert panel.views[0].item is not None and panel.saved.count() == 1
    assert "cancelled" in panel.saved.currentText()
    assert panel.axis_edits[0].text() == "conditioning_scale=0.5,1,1.5"


def test_cells_are_numbered_as_in_the_results_strip(ready, qtbot):
    w = ready
    w.generator.n_images.setValue(1)
    w.gen.generate()
    qtbot.waitUntil(lambda: w.gen.generation is None and w.strip.count() == 1, timeout=60_000)
    run_sweep(qtbot, w, "seed=5,6")
    captions = [v.caption.text() for v in w.sweeps.panel.views]
    assert "#2 · seed 5" in captions[0] and "#3 · seed 6" in captions[1]
    assert w.strip.item(1).text().startswith("#2 ") and w.strip.results[1] is w.sweeps.results[0]


def test_heat_map_shows_every_caption_of_the_bottom_row(ready, qtbot):
    w = ready
    run_sweep(qtbot, w, "seed=1,2,3", "conditioning_scale=0.5,1.5")
    panel = w.sweeps.panel
    panel.heat.setChecked(True)
    qtbot.wait(100)
    for view in panel.views:  # none of them clipped by the grid's scroll view
        caption = view.caption
        assert "PSNR" in caption.text()
        assert caption.visibleRegion().boundingRect() == caption.rect(), caption.text()
