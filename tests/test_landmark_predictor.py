"""The multimodal landmark predictor: phoneme frames, modalities, training, checkpoints."""

import numpy as np
import pytest
import torch

from coursekit import warp
from coursekit.checkpoint import load_checkpoint
from coursekit.data.corpus import SAMPLES_DIR, read_align
from coursekit.data.dataset import load_index
from coursekit.data.phonemes import (
    PHONEMES,
    SILENCE,
    UNKNOWN,
    clip_alignment,
    phoneme_frames,
    phoneme_id,
    spread_words,
    word_phonemes,
)
from coursekit.evaluate.landmarks import evaluate_landmarks
from coursekit.models.landmarks import LandmarkConfig, LandmarkPredictor
from coursekit.train.common import read_csv_log
from coursekit.train.landmarks import (
    LandmarkTrainConfig,
    LandmarkWindows,
    draw_modes,
    make_step_fn,
    train_landmarks,
)

K = len(warp.MOVING)


def _symbols(ids):
    return [PHONEMES[i] for i in ids]


def test_phoneme_frames_from_a_phn():
    path = SAMPLES_DIR / "spk1" / "align" / "bgif7s.phn"
    ids = phoneme_frames(path, 79)
    assert ids.shape == (79,) and ids.dtype == np.int64
    rows = read_align(path)
    for k in (0, 24, 30, 40, 60, 78):  # frame k shows the phoneme sounding at k / 25 s
        symbol = next((s for a, b, s in rows if a <= k / 25 < b), "_")
        assert ids[k] == phoneme_id(symbol)
    assert (ids[:24] == SILENCE).all() and PHONEMES[ids[24]] == "b"
    assert phoneme_id("_:") == SILENCE and phoneme_id("sp") == SILENCE
    assert phoneme_id("not-a-phoneme") == UNKNOWN
    with pytest.raises(ValueError, match="expected a .phn or .align"):
        phoneme_frames(path.with_suffix(".csv"), 10)


def test_words_spread_in_proportion_to_espeak():
    words = [(0.0, 0.5, "sil"), (0.5, 1.0, "bin"), (1.0, 1.2, "sp"), (1.2, 1.6, "now")]
    segments = spread_words(words)
    (bin_phones, now_phones) = word_phonemes(("bin", "now"))
    assert [s for *_, s in segments] == [p for p, _ in bin_phones + now_phones]
    assert [s for *_, s in segments[:3]] == ["b", "I", "n"]
    assert segments[0][0] == pytest.approx(0.5) and segments[2][1] == pytest.approx(1.0)
    assert segments[3][0] == pytest.approx(1.2) and segments[-1][1] == pytest.approx(1.6)
    share = (segments[1][1] - segments[1][0]) / 0.5
    assert share == pytest.approx(bin_phones[1][1] / sum(d for _, d in bin_phones), rel=1e-6)


def test_phoneme_frames_from_a_grid_align(grid_dir):
    path = grid_dir / "s1" / "align" / "bbaf2n.align"  # sil, bin blue at f two now, sil
    ids = phoneme_frames(path, 75)
    assert (ids[:24] == SILENCE).all() and (ids[53:] == SILENCE).all()
    assert _symbols(ids[24:27])[0] == "b" and UNKNOWN not in ids
    blue = {s for s, _ in word_phonemes(("bin", "blue", "at", "f", "two", "now"))[1]}
    assert set(_symbols(ids[30:34])) <= blue  # "blue" spans frames 29.5-34
    assert "aU" in _symbols(ids[47:53])  # "now"


def test_model_in_each_modality():
    torch.manual_seed(0)
    model = LandmarkPredictor(LandmarkConfig.tiny()).eval()
    ph = torch.randint(0, len(PHONEMES), (2, 12))
    mfcc = torch.randn(2, 12, 12, 28)
    for out in (model(ph, None), model(None, mfcc), model(ph, mfcc)):
        assert out.shape == (2, 12, K, 2)
    # per item: item 0 text only, item 1 audio only, as the single-modality calls
    mixed = model(ph, mfcc, torch.tensor([True, False]), torch.tensor([False, True]))
    torch.testing.assert_close(mixed[0], model(ph, None)[0])
    torch.testing.assert_close(mixed[1], model(None, mfcc)[1])
    assert not torch.allclose(model(ph, mfcc), model(ph, None))
    assert model.predict(ph[0].numpy(), mfcc[0].numpy()).shape == (12, K, 2)
    with pytest.raises(ValueError, match="give phonemes, mfcc or both"):
        model(None, None)
    with pytest.raises(ValueError, match="differ"):
        model(ph, mfcc[:, :5])


def test_modality_dropout_draws():
    torch.manual_seed(0)
    cfg = LandmarkTrainConfig(p_text_only=0.3, p_audio_only=0.2)
    text_on, audio_on = draw_modes(4000, cfg)
    assert (text_on | audio_on).all()
    assert (~audio_on).float().mean() == pytest.approx(0.3, abs=0.03)
    assert (~text_on).float().mean() == pytest.approx(0.2, abs=0.03)
    with pytest.raises(ValueError, match="modality dropout"):
        make_step_fn(LandmarkTrainConfig(p_text_only=0.6, p_audio_only=0.6))


