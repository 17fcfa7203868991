"""Checkpoints without pickles: module weights as diffusers safetensors folders, optimizer
state as a flat safetensors file, and the small rest (step, stage, RNG seed) as JSON.

A training run must resume after a crash or a session cut off mid-run, so checkpoints are
written to a temporary folder and renamed into place: a half-written checkpoint never exists.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from xraystudio.io.atomic import write_text


def save_optimizer(opt, path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    state = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, float] = {}
    for idx, st in state["state"].items():
        for key, value in st.items():
            name = f"{idx}.{key}"
            if torch.is_tensor(value) and value.ndim > 0:
                tensors[name] = value.detach().contiguous().cpu()
            else:
                scalars[name] = float(value)
    save_file(tensors, str(path.with_suffix(".safetensors")))
    groups = [{k: v for k, v in g.items() if k != "params"} for g in state["param_groups"]]
    write_text(path.with_suffix(".json"), json.dumps({"scalars": scalars, "groups": groups}))


def load_optimizer(opt, path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(path.with_suffix(".safetensors")))
    meta = json.loads(path.with_suffix(".json").read_text())
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    for name, value in meta["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = torch.tensor(value)
    current = opt.state_dict()
    groups = [{**g, "params": cg["params"]} for g, cg in zip(meta["groups"], current["param_groups"])]
    opt.load_state_dict({"state": state, "param_groups": groups})


def commit_folder(tmp: Path, final: Path) -> None:
    """Replace ``final`` by the completed ``tmp`` folder."""
    old = final.with_name(final.name + ".old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def prune(folder: Path, stage: str, keep: int = 2) -> None:
    """Delete all but the newest ``keep`` checkpoints of ``stage`` (one crash-safe spare)."""
    found = sorted(folder.glob(f"step-{stage}-*/state.json"), key=_order)
    for old in found[:-keep]:
        shutil.rmtree(old.parent, ignore_errors=True)


#: Stages in the order a run trains them, so "newest" means "furthest along".
STAGE_ORDER = ("prior", "base", "controlnet")


def _order(state: Path) -> tuple[int, int]:
    stage, step = state.parent.name.split("-")[1:3]
    rank = STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)
    return (rank, int(step))


def latest(folder: Path) -> Path | None:
    """The newest complete checkpoint under ``folder`` (those with a state.json), any stage."""
    found = sorted(folder.glob("step-*-*/state.json"), key=_order)
    return found[-1].parent if found else None


def latest_of(folder: Path, stage: str) -> Path | None:
    found = sorted(folder.glob(f"step-{stage}-*/state.json"), key=_order)
    return found[-1].parent if found else None
