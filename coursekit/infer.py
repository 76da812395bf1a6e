"""Inference: any face photo and any voice recording -> a talking-face video.

``coursekit generate --checkpoint CKPT --face IMAGE --audio AUDIO --out OUT.mp4`` runs
:func:`generate_video`, which does what preprocessing and training did, on new inputs:

1. **audio** (:func:`coursekit.audio.load_audio`): any rate, mono or stereo, wav/flac/mp3 or
   the sound of a video file. The video gets ``n_frames = ceil(duration * 25)`` frames, so it
   covers the whole recording; each frame gets its 280 ms MFCC window
   (:func:`coursekit.audio.mfcc_windows`), normalised with the *training* statistics stored
   in the checkpoint (``mfcc_mean``, ``mfcc_std``).
2. **face** (:func:`crop_face`): dlib finds the largest face and its 68 landmarks, and the
   photo is cropped with **the same template alignment as preprocessing**
   (:func:`coursekit.face.alignment_transforms` on the rigid eye and nose points, then
   :func:`coursekit.face.warp_faces`), so the crop looks like the training crops. Where the
   face is so large that the crop shrinks it below half size, the photo is first reduced
   with area averaging (a bilinear warp alone would alias); the alignment is unchanged.
3. **frames** (:class:`Generator`): the renderer named by the checkpoint's ``renderer`` entry
   (``"decoder"``, the paper's image decoder, when absent) turns the identity crop and the
   MFCC windows into ``(T, 3, S, S)`` frames. Renderers are looked up in :data:`RENDERERS`,
   so another one (e.g. a diffusion renderer) is added with one line.
4. **video** (:func:`coursekit.video.write_video`): H.264 at 25 fps with the *original*
   audio (its own sample rate, mixed to mono) muxed as AAC, so the sound lasts exactly as
   long as the input recording. Without paste-back the frames are the face crops, enlarged
   to :data:`VIEW_SIZE` pixels (bicubic) when smaller: a 64 px crop is too small to watch.
   With paste-back (:func:`paste_back`) every crop is warped back into the photo under a
   feathered mask of the lower face, and the frames have the photo's size.

Shapes: photo ``(H, W, 3)`` RGB uint8; crops ``(S, S, 3)`` uint8; tensors ``(3, S, S)`` in
[-1, 1]; MFCC windows ``(T, 12, 28)``; transforms ``(2, 3)`` image -> crop.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .audio import (FPS, SAMPLE_RATE, AudioError, is_silent, load_audio, mfcc_windows, peak_dbfs,
                    resample)
from .face import (FaceError, LandmarkDetector, alignment_transforms, template,
                   transform_points, warp_faces)
from .models.config import TalkerConfig, from_dict
from .models.diffusion import DiffusionTalker
from .models.talker import Talker
from .train.common import load_checkpoint, pick_device
from .video import write_video

VIEW_SIZE = 256
"""Crops smaller than this are enlarged to ``VIEW_SIZE x VIEW_SIZE`` in the video (viewing only)."""

CHUNK = 32
"""Frames decoded at once (memory stays flat on long recordings)."""

MAX_PHOTO_SIDE = 1280
"""Photos whose longer side exceeds this are reduced to it first (detection speed, video size)."""

LOWER_FACE = np.r_[1:16, 30]
"""Landmarks whose hull is the paste-back region: the jaw line and the tip of the nose (the
eyes stay the photo's: speech moves only the lower face)."""

CHIN = np.r_[4:13]
"""Jaw points moved down in the paste-back mask, to leave room for a dropped jaw."""


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
    """

    name: str
    image_size: int
    mfcc_mean: np.ndarray
    mfcc_std: np.ndarray
    render: Callable = field(repr=False)
    device: torch.device = torch.device("cpu")
    source: str = ""
    model: object = field(default=None, repr=False)

    def normalize(self, windows: np.ndarray) -> torch.Tensor:
        """Raw MFCC windows ``(T, 12, 28)`` -> normalised float32 tensor ``(T, 12, 28)``."""
        windows = np.asarray(windows, np.float32)
        return torch.from_numpy((windows - self.mfcc_mean) / self.mfcc_std)

    def __call__(self, identity: torch.Tensor, mfcc: torch.Tensor, *, seed: int = 0,
                 steps: int | None = None, progress: bool = False) -> torch.Tensor:
        """Frames ``(T, 3, S, S)`` in [-1, 1] (float32, CPU) for identity ``(3, S, S)`` in
        [-1, 1] and normalised MFCC windows ``(T, 12, 28)``. ``seed`` and ``steps`` are for
        sampling renderers; the image decoder is deterministic and ignores them."""
        s = self.image_size
        if tuple(identity.shape) != (3, s, s):
            raise ValueError(f"{self.source}: identity must be (3, {s}, {s}), "
                             f"got {tuple(identity.shape)}")
        if mfcc.dim() != 3 or mfcc.shape[0] < 1:
            raise ValueError(f"{self.source}: mfcc must be (T, 12, 28), got {tuple(mfcc.shape)}")
        with torch.no_grad():
            frames = self.render(identity.float().to(self.device), mfcc.float().to(self.device),
                                 seed=seed, steps=steps, progress=progress)
        return frames.float().cpu()


@torch.no_grad()
def decode_in_chunks(model: Talker, identity: torch.Tensor, mfcc: torch.Tensor, *,
                     chunk: int = CHUNK, progress: bool = False) -> torch.Tensor:
    """:class:`~coursekit.models.talker.Talker` frames, the image decoder run ``chunk`` frames
    at a time.

    Encoders, Audio2AU and the fusion see the whole clip at once (they are cheap, and the
    fusion's temporal context must not be cut), so the result equals
    ``model(identity[None], mfcc[None])["frames"][0]``; only the decoder, which works frame
    by frame and holds the full-size activations, is chunked.

    Args: identity ``(3, S, S)``, mfcc ``(T, 12, 28)`` normalised. Returns ``(T, 3, S, S)``.
    """
    from tqdm.auto import tqdm

    model.eval()
    feats = model.features(identity[None], mfcc[None])
    fused = model.fusion(feats["f"])[0]  # (T, C)
    out = []
    for start in tqdm(range(0, len(fused), chunk), desc="frames", unit="chunk",
                      disable=not progress):
        part = fused[start:start + chunk]
        skips = [s.expand(len(part), *s.shape[1:]) for s in feats["skips"]]
        out.append(model.decoder(part, skips))
    return torch.cat(out)


def _load_decoder(ckpt: dict, path: Path, device: torch.device) -> Generator:
    """The paper's image-decoder :class:`~coursekit.models.talker.Talker`
    (checkpoints of :func:`coursekit.train.talker.train_talker`)."""
    missing = [k for k in ("model", "model_config", "mfcc_mean", "mfcc_std") if k not in ckpt]
    if missing:
        raise InferError(f"{path}: not a talker checkpoint (it lacks {', '.join(missing)})")
    cfg = from_dict(TalkerConfig, ckpt["model_config"])
    model = Talker(cfg)
    model.load_state_dict(ckpt["model"])
    model.to(device).eval()

    def render(identity, mfcc, *, seed=0, steps=None, progress=False):
        return decode_in_chunks(model, identity, mfcc, progress=progress)

    return Generator("decoder", cfg.image_size, _stat(ckpt["mfcc_mean"]), _stat(ckpt["mfcc_std"]),
                     render, device, str(path), model)


def _load_diffusion(ckpt: dict, path: Path, device: torch.device) -> Generator:
    """The :class:`~coursekit.models.diffusion.DiffusionTalker` (checkpoints of
    :func:`coursekit.train.diffusion.train_diffusion`): all frames of the clip sampled as one
    batch from one seeded noise image, ``steps`` DDIM steps (the config's default if None)."""
    missing = [k for k in ("model", "model_config", "mfcc_mean", "mfcc_std") if k not in ckpt]
    if missing:
        raise InferError(f"{path}: not a diffusion checkpoint (it lacks {', '.join(missing)})")
    model = DiffusionTalker.from_state(ckpt["model_config"], ckpt["model"]).to(device)

    def render(identity, mfcc, *, seed=0, steps=None, progress=False):
        return model.sample(identity[None], mfcc[None], steps=steps, seed=seed,
                            chunk=CHUNK * 4, progress=progress)[0]

    return Generator("diffusion", model.image_size, _stat(ckpt["mfcc_mean"]),
                     _stat(ckpt["mfcc_std"]), render, device, str(path), model)


def _stat(value) -> np.ndarray:
    arr = value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    return arr.astype(np.float32).reshape(-1, 1)


RENDERERS: dict[str, Callable[[dict, Path, torch.device], Generator]] = {
    "decoder": _load_decoder,
    "diffusion": _load_diffusion,
}
"""Checkpoint ``renderer`` entry -> ``loader(ckpt, path, device) -> Generator``."""


def load_generator(checkpoint: str | os.PathLike, device: str = "cpu") -> Generator:
    """Load a checkpoint as a :class:`Generator`, dispatching on its ``renderer`` entry
    (``"decoder"`` when absent) through :data:`RENDERERS`.

    Raises:
        FileNotFoundError: no such file.
        InferError: a renderer this coursekit does not know, not a generator checkpoint, or
            a device that is not available.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        ckpt = load_checkpoint(path)
    except Exception as err:  # truncated, not a torch file, pickled code (weights_only)
        raise InferError(f"{path}: not a readable checkpoint ({type(err).__name__})") from err
    if not isinstance(ckpt, dict):
        raise InferError(f"{path}: not a coursekit checkpoint")
    name = ckpt.get("renderer", "decoder")
    if name not in RENDERERS:
        raise InferError(f"{path}: unknown renderer {name!r}; known: {', '.join(sorted(RENDERERS))}")
    try:
        where = pick_device(device)
    except (RuntimeError, ValueError) as err:  # "cuda" without CUDA, a misspelt name
        raise InferError(f"{path}: cannot run on {device!r}: {err}") from None
    return RENDERERS[name](ckpt, path, where)


# ----------------------------------------------------------------------------- faces


@dataclass
class FaceCrop:
    """A photo's face, aligned as in preprocessing."""

    crop: np.ndarray  # (S, S, 3) uint8
    transform: np.ndarray  # (2, 3) float32, photo pixels -> crop pixels
    landmarks: np.ndarray  # (68, 2) float32, photo pixels
    box: np.ndarray  # (4,) float32, detector box (x0, y0, x1, y1)


def read_image(path: str | os.PathLike, max_side: int | None = MAX_PHOTO_SIDE) -> np.ndarray:
    """A photo as ``(H, W, 3)`` RGB uint8 (grey and alpha images converted, EXIF rotation
    applied), reduced so that its longer side is at most ``max_side``.

    Raises FileNotFoundError (no such file) or :class:`InferError` (not a readable image),
    naming the file.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file")
    data = np.fromfile(path, dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise InferError(f"{path}: not a readable image (PNG, JPEG, BMP, TIFF, WebP, ...)")
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    if max_side and max(h, w) > max_side:
        f = max_side / max(h, w)
        image = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))),
                           interpolation=cv2.INTER_AREA)
    return image


def crop_face(image: np.ndarray, size: int, detector: LandmarkDetector | None = None, *,
              source: str = "image") -> FaceCrop:
    """Detect the largest face of ``image`` ``(H, W, 3)`` RGB uint8 and crop it to
    ``(size, size, 3)`` with preprocessing's template alignment.

    The transform is :func:`coursekit.face.alignment_transforms` of the 68 landmarks (one
    frame: no temporal smoothing), the crop :func:`coursekit.face.warp_faces`. When the
    transform shrinks by more than 2x, the photo is first reduced by area averaging so that
    the warp runs at scale 1 (same geometry, no aliasing).

    Raises:
        FaceError: no face found; the message names ``source``.
    """
    import cv2

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{source}: expected an (H, W, 3) uint8 RGB image, got "
                         f"{image.shape} {image.dtype}")
    detector = detector or LandmarkDetector()
    boxes = detector.detect(image)
    if not boxes:
        raise FaceError(f"no face found in {source} (dlib's frontal face detector needs a "
                        "frontal, unobstructed face at least about 80 px wide)")
    box = boxes[0]  # the largest
    landmarks = detector.landmarks(image, box)
    m = alignment_transforms(landmarks[None], size)[0]
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2].astype(np.float64)))))
    source_image, m_src = image, m
    if scale < 0.5:  # reduce first: warp_faces' bilinear warp would skip pixels
        h, w = image.shape[:2]
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        source_image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        fx, fy = nw / w, nh / h  # small -> photo: x = (x_s + 0.5) / fx - 0.5
        back = np.array([[1 / fx, 0, 0.5 / fx - 0.5], [0, 1 / fy, 0.5 / fy - 0.5], [0, 0, 1]])
        m_src = (np.vstack([m, [0, 0, 1]]) @ back)[:2].astype(np.float32)
    crop = warp_faces(source_image[None], m_src[None], size)[0]
    return FaceCrop(crop, m.astype(np.float32), landmarks, np.asarray(box, np.float32))


def to_tensor(crop: np.ndarray) -> torch.Tensor:
    """``(S, S, 3)`` uint8 -> ``(3, S, S)`` float32 in [-1, 1] (the datasets' scaling)."""
    img = crop.astype(np.float32) * np.float32(1 / 127.5) - np.float32(1.0)
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """``(T, 3, S, S)`` in [-1, 1] -> ``(T, S, S, 3)`` uint8."""
    img = ((frames.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return img.permute(0, 2, 3, 1).contiguous().numpy()


# ----------------------------------------------------------------------------- paste-back


def lower_face_polygon(size: int, points: np.ndarray | None = None, jaw_drop: float = 0.06,
                       shrink: float = 0.94) -> np.ndarray:
    """The paste-back region in crop pixels: hull of the jaw line and the nose tip
    (:data:`LOWER_FACE`) of ``points`` (``(68, 2)`` crop pixels; the template when None), chin
    points lowered by ``jaw_drop * size`` (an open mouth drops the jaw), shrunk towards its
    centre by ``shrink`` (the feathering then fades out near the face's edge, not outside
    it). Returns ``(N, 2)`` float32 convex-hull points."""
    import cv2

    pts = (template(size) if points is None else np.asarray(points, np.float32))[LOWER_FACE]
    pts = pts.copy()
    chin = np.isin(LOWER_FACE, CHIN)
    pts[chin, 1] = np.minimum(pts[chin, 1] + jaw_drop * size, size - 1)
    centre = pts.mean(axis=0)
    pts = centre + shrink * (pts - centre)
    return cv2.convexHull(pts.astype(np.float32))[:, 0]


def paste_back(photo: np.ndarray, frames: np.ndarray, transform: np.ndarray,
               landmarks: np.ndarray | None = None, *, feather: float = 0.03,
               match_colour: bool = True) -> np.ndarray:
    """Put generated crops back into the photo: the whole photo, with a talking face.

    Each crop is warped into the photo with the inverse of ``transform`` and blended under a
    mask of the lower face (:func:`lower_face_polygon` of the photo's ``landmarks``, or of
    the template when they are not given, mapped into the photo) blurred by a
    Gaussian of ``feather`` crop widths. Outside the mask the photo is untouched. With
    ``match_colour`` the crops are first shifted (per channel, one shift for the whole clip)
    so that their mean colour under the mask is the photo's there.

    Args:
        photo: ``(H, W, 3)`` uint8 RGB. frames: ``(T, S, S, 3)`` uint8 generated crops.
        transform: ``(2, 3)`` photo -> crop, as in :class:`FaceCrop`.
        landmarks: ``(68, 2)`` photo pixels (:attr:`FaceCrop.landmarks`), or None.

    Returns:
        ``(T, H, W, 3)`` uint8.
    """
    import cv2

    photo = np.asarray(photo)
    frames = np.asarray(frames)
    h, w = photo.shape[:2]
    s = frames.shape[1]
    m = np.asarray(transform, np.float64)
    inv = cv2.invertAffineTransform(m)
    scale = 1.0 / np.sqrt(abs(np.linalg.det(m[:, :2])))  # photo pixels per crop pixel
    poly = lower_face_polygon(s, None if landmarks is None else
                              transform_points(np.asarray(landmarks, np.float32), m.astype(np.float32)))
    if match_colour:
        crop_mask = np.zeros((s, s), np.uint8)
        cv2.fillConvexPoly(crop_mask, np.round(poly).astype(np.int32), 1)
        reference = cv2.warpAffine(photo, m, (s, s), flags=cv2.INTER_AREA,
                                   borderMode=cv2.BORDER_REPLICATE)
        inside = crop_mask.astype(bool)
        shift = reference[inside].mean(axis=0) - frames[:, inside].reshape(-1, 3).mean(axis=0)
        frames = np.clip(frames + shift, 0, 255).astype(np.uint8)
    # the mask at photo resolution (smooth edges, whatever the upscaling)
    mask = np.zeros((h, w), np.float32)
    photo_poly = transform_points(poly, inv.astype(np.float32))
    cv2.fillConvexPoly(mask, np.round(photo_poly * 16).astype(np.int32), 1.0,
                       lineType=cv2.LINE_AA, shift=4)
    sigma = max(feather * s * scale, 0.5)
    mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    ys, xs = np.nonzero(mask > 1e-3)
    out = np.repeat(photo[None], len(frames), axis=0)
    if len(xs) == 0:  # the face lies outside the photo
        return out
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    alpha = mask[y0:y1, x0:x1, None]
    roi_inv = inv.copy()
    roi_inv[:, 2] -= (x0, y0)
    base = photo[y0:y1, x0:x1].astype(np.float32)
    for k, crop in enumerate(frames):
        warped = cv2.warpAffine(crop, roi_inv, (int(x1 - x0), int(y1 - y0)),
                                flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        blend = base + alpha * (warped.astype(np.float32) - base)
        out[k, y0:y1, x0:x1] = np.clip(np.round(blend), 0, 255).astype(np.uint8)
    return out


_paste_back = paste_back  # generate_video's argument of the same name hides the function


# ----------------------------------------------------------------------------- the whole run


def n_video_frames(n_samples: int, sr: int, fps: float = FPS) -> int:
    """``ceil(duration * fps)``: enough frames to cover the whole recording (at least 1)."""
    return max(1, math.ceil(round(n_samples * fps / sr, 6)))


def load_speech(path: str | os.PathLike) -> tuple[np.ndarray, int, np.ndarray]:
    """The recording at its own rate (for the video), and at 16 kHz (for the MFCCs).

    Returns ``(audio (n,), sr, audio_16k (m,))``, mono float32. Raises FileNotFoundError or
    :class:`~coursekit.audio.AudioError` naming the file (empty, undecodable, silent).
    """
    sound, sr = load_audio(path, sr=None)
    if is_silent(sound):
        raise AudioError(f"{path}: no speech: the audio is silent (peak "
                         f"{peak_dbfs(sound):.1f} dBFS)")
    speech = sound if sr == SAMPLE_RATE else resample(sound, sr, SAMPLE_RATE)
    return sound, sr, speech


def generate_video(checkpoint: str | os.PathLike, face: str | os.PathLike,
                   audio: str | os.PathLike, out: str | os.PathLike, *,
                   paste_back: bool = False, device: str = "cpu", seed: int = 0,
                   steps: int | None = None, progress: bool = True,
                   view_size: int | None = VIEW_SIZE,
                   detector: LandmarkDetector | None = None) -> Path:
    """Make ``out`` (mp4: H.264 at 25 fps + AAC) of the face in the photo ``face`` saying
    ``audio``; see the module docstring for the steps.

    Args:
        checkpoint: a generator checkpoint (:func:`load_generator`).
        face: a photo with a frontal face (the largest face is used).
        audio: any speech recording (wav, flac, mp3, or a video's sound).
        out: the ``.mp4`` to write (atomically; folders are created).
        paste_back: frames are the whole photo (its size, reduced to
            :data:`MAX_PHOTO_SIDE` and to even dimensions) instead of the face crop.
        device: ``cpu``, ``cuda``, ``auto``, ... seed, steps: for sampling renderers.
        progress: a tqdm bar while frames are made.
        view_size: crops smaller than this are enlarged to it (without paste-back).

    Returns:
        ``out``. The video has ``ceil(duration * 25)`` frames; the audio stream is the whole
        input recording.

    Raises:
        FileNotFoundError, :class:`~coursekit.audio.AudioError` (empty, silent, undecodable),
        :class:`InferError` (unreadable image, unknown renderer),
        :class:`~coursekit.face.FaceError` (no face); every message names the file.
    """
    import cv2

    face, audio, out = Path(face), Path(audio), Path(out)
    for path, what in ((checkpoint, "checkpoint"), (face, "image"), (audio, "audio")):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such {what} file")
    if out.suffix.lower() != ".mp4":
        raise InferError(f"{out}: the output must be an .mp4 file")
    sound, sr, speech = load_speech(audio)
    n_frames = n_video_frames(len(sound), sr)
    windows = mfcc_windows(speech, SAMPLE_RATE, n_frames)
    photo = read_image(face)
    generator = load_generator(checkpoint, device)
    found = crop_face(photo, generator.image_size, detector, source=str(face))
    frames = generator(to_tensor(found.crop), generator.normalize(windows), seed=seed,
                       steps=steps, progress=progress)
    crops = to_uint8(frames)
    if paste_back:
        h, w = photo.shape[:2]
        photo = photo[: h - h % 2, : w - w % 2]  # H.264 (yuv420p) needs even sizes
        video = _paste_back(photo, crops, found.transform, found.landmarks)
    elif view_size and crops.shape[1] < view_size:
        video = np.stack([cv2.resize(c, (view_size, view_size), interpolation=cv2.INTER_CUBIC)
                          for c in crops])
    else:
        video = crops
    return write_video(out, video, FPS, sound, sr)
