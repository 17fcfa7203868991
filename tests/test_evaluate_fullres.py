"""``xraystudio evaluate --mode layout|guided`` with a full-resolution stage, on the saved files:
both sizes, the lung NPS, the classifier test on two views, nearest training films."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from synthetic_data import write_dataset

from xraystudio.cli import main
from xraystudio.evaluation.evaluate import EngineFilms, EvalConfig, Evaluator
from xraystudio.io.datasets import JsrtDataset
from xraystudio.synthesis.engine import Engine
from xraystudio.synthesis.tiny import make_tiny_fullres, make_tiny_pixel_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("evalfull")
    model = make_tiny_pixel_model(root / "tiny", prior=True)
    make_tiny_fullres(model)
    # 20 cases: 4 held out (2 nodule, 2 normal), 16 for the nearest-training-film library.
    return write_dataset(root / "data", n=20, size=128), model


def test_evaluate_layout_on_the_validation_split(setup, tmp_path: Path, capsys) -> None:
    data, model = setup
    out = tmp_path / "layout.json"
    assert main(["evaluate", str(data), "--out", str(out), "--model", str(model), "--mode",
                 "layout", "--split", "val", "--steps", "2", "--no-segmenter", "--device", "cpu",
                 "--classifier-steps", "10", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "psnr_full" in printed and "two_sample_auc_film" in printed
    report = json.loads(out.read_text())
    assert report["sizes"] == {"coarse": 32, "full": 128} and report["drawn_resolution"] == [128]
    assert len(report["cases"]) == 4 and report["split"] == "val"
    mean = report["mean"]
    for key in ("psnr", "ssim", "psnr_full", "ssim_full", "psnr_lungs_full", "hf_ratio",
                "hf_ratio_full", "diversity", "nodule_contrast"):
        assert mean[key] is not None and np.isfinite(mean[key]), key
    nps = report["nps"]
    assert nps["roi_px"] == 8 and nps["rois_real"] == nps["rois_generated"] > 0
    # 8 px squares (the 64 px of a 1024 px film, scaled) sample 1/8 cycle/px and up: the two
    # lower bands have no frequency to measure, and say so.
    assert nps["ratio"][:2] == [None, None] and all(r > 0 for r in nps["ratio"][2:])
    assert nps["within_factor"] is None and mean["nps_within_factor"] is None
    two = report["two_sample"]
    assert 0 <= two["film_auc"] <= 1 and 0 <= two["patch_auc"] <= 1
    assert two["patch_px"] == 16 and two["patches_per_film"] >= 2
    memo = report["memorisation"]
    assert memo["n_training_films"] == 16 and len(memo["generated"]) == len(memo["real"]) == 4
    assert 0 < memo["real_median"] < 2 and isinstance(memo["not_below_real"], bool)


def test_films_are_measured_as_saved_and_guided_mode_inserts(setup, tmp_path: Path) -> None:
    """The evaluated film is the 16-bit PNG read back at the source's size; guided mode also
    paints donor nodules onto the normal films. Memorisation needs held-out cases only."""
    data, model = setup
    engine = Engine.load(str(model), device="cpu", precision="fp32")
    dataset = JsrtDataset(data)
    cfg = EvalConfig(mode="guided", steps=2, split="val", diversity=False, classifier_seeds=0)
    films = EngineFilms(engine, cfg)
    case = dataset.load(dataset.split()[1][0])
    film = films.draw(case, case.masks, 3)
    assert film.shape == case.image.shape == (128, 128) and film.dtype == np.float32
    np.testing.assert_allclose(film * 65535, np.rint(film * 65535), atol=2e-3)
    report = Evaluator(films, dataset, cfg).run(tmp_path / "guided.json")
    assert {r["case"] for r in report["insertion"]} == {
        c for c in dataset.split()[1] if not dataset.load(c).masks.nodules}
    assert np.isfinite(report["mean"]["insertion_contrast"])
    assert report["two_sample"].get("film_auc") is None
    assert report["memorisation"]["n_training_films"] == 16
    every = Evaluator(films, dataset, EvalConfig(mode="guided", steps=2, limit=2, diversity=False,
                                                 classifier_seeds=0))
    assert every.run(tmp_path / "all.json")["memorisation"] is None  # training cases included
