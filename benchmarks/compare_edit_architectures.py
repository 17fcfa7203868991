"""Inpainting UNet or ControlNet over a native-resolution base, for the edit model, at equal steps.

The issue's first choice for the edit model is a diffusers ``ControlNetModel`` over a base
trained at native resolution; an inpainting UNet with the condition as extra input channels is
acceptable where it measures better. Both are trained here from scratch on the same windows of
the training split (``training.edit_data``: insertions and fills, as the edit trainer makes
them), with the same optimiser, loss weighting and batch:

- ``inpaint``: the shipped architecture (``edit_unet``), 2N steps;
- ``controlnet``: a base of the same widths (``pixel_unet``, no condition) trained N steps on the
  same windows, then a ControlNet copied from its encoder (``controlnet_for``) trained N steps
  over the frozen base: as many optimiser steps in all (the training times are reported).

Both are scored on one fixed set of windows cut from the 12 tuning cases (never trained on),
with fixed noise and timesteps spread over the schedule: the mean squared error of the predicted
clean window inside the hidden region (what the edit keeps), overall and for insertions and
fills apart, and the paired difference between the two over the same windows. Writes
benchmarks/results/compare_edit_architectures.json. Usage:
python benchmarks/compare_edit_architectures.py DATA [--steps 400] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

WIDTHS = (32, 64, 128, 128)
EVAL_WINDOWS = 96


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--steps", type=int, default=400, help="N: base and ControlNet steps each")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"
                                         / "compare_edit_architectures.json"))
    args = ap.parse_args()

    import torch

    from xraystudio.io.datasets import JsrtDataset, tune_split
    from xraystudio.synthesis.architectures import controlnet_for, pixel_unet
    from xraystudio.synthesis.edit_pipeline import edit_scheduler, edit_unet
    from xraystudio.synthesis.edit_window import EditSpec
    from xraystudio.synthesis.pipelines import null_context, pack
    from xraystudio.training.edit_data import edit_batch, edit_sample, load_sources

    torch.set_num_threads(args.threads)
    spec = EditSpec()
    p = spec.patch
    dataset = JsrtDataset(args.data)
    train_ids, _ = dataset.split()
    train_ids, tune_ids = tune_split(dataset, train_ids, 12)
    train = load_sources(dataset, train_ids)
    tune = load_sources(dataset, tune_ids)
    alphas = edit_scheduler().alphas_cumprod

    # The fixed scoring set: alternating insertions (tuning nodule cases) and fills.
    rng = np.random.default_rng(12345)
    nodular = [s for s in tune if s.nodule is not None]
    samples, kinds = [], []
    for k in range(EVAL_WINDOWS):
        insertion = k % 2 == 0
        pool = nodular if insertion else tune
        samples.append(edit_sample(pool[k // 2 % len(pool)], rng, spec, insertion))
        kinds.append("insertion" if insertion else "fill")
    ev_x0 = torch.from_numpy(np.stack([s.target for s in samples])[:, None])
    ev_cond = torch.from_numpy(np.stack([s.condition for s in samples]))
    ev_region = torch.from_numpy(np.stack([s.condition[1] for s in samples])[:, None])
    gen = torch.Generator().manual_seed(7)
    ev_noise = torch.randn(ev_x0.shape, generator=gen)
    ev_t = torch.linspace(20, 980, EVAL_WINDOWS).round().long()[torch.randperm(EVAL_WINDOWS, generator=gen)]

    def noisy(x0, noise, t):
        a = alphas[t].sqrt()[:, None, None, None]
        b = (1 - alphas[t]).sqrt()[:, None, None, None]
        return a * x0 + b * noise, a * noise - b * x0, a, b

    def loss_of(pred, target, weight, t):
        snr = alphas[t] / (1 - alphas[t])
        error = ((pred - target) ** 2 * weight).mean(dim=(1, 2, 3))
        return (error * snr.clamp(max=5.0) / (snr + 1)).mean()

    def fit(params, forward, steps: int, label: str, with_condition: bool) -> float:
        opt = torch.optim.AdamW(params, lr=4e-4, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + np.cos(np.pi * s / steps)))
        batch_rng = np.random.default_rng(args.seed)
        torch.manual_seed(args.seed)
        started = time.perf_counter()
        for step in range(steps):
            x0, cond, weight = (torch.from_numpy(a) for a in
                                edit_batch(train, batch_rng, spec, args.batch))
            if not with_condition:  # the base learns windows of film, everywhere alike
                weight = torch.ones_like(weight)
            t = torch.randint(0, 1000, (x0.shape[0],))
            xt, target, _, _ = noisy(x0, torch.randn_like(x0), t)
            loss = loss_of(unpack_(forward(pack(xt, p), pack(cond, p), t)), target, weight, t)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            if (step + 1) % 100 == 0:
                print(f"{label} step {step + 1}: loss {float(loss):.4f}", flush=True)
        return time.perf_counter() - started

    def unpack_(x):
        return torch.nn.functional.pixel_shuffle(x, p)

    def score(forward) -> dict:
        errors = []
        with torch.no_grad():
            for i in range(0, EVAL_WINDOWS, 16):
                sl = slice(i, i + 16)
                xt, _, a, b = noisy(ev_x0[sl], ev_noise[sl], ev_t[sl])
                v = unpack_(forward(pack(xt, p), pack(ev_cond[sl], p), ev_t[sl]))
                x0_hat = a * xt - b * v
                region = ev_region[sl]
                err = (((x0_hat - ev_x0[sl]) ** 2) * region).sum(dim=(1, 2, 3)) / region.sum(dim=(1, 2, 3))
                errors.extend(err.tolist())
        errors = np.asarray(errors)
        per_window[len(per_window)] = errors
        kinds_a = np.asarray(kinds)
        return {"region_mse": float(errors.mean()),
                "region_mse_insertion": float(errors[kinds_a == "insertion"].mean()),
                "region_mse_fill": float(errors[kinds_a == "fill"].mean()),
                "region_mse_sem": float(errors.std(ddof=1) / np.sqrt(errors.size))}

    rows = {}
    per_window: dict[int, np.ndarray] = {}  # in scoring order: inpaint, controlnet, shipped
    # Inpainting UNet: the condition as extra input channels.
    torch.manual_seed(args.seed)
    inpaint = edit_unet(spec, WIDTHS)
    seconds = fit(list(inpaint.parameters()),
                    lambda x, c, t: inpaint(torch.cat([x, c], dim=1), t).sample,
                    2 * args.steps, "inpaint", True)
    inpaint.eval()
    rows["inpaint"] = {"parameters": sum(q.numel() for q in inpaint.parameters()),
                       "train_seconds": round(seconds, 1), "steps": 2 * args.steps,
                       **score(lambda x, c, t: inpaint(torch.cat([x, c], dim=1), t).sample)}
    print(json.dumps(rows["inpaint"]), flush=True)

    # ControlNet over a base trained on the same windows.
    torch.manual_seed(args.seed)
    base = pixel_unet(spec.window, WIDTHS, layers_per_block=1, patch=p)

    def base_forward(x, c, t):
        return base(x, t, encoder_hidden_states=null_context(base, x.shape[0], x.device, x.dtype)).sample

    base_seconds = fit(list(base.parameters()), base_forward, args.steps, "base", False)
    base.requires_grad_(False)
    base.eval()
    control = controlnet_for(base, spec.condition_channels, patch=p)

    def control_forward(x, c, t):
        ctx = null_context(base, x.shape[0], x.device, x.dtype)
        down, mid = control(x, t, encoder_hidden_states=ctx, controlnet_cond=c, return_dict=False)
        return base(x, t, encoder_hidden_states=ctx, down_block_additional_residuals=down,
                    mid_block_additional_residual=mid).sample

    control_seconds = fit(list(control.parameters()), control_forward, args.steps,
                            "controlnet", True)
    control.eval()
    rows["controlnet"] = {
        "parameters": sum(q.numel() for q in base.parameters()) + sum(q.numel() for q in control.parameters()),
        "train_seconds": round(base_seconds + control_seconds, 1),
        "steps": f"{args.steps} base + {args.steps} controlnet", **score(control_forward)}
    print(json.dumps(rows["controlnet"]), flush=True)

    # For scale: the shipped edit model (the inpainting UNet after its full training).
    from xraystudio.synthesis.edit_pipeline import load_edit_model
    from xraystudio.synthesis.model import builtin_model_dir

    pipe = load_edit_model(builtin_model_dir())
    shipped = pipe.unet.eval()
    rows["shipped_inpaint"] = {
        "weights_sha256": pipe.weights_hash,
        **score(lambda x, c, t: shipped(torch.cat([x, c], dim=1), t).sample)}
    print(json.dumps(rows["shipped_inpaint"]), flush=True)

    diff = per_window[1] - per_window[0]  # controlnet - inpaint, window by window
    paired = {"controlnet_minus_inpaint": float(diff.mean()),
              "sem": float(diff.std(ddof=1) / np.sqrt(diff.size))}
    print(json.dumps(paired), flush=True)
    out = {"data": str(args.data), "train_cases": len(train_ids), "tuning_cases": len(tune_ids),
           "eval_windows": EVAL_WINDOWS, "batch": args.batch, "threads": args.threads,
           "widths": list(WIDTHS), "rows": rows, "paired_region_mse": paired}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
