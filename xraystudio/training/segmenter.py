"""Train the anatomy segmenter on a JSRT-style dataset: augmented batches, checkpoints, resume.

The held-out split is the project's one split (``JsrtDataset.split``): training never sees a
validation case, and the validation Dice is only reported, never used to pick a checkpoint, so the
figure in the model card is not tuned on the cases it is measured on.

Layout of ``OUT``::

    state.json                      step, settings, latest checkpoint, validation history
    checkpoints/step-NNNNNN/        model.safetensors, optimizer.safetensors (tensors only)
    model/                          the final model folder (weights + config.json)
    val_dice.json                   Dice per structure on the validation split, full resolution

Checkpoints hold tensors only (safetensors) and the small rest is JSON, so resuming never
unpickles anything. ``state.json`` is written last and names the checkpoint it belongs to, so a
crash mid-checkpoint leaves the previous one in force.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xraystudio.errors import DatasetError, XRayStudioError
from xraystudio.io.atomic import atomic_path, write_text
from xraystudio.io.datasets import JsrtDataset
from xraystudio.io.masks_io import resize_masks
from xraystudio.masks import ANATOMY
from xraystudio.metrics import dice

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

STATE_JSON = "state.json"
VAL_JSON = "val_dice.json"
#: Checkpoints kept on disk; older ones are deleted once a newer one is complete.
KEEP_CHECKPOINTS = 2


@dataclasses.dataclass
class SegmenterTraining:
    """Settings of one training run; everything but ``steps`` must match when resuming."""

    data_dir: Path
    out: Path
    steps: int = 3000
    size: int = 256
    batch: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    val_fraction: float = 0.2
    seed: int = 0
    channels: tuple[int, ...] = (8, 16, 32, 64, 128, 192)
    checkpoint_every: int = 250
    device: str = "auto"
    resume: bool = False

    def fixed(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run it continues."""
        return {
            "size": self.size, "batch": self.batch, "lr": self.lr,
            "weight_decay": self.weight_decay, "warmup": self.warmup,
            "val_fraction": self.val_fraction, "seed": self.seed, "channels": list(self.channels),
        }


# -------------------------------------------------------------------------------------- data
def load_arrays(
    dataset: JsrtDataset, ids: list[str], size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 1, size, size) float32 in [0, 1] and anatomy masks (N, 5, size, size) bool.

    Images are resized exactly as :func:`xraystudio.segmentation.segmenter.preprocess` resizes a
    radiograph at inference, so the network sees the same kind of pixels in both.
    """
    import torch
    from torch.nn import functional as F

    images = np.empty((len(ids), 1, size, size), np.float32)
    masks = np.empty((len(ids), len(ANATOMY), size, size), bool)
    for i, case_id in enumerate(ids):
        case = dataset.load(case_id)
        x = torch.from_numpy(case.image)[None, None]
        images[i, 0] = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                                     align_corners=False)[0, 0].numpy()
        small = resize_masks(case.masks, (size, size))
        masks[i] = np.stack([np.asarray(small[s]) for s in ANATOMY])
    return images, masks


def augment(
    images: torch.Tensor, masks: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random affine for an image and its masks, then intensity changes to the image.

    The affine (rotation, zoom, aspect, shift) covers patients placed differently and fields of
    view wider than JSRT's; gamma, contrast, brightness, edge enhancement and noise cover other
    scanners' processing and display windows. No left/right flips: the labels are sided.
    """
    import torch
    from torch.nn import functional as F

    n = images.shape[0]

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, *shape, generator=gen)

    angle = uniform(-10, 10) * math.pi / 180
    zoom = torch.exp(uniform(-0.12, 0.28))  # > 1 shows more (content shrinks)
    aspect = torch.exp(uniform(-0.08, 0.08))
    sx, sy = zoom * aspect, zoom / aspect
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([
        torch.stack([cos * sx, -sin * sy, uniform(-0.08, 0.08)], dim=1),
        torch.stack([sin * sx, cos * sy, uniform(-0.08, 0.08)], dim=1),
    ], dim=1).to(images.device)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border",
                           align_corners=False)
    masks = F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    dev = images.device
    x = images.clamp(0, 1) ** torch.exp(uniform(-0.5, 0.5, 1, 1, 1)).to(dev)
    mean = x.mean(dim=(2, 3), keepdim=True)
    x = (x - mean) * torch.exp(uniform(-0.3, 0.3, 1, 1, 1)).to(dev) + mean
    x = x + uniform(-0.1, 0.1, 1, 1, 1).to(dev)
    sharpen = uniform(0, 1.5, 1, 1, 1).to(dev) * (torch.rand(n, 1, 1, 1, generator=gen) < 0.3).to(dev)
    x = x + sharpen * (x - F.avg_pool2d(x, 9, stride=1, padding=4, count_include_pad=False))
    noise = torch.randn(x.shape, generator=gen).to(dev) * uniform(0, 0.03, 1, 1, 1).to(dev)
    return x + noise, masks


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice per structure: Dice keeps the thin clavicles weighted."""
    import torch
    from torch.nn import functional as F

    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(0, 2, 3))
    total = p.sum(dim=(0, 2, 3)) + target.sum(dim=(0, 2, 3))
    soft_dice = (2 * inter + 1) / (total + 1)
    return bce + (1 - soft_dice).mean()


def lr_at(step: int, cfg: SegmenterTraining) -> float:
    """Linear warm-up, then cosine decay to 5% of the peak at ``cfg.steps``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))


