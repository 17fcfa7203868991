"""Which layers an automatic anatomy segmentation may fill in a study's masks.

The manual action replaces every segmented layer. The automatic run (after opening a radiograph
without masks) never overwrites the user: layers they began painting before the result arrived
are kept, and nothing is applied when every layer is painted, or when the masks themselves show
the film is no frontal chest (a hip, a knee).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from xraystudio import chest_check
from xraystudio.image import XRayImage
from xraystudio.masks import MaskStack


@dataclasses.dataclass
class Merge:
    layers: list[str]  # the layers to replace with the segmentation (empty: apply nothing)
    kept: list[str]  # painted layers left as the user painted them
    not_chest: str = ""  # the chest check's warning when it refused the result


def merge_segmentation(masks: MaskStack, image: XRayImage | None,
                       segmented: Mapping[str, np.ndarray], automatic: bool) -> Merge:
    """What to apply of ``segmented`` to ``masks`` (see the module's rule)."""
    names = [n for n in segmented if n in masks]
    if not automatic:
        return Merge(names, [])
    verdict = chest_check.check(image, segmented)
    if verdict.warning:
        return Merge([], [], verdict.warning)
    kept = [n for n in names if masks[n].any()]
    return Merge([n for n in names if n not in kept], kept)
