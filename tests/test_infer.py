"""coursekit generate: any face photo + any voice -> mp4; crops, paste-back, errors."""

import math
import subprocess
import sys

import cv2
import numpy as np
import pytest
import soundfile
import torch

from coursekit import cli, infer
from coursekit.assets import TINY_DIR
from coursekit.audio import AudioError, load_audio, resample
from coursekit.data.corpus import SAMPLES_DIR, list_clips
from coursekit.evaluate import generate
from coursekit.face import RIGID_POINTS, FaceError, LandmarkDetector, template, transform_points
from coursekit.video import probe_streams, read_video

skimage_data = pytest.importorskip("skimage.data")

CHECKPOINT = TINY_DIR / "talker.pt"
UTTERANCE = sorted((SAMPLES_DIR / "spk1" / "audio").glob("*.flac"))[0]


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """The scikit-image astronaut (a real 512 x 512 photo, not a training face) as a PNG."""
    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def detector():
    return LandmarkDetector()


@pytest.fixture(scope="module")
def generator():
    return infer.load_generator(CHECKPOINT)


def run_generate(*args):
    return subprocess.run([sys.executable, "-m", "coursekit.cli", "generate",
                           "--checkpoint", str(CHECKPOINT), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def seconds(path, sr=None):
    audio, rate = load_audio(path, sr=sr)
    return audio.size / rate


def check_lengths(video_path, audio_path):
    """Frames cover the input audio (ceil(s * 25)) and the muxed sound is the whole input."""
    assert probe_streams(video_path) == {"video", "audio"}
    frames, fps = read_video(video_path)
    duration = seconds(audio_path)
    assert fps == 25
    assert abs(len(frames) - math.ceil(duration * 25)) <= 1
    assert abs(seconds(video_path) - duration) < 0.05
    return frames


def test_generate_command_on_a_photo(photo, tmp_path):
    out = tmp_path / "talk.mp4"
    proc = run_generate("--face", photo, "--audio", UTTERANCE, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout
    frames = check_lengths(out, UTTERANCE)
    assert frames.shape[1:] == (infer.VIEW_SIZE, infer.VIEW_SIZE, 3)  # 64 px crops, enlarged
    motion = frames.astype(np.float32).std(axis=0).mean(axis=-1)  # per pixel, over time
    s = infer.VIEW_SIZE
    mouth = motion[int(0.65 * s):int(0.9 * s), int(0.3 * s):int(0.7 * s)].mean()
    top = motion[: int(0.2 * s)].mean()
    assert mouth > 3 and mouth > 3 * top  # the mouth moves, the top of the head hardly
    assert not list(tmp_path.glob(".*tmp*"))


def test_generate_command_paste_back(photo, tmp_path):
    out = tmp_path / "whole.mp4"
    proc = run_generate("--face", photo, "--audio", UTTERANCE, "--out", out, "--paste-back",
                        "--device", "cpu", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    frames = check_lengths(out, UTTERANCE)
    image = skimage_data.astronaut()
    assert frames.shape[1:] == image.shape
    assert np.abs(frames[:, :100, :100].astype(int) - image[:100, :100]).mean() < 4
    motion = frames.astype(np.float32).std(axis=0).mean(axis=-1)
    crop = infer.crop_face(image, 64)
    x, y = crop.landmarks[62].round().astype(int)  # the upper lip
    assert motion[y - 10:y + 10, x - 20:x + 20].mean() > 3
    assert motion[:100].mean() < 0.5  # the photo stays still above the face


def test_stereo_44k_audio(photo, tmp_path):
    speech, sr = load_audio(UTTERANCE)
    speech = resample(speech, sr, 44100)
    stereo = np.stack([0.8 * speech, 0.5 * speech], axis=1)
    wav = tmp_path / "stereo.wav"
    soundfile.write(wav, stereo, 44100)
    out = tmp_path / "stereo.mp4"
    assert cli.main(["generate", "--checkpoint", str(CHECKPOINT), "--face", str(photo),
                     "--audio", str(wav), "--out", str(out)]) == 0
    check_lengths(out, wav)
    assert abs(seconds(out, sr=None) - len(speech) / 44100) < 0.05


def test_frame_count_covers_the_audio():
    assert infer.n_video_frames(48000, 16000) == 75  # exactly 3 s: no extra frame
    assert infer.n_video_frames(48001, 16000) == 76
    assert infer.n_video_frames(10, 16000) == 1
    assert infer.n_video_frames(44100 * 2 + 1, 44100) == 51


# ----------------------------------------------------------------------------- errors


def test_errors_name_the_file(photo, tmp_path, detector):
    speech, sr = load_audio(UTTERANCE)
    wav = tmp_path / "speech.wav"
    soundfile.write(wav, speech, sr)
    out = tmp_path / "out.mp4"
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), np.full((240, 320, 3), 128, np.uint8))
    with pytest.raises(FaceError, match=r"no face found in .*grey\.png"):
        infer.generate_video(CHECKPOINT, grey, wav, out, progress=False, detector=detector)
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(16000, np.float32), 16000)
    with pytest.raises(AudioError, match=r"silent\.wav: no speech"):
        infer.generate_video(CHECKPOINT, photo, silent, out, progress=False)
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match=r"empty\.wav.*empty"):
        infer.generate_video(CHECKPOINT, photo, empty, out, progress=False)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(infer.InferError, match=r"notes\.png: not a readable image"):
        infer.generate_video(CHECKPOINT, text, wav, out, progress=False)
    for missing, args in [("nope.png", (CHECKPOINT, tmp_path / "nope.png", wav)),
                          ("nope.wav", (CHECKPOINT, photo, tmp_path / "nope.wav")),
                          ("nope.pt", (tmp_path / "nope.pt", photo, wav))]:
        with pytest.raises(FileNotFoundError, match=missing):
            infer.generate_video(*args, out, progress=False)
    assert not out.exists()


