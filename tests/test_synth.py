"""The shipped sample corpus: content, ground truth, timing variety, exact regeneration."""

import json
from pathlib import Path

import numpy as np
import pytest

from coursekit.au import AUS
from coursekit.data import synth
from coursekit.data.corpus import (SAMPLES_DIR, list_clips, read_align, read_ground_truth,
                                   sha256, speech_mask, verify_checksums)

META = json.loads((SAMPLES_DIR / "corpus.json").read_text())


# ----------------------------------------------------------------------------- visemes


def test_every_grid_phoneme_has_a_viseme():
    from coursekit.data import espeak

    vocabulary = [w for words in synth.GRID_WORDS.values() for w in words]
    symbols = {p.symbol for p in espeak.synthesize(" ".join(vocabulary)).phones}
    assert len(symbols) > 20
    for sym in symbols:
        cls = synth.viseme_class(sym)
        assert cls in synth.VISEMES
        if cls == "schwa":  # the fallback class: only for real schwa-like symbols
            assert sym[0] in "@3", f"espeak symbol {sym!r} fell back to 'schwa'"


def test_coarticulation_closes_lips_on_bilabials_and_anticipates():
    P = synth.TimedPhone
    phones = [P("_", 0.0, 0.5), P("a", 0.5, 0.7), P("b", 0.7, 0.78), P("a", 0.78, 1.0),
              P("_", 1.0, 2.0)]
    t = np.array([0.1, 0.6, 0.74, 0.66, 1.9])
    aus = synth.phones_to_aus(phones, t)
    au25, au26 = AUS.index("AU25"), AUS.index("AU26")
    assert np.all(aus[0] < 1e-3) and np.all(aus[4] < 0.05)  # silence: still, closed mouth
    assert aus[1, au26] > 2.5 and aus[1, au25] > 2.5  # open vowel
    assert aus[2, au25] < 1.0  # bilabial: lips closed (below occurrence)
    assert aus[2, au25] < aus[3, au25] < aus[1, au25]  # anticipation before the closure


def test_grid_sentence_ids():
    rng = np.random.default_rng(0)
    for _ in range(50):
        words, utt = synth.grid_sentence(rng)
        assert len(words) == 6 and len(utt) == 6 and words[3] == utt[3]


# ----------------------------------------------------------------------------- the corpus


def test_corpus_size_and_layout():
    clips = list_clips(SAMPLES_DIR)
    speakers = {c.speaker for c in clips}
    assert len(speakers) >= 4
    assert min(sum(c.speaker == s for c in clips) for s in speakers) >= 8
    for c in clips:
        assert c.audio and c.align and c.phones and c.ground_truth, c
    total = sum(p.stat().st_size for p in SAMPLES_DIR.rglob("*") if p.is_file())
    assert total <= 15 * 2**20, f"data_samples is {total / 2**20:.1f} MB"


def test_checksums_match():
    assert verify_checksums(SAMPLES_DIR) == []


def test_ground_truth_matches_video_and_audio():
    from coursekit.audio import load_audio
    from coursekit.video import read_video

    for c in list_clips(SAMPLES_DIR)[::7]:
        gt = read_ground_truth(c.ground_truth)
        frames, fps = read_video(c.video)
        audio, sr = load_audio(c.audio)
        assert fps == 25 and len(frames) == len(gt["aus"]) == round(audio.size / sr * fps)
        assert gt["landmarks"].shape == (len(frames), 68, 2)
        h, w = frames.shape[1:3]
        assert h >= 128 and w >= 128
        assert np.all((gt["landmarks"] >= 0) & (gt["landmarks"] < [w, h]))
        np.testing.assert_array_equal(gt["occurrence"], gt["aus"] >= 1.0)


def test_mouth_landmarks_follow_the_aus():
    gap, opening = [], []
    for c in list_clips(SAMPLES_DIR):
        gt = read_ground_truth(c.ground_truth)
        lm = gt["landmarks"]
        gap.append(lm[:, 66, 1] - lm[:, 62, 1])  # inner lower lip minus inner upper lip
        opening.append(gt["aus"][:, AUS.index("AU25")] + gt["aus"][:, AUS.index("AU26")])
    r = np.corrcoef(np.concatenate(gap), np.concatenate(opening))[0, 1]
    assert r > 0.8, r


def test_aus_follow_speech_not_silence():
    inside, outside = [], []
    for c in list_clips(SAMPLES_DIR):
        gt = read_ground_truth(c.ground_truth)
        mask = speech_mask(read_align(c.align), len(gt["aus"]))
        inside.append(gt["occurrence"][mask])
        outside.append(gt["occurrence"][~mask])
    inside, outside = np.concatenate(inside).mean(0), np.concatenate(outside).mean(0)
    au25 = AUS.index("AU25")
    assert inside[au25] > 0.6 and outside[au25] < 0.15, (inside, outside)
    assert np.all(inside > 0.15), f"every AU must occur in speech: {dict(zip(AUS, inside))}"


def test_speech_timing_varies_between_clips():
    """Unlike real GRID, speech onset and length differ, so frame position alone cannot tell."""
    onsets, lengths = [], []
    for c in list_clips(SAMPLES_DIR):
        words = [w for w in read_align(c.align) if w[2] not in ("sil", "sp")]
        onsets.append(words[0][0])
        lengths.append(words[-1][1] - words[0][0])
    assert np.std(onsets) > 0.2 and np.ptp(onsets) > 0.7
    assert np.std(lengths) > 0.15


def test_regeneration_is_bit_identical(tmp_path):
    """One clip regenerated from scratch equals the committed files byte for byte."""
    settings = dict(META["config"])
    settings["voices"] = [synth.Voice(**v) for v in settings["voices"]]
    cfg = synth.CorpusConfig(**settings)
    speaker, index = 1, 3
    name = f"spk{speaker + 1}"
    _, utt, aus, frames, marks = synth.make_utterance(cfg, speaker, index)
    assert utt.utt_id in META["speakers"][name]["utterances"]
    for path in synth.write_utterance(tmp_path, name, utt, aus, frames, marks, cfg.fps):
        rel = str(path.relative_to(tmp_path))
        assert sha256(path) == META["sha256"][rel], rel


def test_letter_a_is_spoken_as_its_name():
    rng = np.random.default_rng(0)
    utt = synth.speak(["set", "red", "at", "a", "one", "now"], "srta1n", synth.Voice(), rng,
                      pause_prob=0.0)
    assert [w[0] for w in utt.words] == ["set", "red", "at", "a", "one", "now"]
    start, end = utt.words[3][1:]
    inside = [p.symbol for p in utt.phones if start <= p.start < end]
    assert inside == ["eI"], inside
