"""``xraystudio sweep INPUT --x AXIS [--y AXIS] [--z AXIS] --out DIR``: a grid of generations.

Each axis is ``NAME=VALUES`` (see xraystudio.explore.axes): ``conditioning_scale=0.5:1.5:5``,
``seed=1,2,3``, ``layer.heart=on,off,+5mm``. Writes every cell as a 16-bit PNG with its
provenance JSON under ``DIR/cells/``, then ``sweep_grid.png`` (labelled), ``sweep.csv`` and
``sweep.json``. Ctrl+C stops after keeping (and exporting) the finished cells.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from xraystudio.synthesis.acceleration import OPTIMIZE, OPTIMIZE_HELP


def register(sub: argparse._SubParsersAction) -> None:
    from xraystudio.cli.generate_cmd import _nodule
    from xraystudio.explore.axes import known_axes

    p = sub.add_parser(
        "sweep", help="a grid of generations over up to three parameters (X/Y/Z plot)",
        description="Generates one image per combination of the axis values, measures each "
        "(PSNR/SSIM against INPUT, nodule contrast, faithfulness Dice, difference to the first "
        "cell) and writes the cells, a labelled grid PNG, a CSV and a JSON to --out. Axes: "
        f"{known_axes()} (on, off, +Nmm, -Nmm). "
        "Values: a,b,c or START:STOP:COUNT (integers also START:STOP).")
    p.add_argument("input", help="source radiograph (DICOM or image)")
    p.add_argument("--x", required=True, metavar="NAME=VALUES", help="the axis across the grid")
    p.add_argument("--y", metavar="NAME=VALUES", help="the axis down the grid")
    p.add_argument("--z", metavar="NAME=VALUES", help="one grid per value")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--masks", help="mask folder (one PNG per structure) or .npz")
    p.add_argument("--nodule", type=_nodule, action="append", default=[], metavar="X,Y,MM",
                   help="stamp a nodule at pixel X,Y with diameter MM (repeatable)")
    p.add_argument("--no-segment", action="store_true",
                   help="do not segment the anatomy automatically when --masks is not given")
    p.add_argument("--model", help="model folder or 'builtin' (default)")
    p.add_argument("--seed", type=int, help="the seed of every cell (unless seed is an axis); "
                   "random when omitted, always recorded")
    p.add_argument("--mode", choices=("edit", "layout", "guided"))
    p.add_argument("--steps", type=int)
    p.add_argument("--scheduler", choices=("dpm++", "ddim", "unipc", "euler", "ddpm"))
    p.add_argument("--conditioning-scale", type=float)
    p.add_argument("--control-start", type=float)
    p.add_argument("--control-end", type=float)
    p.add_argument("--guide-strength", type=float, help="guided mode: 0..1 of the guide")
    p.add_argument("--prior", action=argparse.BooleanOptionalAction, default=None,
                   help="layout mode: over the layout prior")
    p.add_argument("--metric", default="faithfulness_dice",
                   help="the figure printed under each cell of the grid besides PSNR/SSIM")
    p.add_argument("--cell-px", type=int, default=192, help="cell width in the grid PNG")
    p.add_argument("--no-faithfulness", action="store_true",
                   help="skip the faithfulness Dice (no anatomy segmentation of each cell)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    p.add_argument("--optimize", default="auto", choices=OPTIMIZE, help=OPTIMIZE_HELP)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--spacing", type=float, help="pixel spacing in mm when the file has none")
    p.set_defaults(func=run, remove=[])


def build_sweep(args: argparse.Namespace):
    """The Sweep of the command line; bad axes are one SweepError before anything loads."""
    from xraystudio.errors import SweepError
    from xraystudio.explore.axes import parse_axes
    from xraystudio.explore.sweep import METRICS, Sweep

    if args.metric not in METRICS:
        raise SweepError(f"--metric must be one of {', '.join(METRICS)}")
    if not 16 <= args.cell_px <= 2048:
        raise SweepError("--cell-px must be between 16 and 2048")
    axes = parse_axes([args.x, args.y, args.z])
    base = {"mode": args.mode, "steps": args.steps, "scheduler": args.scheduler,
            "conditioning_scale": args.conditioning_scale, "control_start": args.control_start,
            "control_end": args.control_end, "guide_strength": args.guide_strength,
            "prior": args.prior}
    model = None if args.model in (None, "builtin") else args.model
    return Sweep(axes, base, model, args.seed)


def run(args: argparse.Namespace) -> int:
    from xraystudio.cli.generate_cmd import build_study
    from xraystudio.explore import grid
    from xraystudio.explore.sweep import SweepRecord, run_sweep
    from xraystudio.io.atomic import write_text
    from xraystudio.io.images import write_png16
    from xraystudio.synthesis.engine import Engine

    sweep = build_sweep(args)  # before the slow parts: a typo fails at once
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    study = build_study(args)
    refs = list(dict.fromkeys(sweep.axis("model").values if sweep.axis("model")
                              else [sweep.model]))
    engines = {ref: Engine.load(ref, device=args.device, precision=args.precision,
                                optimize=args.optimize)
               for ref in refs}
    note = sweep.prepare(study.masks, {ref: e.spec for ref, e in engines.items()})
    if note:
        print(f"note: {note}", file=sys.stderr)
    record = SweepRecord.new(sweep, study=study.name)
    out = Path(args.out)
    cells_dir = out / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    images: list = [None] * sweep.n_cells
    files: list = [None] * sweep.n_cells
    tty = sys.stderr.isatty()

    def progress(p) -> None:
        if tty:
            print(f"\rcell {p.cell + 1}/{p.n_cells} step {p.step}/{p.total} "
                  f"eta {p.eta_s:.0f}s   ", end="", file=sys.stderr, flush=True)

    def on_cell(outcome) -> None:
        rec = outcome.record
        name = f"{study.name}_cell{rec.index + 1:03d}"
        if outcome.result is None:
            print(f"cell {rec.index + 1} ({_title(rec)}): failed: {rec.error}")
            return
        r = outcome.result
        images[rec.index] = r.image
        write_png16(cells_dir / f"{name}.png", r.image)
        write_text(cells_dir / f"{name}.json", json.dumps(r.provenance, indent=2) + "\n")
        files[rec.index] = f"cells/{name}.png"
        rec.result = files[rec.index]
        if tty:
            print("\r", end="", file=sys.stderr)
        print(f"cell {rec.index + 1} ({_title(rec)}): {grid.metric_text(rec.metrics, args.metric)}"
              f" [{rec.seconds:.1f} s]")

    interrupted = False
    try:
        run_sweep(record, study.masks, study.image, lambda ref: engines[ref], progress,
                  on_cell=on_cell, faithfulness=not args.no_faithfulness)
    except KeyboardInterrupt:
        interrupted = True
        record.status = "cancelled"
    paths = grid.export(out, record, images, files, cell_px=args.cell_px, metric=args.metric)
    done = len(record.done)
    print(f"{done}/{sweep.n_cells} cells ({record.status}): " + ", ".join(str(p) for p in paths))
    if not done and not interrupted:
        first = next((c.error for c in record.cells if c.error), "no cell finished")
        print(f"error: no cell could be generated: {first}", file=sys.stderr)
        return 2
    if interrupted:
        print("error: interrupted; the finished cells are kept", file=sys.stderr)
        return 130
    return 0


def _title(rec) -> str:
    return ", ".join(f"{k}={v}" for k, v in rec.labels.items())
