"""Notebook widgets: AU-driven frames, the generator app's callback and its error messages."""

import dataclasses
import datetime

import cv2
import ipywidgets
import numpy as np
import pytest
import soundfile
import torch

from coursekit import widgets
from coursekit.assets import TINY_DIR
from coursekit.data.corpus import SAMPLES_DIR
from coursekit.face import LandmarkDetector, template
from coursekit.checkpoint import read_checkpoint, save_model

CHECKPOINTS = TINY_DIR
DIFFUSION = CHECKPOINTS / "diffusion.pt"
TALKER = CHECKPOINTS / "talker.pt"
NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
trained = pytest.mark.skipif(
    not DIFFUSION.is_file(), reason="coursekit/assets/tiny/diffusion.pt missing "
    "(python benchmarks/diffusion_tiny.py --save coursekit/assets/tiny)")


@pytest.fixture(scope="module")
def detector():
    return LandmarkDetector()


@pytest.fixture(scope="module")
def renderer():
    return widgets.load_diffusion(DIFFUSION)


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory):
    """An untrained tiny diffusion renderer (shapes and plumbing only)."""
    from coursekit.models.config import DiffusionConfig
    from coursekit.models.diffusion import DiffusionTalker

    torch.manual_seed(0)
    cfg = DiffusionConfig.tiny()
    meta = read_checkpoint(CHECKPOINTS / "audio2au.pt")["meta"]
    return save_model(tmp_path_factory.mktemp("ckpt") / "diffusion.pt", "diffusion",
                      DiffusionTalker(cfg), dataclasses.asdict(cfg),
                      meta={"mfcc_mean": meta["mfcc_mean"], "mfcc_std": meta["mfcc_std"]})


@pytest.fixture(scope="module")
def crop(detector):
    """spk1's face (a training speaker of the tiny renderer), aligned at 64 px."""
    return widgets.crop_face(widgets.sample_faces()["spk1"], 64, detector).crop


def test_render_with_aus_shape_range_and_seed(random_checkpoint, crop):
    model = widgets.load_diffusion(random_checkpoint)
    frame = widgets.render_with_aus(model, crop, [0, 0, 0, 2, 2], steps=3, seed=1)
    assert frame.shape == (3, 64, 64) and frame.dtype == torch.float32
    assert frame.min() >= -1 and frame.max() <= 1
    again = widgets.render_with_aus(model, widgets.to_tensor(crop), np.array([0, 0, 0, 2, 2]),
                                    steps=3, seed=1)
    assert torch.equal(frame, again)  # fixed seed: the same frame
    batch = widgets.render_with_aus(model, crop, [[0, 0, 0, 2, 2], [0, 0, 0, 9, 5]], steps=3,
                                    seed=1)
    assert batch.shape == (2, 3, 64, 64) and torch.equal(batch[0], frame)
    with pytest.raises(ValueError, match="aus must be"):
        widgets.render_with_aus(model, crop, [1, 2, 3], steps=1)


@trained
def test_au25_au26_open_the_mouth(renderer, crop):
    closed, open_ = widgets.render_with_aus(renderer, crop, [[0, 0, 0, 0, 0], [0, 0, 0, 5, 5]],
                                            steps=10, seed=0)
    change = (open_ - closed).abs().mean(0).numpy()  # (S, S)
    mouth_y = template(64)[[51, 57], 1].mean()  # between the lips
    lower = change[int(mouth_y) - 8:int(mouth_y) + 10, 16:48].mean()
    upper = change[:int(template(64)[27, 1])].mean()  # above the nose bridge: eyes, forehead
    assert lower > 0.05, lower
    assert lower > 3 * upper, (lower, upper)


@trained
def test_au_editor_widget(renderer, detector):
    editor = widgets.au_editor(renderer, face=widgets.sample_faces()["spk1"], steps=4,
                               detector=detector)
    assert isinstance(editor, ipywidgets.Widget)
    assert list(editor.sliders) == list(widgets.AUS)
    neutral = editor.frame.copy()
    assert editor.images[1].value[:4] == b"\x89PNG"
    opened = editor.set_aus(AU25=5, AU26=5)
    assert opened.shape == (64, 64, 3) and opened.dtype == np.uint8
    assert np.abs(opened.astype(int) - neutral).mean() > 1
    editor.sliders["AU20"].value = 3.0  # the slider callback renders
    assert editor.aus[2] == 3.0 and "AU20 3.00" in editor.info.value
    assert editor.latency < 10


