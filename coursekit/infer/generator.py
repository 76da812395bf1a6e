"""Generators: a checkpoint loaded as ``identity crop + MFCC windows -> frames``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..assets import ASSETS_DIR, DEFAULT_GENERATOR, GENERATORS, asset_path, default_generator
from ..checkpoint import CheckpointError, Loaded, load_checkpoint
from ..models.talker import Talker
from ..models.warp_input import warp_base
from ..runtime import pick_device

CHUNK = 32
"""Frames decoded at once (memory stays flat on long recordings)."""


class InferError(ValueError):
    """An input that cannot be used for generation (unreadable image, unknown renderer, ...)."""


# ----------------------------------------------------------------------------- generators


@dataclass
class Generator:
    """A loaded renderer: identity crop + normalised MFCC windows -> frames.

    Attributes:
        name: the renderer (a key of :data:`RENDERERS`).
        image_size: S, the crop size the model was trained on.
        mfcc_mean, mfcc_std: ``(12, 1)`` float32 training statistics (:meth:`normalize`).
        render: ``render(identity (3, S, S), mfcc (T, 12, 28), *, seed, steps, progress)
            -> (T, 3, S, S)``, tensors on ``device``, called under ``torch.no_grad``.
        device: where the model runs.
        source: the checkpoint file (for messages).
        model: the underlying module(s), for inspection.
        hears_speech: True when ``render`` also takes ``speech=`` (the clip's 16 kHz mono
            samples): the warp generator gates its AUs by the speech's loudness.
    """

    name: str
    image_size: int
    mfcc_mean: np.ndarray
    mfcc_std: np.ndarray
    render: Callable = field(repr=False)
    device: torch.device = torch.device("cpu")
    source: str = ""
    model: object = field(default=None, repr=False)
    hears_speech: bool = False

    def normalize(self, windows: np.ndarray) -> torch.Tensor:
        """Raw MFCC windows ``(T, 12, 28)`` -> normalised float32 tensor ``(T, 12, 28)``."""
        windows = np.asarray(windows, np.float32)
        return torch.from_numpy((windows - self.mfcc_mean) / self.mfcc_std)

    def __call__(self, identity: torch.Tensor, mfcc: torch.Tensor, *, seed: int = 0,
                 steps: int | None = None, progress: bool = False,
                 speech: np.ndarray | None = None) -> torch.Tensor:
        """Frames ``(T, 3, S, S)`` in [-1, 1] (float32, CPU) for identity ``(3, S, S)`` in
        [-1, 1] and normalised MFCC windows ``(T, 12, 28)``. ``seed`` and ``steps`` are for
        sampling renderers; the image decoder is deterministic and ignores them. ``speech``:
        the recording the windows were cut from (16 kHz mono), used by generators that
        :attr:`hears_speech` and ignored by the others."""
        s = self.image_size
        if tuple(identity.shape) != (3, s, s):
            raise ValueError(f"{self.source}: identity must be (3, {s}, {s}), "
                             f"got {tuple(identity.shape)}")
        if mfcc.dim() != 3 or mfcc.shape[0] < 1:
            raise ValueError(f"{self.source}: mfcc must be (T, 12, 28), got {tuple(mfcc.shape)}")
        extra = {"speech": speech} if self.hears_speech and speech is not None else {}
        with torch.no_grad():
            frames = self.render(identity.float().to(self.device), mfcc.float().to(self.device),
                                 seed=seed, steps=steps, progress=progress, **extra)
        return frames.float().cpu()


@torch.no_grad()
def decode_in_chunks(model: Talker, identity: torch.Tensor, mfcc: torch.Tensor, *,
                     chunk: int = CHUNK, progress: bool = False,
                     warped: torch.Tensor | None = None,
                     mouth_mask: torch.Tensor | None = None) -> torch.Tensor:
    """:class:`~coursekit.models.talker.Talker` frames, the image decoder run ``chunk`` frames
    at a time.

    Encoders, Audio2AU and the fusion see the whole clip at once (they are cheap, and the
    fusion's temporal context must not be cut), so the result equals
    ``model(identity[None], mfcc[None])["frames"][0]``; only the decoder, which works frame
    by frame and holds the full-size activations, is chunked.

    Args: identity ``(3, S, S)``, mfcc ``(T, 12, 28)`` normalised; for a ``motion="warp"``
    talker the frames' ``warped (T, 3, S, S)`` and ``mouth_mask (T, 1, S, S)``.
    Returns ``(T, 3, S, S)``.
    """
    from tqdm.auto import tqdm

    model.eval()
    per_frame = warped is not None
    warp = {"warped": warped[None], "mouth_mask": mouth_mask[None]} if per_frame else {}
    if model.cfg.temporal != "none":  # sequential: frame by frame anyway
        return model(identity[None], mfcc[None], **warp)["frames"][0]
    feats = model.features(identity[None], mfcc[None], **warp)
    fused = model.fusion(feats["f"])[0]  # (T, C)
    base = warp_base(warped) if per_frame else None
    out = []
    for start in tqdm(range(0, len(fused), chunk), desc="frames", unit="chunk",
                      disable=not progress):
        part, end = fused[start:start + chunk], start + chunk
        skips = [s[start:end] if per_frame else s.expand(len(part), *s.shape[1:])
                 for s in feats["skips"]]
        out.append(model.decoder(part, skips, None if base is None else base[start:end]))
    return torch.cat(out)


def _decoder(loaded: Loaded) -> Callable:
    """The paper's image-decoder :class:`~coursekit.models.talker.Talker`: deterministic."""
    def render(identity, mfcc, *, seed=0, steps=None, progress=False, **warp):
        return decode_in_chunks(loaded.model, identity, mfcc, progress=progress, **warp)

    return render


def _diffusion(loaded: Loaded) -> Callable:
    """The :class:`~coursekit.models.diffusion.DiffusionTalker`: all frames of the clip
    sampled as one batch from one seeded noise image, ``steps`` DDIM steps (the config's
    default if None)."""
    def render(identity, mfcc, *, seed=0, steps=None, progress=False, **warp):
        warp = {k: v[None] for k, v in warp.items()}  # warped, mouth_mask: motion="warp"
        return loaded.model.sample(identity[None], mfcc[None], steps=steps, seed=seed,
                                   chunk=CHUNK * 4, progress=progress, **warp)[0]

    return render


def _stat(value) -> np.ndarray:
    arr = value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    return arr.astype(np.float32).reshape(-1, 1)


RENDERERS: dict[str, Callable[[Loaded], Callable]] = {
    "talker": _decoder,
    "diffusion": _diffusion,
}
"""Checkpoint kind -> ``make_render(loaded) -> render``: the kinds that make frames."""
RENDERER_NAMES = {"talker": "decoder", "diffusion": "diffusion"}


def default_checkpoint() -> Path:
    """The shipped default generator (:func:`coursekit.assets.default_generator`); an
    :class:`InferError` naming the missing file when this install lacks it."""
    path = default_generator()
    if path is None:
        raise InferError(f"{ASSETS_DIR / DEFAULT_GENERATOR}: the default generator is not "
                         "in this install; give a generator checkpoint")
    return path


def generator_path(checkpoint: str | os.PathLike | None = None) -> Path:
    """The file of a generator: ``None`` is the shipped default (:func:`default_checkpoint`),
    a name of :data:`coursekit.assets.GENERATORS` (``"warp"``, ``"diffusion"``, ...) its
    shipped file, anything else a path."""
    if checkpoint is None:
        return default_checkpoint()
    if isinstance(checkpoint, str) and checkpoint in GENERATORS:
        path = asset_path(GENERATORS[checkpoint])
        if path is None:
            raise InferError(f"{ASSETS_DIR / GENERATORS[checkpoint]}: the {checkpoint!r} "
                             "generator is not in this install")
        return path
    return Path(checkpoint)


def load_generator(checkpoint: str | os.PathLike | None = None, device: str = "cpu"
                   ) -> Generator:
    """Load a generator as a :class:`Generator`: a checkpoint of a kind in :data:`RENDERERS`
    (through :func:`coursekit.checkpoint.load_checkpoint`) or a ``warp_generator`` JSON file
    (:func:`coursekit.infer.warp.load_warp_generator`, a
    :class:`~coursekit.infer.warp.WarpGenerator`). ``checkpoint`` as in
    :func:`generator_path`: None for the shipped default generator, ``"warp"`` etc. for a
    shipped one.

    Raises:
        FileNotFoundError: no such file.
        InferError: not a readable checkpoint, not a generator, or a device that is not
            available (one line naming the file).
    """
    path = generator_path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such generator checkpoint")
    if path.suffix.lower() == ".json":
        from .warp import load_warp_generator

        return load_warp_generator(path, device)
    try:
        where = pick_device(device)
    except (RuntimeError, ValueError) as err:  # "cuda" without CUDA, a misspelt name
        raise InferError(f"{path}: cannot run on {device!r}: {err}") from None
    try:
        loaded = load_checkpoint(path, where, kind=tuple(RENDERERS))
    except CheckpointError as err:
        raise InferError(str(err)) from None
    missing = [k for k in ("mfcc_mean", "mfcc_std") if k not in loaded.meta]
    if missing:
        raise InferError(f"{path}: a {loaded.kind!r} checkpoint without {', '.join(missing)}")
    model = loaded.model
    gen = Generator(RENDERER_NAMES[loaded.kind], model.image_size
                    if hasattr(model, "image_size") else model.cfg.image_size,
                    _stat(loaded.meta["mfcc_mean"]), _stat(loaded.meta["mfcc_std"]),
                    RENDERERS[loaded.kind](loaded), where, str(path), model)
    if model.cfg.motion == "warp":  # its warped identity is made from the speech
        from .warp_renderer import with_motion

        gen = with_motion(gen)
    return gen


