"""The anatomy segmentation handler of the engine process (the segmenter process serves it)."""

from __future__ import annotations

import os

import numpy as np

from xraystudio.engine.protocol import Segmented, SegmentJob
from xraystudio.engine.shared import SharedArray

SEGMENT_HINT = "Train one with `xraystudio train-segmenter` or paint the anatomy by hand."


def _segment_model_dir(resources: str | None):
    """The shipped model's folder as the sender sees it (its XRAYSTUDIO_RESOURCES)."""
    from xraystudio.segmentation.segmenter import default_model_dir

    saved = os.environ.pop("XRAYSTUDIO_RESOURCES", None)
    try:
        if resources is not None:
            os.environ["XRAYSTUDIO_RESOURCES"] = resources
        return default_model_dir()
    finally:
        os.environ.pop("XRAYSTUDIO_RESOURCES", None)
        if saved is not None:
            os.environ["XRAYSTUDIO_RESOURCES"] = saved


def run_segmentation(job: SegmentJob, cache: dict, send, cancel) -> Segmented:
    from xraystudio.segmentation.segmenter import Segmenter

    folder = _segment_model_dir(job.resources)
    key = ("segmenter", str(folder))
    if key not in cache:  # a failed load is not cached: the next job tries again
        cache[key] = Segmenter.load(folder)
    display = job.display.take(unlink=False)
    masks = cache[key].segment(display)
    names = list(masks)
    stacked = np.stack([np.asarray(masks[n], dtype=bool) for n in names]) if names else \
        np.zeros((0, *display.shape), bool)
    return Segmented(names, SharedArray.handed_over(stacked))
