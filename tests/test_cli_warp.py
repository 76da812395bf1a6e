"""``coursekit train motion | painter`` (coursekit/cli/warp.py) on the samples at 64 px."""

import pytest

from coursekit import cli
from coursekit.assets import asset_path
from coursekit.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint


def train(capsys, action, *args):
    code = cli.main(["train", action, *map(str, args), "--threads", "1"])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("action", ["motion", "painter"])
def test_trains_a_loadable_checkpoint_and_resumes(processed64, tmp_path, capsys, action):
    out = tmp_path / f"{action}.pt"
    code, text, err = train(capsys, action, "tiny", "--data", processed64, "--out", out,
                            "--steps", 2, "--half")
    assert code == 0, err
    assert "split: train 16 clips" in text and f"{out}: 2 steps" in text
    loaded = load_checkpoint(out, kind=action)
    assert loaded.kind == action and loaded.meta["steps"] == 2
    assert len(loaded.meta["train_clips"]) == 16
    weights = read_checkpoint(out)["model"].values()
    assert {str(v.dtype) for v in weights if v.is_floating_point()} == {"torch.float16"}
    assert (tmp_path / action / "last.pt").is_file()
    if action == "painter":
        assert loaded.model.cfg.image_size == 64  # the crops' size, not the preset's 112
    code, text, err = train(capsys, action, "tiny", "--data", processed64, "--out", out,
                            "--steps", 4, "--resume")
    assert code == 0, err
    assert load_checkpoint(out, kind=action).meta["steps"] == 4


def test_exclude_and_include_change_the_training_clips(processed64, tmp_path, capsys):
    out = tmp_path / "motion.pt"
    code, text, err = train(capsys, "motion", "tiny", "--data", processed64, "--out", out,
                            "--steps", 1, "--exclude", "spk2", "--include", "spk1/lbbv5s")
    assert code == 0, err
    clips = load_checkpoint(out, kind="motion").meta["train_clips"]
    assert "spk1/lbbv5s" in clips and not [c for c in clips if c.startswith("spk2/")]
    assert "(8 excluded, 1 included)" in text


def test_motion_stores_the_audio2au_map(processed64, tmp_path, capsys):
    ckpt = read_checkpoint(asset_path("grid/audio2au.pt"))  # as if validated on two samples
    ckpt["meta"]["val_clips"] = ["spk1/bgif7s", "spk2/brbk3s"]
    save_checkpoint(tmp_path / "a2u.pt", **ckpt)
    out = tmp_path / "motion.pt"
    code, text, err = train(capsys, "motion", "tiny", "--data", processed64, "--out", out,
                            "--steps", 1, "--audio2au", tmp_path / "a2u.pt")
    assert code == 0, err
    meta = load_checkpoint(out, kind="motion").meta
    assert meta["audio_map_fitted_on"] == ["spk1/bgif7s", "spk2/brbk3s"]
    assert set(meta["audio_map"]) == {"probs", "intensities"}
    assert "no audio map" not in text


@pytest.mark.parametrize("args, message", [
    (["tinyy"], "tinyy: no such config"),
    (["tiny", "--exclude", "others/brbk7n"], "no clip or speaker others/brbk7n"),
    (["tiny", "--audio2au", asset_path("grid/audio2au.pt")], "none of its validation clips"),
])
def test_bad_input_is_a_one_line_error(processed64, tmp_path, capsys, args, message):
    out = tmp_path / "motion.pt"
    code, _, err = train(capsys, "motion", args[0], "--data", processed64, "--out", out,
                         "--steps", 1, *args[1:])
    assert code == 2
    assert err.startswith("coursekit train motion: error: ") and message in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()
