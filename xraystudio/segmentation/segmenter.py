"""Load a segmentation model folder and run it on radiographs of any size.

A model folder holds ``model.safetensors`` (weights only, read without pickle, so a downloaded
model cannot run code) and ``config.json`` (architecture, working size, structure names). The
radiograph is resized to the working size, predicted, cleaned up at that size, and the cleaned
probabilities are resized back and thresholded, which gives smooth outlines at full resolution
for the cost of one interpolation (cleaning 2000 x 2000 masks would cost more than the network).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xraystudio.errors import ModelError
from xraystudio.masks import ANATOMY, MaskStack
from xraystudio.segmentation.postprocess import largest_component_filled

if TYPE_CHECKING:
    import torch

    from xraystudio.segmentation.model import UNet

log = logging.getLogger(__name__)

FORMAT = "xraystudio-segmenter"
VERSION = 1
CONFIG_JSON = "config.json"
WEIGHTS = "model.safetensors"
DEFAULT_MODEL = "xraystudio-anatomy"


def default_model_dir() -> Path:
    """``resources/models/xraystudio-anatomy``; ``XRAYSTUDIO_RESOURCES`` moves ``resources``."""
    from xraystudio.resources import resources_dir

    return resources_dir() / "models" / DEFAULT_MODEL


def preprocess(display: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 1, H, W) display images in [0, 1] to the network's input: size², zero mean, unit std.

    Per-image standardisation removes most of the brightness and contrast differences between
    scanners and display windows; training and inference both go through here so they agree.
    """
    import torch
    from torch.nn import functional as F

    if display.shape[-2:] != (size, size):
        display = F.interpolate(display, size=(size, size), mode="bilinear", antialias=True,
                                align_corners=False)
    mean = display.mean(dim=(2, 3), keepdim=True)
    std = display.std(dim=(2, 3), keepdim=True)
    return (display - mean) / torch.clamp(std, min=1e-3)


def save_model(model: UNet, folder: str | os.PathLike, size: int, extra: dict[str, Any] | None = None) -> None:
    """Write a model folder (weights and config), each file atomically."""
    from safetensors.torch import save_file

    from xraystudio.io.atomic import atomic_path, write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": "unet",
        "unet": model.config.to_dict(),
        "size": int(size),
        "structures": list(ANATOMY),
        "threshold": 0.5,
        **(extra or {}),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file(state, str(tmp))
    write_text(folder / CONFIG_JSON, json.dumps(config, indent=2) + "\n")


class Segmenter:
    """A loaded anatomy model; call :meth:`segment` on display images (air dark, in [0, 1])."""

    def __init__(self, model: UNet, config: dict[str, Any], device: str = "cpu") -> None:
        self.model = model.eval().to(device)
        self.config = config
        self.device = device
        self.size = int(config["size"])
        self.structures: tuple[str, ...] = tuple(config["structures"])
        self.threshold = float(config.get("threshold", 0.5))

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, device: str = "cpu") -> Segmenter:
        """Open a model folder; ``None`` opens the shipped model. Raises ModelError if unusable."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from xraystudio.segmentation.model import UNet, UNetConfig

        folder = Path(path) if path is not None else default_model_dir()
        try:
            config = json.loads((folder / CONFIG_JSON).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"no segmentation model in {folder} (missing {CONFIG_JSON})") from None
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read {folder / CONFIG_JSON}: {exc}") from exc
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise ModelError(f"{folder} is not an xraystudio segmentation model")
        if config.get("version") != VERSION:
            raise ModelError(f"{folder}: model version {config.get('version')} is not supported")
        try:
            unet = UNetConfig.from_dict(config["unet"])
            structures = list(config["structures"])
            size = int(config["size"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{folder / CONFIG_JSON} is malformed: {exc}") from exc
        if len(structures) != unet.out_channels or size % unet.multiple:
            raise ModelError(f"{folder / CONFIG_JSON}: structures or size do not fit the network")
        model = UNet(unet)
        try:
            state = load_file(str(folder / WEIGHTS))
            model.load_state_dict(state, strict=True)
        except FileNotFoundError:
            raise ModelError(f"no weights in {folder} (missing {WEIGHTS})") from None
        except (OSError, RuntimeError, SafetensorError) as exc:
            raise ModelError(f"cannot load {folder / WEIGHTS}: {exc}") from exc
        log.info("loaded segmentation model %s", folder)
        return cls(model, config, device)

    def probabilities(self, display: np.ndarray) -> np.ndarray:
        """Per-structure probabilities at the working size, (structures, size, size) float32."""
        import torch

        image = np.asarray(display, dtype=np.float32)
        if image.ndim != 2:
            raise ValueError(f"segment a grey 2-D image, got shape {image.shape}")
        x = torch.from_numpy(np.ascontiguousarray(image))[None, None].to(self.device)
        with torch.inference_mode():
            logits = self.model(preprocess(x, self.size))
        return torch.sigmoid(logits)[0].float().cpu().numpy()

    def segment(self, display: np.ndarray) -> dict[str, np.ndarray]:
        """One boolean mask per structure at the input's size, each one cleaned piece."""
        import torch
        from torch.nn import functional as F

        probs = self.probabilities(display)
        for p in probs:
            raw = p >= self.threshold
            keep = largest_component_filled(raw)
            p[raw & ~keep] = 0.0  # stray blobs
            p[keep & ~raw] = 1.0  # filled holes
        shape = np.asarray(display).shape
        full = F.interpolate(torch.from_numpy(probs)[None], size=shape, mode="bilinear",
                             align_corners=False)[0]
        masks = (full >= self.threshold).numpy()
        return dict(zip(self.structures, masks))

    def fill_stack(self, stack: MaskStack, display: np.ndarray) -> None:
        """Replace the anatomy layers of ``stack`` (the radiograph's) as one undoable step.

        One step, so that a user who dislikes the automatic masks undoes them with one Ctrl+Z.
        """
        masks = self.segment(display)
        stack.begin("Segment anatomy")
        try:
            for name, mask in masks.items():
                stack.set_layer(name, mask)
        finally:
            stack.commit()
