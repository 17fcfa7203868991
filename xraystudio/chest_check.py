"""Is this a frontal chest radiograph? The built-in models (anatomy segmenter, generators) are.

Two sources of evidence, each optional:

- the file's labels (DICOM ``Modality``, ``BodyPartExamined``, ``ViewPosition``, the view and
  anatomic region code sequences, ``PatientOrientation``, and the study/series/protocol
  descriptions), read into ``XRayImage.metadata`` by :mod:`xraystudio.io.dicom`;
- the anatomy segmenter's masks: two lungs of plausible size side by side, patient's right lung
  on the image's left, the heart between them. This catches an unlabelled PNG of a knee.

:func:`check` returns a :class:`ChestCheck` whose ``warning`` is one sentence for the user (or
``None``). Nothing here imports Qt or torch.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Mapping

import numpy as np

from xraystudio.image import XRayImage

SUPPORTED = "the built-in models are for frontal (PA/AP) chest radiographs"

# Modalities of projection radiography (CR, DX, and the retired DR/RG) and containers that say
# nothing about the content (secondary capture, other).
_RADIOGRAPHY = {"CR", "DX", "DR", "RG", "OT", "SC", "", "XC"}
_MODALITY_NAMES = {
    "CT": "CT", "MR": "MR (magnetic resonance)", "US": "ultrasound", "NM": "nuclear medicine",
    "PT": "PET", "MG": "mammography", "XA": "angiography", "RF": "fluoroscopy",
    "IO": "intra-oral (dental)", "PX": "panoramic dental", "ES": "endoscopy", "SEG":
    "segmentation", "RTDOSE": "radiotherapy dose", "RTIMAGE": "radiotherapy image",
}
_CHEST_WORDS = ("CHEST", "THORA", "TORAX", "TORACE", "LUNG", "PULM", "HEART", "RIB", "STERN",
                "MEDIASTIN", "CXR")
_OTHER_PARTS = (
    "HIP", "PELVIS", "KNEE", "ANKLE", "FOOT", "FEET", "TOE", "HAND", "FINGER", "THUMB", "WRIST",
    "ELBOW", "FOREARM", "ARM", "HUMERUS", "SHOULDER", "CLAVICLE", "SCAPULA", "SKULL", "HEAD",
    "FACE", "SINUS", "MANDIBLE", "JAW", "TEETH", "DENTAL", "NECK", "SPINE", "CSPINE", "TSPINE",
    "LSPINE", "CERVICAL", "LUMBAR", "SACRUM", "COCCYX", "ABDOMEN", "KUB", "LEG", "FEMUR",
    "TIBIA", "FIBULA", "PATELLA", "CALCANEUS", "EXTREMITY", "BREAST", "WHOLE BODY", "WHOLEBODY",
    "BRAIN", "ORBIT",
)
_LATERAL_VIEWS = {"LL", "RL", "LAT", "LATERAL", "LLAT", "RLAT"}
_OBLIQUE_VIEWS = {"LAO", "RAO", "LPO", "RPO", "OBL", "OBLIQUE"}
_FRONTAL_VIEWS = {"PA", "AP", "APS", "PAS", "LLD", "RLD", "AP SUPINE", "AP ERECT"}
_LATERAL_TEXT = re.compile(r"\b(LAT|LATERAL|LATERO[- ]?MEDIAL|MEDIO[- ]?LATERAL|LL|RL)\b")


@dataclasses.dataclass(frozen=True)
class ChestCheck:
    """The verdict: ``kind`` is ``frontal_chest``, ``lateral_chest``, ``not_chest`` or
    ``unknown`` (nothing says either way); ``confidence`` (0-1) is the segmentation's, when
    masks were checked."""

    kind: str
    reason: str = ""
    confidence: float | None = None
    source: str = ""  # "labels", "segmentation", or ""

    @property
    def supported(self) -> bool:
        return self.kind in ("frontal_chest", "unknown")

    @property
    def short(self) -> str:
        """A few words for counts ("skipped: 6 not chest"): ``not chest`` (its labels),
        ``not frontal`` (labelled lateral or oblique), ``implausible lungs`` (the segmenter's
        masks of an unlabelled image), or ``chest``."""
        if self.supported:
            return "chest"
        if self.source == "segmentation":
            return "implausible lungs"
        return "not chest" if self.kind == "not_chest" else "not frontal"

    @property
    def warning(self) -> str | None:
        if self.supported:
            return None
        return f"{self.reason}; {SUPPORTED}"


# ------------------------------------------------------------------------------ labels
def check_labels(metadata: Mapping[str, object]) -> ChestCheck:
    """The verdict of the file's own labels (DICOM attributes); ``unknown`` without any."""
    modality = _up(metadata.get("modality"))
    if modality and modality not in _RADIOGRAPHY:
        name = _MODALITY_NAMES.get(modality, modality)
        return ChestCheck("not_chest", f"This image is labelled {name}, not a radiograph",
                          source="labels")
    part = _up(metadata.get("body_part")) or _up(metadata.get("anatomic_region"))
    view = _up(metadata.get("view_position"))
    view_code = _up(metadata.get("view_code"))
    descriptions = " ".join(_up(metadata.get(k)) for k in
                            ("series_description", "study_description", "protocol_name"))
    orientation = [p.strip() for p in _up(metadata.get("patient_orientation")).split("\\")]

    if part and not _is_chest(part):
        return ChestCheck("not_chest", f"This radiograph is labelled {part}", source="labels")
    if not part:
        other = _other_part(descriptions)
        if other and not _is_chest(descriptions):
            return ChestCheck("not_chest", f"This radiograph is described as {other}",
                              source="labels")
    where = "chest radiograph" if part or _is_chest(descriptions) else "radiograph"
    if view in _LATERAL_VIEWS or "LATERAL" in view_code and "DECUBITUS" not in view_code:
        label = view or view_code.lower()
        return ChestCheck("lateral_chest", f"This {where} is a lateral view ({label})",
                          source="labels")
    if view in _OBLIQUE_VIEWS or "OBLIQUE" in view_code:
        return ChestCheck("lateral_chest", f"This {where} is an oblique view "
                          f"({view or view_code.lower()})", source="labels")
    if not view and not view_code:
        if orientation and orientation[0][:1] in ("A", "P"):
            return ChestCheck("lateral_chest", f"This {where} is a lateral view (patient "
                              f"orientation {'/'.join(orientation)})", source="labels")
        if _LATERAL_TEXT.search(descriptions) and not re.search(r"\b(PA|AP)\b", descriptions):
            return ChestCheck("lateral_chest", f"This {where} is described as a lateral view",
                              source="labels")
    if part:
        return ChestCheck("frontal_chest", f"labelled {part}" + (f", {view}" if view else ""),
                          source="labels")
    return ChestCheck("unknown")


