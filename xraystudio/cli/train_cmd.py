"""``xraystudio train DATA_DIR --out DIR``: train the built-in kind of model on a dataset."""

from __future__ import annotations

import argparse
import dataclasses

from xraystudio.training.config import TrainConfig


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


_OPTIONAL = {
    "limit_cases": (int, "use only N training cases (tests)"),
    "init_from": (str, "start from this model folder (OUT/model of an earlier run, or the "
                  "built-in model's folder) instead of random weights: continue or fine-tune it"),
    "snr_gamma": (float, "min-SNR-γ loss weighting (default 5; 0 for the plain v-prediction loss)"),
    "fullres_max_blur": (float, "train the full-resolution stage on 256 px copies blurred by up "
                         "to this sigma (pixels; default: the continued stage's range, else 1.2)"),
    "fullres_redraw_fraction": (float, "share of the full-resolution stage's crops whose "
                                "low-resolution copy is the --init-from model's own redraw of "
                                "the film, not its area average (default 0)"),
    "sd_base": (str, "train only a ControlNet on this local diffusers Stable Diffusion folder "
                "(base frozen, masks colour-coded, --resolution 512 for SD 1.x); GPU advised"),
}


_FLAGS = {
    "edit": "train the edit model instead (native-resolution windows: insert, remove nodules); "
            "writes OUT/model/edit, to be copied into a model folder",
    "fullres": "train the full-resolution stage instead (4x super-resolution of new patients: "
               "rib cortex, vessels, grain); writes OUT/model/fullres, to be copied into a model "
               "folder",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a pixel diffusion base and its mask ControlNet on a JSRT-style dataset",
        description="Trains a layout prior (masks -> the typical coarse radiograph), the base on "
        "radiographs, then a ControlNet on their masks (base frozen). Checkpoints go to "
        "OUT/checkpoints, validation grids to OUT/validation, the final model folder to "
        "OUT/model. Run under `accelerate launch` for GPUs.",
    )
    p.add_argument("data", help="dataset folder (images/, masks/<structure>/, cases.csv)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    d = TrainConfig("", "")
    for field in dataclasses.fields(TrainConfig):
        if field.name in ("data", "out"):
            continue
        default = getattr(d, field.name)
        flag = "--" + field.name.replace("_", "-")
        if isinstance(default, bool):
            p.add_argument(flag, action="store_true", help=_FLAGS[field.name])
        elif isinstance(default, tuple):
            p.add_argument(flag, type=_ints, default=default, help=f"comma-separated (default {default})")
        elif field.name in _OPTIONAL:
            kind, text = _OPTIONAL[field.name]
            p.add_argument(flag, type=kind, default=default, help=text)
        else:
            p.add_argument(flag, type=type(default), default=default, help=f"default {default}")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**values)
    if cfg.edit and cfg.fullres:
        from xraystudio.errors import XRayStudioError

        raise XRayStudioError("--edit and --fullres train different models; choose one")
    if cfg.fullres:
        from xraystudio.training.fullres import FullresTrainer as Trainer
    elif cfg.edit:
        from xraystudio.training.edit import EditTrainer as Trainer
    elif cfg.sd_base:
        from xraystudio.training.sd_controlnet import StableDiffusionControlNetTrainer as Trainer
    else:
        from xraystudio.training.controlnet import Trainer
    trainer = Trainer(cfg)
    model = trainer.run(resume=args.resume)
    print(f"model written to {model}")
    return 0
