"""The warp generator: a photo's own pixels moved by the speech, the mouth interior painted.

Any photo talks at its own resolution: nothing outside the mouth and jaw is generated. The
parts are named by a small JSON file of kind ``"warp_generator"`` (the shipped one is
``coursekit/assets/grid/warp.json``; paths relative to the file)::

    {"kind": "warp_generator", "format_version": 1, "audio2au": "audio2au.pt",
     "motion": "motion.pt", "painter": "painter.pt", "smooth_frames": 1.0, "speech_gate": true}

``painter`` is optional: used when the file exists (without it the mouth is the warped
photo's own, stretched lips and all). Steps of one clip (:class:`WarpGenerator`):

1. **AUs** (:meth:`~WarpGenerator.intensities`): raw MFCC windows ``(T, 12, 28)`` ->
   Audio2AU occurrence probabilities (the whole clip at once: its LSTM is bidirectional) ->
   the motion checkpoint's quantile map (``meta["audio_map"]``) -> intensities ``(T, 5)``,
   0-5, times the **speech activity** of :func:`speech_activity`. The gate is needed: on
   GRID's own noise floor Audio2AU says "silence" (probabilities ~0), but on quieter or
   different noise (e.g. the samples' -55 dBFS hiss) it hears an open jaw (AU26 ~0.85), and
   even on digital silence the quantile map turns its ~0.001 probabilities into 0.1-0.3
   intensities. Gated, silence gives exactly zero AUs: a closed, still mouth.
2. **motion** (:meth:`~WarpGenerator.motion`): the motion model's displacements
   ``(T, 33, 2)`` (inter-ocular distances) minus its output for all-zero AUs, so that the
   photo is the face at rest, smoothed by a Gaussian of ``smooth_frames`` frames.
3. **frames** (:mod:`coursekit.infer.warp_frames`): per frame the crop's thin-plate map,
   the photo warped through it (only the region that moves is resampled), the painter on
   the 112 px warped crop, its mouth pasted into the warped photo.

:meth:`WarpGenerator.__call__` (``identity crop + MFCC windows -> crops``, the
:class:`~coursekit.infer.Generator` interface that evaluation uses) warps the crop itself,
with the template's landmarks unless ``landmarks`` are given, gated like the photo path when
the recording is passed as ``speech=`` (:attr:`~coursekit.infer.Generator.hears_speech`;
:func:`coursekit.evaluate.evaluate_checkpoint` does).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..audio import FPS, SAMPLE_RATE
from ..checkpoint import CheckpointError, load_checkpoint
from ..face import template
from ..models.motion import apply_quantile_map
from ..runtime import pick_device
from .generator import Generator, InferError, _stat

KIND = "warp_generator"
CROP = 112
"""Crop size of the warp generator (the motion model's and the painter's aligned crops)."""
PARTS = ("audio2au", "motion", "painter")


@dataclass
class WarpConfig:
    """A ``warp_generator`` file: part checkpoints (relative to the file) and options.

    smooth_frames: sigma (frames) of the Gaussian over the motion (0: none).
    speech_gate: multiply the AUs by :func:`speech_activity` of the audio.
    """

    audio2au: str = "audio2au.pt"
    motion: str = "motion.pt"
    painter: str | None = "painter.pt"
    smooth_frames: float = 1.0
    speech_gate: bool = True

    @classmethod
    def read(cls, path: str | os.PathLike) -> WarpConfig:
        """The config of the JSON file ``path``; :class:`InferError` naming it otherwise."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InferError(f"{path}: not a readable generator file ({err})") from None
        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise InferError(f"{path}: not a {KIND!r} file (a JSON object with "
                             f"\"kind\": \"{KIND}\")")
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known - {"kind", "format_version", "description"}
        if unknown:
            raise InferError(f"{path}: unknown entries {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{k: v for k, v in data.items() if k in known})


def speech_activity(speech: np.ndarray, n_frames: int, sr: int = SAMPLE_RATE, *,
                    fps: float = FPS, window_s: float = 0.04, low: float = 0.3,
                    high: float = 0.5, spread: int = 2, min_range_db: float = 12.0
                    ) -> np.ndarray:
    """Per video frame, how much speech there is: ``(n_frames,)`` float32 in [0, 1].

    The energy of each frame (RMS in dB over ``window_s`` centred on ``k / fps``) is placed
    between the recording's noise floor (its 5th percentile, at least -70 dBFS) and its
    speech level (95th percentile): 0 below ``low`` of the way up, 1 above ``high``, linear
    between; then the largest value within ``spread`` frames (lips move a little before and
    after the sound). A recording with less than ``min_range_db`` between floor and speech
    (no pause to tell the noise from) is all speech: ones.
    """
    x = np.asarray(speech, np.float64)
    hop, half = sr / fps, max(1, int(round(window_s * sr / 2)))
    centres = np.round(np.arange(n_frames) * hop).astype(np.int64)
    cum = np.concatenate([[0.0], np.cumsum(x * x)])
    a = np.clip(centres - half, 0, len(x))
    b = np.clip(centres + half, 0, len(x))
    power = (cum[b] - cum[a]) / np.maximum(b - a, 1)
    db = 10 * np.log10(np.maximum(power, 1e-12))
    floor = max(float(np.percentile(db, 5)), -70.0)
    level = float(np.percentile(db, 95))
    if level - floor < min_range_db:
        return np.ones(n_frames, np.float32)
    lo, hi = floor + low * (level - floor), floor + high * (level - floor)
    gate = np.clip((db - lo) / (hi - lo), 0.0, 1.0)
    if spread > 0:
        from scipy.ndimage import maximum_filter1d

        gate = maximum_filter1d(gate, 2 * spread + 1, mode="nearest")
    return gate.astype(np.float32)


@dataclass
class WarpGenerator(Generator):
    """The warp generator (see the module docstring): :class:`~coursekit.infer.Generator`'s
    attributes (``name="warp"``, ``image_size=112``, the Audio2AU's MFCC statistics,
    ``model`` a ``ModuleDict`` of the parts) plus the parts themselves.

    Attributes:
        audio2au: the Audio2AU (MFCC windows -> AU logits). motion: the
            :class:`~coursekit.models.motion.MotionModel`. painter: the mouth painter or
            None. audio_map: the probability -> intensity quantile map. config: the file's
            :class:`WarpConfig`.
    """

    audio2au: torch.nn.Module | None = field(default=None, repr=False)
    motion_model: torch.nn.Module | None = field(default=None, repr=False)
    painter: torch.nn.Module | None = field(default=None, repr=False)
    audio_map: dict = field(default_factory=dict, repr=False)
    config: WarpConfig = field(default_factory=WarpConfig)

    @torch.no_grad()
    def intensities(self, windows: np.ndarray, speech: np.ndarray | None = None,
                    sr: int = SAMPLE_RATE) -> np.ndarray:
        """AU intensities ``(T, 5)`` float32 (0-5) heard in raw MFCC windows
        ``(T, 12, 28)``, gated by :func:`speech_activity` of ``speech`` (the same
        recording, mono at ``sr``) when given and the config asks for it."""
        x = self.normalize(windows).to(self.device)[None]
        probs = torch.sigmoid(self.audio2au(x))[0].float().cpu().numpy()
        aus = apply_quantile_map(self.audio_map, probs)
        if speech is not None and self.config.speech_gate:
            aus *= speech_activity(speech, len(aus), sr)[:, None]
        return aus

    @torch.no_grad()
    def motion(self, aus: np.ndarray) -> np.ndarray:
        """Displacements ``(T, 33, 2)`` float32 of the moving landmarks (inter-ocular
        distances) for AU intensities ``(T, 5)``, relative to all-zero AUs (exactly zero
        on frames whose AUs are all zero: silence), Gaussian-smoothed over frames."""
        model = self.motion_model
        dev = next(model.parameters()).device
        aus = torch.as_tensor(np.asarray(aus, np.float32), device=dev)
        rest = model(torch.zeros_like(aus[:1])[None])[0, 0]
        out = (model(aus[None])[0] - rest).cpu().numpy()
        out[(aus == 0).all(1).cpu().numpy()] = 0.0  # no AU, no motion: the photo itself
        if self.config.smooth_frames > 0 and len(out) > 1:
            from scipy.ndimage import gaussian_filter1d

            out = gaussian_filter1d(out, self.config.smooth_frames, axis=0, mode="nearest")
        out[np.abs(out).max(axis=(1, 2)) < 1e-4] = 0.0  # Gaussian tails: still frames
        return out.astype(np.float32)

    def audio_motion(self, windows: np.ndarray, speech: np.ndarray | None = None,
                     sr: int = SAMPLE_RATE) -> np.ndarray:
        """:meth:`motion` of :meth:`intensities`: ``(T, 33, 2)``."""
        return self.motion(self.intensities(windows, speech, sr))


def _render(gen: WarpGenerator):
    """The crop path of :meth:`Generator.__call__`: ``(3, S, S)`` identity in [-1, 1] and
    normalised MFCC windows -> ``(T, 3, S, S)``, the crop warped (template landmarks)."""
    from .faces import to_tensor, to_uint8
    from .warp_frames import crop_frames

    def render(identity, mfcc, *, seed=0, steps=None, progress=False, landmarks=None,
               speech=None):
        raw = mfcc.cpu().numpy() * gen.mfcc_std + gen.mfcc_mean
        crop = to_uint8(identity[None].cpu())[0]
        source = template(CROP) if landmarks is None else np.asarray(landmarks, np.float32)
        frames = crop_frames(crop, source, gen.audio_motion(raw, speech), gen.painter)
        return torch.stack([to_tensor(f) for f in frames]).to(identity.device)

    return render


def prepare_painter(painter: torch.nn.Module) -> torch.nn.Module:
    """The painter in eval mode with its weights channels-last (its convolutions run about
    a third faster on a CPU that way)."""
    return painter.eval().to(memory_format=torch.channels_last)


def load_warp_generator(path: str | os.PathLike, device: str = "cpu") -> WarpGenerator:
    """The :class:`WarpGenerator` of a ``warp_generator`` JSON file (its parts loaded with
    :func:`coursekit.checkpoint.load_checkpoint`); :class:`InferError` naming the file
    for a bad file, a missing part or an unavailable device."""
    path = Path(path)
    cfg = WarpConfig.read(path)
    try:
        where = pick_device(device)
    except (RuntimeError, ValueError) as err:
        raise InferError(f"{path}: cannot run on {device!r}: {err}") from None
    parts = {}
    for part in PARTS:
        name = getattr(cfg, part)
        file = path.parent / name if name else None
        if file is None or (part == "painter" and not file.is_file()):
            continue
        if not file.is_file():
            raise InferError(f"{path}: its {part} checkpoint {file} does not exist")
        try:
            parts[part] = load_checkpoint(file, where, kind=part)
        except CheckpointError as err:
            raise InferError(str(err)) from None
    a2u, motion = parts["audio2au"], parts["motion"]
    if "audio_map" not in motion.meta:
        raise InferError(f"{motion.path}: a motion checkpoint without meta['audio_map'] (the "
                         "Audio2AU probability -> intensity map)")
    modules = torch.nn.ModuleDict({k: v.model for k, v in parts.items()})
    gen = WarpGenerator("warp", CROP, _stat(a2u.meta["mfcc_mean"]), _stat(a2u.meta["mfcc_std"]),
                        render=None, device=where, source=str(path), model=modules,
                        hears_speech=True, audio2au=a2u.model, motion_model=motion.model,
                        painter=prepare_painter(parts["painter"].model)
                        if "painter" in parts else None,
                        audio_map={k: np.asarray(v) for k, v in motion.meta["audio_map"].items()},
                        config=cfg)
    gen.render = _render(gen)
    return gen
