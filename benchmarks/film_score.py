"""The tuning score of docs/fullres.md's rules: how far new patients' texture is from real films'.

score = |ln texture_256| + |ln texture_1024| + max over NPS bands |ln (NPS_gen / NPS_real)|,
over films saved as the product saves them and read back, against the real films of the same
masks (texture: ``evaluation.texture.texture_ratio`` in the lungs; NPS: ``lung_nps`` with 64 px
regions, pooled, the bands of ``NPS_BANDS``). 0 is a perfect match.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

NPS_SIDE = 64


@dataclasses.dataclass
class TuningCase:
    """A tuning case as the rules use it: its masks, real film, lungs and the film as a study."""

    id: str
    masks: object
    real: np.ndarray
    lungs: np.ndarray
    image: object


def tuning_cases(data: str, count: int) -> list[TuningCase]:
    """The first ``count`` tuning cases of the training split (``tune_split``: 12 cases neither
    the edit model nor the full-resolution stage was trained on); the validation split is not
    looked at."""
    from xraystudio.image import XRayImage
    from xraystudio.io.datasets import JsrtDataset, tune_split
    from xraystudio.masks import LUNGS

    dataset = JsrtDataset(data)
    train, _ = dataset.split()
    _, tune = tune_split(dataset, train, 12)
    cases = []
    for case_id in tune[:count]:
        case = dataset.load(case_id)
        real = case.image.astype(np.float32)
        cases.append(TuningCase(case_id, case.masks, real, case.masks.union(LUNGS),
                                XRayImage.from_display(real, case.masks.spacing_mm)))
    return cases


class FilmScore:
    """Collects (real, generated) films of one candidate and scores them."""

    def __init__(self) -> None:
        self.texture_256: list[float] = []
        self.texture_1024: list[float] = []
        self.real_nps: list = []
        self.nps: list = []
        self.freqs = None

    def add(self, real: np.ndarray, saved: np.ndarray, lungs: np.ndarray) -> None:
        from xraystudio.evaluation.texture import lung_nps, texture_ratio

        self.texture_256.append(texture_ratio(real, saved, lungs, 256))
        self.texture_1024.append(texture_ratio(real, saved, lungs, 1024))
        self.freqs, curve, n = lung_nps(real, lungs, NPS_SIDE)
        self.real_nps.append((curve, n))
        self.nps.append(lung_nps(saved, lungs, NPS_SIDE)[1:])

    def result(self) -> dict:
        from xraystudio.evaluation.texture import NPS_BANDS, compare_nps

        t256, t1024 = float(np.mean(self.texture_256)), float(np.mean(self.texture_1024))
        nps = compare_nps(self.real_nps, self.nps, self.freqs, NPS_BANDS)
        worst = max(abs(math.log(v)) for v in nps["ratio"])
        return {"texture_256": t256, "texture_1024": t1024, "nps_ratio": nps["ratio"],
                "score": abs(math.log(t256)) + abs(math.log(t1024)) + worst}
