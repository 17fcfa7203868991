"""Model folders: find them, check they are safe to load, load them, save them.

Only safetensors and diffusers folders are loaded: a pickled checkpoint (.ckpt, .pt, .bin ...)
can run arbitrary code when unpickled, so it is refused with a note on how to convert it. Nothing
is downloaded unless the caller passes ``allow_download=True`` for a hub id the user named.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from xraystudio.errors import ModelError
from xraystudio.synthesis.spec import SPEC_FILE, ModelSpec

PRIOR_FOLDER = "prior"

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")
BUILTIN_NAME = "xraystudio-cxr"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HASH_WHOLE_BYTES = 256 * 2**20


def resources_dir() -> Path:
    """The resources folder: the wheel's packaged copy, else ``resources/`` beside the package
    (override with XRAYSTUDIO_RESOURCES); see xraystudio.resources."""
    from xraystudio.resources import resources_dir as find

    return find()


def prior_has_variation(folder: str | os.PathLike) -> bool:
    """Whether the folder's layout prior carries a variation (read from its config alone, so a
    window can offer the setting without loading torch)."""
    try:
        config = json.loads((Path(folder) / PRIOR_FOLDER / "config.json").read_text(encoding="utf-8"))
        return int(config.get("variation_components", 0)) > 0
    except (OSError, ValueError, TypeError, AttributeError):
        return False


def builtin_model_dir() -> Path:
    return resources_dir() / "models" / BUILTIN_NAME


def is_hub_id(ref: str) -> bool:
    return bool(_HUB_ID.match(ref)) and not Path(ref).expanduser().exists()


def refuse_pickles(path: Path) -> None:
    """Raise when ``path`` is, or a diffusers folder holds, pickled weights and no safetensors."""
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise ModelError(
                f"{path.name}: pickled checkpoints are not loaded because unpickling can run "
                "arbitrary code. Convert it to .safetensors (e.g. diffusers' conversion scripts "
                "or safetensors.torch.save_file) and load that instead."
            )
        return
    if path.is_dir():
        pickles = [p for p in path.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES]
        safes = list(path.rglob("*.safetensors"))
        if pickles and not safes:
            raise ModelError(
                f"{path}: holds only pickled weights ({pickles[0].name}); these are not loaded "
                "because unpickling can run arbitrary code. Re-save the model with "
                "save_pretrained(..., safe_serialization=True)."
            )


def weights_hash(paths: list[Path]) -> str:
    """A short hash of the safetensors files (large files: size plus first and last 16 MB)."""
    h = hashlib.sha256()
    files = sorted(
        (f for p in paths for f in ([p] if p.is_file() else p.rglob("*.safetensors"))),
        key=lambda f: f.name + str(f),
    )
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with open(f, "rb") as fh:
            if size <= _HASH_WHOLE_BYTES:
                h.update(fh.read())
            else:
                h.update(fh.read(16 * 2**20))
                fh.seek(-16 * 2**20, os.SEEK_END)
                h.update(fh.read())
    return h.hexdigest()[:16]


@dataclasses.dataclass
class LoadedModel:
    spec: ModelSpec
    pipe: Any
    source: str
    weights_hash: str
    prior: Any = None  # a LayoutPrior, for models that have one


def resolve(ref: str | os.PathLike | None) -> Path | str:
    """A model reference as the user gave it: None/'builtin' -> the built-in folder."""
    if ref is None or str(ref) in ("", "builtin", BUILTIN_NAME):
        folder = builtin_model_dir()
        if not (folder / SPEC_FILE).is_file():
            raise ModelError(
                f"the built-in model is missing ({folder}); reinstall xraystudio or pass --model "
                "with a model folder"
            )
        return folder
    path = Path(ref).expanduser()
    if path.exists():
        return path
    if is_hub_id(str(ref)):
        return str(ref)
    raise ModelError(f"{ref}: no such model folder or file")


def read_spec(path: Path) -> ModelSpec:
    """The folder's xraystudio.json, or a default spec for a plain SD ControlNet pipeline folder."""
    if (path / SPEC_FILE).is_file():
        return ModelSpec.read(path)
    index = path / "model_index.json"
    if index.is_file():
        try:
            info = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{index}: cannot be read ({exc})") from exc
        if "controlnet" in info and "vae" in info:
            log.warning("%s has no %s: assuming colour-coded masks (rgb) at 512 px", path, SPEC_FILE)
            return ModelSpec(name=path.name, kind="stable-diffusion", resolution=512,
                             encoding="rgb", base=".")
    raise ModelError(
        f"{path}: not an xraystudio model: it needs an {SPEC_FILE} (see the README, 'Model "
        "folders') or must be a diffusers Stable Diffusion ControlNet pipeline folder"
    )


