"""Read data prepared in the reference implementation's per-frame layout.

The public code of the speech-AU talking-face papers (Chen et al., BMVC 2021,
arXiv:2110.09951; the TCSAN follow-up, arXiv:2204.12756) could not be found for this course,
so this reader implements the layout as it was described to us; the assumptions are listed
here so that data that differs can be adapted in one place.

Assumed layout (one folder per clip, usually ``<root>/<speaker>/<clip>/``)::

    <clip>/align_face/{N}.jpg    aligned face crop of frame N (112 x 112, any square size)
    <clip>/align_face/{N}.csv    OpenFace 2 output for that crop: a header and one data row;
                                 columns AU10_r, AU14_r, AU20_r, AU25_r, AU26_r (0-5) and the
                                 matching _c (0/1); names may carry leading spaces
    <clip>/align_face/{N}.lms    68 landmarks of the crop: 68 lines "x y", or 136 numbers
                                 (x0 y0 x1 y1 ..., whitespace or comma separated)
    <clip>/mfcc/{N}.npy          MFCC window of frame N, (12, 28) (or (28, 12), transposed)
      or <clip>/mfcc.npy / a single <clip>/mfcc/*.npy   all windows, (T, 12, 28)

Assumptions: ``N`` is the last run of digits of the file name (``0.jpg``, ``frame_0007.jpg``)
and frames are ordered by its *numeric* value (``10.jpg`` after ``9.jpg``); numbering may
start at 0 or 1. The ``.lms`` points are in crop pixels, like our ``aligned_landmarks``. When
a ``_c`` column is missing, occurrence is ``intensity >= OCCURRENCE_THRESHOLD``. Images are
read with OpenCV and returned RGB.

:func:`read_reference_clip` returns the arrays under the names of the processed format
(:mod:`coursekit.data.dataset`); :func:`convert_reference` writes a whole tree in that format,
so :class:`~coursekit.data.dataset.TalkingFaceDataset` can train on it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import cv2
import numpy as np

from ..au import read_openface_frames

FACE_DIR = "align_face"
MFCC_DIR = "mfcc"
MFCC_SHAPE = (12, 28)


def frame_number(path: str | Path) -> int:
    """The frame number of a per-frame file: the last run of digits of its stem."""
    digits = re.findall(r"\d+", Path(path).stem)
    if not digits:
        raise ValueError(f"{path}: no frame number in the file name")
    return int(digits[-1])


def _numbered(folder: Path, suffix: str) -> dict[int, Path]:
    files = {}
    for path in folder.glob(f"*{suffix}"):
        n = frame_number(path)
        if n in files:
            raise ValueError(f"{folder}: two files for frame {n}: {files[n].name}, {path.name}")
        files[n] = path
    return files


def read_lms(path: str | Path) -> np.ndarray:
    """A ``.lms`` file as ``(68, 2)`` float32 ``(x, y)``."""
    values = [float(v) for v in re.split(r"[\s,;]+", Path(path).read_text().strip()) if v]
    if len(values) != 136:
        raise ValueError(f"{path}: expected 68 landmarks (136 numbers), got {len(values)} numbers")
    return np.asarray(values, dtype=np.float32).reshape(68, 2)


def _read_mfcc(clip: Path, ids: list[int]) -> np.ndarray | None:
    single = clip / "mfcc.npy"
    folder = clip / MFCC_DIR
    per_frame = _numbered(folder, ".npy") if folder.is_dir() else {}
    if single.is_file() or len(per_frame) == 1 and len(ids) > 1:
        path = single if single.is_file() else next(iter(per_frame.values()))
        mfcc = np.load(path).astype(np.float32)
        if mfcc.ndim == 3 and mfcc.shape[1:] == MFCC_SHAPE[::-1]:
            mfcc = mfcc.transpose(0, 2, 1)
        if mfcc.shape != (len(ids), *MFCC_SHAPE):
            raise ValueError(f"{path}: shape {mfcc.shape}, expected ({len(ids)}, 12, 28)")
        return np.ascontiguousarray(mfcc)
    if not per_frame:
        return None
    missing = [n for n in ids if n not in per_frame]
    if missing:
        raise ValueError(f"{folder}: no MFCC window for frame(s) {missing[:10]}")
    windows = []
    for n in ids:
        w = np.load(per_frame[n]).astype(np.float32)
        if w.shape == MFCC_SHAPE[::-1]:
            w = w.T
        if w.shape != MFCC_SHAPE:
            raise ValueError(f"{per_frame[n]}: shape {w.shape}, expected (12, 28)")
        windows.append(w)
    return np.stack(windows)


def read_reference_clip(folder: str | Path) -> dict:
    """One clip of the reference layout as processed-format arrays.

    Returns:
        ``{"frames": (T, S, S, 3) uint8 RGB, "identity": (S, S, 3) uint8 (first frame),
        "frame_ids": (T,) int64, "n_frames": T}`` plus, where the files exist,
        ``"aligned_landmarks": (T, 68, 2) float32`` (crop pixels), ``"aus": (T, 5) float32``,
        ``"occurrence": (T, 5) uint8`` and ``"mfcc": (T, 12, 28) float32``.

    Raises:
        FileNotFoundError: no ``align_face/`` folder or no ``.jpg`` in it.
        ValueError: a frame lacks its ``.csv``/``.lms``/MFCC while others have one, an image
            cannot be read, sizes differ, or a file is malformed (the message names it).
    """
    clip = Path(folder)
    faces = clip / FACE_DIR
    if not faces.is_dir():
        raise FileNotFoundError(f"{clip}: no {FACE_DIR}/ folder (not a reference-layout clip)")
    images = _numbered(faces, ".jpg")
    if not images:
        raise FileNotFoundError(f"{faces}: no .jpg frames")
    ids = sorted(images)
    frames = []
    for n in ids:
        bgr = cv2.imread(str(images[n]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{images[n]}: not a readable image")
        if frames and bgr.shape != frames[0].shape:
            raise ValueError(f"{images[n]}: size {bgr.shape[:2]}, "
                             f"first frame {frames[0].shape[:2]}")
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    out = {"frames": np.stack(frames), "identity": frames[0].copy(),
           "frame_ids": np.asarray(ids, dtype=np.int64), "n_frames": len(ids)}
    for suffix in (".lms", ".csv"):
        files = _numbered(faces, suffix)
        if not files:
            continue
        missing = [n for n in ids if n not in files]
        if missing:
            raise ValueError(f"{faces}: no {suffix} for frame(s) {missing[:10]}")
        if suffix == ".lms":
            out["aligned_landmarks"] = np.stack([read_lms(files[n]) for n in ids])
        else:
            table = read_openface_frames([files[n] for n in ids])
            out["aus"] = table["aus"].astype(np.float32)
            out["occurrence"] = table["occurrence"].astype(np.uint8)
    mfcc = _read_mfcc(clip, ids)
    if mfcc is not None:
        out["mfcc"] = mfcc
    return out


def find_reference_clips(root: str | Path) -> list[tuple[str, str, Path]]:
    """Every clip folder (one holding ``align_face/``) under ``root``, as
    ``(speaker, utt, folder)``: ``utt`` is the folder's name, ``speaker`` its parent's."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    found = [(p.parent.parent.name, p.parent.name, p.parent)
             for p in sorted(root.rglob(FACE_DIR)) if p.is_dir()]
    if not found:
        raise FileNotFoundError(f"{root}: no <clip>/{FACE_DIR}/ folders (reference layout)")
    return found


