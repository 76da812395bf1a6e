"""Training the whole talking-face model (the paper's image-decoder version).

Three stages, as in the paper (section 4.2):

1. the **AU classifier** learns the five AUs from real lower faces (:mod:`.au_classifier`);
2. **Audio2AU** learns the AUs from MFCC windows (:mod:`.audio2au`);
3. the **talker** (identity encoder, audio encoder, Audio2AU features, fusion, image decoder)
   trains end to end on :class:`coursekit.losses.TalkerLoss`,
   ``1.5 L_rec + 1.5 L_id + 0.07 L_per + 0.02 L_au`` (eq. 11), Adam (lr 2e-4, beta1 0.5),
   while Audio2AU and the AU classifier are fine-tuned with tiny learning rates (1e-6, 1e-7).

Data of stage 3: an *epoch* is one pass over every frame window of the training clips
(:class:`~coursekit.data.windows.FrameWindows`: ``ceil(n / seq_len)`` windows tile a clip of
``n`` frames, their inner starts jittered per epoch), not one random window per clip.
``seq_len`` and TCSAN's receptive field (:func:`coursekit.models.tcsan.receptive_field`: 61
frames for the paper's 4 levels, 29 for the tiny 3): a frame closer than half of it to a
window's edge sees zero padding where, on a whole clip at inference, it would see real
frames. The paper preset trains on 64-frame windows (at least the receptive field, so the
central frames get the whole context; two windows cover a 75-frame GRID clip); the tiny
preset keeps 12-frame windows so that a CPU step stays cheap (every frame goes through the
decoder), trading context at the window edges for more steps.

:func:`train_pipeline` runs all three and writes ``au_classifier.pt``, ``audio2au.pt`` and
``talker.pt`` (or ``diffusion.pt``, :mod:`.diffusion`) plus CSV logs into one folder, every
stage on :attr:`PipelineConfig`'s device. The end-to-end stage runs on
:class:`~coursekit.train.trainer.Trainer` (``kind="talker"``; it runs under ``torchrun`` as
well): its resumable state (the talker with its fine-tuned AU classifier, for ``resume``
only) lives in ``talker/last.pt``; the exported ``talker.pt`` holds the talker alone and
``meta`` (``mfcc_mean``, ``mfcc_std``, ``train_config``, ``steps``, ``seconds``) and loads with
:func:`load_talker` / :func:`coursekit.checkpoint.load_checkpoint`.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from ..checkpoint import load_checkpoint, read_checkpoint
from ..data.splits import Split, load_split
from ..data.flow import FLOW_FIELDS
from ..data.warped import WARP_FIELDS, batch_warp_inputs
from ..data.windows import FrameWindows
from ..losses import TalkerLoss, TalkerLossWeights, au_class_weights
from ..models.au_classifier import lower_half
from ..models.config import RENDERERS, AUClassifierConfig, DiffusionConfig, TalkerConfig, from_dict
from ..models.talker import Talker
from ..presets import Presets
from .au_classifier import AUClassifierTrainConfig, load_au_classifier, train_au_classifier
from .common import seed_everything
from .diffusion import DiffusionTrainConfig, config_from_dict, train_diffusion
from .trainer import Trainer, TrainerConfig


@dataclass
class TalkerTrainConfig(Presets, TrainerConfig):
    """End-to-end training: :class:`~.trainer.TrainerConfig`'s optimisation with the paper's
    defaults (section 4.2: batch 8, Adam lr 2e-4, betas (0.5, 0.999), 20 epochs), plus:

    seq_len: frames per clip window (see the module docstring for its relation to TCSAN's
        receptive field). per_frames: the perceptual loss (a VGG-19 pass per frame, most of
        a CPU step's time) is computed on this many randomly chosen real frames of each
        batch, an unbiased estimate of the full term; None uses every frame.
    lr_audio2au, lr_au_classifier: fine-tuning rates of the pre-trained parts.
    w_rec, w_id, w_per, w_au: the weights of eq. 11 (:class:`coursekit.losses.TalkerLoss`).
    w_temp: Face2Vid's temporal loss (:func:`coursekit.losses.temporal_loss`; used by a
        ``temporal="flow"`` talker only).

    ``paper()``: the paper's settings (the defaults), for a GPU. ``tiny()``: a CPU budget
    for the samples at 64 px: 12-frame windows, 6 a batch, the perceptual term on 4 frames,
    5.5 minutes, and a faster optimiser (lr 1e-3 with decoupled weight decay 0.1: the
    decoder's batch norms make most of its weights scale-free, so their norms only grow
    without the decay).
    """

    TINY: ClassVar[dict] = dict(seq_len=12, batch_size=6, per_frames=4, epochs=1000,
                                max_minutes=5.5, device="cpu", lr=1e-3, weight_decay=0.1)

    batch_size: int = 8
    epochs: int = 20
    betas: tuple[float, float] = (0.5, 0.999)
    ckpt_every: int = 50
    seq_len: int = 64
    per_frames: int | None = None
    lr_audio2au: float = 1e-6
    lr_au_classifier: float = 1e-7
    w_rec: float = 1.5              # eq. 11: reconstruction
    w_id: float = 1.5
    w_per: float = 0.07
    w_au: float = 0.02
    w_temp: float = 0.0

    @classmethod
    def from_dict(cls, values: dict) -> "TalkerTrainConfig":
        """From ``dataclasses.asdict`` output (an older ``beta1`` is read as ``betas``)."""
        return config_from_dict(cls, values, {"beta1": ("betas", lambda b: (b, 0.999))})

    @property
    def loss_weights(self) -> TalkerLossWeights:
        return TalkerLossWeights(rec=self.w_rec, id=self.w_id, per=self.w_per, au=self.w_au,
                                 temp=self.w_temp)


def load_talker(path: str | Path, device: str = "cpu") -> tuple[Talker, dict]:
    """A trained talker in eval mode, and its checkpoint's meta (``mfcc_mean``, ``mfcc_std``,
    ``steps``, ...)."""
    loaded = load_checkpoint(path, device, kind="talker")
    return loaded.model, loaded.meta


class TalkerWithJudge(nn.Module):
    """The talker and the AU classifier it fine-tunes, as one module (one DDP unit, one
    resumable state). The classifier stays in eval mode (frozen batch-norm statistics) while
    its weights follow their tiny learning rate.

    ``forward(identity (B, 3, S, S), mfcc (B, T, 12, 28), **warp)`` -> ``(frames (B, T, 3,
    S, S), AU logits (B, T, 5) of the generated lower faces or None)``; ``warp``: the
    ``warped`` and ``mouth_mask`` of a ``motion="warp"`` talker.
    """

    def __init__(self, talker: Talker, clf: nn.Module | None = None):
        super().__init__()
        self.talker, self.clf = talker, clf

    def train(self, mode: bool = True) -> "TalkerWithJudge":
        super().train(mode)
        if self.clf is not None:
            self.clf.eval()
        return self

    def forward(self, identity: torch.Tensor, mfcc: torch.Tensor, **warp):
        fake = self.talker(identity, mfcc, **warp)["frames"]
        if self.clf is None:
            return fake, None
        logits = self.clf(lower_half(fake.flatten(0, 1)))
        return fake, logits.reshape(*fake.shape[:2], -1)


def talker_trainer(root: str | Path, clips: list[dict], run_dir: str | Path,
                   model_cfg: TalkerConfig, cfg: TalkerTrainConfig, *, mfcc_stats,
                   audio2au_state: dict | None = None, au_classifier: str | Path | None = None,
                   progress: bool = True, on_step=None) -> Trainer:
    """The :class:`~.trainer.Trainer` of a new :class:`TalkerWithJudge` (the AU classifier
    checkpoint ``au_classifier`` is fine-tuned when given and ``w_au > 0``) on every frame
    window of ``clips``, with :class:`~coursekit.losses.TalkerLoss`; ``kind="talker"``,
    ``meta``: the MFCC statistics and ``train_config``; resumable state in ``run_dir``.
    A ``motion="warp"`` talker gets each frame's warped identity and mouth mask from the
    clip's tracked landmarks (teacher forcing); a ``temporal="flow"`` one also the flow of the
    warped identity and each real frame's predecessor moved along it (teacher forcing)."""
    seed_everything(cfg.seed)
    warp = WARP_FIELDS if model_cfg.motion == "warp" else ()
    temporal = model_cfg.temporal == "flow"
    warp += FLOW_FIELDS if temporal else ()
    data = FrameWindows(root, clips, seq_len=cfg.seq_len, seed=cfg.seed,
                        fields=("frames", "identity", "mfcc", "occurrence", *warp),
                        normalize_mfcc=mfcc_stats)
    talker = Talker(model_cfg)
    if talker.audio2au is not None and audio2au_state is not None:
        talker.audio2au.load_state_dict(audio2au_state)
    clf, au_weights = None, None
    if au_classifier is not None and cfg.w_au > 0:
        clf = load_au_classifier(au_classifier)  # the Trainer moves it with the talker
        au_weights = au_class_weights(read_checkpoint(au_classifier)["meta"]["occurrence_rates"])
    criterion = TalkerLoss(au_weights, cfg.loss_weights, per_frames=cfg.per_frames)
    logged = [k for k, w in asdict(cfg.loss_weights).items()
              if w != 0 and (k != "au" or clf is not None) and (k != "temp" or temporal)]

    def param_groups(m: TalkerWithJudge) -> list[dict]:
        groups = [{"params": [p for n, p in m.talker.named_parameters()
                              if not n.startswith("audio2au.")], "lr": cfg.lr}]
        if m.talker.audio2au is not None:
            groups.append({"params": list(m.talker.audio2au.parameters()), "lr": cfg.lr_audio2au})
        if m.clf is not None:
            groups.append({"params": list(m.clf.parameters()), "lr": cfg.lr_au_classifier})
        return groups

    def step_fn(m, batch: dict, dev: torch.device):
        real, identity = batch["frames"].to(dev), batch["identity"].to(dev)  # (B, T, 3, S, S)
        inputs = batch_warp_inputs(batch, dev)
        if temporal:
            inputs["previous"] = batch["previous"].to(dev)
        fake, logits = m(identity, batch["mfcc"].to(dev), **inputs)
        occurrence = batch["occurrence"].to(dev) if logits is not None else None
        flow = batch["flow"].to(dev) if temporal else None
        terms = criterion(fake, real, identity, logits, occurrence, batch["mask"].to(dev),
                          flow, inputs.get("mouth_mask"))
        return terms["total"], {k: terms[k].detach() for k in logged}

    meta = {"mfcc_mean": mfcc_stats[0], "mfcc_std": mfcc_stats[1], "train_config": asdict(cfg)}
    trainer = Trainer(TalkerWithJudge(talker, clf), data, cfg, run_dir, step_fn=step_fn,
                      kind="talker", model_config=model_cfg, meta=meta,
                      param_groups=param_groups, progress=progress, desc="talker",
                      ddp_kwargs={"find_unused_parameters": True}, on_step=on_step)
    criterion.to(trainer.device)  # this rank's GPU under torchrun
    return trainer