def load_model(
    ref: str | os.PathLike | None = None,
    *,
    device: str = "cpu",
    dtype=None,
    allow_download: bool = False,
) -> LoadedModel:
    """Load a model folder (built-in when ``ref`` is None) onto ``device``."""
    where = resolve(ref)
    if isinstance(where, str):
        raise ModelError(
            f"{where} looks like a Hugging Face hub id, and downloading is off. Pass "
            "--allow-download (or allow downloads in the model settings), or download the "
            "model yourself and give its folder."
        ) if not allow_download else ModelError(
            f"{where}: a hub id needs an xraystudio.json; make a local folder with an "
            "xraystudio.json whose 'base'/'controlnet' name the hub ids"
        )
    refuse_pickles(where)
    if where.is_file():
        raise ModelError(
            f"{where.name}: a single weights file is not a model on its own; make a folder with "
            f"an {SPEC_FILE} whose 'base' (and 'controlnet') name it"
        )
    spec = read_spec(where)
    try:
        if spec.kind == "pixel":
            pipe, parts = _load_pixel(where, spec, dtype)
        else:
            pipe, parts = _load_stable_diffusion(where, spec, dtype, allow_download)
    except ModelError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(f"{where}: the model could not be loaded: {exc}") from exc
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    prior = load_prior(where, spec, device, dtype) if spec.kind == "pixel" else None
    if prior is not None:
        parts.append(where / PRIOR_FOLDER)
    return LoadedModel(spec, pipe, str(where), weights_hash(parts), prior)


def load_prior(folder: Path, spec: ModelSpec, device: str = "cpu", dtype=None):
    """The folder's layout prior, if it has one; its layers must be among the spec's."""
    from xraystudio.synthesis.prior import LayoutPrior

    if not (folder / PRIOR_FOLDER).is_dir():
        return None
    if not spec.supports_guide:
        raise ModelError(f"{folder}: a layout prior needs a model with a structure guide "
                         "('guide_factor' in xraystudio.json)")
    try:
        prior = LayoutPrior.from_pretrained(folder / PRIOR_FOLDER, use_safetensors=True,
                                            local_files_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{folder / PRIOR_FOLDER}: the layout prior could not be loaded: {exc}") from exc
    missing = [name for name in prior.config.layers if name not in spec.layers]
    if missing:
        raise ModelError(f"{folder / PRIOR_FOLDER}: the prior reads layers {missing} that the "
                         "model's xraystudio.json does not list")
    # Kept in float32 whatever the pipeline's precision: it is tiny and runs once per image.
    return prior.eval().to(device)


def _load_pixel(folder: Path, spec: ModelSpec, dtype) -> tuple[Any, list[Path]]:
    from diffusers import ControlNetModel, DPMSolverMultistepScheduler, UNet2DConditionModel

    from xraystudio.synthesis.pipelines import XRayControlNetPipeline

    for part in ("unet", "controlnet", "scheduler"):
        if not (folder / part).is_dir():
            raise ModelError(f"{folder}: the model folder has no '{part}' subfolder")
    kw = {"use_safetensors": True, "local_files_only": True}
    if dtype is not None:
        kw["dtype"] = dtype
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", **kw)
    controlnet = ControlNetModel.from_pretrained(folder / "controlnet", **kw)
    scheduler = DPMSolverMultistepScheduler.from_pretrained(folder / "scheduler")
    pipe = XRayControlNetPipeline(unet=unet, controlnet=controlnet, scheduler=scheduler,
                                  patch=spec.patch)
    return pipe, [folder / "unet", folder / "controlnet"]


def _part(folder: Path, ref: str | None, what: str, allow_download: bool) -> tuple[str, bool]:
    """Resolve a base/controlnet reference of an SD spec: (location, is_local)."""
    if not ref:
        raise ModelError(f"{folder / SPEC_FILE}: a stable-diffusion model needs '{what}'")
    local = (folder / ref).expanduser() if not Path(ref).is_absolute() else Path(ref)
    if local.exists():
        refuse_pickles(local)
        return str(local.resolve()), True
    if is_hub_id(ref):
        if not allow_download:
            raise ModelError(
                f"'{what}' is the hub id {ref}, and downloading is off. Pass --allow-download "
                "(or allow downloads in the model settings), or download it and give its folder."
            )
        return ref, False
    raise ModelError(f"{folder / SPEC_FILE}: '{what}' {ref} is neither a local path nor a hub id")


def _load_stable_diffusion(folder: Path, spec: ModelSpec, dtype, allow_download: bool):
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline, UNet2DConditionModel

    base, base_local = _part(folder, spec.base, "base", allow_download)
    cn_ref = spec.controlnet or ("controlnet" if (folder / "controlnet").is_dir() else None)
    common = {"local_files_only": not allow_download}
    if dtype is not None:
        common["dtype"] = dtype
    config_dir = None
    if base.endswith(".safetensors"):
        if not spec.base_config and not allow_download:
            raise ModelError(
                f"{Path(base).name}: a single-file Stable Diffusion checkpoint needs its "
                "configuration: set 'base_config' in xraystudio.json to a local diffusers SD "
                "folder of the same version, or pass --allow-download"
            )
        if spec.base_config:
            config_dir = str((folder / spec.base_config).resolve())
    parts: list[Path] = []
    if Path(base).is_dir() and (Path(base) / "controlnet").is_dir() and not spec.controlnet:
        controlnet = ControlNetModel.from_pretrained(Path(base) / "controlnet",
                                                     use_safetensors=True, **common)
    else:
        cn, cn_local = _part(folder, cn_ref, "controlnet", allow_download)
        if cn.endswith(".safetensors"):
            unet_source = config_dir or base
            unet_config = UNet2DConditionModel.load_config(
                unet_source, subfolder="unet", local_files_only=not allow_download)
            controlnet = _single_file_controlnet(Path(cn), unet_config)
            if dtype is not None and dtype != controlnet.dtype:
                controlnet.to(dtype=dtype)
        else:
            controlnet = ControlNetModel.from_pretrained(cn, use_safetensors=True, **common)
        if cn_local:
            parts.append(Path(cn))
    sd_kw = {"controlnet": controlnet, "safety_checker": None,
             "requires_safety_checker": False, **common}
    if base.endswith(".safetensors"):
        if config_dir:
            sd_kw["config"] = config_dir
        pipe = StableDiffusionControlNetPipeline.from_single_file(base, **sd_kw)
    else:
        pipe = StableDiffusionControlNetPipeline.from_pretrained(base, use_safetensors=True, **sd_kw)
    if base_local:
        parts.append(Path(base))
    return pipe, parts


def _single_file_controlnet(path: Path, unet_config: dict):
    """A ControlNet from one .safetensors file, in the original or the diffusers key layout.

    An SD ControlNet mirrors its base UNet's encoder, so the base's configuration describes it;
    the conditioning embedding (input channels and widths) is read from the weights themselves,
    so ControlNets trained on other condition encodings load too. Nothing is fetched.
    """
    from diffusers import ControlNetModel
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint
    from safetensors.torch import load_file

    fields = set(ControlNetModel.extract_init_dict(dict(unet_config))[0])
    config = {k: v for k, v in unet_config.items() if k in fields}
    state = convert_controlnet_checkpoint(load_file(str(path)), config)
    state = {k: v for k, v in state.items() if v is not None}
    conv_in = state.get("controlnet_cond_embedding.conv_in.weight")
    if conv_in is None:
        raise ModelError(f"{path.name}: not a ControlNet checkpoint (no conditioning embedding)")
    blocks = sorted(int(k.split(".")[2]) for k in state
                    if k.startswith("controlnet_cond_embedding.blocks.") and k.endswith(".weight"))
    widths = [conv_in.shape[0]] + [state[f"controlnet_cond_embedding.blocks.{i}.weight"].shape[0]
                                   for i in blocks if i % 2 == 1]
    config.update(conditioning_channels=conv_in.shape[1],
                  conditioning_embedding_out_channels=tuple(widths))
    controlnet = ControlNetModel.from_config(config)
    try:
        controlnet.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path.name}: the ControlNet does not match its base model: "
                         f"{str(exc).splitlines()[0]}") from exc
    return controlnet


