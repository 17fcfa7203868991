"""``xraystudio synthesize INPUT --out DIR``: many synthetic radiographs, resumable and sharded."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from xraystudio.errors import XRayStudioError
from xraystudio.synthesis.acceleration import OPTIMIZE, OPTIMIZE_HELP

EPILOG = """\
Runs in this process by default. On several GPUs or nodes:
  accelerate launch --num_processes 4 -m xraystudio synthesize DATA --out DIR --backend accelerate
On a Ray cluster (pip install 'xraystudio[cluster]'; RAY_ADDRESS names the cluster):
  xraystudio synthesize DATA --out DIR --backend ray
Rerunning the same command resumes a killed run: finished images are kept, never made twice.
"""


def register(sub: argparse._SubParsersAction) -> None:
    from xraystudio.factory.items import MODES
    from xraystudio.factory.run import BACKENDS

    p = sub.add_parser(
        "synthesize", help="make a synthetic training dataset (nnU-Net v2 layout)",
        description="Insert sampled nodules into each radiograph of INPUT (edit mode), make the "
        "nodule-free counterpart of each real nodule case (--mode remove), or draw new patients "
        "from each input's masks (--mode layout). INPUT is a JSRT-style dataset, a folder of "
        "radiographs (DICOM, PNG, TIFF; their lungs are segmented automatically), or, for "
        "--mode layout, a folder of saved masks (.npz files or folders of layer PNGs, as the "
        "app's Save masks writes them).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="JSRT-style dataset, folder of radiographs, or of saved masks")
    p.add_argument("--out", required=True, help="output folder (created, or resumed)")
    p.add_argument("--mode", choices=MODES, default="edit", help="what to make (default edit)")
    p.add_argument("--remove", action="store_const", const="remove", dest="mode",
                   help="same as --mode remove")
    p.add_argument("-n", "--per-input", type=int, default=1, help="images per input (default 1)")
    p.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    p.add_argument("--batch", type=int, default=4, help="images per model call (default 4)")
    p.add_argument("--split", choices=("all", "train", "val"), default="all",
                   help="of a JSRT-style dataset, only this part of its train/val split")
    p.add_argument("--limit", type=int, help="use only the first N inputs")
    p.add_argument("--model", help="model folder or name (default: the built-in model)")
    p.add_argument("--sampler", help="layout sampler file (default: the model's)")
    p.add_argument("--resolution", type=int,
                   help="layout mode: the side the model draws, its working size (256 for the "
                   "built-in model) or its full resolution (1024, the default)")
    p.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    p.add_argument("--scheduler", help="sampler (default: the model's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda[:N] or auto (default cpu)")
    p.add_argument("--optimize", default="auto", choices=OPTIMIZE, help=OPTIMIZE_HELP)
    p.add_argument("--no-overlap", dest="overlap", action="store_false",
                   help="read, draw and write one after the other (default: reading and "
                   "writing run in threads beside the model)")
    p.add_argument("--jsrt", action="store_true",
                   help="also write the JSRT-style layout in OUT/jsrt (to train xraystudio)")
    p.add_argument("--keep-implausible", action="store_true",
                   help="use unlabelled films whose segmented lungs look implausible for a "
                   "frontal chest (films labelled as another body part or view are never used)")
    p.add_argument("--backend", choices=BACKENDS, default="local",
                   help="local (default), accelerate (under accelerate launch) or ray")
    p.add_argument("--actors", type=int, help="ray: number of actors (default one per GPU)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from xraystudio.factory.run import synthesize, synthesize_accelerate, synthesize_ray
    from xraystudio.factory.settings import SynthesisSettings
    from xraystudio.masks import DEFAULT_SPACING_MM

    for name in ("per_input", "batch", "limit", "steps", "actors", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise XRayStudioError(f"--{name.replace('_', '-')} must be at least 1")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    settings = SynthesisSettings(
        input=Path(args.input), out=Path(args.out), mode=args.mode, per_input=args.per_input,
        seed=args.seed, batch=args.batch, split=args.split, limit=args.limit, model=args.model,
        sampler=Path(args.sampler) if args.sampler else None, steps=args.steps,
        scheduler=args.scheduler, device=args.device, jsrt=args.jsrt,
        keep_implausible=args.keep_implausible, optimize=args.optimize, overlap=args.overlap,
        resolution=args.resolution)
    bar = tqdm(unit="img", dynamic_ncols=True, disable=None, desc="synthesize")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    logging.getLogger("xraystudio").setLevel(max(logging.getLogger().level, logging.WARNING))
    try:
        if args.backend == "accelerate":
            summary = synthesize_accelerate(settings, progress)
        elif args.backend == "ray":
            summary = synthesize_ray(settings, args.actors, progress)
        else:
            summary = synthesize(settings, progress=progress)
    finally:
        bar.close()
    tally = summary.tally
    for line in tally.warnings(settings.out):
        print(f"warning: {line}", file=sys.stderr)
    print(json.dumps({
        "out": str(settings.out), "inputs": tally.inputs, "images": summary.total,
        "this_process": summary.share, "already_done": summary.already_done,
        "made": summary.made, "in_dataset": tally.done, "failed": tally.failed,
        "skipped": tally.skipped_inputs, "skipped_images": tally.skipped_items,
        "spacing": tally.spacing,
        **({"spacing_assumed_mm": DEFAULT_SPACING_MM} if tally.assumed_spacing else {}),
        "seconds": round(summary.seconds, 1),
        "images_per_second": round(summary.images_per_second, 3),
        "complete": summary.complete,
    }, indent=2))
    return 0