def _up(value) -> str:
    return " ".join(str(value or "").upper().replace("_", " ").split())


def _is_chest(text: str) -> bool:
    return any(w in text for w in _CHEST_WORDS)


def _other_part(text: str) -> str:
    for word in _OTHER_PARTS:
        if re.search(rf"\b{word}S?\b", text):
            return word
    return ""


# ------------------------------------------------------------------------------ masks
@dataclasses.dataclass(frozen=True)
class Anatomy:
    """What the masks of one radiograph look like, in fractions of the image."""

    right_lung: float  # area fractions
    left_lung: float
    heart: float
    right_x: float  # centroid x of the patient's right lung (0 = image left)
    left_x: float
    heart_x: float
    lungs_y: float  # mean centroid height of the lungs (0 = top)
    solidity: float  # smallest share of a lung mask in its largest piece


def anatomy(masks: Mapping[str, np.ndarray]) -> Anatomy | None:
    """Measure the lungs and heart; ``None`` when a mask is missing."""
    need = ("right_lung", "left_lung", "heart")
    if any(n not in masks for n in need):
        return None
    ms = [np.asarray(masks[n], bool) for n in need]
    h, w = ms[0].shape
    # Work on a coarse copy: the measures are fractions, and 2000 px masks would cost time.
    step = max(1, max(h, w) // 256)
    ms = [m[::step, ::step] for m in ms]
    total = ms[0].size
    areas, xs, ys = [], [], []
    for m in ms:
        areas.append(float(m.sum()) / total)
        yy, xx = np.nonzero(m)
        xs.append(float(xx.mean()) / m.shape[1] if xx.size else 0.5)
        ys.append(float(yy.mean()) / m.shape[0] if yy.size else 0.5)
    solidity = min(_largest_share(m) for m in ms[:2])
    return Anatomy(areas[0], areas[1], areas[2], xs[0], xs[1], xs[2], (ys[0] + ys[1]) / 2,
                   solidity)


def _largest_share(mask: np.ndarray) -> float:
    from scipy import ndimage

    labels, n = ndimage.label(mask)
    if n == 0:
        return 0.0
    sizes = np.bincount(labels.ravel())[1:]
    return float(sizes.max() / sizes.sum())


def chest_confidence(masks: Mapping[str, np.ndarray]) -> float:
    """0-1: how much the masks look like the anatomy of a frontal chest radiograph.

    The mean of soft scores for: each lung's size (JSRT: 8-16 % of the image each), similar
    lung sizes, right lung on the image's left and left lung on its right with a gap, the heart
    between them and of plausible size, lungs in the upper two thirds, lungs in one piece.
    """
    a = anatomy(masks)
    return 0.0 if a is None else _confidence_of(a)


def _confidence_of(a: Anatomy) -> float:
    small, big = sorted((a.right_lung, a.left_lung))
    scores = [
        _band(a.right_lung, 0.03, 0.06, 0.25, 0.35),
        _band(a.left_lung, 0.03, 0.06, 0.25, 0.35),
        _band(small / big if big > 0 else 0.0, 0.25, 0.45, 1.0, 1.01),
        _band(a.left_x - a.right_x, 0.15, 0.28, 0.65, 0.8),
        1.0 if a.right_x < 0.5 < a.left_x else 0.0,
        _band((a.heart_x - a.right_x) / max(a.left_x - a.right_x, 1e-6), 0.2, 0.35, 0.85, 1.0),
        _band(a.heart, 0.005, 0.02, 0.2, 0.3),
        _band(a.lungs_y, 0.15, 0.25, 0.6, 0.75),
        _band(a.solidity, 0.7, 0.9, 1.0, 1.01),
    ]
    return float(np.mean(scores))


def _band(x: float, lo0: float, lo1: float, hi1: float, hi0: float) -> float:
    """1 inside [lo1, hi1], falling linearly to 0 at lo0 and hi0."""
    if x <= lo0 or x >= hi0:
        return 0.0
    if x < lo1:
        return (x - lo0) / (lo1 - lo0)
    if x > hi1:
        return (hi0 - x) / (hi0 - hi1)
    return 1.0


# Below this the masks are not taken for a chest. Measured with the shipped segmenter: all 200
# JSRT radiographs and both real chest DICOMs score 1.00; the WG04 lower leg 0.05, pydicom's
# CT/MR/NM test images 0.11-0.73, JSRT radiographs turned by 90 degrees 0.30-0.69. (The WG04
# hip scores 1.00: the segmenter finds "lungs" in the pelvis; its label HIP catches it.)
MIN_CONFIDENCE = 0.85


def check_masks(masks: Mapping[str, np.ndarray]) -> ChestCheck:
    """The verdict of the segmenter's masks alone."""
    score = chest_confidence(masks)
    if score >= MIN_CONFIDENCE:
        return ChestCheck("frontal_chest", "lungs and heart where a chest has them", score,
                          "segmentation")
    return ChestCheck(
        "not_chest",
        f"The anatomy segmenter found no plausible pair of lungs with the heart between them "
        f"(confidence {score:.2f}): this may not be a frontal chest radiograph", score,
        "segmentation")


def check(image: XRayImage | None, masks: Mapping[str, np.ndarray] | None = None) -> ChestCheck:
    """The file's labels first (they are the more reliable); then, if they leave it open and
    ``masks`` (the segmenter's) are given, the anatomy."""
    labels = check_labels(image.metadata if image is not None else {})
    if not labels.supported or masks is None:
        return labels
    by_masks = check_masks(masks)
    if labels.kind == "frontal_chest":
        # Labelled a chest: the segmenter's doubt becomes the confidence, not a refusal.
        return dataclasses.replace(labels, confidence=by_masks.confidence)
    return by_masks


def masks_of(stack) -> dict[str, np.ndarray]:
    """The anatomy layers of a MaskStack as a plain mapping."""
    return {n: stack[n] for n in ("right_lung", "left_lung", "heart") if n in stack}


def warn(image: XRayImage | None, masks=None, stream=None) -> ChestCheck:
    """Check, and print ``warning: ...`` on ``stream`` (stderr) when the image is not a frontal
    chest radiograph. ``masks`` may be a MaskStack or a mapping of the segmenter's masks."""
    if masks is not None and not isinstance(masks, Mapping):
        masks = masks_of(masks)
    result = check(image, masks)
    if result.warning:
        print(f"warning: {result.warning}", file=stream or sys.stderr)
    return result
