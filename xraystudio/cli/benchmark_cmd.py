"""``xraystudio benchmark downstream DATA --synthetic DIR``: does the synthetic data help?

Trains a small nodule segmenter on real cases only, real + blob insertion, real + the
synthetic folder and real + new patients (same compute each), several seeds, and prints the
validation table (:mod:`xraystudio.evaluation.downstream`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xraystudio.errors import XRayStudioError


def register(sub: argparse._SubParsersAction) -> None:
    from xraystudio.training.nodule_segmenter import NoduleTraining

    defaults = NoduleTraining()
    p = sub.add_parser("benchmark", help="measure what the product's outputs are worth",
                       description="Benchmarks that train and score models on the product's output.")
    benchmarks = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    d = benchmarks.add_parser(
        "downstream", help="nodule segmenter: real vs real + blobs vs real + synthetic",
        description="Train the same small nodule segmenter on the training split of DATA alone, "
        "with blob-inserted copies of the synthetic folder's sources, with the synthetic "
        "folder, and with new patients (a layout-mode folder); report nodule Dice, sensitivity "
        "and false positives per normal image on the validation split over several seeds. "
        "Nothing is tuned on the validation split.")
    d.add_argument("data", help="JSRT-style dataset the synthetic folder was made from")
    d.add_argument("--synthetic", metavar="DIR", nargs="+", default=[],
                   help="output folder(s) of `xraystudio synthesize` (nnU-Net layout + "
                   "metadata.jsonl), e.g. an edit-mode folder and a --remove folder: the blob "
                   "and synthetic arms")
    d.add_argument("--new-patients", metavar="DIR", nargs="+", default=[],
                   help="output folder(s) of `xraystudio synthesize --mode layout` made from "
                   "the training split: the new_patients arm (real + new patients)")
    d.add_argument("--seeds", type=int, default=3, help="training seeds per arm (default 3)")
    d.add_argument("--steps", type=int, default=defaults.steps,
                   help=f"optimizer steps per run, the same for every arm (default {defaults.steps})")
    d.add_argument("--batch", type=int, default=defaults.batch,
                   help=f"patches per step (default {defaults.batch})")
    d.add_argument("--size", type=int, default=defaults.size,
                   help=f"working image size in px (default {defaults.size})")
    d.add_argument("--patch", type=int, default=defaults.patch,
                   help=f"training patch side in px (default {defaults.patch})")
    d.add_argument("--extra-fraction", type=float, default=defaults.extra_fraction,
                   help="share of each batch of the blob and synthetic arms drawn from the added "
                   f"images (default {defaults.extra_fraction})")
    d.add_argument("--tune-cases", type=int, default=32,
                   help="training cases held out to choose each model's threshold (default 32)")
    d.add_argument("--fp-target", type=float, default=2.0,
                   help="false positives per tuning image the threshold allows (default 2)")
    d.add_argument("--arms", nargs="+", metavar="ARM",
                   help="arms to train: real, blob, synthetic, new_patients (default: real and "
                   "every arm whose folders are given; the bar needs blob and synthetic)")
    d.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    d.add_argument("--out", type=Path, help="write the JSON report here (rewritten after each run)")
    d.add_argument("--resume", action="store_true",
                   help="keep the runs already in --out (an interrupted run, or fewer --seeds) and "
                   "train only the missing ones; refused if --out was made with other settings "
                   "or data; the runs of an arm whose folders are not given are kept as they are")
    d.set_defaults(func=run_downstream_cmd)


def run_downstream_cmd(args: argparse.Namespace) -> int:
    from xraystudio.evaluation.downstream import (
        METRIC_TITLES,
        PAIRS,
        DownstreamConfig,
        markdown_table,
        run_downstream,
    )
    from xraystudio.training.nodule_segmenter import NoduleTraining

    if args.threads is not None and args.threads < 1:
        raise XRayStudioError("--threads must be at least 1")
    if args.seeds < 1:
        raise XRayStudioError("--seeds must be at least 1")
    if args.tune_cases < 2 or args.fp_target < 0:
        raise XRayStudioError("--tune-cases must be at least 2 and --fp-target not negative")
    training = NoduleTraining(size=args.size, patch=args.patch, batch=args.batch, steps=args.steps,
                               extra_fraction=args.extra_fraction)
    cfg = DownstreamConfig(data_dir=Path(args.data),
                           synthetic_dirs=tuple(Path(d) for d in args.synthetic),
                           new_patients_dirs=tuple(Path(d) for d in args.new_patients),
                           seeds=args.seeds, training=training, out=args.out,
                           tune_cases=args.tune_cases, fp_target=args.fp_target,
                           threads=args.threads, arms=None if args.arms is None else tuple(args.arms),
                           resume=args.resume)
    if args.resume and args.out is None:
        raise XRayStudioError("--resume needs --out, the report to continue")
    report = run_downstream(cfg)
    print(markdown_table(report))
    verdict = report["bar"]
    met = {True: "met", False: "not met", None: "not measured (needs the blob and synthetic arms)"}
    print(f"bar (synthetic beats blob on Dice and sensitivity, no more FP per normal image): "
          f"{met[verdict['met']]}")
    for arm, other in PAIRS:
        diff = report[f"paired_{arm}_minus_{other}"]
        if diff is None or len(diff["seeds"]) < 2:
            continue
        figures = ", ".join(f"{METRIC_TITLES[m]} {v['mean']:+.3f} [{v['ci95'][0]:+.3f}, "
                            f"{v['ci95'][1]:+.3f}]" for m, v in diff.items() if m in METRIC_TITLES)
        print(f"{arm} - {other} over {len(diff['seeds'])} paired seeds, mean [95 % CI]: {figures}")
    if args.out is not None:
        print(f"report: {args.out}")
    return 0
