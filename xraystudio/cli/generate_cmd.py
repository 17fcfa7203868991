"""``xraystudio generate INPUT --out DIR``: synthetic radiographs from a study's masks."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from xraystudio.errors import MaskError
from xraystudio.synthesis.acceleration import OPTIMIZE, OPTIMIZE_HELP

log = logging.getLogger(__name__)


def _nodule(text: str) -> tuple[float, float, float]:
    try:
        x, y, d = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes X,Y,DIAMETER_MM, got {text!r}") from None
    return x, y, d


def _stamp(text: str) -> tuple[float, float, float, float | str | None]:
    """X,Y,MM with an optional fourth value: the contrast in % of the value range, a JSRT
    subtlety grade g1-g5 or 'typical' (looked up in the model's layout sampler), or 'model'."""
    from xraystudio.synthesis.layout_sampler import parse_stamp_contrast

    values = text.split(",")
    try:
        if len(values) not in (3, 4):
            raise ValueError
        x, y, d = (float(v) for v in values[:3])
        contrast = parse_stamp_contrast(values[3]) if len(values) == 4 else None
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"takes X,Y,DIAMETER_MM or X,Y,DIAMETER_MM,CONTRAST_PERCENT (or g1-g5, typical, "
            f"model), got {text!r}") from None
    return x, y, d, contrast


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate synthetic radiographs from masks",
                       description="Writes one PNG and one provenance JSON per image to --out "
                       "and prints PSNR/SSIM against INPUT at the model's working size.")
    p.add_argument("input", help="source radiograph (DICOM or image)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--masks", help="mask folder (one PNG per structure) or .npz")
    p.add_argument("--nodule", type=_stamp, action="append", default=[], metavar="X,Y,MM[,C]",
                   help="stamp a nodule at pixel X,Y with diameter MM (repeatable); edit mode "
                   "draws it to contrast C: in %% of the value range (real nodules: about 0.5-5), "
                   "g1-g5 (a JSRT subtlety grade at its size), 'typical' (the default: the "
                   "median real contrast of its size, from the model's layout sampler) or "
                   "'model' (as the model draws it)")
    p.add_argument("--remove", type=_nodule, action="append", default=[], metavar="X,Y,MM",
                   help="edit mode: remove the nodule (or anything) in the disc of diameter MM at "
                   "pixel X,Y, leaving normal-looking lung (repeatable)")
    p.add_argument("--no-segment", action="store_true",
                   help="do not segment the anatomy automatically when --masks is not given")
    p.add_argument("--model", help="model folder, 'builtin' (default) or a hub id")
    p.add_argument("--allow-download", action="store_true",
                   help="allow downloading a model given as a hub id")
    p.add_argument("--mode", choices=("edit", "layout", "guided"),
                   help="edit (default for a model with an edit model): the source radiograph at "
                   "its own size, changed only at --nodule/--remove; layout: a new patient from "
                   "the masks; guided: the whole image redrawn at the model's size over a coarse "
                   "copy of the source")
    p.add_argument("--prior", action=argparse.BooleanOptionalAction, default=None,
                   help="layout mode: start from the layout prior's typical look (default: when "
                   "the model has a prior); --no-prior draws exposure and surround at random")
    p.add_argument("--variation", type=float,
                   help="layout mode over the prior: how far each seed's patient departs from "
                   "the typical look, in units of how far real films do (0: the typical look "
                   "for every seed; default: the model's)")
    p.add_argument("--resolution", type=int,
                   help="layout and guided modes: the side the model draws, its working size "
                   "(256 for the built-in model) or its full resolution (1024, the default: a "
                   "second stage draws rib cortex, vessels and grain)")
    p.add_argument("--detail-gain", type=float,
                   help="full resolution: how strongly the second stage lifts rib edges and "
                   "vessels (6-11 mm) in the coarse picture; 1 = as it draws them (default: the "
                   "model's tuned value)")
    p.add_argument("--seed", type=int, help="first seed (random when omitted; always recorded)")
    p.add_argument("--steps", type=int)
    p.add_argument("--scheduler", choices=("dpm++", "ddim", "unipc", "euler", "ddpm"))
    p.add_argument("--n", type=int, default=1, help="number of images")
    p.add_argument("--conditioning-scale", type=float)
    p.add_argument("--control-start", type=float)
    p.add_argument("--control-end", type=float)
    p.add_argument("--guidance-scale", type=float, help="classifier-free guidance (text models)")
    p.add_argument("--prompt")
    p.add_argument("--negative-prompt")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    p.add_argument("--optimize", default="auto", choices=OPTIMIZE, help=OPTIMIZE_HELP)
    p.add_argument("--spacing", type=float, help="pixel spacing in mm when the file has none")
    p.set_defaults(func=run)