def test_command_reports_errors_without_a_traceback(photo, tmp_path, capsys):
    code = cli.main(["generate", "--checkpoint", str(CHECKPOINT), "--face", str(photo),
                     "--audio", str(tmp_path / "gone.flac"), "--out", str(tmp_path / "x.mp4")])
    err = capsys.readouterr().err
    assert code == 2 and "error" in err and "gone.flac" in err and "Traceback" not in err


def test_unknown_renderer(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"renderer": "gan", "model": {}, "model_config": {}}, path)
    with pytest.raises(ValueError, match=r"other\.pt: unknown renderer 'gan'.*decoder"):
        infer.load_generator(path)
    torch.save({"weights": {}}, path)
    with pytest.raises(ValueError, match=r"other\.pt: not a coursekit checkpoint"):
        infer.load_generator(path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"other\.pt: not a readable checkpoint"):
        infer.load_generator(path)
    with pytest.raises(ValueError, match=r"judge\.pt: a 'au_classifier' checkpoint, expected"):
        infer.load_generator(CHECKPOINT.parent / "judge.pt")
    with pytest.raises(ValueError, match=r"talker\.pt: cannot run on 'gpu0'"):
        infer.load_generator(CHECKPOINT, "gpu0")


# ----------------------------------------------------------------------------- parts


def test_generator_matches_the_whole_clip_forward(generator):
    assert generator.name == "decoder" and generator.image_size == 64
    rng = np.random.default_rng(0)
    identity = torch.from_numpy(rng.uniform(-1, 1, (3, 64, 64)).astype(np.float32))
    mfcc = torch.from_numpy(rng.standard_normal((45, 12, 28)).astype(np.float32))
    whole = generate(generator.model, identity, mfcc)
    chunked = infer.decode_in_chunks(generator.model, identity, mfcc, chunk=16)
    assert chunked.shape == (45, 3, 64, 64)
    torch.testing.assert_close(chunked, whole, atol=1e-4, rtol=0)
    assert (generator(identity, mfcc) - whole).abs().max() < 1e-4
    with pytest.raises(ValueError, match="identity must be"):
        generator(identity[:, :32], mfcc)
    raw = rng.standard_normal((5, 12, 28)).astype(np.float32)
    np.testing.assert_allclose(generator.normalize(raw).numpy()[:, :, 0],
                               ((raw - generator.mfcc_mean) / generator.mfcc_std)[:, :, 0],
                               rtol=1e-6)


