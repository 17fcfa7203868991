"""The first stage's own pictures of the training films, for the full-resolution stage to learn from.

A stage trained only on blurred real films learns to sharpen the faint rib edges and vessels a
blurred film still holds. The first stage's pictures do not hold them (``benchmarks/
coarse_band.py``: a real film redrawn from 10 % noise keeps 0.31 of its 6-11 mm band), so the
stage finds nothing to sharpen and a new patient stays smooth. Cascades learn from what the first
stage gives: each training film is redrawn by the first stage from part of its schedule, under
the guided condition of its own masks, so its anatomy stays where the real film has it and the
pair (redraw, real film) shows the stage what the first stage leaves out. Redraws are made once
and kept as .npy files in the run (a resumed run does not redraw); they belong to the first
stage that drew them, so a new first stage needs new redraws (a new run folder).
"""

from __future__ import annotations

import logging
import os
import zlib
from pathlib import Path

import numpy as np

from xraystudio.errors import XRayStudioError
from xraystudio.io.datasets import JsrtDataset

log = logging.getLogger(__name__)

#: Fractions of the schedule a film is noised to before it is redrawn, one redraw each.
STRENGTHS = (0.3, 0.5)


def redraw(pipe, film: np.ndarray, cond: np.ndarray, strength: float, steps: int,
           seed: int) -> np.ndarray:
    """``film`` (working size, values in [0, 1]) noised to ``strength`` of the schedule and
    redrawn by the pixel pipeline under ``cond`` (C, S, S); values in [0, 1]."""
    import torch

    out = pipe(torch.from_numpy(np.asarray(cond, np.float32))[None], num_inference_steps=steps,
               generator=torch.Generator("cpu").manual_seed(seed),
               image=torch.from_numpy(np.asarray(film, np.float32) * 2 - 1)[None, None],
               strength=strength)
    return ((out[0, 0].float().cpu().numpy() + 1) / 2).astype(np.float32)


def load_redraws(dataset: JsrtDataset, ids: list[str], model_folder: str | os.PathLike,
                 folder: Path, scale: int, progress: bool = True) -> list[list[np.ndarray]]:
    """For each case of ``ids`` its redraws (working size, values in [-1, 1], float16) by the
    pixel model in ``model_folder``, drawn where ``folder`` does not hold them yet.

    The films must be squares ``scale`` times the working size, so that a crop of a film and
    the same crop of its redraw line up pixel block by pixel block.
    """
    from tqdm.auto import tqdm

    from xraystudio.image import XRayImage
    from xraystudio.synthesis.engine import Engine, GenerationRequest

    engine = Engine.load(model_folder, device="cpu")
    spec = engine.spec
    if spec.kind != "pixel" or not spec.supports_guide:
        raise XRayStudioError(f"{model_folder}: redraws need a pixel model with a guided mode")
    side = spec.resolution * scale
    folder.mkdir(parents=True, exist_ok=True)
    out: list[list[np.ndarray]] = []
    for case_id in tqdm(ids, desc="first-stage redraws", disable=not progress, dynamic_ncols=True):
        paths = [folder / f"{case_id}-{k}.npy" for k in range(len(STRENGTHS))]
        if not all(p.is_file() for p in paths):
            case = dataset.load(case_id)
            if case.image.shape != (side, side):
                raise XRayStudioError(f"{case_id}: a {case.image.shape[1]} x {case.image.shape[0]} "
                                      f"film; redraws need {side} x {side} films")
            film = case.image.astype(np.float32)
            req = GenerationRequest(case.masks, XRayImage.from_display(film, case.masks.spacing_mm),
                                    mode="guided")
            cond = engine.condition(req, "guided")
            working = film.reshape(spec.resolution, scale, spec.resolution, scale).mean(axis=(1, 3))
            for k, (path, strength) in enumerate(zip(paths, STRENGTHS)):
                seed = zlib.crc32(case_id.encode()) + k
                picture = redraw(engine.model.pipe, working, cond, strength, spec.defaults.steps, seed)
                tmp = path.with_name(path.stem + ".tmp.npy")
                np.save(tmp, (picture * 2 - 1).astype(np.float16))
                os.replace(tmp, path)
        out.append([np.load(p) for p in paths])
    log.info("%d films with %d first-stage redraws each", len(out), len(STRENGTHS))
    return out
