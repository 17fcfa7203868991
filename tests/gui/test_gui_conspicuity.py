"""A stamped nodule shows: at the default grade it is drawn to the median contrast of real
nodules of its size (the shipped model's layout sampler), centred where it was stamped, and the
nodule list says what each was drawn to. Runs the shipped built-in edit model on a synthetic
15-bit film."""

from __future__ import annotations

import numpy as np
import pytest
from dicom_factory import chest_like, make_dicom
from gui_helpers import click, open_and_wait

from xraystudio.gui.panels.nodules import DRAWN_COLUMN
from xraystudio.synthesis.conspicuity import added_nodule
from xraystudio.synthesis.layout_sampler import default_sampler
from xraystudio.synthesis.model import builtin_model_dir

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")

H, W, SPACING = 1000, 800, 0.2


def film(path):
    """A 15-bit CR-like chest with some texture, 200 x 160 mm."""
    rng = np.random.default_rng(0)
    base = chest_like(H, W, bits=15).astype(np.float64)
    texture = np.cumsum(rng.normal(0, 40, (H, W)), axis=1) * 0.05
    pixels = np.clip(base + texture, 0, 2**15 - 1).astype(np.uint16)
    return make_dicom(path, pixels, bits_stored=15, imager_spacing=(SPACING, SPACING))


@pytest.mark.slow
def test_stamped_nodule_at_the_default_grade_shows_at_its_stamp(qtbot, window, tmp_path,
                                                                shared_engine):
    w = window
    w.gen.engine = shared_engine
    open_and_wait(qtbot, w, film(tmp_path / "chest.dcm"))
    for cx, name in ((W * 0.3, "right_lung"), (W * 0.7, "left_lung")):
        t = np.linspace(0, 2 * np.pi, 40)
        w.study.masks.fill_polygon(name, list(zip(cx + W * 0.15 * np.cos(t),
                                                  H * 0.5 + H * 0.28 * np.sin(t))))
    g = w.generator
    g.model.setCurrentIndex(g.model.findData(""))  # the built-in model
    g.mode.setCurrentIndex(g.mode.findData("edit"))
    assert g.mode.currentData() == "edit"
    assert w.nodules.conspicuity.grade.currentData() == "typical"  # the default
    w.nodules.stamp_size.setValue(12.0)
    w.set_tool(next(t for t in w.tools if t.name == "Nodule"))
    click(w, W * 0.3, H * 0.45)
    (nodule,) = w.study.masks.nodules
    median = default_sampler(builtin_model_dir()).typical_contrast(12.0)
    assert nodule.contrast == pytest.approx(median) and median > 0.01
    assert f"{100 * median:.2f} % contrast at 12 mm" in w.nodules.conspicuity.note.text()

    g.random_seed.setChecked(False)
    g.seed.setValue(1)
    g.n_images.setValue(1)
    g.generate.click()
    qtbot.waitUntil(lambda: w.gen.generation is None, timeout=300_000)
    assert w.last_error is None, w.last_error.text()
    r = w.compare.result
    assert r is not None and r.is_edit
    added = added_nodule(w.study.image.values, r.values, nodule.x, nodule.y, 12.0, SPACING)
    assert added.contrast >= median * 0.995  # 15-bit rounding aside, at least the median
    assert added.offset_mm <= 1.0
    shown = float(w.nodules.table.item(0, DRAWN_COLUMN).text())
    assert shown == pytest.approx(100 * added.contrast, abs=0.006)
