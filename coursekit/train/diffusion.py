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

Optimisation, checkpoints, resume, EMA, mixed precision and DDP are :class:`.Trainer`'s. The
exported checkpoint holds the EMA weights (what sampling uses) with ``renderer="diffusion"``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..data.dataset import EpochWindows
from ..losses import mask_losses, region_weighted_mse
from ..models.config import DiffusionConfig, from_dict
from ..models.diffusion import DiffusionTalker
from ..models.disentangle import mouth_prior
from ..checkpoint import load_checkpoint
from .common import save_checkpoint
from .trainer import Trainer, TrainerConfig


@dataclass
class DiffusionTrainConfig:
    """Renderer training settings (see the module docstring).

    trainer: optimisation (batch of clips, steps, minutes, EMA, AMP, ...).
    seq_len: frames per clip window (the fusion's temporal context in training).
    per_frames: frames per clip that go through the UNet each step (None: all).
    lr_audio2au: fine-tuning rate of the pre-trained Audio2AU (0 freezes it).
    mouth_weight: loss weight of the mouth prior's centre relative to the rest of the face.
    w_prior, w_area, w_tv: weights of the mask regularisers.
    cond_drop: share of null conditions (classifier-free guidance).
    au_drive: share of clips driven by their ground-truth AUs instead of the audio (so the
        mouth can be edited with AU sliders at inference).
    """

    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(
        batch_size=8, lr=2e-4, ema_decay=0.999, max_steps=100_000, ckpt_every=1000,
        amp="bf16", device="cuda"))
    seq_len: int = 16
    per_frames: int | None = 8
    lr_audio2au: float = 0.0
    mouth_weight: float = 4.0
    w_prior: float = 0.5
    w_area: float = 1.0
    w_tv: float = 0.05
    cond_drop: float = 0.1
    au_drive: float = 0.25

    @classmethod
    def tiny(cls) -> "DiffusionTrainConfig":
        """CPU settings for the samples at 64 px."""
        return cls(trainer=TrainerConfig(batch_size=4, lr=5e-4, ema_decay=0.995, max_steps=100_000,
                                         max_minutes=10.0, ckpt_every=100, device="cpu"),
                   seq_len=12, per_frames=4)

    @classmethod
    def from_dict(cls, values: dict) -> "DiffusionTrainConfig":
        values = dict(values)
        trainer = values.pop("trainer", None)
        cfg = from_dict(cls, values)
        if trainer is not None:
            cfg.trainer = from_dict(TrainerConfig, trainer)
        return cfg


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
                    aus=aus, au_drive=cfg.au_drive)
        terms = {"denoise": region_weighted_mse(out["pred"], out["target"], weight.to(device))}
        terms.update(mask_losses(out["mask"].flatten(0, 1), prior.to(device)))
        loss = (terms["denoise"] + cfg.w_prior * terms["prior"] + cfg.w_area * terms["area"]
                + cfg.w_tv * terms["tv"])
        return loss, {k: float(v.detach()) for k, v in terms.items()}

    return step_fn


def train_diffusion(root: str | Path, clips: list[dict], out: str | Path,
                    model_cfg: DiffusionConfig, cfg: DiffusionTrainConfig, *, mfcc_stats,
                    audio2au_state: dict | None = None, resume: bool = False,
                    progress: bool = True, on_step=None) -> Path:
    """Train a :class:`DiffusionTalker` on ``clips`` of the processed dataset ``root``.

    Writes ``out`` (e.g. ``diffusion.pt``: EMA weights, configs, MFCC statistics) and keeps the
    resumable state in the folder ``out`` without suffix (``last.pt``, ``log.csv``).
    """
    out = Path(out)
    torch.manual_seed(cfg.trainer.seed)
    data = EpochWindows(root, clips, seq_len=cfg.seq_len, seed=cfg.trainer.seed,
                        fields=("frames", "identity", "mfcc", "aus"), normalize_mfcc=mfcc_stats)
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

    trainer = Trainer(model, data, cfg.trainer, out.with_suffix(""), param_groups=groups,
                      step_fn=make_step_fn(cfg, model_cfg.talker.image_size), progress=progress,
                      desc="diffusion", on_step=on_step)
    result = trainer.fit(resume=resume)
    if trainer.is_main:
        weights = (trainer.ema or trainer.model).state_dict()
        save_checkpoint(out, renderer="diffusion", model=weights, model_config=asdict(model_cfg),
                        train_config=asdict(cfg), mfcc_mean=mfcc_stats[0], mfcc_std=mfcc_stats[1],
                        steps=result["steps"], seconds=result["seconds"])
    return out


def load_renderer(path: str | Path, device: str = "cpu") -> tuple[DiffusionTalker, dict]:
    """A trained diffusion renderer (EMA weights) in eval mode, and its checkpoint's meta
    (``mfcc_mean``, ``mfcc_std``)."""
    loaded = load_checkpoint(path, device, kind="diffusion")
    return loaded.model, loaded.meta
