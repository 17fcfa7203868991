"""Anatomy segmentation: lungs, heart and clavicles from a display-ready radiograph.

``Segmenter.load()`` opens the shipped model; ``segment()`` returns one boolean mask per
structure at the input's size. Torch is imported only when a model is loaded, so importing this
package is cheap (the GUI imports it at start-up).
"""

from xraystudio.segmentation.postprocess import largest_component_filled
from xraystudio.segmentation.segmenter import DEFAULT_MODEL, Segmenter, default_model_dir

__all__ = ["DEFAULT_MODEL", "Segmenter", "default_model_dir", "largest_component_filled"]
