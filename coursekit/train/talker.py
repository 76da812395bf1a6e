"""Training the whole talking-face model (the paper's image-decoder version).

Three stages, as in the paper (section 4.2):

1. the **AU classifier** learns the five AUs from real lower faces (:mod:`.au_classifier`);
2. **Audio2AU** learns the AUs from MFCC windows (:mod:`.audio2au`);
3. the **talker** (identity encoder, audio encoder, Audio2AU features, fusion, image decoder)
   trains end to end on
   ``1.5 L_rec + 1.5 L_id + 0.07 L_per + 0.02 L_au`` (eq. 11), Adam (lr 2e-4, beta1 0.5),
   while Audio2AU and the AU classifier are fine-tuned with tiny learning rates (1e-6, 1e-7).

:func:`train_pipeline` runs all three and writes ``au_classifier.pt``, ``audio2au.pt`` and
``talker.pt`` (plus CSV logs) into one folder. Every checkpoint is written atomically and
loads with ``torch.load(weights_only=True)``. The end-to-end stage runs on
:class:`~coursekit.train.trainer.Trainer`: its resumable state lives in ``talker/last.pt``
(``resume=True`` continues it), and it runs under ``torchrun`` as well.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..data.dataset import EpochWindows
from ..data.splits import Split, load_split
from ..losses import PerceptualLoss, au_class_weights, au_loss, identity_loss, l1_reconstruction
from ..models.au_classifier import lower_half
from ..models.config import RENDERERS, AUClassifierConfig, DiffusionConfig, TalkerConfig, from_dict
from ..models.talker import Talker
from .au_classifier import AUClassifierTrainConfig, load_au_classifier, train_au_classifier
from ..checkpoint import load_checkpoint, read_checkpoint
from .common import save_checkpoint, seed_everything
from .diffusion import DiffusionTrainConfig, train_diffusion
from .trainer import Trainer, TrainerConfig


@dataclass
class TalkerTrainConfig:
    """End-to-end training settings; the defaults are the paper's (section 4.2).

    ``per_frames``: the perceptual loss (a VGG-19 pass per frame, most of a CPU step's time)
    is computed on this many randomly chosen frames of each batch, an unbiased estimate of the
    full term; None uses every frame.
    ``ckpt_every``, ``grad_accum``, ``amp``, ``num_workers``: :class:`~.trainer.TrainerConfig`'s
    (checkpoints for ``resume`` every so many steps; 1 and "none" are the paper's setting).
    """

    seq_len: int = 16
    batch_size: int = 8
    per_frames: int | None = None
    lr: float = 2e-4
    beta1: float = 0.5
    lr_audio2au: float = 1e-6
    lr_au_classifier: float = 1e-7
    w_rec: float = 1.5
    w_id: float = 1.5
    w_per: float = 0.07
    w_au: float = 0.02
    epochs: int = 20
    max_minutes: float | None = None
    seed: int = 0
    device: str = "cpu"
    ckpt_every: int = 50
    grad_accum: int = 1
    amp: str = "none"
    num_workers: int = 0


def load_talker(path: str | Path, device: str = "cpu") -> tuple[Talker, dict]:
    """A trained talker in eval mode, and its checkpoint (for ``mfcc_stats`` etc.)."""
    loaded = load_checkpoint(path, device, kind="talker")
    return loaded.model, loaded.meta


class TalkerWithJudge(nn.Module):
    """The talker and the AU classifier it fine-tunes, as one module (one DDP unit, one
    resumable state). The classifier stays in eval mode (frozen batch-norm statistics) while
    its weights follow their tiny learning rate.

    ``forward(identity (B, 3, S, S), mfcc (B, T, 12, 28))`` -> ``(frames (B, T, 3, S, S),
    AU logits (B*T, 5) of the generated lower faces or None)``.
    """

    def __init__(self, talker: Talker, clf: nn.Module | None = None):
        super().__init__()
        self.talker, self.clf = talker, clf

    def train(self, mode: bool = True) -> "TalkerWithJudge":
        super().train(mode)
        if self.clf is not None:
            self.clf.eval()
        return self

    def forward(self, identity: torch.Tensor, mfcc: torch.Tensor):
        fake = self.talker(identity, mfcc)["frames"]
        logits = None if self.clf is None else self.clf(lower_half(fake.flatten(0, 1)))
        return fake, logits


def train_talker(root: str | Path, clips: list[dict], out: str | Path, model_cfg: TalkerConfig,
                 cfg: TalkerTrainConfig, *, mfcc_stats, audio2au_state: dict | None = None,
                 au_classifier: str | Path | None = None, progress: bool = True,
                 resume: bool = False, on_step=None) -> Path:
    """End-to-end training of :class:`~coursekit.models.talker.Talker` on ``clips`` with
    :class:`~.trainer.Trainer` (runs under ``torchrun`` too).

    Writes ``out`` (``talker.pt``: ``model``, ``model_config``, ``train_config``,
    ``mfcc_mean``, ``mfcc_std``, ``steps``, ``seconds``; :func:`load_talker` reads it) and
    the per-step log ``out.with_suffix(".csv")``; the resumable state (talker, fine-tuned AU
    classifier, optimizer, RNGs) and the trainer's own log go to ``out.with_suffix("")/``.
    ``resume``: continue from ``out.with_suffix("")/last.pt`` when there is one.
    """
    out = Path(out)
    seed_everything(cfg.seed)
    data = EpochWindows(root, clips, seq_len=cfg.seq_len, seed=cfg.seed,
                        fields=("frames", "identity", "mfcc", "occurrence"),
                        normalize_mfcc=mfcc_stats)
    talker = Talker(model_cfg)
    if talker.audio2au is not None and audio2au_state is not None:
        talker.audio2au.load_state_dict(audio2au_state)
    clf, au_weights = None, None
    if au_classifier is not None and cfg.w_au > 0:
        clf = load_au_classifier(au_classifier)  # the Trainer moves it with the talker
        au_weights = au_class_weights(read_checkpoint(au_classifier)["meta"]["occurrence_rates"])
    model = TalkerWithJudge(talker, clf)

    def param_groups(m: TalkerWithJudge) -> list[dict]:
        groups = [{"params": [p for n, p in m.talker.named_parameters()
                              if not n.startswith("audio2au.")], "lr": cfg.lr}]
        if m.talker.audio2au is not None:
            groups.append({"params": list(m.talker.audio2au.parameters()), "lr": cfg.lr_audio2au})
        if m.clf is not None:
            groups.append({"params": list(m.clf.parameters()), "lr": cfg.lr_au_classifier})
        return groups

    perceptual = None  # made on the Trainer's device (this rank's GPU under torchrun)
    weights = {"rec": cfg.w_rec, "id": cfg.w_id, "per": cfg.w_per, "au": cfg.w_au}

    def step_fn(m, batch: dict, dev: torch.device):
        real = batch["frames"].to(dev)  # (B, T, 3, S, S)
        identity = batch["identity"].to(dev)  # (B, 3, S, S)
        fake, logits = m(identity, batch["mfcc"].to(dev))
        terms = {"rec": l1_reconstruction(fake, real), "id": identity_loss(fake, identity)}
        if perceptual is not None:
            flat_fake, flat_real = fake.flatten(0, 1), real.flatten(0, 1)
            if cfg.per_frames and cfg.per_frames < len(flat_fake):  # global RNG: resumable
                pick = torch.randperm(len(flat_fake))[: cfg.per_frames].to(dev)
                flat_fake, flat_real = flat_fake[pick], flat_real[pick]
            terms["per"] = perceptual(flat_fake, flat_real)
        if logits is not None:
            terms["au"] = au_loss(logits, batch["occurrence"].flatten(0, 1).to(dev), au_weights)
        loss = sum(weights[k] * v for k, v in terms.items())
        return loss, {k: v.detach() for k, v in terms.items()}

    tcfg = TrainerConfig(batch_size=cfg.batch_size, grad_accum=cfg.grad_accum, epochs=cfg.epochs,
                         max_minutes=cfg.max_minutes, lr=cfg.lr, betas=(cfg.beta1, 0.999),
                         amp=cfg.amp, ckpt_every=cfg.ckpt_every, seed=cfg.seed,
                         device=cfg.device, num_workers=cfg.num_workers)
    trainer = Trainer(model, data, tcfg, out.with_suffix(""), step_fn=step_fn,
                      param_groups=param_groups, progress=progress, desc="talker",
                      ddp_kwargs={"find_unused_parameters": True}, on_step=on_step)
    if cfg.w_per > 0:
        perceptual = PerceptualLoss().to(trainer.device)
    if au_weights is not None:
        au_weights = au_weights.to(trainer.device)
    result = trainer.fit(resume=resume)
    if trainer.is_main:
        shutil.copyfile(result["log"], out.with_suffix(".csv"))
        save_checkpoint(out, model=trainer.model.talker.state_dict(),
                        model_config=asdict(model_cfg), train_config=asdict(cfg),
                        mfcc_mean=mfcc_stats[0], mfcc_std=mfcc_stats[1],
                        steps=result["steps"], seconds=result["seconds"])
    return out


@dataclass
class PipelineConfig:
    """Everything :func:`train_pipeline` needs; ``tiny()`` trains on a laptop CPU in minutes.

    ``renderer`` picks how frames are made after the shared pre-training stages: ``"decoder"``
    (the paper's image decoder, :attr:`model` / :attr:`talker`) or ``"diffusion"`` (the
    diffusion renderer, :attr:`diffusion` / :attr:`diffusion_train`). The Audio2AU sizes come
    from the chosen renderer's config.

    ``test_speakers`` are kept out of training entirely, and every ``holdout_every``-th
    utterance of the others is held out (0: none): :func:`pipeline_split`, the split that
    ``coursekit evaluate --test-speakers`` scores too.
    """

    model: TalkerConfig = field(default_factory=TalkerConfig.tiny)
    au_classifier: AUClassifierConfig = field(default_factory=AUClassifierConfig)
    au_classifier_train: AUClassifierTrainConfig = field(default_factory=AUClassifierTrainConfig)
    audio2au_minutes: float = 2.0
    talker: TalkerTrainConfig = field(default_factory=TalkerTrainConfig)
    renderer: str = "decoder"
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig.tiny)
    diffusion_train: DiffusionTrainConfig = field(default_factory=DiffusionTrainConfig.tiny)
    test_speakers: tuple[str, ...] = ()
    holdout_every: int = 5
    seed: int = 0

    def __post_init__(self):
        if self.renderer not in RENDERERS:
            raise ValueError(f"renderer must be one of {RENDERERS}, got {self.renderer!r}")

    @property
    def audio2au_config(self):
        """The Audio2AU sizes of the chosen renderer."""
        return (self.diffusion.talker if self.renderer == "diffusion" else self.model).audio2au

    def set_minutes(self, minutes: float | None) -> None:
        """Set the training budget of the chosen renderer's stage."""
        if self.renderer == "diffusion":
            self.diffusion_train.trainer.max_minutes = minutes
        else:
            self.talker.max_minutes = minutes

    def set_device(self, device: str) -> None:
        self.talker.device = device
        self.diffusion_train.trainer.device = device

    @classmethod
    def from_dict(cls, values: dict) -> "PipelineConfig":
        values = dict(values)
        train = values.pop("diffusion_train", None)
        cfg = from_dict(cls, values)
        if train is not None:
            cfg.diffusion_train = DiffusionTrainConfig.from_dict(train)
        return cfg

    @classmethod
    def tiny(cls, renderer: str = "decoder") -> "PipelineConfig":
        return cls(au_classifier=AUClassifierConfig.tiny(),
                   au_classifier_train=AUClassifierTrainConfig(max_minutes=1.0),
                   audio2au_minutes=1.5,
                   talker=TalkerTrainConfig(seq_len=12, batch_size=6, per_frames=4,
                                            max_minutes=5.5, epochs=1000),
                   renderer=renderer, diffusion=DiffusionConfig.tiny(),
                   diffusion_train=DiffusionTrainConfig.tiny())

    @classmethod
    def paper(cls, renderer: str = "decoder") -> "PipelineConfig":
        return cls(model=TalkerConfig.paper(), au_classifier=AUClassifierConfig.paper(),
                   audio2au_minutes=60.0, talker=TalkerTrainConfig(epochs=20, device="cuda"),
                   renderer=renderer, diffusion=DiffusionConfig.paper(),
                   diffusion_train=DiffusionTrainConfig())


def pipeline_split(root, cfg: PipelineConfig) -> Split:
    """The :class:`~coursekit.data.splits.Split` of the processed dataset ``root`` that
    :func:`train_pipeline` trains on (:func:`coursekit.data.splits.make_split` with the
    config's ``test_speakers`` and ``holdout_every``): ``train``, and ``test`` = the held-out
    utterances plus every clip of the test speakers."""
    return load_split(root, cfg.test_speakers or None, holdout_every=cfg.holdout_every)


def split_for_training(root, cfg: PipelineConfig) -> tuple[list[dict], list[dict]]:
    """``(train, held-out utterances)`` of :func:`pipeline_split`: every 5th utterance of
    each training speaker (sorted by name) is held out; the test speakers' clips are in
    neither list (they are ``pipeline_split(root, cfg).unseen``)."""
    split = pipeline_split(root, cfg)
    return split.train, split.heldout


def train_pipeline(root: str | Path, out: str | Path, cfg: PipelineConfig | None = None, *,
                   progress: bool = True, resume: bool = False) -> dict:
    """All three stages on the processed dataset ``root``; returns the checkpoint paths
    (``au_classifier``, ``audio2au``, ``talker`` or ``diffusion``, and ``generator``: the one
    that makes frames), the train/test clips and the ``split`` (:func:`pipeline_split`; test:
    held-out utterances and the test speakers' clips).

    ``resume``: keep the AU classifier and Audio2AU checkpoints already in ``out`` (each is
    written once, at the end of its stage) and continue the renderer from its last checkpoint.
    """
    from .audio2au import CHECKPOINT_NAME, Audio2AUTrainConfig, train_audio2au

    cfg = cfg or PipelineConfig.tiny()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    split = pipeline_split(root, cfg)
    train, test = split.train, split.test
    paths = {"au_classifier": out / "au_classifier.pt", "audio2au": out / CHECKPOINT_NAME}
    if not (resume and paths["au_classifier"].is_file()):
        train_au_classifier(root, train, paths["au_classifier"], cfg.au_classifier,
                            cfg.au_classifier_train, progress=progress)
    if not (resume and paths["audio2au"].is_file()):
        a2a_cfg = Audio2AUTrainConfig(model=asdict(cfg.audio2au_config),
                                      max_minutes=cfg.audio2au_minutes, seed=cfg.seed,
                                      progress=progress)
        paths["audio2au"] = Path(train_audio2au(root, out, a2a_cfg, clips=train)["checkpoint"])
    ckpt = read_checkpoint(paths["audio2au"])
    stats = (ckpt["meta"]["mfcc_mean"].numpy(), ckpt["meta"]["mfcc_std"].numpy())
    if cfg.renderer == "diffusion":
        paths["diffusion"] = train_diffusion(root, train, out / "diffusion.pt", cfg.diffusion,
                                             cfg.diffusion_train, mfcc_stats=stats,
                                             audio2au_state=ckpt["model"],
                                             progress=progress, resume=resume)
        paths["generator"] = paths["diffusion"]
    else:
        paths["talker"] = train_talker(root, train, out / "talker.pt", cfg.model, cfg.talker,
                                       mfcc_stats=stats, audio2au_state=ckpt["model"],
                                       au_classifier=paths["au_classifier"], progress=progress,
                                       resume=resume)
        paths["generator"] = paths["talker"]
    return {"paths": paths, "train": train, "test": test, "split": split}
