"""The notebook widgets: a talking-face generator app and an AU mouth editor.

Builders return ``ipywidgets`` widgets whose callbacks are plain methods, so they are built
and tested without a browser (interaction needs a live kernel). Both hold a
:class:`~coursekit.widgets.session.Session`: the checkpoint is loaded once, when the widget
is built, and every click or slider move reuses it.

* :func:`generator_app`: pick a face (a shipped sample speaker, scikit-image's astronaut, or
  an uploaded photo) and a voice (a sample utterance or an uploaded recording in any format
  :func:`coursekit.audio.load_audio` reads), set paste-back, DDIM steps and seed, press
  *Generate*: :meth:`Session.video <coursekit.widgets.session.Session.video>` writes an mp4
  that plays inline. Problems (no face in the photo, silent audio, unreadable files) appear
  as one readable line in the widget, not as a traceback. Call :meth:`GeneratorApp.generate`
  to run it without clicking.
* :func:`au_editor`: five sliders, one per speech AU (:data:`coursekit.au.AUS`, intensity
  0-5), edit the mouth directly: every change samples ONE frame of the diffusion renderer
  driven by those AUs instead of audio (:func:`~coursekit.widgets.session.render_with_aus`),
  shown beside the identity crop. With a few DDIM steps and a fixed seed a frame takes a
  fraction of a second on a CPU.

Shapes: photos ``(H, W, 3)`` RGB uint8; crops ``(S, S, 3)`` uint8; AU intensities ``(5,)``
in 0-5, in :data:`coursekit.au.AUS` order.
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

from ..au import AUS
from ..audio import AudioError
from ..data.corpus import SAMPLES_DIR
from ..face import FaceError, LandmarkDetector
from ..infer import Generator, InferError, load_speech, n_video_frames, read_image
from ..models.diffusion import DiffusionTalker
from ..video import VideoError, show_video
from .samples import astronaut, sample_faces, sample_utterances
from .session import Session

AU_NAMES = {"AU10": "upper lip raiser", "AU14": "dimpler", "AU20": "lip stretcher",
            "AU25": "lips part", "AU26": "jaw drop"}
"""FACS names of :data:`coursekit.au.AUS` (slider tooltips and figure labels)."""

EDITOR_VIEW = 192  # pixels per side of the AU editor's images (the crops enlarged)
ERRORS = (FileNotFoundError, AudioError, FaceError, InferError, VideoError, ValueError)
"""Input problems shown as a readable message (anything else: the type and message)."""


# ----------------------------------------------------------------------------- AU editor


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
    directly in tests); :meth:`set_aus` moves several sliders and renders once. Frames come
    from the :attr:`session`'s model and face crop (:meth:`Session.set_face` first)."""

    def __init__(self, session: Session, *, steps: int = 10, seed: int = 0, aus=None,
                 view: int = EDITOR_VIEW):
        self.session, self.steps, self.seed, self.view = session, steps, seed, view
        self.crop = session.crop
        start = np.zeros(len(AUS)) if aus is None else np.asarray(aus, float)
        self.sliders = {au: widgets.FloatSlider(
            value=float(v), min=0.0, max=5.0, step=0.25, description=f"{au} {AU_NAMES[au]}",
            continuous_update=False, readout_format=".2f", style={"description_width": "150px"},
            layout=widgets.Layout(width="460px")) for au, v in zip(AUS, start)}
        self.neutral = self._render(np.zeros(len(AUS)))
        self.images = [widgets.Image(format="png", width=view, height=view) for _ in range(3)]
        self.images[0].value = _png(self.crop, view)
        titles = ["identity crop", "driven by the AUs", "change from all-zero AUs (x4)"]
        panels = [widgets.VBox([widgets.Label(t), im]) for t, im in zip(titles, self.images)]
        self.info = widgets.Label()
        self._quiet = False
        for slider in self.sliders.values():
            slider.observe(self.update, names="value")
        super().__init__([widgets.HBox(panels), *self.sliders.values(), self.info])
        self.update()

    def _render(self, aus) -> np.ndarray:
        return self.session.render(aus, steps=self.steps, seed=self.seed)

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


def au_editor(checkpoint: str | os.PathLike | DiffusionTalker | Generator | Session,
              face=None, *, steps: int = 10, seed: int = 0, aus=None, device: str = "cpu",
              detector: LandmarkDetector | None = None) -> AUEditor:
    """An :class:`AUEditor` for the face of ``face``.

    Args:
        checkpoint: a diffusion renderer checkpoint, or an already loaded model, generator
            or :class:`~coursekit.widgets.session.Session` (used as it is, not reloaded).
        face: a photo's path, an ``(H, W, 3)`` uint8 RGB image, or None (the session's face
            if it has one, else the astronaut); its largest face is cropped as in training
            (:func:`coursekit.infer.crop_face`).
        steps, seed: DDIM steps and noise of every frame (few steps: fast previews).
        aus: the sliders' starting intensities ``(5,)`` (zeros when None).

    Raises:
        :class:`~coursekit.face.FaceError` (no face), InferError (not a diffusion checkpoint).
    """
    session = Session.open(checkpoint, device, detector=detector)
    session.diffusion()  # a decoder checkpoint fails before any face is looked for
    if face is not None or session.found is None:
        session.set_face(face)
    return AUEditor(session, steps=steps, seed=seed, aus=aus)


# ----------------------------------------------------------------------------- uploads, messages


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
    uploads do; files go to :attr:`work_dir`. The checkpoint is loaded once, into
    :attr:`session`, when the app is built (a bad checkpoint fails here, not on a click)."""

    def __init__(self, checkpoint: str | os.PathLike | Generator | Session,
                 samples_dir=SAMPLES_DIR, work_dir: str | os.PathLike | None = None, *,
                 steps: int = 10, seed: int = 0, device: str = "cpu",
                 detector: LandmarkDetector | None = None):
        self.session = Session.open(checkpoint, device, detector=detector)
        self.session.video_generator()  # a bare model cannot make videos: fail here
        self.checkpoint, self.renderer = Path(self.session.source), self.session.name
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="coursekit_app_"))
        (self.work_dir / "inputs").mkdir(parents=True, exist_ok=True)
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
            self.session.video(face, audio, out, paste_back=self.paste.value,
                               seed=int(self.seed.value), steps=steps)
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


def generator_app(checkpoint: str | os.PathLike | Generator | Session,
                  samples_dir: str | os.PathLike = SAMPLES_DIR,
                  out_dir: str | os.PathLike | None = None, **options) -> GeneratorApp:
    """A :class:`GeneratorApp` for any generator ``checkpoint`` (a path, or a loaded
    generator or :class:`~coursekit.widgets.session.Session`): faces from ``samples_dir``
    (first frame of each speaker's first video), the astronaut and uploads; voices: the sample
    utterances and uploads; inputs and videos go to ``out_dir`` (a temporary folder when None).
    ``options``: ``steps``, ``seed``, ``device``, ``detector``."""
    return GeneratorApp(checkpoint, samples_dir, out_dir, **options)
