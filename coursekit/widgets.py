"""Notebook widgets (notebook 08): your own photo and voice -> a talking face; edit a mouth by AUs.

Builders return ``ipywidgets`` widgets whose callbacks are plain methods, so they are built
and tested without a browser (interaction needs a live kernel):

* :func:`generator_app`: pick a face (a shipped sample speaker, scikit-image's astronaut, or
  an uploaded photo) and a voice (a sample utterance or an uploaded recording in any format
  :func:`coursekit.audio.load_audio` reads), set paste-back, DDIM steps and seed, press
  *Generate*: :func:`coursekit.infer.generate_video` writes an mp4 that plays inline.
  Problems (no face in the photo, silent audio, unreadable files) appear as one readable
  line in the widget, not as a traceback. Call :meth:`GeneratorApp.generate` to run it
  without clicking.
* :func:`au_editor`: five sliders, one per speech AU (:data:`coursekit.au.AUS`, intensity
  0-5), edit the mouth directly: every change samples ONE frame of the diffusion renderer
  driven by those AUs instead of audio (:func:`render_with_aus`), shown beside the identity
  crop. With a few DDIM steps and a fixed seed a frame takes a fraction of a second on a CPU.

Shapes: photos ``(H, W, 3)`` RGB uint8; crops ``(S, S, 3)`` uint8; tensors ``(3, S, S)`` in
[-1, 1]; AU intensities ``(5,)`` or ``(N, 5)`` in 0-5, in :data:`coursekit.au.AUS` order.
"""

from __future__ import annotations

import html
import os
import re
import tempfile
import time
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import torch

from .au import AUS
from .audio import AudioError
from .data.corpus import SAMPLES_DIR, list_clips, read_align
from .face import FaceError, LandmarkDetector, transform_points
from .infer import (FaceCrop, InferError, crop_face, generate_video, load_generator, load_speech,
                    n_video_frames, paste_back, read_image, to_tensor, to_uint8)
from .models.diffusion import DiffusionTalker
from .video import VideoError, show_video

AU_NAMES = {"AU10": "upper lip raiser", "AU14": "dimpler", "AU20": "lip stretcher",
            "AU25": "lips part", "AU26": "jaw drop"}
"""FACS names of :data:`coursekit.au.AUS` (slider tooltips and figure labels)."""

EDITOR_VIEW = 192  # pixels per side of the AU editor's images (the crops enlarged)
ERRORS = (FileNotFoundError, AudioError, FaceError, InferError, VideoError, ValueError)
"""Input problems shown as a readable message (anything else: the type and message)."""


# ----------------------------------------------------------------------------- AU rendering


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


def _png(image: np.ndarray, size: int | None = None) -> bytes:
    """PNG bytes of an ``(H, W, 3)`` RGB uint8 image, its longer side scaled to ``size``
    (enlarged by pixel repetition: the model's own pixels, and small PNGs)."""
    import cv2

    if size:
        h, w = image.shape[:2]
        f = size / max(h, w)
        image = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))),
                           interpolation=cv2.INTER_NEAREST if f > 1 else cv2.INTER_AREA)
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return data.tobytes()


