"""The nnU-Net v2 raw dataset layout: its dataset.json and a check of its rules.

The rules are nnU-Net v2's (documentation "dataset_format"): ``imagesTr/<case>_<XXXX><ending>``
with one file per channel named in ``channel_names`` (four-digit channel index),
``labelsTr/<case><ending>`` for every case, ``labels`` mapping names to consecutive integers
starting with ``background: 0``, ``numTraining`` equal to the number of cases, and label images of
the same size as the images holding only declared values. Checked here so a dataset that nnU-Net
would reject after hours of preprocessing is caught when it is written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from xraystudio.masks import STRUCTURES, MaskStack

#: Label values: 0 background, then the structures in order (lungs, heart, clavicles, nodule);
#: nnU-Net labels are exclusive, so later structures are painted over earlier ones and the small,
#: clinically important nodule wins where masks overlap.
LABELS: dict[str, int] = {"background": 0, **{n: i for i, n in enumerate(STRUCTURES, 1)}}
_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


def label_map(masks: MaskStack) -> np.ndarray:
    """One uint8 label per pixel (:data:`LABELS`), later structures over earlier ones."""
    labels = np.zeros(masks.shape, np.uint8)
    for name in STRUCTURES:
        if name in masks:
            labels[np.asarray(masks[name])] = LABELS[name]
    return labels


def dataset_json(num_training: int, description: str, **extra: object) -> dict:
    return {
        "name": "xraystudio_synthetic",
        "description": description,
        "channel_names": {"0": "xray"},
        "labels": LABELS,
        "numTraining": num_training,
        "file_ending": ".png",
        **extra,
    }


def check_nnunet_dataset(root: str | Path, read_pixels: bool = True) -> list[str]:
    """Every way ``root`` breaks nnU-Net v2's raw dataset rules; empty when it follows them."""
    from PIL import Image

    root = Path(root)
    problems: list[str] = []
    try:
        meta = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"dataset.json unreadable: {exc}"]
    for key in ("channel_names", "labels", "numTraining", "file_ending"):
        if key not in meta:
            problems.append(f"dataset.json lacks {key!r}")
    if problems:
        return problems
    ending = meta["file_ending"]
    channels = sorted(int(c) for c in meta["channel_names"])
    if channels != list(range(len(channels))):
        problems.append("channel_names keys must be 0, 1, ...")
    labels = meta["labels"]
    values = sorted(int(v) for v in labels.values())
    if labels.get("background") != 0 or values != list(range(len(values))):
        problems.append("labels must map background to 0 and use consecutive integers")
    cases: dict[str, set[int]] = {}
    for f in sorted((root / "imagesTr").glob(f"*{ending}")):
        m = _CHANNEL.match(f.name[: -len(ending)])
        if m is None:
            problems.append(f"imagesTr/{f.name}: not named <case>_<XXXX>{ending}")
            continue
        cases.setdefault(m["case"], set()).add(int(m["channel"]))
    for case, chans in cases.items():
        if sorted(chans) != channels:
            problems.append(f"case {case}: channels {sorted(chans)} instead of {channels}")
    label_files = {f.name[: -len(ending)] for f in (root / "labelsTr").glob(f"*{ending}")}
    for case in sorted(set(cases) - label_files):
        problems.append(f"case {case} has no labelsTr/{case}{ending}")
    for case in sorted(label_files - set(cases)):
        problems.append(f"labelsTr/{case}{ending} has no image")
    if meta["numTraining"] != len(cases):
        problems.append(f"numTraining is {meta['numTraining']} but there are {len(cases)} cases")
    if read_pixels:
        allowed = set(values)
        for case in sorted(set(cases) & label_files):
            with Image.open(root / "labelsTr" / f"{case}{ending}") as im:
                label = np.asarray(im)
            with Image.open(root / "imagesTr" / f"{case}_0000{ending}") as im:
                size = im.size
            if label.shape[::-1] != size:
                problems.append(f"case {case}: label {label.shape[::-1]} and image {size} differ")
            extra = set(np.unique(label).tolist()) - allowed
            if extra:
                problems.append(f"case {case}: label values {sorted(extra)} not declared")
    return problems
