"""The warp generator (coursekit.infer.warp), the default of `coursekit generate`: the photo's
own pixels moved by the speech, exact above the nose, still in silence."""

import json
import math
import subprocess
import sys

import cv2
import numpy as np
import pytest
import soundfile
import torch

from coursekit import assets, infer, warp
from coursekit.audio import load_audio
from coursekit.checkpoint import load_checkpoint, save_model
from coursekit.data.corpus import SAMPLES_DIR
from coursekit.face import LandmarkDetector, transform_points
from coursekit.infer.warp_frames import crop_frames, photo_frames
from coursekit.video import probe_streams, read_video

skimage_data = pytest.importorskip("skimage.data")

UTTERANCE = SAMPLES_DIR / "spk5" / "audio" / "lgad2s.flac"  # spk5: never trained on
FPS = 25


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """The astronaut as a PNG file (a real photo, never trained on)."""
    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    path.write_bytes(cv2.imencode(".png", skimage_data.astronaut()[..., ::-1])[1].tobytes())
    return path


@pytest.fixture(scope="module")
def half_silent(tmp_path_factory):
    """``(wav, speech seconds)``: the utterance, then as long again of the samples' faint
    background hiss (-55 dBFS, where Audio2AU alone would hear an open jaw)."""
    speech, sr = load_audio(UTTERANCE)
    rng = np.random.default_rng(0)
    hiss = (rng.standard_normal(len(speech)) * 10 ** (-55 / 20) / 3).astype(np.float32)
    path = tmp_path_factory.mktemp("audio") / "half_silent.wav"
    soundfile.write(path, np.concatenate([speech, hiss]), sr)
    return path, len(speech) / sr


@pytest.fixture(scope="module")
def generator():
    return infer.load_generator()


@pytest.fixture(scope="module")
def detector():
    return LandmarkDetector()


@pytest.fixture(scope="module")
def video(generator, photo, half_silent, detector, tmp_path_factory):
    """The paste-back video of the astronaut saying the half-silent recording."""
    out = tmp_path_factory.mktemp("video") / "astronaut.mp4"
    infer.generate_video(generator, photo, half_silent[0], out, paste_back=True,
                         progress=False, detector=detector)
    return out


def test_the_default_generator_is_the_warp_generator(generator):
    assert isinstance(generator, infer.WarpGenerator) and generator.name == "warp"
    assert generator.image_size == 112
    assert infer.generator_path(None) == assets.default_generator() == infer.generator_path("warp")
    assert infer.generator_path("diffusion") == assets.TINY_DIR / "diffusion.pt"
    # the motion model's audio map belongs to the shipped Audio2AU (fitted on its validation clips)
    a2u = load_checkpoint(assets.asset_path("grid/audio2au.pt"), kind="audio2au")
    motion = load_checkpoint(assets.asset_path("grid/motion.pt"), kind="motion")
    assert set(motion.meta["audio_map_fitted_on"]) <= set(a2u.meta["val_clips"])
    assert assets.asset_path("grid/audio2au.pt").stat().st_size < 3e6


def test_bad_warp_files_fail_in_one_line(tmp_path):
    bad = tmp_path / "gen.json"
    bad.write_text('{"kind": "other"}')
    with pytest.raises(infer.InferError, match=r"gen\.json: not a 'warp_generator' file"):
        infer.load_generator(bad)
    bad.write_text('{"kind": "warp_generator", "audio2au": "none.pt"}')
    with pytest.raises(infer.InferError, match=r"gen\.json: its audio2au checkpoint .*none\.pt"):
        infer.load_generator(bad)
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        infer.load_generator(tmp_path / "nothing.json")