def save_pixel_model(folder: str | os.PathLike, spec: ModelSpec, unet, controlnet, scheduler,
                     prior=None) -> Path:
    """Write a pixel model folder: unet/, controlnet/, scheduler/, optionally prior/
    (safetensors) + xraystudio.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if prior is not None:
        prior.save_pretrained(folder / PRIOR_FOLDER, safe_serialization=True)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    controlnet.save_pretrained(folder / "controlnet", safe_serialization=True)
    scheduler.save_pretrained(folder / "scheduler")
    spec.write(folder)
    return folder


class UNetStage:
    """A loaded single-network stage: its UNet, the noise schedule it was trained on, its spec
    and the hash of its weights (what provenance records)."""

    def __init__(self, unet, scheduler_config: dict, spec, weights_hash: str = "") -> None:
        self.unet = unet
        self.scheduler_config = dict(scheduler_config)
        self.spec = spec
        self.weights_hash = weights_hash

    @property
    def device(self):
        return next(self.unet.parameters()).device


def load_unet_stage(folder: Path, what: str, in_channels: int, device: str):
    """(UNet2DModel, scheduler config, weights hash) of a single-network stage folder (``unet/``
    in safetensors, ``scheduler/``), as the edit model and the full-resolution stage keep them;
    a folder that does not load, or whose network takes other inputs than its spec implies,
    raises ModelError."""
    from diffusers import DDPMScheduler, UNet2DModel

    refuse_pickles(folder)
    try:
        unet = UNet2DModel.from_pretrained(folder / "unet", use_safetensors=True, local_files_only=True)
        config = DDPMScheduler.load_config(folder / "scheduler")
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{folder}: the {what} could not be loaded: {exc}") from exc
    if unet.config.in_channels != in_channels:
        raise ModelError(f"{folder}: the {what}'s UNet takes {unet.config.in_channels} input "
                         f"channels, its spec implies {in_channels}")
    return unet.eval().to(device), config, weights_hash([folder / "unet"])
