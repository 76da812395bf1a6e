"""Read a processed dataset (written by ``coursekit preprocess``) as PyTorch training data.

The processed format
====================

One folder per dataset, one sub-folder per clip::

    DST/
      index.json     {"format": "coursekit-processed", "version": 1, "size": 112, "fps": 25.0,
                      "clips": [{"speaker": "s1", "utt": "bbaf2n", "n_frames": 75,
                                 "dir": "s1/bbaf2n"}, ...]}
      errors.json    {"<speaker>/<utt>": "message", ...}   clips that failed (not in the index)
      <speaker>/<utt>/
        frames.npy             (T, S, S, 3) uint8    aligned RGB face crops, S = size (112)
        identity.npy           (S, S, 3)    uint8    identity frame (the clip's first crop)
        landmarks.npy          (T, 68, 2)   float32  landmarks, image pixels (x, y)
        aligned_landmarks.npy  (T, 68, 2)   float32  the same landmarks in crop pixels
        transforms.npy         (T, 2, 3)    float32  image -> crop affine (cv2.warpAffine)
        aus.npy                (T, 5)       float32  AU intensities 0-5, order of au.AUS
        occurrence.npy         (T, 5)       uint8    AU occurrence 0/1
        mfcc.npy               (T, 12, 28)  float32  one MFCC window per frame (audio.py)
        speech.npy             (T,)         bool     frame inside a word (only with an .align)
        gt_aus.npy             (T, 5)       float32  ground-truth AUs (synthetic samples only)
        meta.json              {"speaker", "utt", "fps", "n_frames", "video", ...}

``T`` is the clip's number of video frames; every per-frame array has exactly ``T`` rows, and
row ``k`` of each belongs to video frame ``k`` (time ``k / fps``). ``meta.json`` is written
last (atomically), so **a clip folder without ``meta.json`` is incomplete** (an interrupted
run) and is ignored by :func:`load_index`, as are hidden (``.``-prefixed) temporary folders.

Reading it: :func:`load_index` lists the complete clips; :mod:`coursekit.data.splits`
splits them (:func:`split_clips` and :func:`split_clips3` are its by-speaker and hashed
by-utterance rules as tuples); :class:`TalkingFaceDataset`
serves whole clips or windows through memory maps; :func:`collate` batches its items;
:func:`mfcc_stats` gives the training clips' MFCC statistics for ``normalize_mfcc``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .splits import hashed_utterance_split, speaker_split
from .flow import FLOW_FIELDS, FlowCache
from .warped import WARP_FIELDS, WarpCache

FORMAT = "coursekit-processed"
VERSION = 1

FIELD_FILES = {
    "frames": "frames.npy", "identity": "identity.npy", "mfcc": "mfcc.npy",
    "aus": "aus.npy", "occurrence": "occurrence.npy", "landmarks": "aligned_landmarks.npy",
    "image_landmarks": "landmarks.npy", "transforms": "transforms.npy",
    "speech": "speech.npy", "gt_aus": "gt_aus.npy",
}
"""Item field -> file of the clip folder (``landmarks`` are the *crop* coordinates). The
fields of :data:`coursekit.data.warped.WARP_FIELDS` (``warped``, ``mouth_mask``) are computed
from ``identity.npy`` and ``aligned_landmarks.npy`` instead."""

DEFAULT_FIELDS = ("frames", "identity", "mfcc", "aus", "occurrence", "landmarks")
PER_CLIP_FIELDS = ("identity",)
"""Fields without a time axis; every other field has ``T`` rows."""


# ----------------------------------------------------------------------------- index


def load_index(root: str | Path) -> list[dict]:
    """The complete clips of the processed dataset ``root``.

    Returns ``[{"speaker", "utt", "n_frames", "dir", "path"}, ...]`` in index order
    (``path``: the clip folder, absolute). Clips without ``meta.json`` (incomplete) are left
    out with a warning. Raises ``FileNotFoundError`` when ``root`` is not a folder or has no
    ``index.json``, ``ValueError`` when that is not a processed index of a known version.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder (expected a processed dataset)")
    index_path = root / "index.json"
    if not index_path.is_file():
        raise FileNotFoundError(f"{root}: not a processed dataset (no index.json); "
                                "create one with `coursekit preprocess`")
    try:
        index = json.loads(index_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{index_path}: not valid JSON ({err})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise ValueError(f"{root}: index.json is not a {FORMAT!r} index")
    if index.get("version") != VERSION:
        raise ValueError(f"{root}: index.json has version {index.get('version')!r}; "
                         f"this coursekit reads version {VERSION}")
    clips, incomplete = [], []
    for entry in index.get("clips", []):
        folder = root / entry["dir"]
        hidden = any(part.startswith(".") for part in Path(entry["dir"]).parts)  # a temp folder
        if hidden or not (folder / "meta.json").is_file():
            incomplete.append(entry["dir"])
            continue
        clips.append({"speaker": str(entry["speaker"]), "utt": str(entry["utt"]),
                      "n_frames": int(entry["n_frames"]), "dir": entry["dir"],
                      "path": str(folder)})
    if incomplete:
        warnings.warn(f"{root}: {len(incomplete)} clip folder(s) without meta.json are "
                      f"incomplete and ignored: {', '.join(incomplete[:5])}"
                      + (" ..." if len(incomplete) > 5 else ""), stacklevel=2)
    return clips


# ----------------------------------------------------------------------------- splits


def split_clips3(clips: list[dict], by: str = "speaker", val=0.1, test=0.1,
                 seed: int = 0) -> tuple[list[dict], list[dict], list[dict]]:
    """Split clips three ways: ``(train, val, test)``, each in the input order.

    ``by="speaker"``: :func:`~coursekit.data.splits.speaker_split` (no speaker in two parts;
    ``val`` / ``test`` are lists of speakers or fractions of the speakers, drawn by a stable
    hash of their names). ``by="utterance"``:
    :func:`~coursekit.data.splits.hashed_utterance_split` (``val`` / ``test`` are fractions
    of the clips, each clip placed by a stable hash of ``seed`` and ``"speaker/utt"``, so
    adding clips never moves the others).
    """
    if by == "speaker":
        parts = speaker_split(clips, test=test, val=val, seed=seed)
    elif by in ("utterance", "utt"):
        parts = hashed_utterance_split(clips, val=val, test=test, seed=seed)
    else:
        raise ValueError(f"by must be 'speaker' or 'utterance', got {by!r}")
    return parts.train, parts.val, parts.test


def split_clips(clips: list[dict], by: str = "speaker", test=0.2,
                seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Split clips into ``(train, test)``; see :func:`split_clips3` for ``by`` and ``test``."""
    train, _, test_part = split_clips3(clips, by=by, val=None, test=test, seed=seed)
    return train, test_part


# ----------------------------------------------------------------------------- dataset


class TalkingFaceDataset(Dataset):
    """Clips (or windows of clips) of a processed dataset as dicts of tensors.

    Args:
        root: the processed dataset folder.
        clips: the clips to serve (from :func:`load_index` / :func:`split_clips`); all by
            default.
        seq_len: ``None``: one item = one whole clip (``T`` = its length). ``L``: one item =
            ``L`` consecutive frames; clips shorter than ``L`` are padded by repeating their
            last frame, with ``mask`` False on the padding.
        random_window: random start per access (training) or the centred window (evaluation).
        seed: with an int, each start is drawn from a generator seeded by ``(seed, epoch,
            index, n)`` where ``n`` counts this dataset object's earlier accesses to
            ``index``: repeated accesses differ, a new dataset with the same seed replays
            them, and results do not depend on ``num_workers`` (call :meth:`set_epoch` each
            epoch when workers are used, as their copies restart the count). ``None``: draw
            from torch's global generator (seeded per worker by the ``DataLoader``).
        mmap: read arrays through ``np.load(mmap_mode="r")`` so only the window is read.
        fields: which fields to serve; see :data:`FIELD_FILES`, plus ``warped`` and
            ``mouth_mask`` (:mod:`coursekit.data.warped`). A requested field that a clip lacks
            (``speech``, ``gt_aus``) raises ``FileNotFoundError``.
        normalize_mfcc: ``(mean, std)`` of shape ``(12, 1)`` (:func:`mfcc_stats`), applied as
            ``(mfcc - mean) / std``.

    Items (``T`` = clip length or ``seq_len``, ``S`` = crop size), all float32 unless said:
    ``frames (T, 3, S, S)`` and ``identity (3, S, S)`` RGB in [-1, 1]; ``mfcc (T, 12, 28)``
    (normalised if asked); ``aus (T, 5)`` 0-5; ``occurrence (T, 5)`` 0/1 (float, for BCE);
    ``landmarks (T, 68, 2)`` crop pixels; ``mask (T,)`` bool, True on real frames;
    ``speech (T,)`` bool if asked; ``speaker``, ``utt`` (str); ``start`` (int, first frame).
    The renderers' ``motion="warp"`` inputs, if asked (teacher forcing with the clip's tracked
    landmarks: :func:`coursekit.data.warped.clip_warp_inputs`, whole clips cached in memory
    by :class:`~coursekit.data.warped.WarpCache`): ``warped (T, 3, S, S)`` in [-1, 1], the
    identity warped to each frame's jaw and mouth, and ``mouth_mask (T, 1, S, S)`` in [0, 1],
    where the frame's lips part. The talker's ``temporal="flow"`` inputs
    (:mod:`coursekit.data.flow`): ``flow (T, 2, S, S)`` of the warped identity, frame ``t``
    back to ``t - 1``; ``previous (T, 3, S, S)``, each real frame's predecessor warped by it.
    """

    def __init__(self, root: str | Path, clips: list[dict] | None = None,
                 seq_len: int | None = None, *, random_window: bool = True,
                 seed: int | None = 0, mmap: bool = True, fields=DEFAULT_FIELDS,
                 normalize_mfcc: tuple | None = None):
        self.root = Path(root).expanduser().resolve()
        self.clips = list(load_index(self.root) if clips is None else clips)
        if seq_len is not None and int(seq_len) < 1:
            raise ValueError(f"seq_len must be a positive number of frames, got {seq_len}")
        unknown = set(fields) - set(FIELD_FILES) - set(WARP_FIELDS) - set(FLOW_FIELDS)
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}; known: "
                             f"{sorted([*FIELD_FILES, *WARP_FIELDS, *FLOW_FIELDS])}")
        self.seq_len = None if seq_len is None else int(seq_len)
        self.random_window, self.seed, self.mmap = random_window, seed, mmap
        self.fields = tuple(fields)
        self.epoch = 0
        self._accesses = np.zeros(len(self.clips), dtype=np.int64)
        self.mfcc_mean = self.mfcc_std = None
        self._warp_cache, self._flow_cache = WarpCache(), FlowCache()
        if normalize_mfcc is not None:
            mean, std = normalize_mfcc
            self.mfcc_mean = np.asarray(mean, dtype=np.float32).reshape(-1, 1)
            self.mfcc_std = np.asarray(std, dtype=np.float32).reshape(-1, 1)

    def __len__(self) -> int:
        return len(self.clips)

    def set_epoch(self, epoch: int) -> None:
        """Use a new set of random windows (part of the generator seed)."""
        self.epoch = int(epoch)

    def clip_dir(self, i: int) -> Path:
        clip = self.clips[i]
        return Path(clip["path"]) if "path" in clip else self.root / clip["dir"]

    def window(self, i: int) -> tuple[int, int]:
        """``(start, n_real)`` of the next access to item ``i`` (advances the access count)."""
        n = int(self.clips[i]["n_frames"])
        if self.seq_len is None:
            return 0, n
        span = n - self.seq_len
        if span <= 0:
            return 0, n
        if not self.random_window:
            return span // 2, self.seq_len
        if self.seed is None:
            start = int(torch.randint(span + 1, ()).item())
        else:
            count = int(self._accesses[i])
            self._accesses[i] += 1
            rng = np.random.default_rng([self.seed, self.epoch, i, count])
            start = int(rng.integers(span + 1))
        return start, self.seq_len

    def _read(self, folder: Path, field: str, start: int, stop: int) -> np.ndarray:
        path = folder / FIELD_FILES[field]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing (field {field!r} of clip {folder})")
        arr = np.load(path, mmap_mode="r" if self.mmap else None)
        if field in PER_CLIP_FIELDS:
            return np.array(arr)
        if stop > arr.shape[0]:
            raise ValueError(f"{path}: {arr.shape[0]} rows, index says at least {stop}")
        return np.array(arr[start:stop])

    def __getitem__(self, i: int) -> dict:
        start, n_real = self.window(i)
        return self._item(i, start, n_real)

    def _item(self, i: int, start: int, n_real: int) -> dict:
        """Clip ``i``'s frames ``[start, start + n_real)``, padded to ``seq_len``."""
        clip, folder = self.clips[i], self.clip_dir(i)
        length = n_real if self.seq_len is None else self.seq_len
        item, warp, temporal = {}, None, None
        for field in self.fields:
            if field in FLOW_FIELDS:
                n = int(clip["n_frames"])
                temporal = temporal or self._flow_cache.fields(
                    i, self._warp_cache.get(i, folder, 0, n, n)["warped"],
                    np.load(folder / FIELD_FILES["frames"], mmap_mode="r"), start, start + n_real)
                arr = temporal[field]
            elif field in WARP_FIELDS:
                warp = warp or self._warp_cache.get(i, folder, start, start + n_real,
                                                    int(clip["n_frames"]))
                arr = warp[field]
            else:
                arr = self._read(folder, field, start, start + n_real)
            if field not in PER_CLIP_FIELDS and n_real < length:
                pad = np.repeat(arr[-1:], length - n_real, axis=0)
                arr = np.concatenate([arr, pad], axis=0)
            item[field] = _to_tensor(field, arr, self.mfcc_mean, self.mfcc_std)
        mask = np.zeros(length, dtype=bool)
        mask[:n_real] = True
        item["mask"] = torch.from_numpy(mask)
        item.update(speaker=clip["speaker"], utt=clip["utt"], start=start)
        return item

    def __repr__(self) -> str:
        mode = "whole clips" if self.seq_len is None else f"windows of {self.seq_len} frames"
        return f"TalkingFaceDataset({self.root}, {len(self)} clips, {mode})"


def _to_tensor(field: str, arr: np.ndarray, mean=None, std=None) -> torch.Tensor:
    if field == "mouth_mask":
        return torch.from_numpy(np.ascontiguousarray(arr, np.float32)[:, None])
    if field in ("frames", "identity", "warped", "previous"):
        img = arr.astype(np.float32) * np.float32(1 / 127.5) - np.float32(1.0)
        axes = (0, 3, 1, 2) if img.ndim == 4 else (2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(img.transpose(axes)))
    if field == "speech":
        return torch.from_numpy(arr.astype(bool))
    arr = arr.astype(np.float32)
    if field == "mfcc" and mean is not None:
        arr = (arr - mean) / std
    return torch.from_numpy(np.ascontiguousarray(arr))


# ----------------------------------------------------------------------------- batching


def collate(items: list[dict]) -> dict:
    """Batch dataset items: tensors stacked to ``(B, T, ...)``, ``speaker`` / ``utt`` as lists,
    ``start`` as a ``(B,)`` int64 tensor. Items of different lengths (whole clips) are padded
    to the longest by repeating their last frame, with ``mask`` False on the padding."""
    if not items:
        raise ValueError("collate: empty batch")
    length = max(int(it["mask"].shape[0]) for it in items)
    batch = {}
    for key, first in items[0].items():
        values = [it[key] for it in items]
        if key in ("speaker", "utt"):
            batch[key] = list(values)
        elif key == "start":
            batch[key] = torch.as_tensor(values, dtype=torch.int64)
        elif key in PER_CLIP_FIELDS:
            batch[key] = torch.stack(values)
        else:
            batch[key] = torch.stack([_pad(v, length, key == "mask") for v in values])
    return batch


def _pad(v: torch.Tensor, length: int, zeros: bool) -> torch.Tensor:
    extra = length - v.shape[0]
    if extra <= 0:
        return v
    fill = torch.zeros_like(v[:1]) if zeros else v[-1:]
    return torch.cat([v, fill.expand(extra, *v.shape[1:])])


# ----------------------------------------------------------------------------- MFCC stats


def mfcc_stats(dataset_or_clips, root: str | Path | None = None,
               eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """Per-coefficient ``(mean, std)`` (float32, ``(12, 1)``, std floored at ``eps``) of the
    MFCC windows of a :class:`TalkingFaceDataset` or of clip dicts (``root`` only for dicts
    without ``path``), over every frame and window column. Use the *training* clips only, and
    pass the result as ``normalize_mfcc``."""
    if isinstance(dataset_or_clips, TalkingFaceDataset):
        folders = [dataset_or_clips.clip_dir(i) for i in range(len(dataset_or_clips))]
    else:
        folders = [Path(c["path"]) if "path" in c else Path(root) / c["dir"]
                   for c in dataset_or_clips]
    if not folders:
        raise ValueError("mfcc_stats: no clips")
    count, shift, total, total_sq = 0, None, 0.0, 0.0
    for folder in folders:  # float64 sums around the first clip's mean: no cancellation
        mfcc = np.load(folder / FIELD_FILES["mfcc"], mmap_mode="r").astype(np.float64)
        if shift is None:
            shift = mfcc.mean(axis=(0, 2))[:, None]
        x = mfcc - shift
        count += x.shape[0] * x.shape[2]
        total = total + x.sum(axis=(0, 2))[:, None]
        total_sq = total_sq + (x ** 2).sum(axis=(0, 2))[:, None]
    mean = total / count
    std = np.maximum(np.sqrt(np.maximum(total_sq / count - mean ** 2, 0.0)), eps)
    return (mean + shift).astype(np.float32), std.astype(np.float32)

