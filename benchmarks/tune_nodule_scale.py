"""Choose the edit model's ``nodule_scale`` and ``composite`` so inserted nodules fade as real ones do.

The label of an inserted nodule is the disc of its asked size, as a real JSRT nodule's label is
the disc of its recorded size; a segmenter learns the label's edge from where the opacity
fades. So an inserted nodule should fade where a real nodule of that size does. Real nodules'
opacity is measured as each real nodule case minus its ``synthesize --remove`` counterpart
(the edit model's estimate of the film without the nodule), inserted ones as each edit-mode
image minus its source; both on training cases only. For each candidate pair, edit-mode images
are made with the model's settings set to it; the pick is the pair whose mean radial opacity
profile (radius in units of the label's radius, normalised to its centre) is nearest the real
nodules' (root mean square over the shells out to 2.5 radii); the radius where it falls to half
is reported. Writes benchmarks/results/tune_nodule_scale.json. Usage:
python benchmarks/tune_nodule_scale.py DATA --removed SYN_RM [--values 1,0.9,0.8,0.7]
    [--composites redraw,opacity] [--limit 24]
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

#: Radial profile shells, in units of the label's radius.
SHELLS = np.arange(0.0, 2.5, 0.125)


def profile(delta: np.ndarray, x: float, y: float, radius_px: float) -> np.ndarray:
    """Mean opacity in each shell around (x, y)."""
    side = int(2.6 * radius_px) + 2
    y0, x0 = max(0, int(y) - side), max(0, int(x) - side)
    crop = delta[y0:int(y) + side + 1, x0:int(x) + side + 1]
    yy, xx = np.mgrid[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]]
    dist = np.hypot(xx - x, yy - y) / radius_px
    return np.array([crop[(dist >= a) & (dist < a + SHELLS[1])].mean() for a in SHELLS])


def half_radius(mean_profile: np.ndarray) -> float:
    """Where the profile first falls to half its centre (linear between shell centres)."""
    p = mean_profile / mean_profile[0]
    centres = SHELLS + SHELLS[1] / 2
    i = int(np.argmax(p < 0.5))
    return float(np.interp(0.5, [p[i], p[i - 1]], [centres[i], centres[i - 1]]))


def _normalised(mean_profile: np.ndarray) -> list[float]:
    return np.round(mean_profile / mean_profile[0], 3).tolist()


def _grey(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im, np.float64)


def opacity_profiles(folder: Path, key: str, sign: float) -> list[np.ndarray]:
    """Profiles of every nodule listed under ``key`` of the folder's metadata, in units of the
    source's value range. They are averaged before the mean is normalised to its centre: one
    nodule's centre alone is too noisy to divide by (a faint one's can be near zero)."""
    out = []
    for line in (folder / "metadata.jsonl").read_text().splitlines():
        row = json.loads(line)
        source = _grey(Path(row["source"]["file"]))
        delta = sign * (_grey(folder / row["image"]) - source) / (source.max() - source.min())
        for n in row[key]:
            out.append(profile(delta, n["x"], n["y"], n["diameter_mm"] / row["spacing_mm"] / 2))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--removed", required=True,
                    help="a `synthesize --remove --split train` folder of DATA")
    ap.add_argument("--model", default=None)
    ap.add_argument("--values", default="1,0.9,0.8,0.7")
    ap.add_argument("--composites", default="redraw,opacity", help="EditSpec.composite values")
    ap.add_argument("--limit", type=int, default=24, help="training cases to insert into")
    ap.add_argument("--per-input", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "tune_nodule_scale.json"))
    args = ap.parse_args()

    from xraystudio.synthesis.edit_window import EditSpec
    from xraystudio.synthesis.model import builtin_model_dir

    source_model = Path(args.model) if args.model else builtin_model_dir()
    real = opacity_profiles(Path(args.removed), "removed", -1.0)
    real_mean = np.mean(real, axis=0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for composite, value in itertools.product(args.composites.split(","),
                                                  (float(v) for v in args.values.split(","))):
            model = Path(tmp) / f"model_{composite}_{value}"
            shutil.copytree(source_model, model)
            spec = EditSpec.read(model / "edit")
            spec.nodule_scale, spec.composite = value, composite
            spec.write(model / "edit")
            out = Path(tmp) / f"syn_{composite}_{value}"
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "xraystudio", "synthesize", args.data,
                            "--split", "train", "--limit", str(args.limit),
                            "-n", str(args.per_input), "--model", str(model), "--out", str(out),
                            "--threads", str(args.threads)], check=True, stdout=subprocess.DEVNULL)
            profiles = opacity_profiles(out, "nodules", 1.0)
            inserted = np.mean(profiles, axis=0)
            error = float(np.sqrt(np.mean((inserted / inserted[0] - real_mean / real_mean[0]) ** 2)))
            rows.append({"nodule_scale": value, "composite": spec.composite,
                         "profile_error": error, "half_radius": half_radius(inserted),
                         "n_inserted": len(profiles),
                         "profile": _normalised(inserted),
                         "seconds": round(time.perf_counter() - started, 1)})
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "profile"}), flush=True)
    best = min(rows, key=lambda r: r["profile_error"])
    report = {"model": str(source_model), "cases": f"first {args.limit} training cases",
              "removed": args.removed, "real_half_radius": half_radius(real_mean), "n_real": len(real),
              "real_profile": _normalised(real_mean),
              "shells": SHELLS.tolist(), "rows": rows,
              "best": {"nodule_scale": best["nodule_scale"], "composite": best["composite"]}}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"real_half_radius": report["real_half_radius"], "best": report["best"]}))


if __name__ == "__main__":
    main()
