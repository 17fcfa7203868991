"""``xraystudio fit-layout DATA --out FILE``: learn a nodule layout sampler from a dataset.

The built-in model's ``layout_sampler.json`` is made with this command; by default it fits on
the training split only, so that the held-out cases stay unseen by everything shipped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xraystudio.io.datasets import JsrtDataset
from xraystudio.synthesis.layout_sampler import LAYOUT_SAMPLER_FILE, LayoutSampler


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit-layout", help="learn nodule counts, sizes, places and subtlety from a dataset",
        description="Fit a nodule layout sampler on the training split of a JSRT-style dataset "
        f"and write it as JSON (put it in a model folder as {LAYOUT_SAMPLER_FILE}).")
    p.add_argument("data", help="JSRT-style dataset folder (cases.csv, images/, masks/)")
    p.add_argument("--out", required=True, help=f"output file, e.g. MODEL/{LAYOUT_SAMPLER_FILE}")
    p.add_argument("--all-cases", action="store_true",
                   help="fit on every case, not only the training split")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    dataset = JsrtDataset(args.data)
    case_ids = None if args.all_cases else dataset.split()[0]
    sampler = LayoutSampler.fit(dataset, case_ids)
    sampler.save(Path(args.out))
    fitted = sampler.stats["fitted_on"]
    size = sampler.stats["size"]
    print(f"fitted on {fitted['nodules']} nodules of {fitted['cases']} cases: "
          f"{size['min_mm']:g}-{size['max_mm']:g} mm (median {size['median_mm']:g}), "
          f"right lung {sampler.stats['lung']['right_lung']:.0%}; wrote {args.out}")
    return 0
