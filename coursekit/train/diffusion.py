"""Training the diffusion renderer (the newest version of the method).

Stages, like the image-decoder model: the AU classifier and Audio2AU are pre-trained first
(:mod:`.au_classifier`, :mod:`.audio2au`); then the renderer trains with the DDPM objective.
Each step, for a batch of clip windows ``(B, T)``:

1. the condition is computed for every frame (Audio2AU, audio encoder, mask generator,
   Aud-face encoder, TCSAN): the fusion sees the whole window;
2. ``per_frames`` frames of each clip are noised at random timesteps and the UNet predicts
   the target (``v`` by default) from ``[x_t, I_id, Id-face]`` and the frame's condition;
3. loss = region-weighted MSE (pixels of the soft mouth prior count ``mouth_weight`` times
   more: the mouth is a small part of the face but all of the speech) + the mask
   regularisers (:func:`coursekit.losses.mask_losses`, small weights);
4. a share ``cond_drop`` of conditions is replaced by a learned null condition, so
   classifier-free guidance is available at sampling;
5. a share ``au_drive`` of the clips is driven by their ground-truth AU intensities instead
   of the audio (audio features zeroed), so at inference the mouth can also be set with AU
   sliders (:meth:`~coursekit.models.diffusion.DiffusionTalker.sample` with ``aus``).

Data: an *epoch* is one pass over every frame window of the training clips
(:class:`~coursekit.data.windows.FrameWindows`: ``ceil(n / seq_len)`` windows tile a clip of
``n`` frames, their inner starts jittered per epoch), not one random window per clip.
``seq_len`` and TCSAN's receptive field (:func:`coursekit.models.tcsan.receptive_field`:
61 frames for the paper's 4 levels, 29 for the tiny 3): a frame closer than half of it to a
window's edge sees zero padding where, on a whole clip at inference, it would see real
frames. The paper preset trains on 64-frame windows (at least the receptive field: the
central frames get the whole context; two windows cover a 75-frame GRID clip), which is
cheap here because only ``per_frames`` frames of each window go through the UNet; the tiny
preset keeps 12 for cheap CPU steps.

Optimisation, checkpoints (``kind="diffusion"``, with the EMA copy), resume, mixed precision
and DDP are :class:`.Trainer`'s; :class:`DiffusionTrainConfig` is a
:class:`~.trainer.TrainerConfig` with the renderer's own fields. The exported file holds the
EMA weights (what sampling uses) and ``meta`` (``mfcc_mean``, ``mfcc_std``, ``train_config``,
``steps``, ``seconds``); :func:`load_renderer` and :func:`coursekit.checkpoint.load_checkpoint`
read it (and the resumable ``last.pt`` as well).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import torch

from ..checkpoint import load_checkpoint
from ..data.warped import WARP_FIELDS, batch_warp_inputs
from ..data.windows import FrameWindows
from ..losses import mask_losses, region_weighted_mse
from ..models.config import DiffusionConfig, from_dict
from ..models.diffusion import DiffusionTalker
from ..models.disentangle import mouth_prior
from ..presets import Presets
from .trainer import Trainer, TrainerConfig


def config_from_dict(cls, values: dict, renamed: dict | None = None):
    """A :class:`~.trainer.TrainerConfig` subclass from a plain dict, reading the older
    layouts too: a nested ``"trainer"`` dict (the optimisation settings) is merged in and
    ``renamed`` maps old field names to ``new_name`` or ``(new_name, convert)``."""
    values = dict(values)
    values.update(values.pop("trainer", None) or {})
    for old, new in (renamed or {}).items():
        if old in values:
            name, convert = new if isinstance(new, tuple) else (new, lambda v: v)
            values[name] = convert(values.pop(old))
    return from_dict(cls, values)


@dataclass
class DiffusionTrainConfig(Presets, TrainerConfig):
    """Renderer training: :class:`~.trainer.TrainerConfig`'s optimisation (batch of clip
    windows, steps, minutes, EMA, AMP, device, ...) with the paper preset's defaults, plus:

    seq_len: frames per clip window (the fusion's temporal context in training; see the
        module docstring for its relation to TCSAN's receptive field).
    per_frames: frames per clip that go through the UNet each step (None: all).
    lr_audio2au: fine-tuning rate of the pre-trained Audio2AU (0 freezes it).
    mouth_weight: loss weight of the mouth prior's centre relative to the rest of the face.
    w_prior, w_area, w_tv: weights of the mask regularisers.
    cond_drop: share of null conditions (classifier-free guidance).
    au_drive: share of clips driven by their ground-truth AUs instead of the audio (so the
        mouth can be edited with AU sliders at inference).

    ``paper()``: GPU settings for the paper-size renderer (112 px), the defaults.
    ``tiny()``: CPU settings for the samples at 64 px.
    """

    TINY: ClassVar[dict] = dict(batch_size=4, lr=5e-4, ema_decay=0.995, max_minutes=10.0,
                                ckpt_every=100, amp="none", device="cpu", seq_len=12,
                                per_frames=4)

    batch_size: int = 8
    max_steps: int | None = 100_000
    ema_decay: float | None = 0.999
    ckpt_every: int = 1000
    amp: str = "bf16"
    seq_len: int = 64               # frames per clip window
    per_frames: int | None = 8
    lr_audio2au: float = 0.0
    mouth_weight: float = 4.0       # denoising loss weight at the mouth
    w_prior: float = 0.5
    w_area: float = 1.0
    w_tv: float = 0.05              # total variation of the mask
    cond_drop: float = 0.1
    au_drive: float = 0.25

    @classmethod
    def from_dict(cls, values: dict) -> "DiffusionTrainConfig":
        """From ``dataclasses.asdict`` output (also the older ``{"trainer": {...}, ...}``)."""
        return config_from_dict(cls, values)


AU_SCALE = 5.0
"""AU intensities (0-5, OpenFace's scale) are divided by this to drive the renderer."""


def make_step_fn(cfg: DiffusionTrainConfig, image_size: int):
    """The :class:`.Trainer` step function: ``(model, batch, device) -> (loss, terms)``."""
    prior = torch.from_numpy(mouth_prior(image_size))
    weight = 1 + (cfg.mouth_weight - 1) * prior

    def step_fn(model, batch, device):
        aus = (batch["aus"].to(device) / AU_SCALE).clamp(0, 1)
        out = model(batch["identity"].to(device), batch["mfcc"].to(device),
                    batch["frames"].to(device), per_frames=cfg.per_frames, cond_drop=cfg.cond_drop,
                    aus=aus, au_drive=cfg.au_drive, **batch_warp_inputs(batch, device))
        terms = {"denoise": region_weighted_mse(out["pred"], out["target"], weight.to(device))}
        terms.update(mask_losses(out["mask"].flatten(0, 1), prior.to(device)))
        loss = (terms["denoise"] + cfg.w_prior * terms["prior"] + cfg.w_area * terms["area"]
                + cfg.w_tv * terms["tv"])
        return loss, {k: float(v.detach()) for k, v in terms.items()}

    return step_fn


def diffusion_trainer(root: str | Path, clips: list[dict], run_dir: str | Path,
                      model_cfg: DiffusionConfig, cfg: DiffusionTrainConfig, *, mfcc_stats,
                      audio2au_state: dict | None = None, progress: bool = True,
                      on_step=None) -> Trainer:
    """The :class:`.Trainer` of a new :class:`DiffusionTalker` on every frame window of
    ``clips`` (``kind="diffusion"``, ``meta``: the MFCC statistics and ``train_config``);
    its resumable state goes to ``run_dir/last.pt``. A ``motion="warp"`` renderer gets each
    frame's warped identity and mouth mask from the clip's tracked landmarks."""
    torch.manual_seed(cfg.seed)
    warp = WARP_FIELDS if model_cfg.motion == "warp" else ()
    data = FrameWindows(root, clips, seq_len=cfg.seq_len, seed=cfg.seed,
                        fields=("frames", "identity", "mfcc", "aus", *warp),
                        normalize_mfcc=mfcc_stats)
    model = DiffusionTalker(model_cfg)
    if model.audio2au is not None:
        if audio2au_state is not None:
            model.audio2au.load_state_dict(audio2au_state)
        if cfg.lr_audio2au <= 0:
            model.freeze_audio2au()

    def groups(m):
        main = [p for n, p in m.named_parameters() if not n.startswith("audio2au.") and p.requires_grad]
        extra = [p for p in (m.audio2au.parameters() if m.audio2au is not None else [])
                 if p.requires_grad]
        return [{"params": main}] + ([{"params": extra, "lr": cfg.lr_audio2au}] if extra else [])

    meta = {"mfcc_mean": mfcc_stats[0], "mfcc_std": mfcc_stats[1], "train_config": asdict(cfg)}
    return Trainer(model, data, cfg, run_dir, param_groups=groups,
                   step_fn=make_step_fn(cfg, model_cfg.talker.image_size), kind="diffusion",
                   model_config=model_cfg, meta=meta, progress=progress, desc="diffusion",
                   on_step=on_step)


def train_diffusion(root: str | Path, clips: list[dict], out: str | Path,
                    model_cfg: DiffusionConfig, cfg: DiffusionTrainConfig, *, mfcc_stats,
                    audio2au_state: dict | None = None, resume: bool = False,
                    progress: bool = True, on_step=None, half: bool = False) -> Path:
    """Train a :class:`DiffusionTalker` on ``clips`` of the processed dataset ``root``.

    Writes ``out`` (e.g. ``diffusion.pt``: the EMA weights, in fp16 with ``half``; the
    config; ``meta`` with the MFCC statistics) and keeps the resumable state in the folder
    ``out`` without suffix (``last.pt``, ``log.csv``). ``resume``: continue from there.
    """
    out = Path(out)
    trainer = diffusion_trainer(root, clips, out.with_suffix(""), model_cfg, cfg,
                                mfcc_stats=mfcc_stats, audio2au_state=audio2au_state,
                                progress=progress, on_step=on_step)
    trainer.fit(resume=resume)
    if trainer.is_main:
        trainer.export(out, half=half)
    return out


def load_renderer(path: str | Path, device: str = "cpu") -> tuple[DiffusionTalker, dict]:
    """A trained diffusion renderer (EMA weights) in eval mode, and its checkpoint's meta
    (``mfcc_mean``, ``mfcc_std``, ``steps``, ``seconds``)."""
    loaded = load_checkpoint(path, device, kind="diffusion")
    return loaded.model, loaded.meta