class AUEditor(widgets.VBox):
    """Five AU :attr:`sliders` (0-5) and three :attr:`images`: identity crop, AU-driven frame,
    change from all-zero AUs; :attr:`info` gives the :attr:`latency` of the last
    :attr:`frame` ``(S, S, 3)`` uint8. :meth:`update` is the sliders' callback (call it
    directly in tests); :meth:`set_aus` moves several sliders and renders once."""

    def __init__(self, model: DiffusionTalker, crop: np.ndarray, *, steps: int = 10,
                 seed: int = 0, aus=None, view: int = EDITOR_VIEW):
        self.model, self.crop, self.steps, self.seed, self.view = model, crop, steps, seed, view
        self.identity = to_tensor(crop)
        start = np.zeros(len(AUS)) if aus is None else np.asarray(aus, float)
        self.sliders = {au: widgets.FloatSlider(
            value=float(v), min=0.0, max=5.0, step=0.25, description=f"{au} {AU_NAMES[au]}",
            continuous_update=False, readout_format=".2f", style={"description_width": "150px"},
            layout=widgets.Layout(width="460px")) for au, v in zip(AUS, start)}
        self.neutral = self._render(np.zeros(len(AUS)))
        self.images = [widgets.Image(format="png", width=view, height=view) for _ in range(3)]
        self.images[0].value = _png(crop, view)
        titles = ["identity crop", "driven by the AUs", "change from all-zero AUs (x4)"]
        panels = [widgets.VBox([widgets.Label(t), im]) for t, im in zip(titles, self.images)]
        self.info = widgets.Label()
        self._quiet = False
        for slider in self.sliders.values():
            slider.observe(self.update, names="value")
        super().__init__([widgets.HBox(panels), *self.sliders.values(), self.info])
        self.update()

    def _render(self, aus) -> np.ndarray:
        frame = render_with_aus(self.model, self.identity, aus, steps=self.steps, seed=self.seed)
        return to_uint8(frame[None])[0]

    @property
    def aus(self) -> np.ndarray:
        """The sliders' intensities, ``(5,)`` float32 in :data:`coursekit.au.AUS` order."""
        return np.array([self.sliders[au].value for au in AUS], np.float32)

    def update(self, change=None) -> np.ndarray:
        """Render the sliders' AUs and show them; returns the frame ``(S, S, 3)`` uint8."""
        if self._quiet:
            return self.frame
        start = time.perf_counter()
        self.frame = self._render(self.aus)
        self.latency = time.perf_counter() - start
        diff = np.abs(self.frame.astype(np.int16) - self.neutral).clip(0, 63).astype(np.uint8) * 4
        self.images[1].value = _png(self.frame, self.view)
        self.images[2].value = _png(diff, self.view)
        self.info.value = (f"one frame in {self.latency:.2f} s ({self.steps} DDIM steps, "
                           f"seed {self.seed}); AUs " +
                           ", ".join(f"{au} {v:.2f}" for au, v in zip(AUS, self.aus)))
        return self.frame

    def set_aus(self, **values: float) -> np.ndarray:
        """Set sliders by name (``set_aus(AU25=3, AU26=2)``), then render once."""
        unknown = set(values) - set(AUS)
        if unknown:
            raise ValueError(f"unknown AUs {sorted(unknown)}; known: {', '.join(AUS)}")
        self._quiet = True
        try:
            for au, v in values.items():
                self.sliders[au].value = float(v)
        finally:
            self._quiet = False
        return self.update()


def load_diffusion(checkpoint: str | os.PathLike, device: str = "cpu") -> DiffusionTalker:
    """The :class:`~coursekit.models.diffusion.DiffusionTalker` of a diffusion checkpoint;
    :class:`~coursekit.infer.InferError` for another renderer (the decoder ignores AUs)."""
    generator = load_generator(checkpoint, device)
    if generator.name != "diffusion":
        raise InferError(f"{checkpoint}: the AU editor needs a diffusion renderer checkpoint, "
                         f"this one is a {generator.name!r} renderer")
    return generator.model


