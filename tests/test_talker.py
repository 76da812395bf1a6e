"""The talker pipeline: a short real training run, and the committed tiny checkpoint's behaviour."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from coursekit.data.dataset import TalkingFaceDataset, load_index
from coursekit.evaluate import evaluate_talker, generate, silence_check
from coursekit.train.au_classifier import load_au_classifier
from coursekit.train.common import load_checkpoint
from coursekit.train.talker import PipelineConfig, load_talker, train_pipeline

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = ROOT / "checkpoints" / "tiny"


@pytest.fixture(scope="session")
def short_run(processed64, tmp_path_factory):
    cfg = PipelineConfig.tiny()
    cfg.au_classifier_train.max_minutes = 0.1
    cfg.audio2au_minutes = 0.1
    cfg.talker.max_minutes = None
    cfg.talker.epochs = 12  # 16 training clips, batches of 6: 2 steps per epoch
    out = tmp_path_factory.mktemp("run")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the perceptual fallback's warning
        result = train_pipeline(processed64, out, cfg, progress=False)
    return out, result


def test_pipeline_writes_loadable_checkpoints(short_run):
    out, result = short_run
    for name in ("au_classifier", "audio2au", "talker"):
        path = result["paths"][name]
        assert path.is_file() and path.parent == out
        load_checkpoint(path)  # weights_only=True inside
    assert not list(out.glob("*.tmp*")) and not list(out.glob(".*"))
    train_keys = {(c["speaker"], c["utt"]) for c in result["train"]}
    assert not train_keys & {(c["speaker"], c["utt"]) for c in result["test"]}


def test_training_reduces_the_loss(short_run):
    out, _ = short_run
    import csv

    rows = list(csv.DictReader((out / "talker.csv").open()))
    loss = np.array([float(r["loss"]) for r in rows])
    assert len(loss) >= 20
    assert loss[-10:].mean() < 0.8 * loss[:5].mean()


def test_evaluation_reports_the_model_beside_baselines(short_run, processed64):
    _, result = short_run
    model, ckpt = load_talker(result["paths"]["talker"])
    judge = load_au_classifier(result["paths"]["au_classifier"])
    scores = evaluate_talker(model, judge, processed64, result["test"], result["train"],
                             (ckpt["mfcc_mean"], ckpt["mfcc_std"]))
    assert set(scores) == {"model", "shuffled audio", "position only", "copy identity",
                           "real frames"}
    for s in scores.values():
        assert s["f1"].shape == (5,) and np.all((0 <= s["f1"]) & (s["f1"] <= 1))


# ----------------------------------------------------------------------------- committed model

committed = pytest.mark.skipif(not (CHECKPOINTS / "talker.pt").is_file(),
                               reason="no committed tiny checkpoint (make checkpoints)")


@committed
def test_generation_ignores_the_target_video(processed64):
    """generate() takes the identity image and the audio only: other target frames change
    nothing (one-shot generation; the reference code fed target frames at inference)."""
    model, ckpt = load_talker(CHECKPOINTS / "talker.pt")
    stats = (ckpt["mfcc_mean"], ckpt["mfcc_std"])
    clip = load_index(processed64)[0]
    item = TalkingFaceDataset(processed64, [clip], normalize_mfcc=stats)[0]
    a = generate(model, item["identity"], item["mfcc"])
    item["frames"] = torch.rand_like(item["frames"])  # a different "target" video
    b = generate(model, item["identity"], item["mfcc"])
    assert torch.equal(a, b)
    assert a.shape == (len(item["mfcc"]), 3, 64, 64)


@committed
@pytest.mark.parametrize("noise_dbfs", [None, -55.0])
def test_silent_audio_keeps_the_mouth_closed_and_still(processed64, noise_dbfs):
    model, ckpt = load_talker(CHECKPOINTS / "talker.pt")
    judge = load_au_classifier(CHECKPOINTS / "judge.pt")
    clips = load_index(processed64)[:6]
    r = silence_check(model, judge, processed64, clips, (ckpt["mfcc_mean"], ckpt["mfcc_std"]),
                      noise_dbfs=noise_dbfs)
    assert r["au25"] < 0.1 and r["au26"] < 0.1, r  # closed
    assert r["speech_au25"] > 0.3, r  # while speech does open it
    assert r["silent_motion"] < 0.3 * r["speech_motion"], r  # still