def train_talker(root: str | Path, clips: list[dict], out: str | Path, model_cfg: TalkerConfig,
                 cfg: TalkerTrainConfig, *, mfcc_stats, audio2au_state: dict | None = None,
                 au_classifier: str | Path | None = None, progress: bool = True,
                 resume: bool = False, on_step=None, half: bool = False) -> Path:
    """End-to-end training of :class:`~coursekit.models.talker.Talker` on ``clips``
    (:func:`talker_trainer`; runs under ``torchrun`` too).

    Writes ``out`` (``talker.pt``: the talker's weights, or its EMA copy's when
    ``cfg.ema_decay`` is set, in fp16 with ``half``; :func:`load_talker` reads it) and the
    per-step log ``out.with_suffix(".csv")``; the resumable state (talker, fine-tuned AU
    classifier, optimizer, RNGs) and the trainer's own log go to ``out.with_suffix("")/``.
    ``resume``: continue from ``out.with_suffix("")/last.pt`` when there is one.
    """
    out = Path(out)
    trainer = talker_trainer(root, clips, out.with_suffix(""), model_cfg, cfg,
                             mfcc_stats=mfcc_stats, audio2au_state=audio2au_state,
                             au_classifier=au_classifier, progress=progress, on_step=on_step)
    result = trainer.fit(resume=resume)
    if trainer.is_main:
        shutil.copyfile(result["log"], out.with_suffix(".csv"))
        trainer.export(out, model=(trainer.ema or trainer.model).talker, half=half)
    return out


