"""``xraystudio train-segmenter DATA_DIR --out DIR``: train the anatomy segmenter (resumable)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xraystudio.errors import XRayStudioError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-segmenter", help="train the lung/heart/clavicle segmenter",
                       description="Train on a JSRT-style dataset's training split; the final "
                       "model goes to OUT/model and its validation Dice to OUT/val_dice.json.")
    p.add_argument("data_dir", help="JSRT-style dataset folder (images/, masks/, cases.csv)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, model, Dice)")
    p.add_argument("--steps", type=int, default=3000, help="total optimizer steps (default 3000)")
    p.add_argument("--size", type=int, default=256, help="working size in pixels (default 256)")
    p.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    p.add_argument("--channels", default="8,16,32,64,128,192",
                   help="U-Net widths per level, comma-separated (default 8,16,32,64,128,192)")
    p.add_argument("--checkpoint-every", type=int, default=250, help="steps between checkpoints")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of cases held out for validation (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="split and augmentation seed")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xraystudio.training.segmenter import SegmenterTraining, train_segmenter

    if args.threads is not None:
        if args.threads < 1:
            raise XRayStudioError("--threads must be at least 1")
        import torch

        torch.set_num_threads(args.threads)
    try:
        channels = tuple(int(c) for c in args.channels.split(","))
    except ValueError:
        raise XRayStudioError(f"--channels {args.channels!r} is not a list of integers") from None
    if args.steps < 0 or args.batch < 1 or args.checkpoint_every < 1 or args.size < 16:
        raise XRayStudioError("--steps, --batch, --checkpoint-every and --size must be positive")
    cfg = SegmenterTraining(
        data_dir=Path(args.data_dir), out=Path(args.out), steps=args.steps, size=args.size,
        batch=args.batch, lr=args.lr, val_fraction=args.val_fraction, seed=args.seed,
        channels=channels, checkpoint_every=args.checkpoint_every, device=args.device,
        resume=args.resume,
    )
    result = train_segmenter(cfg)
    print(json.dumps({"model": str(Path(args.out) / "model"), "val_dice": result["mean"]},
                     indent=2))
    return 0
