"""coursekit.data.splits: one split for training and evaluation, the old names as views of it."""

import numpy as np
import pytest
import torch

from coursekit.assets import TINY_DIR
from coursekit.data.dataset import split_clips
from coursekit.data.splits import (GRID_SPEAKERS, GRID_TEST_SPEAKERS, SPLITS, Split, make_split,
                                   speaker_split, split_settings, utterance_split)
from coursekit.evaluate import evaluate_checkpoint, fit_length, select_clips, shuffle_partners
from coursekit.train.audio2au import holdout_split
from coursekit.train.talker import PipelineConfig, pipeline_split, split_for_training

TINY = TINY_DIR


def corpus(speakers=("a", "b", "c", "d"), n=12) -> list[dict]:
    return [{"speaker": s, "utt": f"u{i:02d}"} for s in speakers for i in range(n)]


def keys(clips) -> list[tuple[str, str]]:
    return [(c["speaker"], c["utt"]) for c in clips]


def test_parts_are_disjoint_and_cover_every_clip():
    clips = corpus()
    split = make_split(clips, test_speakers=["d"], val=0.2)
    parts = [set(keys(p)) for p in (split.train, split.val, split.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set().union(*parts) == set(keys(clips))
    assert split.test_speakers == ("d",) and split.val
    assert {c["speaker"] for c in split.train + split.val} == {"a", "b", "c"}
    assert keys(split.unseen) == keys(c for c in clips if c["speaker"] == "d")
    # every 5th utterance (positions 4 and 9 of 12) of each training speaker is held out
    assert keys(split.heldout) == [(s, u) for s in "abc" for u in ("u04", "u09")]
    assert keys(split.test) == sorted(keys(split.test))
    assert "6 held-out utterances" in split.describe()


def test_split_is_deterministic_whatever_the_order_of_the_clips():
    clips = corpus()
    first = make_split(clips, test_speakers=0.25, val=0.1, seed=3)
    again = make_split(list(reversed(clips)), test_speakers=0.25, val=0.1, seed=3)
    assert first == again and len(first.test_speakers) == 1


def test_old_names_are_views_of_the_one_split():
    clips = corpus(n=10)
    train, held = holdout_split(clips)
    split = make_split(clips)
    assert (train, held) == (split.train, split.test) == (utterance_split(clips).train,
                                                          utterance_split(clips).test)
    assert len(held) == 8 and all(c["utt"] in ("u04", "u09") for c in held)
    assert split_clips(clips, by="speaker", test=["b"])[1] == speaker_split(clips, ["b"]).test
    with pytest.raises(ValueError, match="zz"):
        make_split(clips, test_speakers="a,zz")
    with pytest.raises(ValueError, match="no clip left to train on"):
        make_split(clips, test_speakers=["a", "b", "c", "d"])


def test_the_papers_grid_split():
    assert len(GRID_SPEAKERS) == 33 and "s21" not in GRID_SPEAKERS
    assert len(GRID_TEST_SPEAKERS) == 6 and set(GRID_TEST_SPEAKERS) < set(GRID_SPEAKERS)
    grid = corpus(GRID_SPEAKERS, n=5)
    drawn = speaker_split(grid, test=6 / 33, seed=0)  # the documented rule behind the constant
    assert drawn.test_speakers == GRID_TEST_SPEAKERS
    split = make_split(grid, **split_settings("paper"))
    assert len({c["speaker"] for c in split.train}) == 27 and not split.heldout
    assert {c["speaker"] for c in split.test} == set(GRID_TEST_SPEAKERS)
    assert split_settings(None, "s2,s3") == {"test_speakers": ("s2", "s3"), "holdout_every": 5}
    assert set(SPLITS) == {"utterance", "paper"}
    with pytest.raises(ValueError, match="either"):
        split_settings("paper", "s2")


def test_shared_baseline_helpers():
    x = np.arange(8)[:, None]
    assert fit_length(x, 10)[:, 0].tolist() == list(range(8)) + [7, 7]
    assert torch.equal(fit_length(torch.from_numpy(x), 10), torch.from_numpy(fit_length(x, 10)))
    clips = corpus(("a", "b"), n=3) + [{"speaker": "c", "utt": "only"}]
    partners = shuffle_partners(clips)
    assert all(p != i for i, p in enumerate(partners))
    assert all(clips[p]["speaker"] == c["speaker"] for c, p in zip(clips[:6], partners[:6]))


def test_training_and_evaluation_score_the_same_clips(processed64):
    cfg = PipelineConfig.tiny()
    cfg.test_speakers = ("spk2",)
    split = pipeline_split(processed64, cfg)
    assert isinstance(split, Split) and len(split.unseen) == 10 and len(split.heldout) == 2
    evaluated, train = select_clips(processed64, test_speakers="spk2")
    assert keys(evaluated) == keys(split.test) and keys(train) == keys(split.train)
    assert keys(split_for_training(processed64, cfg)[1]) == keys(split.heldout)
    # without test speakers: every 5th utterance of both speakers, as before
    assert keys(select_clips(processed64)[0]) == keys(holdout_split(split.train + split.test)[1])


def test_test_speakers_are_evaluated(processed64, tmp_path):
    from coursekit.evaluate import write_report

    out = evaluate_checkpoint(TINY / "talker.pt", processed64, test_speakers="spk2",
                              landmarks=False, progress=False)
    assert out["test_speakers"] == ["spk2"]
    assert sum(c.startswith("spk2/") for c in out["clips"]) == 10
    assert sum(c.startswith("spk1/") for c in out["clips"]) == 2
    assert out["rows"]["model"]["lmd"] is None and out["rows"]["model"]["psnr"] > 0
    md, _ = write_report(out, tmp_path)
    assert "Test speakers (never trained on): spk2, 10 of the clips" in md.read_text()


def test_cli_split_errors(processed64, capsys):
    from coursekit import cli

    assert cli.main(["evaluate", str(TINY / "talker.pt"), "--data", str(processed64),
                     "--split", "paper"]) == 2
    assert "s11" in capsys.readouterr().err
    assert cli.main(["train", "audio2au", "--data", str(processed64), "--out", "unused",
                     "--test-speakers", "spk9"]) == 2
    assert "spk9" in capsys.readouterr().err
