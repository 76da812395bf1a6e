"""One checkpoint format for every model, and one loader.

A checkpoint is a plain ``torch.save`` dict that loads with ``torch.load(weights_only=True)``
(no pickled code: safe to open files from elsewhere)::

    {"kind": "talker",                # which model: a key of KINDS
     "format_version": 2,
     "model_config": {...},           # dataclasses.asdict of the model's config
     "model": state_dict,             # the trained weights
     "ema": state_dict,               # optional: the EMA copy (used for inference when present)
     "meta": {...},                   # what inference needs beside the weights (MFCC statistics,
                                      #   AU priors, the clips it was trained on, the history)
     "training": {...} or None}       # optimizer, step, epoch, RNG states... (resume only)

:func:`load_checkpoint` rebuilds the model of any kind::

    loaded = load_checkpoint("coursekit/assets/tiny/talker.pt")
    loaded.kind, loaded.model, loaded.config, loaded.meta["mfcc_mean"]

Files written before this format (the layouts ``renderer=...``, ``kind="coursekit-..."``
or none, ``state_dict`` or ``model``) are read through :func:`upgrade`; anything else fails
with one line naming the file and what was expected (:class:`CheckpointError`).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

FORMAT_VERSION = 2


class CheckpointError(ValueError):
    """A file that is not a checkpoint of the expected kind (one-line message)."""


# ----------------------------------------------------------------------------- writing


def plain(obj):
    """``obj`` with dataclasses turned into dicts, numpy arrays into tensors, tuples into
    lists, numpy scalars into Python numbers and dict keys into strings (integer keys stay
    integers, as in an optimizer's ``state_dict``): what ``weights_only=True`` can load."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return plain(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {(int(k) if isinstance(k, (int, np.integer)) and not isinstance(k, bool)
                 else str(k)): plain(v)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_checkpoint(path: str | Path, **state) -> Path:
    """Write ``state`` atomically: to a temporary file in the same folder, flushed to disk,
    then renamed over ``path`` (a crash leaves the old or the new file, never half of one).
    Values pass through :func:`plain`. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(plain(state), f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide the file from others
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def model_checkpoint(kind: str, model: nn.Module | dict, model_config, *, meta: dict | None = None,
                     ema: nn.Module | dict | None = None, training: dict | None = None,
                     half: bool = False) -> dict:
    """The checkpoint dict of one model (``half``: floating weights stored in fp16)."""
    if kind not in KINDS:
        raise CheckpointError(f"unknown checkpoint kind {kind!r}; known: {', '.join(sorted(KINDS))}")

    def weights(m):
        sd = m.state_dict() if isinstance(m, nn.Module) else m
        return {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu()
                for k, v in sd.items()}

    ckpt = {"kind": kind, "format_version": FORMAT_VERSION, "model_config": plain(model_config),
            "model": weights(model), "meta": plain(meta or {}), "training": training}
    if ema is not None:
        ckpt["ema"] = weights(ema)
    return ckpt


def save_model(path: str | Path, kind: str, model, model_config, **kwargs) -> Path:
    """:func:`model_checkpoint` written atomically to ``path``."""
    return save_checkpoint(path, **model_checkpoint(kind, model, model_config, **kwargs))


# ----------------------------------------------------------------------------- kinds


@dataclass(frozen=True)
class Kind:
    """How to rebuild one kind of model: ``build(config_dict, meta) -> nn.Module``."""

    name: str
    build: Callable[[dict, dict], nn.Module]
    description: str


def _config(cls, values: dict):
    from .models.config import from_dict

    return from_dict(cls, values)


def _talker(cfg: dict, meta: dict) -> nn.Module:
    from .models.config import TalkerConfig
    from .models.talker import Talker

    return Talker(_config(TalkerConfig, cfg))


def _diffusion(cfg: dict, meta: dict) -> nn.Module:
    from .models.config import DiffusionConfig
    from .models.diffusion import DiffusionTalker

    return DiffusionTalker(_config(DiffusionConfig, cfg))


def _audio2au(cfg: dict, meta: dict) -> nn.Module:
    from .au import AUS
    from .models.audio2au import Audio2AU
    from .models.config import Audio2AUConfig

    return Audio2AU(_config(Audio2AUConfig, cfg), aus=tuple(meta.get("aus", AUS)))


def _au_classifier(cfg: dict, meta: dict) -> nn.Module:
    from .models.au_classifier import AUClassifier
    from .models.config import AUClassifierConfig

    return AUClassifier(_config(AUClassifierConfig, cfg))


def _syncnet(cfg: dict, meta: dict) -> nn.Module:
    from .models.syncnet import SyncNet, SyncNetConfig

    return SyncNet(_config(SyncNetConfig, cfg))


def _motion(cfg: dict, meta: dict) -> nn.Module:
    from .models.motion import MotionConfig, MotionModel

    return MotionModel(_config(MotionConfig, cfg))


def _painter(cfg: dict, meta: dict) -> nn.Module:
    from .models.painter import Painter, PainterConfig

    return Painter(_config(PainterConfig, cfg))


def _landmarks(cfg: dict, meta: dict) -> nn.Module:
    from .models.landmarks import LandmarkConfig, LandmarkPredictor

    return LandmarkPredictor(_config(LandmarkConfig, cfg))


KINDS: dict[str, Kind] = {}


def register(name: str, build: Callable[[dict, dict], nn.Module], description: str) -> None:
    """Make ``name`` loadable by :func:`load_checkpoint` (models register here)."""
    KINDS[name] = Kind(name, build, description)


register("talker", _talker, "the image-decoder talking-face generator")
register("diffusion", _diffusion, "the diffusion renderer")
register("audio2au", _audio2au, "Audio2AU (MFCC windows -> speech AUs)")
register("au_classifier", _au_classifier, "an AU classifier on lower faces (loss or judge)")
register("syncnet", _syncnet, "the lip-sync expert")
register("motion", _motion, "AU intensities -> mouth and jaw landmark motion (the warp renderer)")
register("painter", _painter, "paints the mouth interior a warp cannot make (the warp renderer)")
register("landmarks", _landmarks, "phonemes and/or speech -> mouth and jaw landmarks (Yu et al.)")


# ----------------------------------------------------------------------------- reading

_OLD_KINDS = {"coursekit-audio2au": "audio2au", "coursekit-syncnet": "syncnet"}
_OLD_META = ("mfcc_mean", "mfcc_std", "occurrence_rates", "au_weights", "priors", "history",
             "best_epoch", "train_clips", "val_clips", "clips", "aus", "train_config", "steps",
             "seconds")


def upgrade(ckpt: dict, path: str | Path = "checkpoint") -> dict:
    """A checkpoint dict in the current format (older layouts converted in memory)."""
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a coursekit checkpoint (a {type(ckpt).__name__}, "
                              "expected a dict with 'kind' and 'model')")
    version = ckpt.get("format_version")
    if version == FORMAT_VERSION:
        return ckpt
    if version is not None:
        raise CheckpointError(f"{path}: checkpoint format {version}, this coursekit reads "
                              f"format {FORMAT_VERSION} and older layouts; update coursekit")
    if ckpt.get("kind") == "coursekit-trainer":
        raise CheckpointError(f"{path}: a training state of an older coursekit (no model "
                              "config); restart that training run")
    if "model_config" not in ckpt or not ("model" in ckpt or "state_dict" in ckpt):
        raise CheckpointError(f"{path}: not a coursekit checkpoint (expected 'kind', "
                              "'model_config' and 'model' entries)")
    kind = _OLD_KINDS.get(ckpt.get("kind"))
    renderer = ckpt.get("renderer")
    if renderer is not None and renderer not in ("decoder", "diffusion"):
        raise CheckpointError(f"{path}: unknown renderer {renderer!r}; known: decoder, diffusion")
    if kind is None and renderer is not None:
        kind = {"decoder": "talker", "diffusion": "diffusion"}[renderer]
    if kind is None:  # no kind: tell a talker from an AU classifier by its config
        kind = "talker" if "fusion" in ckpt["model_config"] else "au_classifier"
    meta = {k: ckpt[k] for k in _OLD_META if k in ckpt}
    return {"kind": kind, "format_version": FORMAT_VERSION, "model_config": ckpt["model_config"],
            "model": ckpt.get("model", ckpt.get("state_dict")), "meta": meta, "training": None}


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The checkpoint dict at ``path`` (``weights_only=True``), in the current format.

    Raises FileNotFoundError for a missing file and :class:`CheckpointError` (one line
    naming the file) for anything that is not a readable coursekit checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated, not a torch file, pickled code
        first = str(err).strip().splitlines()[0][:120] if str(err).strip() else ""
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__}"
                              f"{': ' + first if first else ''})") from None
    _READ[str(path.resolve())] = None
    return upgrade(ckpt, path)


_READ: dict[str, None] = {}
"""Checkpoint files read in this process, in order (:func:`files_read`)."""


def files_read() -> list[str]:
    """The absolute paths of the checkpoint files :func:`read_checkpoint` has read in this
    process, first read first (a notebook's record of the checkpoints it used)."""
    return list(_READ)


@dataclass
class Loaded:
    """A model rebuilt from a checkpoint, in eval mode on its device."""

    kind: str
    model: nn.Module
    config: object
    meta: dict = field(default_factory=dict)
    path: str = ""
    checkpoint: dict = field(default_factory=dict, repr=False)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", *,
                    kind: str | tuple[str, ...] | None = None, ema: bool = True) -> Loaded:
    """Rebuild the model stored at ``path`` (any kind of :data:`KINDS`) in eval mode.

    ``kind``: the kind (or kinds) the caller expects; another kind is a
    :class:`CheckpointError` naming the file and both kinds. ``ema``: use the EMA weights
    when the checkpoint has them. Weights stored in fp16 load into the fp32 model.
    """
    ckpt = read_checkpoint(path)
    found = ckpt["kind"]
    wanted = (kind,) if isinstance(kind, str) else kind
    if wanted and found not in wanted:
        raise CheckpointError(f"{path}: a {found!r} checkpoint, expected {' or '.join(map(repr, wanted))}")
    if found not in KINDS:
        raise CheckpointError(f"{path}: unknown checkpoint kind {found!r}; known: "
                              f"{', '.join(sorted(KINDS))}")
    meta = ckpt.get("meta") or {}
    try:
        model = KINDS[found].build(ckpt["model_config"], meta)
        weights = ckpt["ema"] if ema and ckpt.get("ema") else ckpt["model"]
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in weights.items()})
    except (TypeError, ValueError, RuntimeError, KeyError) as err:
        first = str(err).strip().splitlines()[0][:160]
        raise CheckpointError(f"{path}: its {found!r} weights do not fit the model its config "
                              f"describes ({first})") from None
    config = getattr(model, "cfg", ckpt["model_config"])
    return Loaded(found, model.to(device).eval(), config, meta, str(path), ckpt)