def au_editor(checkpoint: str | os.PathLike | DiffusionTalker, face=None, *, steps: int = 10,
              seed: int = 0, aus=None, device: str = "cpu",
              detector: LandmarkDetector | None = None) -> AUEditor:
    """An :class:`AUEditor` for the face of ``face``.

    Args:
        checkpoint: a diffusion renderer checkpoint (or an already loaded model).
        face: a photo's path, an ``(H, W, 3)`` uint8 RGB image, or None for the astronaut;
            its largest face is cropped as in training (:func:`coursekit.infer.crop_face`).
        steps, seed: DDIM steps and noise of every frame (few steps: fast previews).
        aus: the sliders' starting intensities ``(5,)`` (zeros when None).

    Raises:
        :class:`~coursekit.face.FaceError` (no face), InferError (not a diffusion checkpoint).
    """
    model = (checkpoint if isinstance(checkpoint, DiffusionTalker)
             else load_diffusion(checkpoint, device))
    if face is None:
        photo, source = astronaut(), "the astronaut"
    elif isinstance(face, np.ndarray):
        photo, source = face, "the image"
    else:
        photo, source = read_image(face), str(face)
    found = crop_face(photo, model.image_size, detector, source=source)
    return AUEditor(model, found.crop, steps=steps, seed=seed, aus=aus)


# ----------------------------------------------------------------------------- faces and voices