def build_study(args: argparse.Namespace):
    """The study with its masks: from --masks, else the anatomy segmenter; then --nodule stamps."""
    from xraystudio.masks import DEFAULT_SPACING_MM
    from xraystudio.study import Study

    study = Study.open(args.input, default_spacing_mm=args.spacing or DEFAULT_SPACING_MM)
    if args.masks:
        from xraystudio.io.masks_io import load_masks

        study.masks = load_masks(args.masks, study.shape, study.spacing_mm)
    elif not args.no_segment:
        from xraystudio.segmentation.segmenter import Segmenter

        Segmenter.load().fill_stack(study.masks, study.image.display())
    from xraystudio.chest_check import warn  # issue 14: a non-chest or lateral view is named

    warn(study.image, None if args.masks or args.no_segment else study.masks)
    if args.nodule:
        from xraystudio.synthesis.layout_sampler import default_sampler, stamp_contrast
        from xraystudio.synthesis.model import resolve

        folder = resolve(args.model)
        sampler = default_sampler(folder) if isinstance(folder, Path) and folder.is_dir() else None
        for x, y, d, contrast in args.nodule:
            try:
                target = stamp_contrast(contrast, sampler, d)
            except ValueError as exc:
                raise MaskError(str(exc)) from None
            study.masks.add_nodule(x, y, d, target)
    for x, y, d in args.remove:
        _mark_removed(study.masks, x, y, d)
    if not any(study.masks[n].any() for n in study.masks.names):
        raise MaskError("all masks are empty: give --masks, --nodule, or allow segmentation")
    return study


def _mark_removed(masks, x: float, y: float, diameter_mm: float) -> None:
    """Record a removal as edit mode reads it: a nodule of the source that the study no longer
    has. A listed source nodule at that place is taken off the study's nodules."""
    from xraystudio.masks import Nodule

    if not (0 <= x < masks.shape[1] and 0 <= y < masks.shape[0]):
        raise MaskError(f"--remove ({x:.0f}, {y:.0f}) lies outside the image")
    if diameter_mm <= 0:
        raise MaskError("--remove needs a positive diameter")
    near = [n for n in masks.nodules if (n.x - x) ** 2 + (n.y - y) ** 2
            <= (masks.mm_to_px(max(n.diameter_mm, diameter_mm)) / 2) ** 2]
    for n in near:
        masks.remove_nodule(n.id)
    new_id = max([0] + [n.id for n in masks.nodules + masks.source_nodules]) + 1
    masks.source_nodules.append(Nodule(new_id, float(x), float(y), float(diameter_mm)))


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from xraystudio.io.atomic import write_text
    from xraystudio.io.images import write_png16
    from xraystudio.synthesis.engine import Engine, GenerationRequest, compare_with_source

    study = build_study(args)
    engine = Engine.load(args.model, device=args.device, precision=args.precision,
                         allow_download=args.allow_download, optimize=args.optimize)
    req = GenerationRequest(
        masks=study.masks, image=study.image, mode=args.mode, seed=args.seed, n_images=args.n,
        steps=args.steps, scheduler=args.scheduler, conditioning_scale=args.conditioning_scale,
        control_start=args.control_start, control_end=args.control_end,
        guidance_scale=args.guidance_scale, prompt=args.prompt,
        negative_prompt=args.negative_prompt, prior=args.prior, resolution=args.resolution,
        detail_gain=args.detail_gain, variation=args.variation,
    )
    bar = tqdm(total=args.n, unit="img", disable=not sys.stderr.isatty(), dynamic_ncols=True,
               desc=f"{engine.spec.name} on {engine.device.label}")

    def progress(p) -> None:
        bar.n = round(p.fraction * p.n_images, 2)
        bar.set_postfix(step=f"{p.step}/{p.total}", eta=f"{p.eta_s:.0f}s")
        bar.refresh()

    try:
        results = engine.generate(req, progress=progress)
    finally:
        bar.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if results and results[0].values is not None:
        return _write_edits(results, study, out)
    for r in results:
        metrics = compare_with_source(r, study.image, study.masks)
        stem = f"{study.name}_{r.provenance['parameters']['mode']}_seed{r.seed}"
        write_png16(out / f"{stem}.png", r.image)
        write_text(out / f"{stem}.json",
                   json.dumps({**r.provenance, "metrics_vs_source": metrics}, indent=2) + "\n")
        shown = "  ".join(f"{k} {v:.3f}" for k, v in metrics.items())
        print(f"{out / (stem + '.png')}: {shown}")
    return 0


def _write_edits(results, study, out: Path) -> int:
    """Edit mode: each result in the source's format, its provenance, and what changed."""
    from xraystudio.io.atomic import write_text
    from xraystudio.synthesis.edit import save_edit

    for r in results:
        stem = f"{study.name}_edit_seed{r.seed}"
        paths = save_edit(r.values, study.image, r.provenance, out, stem)
        write_text(out / f"{stem}.json", json.dumps(r.provenance, indent=2) + "\n")
        changed = int(r.changed.sum())
        print(f"{', '.join(str(p) for p in paths)}: {len(r.provenance['edits'])} edits, "
              f"{changed} pixels changed ({100 * changed / r.changed.size:.2f} %)")
    return 0
