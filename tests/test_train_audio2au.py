"""Audio2AU pre-training on a tiny processed dataset (2 sample speakers, ground-truth AUs)."""

import argparse
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from coursekit.data.dataset import load_index
from coursekit.data.preprocess import PreprocessConfig, preprocess_corpus
from coursekit.train.audio2au import (Audio2AUTrainConfig, cli, evaluate_audio2au, fit_length,
                                      holdout_split, load_audio2au, position_predict,
                                      results_table, shuffle_partners, train_audio2au)
from coursekit.checkpoint import read_checkpoint, save_checkpoint
from coursekit.runtime import pick_device
from coursekit.train.common import CSVLogger, read_csv_log, seed_everything

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "data_samples")
TINY_MODEL = {"conv_channels": [8, 16], "lstm_hidden": 32, "fc": [32, 16]}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """spk1 + spk2 of data_samples (20 clips), ground-truth landmarks and AUs."""
    root = tmp_path_factory.mktemp("a2u") / "proc"
    summary = preprocess_corpus(SAMPLES, root, PreprocessConfig(landmarks="ground_truth",
                                                                aus="ground_truth"),
                                workers=1, speakers=["spk1", "spk2"], progress=False)
    assert not summary["failed"], summary["failed"]
    return root


@pytest.fixture(scope="session")
def trained(tiny_data, tmp_path_factory):
    torch.set_num_threads(1)
    train, held = holdout_split(load_index(tiny_data))
    cfg = Audio2AUTrainConfig(epochs=14, seq_len=40, batch_size=8, lr=3e-3,
                              val_fraction=0.0, device="cpu", progress=False, model=TINY_MODEL)
    out = tmp_path_factory.mktemp("a2u_run")
    summary = train_audio2au(tiny_data, out, cfg, clips=train)
    return summary, train, held, out


def test_holdout_split_is_utterance_disjoint(tiny_data):
    clips = load_index(tiny_data)
    train, held = holdout_split(clips)
    assert len(train) == 16 and len(held) == 4
    assert {c["speaker"] for c in held} == {"spk1", "spk2"}  # 2 utterances per speaker
    assert not {(c["speaker"], c["utt"]) for c in train} & {(c["speaker"], c["utt"]) for c in held}
    assert holdout_split(list(reversed(clips))) == (train, held)  # order does not matter


def test_loss_decreases_and_beats_shuffled_audio(trained, tiny_data):
    summary, train, held, out = trained
    losses = [row["loss"] for row in summary["history"]]
    assert len(losses) == 14 and summary["stopped"] == "epochs"
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:2]), losses
    assert [row["loss"] for row in read_csv_log(out / "audio2au_log.csv")] == pytest.approx(losses)
    results = evaluate_audio2au(summary["checkpoint"], tiny_data, held)
    model_f1 = results["model"]["f1"].mean()
    assert model_f1 > results["shuffled audio"]["f1"].mean() + 0.1, results_table(results)
    assert model_f1 > results["position only"]["f1"].mean(), results_table(results)
    assert results["n_frames"] == sum(c["n_frames"] for c in held)
    assert "| shuffled audio | F1 |" in results_table(results)


def test_checkpoint_round_trip_weights_only(trained, tiny_data):
    summary, train, held, out = trained
    ckpt = torch.load(summary["checkpoint"], map_location="cpu", weights_only=True)
    assert ckpt["kind"] == "audio2au" and not ckpt["training"]
    assert ckpt["model_config"]["lstm_hidden"] == 32
    meta = ckpt["meta"]
    assert meta["train_config"]["seq_len"] == 40 and meta["mfcc_mean"].shape == (12, 1)
    assert meta["train_clips"] == [f"{c['speaker']}/{c['utt']}" for c in train]
    assert meta["val_clips"] == [] and meta["aus"] == ["AU10", "AU14", "AU20", "AU25", "AU26"]
    assert meta["best_epoch"] == [14] * 5 and len(meta["history"]) == 14
    assert all(v.is_contiguous() for v in ckpt["model"].values())  # not channels-last
    model, info = load_audio2au(summary["checkpoint"])
    again, _ = load_audio2au(Path(summary["checkpoint"]))
    x = torch.randn(1, 9, 12, 28)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    # a bare module needs the MFCC statistics; with them it scores as the checkpoint does
    stats = (info["mfcc_mean"].numpy(), info["mfcc_std"].numpy())
    bare = evaluate_audio2au(model, tiny_data, held, mfcc_stats=stats, baselines=False)
    full = evaluate_audio2au(summary["checkpoint"], tiny_data, held)
    assert np.array_equal(bare["model"]["f1"], full["model"]["f1"])
    with pytest.raises(ValueError, match="mfcc_stats"):
        evaluate_audio2au(model, tiny_data, held)