def test_speech_activity():
    rng = np.random.default_rng(0)
    speech, sr = load_audio(UTTERANCE)
    quiet = np.zeros(sr, np.float32)
    gate = infer.speech_activity(np.concatenate([speech, quiet]), 25 * (len(speech) // sr + 1))
    assert gate.max() == 1 and (gate[-15:] == 0).all()
    hum = (0.1 * rng.standard_normal(sr)).astype(np.float32)  # no pause: all speech
    assert (infer.speech_activity(hum, 25) == 1).all()


def test_crop_path_is_gated_like_the_photo_path(generator, half_silent):
    """The evaluation path (identity crop + MFCC windows) gates the AUs by the recording
    passed as ``speech``: still in the silent half, moving in the speech; without the
    recording the silent half moves (the hiss sounds like speech to Audio2AU)."""
    from coursekit.audio import mfcc_windows

    path, seconds = half_silent
    audio, _ = load_audio(path)
    windows = mfcc_windows(audio)
    crop = torch.from_numpy(cv2.resize(skimage_data.astronaut(), (112, 112))).permute(2, 0, 1)
    identity = crop.float() / 127.5 - 1
    cut = int(seconds * FPS) + 3

    def motion(**kw):
        frames = generator(identity, generator.normalize(windows), **kw)
        return (frames[1:] - frames[:-1]).abs().mean(dim=(1, 2, 3)).numpy()

    gated, ungated = motion(speech=audio), motion()
    assert gated[cut:].max() == 0 and gated[:cut].max() > 0.002
    assert ungated[cut:].max() > 0.002


def test_evaluation_reads_the_clips_recording(tmp_path):
    from coursekit.evaluate.rows import clip_speech

    clip = tmp_path / "spk5" / "lgad2s"
    clip.mkdir(parents=True)
    (clip / "meta.json").write_text(json.dumps({"audio": str(UTTERANCE)}))
    speech = clip_speech({"dir": "spk5/lgad2s"}, tmp_path, n_frames=10)
    assert speech.shape == (6400,) and np.abs(speech).max() > 0
    (clip / "meta.json").write_text(json.dumps({"audio": str(tmp_path / "gone.flac")}))
    assert clip_speech({"dir": "spk5/lgad2s"}, tmp_path, n_frames=10) is None


def test_paste_back_video(video, photo, half_silent, detector):
    """Right frame count and sound; above the nose the photo itself (only compression);
    the mouth moves while she speaks and is still in the silent half."""
    speech_s = half_silent[1]
    assert probe_streams(video) == {"video", "audio"}
    frames, fps = read_video(video)
    duration = 2 * speech_s
    assert fps == FPS and len(frames) == math.ceil(round(duration * FPS, 6))
    sound, rate = load_audio(video, sr=None)
    assert abs(sound.size / rate - duration) < 0.05
    image = skimage_data.astronaut()
    assert frames.shape[1:] == image.shape
    found = infer.crop_face(image, 112, detector)
    nose = int(found.landmarks[30, 1])  # the nose tip
    mse = ((frames[:, :nose].astype(np.float64) - image[:nose]) ** 2).mean(axis=(1, 2, 3))
    assert (10 * np.log10(255 ** 2 / mse)).min() >= 35
    lips = found.landmarks[48:68]
    (x0, y0), (x1, y1) = lips.min(0).astype(int), lips.max(0).astype(int)
    mouth = frames[:, y0 - 5:y1 + 15, x0 - 5:x1 + 5].astype(np.float32)
    split = int(speech_s * FPS)
    talking = mouth[:split].std(axis=0).mean()
    silent = mouth[split + 10:]  # after the speech's last window and the smoothing
    still = np.abs(silent - silent[0]).max(axis=-1).mean()
    assert talking > 4 and still < 0.5, (talking, still)
    assert np.abs(silent - image[y0 - 5:y1 + 15, x0 - 5:x1 + 5]).mean() < 4  # the photo's mouth


def test_exact_outside_the_moving_region(generator, detector):
    """Raw frames (before encoding): bit-exact photo above the nose and in silence; the crop
    path makes the aligned crops."""
    image = skimage_data.astronaut()
    found = infer.crop_face(image, 112, detector)
    speech, sr = load_audio(UTTERANCE)
    from coursekit.audio import mfcc_windows

    n = 50
    motion = generator.audio_motion(mfcc_windows(speech, sr, n), speech)
    motion[-5:] = 0
    frames = np.concatenate(list(photo_frames(image, found.crop, found.transform,
                                              found.landmarks, motion, chunk=16)))
    assert frames.shape == (n, *image.shape)
    nose = int(found.landmarks[30, 1]) - 1
    assert np.array_equal(frames[:, :nose], np.broadcast_to(image[:nose], frames[:, :nose].shape))
    assert (frames[-5:] == image).all() and (frames[:-5] != image).any()
    source = transform_points(found.landmarks, found.transform)
    crops = crop_frames(found.crop, source, motion)
    assert crops.shape == (n, 112, 112, 3) and (crops[-1] == found.crop).all()


def test_a_painter_changes_only_the_mouth(generator, detector, tmp_path):
    """With a painter (here an untrained one) the frame is the warped photo outside the
    painted mouth; the painter part of the generator file is used when present."""
    from coursekit.models.painter import Painter, PainterConfig

    torch.manual_seed(0)
    painter = Painter(PainterConfig.tiny())
    for p in painter.head.parameters():
        torch.nn.init.normal_(p, 0, 0.05)
    save_model(tmp_path / "painter.pt", "painter", painter, painter.cfg)
    grid = assets.asset_path("grid")
    (tmp_path / "gen.json").write_text(json.dumps({
        "kind": "warp_generator", "audio2au": str(grid / "audio2au.pt"),
        "motion": str(grid / "motion.pt"), "painter": "painter.pt"}))
    painted = infer.load_generator(tmp_path / "gen.json")
    assert painted.painter is not None
    image = skimage_data.astronaut()
    found = infer.crop_face(image, 112, detector)
    motion = np.zeros((2, 33, 2), np.float32)
    down = np.searchsorted(warp.MOVING, np.r_[5:12, 55:60, 65:68])
    motion[:, down, 1] = 0.1  # the jaw and the lower lip drop: the mouth opens
    args = (image, found.crop, found.transform, found.landmarks, motion)
    plain = next(photo_frames(*args))
    with_painter = next(photo_frames(*args, painted.painter))
    changed = np.abs(with_painter.astype(int) - plain).max(axis=(0, -1)) > 0
    ys, xs = np.nonzero(changed)
    lips = found.landmarks[48:68]
    assert len(ys) and ys.min() >= found.landmarks[30, 1] and ys.max() <= lips[:, 1].max() + 40
    assert xs.min() >= lips[:, 0].min() - 20 and xs.max() <= lips[:, 0].max() + 20


def test_generate_command_without_a_checkpoint(photo, tmp_path):
    out = tmp_path / "talk.mp4"
    proc = subprocess.run([sys.executable, "-m", "coursekit.cli", "generate", "--face", str(photo),
                           "--audio", str(UTTERANCE), "--out", str(out), "--threads", "2"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    frames = read_video(out)[0]
    duration = load_audio(UTTERANCE)[0].size / 16000
    assert len(frames) == math.ceil(round(duration * FPS, 6))
    assert frames.shape[1:] == (infer.VIEW_SIZE, infer.VIEW_SIZE, 3)
    motion = frames.astype(np.float32).std(axis=0).mean(axis=-1)
    s = infer.VIEW_SIZE
    assert motion[int(0.6 * s):int(0.85 * s), int(0.3 * s):int(0.7 * s)].mean() > 2
    assert motion[: int(0.3 * s)].mean() < 1  # above the nose: the photo, still


def test_widgets_session_opens_the_default(detector, tmp_path):
    from coursekit import widgets

    session = widgets.Session.open(None, detector=detector)
    assert session.name == "warp" and session.image_size == 112
    assert session.video_generator() is session.generator


def test_frames_streamed_to_the_encoder(tmp_path):
    """Chunks made in a background thread go to ffmpeg as they come; an error while making
    them stops the encoder and leaves no file behind."""
    from coursekit.infer.run import prefetch
    from coursekit.video import write_video

    chunk = np.zeros((3, 16, 16, 3), np.uint8)
    out = write_video(tmp_path / "ok.mp4", prefetch(iter([chunk, chunk + 100])), FPS)
    frames = read_video(out)[0]
    assert len(frames) == 6 and frames[:3].max() < 5 and frames[3:].min() > 90

    def broken():
        yield chunk
        raise RuntimeError("no more frames")

    with pytest.raises(RuntimeError, match="no more frames"):
        write_video(tmp_path / "broken.mp4", prefetch(broken()), FPS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.mp4"]