def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo ``(512, 512, 3)`` uint8 (bundled: no download)."""
    from skimage import data

    return data.astronaut()


def sample_faces(samples_dir: str | os.PathLike = SAMPLES_DIR) -> dict[str, np.ndarray]:
    """``{speaker: first frame (H, W, 3) uint8 of its first video}`` of a GRID-layout corpus."""
    import cv2

    faces = {}
    for clip in list_clips(samples_dir):
        if clip.speaker in faces:
            continue
        cap = cv2.VideoCapture(str(clip.video))
        ok, bgr = cap.read()
        cap.release()
        if ok:
            faces[clip.speaker] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return faces


def sample_utterances(samples_dir: str | os.PathLike = SAMPLES_DIR) -> dict[str, Path]:
    """``{label: audio path}`` of every clip, labelled ``spk1 bgif7s "bin green ..." (3.2 s)``."""
    import soundfile

    found = {}
    for clip in list_clips(samples_dir):
        words = ""
        if clip.align:
            words = " ".join(w for _, _, w in read_align(clip.align) if w not in ("sil", "sp"))
        try:
            seconds = f" ({soundfile.info(str(clip.audio_source)).duration:.1f} s)"
        except Exception:  # a video's sound: soundfile cannot tell its length
            seconds = ""
        found[f'{clip.speaker} {clip.utt_id} "{words}"{seconds}'] = clip.audio_source
    return found


def uploaded_files(upload: widgets.FileUpload) -> list[tuple[str, bytes]]:
    """``[(file name, content)]`` of an ipywidgets 8 ``FileUpload``."""
    return [(str(item["name"]), bytes(item["content"])) for item in upload.value]


def _safe_name(name: str) -> str:
    return (re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._") or "upload")[-80:]


def readable_error(err: BaseException, names: dict[str, str] | None = None) -> str:
    """One line for a student: the error's message with temporary paths replaced by the names
    the student knows (``names``: path -> label), no traceback."""
    text = str(err) if isinstance(err, ERRORS) else f"{type(err).__name__}: {err}"
    for path, label in (names or {}).items():
        text = text.replace(path, label)
    return text


# ----------------------------------------------------------------------------- generator app


class GeneratorApp(widgets.VBox):
    """Face + voice pickers (``Dropdown`` of file paths: :attr:`face`, :attr:`audio`; uploads
    are added and selected), options (:attr:`paste`, :attr:`steps`, :attr:`seed`), a
    :attr:`button`, :attr:`progress` over the stages, a :attr:`status` line (progress, result
    or error), a :attr:`preview` of the photo and the :attr:`output` that plays the video.
    :meth:`generate` is the button's callback, :meth:`add_face` / :meth:`add_audio` what the
    uploads do; files go to :attr:`work_dir`."""

    def __init__(self, checkpoint: str | os.PathLike, samples_dir=SAMPLES_DIR,
                 work_dir: str | os.PathLike | None = None, *, steps: int = 10, seed: int = 0,
                 device: str = "cpu", detector: LandmarkDetector | None = None):
        self.checkpoint, self.device = Path(checkpoint), device
        generator = load_generator(self.checkpoint, device)  # fail early on a bad checkpoint
        self.renderer = generator.name
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="coursekit_app_"))
        (self.work_dir / "inputs").mkdir(parents=True, exist_ok=True)
        self.detector = detector or LandmarkDetector()
        self.labels: dict[str, str] = {}  # path -> what the student calls it
        self.last_video: Path | None = None

        faces = [(f"{spk} (sample speaker)", self._save_image(img, f"{spk}.png"))
                 for spk, img in sample_faces(samples_dir).items()]
        try:
            faces.append(("astronaut photo", self._save_image(astronaut(), "astronaut.png")))
        except ImportError:  # scikit-image is a course extra
            pass
        for label, path in faces:
            self.labels[str(path)] = label
        voices = list(sample_utterances(samples_dir).items())
        self.face = widgets.Dropdown(options=faces, description="face",
                                     layout=widgets.Layout(width="360px"))
        self.audio = widgets.Dropdown(options=voices, description="voice",
                                      layout=widgets.Layout(width="520px"))
        self.face_upload = widgets.FileUpload(accept="image/*", multiple=False,
                                              description="your photo")
        self.audio_upload = widgets.FileUpload(accept="audio/*,video/*,.wav,.flac,.mp3,.ogg,"
                                               ".m4a,.mp4,.webm", multiple=False,
                                               description="your voice")
        self.paste = widgets.Checkbox(value=False, description="paste back into the photo")
        self.steps = widgets.IntSlider(value=steps, min=1, max=50, description="DDIM steps",
                                       disabled=self.renderer != "diffusion",
                                       style={"description_width": "80px"})
        self.seed = widgets.IntText(value=seed, description="seed",
                                    layout=widgets.Layout(width="160px"))
        self.button = widgets.Button(description="Generate", button_style="primary",
                                     icon="play")
        self.progress = widgets.IntProgress(value=0, min=0, max=3, description="",
                                            layout=widgets.Layout(width="240px"))
        self.status = widgets.HTML(f"renderer: {self.renderer} ({self.checkpoint.name})")
        self.preview = widgets.Image(format="png", width=160)
        self.output = widgets.Output()
        self.face_upload.observe(self._on_face_upload, names="value")
        self.audio_upload.observe(self._on_audio_upload, names="value")
        self.face.observe(self._show_face, names="value")
        self.button.on_click(self.generate)
        controls = widgets.VBox([
            widgets.HBox([self.face, self.face_upload]),
            widgets.HBox([self.audio, self.audio_upload]),
            widgets.HBox([self.paste, self.steps, self.seed]),
            widgets.HBox([self.button, self.progress]), self.status])
        super().__init__([widgets.HBox([self.preview, controls]), self.output])
        self._show_face()

    # --- inputs

    def _save_image(self, image: np.ndarray, name: str) -> Path:
        import cv2

        path = self.work_dir / "inputs" / name
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        return path

    def _save_upload(self, name: str, content: bytes, kind: str) -> Path:
        path = self.work_dir / "inputs" / f"{kind}_{_safe_name(name)}"
        path.write_bytes(content)
        self.labels[str(path)] = name
        return path

    def add_face(self, name: str, content: bytes) -> Path:
        """An uploaded photo (file name, bytes): saved, added to the face list and selected."""
        path = self._save_upload(name, content, "face")
        self.face.options = [*self.face.options, (f"your photo: {name}", path)]
        self.face.value = path
        return path

    def add_audio(self, name: str, content: bytes) -> Path:
        """An uploaded recording (file name, bytes): saved, added to the voices and selected."""
        path = self._save_upload(name, content, "voice")
        self.audio.options = [*self.audio.options, (f"your recording: {name}", path)]
        self.audio.value = path
        return path

    def _on_face_upload(self, change) -> None:
        for name, content in uploaded_files(self.face_upload):
            self.add_face(name, content)

    def _on_audio_upload(self, change) -> None:
        for name, content in uploaded_files(self.audio_upload):
            self.add_audio(name, content)

    def _show_face(self, change=None) -> None:
        try:
            self.preview.value = _png(read_image(self.face.value), 160)
        except ERRORS as err:
            self.preview.value = b""
            self._error(err, "Cannot use this photo")

    # --- running

    def _say(self, text: str, colour: str = "#333") -> None:
        self.status.value = f'<span style="color:{colour}">{html.escape(text)}</span>'

    def _error(self, err: BaseException, what: str = "Could not make the video") -> str:
        message = readable_error(err, self.labels)
        self._say(f"{what}: {message}", "#b00020")
        self.progress.bar_style = "danger"
        return message

    def generate(self, button=None) -> Path | None:
        """Make the video of the chosen face and voice and show it in :attr:`output`.

        Returns the mp4's path, or None when an input was unusable (the reason is then in
        :attr:`status`)."""
        self.button.disabled = True
        self.output.outputs = ()
        self.progress.value, self.progress.bar_style = 0, "info"
        face, audio = Path(self.face.value), Path(self.audio.value)
        steps = self.steps.value if self.renderer == "diffusion" else None
        out = self.work_dir / f"talk_{len(list(self.work_dir.glob('talk_*.mp4'))) + 1:03d}.mp4"
        start = time.perf_counter()
        try:
            self._say("reading the voice ...")
            sound, sr, _ = load_speech(audio)
            n_frames = n_video_frames(len(sound), sr)
            self.progress.value = 1
            how = f", {steps} DDIM steps" if steps else ""
            self._say(f"finding the face, rendering {n_frames} frames ({self.renderer}{how}) ...")
            generate_video(self.checkpoint, face, audio, out, paste_back=self.paste.value,
                           device=self.device, seed=int(self.seed.value), steps=steps,
                           progress=False, detector=self.detector)
            self.progress.value = 2
            video = show_video(out, width=320 if self.paste.value else 256)
            self.output.outputs = ({"output_type": "display_data", "metadata": {},
                                    "data": {"text/html": video.data,
                                             "text/plain": f"<video {out.name}>"}},)
        except Exception as err:  # every problem becomes one readable line
            self._error(err)
            return None
        finally:
            self.button.disabled = False
        self.progress.value, self.progress.bar_style = 3, "success"
        self.last_video = out
        self._say(f"done in {time.perf_counter() - start:.1f} s: {n_frames} frames, "
                  f"{len(sound) / sr:.2f} s of sound -> {out}")
        return out


def generator_app(checkpoint: str | os.PathLike, samples_dir: str | os.PathLike = SAMPLES_DIR,
                  out_dir: str | os.PathLike | None = None, **options) -> GeneratorApp:
    """A :class:`GeneratorApp` for any generator ``checkpoint``: faces from ``samples_dir``
    (first frame of each speaker's first video), the astronaut and uploads; voices: the sample
    utterances and uploads; inputs and videos go to ``out_dir`` (a temporary folder when None).
    ``options``: ``steps``, ``seed``, ``device``, ``detector``."""
    return GeneratorApp(checkpoint, samples_dir, out_dir, **options)


# ----------------------------------------------------------------------------- figures

AU_SWEEPS = {"AU25 lips part": ((0, 0, 0, 0, 0), (0, 0, 0, 1, 0)),
             "AU25 + AU26 jaw drop": ((0, 0, 0, 0, 0), (0, 0, 0, 1, 1)),
             "AU20 stretch, AU25 = 2": ((0, 0, 0, 2, 0), (0, 0, 1, 0, 0)),
             "AU10 upper lip, AU25 = 2": ((0, 0, 0, 2, 0), (1, 0, 0, 0, 0))}
"""Rows of :func:`au_sweeps`: ``label: (base, direction)``, intensities ``base + v * direction``."""


def au_sweeps(model: DiffusionTalker, identity, levels=(0, 1, 2, 3, 4, 5), sweeps=AU_SWEEPS, *,
              steps: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    """``{label: (N, S, S, 3) uint8}``: the frames of :func:`render_with_aus` for each sweep
    of ``sweeps`` at the N intensities ``levels`` (clipped to 0-5), all from one seed."""
    out = {}
    for label, (base, direction) in sweeps.items():
        aus = np.asarray(base, np.float32) + np.outer(levels, direction).astype(np.float32)
        out[label] = to_uint8(render_with_aus(model, identity, aus, steps=steps, seed=seed))
    return out


def face_regions(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(lower, upper)`` boolean ``(S, S)`` masks of an aligned crop: the paste-back region
    (jaw line to nose tip, :func:`coursekit.infer.lower_face_polygon`) and the rows above the
    brows (forehead), where speech should change nothing."""
    import cv2

    from .face import template
    from .infer import lower_face_polygon

    lower = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(lower, np.round(lower_face_polygon(size)).astype(np.int32), 1)
    upper = np.zeros((size, size), bool)
    upper[: int(template(size)[17:27, 1].min())] = True
    return lower.astype(bool), upper


def region_change(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean absolute difference (grey levels, 0-255) of two crops ``(S, S, 3)`` uint8 in the
    lower face and above the brows (:func:`face_regions`)."""
    diff = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(-1)
    lower, upper = face_regions(a.shape[0])
    return float(diff[lower].mean()), float(diff[upper].mean())


def sweep_figure(frames: dict[str, np.ndarray], levels=(0, 1, 2, 3, 4, 5), zoom: int = 2):
    """A grid of :func:`au_sweeps` frames: one row per sweep, one column per intensity, each
    frame enlarged ``zoom`` times by pixel repetition (the figure maps image pixels 1:1)."""
    import matplotlib.pyplot as plt

    rows, s, gap, left, top = len(frames), next(iter(frames.values())).shape[1] * zoom, 4, 150, 24
    grid = np.full((rows * (s + gap) - gap, len(levels) * (s + gap) - gap, 3), 255, np.uint8)
    for r, row in enumerate(frames.values()):
        for c, frame in enumerate(row):
            grid[r * (s + gap): r * (s + gap) + s, c * (s + gap): c * (s + gap) + s] = \
                frame.repeat(zoom, 0).repeat(zoom, 1)
    h, w = grid.shape[:2]
    dpi = plt.rcParams["figure.dpi"]
    fig = plt.figure(figsize=((w + left) / dpi, (h + top) / dpi))
    ax = fig.add_axes([left / (w + left), 0, w / (w + left), h / (h + top)])
    ax.imshow(grid, interpolation="nearest")
    ax.axis("off")
    for r, label in enumerate(frames):
        ax.text(-8, r * (s + gap) + s / 2, label.replace(", ", "\n"), ha="right", va="center")
    for c, level in enumerate(levels):
        ax.text(c * (s + gap) + s / 2, -6, f"{level:g}", ha="center", va="bottom")
    ax.text(-8, -6, "intensity", ha="right", va="bottom")
    return fig


def paste_mask(photo: np.ndarray, found: FaceCrop, size: int) -> np.ndarray:
    """The feathered paste-back mask of :func:`coursekit.infer.paste_back` in the photo,
    ``(H, W)`` float32 in [0, 1] (1: the generated crop, 0: the photo)."""
    white = np.full((1, size, size, 3), 255, np.uint8)
    pasted = paste_back(np.zeros_like(photo), white, found.transform, found.landmarks,
                        match_colour=False)
    return pasted[0, ..., 0].astype(np.float32) / 255


def inference_figure(photo: np.ndarray, found: FaceCrop, size: int):
    """Detect -> align -> crop -> paste back, as a matplotlib figure: the photo with its 68
    landmarks (the alignment points, eyes and nose, in red) and the crop's square; the
    ``(S, S)`` crop with the training template; the paste-back mask over the photo."""
    import cv2
    import matplotlib.pyplot as plt

    from .face import RIGID_POINTS, template

    inv = cv2.invertAffineTransform(found.transform.astype(np.float64)).astype(np.float32)
    corners = np.array([[0, 0], [size, 0], [size, size], [0, size], [0, 0]], np.float32) - 0.5
    square = transform_points(corners, inv)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    axes[0].imshow(photo)
    axes[0].plot(*found.landmarks.T, ".", color="cyan", ms=2)
    axes[0].plot(*found.landmarks[RIGID_POINTS].T, ".", color="red", ms=3)
    axes[0].plot(*square.T, color="yellow", lw=1)
    axes[0].set_title("1. detect, 68 landmarks")
    axes[1].imshow(found.crop)
    axes[1].plot(*template(size)[RIGID_POINTS].T, "+", color="red", ms=5)
    axes[1].set_title(f"2. aligned crop {size}x{size}")
    axes[2].imshow(photo)
    axes[2].imshow(paste_mask(photo, found, size), cmap="magma", alpha=0.6, vmin=0, vmax=1)
    axes[2].set_title("3. paste-back mask")
    x0, y0, x1, y1 = found.box
    half = 1.3 * max(x1 - x0, y1 - y0)  # zoom on the face, some of the photo around it
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    for ax in axes[[0, 2]]:
        ax.set_xlim(max(cx - half, -0.5), min(cx + half, photo.shape[1] - 0.5))
        ax.set_ylim(min(cy + 1.2 * half, photo.shape[0] - 0.5), max(cy - 0.8 * half, -0.5))
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def motion_figure(videos: dict[str, str | os.PathLike], align: str | os.PathLike | None = None,
                  n: int = 8):
    """How much generated clips' lower faces move, frame by frame, with the words.

    ``videos``: ``{label: crop video}`` of :func:`coursekit.infer.generate_video` (no
    paste-back); ``align``: the utterance's GRID ``.align`` (words shaded). Top: ``n`` frames
    of each clip (lower half of the face); bottom: per frame, the mean absolute difference of
    the lower face from the clip's median frame (grey levels). Returns ``(figure,
    {label: motion (T,)})``."""
    import matplotlib.pyplot as plt

    from .video import read_video

    rows = len(videos)
    fig = plt.figure(figsize=(10, 1.3 * rows + 2.6))
    grid = fig.add_gridspec(rows + 2, n)
    plot = fig.add_subplot(grid[rows:, :])
    motions = {}
    for r, (label, path) in enumerate(videos.items()):
        frames, fps = read_video(path)
        lower, _ = face_regions(frames.shape[1])
        diff = np.abs(frames.astype(np.float32) - np.median(frames, axis=0)).mean(-1)
        motions[label] = diff[:, lower].mean(1)
        half = frames.shape[1] // 2
        for i, k in enumerate(np.linspace(0, len(frames) - 1, n).round().astype(int)):
            ax = fig.add_subplot(grid[r, i])
            ax.imshow(frames[k, half:, half // 4: -half // 4])
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{k / fps:.2f} s", fontsize=8)
            if i == 0:
                ax.set_ylabel(label, fontsize=8)
        plot.plot(np.arange(len(frames)) / fps, motions[label], label=label)
    top = max(m.max() for m in motions.values())
    for start, end, word in (read_align(align) if align else []):
        if word not in ("sil", "sp"):
            plot.axvspan(start, end, color="tab:orange", alpha=0.12)
            plot.text((start + end) / 2, top, word, ha="center", va="bottom", fontsize=9)
    plot.set(xlabel="time (s)", ylabel="lower-face change", xlim=(0, len(frames) / fps))
    plot.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig, motions