def test_crop_matches_preprocessing(detector):
    from coursekit.data.preprocess import PreprocessConfig, process_clip

    clip = list_clips(SAMPLES_DIR, ["spk2"])[0]
    result = process_clip(clip, PreprocessConfig(size=64, landmarks="ground_truth",
                                                 aus="ground_truth"))
    crops, aligned = result["arrays"]["frames"], result["arrays"]["aligned_landmarks"]
    frames, _ = read_video(clip.video)
    for k in (0, len(frames) // 2):
        found = infer.crop_face(frames[k], 64, detector)
        assert found.crop.shape == (64, 64, 3) and found.crop.dtype == np.uint8
        mine = transform_points(result["arrays"]["landmarks"][k], found.transform)
        error = np.linalg.norm(mine - aligned[k], axis=1)[RIGID_POINTS].mean()
        assert error < 1.0  # crop pixels: the same template alignment
        diff = np.abs(found.crop.astype(int) - crops[k]).mean()
        shifted = np.abs(np.roll(found.crop, 2, axis=0).astype(int) - crops[k]).mean()
        assert diff < 4 and shifted > diff + 2


def test_large_face_is_reduced_before_the_warp(detector):
    image = skimage_data.astronaut()
    found = infer.crop_face(image, 64, detector, source="astronaut")
    scale = np.sqrt(np.linalg.det(found.transform[:, :2]))
    assert scale < 0.5  # the path under test
    rigid = transform_points(found.landmarks[RIGID_POINTS], found.transform)
    assert np.linalg.norm(rigid - template(64)[RIGID_POINTS], axis=1).mean() < 1.5
    naive = cv2.warpAffine(image, found.transform, (64, 64), flags=cv2.INTER_LINEAR)
    # smoother than a bilinear warp that skips pixels: less high-frequency energy
    lap = [np.abs(cv2.Laplacian(c.astype(np.float32), cv2.CV_32F)).mean()
           for c in (found.crop, naive)]
    assert lap[0] < 0.8 * lap[1]
    with pytest.raises(FaceError, match="no face found in flat"):
        infer.crop_face(np.full((200, 200, 3), 90, np.uint8), 64, detector, source="flat")


def test_paste_back_replaces_only_the_lower_face(detector):
    image = skimage_data.astronaut()
    found = infer.crop_face(image, 64, detector)
    green = np.zeros((2, 64, 64, 3), np.uint8)
    green[..., 1] = 255
    out = infer.paste_back(image, green, found.transform, found.landmarks, match_colour=False)
    assert out.shape == (2, *image.shape) and out.dtype == np.uint8
    lips = found.landmarks[62].round().astype(int)
    assert tuple(out[0, lips[1], lips[0]]) == (0, 255, 0)
    changed = np.abs(out[0].astype(int) - image).max(axis=-1) > 0
    eye = found.landmarks[37].round().astype(int)
    assert not changed[eye[1], eye[0]] and not changed[:80].any() and not changed[300:].any()
    # feathered: a soft edge, not a hard cut
    soft = (out[0, ..., 1].astype(int) - image[..., 1])[changed]
    assert ((soft > 10) & (soft < 200)).mean() > 0.2
    matched = infer.paste_back(image, green, found.transform, found.landmarks)
    assert np.abs(matched[0].astype(int) - image)[changed].mean() < \
        0.3 * np.abs(out[0].astype(int) - image)[changed].mean()
