"""``xraystudio fit-variation DATA --model DIR``: fit a layout prior's variation on a dataset.

Layout mode draws each seed's patient around the prior's typical picture (docs/fullres.md,
rule 13); the spread it draws from is fitted on the training films. ``train`` fits it with every
prior checkpoint; this command fits it for a model folder whose prior was trained before, on the
training split only, so the held-out cases stay unseen by everything shipped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xraystudio.errors import XRayStudioError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit-variation", help="fit how real films spread around a model's layout prior",
        description="Fit the variation of a model folder's layout prior (layout mode draws each "
        "seed's patient from it) on the training split of a JSRT-style dataset, and rewrite "
        "MODEL/prior with it.")
    p.add_argument("data", help="JSRT-style dataset folder (cases.csv, images/, masks/)")
    p.add_argument("--model", required=True, help="model folder with a layout prior (MODEL/prior)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xraystudio.io.atomic import atomic_folder
    from xraystudio.io.datasets import JsrtDataset
    from xraystudio.synthesis.model import PRIOR_FOLDER, load_prior
    from xraystudio.synthesis.spec import ModelSpec
    from xraystudio.training.data import load_samples
    from xraystudio.training.prior import fit_variation

    folder = Path(args.model)
    spec = ModelSpec.read(folder)
    prior = load_prior(folder, spec)
    if prior is None:
        raise XRayStudioError(f"{folder}: no layout prior ({PRIOR_FOLDER}/) to fit a variation for")
    dataset = JsrtDataset(args.data)
    train_ids = dataset.split()[0]
    if len(train_ids) < 2:
        raise XRayStudioError(f"{args.data}: a variation needs at least two training films")
    fitted = fit_variation(prior, load_samples(dataset, train_ids, spec), spec)
    with atomic_folder(folder / PRIOR_FOLDER, overwrite=True) as tmp:
        fitted.save_pretrained(tmp, safe_serialization=True)
    size = fitted.config.variation_size
    print(f"fitted on {len(train_ids)} training films: {fitted.config.variation_components} "
          f"components at {size} x {size} px; wrote {folder / PRIOR_FOLDER}")
    return 0
