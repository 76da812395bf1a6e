"""``coursekit preprocess SRC DST``: from a GRID-layout corpus to the tensors the models train on.

Per clip: decode the video, track 68 landmarks (or take a corpus' ground truth), align and crop
the faces (112 x 112), label the five speech AUs (landmark estimator, OpenFace CSVs, or ground
truth), cut one MFCC window per frame, and write the arrays of
:mod:`coursekit.data.dataset`'s format.

Safe to interrupt and re-run:

* every clip is written into a hidden temporary folder that is renamed into place when complete
  (a rename is atomic), so ``DST/<speaker>/<utt>/`` is either complete or absent;
* a re-run skips complete clips (resume), and removes the leftovers of a killed run;
* a clip that fails (no face, no audio, corrupt video, ...) is recorded in ``DST/errors.json``
  with a message naming the file, and the run goes on;
* ``DST/index.json`` lists the complete clips and is rewritten (atomically) at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import au
from ..audio import load_audio, load_video_audio, mfcc_windows
from ..face import LandmarkDetector, align_clip
from ..video import read_video
from .corpus import Clip, list_clips, read_align, read_ground_truth, speech_mask

FORMAT = "coursekit-processed"
VERSION = 1


@dataclass
class PreprocessConfig:
    """How clips are processed.

    landmarks: ``"detect"`` (dlib tracking) or ``"ground_truth"`` (the corpus' ``gt/*.csv``).
    aus: ``"estimate"`` (from the landmarks, :func:`coursekit.au.estimate_aus`), ``"openface"``
        (``<speaker>/openface/<utt>.csv``, OpenFace 2 output) or ``"ground_truth"``.
    """

    size: int = 112
    landmarks: str = "detect"
    aus: str = "estimate"
    smooth_sigma: float = 1.5

    def __post_init__(self):
        if self.landmarks not in ("detect", "ground_truth"):
            raise ValueError(f"landmarks must be 'detect' or 'ground_truth', not {self.landmarks!r}")
        if self.aus not in ("estimate", "openface", "ground_truth"):
            raise ValueError(f"aus must be 'estimate', 'openface' or 'ground_truth', not {self.aus!r}")


def process_clip(clip: Clip, cfg: PreprocessConfig, detector: LandmarkDetector | None = None) -> dict:
    """All arrays of one clip (see :mod:`coursekit.data.dataset` for names and shapes)."""
    frames, fps = read_video(clip.video)
    n = len(frames)
    # a separate recording is taken as is; a video's own sound is placed on its timeline
    audio, sr = (load_audio(clip.audio) if clip.audio
                 else load_video_audio(clip.video, duration=n / fps))
    gt = read_ground_truth(clip.ground_truth) if clip.ground_truth else None
    if gt is None and "ground_truth" in (cfg.landmarks, cfg.aus):
        raise FileNotFoundError(f"{clip.video}: no ground-truth CSV (gt/{clip.utt_id}.csv)")
    if gt is not None and len(gt["aus"]) != n:
        raise ValueError(f"{clip.video}: {n} video frames but {len(gt['aus'])} ground-truth rows "
                         "(mismatched lengths)")
    given = gt["landmarks"] if cfg.landmarks == "ground_truth" else None
    faces = align_clip(frames, given, size=cfg.size, source=str(clip.video), detector=detector,
                       smooth_sigma=cfg.smooth_sigma)
    if cfg.aus == "ground_truth":
        aus, occurrence = gt["aus"], gt["occurrence"]
    elif cfg.aus == "openface":
        path = clip.video.parent.parent / "openface" / f"{clip.utt_id}.csv"
        table = au.read_openface_csv(path)
        aus, occurrence = table["aus"], table["occurrence"]
    else:
        aus, occurrence = au.estimate_aus(faces.landmarks)
    if len(aus) != n:
        raise ValueError(f"{clip.video}: {len(aus)} AU rows for {n} video frames (mismatched lengths)")
    arrays = {
        "frames": faces.crops,
        "identity": faces.crops[0],
        "landmarks": faces.landmarks,
        "aligned_landmarks": faces.aligned,
        "transforms": faces.transforms,
        "aus": np.asarray(aus, np.float32),
        "occurrence": np.asarray(occurrence, np.uint8),
        "mfcc": mfcc_windows(audio, sr, n, fps),
    }
    if clip.align is not None:
        arrays["speech"] = speech_mask(read_align(clip.align), n, fps)
    if gt is not None:
        arrays["gt_aus"] = np.asarray(gt["aus"], np.float32)
    meta = {"speaker": clip.speaker, "utt": clip.utt_id, "fps": fps, "n_frames": n,
            "video": str(clip.video), "audio": str(clip.audio_source),
            "landmark_source": cfg.landmarks, "au_source": cfg.aus, "size": cfg.size}
    return {"arrays": arrays, "meta": meta}


def write_clip(dst: Path, result: dict) -> Path:
    """Write one clip's arrays atomically: temporary folder, ``meta.json`` last, then rename."""
    meta = result["meta"]
    final = Path(dst) / meta["speaker"] / meta["utt"]
    tmp = final.with_name(f".{final.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, array in result["arrays"].items():
        np.save(tmp / f"{name}.npy", array)
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    if final.exists():  # an incomplete folder (no meta.json) from an older version
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def is_done(dst: Path, clip: Clip) -> bool:
    return (Path(dst) / clip.speaker / clip.utt_id / "meta.json").is_file()


# ----------------------------------------------------------------------------- the run

_WORKER: dict = {}


def _init_worker(cfg_dict: dict) -> None:
    """Per-process set-up: one thread per worker (2 busy cores and OpenMP spin badly)."""
    import cv2

    cv2.setNumThreads(1)
    _WORKER["cfg"] = PreprocessConfig(**cfg_dict)
    _WORKER["detector"] = LandmarkDetector() if _WORKER["cfg"].landmarks == "detect" else None


def _run_one(job: tuple[Clip, str]) -> tuple[str, str | None, int]:
    clip, dst = job
    key = f"{clip.speaker}/{clip.utt_id}"
    try:
        result = process_clip(clip, _WORKER["cfg"], _WORKER["detector"])
        write_clip(Path(dst), result)
        return key, None, result["meta"]["n_frames"]
    except Exception as err:  # recorded, never stops the run
        message = str(err) if str(clip.video) in str(err) else f"{clip.video}: {err}"
        return key, f"{type(err).__name__}: {message}", 0


def preprocess_corpus(src: str | Path, dst: str | Path, cfg: PreprocessConfig | None = None, *,
                      workers: int = 1, speakers: list[str] | None = None,
                      utts: list[str] | None = None, progress: bool = True) -> dict:
    """Process every clip of ``src`` (of ``speakers``; of the utterance ids ``utts``, when
    given) into ``dst`` (resumable); returns a summary dict.

    Summary: ``{"done": clips written now, "skipped": complete before, "failed": {key: message},
    "frames": frames written now, "seconds": wall time, "index": path}``.
    """
    from tqdm.auto import tqdm

    cfg = cfg or PreprocessConfig()
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for leftover in dst.glob("*/.*.tmp*"):  # a killed run's half-written clips
        shutil.rmtree(leftover, ignore_errors=True)
    clips = list_clips(src, speakers)
    if utts is not None:
        clips = [c for c in clips if c.utt_id in set(utts)]
    todo = [c for c in clips if not is_done(dst, c)]
    start = time.time()
    failed, frames, done = {}, 0, 0
    jobs = [(c, str(dst)) for c in todo]
    bar = tqdm(total=len(jobs), desc="preprocess", unit="clip", disable=not progress)
    if workers <= 1:
        _init_worker(asdict(cfg))
        results = map(_run_one, jobs)
        pool = None
    else:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(workers, _init_worker, (asdict(cfg),))
        results = pool.imap_unordered(_run_one, jobs)
    try:
        for key, error, n in results:
            if error:
                failed[key] = error
            else:
                done, frames = done + 1, frames + n
            bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    _write_errors(dst, failed, {f"{c.speaker}/{c.utt_id}" for c in todo})
    index = write_index(dst, cfg)
    return {"done": done, "skipped": len(clips) - len(todo), "failed": failed, "frames": frames,
            "seconds": time.time() - start, "index": str(index)}


def _write_errors(dst: Path, failed: dict, attempted: set) -> None:
    path = dst / "errors.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    errors = {k: v for k, v in old.items() if k not in attempted}
    errors.update(failed)
    _atomic_text(path, json.dumps(dict(sorted(errors.items())), indent=1) + "\n")


def write_index(dst: str | Path, cfg: PreprocessConfig | None = None) -> Path:
    """Rebuild ``index.json`` from the complete clip folders under ``dst``."""
    dst = Path(dst)
    clips, fps = [], None
    for meta_path in sorted(dst.glob("*/*/meta.json")):
        if meta_path.parent.name.startswith("."):  # a half-renamed temporary folder
            continue
        meta = json.loads(meta_path.read_text())
        fps = fps or meta["fps"]
        clips.append({"speaker": meta["speaker"], "utt": meta["utt"], "n_frames": meta["n_frames"],
                      "dir": str(meta_path.parent.relative_to(dst))})
    index = {"format": FORMAT, "version": VERSION, "size": (cfg or PreprocessConfig()).size,
             "fps": fps, "clips": clips}
    path = dst / "index.json"
    _atomic_text(path, json.dumps(index, indent=1) + "\n")
    return path


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
