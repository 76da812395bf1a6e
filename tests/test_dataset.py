"""The processed-dataset reader (coursekit.data.dataset) and the reference-layout reader."""

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from coursekit.data.dataset import (TalkingFaceDataset, collate, load_index, mfcc_stats,
                                    split_clips, split_clips3)
from coursekit.data.reference import (convert_reference, frame_number, read_reference_clip)

S = 16  # small crops keep the tests fast; the format allows any size
LENGTHS = {"s1": [12, 20, 9, 15], "s2": [30, 7, 18, 11], "s3": [10, 25, 14, 8]}


def write_clip(root: Path, speaker: str, utt: str, n: int, rng, size: int = S,
               meta: bool = True) -> dict:
    """Write one clip of random arrays in the processed format; returns the arrays."""
    folder = root / speaker / utt
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "frames": rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        "landmarks": rng.uniform(0, 200, (n, 68, 2)).astype(np.float32),
        "aligned_landmarks": rng.uniform(0, size, (n, 68, 2)).astype(np.float32),
        "transforms": rng.normal(size=(n, 2, 3)).astype(np.float32),
        "aus": rng.uniform(0, 5, (n, 5)).astype(np.float32),
        "occurrence": rng.integers(0, 2, (n, 5), dtype=np.uint8),
        "mfcc": rng.normal(3.0, 2.0, (n, 12, 28)).astype(np.float32),
        "speech": rng.random(n) > 0.5,
    }
    arrays["frames"][:, 0, 0] = np.arange(n, dtype=np.uint8)[:, None]  # frame number as pixel
    arrays["identity"] = arrays["frames"][0].copy()
    for name, arr in arrays.items():
        np.save(folder / f"{name}.npy", arr)
    if meta:
        (folder / "meta.json").write_text(json.dumps(
            {"speaker": speaker, "utt": utt, "fps": 25.0, "n_frames": n, "video": None,
             "landmark_source": "random", "au_source": "random"}))
    return arrays


def write_index(root: Path, clips: list[tuple[str, str, int]], size: int = S) -> None:
    entries = [{"speaker": s, "utt": u, "n_frames": n, "dir": f"{s}/{u}"} for s, u, n in clips]
    (root / "index.json").write_text(json.dumps(
        {"format": "coursekit-processed", "version": 1, "size": size, "fps": 25.0,
         "clips": entries}))
    (root / "errors.json").write_text("{}")


@pytest.fixture()
def processed(tmp_path):
    """3 speakers x 4 clips of varying lengths; returns (root, {(spk, utt): arrays})."""
    rng = np.random.default_rng(0)
    data, entries = {}, []
    for spk, lengths in LENGTHS.items():
        for k, n in enumerate(lengths):
            utt = f"u{k}"
            data[spk, utt] = write_clip(tmp_path, spk, utt, n, rng)
            entries.append((spk, utt, n))
    write_index(tmp_path, entries)
    return tmp_path, data


# ----------------------------------------------------------------------------- index


def test_load_index_lists_clips(processed):
    root, data = processed
    clips = load_index(root)
    assert len(clips) == 12
    assert {(c["speaker"], c["utt"]) for c in clips} == set(data)
    assert all(Path(c["path"]).is_dir() for c in clips)


def test_incomplete_clip_is_ignored(processed):
    root, _ = processed
    (root / "s2" / "u1" / "meta.json").unlink()
    with pytest.warns(UserWarning, match="s2/u1"):
        clips = load_index(root)
    assert len(clips) == 11 and ("s2", "u1") not in {(c["speaker"], c["utt"]) for c in clips}


def test_hidden_temporary_folder_is_ignored(processed):
    root, _ = processed
    write_clip(root, "s1", ".u0.tmp123", 5, np.random.default_rng(9))  # a crashed write
    index = json.loads((root / "index.json").read_text())
    index["clips"].append({"speaker": "s1", "utt": "u0", "n_frames": 5, "dir": "s1/.u0.tmp123"})
    (root / "index.json").write_text(json.dumps(index))
    with pytest.warns(UserWarning, match="tmp123"):
        assert len(load_index(root)) == 12


