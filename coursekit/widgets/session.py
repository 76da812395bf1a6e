"""One loaded generator and the face it works on: AU-driven frames and videos without reloading.

A :class:`Session` loads its checkpoint once (:func:`_load`, the widgets' only way to load a
model) and keeps the photo and its aligned face crop, so that every slider move or
*Generate* click reuses the same model.

Shapes: photos ``(H, W, 3)`` RGB uint8; crops ``(S, S, 3)`` uint8; tensors ``(3, S, S)`` in
[-1, 1]; AU intensities ``(5,)`` or ``(N, 5)`` in 0-5, in :data:`coursekit.au.AUS` order.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .. import infer
from ..au import AUS
from ..face import LandmarkDetector
from ..infer import FaceCrop, Generator, InferError, crop_face, read_image, to_tensor, to_uint8
from ..models.diffusion import DiffusionTalker
from .samples import astronaut

AU_SWEEPS = {"AU25 lips part": ((0, 0, 0, 0, 0), (0, 0, 0, 1, 0)),
             "AU25 + AU26 jaw drop": ((0, 0, 0, 0, 0), (0, 0, 0, 1, 1)),
             "AU20 stretch, AU25 = 2": ((0, 0, 0, 2, 0), (0, 0, 1, 0, 0)),
             "AU10 upper lip, AU25 = 2": ((0, 0, 0, 2, 0), (1, 0, 0, 0, 0))}
"""Rows of :func:`au_sweeps`: ``label: (base, direction)``, intensities ``base + v * direction``."""


def _load(checkpoint: str | os.PathLike | None, device: str = "cpu") -> Generator:
    """The generator of ``checkpoint``: every model the widgets use is loaded here. None is
    the shipped default (the warp generator, :mod:`coursekit.infer.warp`), a name of
    :data:`coursekit.assets.GENERATORS` (``"warp"``, ``"diffusion"``, ``"decoder"``) a
    shipped one, anything else a checkpoint or ``warp_generator`` file
    (:func:`coursekit.infer.load_generator`)."""
    return infer.load_generator(checkpoint, device)


@torch.no_grad()
def render_with_aus(model: DiffusionTalker, identity: torch.Tensor | np.ndarray, aus, *,
                    steps: int = 10, seed: int = 0) -> torch.Tensor:
    """The renderer's frame of ``identity`` with the mouth set by AU intensities, not audio.

    Each frame is one clip of one frame sampled with ``aus / 5`` as the explicit AU input
    (:meth:`~coursekit.models.diffusion.DiffusionTalker.sample` with ``aus``; the audio
    features are zeroed), from the same seeded noise: two calls with the same ``seed`` differ
    only where the AUs make them differ.

    Args:
        model: a :class:`~coursekit.models.diffusion.DiffusionTalker` (trained with
            ``au_drive > 0``, so that it listens to AUs).
        identity: ``(3, S, S)`` float in [-1, 1], or an ``(S, S, 3)`` uint8 crop.
        aus: ``(5,)`` intensities 0-5 (AU10, AU14, AU20, AU25, AU26), or ``(N, 5)`` for N
            frames; values outside 0-5 are clipped.
        steps: DDIM steps (few are enough for a preview). seed: the initial noise.

    Returns:
        ``(3, S, S)`` float32 in [-1, 1] on the CPU (``(N, 3, S, S)`` for ``(N, 5)`` AUs).
    """
    if isinstance(identity, np.ndarray):
        identity = to_tensor(identity)
    s = model.image_size
    if tuple(identity.shape) != (3, s, s):
        raise ValueError(f"identity must be (3, {s}, {s}), got {tuple(identity.shape)}")
    values = torch.as_tensor(np.asarray(aus, np.float32))
    if values.shape[-1:] != (len(AUS),) or values.dim() > 2:
        raise ValueError(f"aus must be ({len(AUS)},) or (N, {len(AUS)}) intensities in "
                         f"{'/'.join(AUS)} order, got {tuple(values.shape)}")
    device = next(model.parameters()).device
    ident = identity.float().to(device)[None]
    mfcc = torch.zeros(1, 1, 12, 28, device=device)  # sets T = 1; ignored when driven by AUs
    frames = [model.sample(ident, mfcc, steps=steps, seed=seed,
                           aus=(a.clamp(0, 5) / 5).view(1, 1, -1).to(device))[0, 0]
              for a in values.reshape(-1, len(AUS))]
    out = torch.stack(frames).float().cpu()
    return out[0] if values.dim() == 1 else out


def au_sweeps(model: DiffusionTalker, identity, levels=(0, 1, 2, 3, 4, 5), sweeps=AU_SWEEPS, *,
              steps: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    """``{label: (N, S, S, 3) uint8}``: the frames of :func:`render_with_aus` for each sweep
    of ``sweeps`` at the N intensities ``levels`` (clipped to 0-5), all from one seed."""
    out = {}
    for label, (base, direction) in sweeps.items():
        aus = np.asarray(base, np.float32) + np.outer(levels, direction).astype(np.float32)
        out[label] = to_uint8(render_with_aus(model, identity, aus, steps=steps, seed=seed))
    return out


class Session:
    """One loaded generator (model and device, loaded once) and the face being worked on.

    Attributes:
        generator: the :class:`~coursekit.infer.Generator` (None when built from a bare
            :class:`~coursekit.models.diffusion.DiffusionTalker`: AU frames, no videos).
        model: the generator's model. photo: ``(H, W, 3)`` uint8 of :meth:`set_face`, or
            None. found: its :class:`~coursekit.infer.FaceCrop`, or None.
    """

    def __init__(self, generator: Generator | DiffusionTalker, *,
                 detector: LandmarkDetector | None = None):
        if isinstance(generator, DiffusionTalker):
            self.generator, self.model = None, generator
        else:
            self.generator, self.model = generator, generator.model
        self._detector = detector
        self.photo: np.ndarray | None = None
        self.found: FaceCrop | None = None

    @classmethod
    def open(cls, checkpoint, device: str = "cpu", *,
             detector: LandmarkDetector | None = None) -> Session:
        """A session of ``checkpoint`` (a path; a loaded Generator, DiffusionTalker or
        Session is used as it is)."""
        if isinstance(checkpoint, Session):
            return checkpoint
        if isinstance(checkpoint, (Generator, DiffusionTalker)):
            return cls(checkpoint, detector=detector)
        return cls(_load(checkpoint, device), detector=detector)

    @property
    def name(self) -> str:
        """The renderer: ``"decoder"`` or ``"diffusion"``."""
        return self.generator.name if self.generator else "diffusion"

    @property
    def source(self) -> str:
        """The checkpoint file (empty for a bare model)."""
        return self.generator.source if self.generator else ""

    @property
    def image_size(self) -> int:
        """S, the crop size of the model."""
        return self.generator.image_size if self.generator else self.model.image_size

    @property
    def detector(self) -> LandmarkDetector:
        """The landmark detector, made on first use and kept."""
        if self._detector is None:
            self._detector = LandmarkDetector()
        return self._detector

    def diffusion(self) -> DiffusionTalker:
        """The model, if it is a diffusion renderer (the image decoder ignores AUs);
        :class:`~coursekit.infer.InferError` otherwise."""
        if self.name != "diffusion":
            raise InferError(f"{self.source}: AU-driven frames need a diffusion renderer "
                             f"checkpoint, this one is a {self.name!r} renderer")
        return self.model

    def video_generator(self) -> Generator:
        """The generator that makes videos; InferError for a session of a bare model."""
        if self.generator is None:
            raise InferError("a bare model cannot make videos (no MFCC statistics): open the "
                             "session from its checkpoint")
        return self.generator

    def set_face(self, face=None) -> FaceCrop:
        """Crop the largest face of ``face`` (a photo's path, an ``(H, W, 3)`` uint8 RGB
        image, or None for the astronaut) as in training and keep it.

        Raises :class:`~coursekit.face.FaceError` (no face) naming the photo."""
        if face is None:
            photo, source = astronaut(), "the astronaut"
        elif isinstance(face, np.ndarray):
            photo, source = face, "the image"
        else:
            photo, source = read_image(face), str(face)
        self.found = crop_face(photo, self.image_size, self.detector, source=source)
        self.photo = photo
        return self.found

    @property
    def crop(self) -> np.ndarray:
        """The face crop ``(S, S, 3)`` uint8 of :meth:`set_face`."""
        if self.found is None:
            raise ValueError("no face yet: call set_face first")
        return self.found.crop

    def render(self, aus, *, steps: int = 10, seed: int = 0) -> np.ndarray:
        """:func:`render_with_aus` of the crop: ``(S, S, 3)`` uint8 for ``(5,)`` AUs,
        ``(N, S, S, 3)`` for ``(N, 5)``."""
        aus = np.asarray(aus, np.float32)
        frames = to_uint8(render_with_aus(self.diffusion(), self.crop, np.atleast_2d(aus),
                                          steps=steps, seed=seed))
        return frames[0] if aus.ndim == 1 else frames

    def sweeps(self, levels=(0, 1, 2, 3, 4, 5), sweeps=AU_SWEEPS, *, steps: int = 10,
               seed: int = 0) -> dict[str, np.ndarray]:
        """:func:`au_sweeps` of the crop."""
        return au_sweeps(self.diffusion(), self.crop, levels, sweeps, steps=steps, seed=seed)

    def video(self, face: str | os.PathLike, audio: str | os.PathLike, out: str | os.PathLike,
              *, paste_back: bool = False, seed: int = 0, steps: int | None = None,
              progress: bool = False) -> Path:
        """:func:`coursekit.infer.generate_video` with this session's generator and detector
        (no reload): ``out``, the mp4 of the photo ``face`` saying ``audio``."""
        return infer.generate_video(self.video_generator(), face, audio, out,
                                    paste_back=paste_back, seed=seed, steps=steps,
                                    progress=progress, detector=self.detector)


def load_diffusion(checkpoint: str | os.PathLike, device: str = "cpu") -> DiffusionTalker:
    """The :class:`~coursekit.models.diffusion.DiffusionTalker` of a diffusion checkpoint;
    :class:`~coursekit.infer.InferError` for another renderer (the decoder ignores AUs)."""
    return Session.open(checkpoint, device).diffusion()
