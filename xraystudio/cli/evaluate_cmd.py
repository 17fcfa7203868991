"""``xraystudio evaluate DATA_DIR --out report.json``: measure a model against real radiographs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xraystudio.synthesis.spec import SCHEDULERS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="generate for each case of a dataset and measure",
                       description="Writes report.json (per case and 'mean') and a contact "
                       "sheet PNG beside it: ground truth | generated | condition.")
    p.add_argument("data", help="dataset folder (images/, masks/<structure>/, cases.csv)")
    p.add_argument("--out", required=True, help="report .json")
    p.add_argument("--model", help="model folder (default: built-in)")
    p.add_argument("--mode", choices=("edit", "layout", "guided"), default="layout",
                   help="edit: re-insertion, insertion into normals (with a realism classifier "
                   "test), removal, measured on the saved files")
    p.add_argument("--limit", type=int, help="only the first N cases")
    p.add_argument("--split", choices=("all", "val", "train"), default="all",
                   help="all cases, or the project's held-out (val) or training split")
    p.add_argument("--steps", type=int)
    p.add_argument("--scheduler", choices=SCHEDULERS, help="default: the model's")
    p.add_argument("--prior", action=argparse.BooleanOptionalAction, default=None,
                   help="layout mode over the model's layout prior (default: when it has one)")
    p.add_argument("--variation", type=float,
                   help="layout mode over the prior: how far each patient departs from its "
                   "typical look (default: the model's)")
    p.add_argument("--resolution", type=int,
                   help="layout/guided: the side the model draws (default: its largest)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classifier-steps", type=int,
                   help="training steps per fold of the two-sample classifier (default 300)")
    p.add_argument("--classifier-seeds", type=int,
                   help="seeds of the two-sample classifier, AUCs averaged (default 1; 0: skip)")
    p.add_argument("--no-diversity", action="store_true", help="skip the second seed")
    p.add_argument("--no-segmenter", action="store_true", help="skip faithfulness Dice")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from xraystudio.evaluation.evaluate import EngineFilms, EvalConfig, Evaluator
    from xraystudio.io.datasets import JsrtDataset
    from xraystudio.synthesis.engine import Engine

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    engine = Engine.load(args.model, device=args.device)
    if args.mode == "edit":
        return _run_edit(engine, args)
    segmenter = None
    if not args.no_segmenter:
        from xraystudio.errors import ModelError
        from xraystudio.segmentation.segmenter import Segmenter

        try:
            segmenter = Segmenter.load()
        except ModelError as exc:
            print(f"note: no faithfulness Dice ({exc})", file=sys.stderr)
    cfg = EvalConfig(mode=args.mode, seed=args.seed, steps=args.steps, scheduler=args.scheduler,
                     limit=args.limit, prior=args.prior, variation=args.variation,
                     resolution=args.resolution,
                     split=args.split, diversity=not args.no_diversity,
                     **{k: v for k, v in (("classifier_steps", args.classifier_steps),
                                          ("classifier_seeds", args.classifier_seeds))
                        if v is not None})
    ev = Evaluator(EngineFilms(engine, cfg), JsrtDataset(args.data), cfg, segmenter)
    bar = tqdm(total=len(ev.case_ids()), unit="case", desc=f"evaluate {args.mode}")

    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    report = ev.run(Path(args.out), progress)
    bar.close()
    for key, value in report["mean"].items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    print(f"report: {args.out}; contact sheet: {Path(args.out).with_suffix('.png')}")
    return 0


def _run_edit(engine, args: argparse.Namespace) -> int:
    import json

    from tqdm.auto import tqdm

    from xraystudio.evaluation.edit_eval import EditEvalConfig, EditEvaluator, contact_sheet
    from xraystudio.io.atomic import write_text
    from xraystudio.io.datasets import JsrtDataset
    from xraystudio.io.images import write_png8

    split = "val" if args.split == "all" else args.split
    cfg = EditEvalConfig(split=split, seed=args.seed, steps=args.steps, limit=args.limit)
    ev = EditEvaluator(engine.edit_pipe, JsrtDataset(args.data), cfg)
    bar = tqdm(total=None, unit="edit", desc=f"evaluate edit ({split})")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    report = ev.run(progress)
    bar.close()
    report["config"] = {"split": split, "seed": args.seed, "steps": args.steps or
                        engine.edit_pipe.spec.steps, "model": engine.model.source}
    out = Path(args.out)
    write_text(out, json.dumps(report, indent=2, default=float) + "\n")
    write_png8(out.with_suffix(".png"), contact_sheet(ev.sheet))
    removals = out.with_name(out.stem + "_removal.png")
    if ev.removal_sheet:
        write_png8(removals, contact_sheet(ev.removal_sheet))
    for key, value in report["summary"].items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    print(f"report: {out}; contact sheets: {out.with_suffix('.png')} (source | edit | blob), "
          f"{removals} (source | removed)")
    return 0