def test_au_editor_builds_without_a_browser(random_checkpoint, detector):
    editor = widgets.au_editor(random_checkpoint, steps=2, detector=detector)  # the astronaut
    assert isinstance(editor, ipywidgets.Widget) and len(editor.sliders) == 5
    assert all(im.value[:4] == b"\x89PNG" for im in editor.images)
    assert editor.update().shape == (64, 64, 3)


def test_au_editor_needs_a_diffusion_checkpoint():
    with pytest.raises(widgets.InferError, match="diffusion"):
        widgets.au_editor(TALKER)


@pytest.fixture(scope="module")
def app(tmp_path_factory, detector):
    return widgets.generator_app(TALKER, SAMPLES_DIR, tmp_path_factory.mktemp("app"),
                                 detector=detector)


def test_generator_app_makes_a_video(app):
    assert isinstance(app, ipywidgets.Widget)
    assert len(app.face.options) == 7  # 6 sample speakers + the astronaut
    assert len(app.audio.options) == 60
    assert app.preview.value[:4] == b"\x89PNG"
    app.face.value = app.face.options[-1][1]  # the astronaut
    out = app.generate()
    assert out is not None and out.is_file() and out.suffix == ".mp4", app.status.value
    (shown,) = app.output.outputs
    assert shown["data"]["text/html"].startswith("<video")
    assert "base64" in shown["data"]["text/html"]
    assert app.progress.value == app.progress.max and "done" in app.status.value
    assert not app.button.disabled


def test_generator_app_readable_errors(app, tmp_path):
    ok, png = cv2.imencode(".png", np.full((240, 240, 3), 128, np.uint8))
    app.add_face("grey photo.png", png.tobytes())
    assert app.face.label == "your photo: grey photo.png"
    assert app.generate() is None
    assert "no face found in grey photo.png" in app.status.value
    assert "Traceback" not in app.status.value and app.output.outputs == ()

    app.face.index = 0
    silent = tmp_path / "silence.wav"
    soundfile.write(silent, np.zeros(8000, np.float32), 16000)
    app.add_audio("silence.wav", silent.read_bytes())
    assert app.generate() is None
    assert "silence.wav" in app.status.value and "silent" in app.status.value

    app.add_face("notes.txt", b"not an image")
    assert "not a readable image" in app.status.value


def test_generator_app_loads_the_checkpoint_once(tmp_path, detector, monkeypatch):
    from coursekit import infer

    loads = []
    load_generator = infer.load_generator

    def counted(*args, **kwargs):
        loads.append(args)
        return load_generator(*args, **kwargs)

    monkeypatch.setattr(infer, "load_generator", counted)
    app = widgets.generator_app(TALKER, SAMPLES_DIR, tmp_path, detector=detector)
    first, second = app.generate(), app.generate()
    assert first is not None and second is not None, app.status.value
    assert first != second and first.is_file() and second.is_file()
    assert len(loads) == 1  # built once, both clicks reuse the session's generator


def test_session_renders_its_face(random_checkpoint, detector):
    session = widgets.Session.open(random_checkpoint, detector=detector)
    assert session.name == "diffusion" and session.image_size == 64
    session.set_face(widgets.sample_faces()["spk1"])
    frame = session.render([0, 0, 0, 2, 2], steps=2, seed=1)
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    expected = widgets.render_with_aus(session.model, session.crop, [0, 0, 0, 2, 2], steps=2,
                                       seed=1)
    assert np.array_equal(frame, widgets.to_uint8(expected[None])[0])
    assert session.render([[0] * 5, [0, 0, 0, 5, 5]], steps=2).shape == (2, 64, 64, 3)
    editor = widgets.au_editor(session, steps=2)  # the session's face, its model: no reload
    assert editor.session is session and np.array_equal(editor.crop, session.crop)


def test_uploads_go_through_the_file_upload_widgets(app):
    ok, png = cv2.imencode(".png", cv2.cvtColor(widgets.astronaut(), cv2.COLOR_RGB2BGR))
    app.face_upload.value = ({"name": "me.png", "type": "image/png", "size": len(png),
                              "content": memoryview(png.tobytes()), "last_modified": NOW},)
    assert app.face.label == "your photo: me.png" and app.face.value.read_bytes() == png.tobytes()
    assert app.preview.value[:4] == b"\x89PNG"
    flac = sorted((SAMPLES_DIR / "spk2" / "audio").glob("*.flac"))[0].read_bytes()
    app.audio_upload.value = ({"name": "my voice.flac", "type": "audio/flac", "size": len(flac),
                               "content": memoryview(flac), "last_modified": NOW},)
    assert app.audio.label == "your recording: my voice.flac"
    assert app.audio.value.name == "voice_my_voice.flac"
