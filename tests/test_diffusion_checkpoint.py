"""The committed tiny diffusion renderer (coursekit/assets/tiny/diffusion.pt) on held-out samples.

Trained by ``python benchmarks/diffusion_tiny.py --save coursekit/assets/tiny`` on the training
utterances of spk1-spk4; the fixture ``processed64`` holds spk1 and spk2, whose every 5th
utterance was held out of that training (``holdout_split``).
"""

import shutil

import coursekit  # noqa: F401  (sets OMP_WAIT_POLICY before torch starts)
import numpy as np
import pytest
import torch

from coursekit.assets import TINY_DIR
from coursekit.data.dataset import FIELD_FILES, TalkingFaceDataset, load_index
from coursekit.evaluate import evaluate_talker, generate, silence_check
from coursekit.models.disentangle import lower_face_mass, lower_face_region, mouth_prior
from coursekit.train.au_classifier import load_au_classifier
from coursekit.train.audio2au import holdout_split
from coursekit.train.diffusion import AU_SCALE, load_renderer

CHECKPOINTS = TINY_DIR
STEPS = 5


@pytest.fixture(scope="module")
def renderer():
    model, ckpt = load_renderer(CHECKPOINTS / "diffusion.pt")
    return model, (ckpt["mfcc_mean"], ckpt["mfcc_std"])


@pytest.fixture(scope="module")
def split(processed64):
    return holdout_split(load_index(processed64))


def test_checkpoint_is_a_small_one_shot_renderer(renderer):
    model, _ = renderer
    assert model.cfg.talker.image_size == 64
    assert (CHECKPOINTS / "diffusion.pt").stat().st_size < 8e6


def test_generation_ignores_the_target_video(renderer, processed64, tmp_path):
    """Only the identity image and the audio go in: replacing every other file of the clip
    (frames, landmarks, AUs) on disk changes nothing; changing the identity does."""
    model, stats = renderer
    clip = dict(load_index(processed64)[0])
    folder = tmp_path / clip["dir"]
    shutil.copytree(processed64 / clip["dir"], folder)
    clip["path"] = str(folder)

    def run():
        item = TalkingFaceDataset(tmp_path, [clip], normalize_mfcc=stats)[0]
        return generate(model, item["identity"], item["mfcc"], steps=4)

    before = run()
    rng = np.random.default_rng(0)
    for field in ("frames", "landmarks", "aus", "occurrence"):
        path = folder / FIELD_FILES[field]
        arr = np.load(path)
        np.save(path, (rng.random(arr.shape) * (255 if arr.dtype == np.uint8 else 1)).astype(arr.dtype))
    assert torch.equal(run(), before)
    ident = folder / FIELD_FILES["identity"]
    np.save(ident, np.ascontiguousarray(np.load(ident)[:, ::-1]))  # mirrored identity
    assert not torch.equal(run(), before)


def test_frames_follow_the_audio_beside_baselines(renderer, processed64, split):
    model, stats = renderer
    train, test = split
    judge = load_au_classifier(CHECKPOINTS / "judge.pt")
    s = evaluate_talker(model, judge, processed64, test, train, stats, steps=STEPS)
    f1 = {k: v["f1"].mean() for k, v in s.items()}
    assert f1["model"] >= f1["shuffled audio"] + 0.10, f1
    assert f1["model"] >= f1["position only"] + 0.10, f1
    assert f1["model"] >= f1["copy identity"] + 0.15, f1
    # the frames are faces of the right person: close to the real frames
    assert s["model"]["ssim"] > 0.8 and s["model"]["psnr"] > 25, s["model"]


def test_speech_part_of_the_mask_lies_in_the_lower_face(renderer, processed64, split):
    model, stats = renderer
    data = TalkingFaceDataset(processed64, split[1], fields=("identity", "mfcc"),
                              normalize_mfcc=stats)
    masses = []
    with torch.no_grad():
        for i in range(len(data)):
            c = model.condition(data[i]["identity"][None], data[i]["mfcc"][None])
            masses.append(lower_face_mass(c["mask"][0]))
    assert torch.cat(masses).mean() >= 0.7


def test_silent_audio_keeps_the_mouth_closed_and_still(renderer, processed64, split):
    model, stats = renderer
    judge = load_au_classifier(CHECKPOINTS / "judge.pt")
    r = silence_check(model, judge, processed64, split[1][:2], stats, steps=STEPS)
    assert r["au25"] < 0.15 and r["au26"] < 0.15, r
    assert r["speech_au25"] > 0.3, r
    assert r["silent_motion"] < 0.3 * r["speech_motion"], r


def test_au_sliders_move_the_mouth_not_the_eyes(renderer, processed64):
    model, stats = renderer
    item = TalkingFaceDataset(processed64, load_index(processed64)[:1],
                              fields=("identity", "mfcc"), normalize_mfcc=stats)[0]
    aus = torch.zeros(1, 2, 5)
    aus[0, 1, 3:] = 4.0 / AU_SCALE  # AU25 and AU26 at intensity 4 in the second frame
    frames = model.sample(item["identity"][None], torch.zeros(1, 2, 12, 28), steps=STEPS,
                          aus=aus)[0]
    change = (frames[1] - frames[0]).abs().mean(0)
    lower = torch.from_numpy(lower_face_region(64))
    mouth = torch.from_numpy(mouth_prior(64)) > 0.5
    assert change[lower].mean() > 4 * change[:20].mean(), (change[lower].mean(), change[:20].mean())
    assert change[mouth].mean() > 0.03, change[mouth].mean()  # the mouth opens visibly