def test_not_a_processed_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path))):
        load_index(tmp_path)
    (tmp_path / "index.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="coursekit-processed"):
        load_index(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_index(tmp_path / "missing")


# ----------------------------------------------------------------------------- splits


def test_speaker_split_is_disjoint(processed):
    clips = load_index(processed[0])
    train, test = split_clips(clips, by="speaker", test=["s3"])
    assert {c["speaker"] for c in test} == {"s3"} and len(train) == 8
    train, test = split_clips(clips, by="speaker", test=0.34, seed=1)
    assert not {c["speaker"] for c in train} & {c["speaker"] for c in test}
    assert len(train) + len(test) == 12 and test and train
    assert split_clips(clips, by="speaker", test=0.34, seed=1) == (train, test)
    tr, va, te = split_clips3(clips, by="speaker", val=["s1"], test=["s2"])
    assert [{c["speaker"] for c in p} for p in (tr, va, te)] == [{"s3"}, {"s1"}, {"s2"}]
    with pytest.raises(ValueError, match="s9"):
        split_clips(clips, by="speaker", test=["s9"])


def test_utterance_split_is_deterministic_and_stable():
    clips = [{"speaker": f"s{i % 5}", "utt": f"u{i}", "n_frames": 10, "dir": ""}
             for i in range(400)]
    train, test = split_clips(clips, by="utterance", test=0.25)
    assert (train, test) == split_clips(clips, by="utterance", test=0.25)
    assert 0.18 < len(test) / len(clips) < 0.32
    more = clips + [{"speaker": "s9", "utt": f"new{i}", "n_frames": 10, "dir": ""}
                    for i in range(100)]
    train2, test2 = split_clips(more, by="utterance", test=0.25)
    assert [c for c in test2 if c["speaker"] != "s9"] == test
    assert [c for c in train2 if c["speaker"] != "s9"] == train
    tr, va, te = split_clips3(clips, by="utterance", val=0.1, test=0.25)
    assert te == test and len(tr) + len(va) + len(te) == 400 and va
    assert split_clips(clips, by="utterance", test=0.25, seed=1) != (train, test)


# ----------------------------------------------------------------------------- items


def test_whole_clip_items(processed):
    root, data = processed
    ds = TalkingFaceDataset(root)
    for i in range(len(ds)):
        item, clip = ds[i], ds.clips[i]
        n, arrays = clip["n_frames"], data[clip["speaker"], clip["utt"]]
        assert item["frames"].shape == (n, 3, S, S) and item["mask"].all()
        assert item["identity"].shape == (3, S, S) and item["start"] == 0
        assert item["mfcc"].shape == (n, 12, 28) and item["aus"].shape == (n, 5)
        assert item["occurrence"].shape == (n, 5) and item["landmarks"].shape == (n, 68, 2)
        np.testing.assert_array_equal(item["landmarks"].numpy(), arrays["aligned_landmarks"])
        np.testing.assert_array_equal(item["mfcc"].numpy(), arrays["mfcc"])


def test_values_and_dtypes(processed):
    root, data = processed
    item = TalkingFaceDataset(root)[0]
    arrays = data[item["speaker"], item["utt"]]
    for key in ("frames", "identity", "mfcc", "aus", "occurrence", "landmarks"):
        assert item[key].dtype == torch.float32, key
    assert item["mask"].dtype == torch.bool
    assert item["frames"].min() >= -1 and item["frames"].max() <= 1
    expected = arrays["frames"].transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1
    np.testing.assert_allclose(item["frames"].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(item["identity"].numpy(), expected[0], atol=1e-6)
    assert set(np.unique(item["occurrence"].numpy())) <= {0.0, 1.0}


def frame_ids(item) -> np.ndarray:
    """Recover the clip frame numbers from the pixel the writer stamped them into."""
    return np.rint((item["frames"][:, 0, 0, 0].numpy() + 1) * 127.5).astype(int)


def test_windows_inside_clip_random_and_reproducible(processed):
    root, _ = processed
    ds = TalkingFaceDataset(root, seq_len=8, seed=3)
    i = next(k for k, c in enumerate(ds.clips) if c["n_frames"] == 30)
    starts = []
    for _ in range(12):
        item = ds[i]
        assert item["frames"].shape == (8, 3, S, S) and item["mask"].all()
        assert 0 <= item["start"] <= 30 - 8
        np.testing.assert_array_equal(frame_ids(item), np.arange(item["start"], item["start"] + 8))
        starts.append(item["start"])
    assert len(set(starts)) > 1
    again = TalkingFaceDataset(root, seq_len=8, seed=3)
    assert [again[i]["start"] for _ in range(12)] == starts
    other = TalkingFaceDataset(root, seq_len=8, seed=4)
    assert [other[i]["start"] for _ in range(12)] != starts
    fresh = TalkingFaceDataset(root, seq_len=8, seed=3)
    fresh.set_epoch(1)  # a new epoch draws new windows
    assert [fresh[i]["start"] for _ in range(5)] != starts[:5]


def test_centred_window(processed):
    root, _ = processed
    ds = TalkingFaceDataset(root, seq_len=8, random_window=False)
    for i, clip in enumerate(ds.clips):
        if clip["n_frames"] >= 8:
            assert ds[i]["start"] == ds[i]["start"] == (clip["n_frames"] - 8) // 2


def test_short_clips_are_padded_with_mask(processed):
    root, data = processed
    ds = TalkingFaceDataset(root, seq_len=16, fields=("frames", "aus", "speech"))
    i = next(k for k, c in enumerate(ds.clips) if c["n_frames"] == 7)
    item = ds[i]
    assert item["frames"].shape[0] == 16 and item["start"] == 0
    assert item["mask"].tolist() == [True] * 7 + [False] * 9
    np.testing.assert_array_equal(frame_ids(item), [0, 1, 2, 3, 4, 5, 6] + [6] * 9)
    aus = data["s2", "u1"]["aus"]
    np.testing.assert_array_equal(item["aus"].numpy()[7:], np.repeat(aus[-1:], 9, axis=0))
    assert item["speech"].dtype == torch.bool and item["speech"].shape == (16,)


def test_missing_optional_field_is_an_error(processed):
    root, _ = processed
    ds = TalkingFaceDataset(root, fields=("aus", "gt_aus"))
    with pytest.raises(FileNotFoundError, match="gt_aus"):
        ds[0]


def test_dataloader_batches(processed):
    root, _ = processed
    ds = TalkingFaceDataset(root, seq_len=10, seed=0)
    batch = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate, num_workers=0)))
    assert batch["frames"].shape == (4, 10, 3, S, S)
    assert batch["identity"].shape == (4, 3, S, S)
    assert batch["mfcc"].shape == (4, 10, 12, 28) and batch["aus"].shape == (4, 10, 5)
    assert batch["landmarks"].shape == (4, 10, 68, 2) and batch["mask"].shape == (4, 10)
    assert batch["start"].dtype == torch.int64 and len(batch["speaker"]) == 4
    whole = TalkingFaceDataset(root)
    batch = next(iter(DataLoader(whole, batch_size=3, collate_fn=collate)))
    lengths = [c["n_frames"] for c in whole.clips[:3]]
    assert batch["frames"].shape == (3, max(lengths), 3, S, S)
    assert batch["mask"].sum(dim=1).tolist() == lengths


