"""The AU classifier on the one Trainer: it learns, resumes exactly, round-trips through its
checkpoint, and trains from the command line (``coursekit train judge``)."""

import dataclasses

import numpy as np
import pytest
import torch

from coursekit.checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from coursekit.cli import main
from coursekit.data.dataset import load_index
from coursekit.models.config import AUClassifierConfig
from coursekit.train.au_classifier import (AUClassifierTrainConfig, classify_frames,
                                           epoch_losses, load_au_classifier, score_classifier,
                                           train_au_classifier)
from coursekit.train.common import read_csv_log


def fast(**kw) -> AUClassifierTrainConfig:
    """The tiny preset on the CPU, small batches, a few steps."""
    base = dict(batch_size=16, max_steps=6, ckpt_every=3, max_minutes=None, device="cpu", lr=3e-3)
    return dataclasses.replace(AUClassifierTrainConfig.tiny(), **{**base, **kw})


def weights(path) -> dict:
    return read_checkpoint(path)["model"]


def test_presets_and_the_talkers_call():
    paper, tiny = AUClassifierTrainConfig.paper(), AUClassifierTrainConfig.tiny()
    assert paper.max_minutes is None and paper.epochs >= 10 and tiny.max_minutes == 1.5
    assert AUClassifierTrainConfig(max_minutes=1.0, device="cpu").batch_size == 64


def test_loss_decreases_in_a_few_steps(processed64, tmp_path):
    torch.set_num_threads(1)
    clips = load_index(processed64)[:2]  # about 5 batches of 24 frames an epoch
    out = train_au_classifier(processed64, clips, tmp_path / "au.pt", AUClassifierConfig.tiny(),
                              fast(max_steps=16, ckpt_every=100, batch_size=24), progress=False)
    rows = read_csv_log(tmp_path / "au" / "log.csv")
    loss, epoch = (np.array([r[k] for r in rows]) for k in ("loss", "epoch"))
    assert len(loss) == 16 and loss[-4:].mean() < 0.85 * loss[:3].mean(), loss
    per_epoch = sum(c["n_frames"] for c in clips) // 24
    assert np.array_equal(epoch, np.arange(16) // per_epoch)  # every frame once an epoch
    history = [loss[epoch == e].mean() for e in range(int(epoch[-1]) + 1)]  # the last partial
    assert epoch_losses(tmp_path / "au" / "log.csv") == pytest.approx(history)
    assert read_checkpoint(out)["meta"]["history"] == pytest.approx(history)


def test_resumed_run_ends_with_the_uninterrupted_weights(processed64, tmp_path):
    torch.set_num_threads(1)
    clips = load_index(processed64)[:6]
    whole = train_au_classifier(processed64, clips, tmp_path / "whole.pt",
                                AUClassifierConfig.tiny(), fast(), progress=False)
    train_au_classifier(processed64, clips, tmp_path / "part.pt", AUClassifierConfig.tiny(),
                        fast(max_steps=3), progress=False)  # "killed" after its checkpoint
    part = train_au_classifier(processed64, clips, tmp_path / "part.pt",
                               AUClassifierConfig.tiny(), fast(), progress=False, resume=True)
    a, b = weights(whole), weights(part)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k
    assert (read_checkpoint(whole)["meta"]["history"]
            == pytest.approx(read_checkpoint(part)["meta"]["history"]))
    # the check has teeth: a run that trains 3 more steps from scratch differs
    fresh = train_au_classifier(processed64, clips, tmp_path / "fresh.pt",
                                AUClassifierConfig.tiny(), fast(max_steps=3, seed=5),
                                progress=False)
    assert not all(torch.allclose(a[k].float(), weights(fresh)[k].float()) for k in a)


def test_checkpoint_round_trip(processed64, tmp_path):
    torch.set_num_threads(1)
    clips = load_index(processed64)[:4]
    path = train_au_classifier(processed64, clips, tmp_path / "au.pt", AUClassifierConfig.tiny(),
                               fast(max_steps=2), progress=False)
    small = train_au_classifier(processed64, clips, tmp_path / "au16.pt", AUClassifierConfig.tiny(),
                                fast(max_steps=2), progress=False, half=True)
    ckpt = read_checkpoint(path)
    assert ckpt["kind"] == "au_classifier" and ckpt["model_config"]["image_size"] == 64
    assert ckpt["meta"]["occurrence_rates"].shape == (5,)
    assert len(ckpt["meta"]["clips"]) == 4 and len(ckpt["meta"]["history"]) == 1
    assert read_checkpoint(small)["model"]["fc.0.weight"].dtype == torch.float16
    model = load_au_classifier(path)
    assert not model.training
    frames = torch.rand(7, 3, 64, 64) * 2 - 1
    pred = classify_frames(model, frames)
    assert pred.shape == (7, 5) and pred.dtype == bool
    with torch.no_grad():
        full = model(frames[:, :, 32:])
        half = load_au_classifier(small)(frames[:, :, 32:])
    assert torch.allclose(full, half, atol=0.05)
    scores = score_classifier(model, processed64, clips[:2])
    assert scores["f1"].shape == scores["accuracy"].shape == (5,)
    with pytest.raises(CheckpointError, match="'au_classifier' checkpoint, expected 'syncnet'"):
        load_checkpoint(path, kind="syncnet")


def test_cli_trains_a_judge_and_checks_the_image_size(processed64, tmp_path, capsys):
    out = tmp_path / "judge.pt"
    args = ["train", "judge", "tiny", "--data", str(processed64), "--out", str(out),
            "--steps", "2", "--threads", "1", "--test-speakers", "spk2"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "64 px, 2 steps" in text and "held-out F1" in text
    ckpt = read_checkpoint(out)
    assert ckpt["model_config"]["image_size"] == 64 and ckpt["meta"]["train_config"]["seed"] == 1
    assert not any(c.startswith("spk2/") for c in ckpt["meta"]["clips"])
    assert (tmp_path / "judge" / "last.pt").is_file()
    assert main(args + ["--resume", "--no-eval"]) == 0  # nothing left to do: the same weights
    assert torch.equal(weights(out)["fc.0.weight"], ckpt["model"]["fc.0.weight"])
    capsys.readouterr()
    assert main(args + ["--image-size", "112"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "64 px, not the 112 px" in err, err
