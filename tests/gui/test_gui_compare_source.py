"""Compare names the film a result is compared with for what it is: the source of the masks for
a new patient (layout mode), the source for a redraw or an edit; never "ground truth"."""

from __future__ import annotations

import pytest
from test_gui_edit import generate, lungs

pytest.importorskip("diffusers")
pytest.importorskip("torch")


def test_a_new_patient_names_its_film_the_source_of_the_masks(opened, qtbot, plain_model,
                                                             shared_engine):
    w = opened
    w.gen.engine = shared_engine
    lungs(w)
    w.gen.add_model_folder(plain_model)
    g = w.generator
    g.steps.setValue(2)
    for mode, title in (("layout", "Source of the masks"), ("guided", "Source")):
        g.mode.setCurrentIndex(g.mode.findData(mode))
        generate(w, qtbot)
        assert w.compare.result.provenance["parameters"]["mode"] == mode
        assert w.compare.truth.title.text() == title  # never "Ground truth"