def test_mfcc_stats_and_normalisation(processed):
    root, data = processed
    clips = load_index(root)
    train, _ = split_clips(clips, by="speaker", test=["s3"])
    mean, std = mfcc_stats(train)
    allm = np.concatenate([data[c["speaker"], c["utt"]]["mfcc"] for c in train]).astype(np.float64)
    np.testing.assert_allclose(mean[:, 0], allm.mean(axis=(0, 2)), rtol=1e-5)
    np.testing.assert_allclose(std[:, 0], allm.std(axis=(0, 2)), rtol=1e-5)
    assert mean.shape == std.shape == (12, 1)
    ds = TalkingFaceDataset(root, train, normalize_mfcc=(mean, std))
    m2, s2 = mfcc_stats(ds)
    np.testing.assert_allclose(m2, mean)
    norm = torch.cat([ds[i]["mfcc"] for i in range(len(ds))]).numpy()
    np.testing.assert_allclose(norm.mean(axis=(0, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(norm.std(axis=(0, 2)), 1, atol=1e-4)


# ----------------------------------------------------------------------------- reference


def make_reference_clip(folder: Path, n: int, rng, mfcc_per_frame=True) -> dict:
    faces = folder / "align_face"
    faces.mkdir(parents=True)
    aus_names = ("AU10", "AU14", "AU20", "AU25", "AU26")
    header = "frame, face_id, timestamp, confidence, success, " + ", ".join(
        [f"{a}_r" for a in aus_names] + [f"{a}_c" for a in aus_names])
    aus = np.round(rng.uniform(0, 5, (n, 5)), 2).astype(np.float32)
    lms = np.round(rng.uniform(0, S, (n, 68, 2)), 3).astype(np.float32)
    mfcc = rng.normal(size=(n, 12, 28)).astype(np.float32)
    for k in range(n):  # numbered from 1, as in many frame dumps
        img = np.full((S, S, 3), k * 10, dtype=np.uint8)
        img[..., 2] = 200  # red in BGR: checks the RGB conversion
        cv2.imwrite(str(faces / f"{k + 1}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 100])
        row = [k + 1, 0, k * 0.04, 0.98, 1, *aus[k], *(aus[k] >= 1).astype(int)]
        (faces / f"{k + 1}.csv").write_text(header + "\n" + ", ".join(map(str, row)) + "\n")
        if k % 2:
            text = " ".join(f"{v:.3f}" for v in lms[k].ravel())
        else:
            text = "\n".join(f"{x:.3f} {y:.3f}" for x, y in lms[k])
        (faces / f"{k + 1}.lms").write_text(text)
        if mfcc_per_frame:
            (folder / "mfcc").mkdir(exist_ok=True)
            np.save(folder / "mfcc" / f"{k + 1}.npy", mfcc[k])
    if not mfcc_per_frame:
        np.save(folder / "mfcc.npy", mfcc)
    return {"aus": aus, "lms": lms, "mfcc": mfcc}


def test_reference_reader(tmp_path):
    rng = np.random.default_rng(1)
    truth = make_reference_clip(tmp_path / "s1" / "clipA", 12, rng)
    assert frame_number("frame_0010.jpg") == 10
    clip = read_reference_clip(tmp_path / "s1" / "clipA")
    assert clip["frame_ids"].tolist() == list(range(1, 13))  # 10.jpg after 9.jpg
    assert clip["frames"].shape == (12, S, S, 3) and clip["frames"].dtype == np.uint8
    assert abs(int(clip["frames"][9, 0, 0, 1]) - 90) <= 2  # the 10th frame, not "10" < "2"
    assert clip["frames"][0, 0, 0, 0] > 190  # RGB: red first
    np.testing.assert_array_equal(clip["identity"], clip["frames"][0])
    np.testing.assert_allclose(clip["aus"], truth["aus"], atol=1e-6)
    np.testing.assert_array_equal(clip["occurrence"], (truth["aus"] >= 1).astype(np.uint8))
    assert clip["occurrence"].dtype == np.uint8
    np.testing.assert_allclose(clip["aligned_landmarks"], truth["lms"], atol=1e-3)
    np.testing.assert_array_equal(clip["mfcc"], truth["mfcc"])


def test_reference_conversion_feeds_the_dataset(tmp_path):
    rng = np.random.default_rng(2)
    make_reference_clip(tmp_path / "ref" / "s1" / "a", 9, rng)
    make_reference_clip(tmp_path / "ref" / "s2" / "b", 11, rng, mfcc_per_frame=False)
    (tmp_path / "ref" / "s2" / "broken" / "align_face").mkdir(parents=True)
    entries = convert_reference(tmp_path / "ref", tmp_path / "out")
    assert [(e["speaker"], e["utt"], e["n_frames"]) for e in entries] == [("s1", "a", 9),
                                                                         ("s2", "b", 11)]
    assert "s2/broken" in json.loads((tmp_path / "out" / "errors.json").read_text())
    ds = TalkingFaceDataset(tmp_path / "out", seq_len=10)
    assert [ds[i]["mask"].sum().item() for i in range(2)] == [9, 10]


def test_reference_missing_file_is_named(tmp_path):
    make_reference_clip(tmp_path / "c", 4, np.random.default_rng(3))
    (tmp_path / "c" / "align_face" / "3.lms").unlink()
    with pytest.raises(ValueError, match=r"\.lms.*\[3\]"):
        read_reference_clip(tmp_path / "c")
