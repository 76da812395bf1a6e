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
loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..data.dataset import TalkingFaceDataset, collate, load_index
from ..losses import PerceptualLoss, au_class_weights, au_loss, identity_loss, l1_reconstruction
from ..models.au_classifier import lower_half
from ..models.config import AUClassifierConfig, TalkerConfig, from_dict
from ..models.talker import Talker
from .au_classifier import AUClassifierTrainConfig, load_au_classifier, train_au_classifier
from .common import CSVLogger, load_checkpoint, pick_device, save_checkpoint, seed_everything


@dataclass
class TalkerTrainConfig:
    """End-to-end training settings; the defaults are the paper's (section 4.2).

    ``per_frames``: the perceptual loss (a VGG-19 pass per frame, most of a CPU step's time)
    is computed on this many randomly chosen frames of each batch, an unbiased estimate of the
    full term; None uses every frame.
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


def load_talker(path: str | Path, device: str = "cpu") -> tuple[Talker, dict]:
    """A trained talker in eval mode, and its checkpoint (for ``mfcc_stats`` etc.)."""
    ckpt = load_checkpoint(path)
    model = Talker(from_dict(TalkerConfig, ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt


def train_talker(root: str | Path, clips: list[dict], out: str | Path, model_cfg: TalkerConfig,
                 cfg: TalkerTrainConfig, *, mfcc_stats, audio2au_state: dict | None = None,
                 au_classifier: str | Path | None = None, progress: bool = True) -> Path:
    """End-to-end training of :class:`~coursekit.models.talker.Talker` on ``clips``."""
    from tqdm.auto import tqdm

    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    out = Path(out)
    data = TalkingFaceDataset(root, clips, seq_len=cfg.seq_len, seed=cfg.seed,
                              fields=("frames", "identity", "mfcc", "occurrence"),
                              normalize_mfcc=mfcc_stats)
    loader = DataLoader(data, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                        collate_fn=collate, generator=torch.Generator().manual_seed(cfg.seed))
    model = Talker(model_cfg).to(device)
    groups = [{"params": [p for n, p in model.named_parameters()
                          if not n.startswith("audio2au.")], "lr": cfg.lr}]
    if model.audio2au is not None:
        if audio2au_state is not None:
            model.audio2au.load_state_dict(audio2au_state)
        groups.append({"params": model.audio2au.parameters(), "lr": cfg.lr_audio2au})
    clf, au_weights = None, None
    if au_classifier is not None and cfg.w_au > 0:
        clf = load_au_classifier(au_classifier, str(device))
        au_weights = au_class_weights(load_checkpoint(au_classifier)["occurrence_rates"]).to(device)
        groups.append({"params": clf.parameters(), "lr": cfg.lr_au_classifier})
    perceptual = PerceptualLoss().to(device) if cfg.w_per > 0 else None
    opt = torch.optim.Adam(groups, betas=(cfg.beta1, 0.999))
    log = CSVLogger(out.with_suffix(".csv"))
    pick_gen = torch.Generator().manual_seed(cfg.seed + 1)
    start, step = time.time(), 0
    bar = tqdm(total=cfg.epochs * len(loader), desc="talker", disable=not progress)
    for epoch in range(cfg.epochs):
        data.set_epoch(epoch)
        for batch in loader:
            model.train()
            real = batch["frames"].to(device)  # (B, T, 3, S, S)
            identity = batch["identity"].to(device)
            fake = model(identity, batch["mfcc"].to(device))["frames"]
            terms = {"rec": l1_reconstruction(fake, real), "id": identity_loss(fake, identity)}
            if perceptual is not None:
                flat_fake, flat_real = fake.flatten(0, 1), real.flatten(0, 1)
                if cfg.per_frames and cfg.per_frames < len(flat_fake):
                    pick = torch.randperm(len(flat_fake), generator=pick_gen)[: cfg.per_frames]
                    flat_fake, flat_real = flat_fake[pick], flat_real[pick]
                terms["per"] = perceptual(flat_fake, flat_real)
            if clf is not None:
                logits = clf(lower_half(fake.flatten(0, 1)))
                terms["au"] = au_loss(logits, batch["occurrence"].flatten(0, 1).to(device),
                                      au_weights)
            weights = {"rec": cfg.w_rec, "id": cfg.w_id, "per": cfg.w_per, "au": cfg.w_au}
            loss = sum(weights[k] * v for k, v in terms.items())
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            row = {"step": step, "epoch": epoch, "loss": loss.item(),
                   **{k: v.item() for k, v in terms.items()}, "seconds": time.time() - start}
            log.log(**row)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.3f}", rec=f"{row['rec']:.3f}")
            if cfg.max_minutes and (time.time() - start) / 60 > cfg.max_minutes:
                break
        else:
            continue
        break
    bar.close()
    log.close()
    save_checkpoint(out, model=model.state_dict(), model_config=asdict(model_cfg),
                    train_config=asdict(cfg), mfcc_mean=mfcc_stats[0], mfcc_std=mfcc_stats[1],
                    steps=step, seconds=time.time() - start)
    return out


@dataclass
class PipelineConfig:
    """Everything :func:`train_pipeline` needs; ``tiny()`` trains on a laptop CPU in minutes."""

    model: TalkerConfig = field(default_factory=TalkerConfig.tiny)
    au_classifier: AUClassifierConfig = field(default_factory=AUClassifierConfig)
    au_classifier_train: AUClassifierTrainConfig = field(default_factory=AUClassifierTrainConfig)
    audio2au_minutes: float = 2.0
    talker: TalkerTrainConfig = field(default_factory=TalkerTrainConfig)
    test_speakers: tuple[str, ...] = ()
    seed: int = 0

    @classmethod
    def from_dict(cls, values: dict) -> "PipelineConfig":
        return from_dict(cls, values)

    @classmethod
    def tiny(cls) -> "PipelineConfig":
        return cls(au_classifier=AUClassifierConfig.tiny(),
                   au_classifier_train=AUClassifierTrainConfig(max_minutes=1.0),
                   audio2au_minutes=1.5,
                   talker=TalkerTrainConfig(seq_len=12, batch_size=6, per_frames=4,
                                            max_minutes=5.5, epochs=1000))

    @classmethod
    def paper(cls) -> "PipelineConfig":
        return cls(model=TalkerConfig.paper(), au_classifier=AUClassifierConfig.paper(),
                   audio2au_minutes=60.0, talker=TalkerTrainConfig(epochs=20, device="cuda"))


def split_for_training(root, cfg: PipelineConfig) -> tuple[list[dict], list[dict]]:
    """Utterance-disjoint split of the training speakers: every 5th utterance of each speaker
    (sorted by name) is held out (:func:`coursekit.train.audio2au.holdout_split`)."""
    from .audio2au import holdout_split

    clips = load_index(root)
    if cfg.test_speakers:
        clips = [c for c in clips if c["speaker"] not in cfg.test_speakers]
    return holdout_split(clips)


def train_pipeline(root: str | Path, out: str | Path, cfg: PipelineConfig | None = None, *,
                   progress: bool = True) -> dict:
    """All three stages on the processed dataset ``root``; returns the checkpoint paths."""
    from .audio2au import Audio2AUTrainConfig, train_audio2au

    cfg = cfg or PipelineConfig.tiny()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train, test = split_for_training(root, cfg)
    paths = {"au_classifier": train_au_classifier(root, train, out / "au_classifier.pt",
                                                  cfg.au_classifier, cfg.au_classifier_train,
                                                  progress=progress)}
    a2a_cfg = Audio2AUTrainConfig(model=asdict(cfg.model.audio2au), max_minutes=cfg.audio2au_minutes,
                                  seed=cfg.seed, progress=progress)
    a2a = train_audio2au(root, out, a2a_cfg, clips=train)
    paths["audio2au"] = Path(a2a["checkpoint"])
    ckpt = load_checkpoint(paths["audio2au"])
    stats = (ckpt["mfcc_mean"].numpy(), ckpt["mfcc_std"].numpy())
    paths["talker"] = train_talker(root, train, out / "talker.pt", cfg.model, cfg.talker,
                                   mfcc_stats=stats, audio2au_state=ckpt["state_dict"],
                                   au_classifier=paths["au_classifier"], progress=progress)
    return {"paths": paths, "train": train, "test": test}
