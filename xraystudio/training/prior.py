"""Train the layout prior: anatomy masks -> the expected coarse radiograph (L2 regression).

It trains on the same augmented samples as the diffusion model (``training.data``), reduced
to the prior's sizes before the affine, so a step costs a fraction of a diffusion step and the
whole stage takes minutes on a CPU. Checkpoints are safetensors folders written atomically, like
the diffusion stages', so a cut-off run resumes where it stopped. Each checkpoint's prior carries
its variation (``fit_variation``), fitted on the same training films in seconds.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np

from xraystudio.io.atomic import write_text
from xraystudio.synthesis.condition import resize, without_nodule
from xraystudio.synthesis.model import PRIOR_FOLDER
from xraystudio.training import checkpoint as ckpt
from xraystudio.training.data import Augment, Sample, affine

log = logging.getLogger(__name__)

STAGE = "prior"


def prior_pairs(samples: list[Sample], anatomy: list[int], guide: int) -> list[Sample]:
    """The samples at the prior's sizes: image at 2g (reduced to g for the target), masks at 2g."""
    size = 2 * guide
    return [Sample(resize(s.image, (size, size)),
                   np.stack([resize(s.layers[i], (size, size)) for i in anatomy]), None)
            for s in samples]


def nodule_contrast(samples: list[Sample], spec) -> float:
    """How much a real nodule brightens its disc on average (image minus the image with the
    nodule filled in from the lung around it, over all disc pixels of the training cases)."""
    if "nodule" not in spec.layers:
        return 0.0
    k = spec.layers.index("nodule")
    added = [float((s.image - without_nodule(s.image, s.layers, spec))[s.layers[k] >= 0.5].mean())
             for s in samples if s.layers[k].max() >= 0.5]
    return float(np.mean(added)) if added else 0.0


def fit_variation(prior, samples: list[Sample], spec):
    """``prior`` with how the samples' films spread around its pictures (docs/fullres.md, rule 13).

    Each residual is the sample's nodule-free 1/``guide_factor`` picture (the guide a real film
    gives) less the prior's picture for its masks; the prior keeps their mean and principal
    components, each scaled to its standard deviation, so a draw with standard normal weights
    has the residuals' covariance. Needs at least two samples.
    """
    import torch

    from xraystudio.synthesis.prior import LayoutPrior, predict_small

    if len(samples) < 2:
        raise ValueError("a prior's variation needs at least two training films")
    anatomy = [spec.layers.index(name) for name in prior.config.layers]
    g = spec.resolution // spec.guide_factor
    rows = []
    for s in samples:
        real = resize(without_nodule(s.image, s.layers, spec), (g, g))
        typical = np.clip(predict_small(prior, s.layers[anatomy], spec.guide_factor), 0, 1)
        rows.append((real - typical).ravel())
    residuals = np.stack(rows).astype(np.float64)
    mean = residuals.mean(axis=0)
    _, sv, vt = np.linalg.svd(residuals - mean, full_matrices=False)
    keep = sv > sv[0] * 1e-6
    basis = (sv[keep, None] / np.sqrt(len(rows) - 1)) * vt[keep]
    config = {k: v for k, v in prior.config.items() if not k.startswith("_")}
    config.update(variation_size=g, variation_components=int(keep.sum()))
    fitted = LayoutPrior(**config)
    weights = {k: v for k, v in prior.state_dict().items() if not k.startswith("variation_")}
    fitted.load_state_dict(weights, strict=False)
    with torch.no_grad():
        fitted.variation_mean.copy_(torch.from_numpy(mean.reshape(g, g)))
        fitted.variation_basis.copy_(torch.from_numpy(basis.reshape(-1, g, g)))
    return fitted.eval()


def prior_batch(pairs: list[Sample], rng: np.random.Generator, batch: int,
                aug: Augment | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(inputs (B, L, 2g, 2g), targets (B, 1, g, g)) with the diffusion model's augmentation."""
    aug = aug or Augment()
    xs, ys = [], []
    for _ in range(batch):
        image, layers, _ = affine(pairs[rng.integers(len(pairs))], rng, aug)
        image = np.clip(image, 0, 1) ** np.exp(rng.uniform(-aug.gamma, aug.gamma))
        g = image.shape[0] // 2
        xs.append(layers)
        ys.append(resize(image, (g, g))[None])
    return np.stack(xs).astype(np.float32), np.stack(ys).astype(np.float32)


def train_prior(trainer, start: int, total: int, resume_dir: Path | None, progress: bool) -> None:
    """Run the prior stage of ``trainer`` (a ``controlnet.Trainer``) from ``start`` to ``total``."""
    import torch
    from tqdm.auto import tqdm

    from xraystudio.synthesis.prior import LayoutPrior

    cfg, acc, spec = trainer.cfg, trainer.acc, trainer.spec
    if start >= total or not spec.supports_guide:
        return
    anatomy = [spec.layers.index(n) for n in spec.layers if n != "nodule"]
    guide = spec.resolution // spec.guide_factor
    pairs = prior_pairs(trainer.samples, anatomy, guide)
    if resume_dir is not None:
        prior = LayoutPrior.from_pretrained(resume_dir / PRIOR_FOLDER, use_safetensors=True)
    else:
        torch.manual_seed(cfg.seed)
        prior = LayoutPrior(layers=tuple(spec.layers[i] for i in anatomy),
                            channels=tuple(cfg.prior_channels))
    opt = torch.optim.AdamW(prior.parameters(), lr=cfg.prior_lr, weight_decay=1e-2)
    if resume_dir is not None and (resume_dir / "optimizer.safetensors").is_file():
        ckpt.load_optimizer(opt, resume_dir / "optimizer")
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.prior_lr, total_steps=total,
                                                pct_start=0.1)
    for _ in range(start):
        sched.step()
    prior, opt = acc.prepare(prior, opt)
    rng = np.random.default_rng(cfg.seed * 100_003 + start + 13)
    bar = tqdm(total=total, initial=start, desc="train prior", disable=not progress,
               dynamic_ncols=True)
    losses: list[float] = []
    started = time.perf_counter()
    step = start
    while step < total:
        x, y = prior_batch(pairs, rng, cfg.batch * 2)
        x_t, y_t = torch.from_numpy(x).to(acc.device), torch.from_numpy(y).to(acc.device)
        loss = torch.nn.functional.mse_loss(prior(x_t).float(), y_t)
        acc.backward(loss)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.5f}")
        if acc.is_main_process and (step % cfg.checkpoint_every == 0 or step == total):
            fitted = fit_variation(acc.unwrap_model(prior), trainer.samples, spec)
            _checkpoint(trainer.out, fitted, opt, step, float(np.mean(losses[-50:])),
                        time.perf_counter() - started, dataclasses.asdict(cfg))
    bar.close()


def _checkpoint(out: Path, prior, opt, step: int, loss: float, seconds: float, config: dict) -> None:
    folder = out / "checkpoints" / f"step-{STAGE}-{step}"
    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    prior.save_pretrained(tmp / PRIOR_FOLDER, safe_serialization=True)
    ckpt.save_optimizer(opt, tmp / "optimizer")
    write_text(tmp / "state.json", json.dumps({
        "stage": STAGE, "step": step, "loss": loss, "seconds": round(seconds, 1), "config": config,
    }, indent=2))
    ckpt.commit_folder(tmp, folder)
    ckpt.prune(out / "checkpoints", STAGE)
    log.info("prior step %d: loss %.5f", step, loss)