def convert_reference(src: str | Path, dst: str | Path, fps: float = 25.0) -> list[dict]:
    """Write every reference-layout clip under ``src`` in the processed format at ``dst``.

    Only the arrays the source has are written (no image landmarks or transforms);
    ``meta.json`` goes last, then ``index.json`` and ``errors.json`` (clips that failed).
    Returns the index's clip entries.
    """
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    entries, errors, size = [], {}, None
    for speaker, utt, folder in find_reference_clips(src):
        try:
            clip = read_reference_clip(folder)
        except (ValueError, FileNotFoundError) as err:
            errors[f"{speaker}/{utt}"] = str(err)
            continue
        out = dst / speaker / utt
        out.mkdir(parents=True, exist_ok=True)
        for key in ("frames", "identity", "aligned_landmarks", "aus", "occurrence", "mfcc"):
            if key in clip:
                np.save(out / f"{key}.npy", clip[key])
        meta = {"speaker": speaker, "utt": utt, "fps": fps, "n_frames": clip["n_frames"],
                "video": None, "source": str(folder), "layout": "reference",
                "landmark_source": "reference .lms", "au_source": "reference OpenFace csv",
                "frame_ids": clip["frame_ids"].tolist()}
        _write_json_atomic(out / "meta.json", meta)
        size = size or int(clip["frames"].shape[1])
        entries.append({"speaker": speaker, "utt": utt, "n_frames": clip["n_frames"],
                        "dir": f"{speaker}/{utt}"})
    _write_json_atomic(dst / "errors.json", errors)
    _write_json_atomic(dst / "index.json", {"format": "coursekit-processed", "version": 1,
                                            "size": size or 112, "fps": fps, "clips": entries})
    return entries


def _write_json_atomic(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
