"""The talker pipeline: a short real training run, and the committed tiny checkpoint's behaviour."""

import warnings

import numpy as np
import pytest
import torch

from coursekit.assets import TINY_DIR
from coursekit.checkpoint import load_checkpoint, read_checkpoint
from coursekit.data.dataset import TalkingFaceDataset, load_index
from coursekit.evaluate import evaluate_talker, generate, silence_check
from coursekit.losses import TalkerLoss
from coursekit.train.au_classifier import load_au_classifier
from coursekit.train.talker import PipelineConfig, load_talker, train_pipeline

CHECKPOINTS = TINY_DIR


@pytest.fixture(scope="session")
def short_run(processed64, tmp_path_factory):
    cfg = PipelineConfig.tiny()
    cfg.au_classifier_train.max_minutes = 0.1
    cfg.audio2au_minutes = 0.1
    cfg.talker.max_minutes = None
    cfg.talker.max_steps = 24  # a part of the first epoch (every 12-frame window of 16 clips)
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
        assert load_checkpoint(path).kind == name  # weights_only=True inside
    talker = read_checkpoint(result["paths"]["talker"])
    assert talker["training"] is None and not talker.get("ema")  # the talker alone, no judge
    assert {"mfcc_mean", "mfcc_std", "steps", "train_config"} <= set(talker["meta"])
    assert talker["meta"]["steps"] == 24
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


def test_every_stage_runs_on_the_asked_device():
    for cfg in (PipelineConfig.tiny(), PipelineConfig.paper("diffusion")):
        cfg.set_device("cpu")
        assert {cfg.au_classifier_train.device, cfg.audio2au_device, cfg.talker.device,
                cfg.diffusion_train.device} == {"cpu"}
    assert PipelineConfig.paper().au_classifier_train.max_minutes is None


def test_talker_loss_samples_real_frames_for_the_perceptual_term():
    """``per_frames``: the perceptual term on that many real frames drawn with torch's RNG
    (a resumed run replays them), never on padding."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        crit = TalkerLoss(per_frames=2)
    gen = torch.Generator().manual_seed(0)
    pred, real = (torch.rand(2, 3, 3, 32, 32, generator=gen) * 2 - 1 for _ in range(2))
    mask = torch.tensor([[True, True, False], [True, False, False]])
    torch.manual_seed(5)
    per = crit(pred, real, real[:, 0], mask=mask)["per"]
    torch.manual_seed(5)
    pick = torch.randperm(3)[:2]  # among the 3 real frames
    expected = crit.perceptual(pred[mask][pick], real[mask][pick])
    assert per.item() == pytest.approx(expected.item())
    crit.per_frames = None
    full = crit(pred, real, real[:, 0], mask=mask)["per"]
    assert full.item() == pytest.approx(crit.perceptual(pred, real, mask).item())


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
