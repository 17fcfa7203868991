"""Reference figures for ``xraystudio evaluate --mode layout|guided``, to place a model's numbers.

The same evaluation (``Evaluator``, saved 16-bit PNG read back, the same metrics at the coarse
and full sizes, NPS, classifier two-sample test, nearest training film) run on films that are
not generated, on the validation split:

- ``other_real``: the held-out split in two halves (alternate cases, so both hold nodule and
  normal cases); each case of the first half gets, as its "generated" film, the real film of
  the matching case of the second. What real films score against each other: texture and NPS
  near 1, a two-sample AUC near 0.5 (its spread with 20 + 20 films), the memorisation
  distances of new real patients on both sides, and PSNR/SSIM/Dice of a different patient.
- ``blurred``: the same with a Gaussian blur of 1 px at the coarse size before upsampling: a
  smooth ghost of each real film (the look the issue found in layout mode), the positive control
  that shows the tests can tell;
- ``bicubic``: each real film boxed to the model's coarse size (256 px) and upsampled bicubically
  to its own size, what the product saved before the full-resolution stage: its texture and NPS
  at full resolution show what a coarse film lacks, and the patch classifier how easily that is
  told.

Usage: python benchmarks/realism_baselines.py DATA [--threads 1] [--coarse 256] [--full 1024]
[--references other_real bicubic blurred] [--out benchmarks/results/realism_baselines.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from xraystudio.evaluation.evaluate import EvalConfig, Evaluator, save_and_read
from xraystudio.io.atomic import write_text
from xraystudio.io.datasets import Case, JsrtDataset
from xraystudio.masks import MaskStack
from xraystudio.synthesis.condition import Letterbox, resize


class _Saved:
    """Films written as the product writes them and read back, at fixed sizes."""

    def __init__(self, coarse: int, full: int) -> None:
        self.coarse, self.full = coarse, full
        self._tmp = tempfile.TemporaryDirectory(prefix="xraystudio-baseline-")

    def save(self, film: np.ndarray, stem: str) -> np.ndarray:
        return save_and_read(film, Path(self._tmp.name), stem)


class BicubicFilms(_Saved):
    """The real film boxed to the coarse size, optionally blurred there (``sigma`` px), and
    upsampled bicubically to its own size."""

    def __init__(self, coarse: int, full: int, sigma: float = 0.0) -> None:
        super().__init__(coarse, full)
        self.sigma = sigma

    def draw(self, case: Case, masks: MaskStack, seed: int) -> np.ndarray:
        box = Letterbox(case.image.shape, self.coarse)
        small = box.to_working(case.image)
        if self.sigma:
            small = ndimage.gaussian_filter(small, self.sigma)
        return self.save(np.clip(box.from_working(small), 0, 1), case.id)

    def describe(self) -> dict:
        blur = f", Gaussian blur of {self.sigma} px there" if self.sigma else ""
        return {"reference": f"real film boxed to {self.coarse} px{blur}, bicubic back to its size"}


class OtherRealFilms(_Saved):
    """Another patient's real film (``partners``: case id -> the other case's id)."""

    def __init__(self, dataset: JsrtDataset, partners: dict[str, str], coarse: int, full: int) -> None:
        super().__init__(coarse, full)
        self.dataset, self.partners = dataset, partners

    def draw(self, case: Case, masks: MaskStack, seed: int) -> np.ndarray:
        other = self.dataset.load(self.partners[case.id]).image
        return self.save(resize(other, case.image.shape), case.id)

    def describe(self) -> dict:
        return {"reference": "the real film of another held-out patient (split halves)",
                "pairs": self.partners}


def _summary(report: dict, seconds: float) -> dict:
    keep = ("reference", "pairs", "sizes", "mean", "nps", "two_sample", "memorisation")
    return {**{k: report[k] for k in keep if k in report}, "seconds": round(seconds, 1)}


def _cpu() -> str:
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="dataset folder (JSRT layout)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--coarse", type=int, default=256)
    parser.add_argument("--full", type=int, default=1024)
    parser.add_argument("--classifier-steps", type=int, default=EvalConfig.classifier_steps)
    parser.add_argument("--classifier-seeds", type=int, default=EvalConfig.classifier_seeds)
    parser.add_argument("--no-segmenter", action="store_true")
    parser.add_argument("--references", nargs="+", default=["other_real", "bicubic", "blurred"],
                        choices=["other_real", "bicubic", "blurred"])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                             "realism_baselines.json"))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    segmenter = None
    if not args.no_segmenter:
        from xraystudio.segmentation.segmenter import Segmenter

        segmenter = Segmenter.load()
    dataset = JsrtDataset(args.data)
    val = dataset.split()[1]
    first, second = val[0::2], val[1::2]
    cfg = dict(mode="layout", diversity=False, classifier_steps=args.classifier_steps,
               classifier_seeds=args.classifier_seeds)
    runs = {
        "other_real": (OtherRealFilms(dataset, dict(zip(first, second)), args.coarse, args.full),
                       EvalConfig(cases=tuple(first[:len(second)]), **cfg)),
        "bicubic": (BicubicFilms(args.coarse, args.full), EvalConfig(split="val", **cfg)),
        "blurred": (BicubicFilms(args.coarse, args.full, sigma=1.0), EvalConfig(split="val", **cfg)),
    }
    runs = {k: v for k, v in runs.items() if k in args.references}
    out = Path(args.out)
    # References not run this time keep their figures from an earlier run.
    figures: dict = json.loads(out.read_text()) if out.is_file() else {}
    figures |= {
        "data": f"{Path(args.data).name}, validation split ({len(val)} cases)",
        "cpu": _cpu(), "threads": args.threads,
        "segmenter": segmenter is not None,
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, (films, ecfg) in runs.items():
            t0 = time.perf_counter()
            report = Evaluator(films, dataset, ecfg, segmenter).run(Path(tmp) / f"{name}.json")
            figures[name] = _summary(report, time.perf_counter() - t0)
            mean = report["mean"]
            print(f"{name}: " + ", ".join(
                f"{k} {mean[k]:.3f}" for k in ("psnr", "ssim", "psnr_full", "ssim_full", "hf_ratio",
                                                "hf_ratio_full", "two_sample_auc_film",
                                                "two_sample_auc_patches")
                if isinstance(mean.get(k), float)))
            print(f"  nps ratio by band {report['nps']['bands_cycles_per_px']}: "
                  + ", ".join(f"{r:.2f}" for r in report["nps"]["ratio"]))
            memo = report["memorisation"]
            if memo:
                print(f"  nearest training film: generated median {memo['generated_median']:.3f} "
                      f"p10 {memo['generated_p10']:.3f}; real median {memo['real_median']:.3f} "
                      f"p10 {memo['real_p10']:.3f}")
    write_text(out, json.dumps(figures, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