# ------------------------------------------------------------------------------ checkpoints
def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split an optimizer state dict into safetensors-storable tensors and JSON-able rest."""
    sd = optimizer.state_dict()
    tensors = {
        f"{index}.{name}": value.detach().cpu().contiguous()
        for index, slots in sd["state"].items()
        for name, value in slots.items()
    }
    return tensors, {"param_groups": sd["param_groups"]}


def _restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, Any], rest: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": rest["param_groups"]})


def save_checkpoint(
    out: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
    cfg: SegmenterTraining, history: list[dict[str, Any]],
) -> Path:
    """Write checkpoint ``step`` and then point ``state.json`` at it; prune old checkpoints."""
    from safetensors.torch import save_file

    folder = out / "checkpoints" / f"step-{step:06d}"
    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file(weights, str(tmp))
    tensors, rest = _optimizer_tensors(optimizer)
    with atomic_path(folder / "optimizer.safetensors") as tmp:
        save_file(tensors, str(tmp))
    state = {
        "step": step, "checkpoint": str(folder.relative_to(out)), "settings": cfg.fixed(),
        "optimizer": rest, "history": history,
    }
    write_text(out / STATE_JSON, json.dumps(state, indent=1) + "\n")
    old = sorted((out / "checkpoints").glob("step-*"))[:-KEEP_CHECKPOINTS]
    for path in old:
        shutil.rmtree(path, ignore_errors=True)
    return folder


def load_checkpoint(
    out: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
    cfg: SegmenterTraining,
) -> tuple[int, list[dict[str, Any]]]:
    """Restore the latest checkpoint of ``out``; returns (step, validation history)."""
    from safetensors.torch import load_file

    try:
        state = json.loads((out / STATE_JSON).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise XRayStudioError(f"nothing to resume in {out}: no {STATE_JSON}") from None
    if state["settings"] != cfg.fixed():
        diff = {k: v for k, v in state["settings"].items() if cfg.fixed().get(k) != v}
        raise XRayStudioError(f"--resume with different settings than the run in {out}: {diff}")
    folder = out / state["checkpoint"]
    device = next(model.parameters()).device
    model.load_state_dict(load_file(str(folder / "model.safetensors"), device=str(device)))
    tensors = load_file(str(folder / "optimizer.safetensors"), device=str(device))
    _restore_optimizer(optimizer, tensors, state["optimizer"])
    log.info("resumed %s at step %d", out, state["step"])
    return int(state["step"]), list(state.get("history", []))


# ---------------------------------------------------------------------------------- the loop
def _pick_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def validate_small(
    model: torch.nn.Module, images: np.ndarray, masks: np.ndarray, device: str
) -> dict[str, float]:
    """Mean Dice per structure at the working size, without clean-up: a cheap progress figure."""
    import torch

    from xraystudio.segmentation.segmenter import preprocess

    model.eval()
    scores: dict[str, list[float]] = {s: [] for s in ANATOMY}
    with torch.inference_mode():
        for start in range(0, len(images), 8):
            x = torch.from_numpy(images[start:start + 8]).to(device)
            pred = (model(preprocess(x, x.shape[-1])) > 0).cpu().numpy()
            for p, m in zip(pred, masks[start:start + 8]):
                for c, s in enumerate(ANATOMY):
                    scores[s].append(dice(p[c], m[c]))
    model.train()
    return {s: float(np.mean(v)) for s, v in scores.items()}


def train_segmenter(cfg: SegmenterTraining, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) and return the full-resolution validation Dice of the final model."""
    import torch
    from tqdm import tqdm

    from xraystudio.segmentation.model import UNet, UNetConfig
    from xraystudio.segmentation.segmenter import preprocess, save_model

    out = Path(cfg.out)
    dataset = JsrtDataset(cfg.data_dir)
    train_ids, val_ids = dataset.split(cfg.val_fraction, cfg.seed)
    if not train_ids or not val_ids:
        raise DatasetError(f"{cfg.data_dir} has too few cases for a train/validation split")
    unet = UNetConfig(out_channels=len(ANATOMY), channels=tuple(cfg.channels))
    if cfg.size % unet.multiple:
        raise XRayStudioError(f"--size must be a multiple of {unet.multiple} for this network")
    device = _pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = UNet(unet).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, history = 0, []
    if (out / STATE_JSON).is_file():
        if not cfg.resume:
            raise XRayStudioError(f"{out} holds a training run: pass --resume or choose another --out")
        step, history = load_checkpoint(out, model, optimizer, cfg)

    log.info("loading %d training and %d validation cases at %d px",
             len(train_ids), len(val_ids), cfg.size)
    train_x, train_y = load_arrays(dataset, train_ids, cfg.size)
    val_x, val_y = load_arrays(dataset, val_ids, cfg.size)
    train_x_t = torch.from_numpy(train_x)
    train_y_t = torch.from_numpy(train_y)

    model.train()
    bar = tqdm(total=cfg.steps, initial=step, desc="train-segmenter", unit="step",
               disable=not progress, dynamic_ncols=True)
    # Seconds of training so far, counted across resumes, so the history says what a run cost.
    started = time.monotonic() - (history[-1]["seconds"] if history else 0.0)
    while step < cfg.steps:
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        idx = torch.randint(len(train_ids), (cfg.batch,), generator=gen)
        x, y = augment(train_x_t[idx].to(device), train_y_t[idx].float().to(device), gen)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss = loss_fn(model(preprocess(x, cfg.size)), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr_at(step - 1, cfg):.1e}")
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            val = validate_small(model, val_x, val_y, device)
            history.append({"step": step, "loss": float(loss.item()), "val_dice_small": val,
                            "seconds": round(time.monotonic() - started, 1)})
            save_checkpoint(out, step, model, optimizer, cfg, history)
            bar.write(f"step {step}: loss {loss.item():.4f} val Dice "
                      + " ".join(f"{s} {v:.3f}" for s, v in val.items()))
    bar.close()

    extra = {"training": {"steps": step, "data": dataset.root.name, "split_seed": cfg.seed,
                          "val_fraction": cfg.val_fraction}}
    save_model(model.cpu(), out / "model", cfg.size, extra)
    result = evaluate_segmenter(out / "model", dataset, val_ids)
    write_text(out / VAL_JSON, json.dumps(result, indent=2) + "\n")
    return result


def evaluate_segmenter(
    model_dir: str | os.PathLike, dataset: JsrtDataset, ids: list[str]
) -> dict[str, Any]:
    """Dice per structure of a model folder on ``ids``, at the dataset's full resolution.

    Goes through :meth:`Segmenter.segment` (resize, predict, clean up, resize back), so the
    figure is what users get, not a working-size shortcut. ``lungs`` and ``clavicles`` average
    the two sides.
    """
    from xraystudio.segmentation.segmenter import Segmenter

    segmenter = Segmenter.load(model_dir)
    per_case: dict[str, dict[str, float]] = {}
    for case_id in ids:
        case = dataset.load(case_id)
        pred = segmenter.segment(case.image)
        per_case[case_id] = {s: dice(pred[s], np.asarray(case.masks[s])) for s in ANATOMY}
    mean = {s: float(np.mean([c[s] for c in per_case.values()])) for s in ANATOMY}
    mean["lungs"] = (mean["right_lung"] + mean["left_lung"]) / 2
    mean["clavicles"] = (mean["right_clavicle"] + mean["left_clavicle"]) / 2
    return {"cases": len(ids), "mean": mean, "per_case": per_case}
