"""DICOM objects for an export: each synthetic image as a Secondary Capture, its masks as a SEG.

Built with highdicom so that the IODs are complete and valid. Choices, and why:

- Every source study maps to a NEW study (new Study, Series and SOP Instance UIDs). A synthetic
  image must never join the patient's real study, which is why ``SCImage.from_ref_dataset`` (it
  copies the source's StudyInstanceUID) is not used even when the link is kept.
- ImageType DERIVED\\SECONDARY, ConversionType SYN (synthetic image), a SeriesDescription and
  ImageComments that say "synthetic, not for diagnosis", and the provenance in compact form in
  DerivationDescription.
- De-identified by default: a pseudonym as patient name and ID, no birth date or sex, and
  PatientIdentityRemoved YES. With ``keep_link`` the source's patient identity is kept and a
  Source Image Sequence references the source image.
- The SEG is BINARY with one segment per structure, coded in SNOMED CT from pydicom's code
  dictionary: Lung/Clavicle with a Right/Left modifier, Heart, and the nodule as a Nodule
  (morphologically abnormal structure). Empty structures are kept as empty segments so that
  every SEG of an export has the same segments.
- The SC carries PixelSpacing when the spacing is known (the source DICOM had ImagerPixelSpacing
  or PixelSpacing): the masks' spacing, scaled to the exported grid. The SEG has no pixel
  measures: highdicom 0.28 cannot read back a SEG of a projection image with pixel measures but
  no slice thickness, and a slice thickness would be invented; it refers to the SC, which has it.
  The spacing is also in the DerivationDescription and in metadata.jsonl.
- BodyPartExamined CHEST and, on the SEG, the SC's PatientOrientation: with them the files pass
  dicom3tools' dciodvfy without an error or warning (tests/test_export_validation.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from xraystudio import __version__
from xraystudio.curation.export_case import ExportCase
from xraystudio.masks import MaskStack

MANUFACTURER = "xraystudio"
SC_DESCRIPTION = "SYNTHETIC radiograph - NOT FOR DIAGNOSIS"
SEG_DESCRIPTION = "SYNTHETIC radiograph masks - NOT FOR DIAGNOSIS"
#: DerivationDescription is ST: at most 1024 characters.
_ST_MAX = 1024
#: Columns run toward the patient's left and rows toward the feet: a PA chest as displayed.
PATIENT_ORIENTATION = ("L", "F")
BODY_PART = "CHEST"

# structure -> (label, category, property type, laterality modifier)
SEGMENTS: dict[str, tuple[str, Any, Any, Any]] = {
    "right_lung": ("Right lung", codes.SCT.AnatomicalStructure, codes.SCT.Lung, codes.SCT.Right),
    "left_lung": ("Left lung", codes.SCT.AnatomicalStructure, codes.SCT.Lung, codes.SCT.Left),
    "heart": ("Heart", codes.SCT.AnatomicalStructure, codes.SCT.Heart, None),
    "right_clavicle": ("Right clavicle", codes.SCT.AnatomicalStructure, codes.SCT.Clavicle,
                       codes.SCT.Right),
    "left_clavicle": ("Left clavicle", codes.SCT.AnatomicalStructure, codes.SCT.Clavicle,
                      codes.SCT.Left),
    "nodule": ("Nodule", codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Nodule, None),
}


@dataclasses.dataclass
class _StudyUIDs:
    study: str
    sc_series: str
    seg_series: str
    instances: int = 0


class DicomStudies:
    """Makes the SC and SEG of each case, grouping cases of one source study in one new study."""

    def __init__(self, keep_link: bool) -> None:
        self.keep_link = keep_link
        self._studies: dict[str, _StudyUIDs] = {}
        self._now = dt.datetime.now()

    def make(self, case: ExportCase, pixels: np.ndarray, masks: MaskStack
             ) -> tuple[hd.sc.SCImage, hd.seg.Segmentation]:
        uids = self._studies.setdefault(
            case.subject, _StudyUIDs(generate_uid(), generate_uid(), generate_uid())
        )
        uids.instances += 1
        sc = self._secondary_capture(case, pixels, uids)
        seg = self._segmentation(sc, masks, uids)
        spacing = known_spacing(case, pixels.shape, masks)
        if spacing is not None:  # after the SEG is made: see the module's note on the SEG
            sc.PixelSpacing = [f"{v:.6g}" for v in spacing]
        return sc, seg

    def _patient(self, case: ExportCase) -> dict[str, Any]:
        src = case.source_header
        if self.keep_link and src is not None:
            return {
                "patient_id": src.get("PatientID"), "patient_name": src.get("PatientName"),
                "patient_birth_date": src.get("PatientBirthDate") or None,
                "patient_sex": src.get("PatientSex") or None,
            }
        return {"patient_id": case.subject, "patient_name": f"Synthetic^{case.subject}"}

    def _secondary_capture(self, case: ExportCase, pixels: np.ndarray, uids: _StudyUIDs
                           ) -> hd.sc.SCImage:
        sc = hd.sc.SCImage(
            pixel_array=pixels, photometric_interpretation="MONOCHROME2", bits_allocated=16,
            coordinate_system="PATIENT", patient_orientation=PATIENT_ORIENTATION,
            study_instance_uid=uids.study, series_instance_uid=uids.sc_series, series_number=1,
            sop_instance_uid=generate_uid(), instance_number=uids.instances,
            manufacturer=MANUFACTURER, study_id=case.subject,
            study_date=self._now.date(), study_time=self._now.time(),
            **self._patient(case),
        )
        sc.ImageType = ["DERIVED", "SECONDARY"]
        sc.ConversionType = "SYN"
        sc.SeriesDescription = SC_DESCRIPTION
        sc.StudyDescription = SC_DESCRIPTION
        sc.ImageComments = "Synthetic image generated by xraystudio; not for diagnostic use."
        sc.BurnedInAnnotation = "NO"
        sc.BodyPartExamined = BODY_PART
        sc.SoftwareVersions = __version__
        sc.DerivationDescription = derivation_description(case.result.provenance)
        if not self.keep_link or case.source_header is None:
            sc.PatientIdentityRemoved = "YES"
            sc.DeidentificationMethod = "xraystudio export: pseudonym per source study"
        else:
            src = case.source_header
            item = Dataset()
            item.ReferencedSOPClassUID = src.SOPClassUID
            item.ReferencedSOPInstanceUID = src.SOPInstanceUID
            sc.SourceImageSequence = [item]
        return sc

    def _segmentation(self, sc: hd.sc.SCImage, masks: MaskStack, uids: _StudyUIDs
                      ) -> hd.seg.Segmentation:
        descriptions = []
        layers = []
        for number, (name, (label, category, kind, side)) in enumerate(SEGMENTS.items(), 1):
            desc = hd.seg.SegmentDescription(
                segment_number=number, segment_label=label, segmented_property_category=category,
                segmented_property_type=kind, algorithm_type="MANUAL",
            )
            if side is not None:
                desc.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence \
                    = [hd.sr.CodedConcept.from_code(side)]
            descriptions.append(desc)
            layers.append(np.asarray(masks[name]) if name in masks else np.zeros(masks.shape, bool))
        seg = hd.seg.Segmentation(
            source_images=[sc], pixel_array=np.stack(layers, axis=-1)[None],
            segmentation_type="BINARY", segment_descriptions=descriptions,
            series_instance_uid=uids.seg_series, series_number=2,
            sop_instance_uid=generate_uid(), instance_number=uids.instances,
            manufacturer=MANUFACTURER, manufacturer_model_name="xraystudio",
            software_versions=__version__, device_serial_number="none",
            omit_empty_frames=False,
            content_description="Masks the synthetic image was generated from",
        )
        seg.SeriesDescription = SEG_DESCRIPTION
        seg.BodyPartExamined = BODY_PART
        seg.PatientOrientation = list(PATIENT_ORIENTATION)  # 2C: a projection image has no plane
        if "PatientIdentityRemoved" in sc:
            seg.PatientIdentityRemoved = sc.PatientIdentityRemoved
            seg.DeidentificationMethod = sc.DeidentificationMethod
        return seg


def known_spacing(case: ExportCase, shape: tuple[int, ...], masks: MaskStack
                  ) -> tuple[float, float] | None:
    """Row and column spacing (mm) of the exported pixels, when the source's was known: the
    masks' spacing (the source's, or its resized grid's) scaled from the masks' to ``shape``."""
    src = case.source_header
    if src is None or not any(k in src for k in ("ImagerPixelSpacing", "PixelSpacing")):
        return None
    try:
        row, col = (float(v) for v in masks.spacing_mm)
    except (TypeError, ValueError):
        return None
    mh, mw = masks.shape
    h, w = shape[:2]
    row, col = row * mh / h, col * mw / w
    return (row, col) if row > 0 and col > 0 else None


def derivation_description(provenance: dict[str, Any]) -> str:
    """The provenance in one line of at most 1024 characters (no source file name)."""
    model = provenance.get("model") or {}
    params = provenance.get("parameters") or {}
    source = provenance.get("source_image") or {}
    fields = [
        ("model", model.get("name")), ("kind", model.get("kind")),
        ("weights sha256", model.get("weights_sha256")),
        *sorted(params.items()),
        ("masks", provenance.get("mask_hash")), ("source pixels", source.get("pixel_hash")),
        ("spacing mm", source.get("spacing_mm")), ("device", provenance.get("device")),
        ("created", provenance.get("created")),
    ]
    parts = [f"SYNTHETIC, not for diagnosis. Generated by "
             f"{provenance.get('software', 'xraystudio')}"]
    parts += [f"{k} {v}" for k, v in fields if v is not None]
    text = "; ".join(parts)
    return text if len(text) <= _ST_MAX else text[: _ST_MAX - 3] + "..."