def _cfg(steps: int, **kw) -> LandmarkTrainConfig:
    return LandmarkTrainConfig.tiny(max_steps=steps, ckpt_every=steps, seq_len=16, **kw)


def test_training_steps_and_checkpoint(processed64, tmp_path):
    clips = load_index(processed64)[:4]
    data = LandmarkWindows(processed64, clips, 16)
    item = data[0]
    assert item["phonemes"].shape == (16,) and item["motion"].shape == (16, K, 2)
    assert clip_alignment(data.clip_dir(0)).suffix == ".phn"
    out = train_landmarks(processed64, clips, tmp_path / "lm.pt", LandmarkConfig.tiny(),
                          _cfg(2, batch_size=4), progress=False)
    assert len(read_csv_log(tmp_path / "lm" / "log.csv")) == 2
    raw = torch.load(out, weights_only=True)
    assert raw["kind"] == "landmarks" and len(raw["meta"]["phonemes"]) == len(PHONEMES)
    loaded = load_checkpoint(out, kind="landmarks")
    for name, value in loaded.model.state_dict().items():
        torch.testing.assert_close(value, raw["model"][name])
    assert loaded.config == LandmarkConfig.tiny()


def test_fits_one_clip_better_than_a_still_mouth(processed64, tmp_path):
    clip = load_index(processed64)[:1]
    out = train_landmarks(processed64, clip, tmp_path / "one.pt", LandmarkConfig.tiny(),
                          _cfg(80, batch_size=4, flip=0.0, scale=0.0), progress=False)
    rows = evaluate_landmarks(out, processed64, clip, clip)
    assert rows["text+audio"]["error"] < 0.6 * rows["still mouth"]["error"], rows
    assert rows["text+audio"]["opening_r"] > 0.5, rows


def test_position_prior_from_the_checkpoint_and_the_au_route(processed64, tmp_path):
    """The position-only row from the checkpoint's ``position_mean`` equals the one from the
    training clips; the AU route row follows the warp generator's ``audio_motion``."""
    from coursekit.evaluate.landmarks import position_prior

    clips = load_index(processed64)[:3]
    prior = position_prior(processed64, clips[1:])
    out = train_landmarks(processed64, clips[1:], tmp_path / "lm.pt", LandmarkConfig.tiny(),
                          _cfg(2, batch_size=4), progress=False, meta={"position_mean": prior})
    from_clips = evaluate_landmarks(out, processed64, clips[:1], clips[1:])
    from_meta = evaluate_landmarks(out, processed64, clips[:1])
    assert from_meta["position only"] == from_clips["position only"]
    assert "AU route" not in from_meta

    class Still:  # a route that hears nothing: the still neutral face
        def __init__(self):
            self.heard = []

        def audio_motion(self, windows, audio, sr):
            self.heard.append((windows.shape, len(audio) / sr))
            return np.zeros((len(windows), K, 2), np.float32)

    route = Still()
    rows = evaluate_landmarks(out, processed64, clips[:1], clips[1:], au_route=route)
    n = int(clips[0]["n_frames"])
    (shape, seconds), = route.heard
    assert shape == (n, 12, 28) and abs(seconds - n / 25) < 0.2
    assert np.isfinite(rows["AU route"]["error"]) and rows["AU route"]["error"] > 0
    assert np.isnan(rows["AU route"]["opening_r"])  # a still route does not correlate
    untrained = tmp_path / "bare.pt"
    train_landmarks(processed64, clips[1:], untrained, LandmarkConfig.tiny(), _cfg(1, batch_size=4),
                    progress=False)
    with pytest.raises(ValueError, match="position_mean"):
        evaluate_landmarks(untrained, processed64, clips[:1])


def test_shipped_predictor_beats_its_baselines_on_held_out_grid(grid_dir, tmp_path):
    """The shipped landmark predictor on 6 of GRID s1's held-out clips (preprocessed here,
    only those: ``preprocess_corpus(utts=...)``): text + audio beats shuffled inputs and the
    still mouth; the checkpoint's own position prior is used."""
    from coursekit.assets import asset_path
    from coursekit.data.corpus import list_clips
    from coursekit.data.preprocess import PreprocessConfig, preprocess_corpus
    from coursekit.data.splits import make_split

    s1 = [{"speaker": c.speaker, "utt": c.utt_id} for c in list_clips(grid_dir, ["s1"])]
    test = [c["utt"] for c in make_split(s1).test][:6]
    summary = preprocess_corpus(grid_dir, tmp_path / "proc", PreprocessConfig(), speakers=["s1"],
                                utts=test, progress=False)
    assert summary["done"] == 6 and not summary["failed"]
    clips = load_index(tmp_path / "proc")
    assert sorted(c["utt"] for c in clips) == sorted(test)
    rows = evaluate_landmarks(asset_path("grid/landmarks.pt"), tmp_path / "proc", clips,
                              corpus=grid_dir)
    best = rows["text+audio"]
    assert best["error"] < rows["text+audio shuffled"]["error"], rows
    assert best["error"] < 0.7 * rows["still mouth"]["error"], rows
    assert best["opening_r"] > rows["position only"]["opening_r"], rows
