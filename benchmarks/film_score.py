"""The tuning score of docs/fullres.md's rules: how far new patients' texture is from real films'.

score = |ln texture_256| + |ln texture_1024| + max over NPS bands |ln (NPS_gen / NPS_real)|,
over films saved as the product saves them and read back, against the real films of the same
masks (texture: ``evaluation.texture.texture_ratio`` in the lungs; NPS: ``lung_nps`` with 64 px
regions, pooled, the bands of ``NPS_BANDS``). 0 is a perfect match.
"""

from __future__ import annotations

import math

import numpy as np

NPS_SIDE = 64


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
