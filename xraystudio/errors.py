"""Typed errors that carry a message a person can act on.

Every error the user can cause (bad files, wrong sizes, missing models) derives from
``XRayStudioError`` so that the CLI and the GUI can show one line instead of a traceback.
"""


class XRayStudioError(Exception):
    """Base class for errors whose message is meant for the user."""


class ImageLoadError(XRayStudioError):
    """A radiograph could not be read: not an image, broken, unsupported or undecodable."""


class MaskError(XRayStudioError):
    """A mask does not fit the study (wrong size, unknown layer, unreadable file)."""


class ModelError(XRayStudioError):
    """A model is missing, malformed, unsafe to load, or needs a download the user did not allow."""


class GenerationError(XRayStudioError):
    """Generation failed for a reason the user can fix (out of memory, bad parameters)."""


class GenerationCancelled(XRayStudioError):
    """The user cancelled a generation; no (half-denoised) image is returned."""


class ProjectError(XRayStudioError):
    """A project or export could not be read or written."""


class DatasetError(XRayStudioError):
    """A training or evaluation dataset does not follow its layout (missing folder, file or row)."""


class SweepError(XRayStudioError):
    """A parameter sweep is malformed: an unknown axis, a bad value or range, too many cells."""
