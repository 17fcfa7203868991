"""Study: one radiograph and the masks and nodules drawn on it — the unit users work on.

The mask stack always matches the image's size and spacing; when the file carries no spacing the
study uses a default the user can change, and records that it did.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from xraystudio.image import XRayImage
from xraystudio.io.radiograph import load_radiograph
from xraystudio.masks import DEFAULT_SPACING_MM, MaskStack


@dataclasses.dataclass
class Study:
    image: XRayImage
    masks: MaskStack
    name: str = ""

    def __post_init__(self) -> None:
        if self.masks.shape != self.image.shape:
            from xraystudio.errors import MaskError

            raise MaskError(
                f"masks are {self.masks.shape[1]} x {self.masks.shape[0]} but the image is "
                f"{self.image.shape[1]} x {self.image.shape[0]}"
            )
        if not self.name and self.image.source is not None:
            self.name = self.image.source.stem

    @classmethod
    def open(cls, path: str | os.PathLike, default_spacing_mm: float = DEFAULT_SPACING_MM) -> Study:
        """Load a radiograph and give it empty mask layers at its size and spacing."""
        image = load_radiograph(path)
        if image.spacing_mm is None:
            image = dataclasses.replace(
                image,
                spacing_mm=(default_spacing_mm, default_spacing_mm),
                spacing_source="default",
            )
        return cls(image, MaskStack(image.shape, image.spacing_mm), Path(path).stem)

    @classmethod
    def from_image(cls, image: XRayImage, name: str = "",
                   default_spacing_mm: float = DEFAULT_SPACING_MM) -> Study:
        spacing = image.spacing_mm or (default_spacing_mm, default_spacing_mm)
        return cls(image, MaskStack(image.shape, spacing), name)

    @property
    def spacing_mm(self) -> tuple[float, float]:
        return self.masks.spacing_mm

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape
