"""Does the product's synthetic data help a nodule segmenter? Up to four arms, several seeds.

Each seed trains the same small nodule segmenter (:mod:`xraystudio.training.nodule_segmenter`,
same steps, batch, patches, lr and widths) once per arm: on the real training cases only, on
real + blob-inserted images, on real + the synthetic folder, and on real + new patients (a
layout-mode folder; see :mod:`xraystudio.evaluation.downstream_data`). The blob and synthetic
arms have the same images and nodule layouts, so they differ only in how the nodules were
drawn; the new patients are a figure beside real data alone (``paired`` against ``real``).

A segmenter's figures depend on its threshold more than on anything else, and a threshold fixed
in advance lands each model at another operating point (one finds every nodule with twenty
false positives per image, another nothing). So each model's threshold is chosen on tuning
cases held out of the training split (``tune_cases``, nodule and normal in proportion, never
trained on, and no synthetic or blob image made from them is used): the lowest threshold at
which it makes at most ``fp_target`` false positives per tuning image. False positives are
counted on every tuning image, nodule cases (components away from the nodule) as well as normal
ones: with 12 normal tuning cases alone the count moves in steps of 1/12 and one odd film sets a
model's threshold. Then it is scored on the held-out validation split of ``JsrtDataset.split``,
which only reports:

- Dice of the thresholded prediction against the nodule disc, per nodule case, averaged;
- sensitivity: validation nodules overlapped by a predicted component;
- false positives per normal image: predicted components on the validation normal cases.

Seeds run in the outer loop and the report is rewritten after every run, so an interrupted
benchmark still holds complete, paired seeds; ``resume`` continues such a report (or extends it to
more seeds), training only the (seed, arm) runs it lacks: each run depends on its seed, arm,
settings and training images alone. It refuses a report written with other settings or other
real cases; the report records a hash of every pool of images, and an arm whose added images
changed since (a synthetic folder made anew with another model) is trained again while the
other arms' runs are kept, so a new synthetic folder with the same layouts costs only its own
arm. The runs of an arm whose images are not given are kept as the report holds them (its
data and pool hash with them), so a report can be resumed for one arm without the folders of
the others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import platform
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from xraystudio import __version__, metrics
from xraystudio.errors import DatasetError
from xraystudio.evaluation import downstream_data as data
from xraystudio.io.atomic import write_text
from xraystudio.io.datasets import JsrtDataset
from xraystudio.synthesis.conspicuity import positive_contrasts
from xraystudio.training.nodule_segmenter import (
    NoduleTraining,
    Pool,
    predict,
    train_nodule_segmenter,
)

log = logging.getLogger(__name__)

ARMS: tuple[str, ...] = ("real", "blob", "synthetic", "new_patients")
#: The pools every arm trains on or is scored on; the arms' own added images are pools too.
SHARED_POOLS: tuple[str, ...] = ("real", "tune", "val")
ARM_TITLES = {"real": "real only", "blob": "real + blob insertion", "synthetic": "real + synthetic",
              "new_patients": "real + new patients"}
#: The folder(s) each added arm's images come from (the blob arm redraws the synthetic folder's
#: layouts into their sources), and the ``synthesize`` modes such a folder holds.
FOLDER_OF = {"blob": "synthetic", "synthetic": "synthetic", "new_patients": "new_patients"}
FOLDER_MODES = {"synthetic": data.EDIT_MODES, "new_patients": data.LAYOUT_MODES}
FOLDER_OPTIONS = {"synthetic": "--synthetic", "new_patients": "--new-patients"}
#: Arm minus other arm, seed by seed, in the report (``paired_<arm>_minus_<other>``).
PAIRS: tuple[tuple[str, str], ...] = (("synthetic", "blob"), ("new_patients", "real"))
METRICS: tuple[str, ...] = ("dice", "sensitivity", "fp_per_normal")
METRIC_TITLES = {"dice": "nodule Dice", "sensitivity": "sensitivity",
                 "fp_per_normal": "FP / normal image",
                 "cpm": "FROC: mean sensitivity at 0.25-4 FP / normal image"}


@dataclasses.dataclass
class DownstreamConfig:
    data_dir: Path
    synthetic_dirs: tuple[Path, ...] = ()  # edit-mode (and --remove) folders: blob, synthetic
    new_patients_dirs: tuple[Path, ...] = ()  # layout-mode folders: new_patients
    seeds: int = 3
    training: NoduleTraining = dataclasses.field(default_factory=NoduleTraining)
    min_diameter_mm: float = 3.0
    tune_cases: int = 32
    fp_target: float = 2.0
    out: Path | None = None
    threads: int | None = None
    #: The arms to train, in :data:`ARMS` order (blob and synthetic for the bar; one to rerun
    #: an arm); None: every arm whose images are given.
    arms: tuple[str, ...] | None = None
    #: Keep the runs of the report at ``out`` and train only the missing ones.
    resume: bool = False

    def folders(self) -> dict[str, tuple[Path, ...]]:
        """The folders given, by kind (the keys of :data:`FOLDER_MODES`)."""
        given = {"synthetic": self.synthetic_dirs, "new_patients": self.new_patients_dirs}
        return {name: tuple(Path(d) for d in dirs) for name, dirs in given.items() if dirs}

    def trained_arms(self) -> tuple[str, ...]:
        """The arms to train, in :data:`ARMS` order; ``DatasetError`` for an unknown arm or one
        whose images are not given."""
        folders = self.folders()
        wanted = self.arms if self.arms is not None else tuple(
            a for a in ARMS if a == "real" or FOLDER_OF[a] in folders)
        unknown = sorted(set(wanted) - set(ARMS))
        if unknown or not wanted:
            raise DatasetError(f"unknown arm(s) {', '.join(unknown) or '(none given)'}; "
                               f"choose from {', '.join(ARMS)}")
        missing = [a for a in ARMS if a in wanted and a != "real" and FOLDER_OF[a] not in folders]
        if missing:
            options = sorted({FOLDER_OPTIONS[FOLDER_OF[a]] for a in missing})
            raise DatasetError(f"the {', '.join(missing)} arm(s) need their images: give "
                               f"{' and '.join(options)}")
        return tuple(a for a in ARMS if a in wanted)


def evaluate_model(
    prob: np.ndarray, val: Pool, nodule_case: np.ndarray, threshold: float, min_diameter_mm: float
) -> dict[str, Any]:
    """The three figures (and per-case detail) of one model's probabilities on the val pool."""
    dice, hits, nodules, fp_normal, fp_nodule = [], 0, 0, [], []
    per_case = {}
    for i, case_id in enumerate(val.ids):
        min_area = max(1, int(math.pi * (min_diameter_mm / val.spacing_mm[i] / 2) ** 2))
        pred = metrics.keep_components(prob[i] >= threshold, min_area)
        found = metrics.detections(pred, val.masks[i])
        row: dict[str, Any] = {"false_positives": found["false_positives"]}
        if nodule_case[i]:
            row["dice"] = metrics.dice(pred, val.masks[i])
            row["hits"], row["nodules"] = found["hits"], found["nodules"]
            dice.append(row["dice"])
            hits += found["hits"]
            nodules += found["nodules"]
            fp_nodule.append(found["false_positives"])
        else:
            fp_normal.append(found["false_positives"])
        per_case[case_id] = row
    return {
        "dice": float(np.mean(dice)) if dice else math.nan,
        "sensitivity": hits / nodules if nodules else math.nan,
        "fp_per_normal": float(np.mean(fp_normal)) if fp_normal else math.nan,
        "fp_per_nodule_image": float(np.mean(fp_nodule)) if fp_nodule else math.nan,
        "fp_per_image": float(np.mean(fp_normal + fp_nodule)) if val.ids else math.nan,
        "per_case": per_case,
    }


#: Thresholds a model's operating point is chosen from, on the tuning cases: finer towards 1,
#: where a segmenter trained with a positive weight puts most of its background probabilities.
THRESHOLDS: tuple[float, ...] = tuple(np.round(np.concatenate(
    [np.arange(0.05, 0.8, 0.025), np.arange(0.8, 0.995, 0.005)]), 3))


def choose_threshold(prob: np.ndarray, tune: Pool, nodule_case: np.ndarray, fp_target: float,
                     min_diameter_mm: float) -> float:
    """The lowest threshold with at most ``fp_target`` false positives per tuning image, nodule
    and normal cases alike (the most sensitive operating point within the budget); the highest
    if none is within it."""
    for threshold in THRESHOLDS:
        scores = evaluate_model(prob, tune, nodule_case, float(threshold), min_diameter_mm)
        if scores["fp_per_image"] <= fp_target:
            return float(threshold)
    return float(THRESHOLDS[-1])


#: False positives per normal image at which the FROC summary reads sensitivity (as LUNA16's
#: CPM does per scan): a threshold-free figure that compares models at equal false positives.
FROC_FP: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)


def froc(prob: np.ndarray, pool: Pool, nodule_case: np.ndarray, min_diameter_mm: float
         ) -> dict[str, Any]:
    """Sensitivity at each of :data:`FROC_FP` false positives per normal image (the best any
    threshold reaches within that many) and their mean (CPM). An evaluation figure, like an AUC:
    it chooses nothing the model is then used with."""
    points = []
    for threshold in THRESHOLDS:
        s = evaluate_model(prob, pool, nodule_case, float(threshold), min_diameter_mm)
        points.append((s["fp_per_normal"], s["sensitivity"]))
    at = {str(fp): max([sens for f, sens in points if f <= fp], default=0.0) for fp in FROC_FP}
    return {"cpm": float(np.mean(list(at.values()))), "sensitivity_at_fp": at}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, sample sd and the per-seed values of each figure over an arm's seeds."""
    out: dict[str, Any] = {}
    for key in (*METRICS, "fp_per_nodule_image", "threshold", "cpm", "tune_cpm"):
        if not all(key in r for r in runs):
            continue
        out[key] = _spread([r[key] for r in runs])
    return out


def _spread(values: list[float]) -> dict[str, Any]:
    """Mean, sample sd (0 for one seed) and the values themselves, seed by seed."""
    return {
        "mean": float(np.mean(values)),
        "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
        "seeds": values,
    }


def paired(runs: dict[str, list[dict[str, Any]]], arm: str = "synthetic", other: str = "blob"
           ) -> dict[str, Any] | None:
    """``arm`` minus ``other``, seed by seed, per figure: the mean difference, its sd, and a 95 %
    t-interval of the mean. A seed starts both arms from the same initial weights and random
    stream and scores them on the same films, so the interval says whether a gap between the
    two means is more than seed noise."""
    from scipy import stats

    if arm not in runs or other not in runs:
        return None
    by_seed = {r["seed"]: r for r in runs[other]}
    pairs = [(r, by_seed[r["seed"]]) for r in runs[arm] if r["seed"] in by_seed]
    if not pairs:
        return None
    out: dict[str, Any] = {"seeds": [a["seed"] for a, _ in pairs]}
    for key in (*METRICS, "cpm", "tune_cpm"):
        if not all(key in a and key in b for a, b in pairs):
            continue
        spread = _spread([float(a[key] - b[key]) for a, b in pairs])
        n = len(pairs)
        # one pair has no interval: null, not NaN, which strict JSON readers refuse
        half = float(stats.t.ppf(0.975, n - 1) * spread["sd"] / math.sqrt(n)) if n > 1 else None
        spread["ci95"] = None if half is None else [spread["mean"] - half, spread["mean"] + half]
        out[key] = spread
    return out


def bar(summary: dict[str, Any]) -> dict[str, Any]:
    """Issue 13's bar, on the means: synthetic beats blob on Dice and sensitivity, no more FPs."""
    if not {"blob", "synthetic"} <= summary.keys():
        return {"met": None}
    s, b = summary["synthetic"], summary["blob"]
    result = {
        "dice": s["dice"]["mean"] > b["dice"]["mean"],
        "sensitivity": s["sensitivity"]["mean"] > b["sensitivity"]["mean"],
        "fp_per_normal": s["fp_per_normal"]["mean"] <= b["fp_per_normal"]["mean"],
    }
    out = {**result, "met": all(result.values())}
    if "cpm" in s and "cpm" in b:  # at equal false positives, threshold-free (not the bar)
        out["cpm_synthetic_over_blob"] = s["cpm"]["mean"] > b["cpm"]["mean"]
    return out


def markdown_table(report: dict[str, Any]) -> str:
    """The README's table: per arm, images added, then mean ± sd (and each seed) per figure;
    each arm's number of seeds beside its name when the arms have not all the same."""
    shown = [m for m in (*METRICS, "cpm")
             if all(m in summary for summary in report["summary"].values())]
    n_seeds = {arm: len(summary["dice"]["seeds"]) for arm, summary in report["summary"].items()}
    head = "| training data | images (real + added) | " + " | ".join(
        METRIC_TITLES[m] for m in shown) + " |"
    lines = [head, "|" + " --- |" * (2 + len(shown))]
    counts = report["data"]
    for arm, summary in report["summary"].items():
        added = 0 if arm == "real" else counts[f"{arm}_images"]
        n = n_seeds[arm]
        title = ARM_TITLES[arm] + (f" ({n} seed{'s' * (n != 1)})"
                                   if len(set(n_seeds.values())) > 1 else "")
        cells = [title, f"{counts['train_cases']} + {added}"]
        for m in shown:
            v = summary[m]
            seeds = ", ".join(f"{x:.2f}" for x in v["seeds"])
            cells.append(f"{v['mean']:.3f} ± {v['sd']:.3f} ({seeds})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _load(cfg: DownstreamConfig, progress: bool) -> tuple[dict[str, Pool], tuple, tuple, dict]:
    """The pools of the real, tuning and validation cases and of every folder given (the
    synthetic folders give the blob arm too), and the report's ``data``."""
    from tqdm import tqdm

    from xraystudio.io.datasets import tune_split

    dataset = JsrtDataset(cfg.data_dir)
    train_ids, val_ids = dataset.split()
    if not train_ids or not val_ids:
        raise DatasetError(f"{cfg.data_dir} has too few cases for a train/validation split")
    folders = cfg.folders()
    made = {name: data.read_synthetic(dirs, dataset, val_ids, FOLDER_MODES[name])
            for name, dirs in folders.items()}
    train_ids, tune_ids = tune_split(dataset, train_ids, cfg.tune_cases)
    held = set(tune_ids)
    # nothing made from a tuning case is trained on
    items = {name: [i for i in m if i.case not in held] for name, m in made.items()}
    size = cfg.training.size
    total = len(train_ids) + len(tune_ids) + len(val_ids) + sum(
        len(v) * (2 if name == "synthetic" else 1) for name, v in items.items())
    with tqdm(total=total, desc="loading", unit="image", disable=not progress,
              dynamic_ncols=True) as bar_:
        def tick(done: int, count: int) -> None:
            bar_.update(1)

        real, nodules = data.real_pool(dataset, train_ids, size, progress=tick)
        tune, _ = data.real_pool(dataset, tune_ids, size, name="tune", progress=tick)
        val, _ = data.real_pool(dataset, val_ids, size, name="val", progress=tick)
        pools = {"real": real}
        for name, kept in items.items():
            pools[name] = data.synthetic_pool(kept, dataset, size, progress=tick, name=name)
            if name == "synthetic":
                pools["blob"] = data.blob_pool(kept, dataset, nodules, size, progress=tick)
    by_id = {c.id: c for c in dataset.cases}
    nodule_case = np.array([by_id[i].nodule for i in val_ids])
    tune_nodule = np.array([by_id[i].nodule for i in tune_ids])
    counts: dict[str, Any] = {
        "dataset": str(dataset.root),
        "train_cases": len(train_ids),
        "train_nodule_cases": sum(by_id[i].nodule for i in train_ids),
        "tune_cases": len(tune_ids), "tune_nodule_cases": int(tune_nodule.sum()),
        "val_cases": len(val_ids), "val_nodule_cases": int(nodule_case.sum()),
        "val_normal_cases": int((~nodule_case).sum()),
    }
    for name, dirs in folders.items():
        counts.update(_folder_counts(name, dirs, made[name], items[name], pools[name]))
    if "blob" in pools:
        counts.update({"blob_images": len(pools["blob"]),
                       "blob_nodules_labelled": pools["blob"].nodule_count,
                       "blob_contrast_pool": len(positive_contrasts(nodules))})
    counts["pool_sha256"] = {name: _pool_hash(pool) for name, pool in
                             {**pools, "tune": tune, "val": val}.items()}
    return pools, (tune, tune_nodule), (val, nodule_case), counts


def _folder_counts(name: str, dirs: tuple[Path, ...], made: list, items: list, pool: Pool
                   ) -> dict[str, Any]:
    """What a kind of folder holds and what of it is trained on (``<name>_...``)."""
    return {
        f"{name}_dirs": [str(d) for d in dirs],
        f"{name}_images_made": len(made),
        f"{name}_images": len(pool), f"{name}_nodules_labelled": pool.nodule_count,
        f"{name}_nodules_inserted": sum(len(i.nodules) for i in items),
        f"{name}_source_cases": len({i.case for i in items}),
        f"{name}_metadata_sha256": [
            hashlib.sha256((d / data.METADATA).read_bytes()).hexdigest()[:16] for d in dirs],
    }


def _pool_hash(pool: Pool) -> str:
    """What a run trained on or was scored on, exactly: ids, pixels, labels and spacings."""
    digest = hashlib.sha256("\n".join(pool.ids).encode())
    for array in (pool.images, pool.masks, pool.spacing_mm):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def run_downstream(cfg: DownstreamConfig, progress: bool = True) -> dict[str, Any]:
    """Load, train and score every arm for every seed; returns (and writes) the report."""
    import torch
    from tqdm import tqdm

    cfg.training.check()
    if cfg.seeds < 1:
        raise DatasetError("--seeds must be at least 1")
    arms = cfg.trained_arms()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    previous = _resumable(cfg, arms) if cfg.resume else None
    started = time.monotonic()
    pools, (tune, tune_nodule), (val, nodule_case), counts = _load(cfg, progress)
    load_seconds = time.monotonic() - started
    log.info("loaded %s in %.0f s", counts, load_seconds)
    runs = ({arm: [] for arm in arms} if previous is None
            else _resumed_runs(cfg, previous, counts, arms))
    done = {(r["seed"], arm) for arm, rs in runs.items() for r in rs}
    # Only the runs still to train count: ``done`` also holds kept runs of arms not trained now.
    todo = [(seed, arm) for seed in range(cfg.seeds) for arm in arms if (seed, arm) not in done]
    report: dict[str, Any] = {}
    steps = cfg.training.steps
    with tqdm(total=len(todo) * steps, desc="training", unit="step",
              disable=not progress, dynamic_ncols=True) as bar_:
        for seed, arm in todo:
            bar_.set_description(f"seed {seed} {arm}")
            t0 = time.monotonic()
            extra = None if arm == "real" else pools[arm]
            model = train_nodule_segmenter(
                cfg.training, pools["real"], extra, seed,
                on_step=lambda step, loss: (bar_.update(1), bar_.set_postfix(loss=f"{loss:.3f}")),
            )
            t1 = time.monotonic()
            tune_prob = predict(model, tune)
            threshold = choose_threshold(tune_prob, tune, tune_nodule, cfg.fp_target,
                                         cfg.min_diameter_mm)
            tune_froc = froc(tune_prob, tune, tune_nodule, cfg.min_diameter_mm)
            val_prob = predict(model, val)
            scores = evaluate_model(val_prob, val, nodule_case, threshold,
                                    cfg.min_diameter_mm)
            scores.update(froc(val_prob, val, nodule_case, cfg.min_diameter_mm))
            runs[arm].append({
                "seed": seed, "threads": cfg.threads, "threshold": threshold, **scores,
                "tune_cpm": tune_froc["cpm"],
                "train_seconds": round(t1 - t0, 1),
                "seconds_per_step": round((t1 - t0) / steps, 4),
                "eval_seconds": round(time.monotonic() - t1, 1),
            })
            runs[arm].sort(key=lambda r: r["seed"])
            log.info("seed %d %s: Dice %.3f sensitivity %.3f FP/normal %.2f", seed, arm,
                     scores["dice"], scores["sensitivity"], scores["fp_per_normal"])
            report = _report(cfg, counts, runs, load_seconds, time.monotonic() - started)
            if cfg.out is not None:
                write_text(cfg.out, json.dumps(report, indent=1) + "\n")
    if not report:  # every run was in the resumed report
        report = _report(cfg, counts, runs, load_seconds, time.monotonic() - started)
        if cfg.out is not None:
            write_text(cfg.out, json.dumps(report, indent=1) + "\n")
    return report


#: Settings a resumed report may differ in: how many runs (seeds, arms), and the CPU threads,
#: which say how fast a run is made, not what it learns (on some CPUs its last bits); each run
#: records its own.
_RUN_COUNT_SETTINGS = ("seeds", "arms", "threads")


def _resumable(cfg: DownstreamConfig, arms: tuple[str, ...]) -> dict[str, Any] | None:
    """The report at ``cfg.out`` when it was made with this run's settings (checked before the
    long load; ``DatasetError`` otherwise), None when there is none yet."""
    if cfg.out is None or not cfg.out.is_file():
        return None
    try:
        old = json.loads(cfg.out.read_text(encoding="utf-8"))
        old_settings = old["settings"]
        if not all(isinstance(old[k], dict) for k in ("settings", "data", "runs")):
            raise TypeError("settings, data and runs must be objects")
        for arm_runs in old["runs"].values():
            if not isinstance(arm_runs, list) or not all(
                    isinstance(r, dict) and isinstance(r["seed"], int) for r in arm_runs):
                raise TypeError("every run needs an integer seed")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"cannot resume {cfg.out}: not a downstream report ({exc})") from None
    settings = _settings(cfg, arms)
    _refuse_if(cfg, [k for k in sorted(settings.keys() | old_settings.keys())
                     if k not in _RUN_COUNT_SETTINGS and settings.get(k) != old_settings.get(k)])
    return old


def _resumed_runs(cfg: DownstreamConfig, old: dict[str, Any], counts: dict,
                  arms: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    """``old``'s runs whose images are this run's: of ``arms`` below ``cfg.seeds``, and all of
    any other arm it holds (kept, not retrained: a rerun of one arm loses none of the others).
    An arm whose images were not given is kept as the report holds it, and its data and pool
    hash are copied into ``counts``."""
    old_pools, pools = old["data"].get("pool_sha256"), counts["pool_sha256"]
    held = {arm for arm in ARMS if old["runs"].get(arm)}
    unseen = {arm for arm in held if arm not in pools}
    if isinstance(old_pools, dict):
        _refuse_if(cfg, [f"{name} cases" for name in SHARED_POOLS
                         if old_pools.get(name) != pools[name]])
        stale = {arm for arm in held - unseen if old_pools.get(arm) != pools[arm]}
        if stale:
            log.info("training %s again: their images changed since %s",
                     ", ".join(sorted(stale)), cfg.out)
        held -= stale
        _copy_data(old["data"], counts, unseen)
    else:  # a report from before pool hashes: all its data must agree
        if unseen:
            raise DatasetError(f"cannot resume {cfg.out} without the images of its "
                               f"{', '.join(sorted(unseen))} arm(s): it has no pool hashes")
        _refuse_if(cfg, [k for k in counts if k in old["data"] and counts[k] != old["data"][k]])
    threads = old["settings"].get("threads")  # of runs from before each run recorded its own
    kept = {arm: sorted(({"threads": threads, **r} for r in old["runs"][arm]
                         if arm not in arms or r["seed"] < cfg.seeds), key=lambda r: r["seed"])
            for arm in held}
    runs = {arm: kept.get(arm, []) for arm in ARMS if arm in arms or arm in held}
    log.info("resuming %s: %s", cfg.out, {arm: len(r) for arm, r in runs.items()})
    return runs


def _copy_data(old: dict[str, Any], counts: dict[str, Any], arms: set[str]) -> None:
    """The data of ``arms``, kept from a report without their images being given: their pool
    hashes and what their folders held (``<arm>_...``, ``<folder>_...``)."""
    for arm in arms:
        counts["pool_sha256"][arm] = old["pool_sha256"].get(arm)
        prefixes = (f"{arm}_", f"{FOLDER_OF[arm]}_")
        counts.update({k: v for k, v in old.items()
                       if k.startswith(prefixes) and k not in counts})


def _refuse_if(cfg: DownstreamConfig, differ: list[str]) -> None:
    if differ:
        raise DatasetError(f"cannot resume {cfg.out}: it was made with other {', '.join(differ)}; "
                           "give another --out, or the same settings and data")


def _settings(cfg: DownstreamConfig, arms: Iterable[str]) -> dict[str, Any]:
    return {
        "seeds": cfg.seeds, "training": cfg.training.to_dict(),
        "threshold": f"per model, lowest with <= {cfg.fp_target} FP per tuning image",
        "tune_cases": cfg.tune_cases, "fp_target": cfg.fp_target,
        "arms": [a for a in ARMS if a in arms],
        "min_component_diameter_mm": cfg.min_diameter_mm, "split": "JsrtDataset.split()",
        "tuned_on_validation": False, "threads": cfg.threads, "precision": "fp32",
        "machine": platform.processor() or platform.machine(),
    }


def _report(cfg: DownstreamConfig, counts: dict, runs: dict[str, list[dict[str, Any]]],
            load_seconds: float, seconds: float) -> dict[str, Any]:
    done = {arm: r for arm, r in runs.items() if r}
    summary = {arm: summarise(r) for arm, r in done.items()}
    train_seconds = [r["train_seconds"] for rs in done.values() for r in rs]
    every_seed = set(range(cfg.seeds))
    return {
        "benchmark": "downstream", "xraystudio": __version__,
        # every arm has every seed (one kept whole from a resumed report may have more)
        "complete": all(every_seed <= {r["seed"] for r in rs} for rs in runs.values()),
        "data": counts,
        "settings": _settings(cfg, runs),
        "summary": summary,
        "bar": bar(summary),
        **{f"paired_{arm}_minus_{other}": paired(done, arm, other) for arm, other in PAIRS},
        "runs": done,
        "timing": {
            "load_seconds": round(load_seconds, 1), "total_seconds": round(seconds, 1),
            "seconds_per_step": round(sum(train_seconds) / max(1, len(train_seconds))
                                      / cfg.training.steps, 4),
        },
    }