@dataclass
class PipelineConfig:
    """Everything :func:`train_pipeline` needs; ``tiny()`` trains on a laptop CPU in minutes.

    ``renderer`` picks how frames are made after the shared pre-training stages: ``"decoder"``
    (the paper's image decoder, :attr:`model` / :attr:`talker`) or ``"diffusion"`` (the
    diffusion renderer, :attr:`diffusion` / :attr:`diffusion_train`). The Audio2AU sizes come
    from the chosen renderer's config; ``audio2au_minutes`` and ``audio2au_device`` are its
    pre-training's budget and device. ``half``: the renderer's exported weights in fp16.

    ``test_speakers`` are kept out of training entirely, and every ``holdout_every``-th
    utterance of the others is held out (0: none): :func:`pipeline_split`, the split that
    ``coursekit evaluate --test-speakers`` scores too.
    """

    model: TalkerConfig = field(default_factory=TalkerConfig.tiny)
    au_classifier: AUClassifierConfig = field(default_factory=AUClassifierConfig)
    au_classifier_train: AUClassifierTrainConfig = field(default_factory=AUClassifierTrainConfig)
    audio2au_minutes: float | None = 2.0
    audio2au_device: str = "auto"
    talker: TalkerTrainConfig = field(default_factory=TalkerTrainConfig)
    renderer: str = "decoder"
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig.tiny)
    diffusion_train: DiffusionTrainConfig = field(default_factory=DiffusionTrainConfig.tiny)
    test_speakers: tuple[str, ...] = ()
    holdout_every: int = 5
    seed: int = 0
    half: bool = False

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
            self.diffusion_train.max_minutes = minutes
        else:
            self.talker.max_minutes = minutes

    def set_device(self, device: str) -> None:
        """Run every stage (AU classifier, Audio2AU, talker or renderer) on ``device``."""
        self.au_classifier_train.device = device
        self.audio2au_device = device
        self.talker.device = device
        self.diffusion_train.device = device

    @classmethod
    def from_dict(cls, values: dict) -> "PipelineConfig":
        """From ``dataclasses.asdict`` output, e.g. a JSON file (older layouts of the
        training configs are read too)."""
        values = dict(values)
        stages = {name: values.pop(name, None) for name in ("talker", "diffusion_train")}
        cfg = from_dict(cls, values)
        if stages["talker"] is not None:
            cfg.talker = TalkerTrainConfig.from_dict(stages["talker"])
        if stages["diffusion_train"] is not None:
            cfg.diffusion_train = DiffusionTrainConfig.from_dict(stages["diffusion_train"])
        return cfg

    @classmethod
    def tiny(cls, renderer: str = "decoder") -> "PipelineConfig":
        return cls(au_classifier=AUClassifierConfig.tiny(),
                   au_classifier_train=replace(AUClassifierTrainConfig.tiny(), max_minutes=1.0),
                   audio2au_minutes=1.5, audio2au_device="cpu", talker=TalkerTrainConfig.tiny(),
                   renderer=renderer, diffusion=DiffusionConfig.tiny(),
                   diffusion_train=DiffusionTrainConfig.tiny())

    @classmethod
    def paper(cls, renderer: str = "decoder") -> "PipelineConfig":
        """The paper's sizes and settings; the AU classifier runs its epochs (no time cap)
        and every stage picks the GPU when there is one (``set_device`` to choose)."""
        return cls(model=TalkerConfig.paper(), au_classifier=AUClassifierConfig.paper(),
                   au_classifier_train=AUClassifierTrainConfig.paper(),
                   audio2au_minutes=60.0, talker=TalkerTrainConfig.paper(), renderer=renderer,
                   diffusion=DiffusionConfig.paper(), diffusion_train=DiffusionTrainConfig.paper())


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
    written once, at the end of its stage) and continue the stage that was interrupted from
    its last checkpoint.
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
                            cfg.au_classifier_train, progress=progress, resume=resume)
    if not (resume and paths["audio2au"].is_file()):
        a2a_cfg = Audio2AUTrainConfig(model=asdict(cfg.audio2au_config),
                                    max_minutes=cfg.audio2au_minutes, seed=cfg.seed,
                                    device=cfg.audio2au_device, progress=progress)
        paths["audio2au"] = Path(train_audio2au(root, out, a2a_cfg, clips=train,
                                              resume=resume)["checkpoint"])
    ckpt = read_checkpoint(paths["audio2au"])
    stats = (ckpt["meta"]["mfcc_mean"].numpy(), ckpt["meta"]["mfcc_std"].numpy())
    if cfg.renderer == "diffusion":
        paths["diffusion"] = train_diffusion(root, train, out / "diffusion.pt", cfg.diffusion,
                                           cfg.diffusion_train, mfcc_stats=stats,
                                           audio2au_state=ckpt["model"], progress=progress,
                                           resume=resume, half=cfg.half)
        paths["generator"] = paths["diffusion"]
    else:
        paths["talker"] = train_talker(root, train, out / "talker.pt", cfg.model, cfg.talker,
                                     mfcc_stats=stats, audio2au_state=ckpt["model"],
                                     au_classifier=paths["au_classifier"], progress=progress,
                                     resume=resume, half=cfg.half)
        paths["generator"] = paths["talker"]
    return {"paths": paths, "train": train, "test": test, "split": split}