def test_atomic_save_leaves_no_temp_file(tmp_path):
    path = tmp_path / "ck.pt"

    def ckpt(value, **extra):
        return dict(kind="audio2au", format_version=2, model_config={"a": (1, 2)},
                    model={"w": torch.full((3,), value)}, meta={"arr": np.zeros(2)}, **extra)

    save_checkpoint(path, **ckpt(1.0))
    save_checkpoint(path, **ckpt(0.0))  # overwrite
    assert os.listdir(tmp_path) == ["ck.pt"]
    loaded = read_checkpoint(path)
    assert torch.equal(loaded["model"]["w"], torch.zeros(3)) and loaded["model_config"] == {"a": [1, 2]}
    with pytest.raises(Exception):
        save_checkpoint(path, **ckpt(2.0, bad=lambda: None))  # cannot be pickled: the old file stays
    assert os.listdir(tmp_path) == ["ck.pt"]
    assert torch.equal(read_checkpoint(path)["model"]["w"], torch.zeros(3))
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "nope.pt")


def test_common_helpers(tmp_path):
    g1, g2 = seed_everything(3), seed_everything(3)
    assert torch.equal(torch.rand(2, generator=g1), torch.rand(2, generator=g2))
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")
    with CSVLogger(tmp_path / "log.csv") as log:
        log.log(epoch=1, loss=torch.tensor(0.5))
        log.log(epoch=2)
        with pytest.raises(ValueError, match="not in the header"):
            log.log(epoch=3, extra=1)
    assert read_csv_log(tmp_path / "log.csv") == [{"epoch": 1.0, "loss": 0.5},
                                                  {"epoch": 2.0, "loss": ""}]


def test_baseline_helpers():
    clips = [{"speaker": s, "utt": u} for s, u in
             [("a", "x2"), ("a", "x1"), ("b", "y1"), ("c", "z1"), ("a", "x3")]]
    partners = shuffle_partners(clips)
    assert all(p != i for i, p in enumerate(partners))
    assert [clips[p]["utt"] for p in partners[:2]] == ["x3", "x2"]  # same speaker, next utt
    assert clips[partners[2]]["speaker"] != "b"
    x = np.arange(4)[:, None]
    assert fit_length(x, 2).ravel().tolist() == [0, 1]
    assert fit_length(x, 6).ravel().tolist() == [0, 1, 2, 3, 3, 3]
    rates = np.array([[0.1, 0.9], [0.6, 0.4]])
    assert position_predict(rates, 3).tolist() == [[False, True], [True, False], [True, False]]


def test_cli_entry_point(tiny_data, tmp_path, capsys):
    args = argparse.Namespace(data=str(tiny_data), out=str(tmp_path / "cli"), minutes=0.001,
                              epochs=1, seed=0, model="cpu")
    assert cli(args) == 0  # one step (time budget), then the evaluation
    report = capsys.readouterr().out
    assert "| model | F1 |" in report and "| position only | F1 |" in report
    assert (tmp_path / "cli" / "audio2au.pt").is_file()
    assert (tmp_path / "cli" / "audio2au_eval.md").read_text() == report


def test_resume_is_exact(tiny_data, tmp_path):
    """Stopped mid-epoch and resumed, a run ends as an uninterrupted one: the same weights,
    the same per-epoch rows and the same best epoch per AU net (validation state included)."""
    torch.set_num_threads(1)
    train, _ = holdout_split(load_index(tiny_data))
    fit, val = train[2:], train[:2]  # 14 clips x 2 windows of 40 frames: 3 steps an epoch
    cfg = Audio2AUTrainConfig(epochs=3, seq_len=40, batch_size=8, lr=3e-3, ckpt_every=2,
                              device="cpu", progress=False, model=TINY_MODEL)
    full = train_audio2au(tiny_data, tmp_path / "full", cfg, fit, val)

    def stop(step, trainer):
        trainer.should_stop = step == 5

    cut = train_audio2au(tiny_data, tmp_path / "cut", cfg, fit, val, on_step=stop)
    assert cut["stopped"] == "hook" and cut["epochs_run"] == 2  # the cut epoch scored too
    again = train_audio2au(tiny_data, tmp_path / "cut", cfg, fit, val, resume=True)
    assert full["stopped"] == again["stopped"] == "epochs" and again["epochs_run"] == 3
    for name in ("audio2au.pt", "audio2au/last.pt"):
        a, b = (read_checkpoint(p / name) for p in (tmp_path / "full", tmp_path / "cut"))
        assert a["model"].keys() == b["model"].keys()
        for k in a["model"]:
            torch.testing.assert_close(a["model"][k], b["model"][k], atol=1e-6, rtol=0)
    assert again["best_epoch"] == full["best_epoch"]
    for x, y in zip(full["history"], again["history"]):
        assert {k: v for k, v in x.items() if k != "seconds"} == pytest.approx(
            {k: v for k, v in y.items() if k != "seconds"}, abs=1e-6, nan_ok=True)
    steps = [int(r["step"]) for r in read_csv_log(tmp_path / "cut" / "audio2au" / "log.csv")]
    assert steps == list(range(1, 10))
