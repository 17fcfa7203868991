"""Does a model copy its training films? Each film's distance to its nearest training film.

A generator trained on 160 radiographs can memorise them; a retrieval or warping method copies by
design. The test compares distributions: the distance of each generated film to its nearest
training film against the same distance for held-out real films (which the model never saw, so
they show how close a new real patient comes to the training set by chance). Generated films
closer than that are copies, or close to it.

The distance is ``1 - normalised cross-correlation`` of the two films letterboxed to 128 px and
z-scored, the same number as half the mean squared difference of the z-scored films (so it is
also the L2 distance, up to a square and a factor). Why these choices:

- 128 px keeps what identifies a patient's film (body outline, lung and heart shape, ribs,
  clavicles, exposure pattern) and drops the fine texture, which a copy re-drawn with fresh
  noise would not share, so a copy is still near 0;
- z-scoring takes out brightness and contrast (window, exposure), which a copy may change
  without being any less a copy;
- correlation over the whole film, not features of a network trained elsewhere: nothing here is
  trained on chest films, so it needs no weights and says plainly what "close" means.
  0: the same picture; about 1: unrelated; 2: the negative.
"""

from __future__ import annotations

import numpy as np

from xraystudio.synthesis.condition import Letterbox

#: Side of the square films are compared at.
THUMB_PX = 128


def thumbnail(film: np.ndarray, size: int = THUMB_PX) -> np.ndarray:
    """The film letterboxed to ``size`` px (area average), z-scored, flattened."""
    arr = Letterbox(np.shape(film), size).to_working(np.asarray(film, np.float32),
                                                     fill=float(np.mean(film)))
    arr = arr.astype(np.float64).ravel()
    return (arr - arr.mean()) / (arr.std() + 1e-9)


def nearest_distances(films: np.ndarray, library: np.ndarray) -> np.ndarray:
    """For each row of ``films`` (thumbnails), 1 - correlation with its nearest ``library`` row."""
    a, b = np.atleast_2d(films), np.atleast_2d(library)
    corr = a @ b.T / a.shape[1]
    return 1.0 - corr.max(axis=1)


def summary(generated: np.ndarray, real: np.ndarray, alpha: float = 0.05) -> dict:
    """Both distance distributions (median, 10th percentile, minimum) and whether the generated
    films are not closer to the training set than held-out real films.

    ``not_below_real`` is a one-sided Mann-Whitney U test (generated distances smaller than
    real ones) not significant at ``alpha``: comparing medians alone, two samples of the same
    distribution would fail half the time (real films against other real films do, at 20 a
    side). ``closer_than_every_real`` counts generated films nearer a training film than the
    nearest held-out real film, the copies a distribution test could average away.
    """
    from scipy.stats import mannwhitneyu

    g, r = np.asarray(generated, float), np.asarray(real, float)
    p = float(mannwhitneyu(g, r, alternative="less").pvalue)
    return {"distance": f"1 - NCC of z-scored {THUMB_PX} px films",
            "generated_median": float(np.median(g)), "generated_p10": float(np.percentile(g, 10)),
            "real_median": float(np.median(r)), "real_p10": float(np.percentile(r, 10)),
            "generated_min": float(g.min()), "real_min": float(r.min()),
            "closer_than_every_real": int((g < r.min()).sum()),
            "p_generated_below_real": p, "not_below_real": p >= alpha}
