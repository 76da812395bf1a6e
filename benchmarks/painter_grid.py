"""Mouth painter on real GRID: does painting the mouth interior make warped faces look and
read (to dlib) like the real ones, on faces it never saw?

End to end, on the CPU (results printed and written to ``--out``):

1. data: GRID preprocessed at 112 px (``--proc``; made from ``--grid`` when missing) and the
   shipped samples at 112 px with ground-truth landmarks (``--samples-proc``; made when
   missing). Split as ``benchmarks/motion_probe.py``: s1 by coursekit's holdout rule (every
   5th utterance held out), the five ``others`` clips sorted by name, the first two
   (brbk7n, lbax4n: unseen speakers) held out, the other three trained on;
2. train the painter (:mod:`coursekit.train.painter`, ``--size`` preset, ``--steps`` steps,
   torch on ``--threads`` threads plus ``--workers`` data processes) on s1's training
   utterances, the three ``others`` clips and every sample clip; the checkpoint is stored in
   fp16 and that file is what is evaluated (and copied to ``--save``);
3. on each held-out clip, the identity is its first frame; every frame is the identity warped
   by the clip's REAL jaw and mouth landmarks (:func:`coursekit.warp.backward_map`), (a)
   alone and (b) with the painter composed in (:func:`coursekit.models.painter.compose`):

   * PSNR / SSIM against the real frames (:mod:`coursekit.metrics`) on the 112 px crops:
     the whole face (every frame) and a 48 x 32 box around the real mouth (frames whose
     lips part);
   * dlib's mouth opening (:func:`coursekit.face.track_landmarks`,
     :func:`coursekit.metrics.mouth_opening`) on the first video frame at its own
     resolution warped by the crop's map (:func:`coursekit.warp.warp_photo`), with (b) the
     painted crop pasted back through the crop transform, against the real clip's:
     correlation and spread ratio (std generated / std real).

4. the painter's speed: frames per second at 112 px, batches of 32, 2 torch threads.

PNGs (identity, warped, painted, real, and the mouths enlarged) go to ``--png``.

    python benchmarks/painter_grid.py [--save coursekit/assets/grid/painter.pt]
"""

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

S = 112
BOX = (48, 32)  # mouth box (width, height) for the mouth PSNR / SSIM


def splits(proc, samples_proc):
    """``(train, held_unseen, held_s1)`` clip lists (train: GRID + samples)."""
    from coursekit.data.dataset import load_index
    from coursekit.data.splits import make_split

    clips = load_index(proc)
    split = make_split([c for c in clips if c["speaker"] == "s1"], holdout_every=5, holdout_offset=4)
    others = sorted((c for c in clips if c["speaker"] == "others"), key=lambda c: c["utt"])
    unseen = others[:2]
    assert [c["utt"] for c in unseen] == ["brbk7n", "lbax4n"], unseen
    return split.train + others[2:] + load_index(samples_proc), unseen, split.test


def preprocess(grid, proc, samples_proc):
    from coursekit.data.corpus import SAMPLES_DIR
    from coursekit.data.preprocess import PreprocessConfig, preprocess_corpus

    if not (Path(proc) / "index.json").is_file():
        if not grid:
            raise SystemExit(f"{proc}: no processed GRID; give --grid or COURSEKIT_GRID_DIR")
        preprocess_corpus(grid, proc, PreprocessConfig(), workers=1, progress=False)
    if not (Path(samples_proc) / "index.json").is_file():
        preprocess_corpus(SAMPLES_DIR, samples_proc,
                          PreprocessConfig(size=S, landmarks="ground_truth", aus="ground_truth"),
                          workers=1, progress=False)


def paint_clip(painter, folder):
    """The clip's crops: ``identity``, ``warped``, ``painted``, ``real`` ``(T, S, S, 3)``
    uint8, the painter's ``a = alpha * mask`` ``(T, S, S)``, the crop maps and landmarks."""
    import torch

    from coursekit import warp
    from coursekit.models.painter import compose, paint_mask

    real = np.load(folder / "frames.npy")
    lm = np.load(folder / "aligned_landmarks.npy")
    wanted = np.repeat(lm[:1], len(lm), 0)
    wanted[:, warp.MOVING] = lm[:, warp.MOVING]
    maps = [warp.backward_map(lm[0], w, (S, S)) for w in wanted]
    warped = np.stack([warp.warp_image(real[0], m) for m in maps])
    mask = np.stack([paint_mask(w, (S, S), painter.cfg) for w in wanted])

    def tensor(x):
        return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1

    with torch.no_grad():
        w, m = tensor(warped), torch.from_numpy(mask)[:, None]
        rgb, alpha = painter(w, m, tensor(np.repeat(real[:1], len(real), 0)))
        out = compose(w, m, rgb, alpha)
    painted = ((out.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    rgb8 = ((rgb.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    return {"identity": real[0], "warped": warped, "painted": painted, "real": real, "rgb": rgb8,
            "a": (alpha * m)[:, 0].numpy(), "maps": maps, "landmarks": lm, "wanted": wanted}


def mouth_boxes(images, landmarks):
    """``(N, 3, BOX_H, BOX_W)`` in [-1, 1]: the box around each frame's mouth."""
    w, h = BOX
    out = []
    for img, lm in zip(images, landmarks):
        cx, cy = lm[48:68].mean(0)
        x0 = int(np.clip(round(cx - w / 2), 0, S - w))
        y0 = int(np.clip(round(cy - h / 2), 0, S - h))
        out.append(img[y0:y0 + h, x0:x0 + w])
    return np.stack(out).transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1


def image_scores(clip):
    """PSNR / SSIM of warped and painted crops against the real ones: face and mouth."""
    from coursekit.metrics import psnr, ssim
    from coursekit.models.motion import lip_gap

    real = clip["real"].transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1
    open_ = lip_gap(clip["landmarks"]) > 1.0
    scores = {}
    for name in ("warped", "painted"):
        fake = clip[name].transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1
        mf = mouth_boxes(clip[name][open_], clip["landmarks"][open_])
        mr = mouth_boxes(clip["real"][open_], clip["landmarks"][open_])
        scores[name] = {"face_psnr": psnr(fake, real), "face_ssim": ssim(fake, real),
                        "mouth_psnr": psnr(mf, mr), "mouth_ssim": ssim(mf, mr)}
    return scores


def photo_frames(photo, transform, clip):
    """The identity photo warped by each crop map: ``(warped, painted)`` ``(T, H, W, 3)``."""
    import cv2

    from coursekit import warp

    inv = cv2.invertAffineTransform(transform)
    h, w = photo.shape[:2]
    warped, painted = [], []
    for m, rgb, a in zip(clip["maps"], clip["rgb"], clip["a"]):
        frame = warp.warp_photo(photo, m, transform)
        big_a = cv2.warpAffine(a, inv, (w, h), flags=cv2.INTER_LINEAR)[..., None]
        big_rgb = cv2.warpAffine(rgb, inv, (w, h), flags=cv2.INTER_LINEAR).astype(np.float32)
        warped.append(frame)
        painted.append((frame * (1 - big_a) + big_rgb * big_a + 0.5).clip(0, 255).astype(np.uint8))
    return np.stack(warped), np.stack(painted)


def opening_scores(clip, folder, detector):
    """``{"warped"|"painted": (correlation, spread ratio)}`` of dlib's mouth opening."""
    from coursekit.face import track_landmarks
    from coursekit.metrics import mouth_opening
    from coursekit.video import read_video

    meta = json.loads((folder / "meta.json").read_text())
    photo = read_video(meta["video"])[0][0]
    transform = np.load(folder / "transforms.npy")[0]
    real = mouth_opening(np.load(folder / "landmarks.npy"))
    out = {}
    for name, frames in zip(("warped", "painted"), photo_frames(photo, transform, clip)):
        opening = mouth_opening(track_landmarks(frames, detector, source=str(folder)))
        out[name] = (float(np.corrcoef(opening, real)[0, 1]), float(np.std(opening) / np.std(real)))
    return out


def save_png(png, key, clip):
    """Identity | warped | painted | real at the most open frame, and the mouths x3."""
    import cv2

    from coursekit.models.motion import lip_gap

    png.mkdir(parents=True, exist_ok=True)
    t = int(np.argmax(lip_gap(clip["landmarks"])))
    row = [clip["identity"], clip["warped"][t], clip["painted"][t], clip["real"][t]]
    cx, cy = clip["landmarks"][t, 48:68].mean(0).round().astype(int)
    x0, y0 = int(np.clip(cx - 24, 0, S - 48)), int(np.clip(cy - 20, 0, S - 40))
    zoom = [cv2.resize(img[y0:y0 + 40, x0:x0 + 48], None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
            for img in row[1:]]
    top = np.concatenate([cv2.resize(img, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
                          for img in row], 1)
    bottom = np.concatenate(zoom, 1)
    bottom = np.pad(bottom, ((0, 0), (0, top.shape[1] - bottom.shape[1]), (0, 0)))
    cv2.imwrite(str(png / f"{key.replace('/', '_')}.png"), np.concatenate([top, bottom], 0)[..., ::-1])


def speed(painter, threads=2, batch=32, reps=5):
    """Painter frames per second at 112 px: measured (wall clock), and as ``threads`` free
    cores would run them (from the CPU time used), and the load average while measured."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    w = torch.rand(batch, 3, S, S) * 2 - 1
    m = torch.zeros(batch, 1, S, S)
    m[:, :, 72:86, 42:70] = 1
    with torch.inference_mode():
        painter(w, m, w)
        t0, c0 = time.time(), time.process_time()
        for _ in range(reps):
            painter(w, m, w)
        wall, cpu = time.time() - t0, time.process_time() - c0
    torch.set_num_threads(old)
    return batch * reps / wall, batch * reps * threads / cpu, os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default=os.environ.get("COURSEKIT_GRID_DIR"))
    parser.add_argument("--proc", default="/tmp/grid_proc")
    parser.add_argument("--samples-proc", default="/tmp/proc112")
    parser.add_argument("--run", default="/tmp/painter_grid", help="checkpoints and logs")
    parser.add_argument("--size", default="paper", choices=("paper", "tiny"))
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/painter_grid.md")
    parser.add_argument("--png", default="/tmp/painter_png")
    parser.add_argument("--save", default=None, help="also copy the fp16 checkpoint here")
    parser.add_argument("--max-clips", type=int, default=None, help="evaluate fewer clips (a check)")
    args = parser.parse_args()

    import shutil

    from coursekit.checkpoint import load_checkpoint
    from coursekit.data.splits import clip_key
    from coursekit.face import LandmarkDetector
    from coursekit.models.painter import PainterConfig
    from coursekit.runtime import RunContext
    from coursekit.train.painter import PainterTrainConfig, train_painter

    RunContext(device="cpu", threads=args.threads).apply()
    t0 = time.time()
    preprocess(args.grid, args.proc, args.samples_proc)
    train, unseen, s1_held = splits(args.proc, args.samples_proc)
    held = (unseen + s1_held)[:args.max_clips]
    assert not {clip_key(c) for c in held} & {clip_key(c) for c in train}
    model_cfg = getattr(PainterConfig, args.size)()
    cfg = PainterTrainConfig(max_steps=args.steps, batch_size=args.batch, num_workers=args.workers)
    path = Path(args.run) / f"painter_{args.size}.pt"
    train_painter(train, path, model_cfg, cfg, resume=True, progress=False, half=True)
    loaded = load_checkpoint(path, kind="painter")
    painter = loaded.model
    print(f"painter: {loaded.meta['steps']} steps, {loaded.meta['seconds']:.0f} s, "
          f"{loaded.meta['frames']} training frames", flush=True)
    fps = speed(painter)
    print("speed: {:.0f} frames/s, {:.0f} on free cores (load average {:.1f})".format(*fps), flush=True)

    detector = LandmarkDetector()
    rows = []
    for i, clip in enumerate(held):
        folder = Path(clip["path"])
        data = paint_clip(painter, folder)
        row = {"clip": clip_key(clip), "images": image_scores(data),
               "opening": opening_scores(data, folder, detector)}
        rows.append(row)
        if i < len(unseen) + 2:
            save_png(Path(args.png), row["clip"], data)
        print(row["clip"], {k: tuple(round(x, 2) for x in v) for k, v in row["opening"].items()},
              {k: round(v["mouth_psnr"], 2) for k, v in row["images"].items()}, flush=True)
    report = write_report(args, loaded, train, rows, len(unseen), fps, time.time() - t0)
    print(report)
    Path(args.out).write_text(report)
    if args.save:
        shutil.copyfile(path, args.save)
        print(f"saved {args.save} ({Path(args.save).stat().st_size / 1e3:.0f} kB)")


def _table(rows, title):
    lines = [f"**{title}** ({len(rows)} clips; medians over clips)", "",
             "| frames | face PSNR | face SSIM | mouth PSNR | mouth SSIM | dlib opening: correlation "
             "| dlib opening: spread ratio |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, label in (("warped", "(a) warped identity"), ("painted", "(b) warped + painter")):
        img = {k: np.median([r["images"][name][k] for r in rows])
               for k in ("face_psnr", "face_ssim", "mouth_psnr", "mouth_ssim")}
        corr, spread = np.median([r["opening"][name] for r in rows], axis=0)
        lines.append(f"| {label} | {img['face_psnr']:.2f} | {img['face_ssim']:.3f} | "
                     f"{img['mouth_psnr']:.2f} | {img['mouth_ssim']:.3f} | {corr:.2f} | {spread:.2f} |")
    return "\n".join(lines)


def write_report(args, loaded, train, rows, n_unseen, fps, seconds):
    meta = loaded.meta
    per_clip = ["| clip | mouth PSNR (a) / (b) | mouth SSIM (a) / (b) | correlation (a) / (b) "
                "| spread ratio (a) / (b) |", "| --- | --- | --- | --- | --- |"]
    for r in rows[:n_unseen]:
        a, b = r["images"]["warped"], r["images"]["painted"]
        oa, ob = r["opening"]["warped"], r["opening"]["painted"]
        per_clip.append(f"| {r['clip']} | {a['mouth_psnr']:.2f} / {b['mouth_psnr']:.2f} | "
                        f"{a['mouth_ssim']:.3f} / {b['mouth_ssim']:.3f} | {oa[0]:.2f} / {ob[0]:.2f} "
                        f"| {oa[1]:.2f} / {ob[1]:.2f} |")
    cfg = meta["train_config"]
    return "\n".join([
        "# Mouth painter on real GRID: warped identity vs warped + painter", "",
        f"Made by `benchmarks/painter_grid.py{' --save ' + args.save if args.save else ''}` "
        f"({seconds / 60:.0f} min on the CPU). Data: the GRID audiovisual corpus (Cooke et al. "
        "2006, CC BY 4.0, DOI 10.5281/zenodo.3625687), 112 px crops, dlib landmarks; the "
        "shipped samples at 112 px with ground-truth landmarks.", "",
        f"Painter: `PainterConfig.{args.size}()` ({sum(p.numel() for p in loaded.model.parameters()) / 1e3:.0f} k "
        f"parameters, stored in fp16), {meta['steps']} steps of {cfg['batch_size']} frames "
        f"({meta['seconds'] / 60:.1f} min, torch on {args.threads} thread(s) + {args.workers} "
        f"data process(es)), on the {meta['frames']} frames with parted lips of {len(train)} "
        "clips: s1's training utterances, the `others` clips lbbc2a, lrwp9a, lwbsza and the 60 "
        "sample clips. Held out from all training: brbk7n and lbax4n (unseen speakers) and "
        "s1's every 5th utterance.", "",
        "Every frame is the clip's first frame warped by the clip's REAL jaw and mouth landmarks; "
        "(a) the warp alone, (b) the painter composed in. PSNR / SSIM against the real frames on "
        f"the 112 px crops: the whole face (all frames) and a {BOX[0]} x {BOX[1]} box around the "
        "real mouth (frames whose lips part). dlib opening: the first video frame (360x288) "
        "warped at its own resolution, (b) with the painted crop pasted back; dlib tracks it; "
        "mouth opening (inner-lip gap / mouth width) against the real clip's.", "",
        _table(rows[:n_unseen], "Unseen speakers"), "",
        _table(rows[n_unseen:], "s1 held-out utterances"), "",
        "Per unseen clip:", "", *per_clip, "",
        f"Speed: {fps[0]:.0f} frames/s at 112 px in batches of 32 on 2 torch threads, measured "
        f"while the machine's load average was {fps[2]:.1f} (shared cores); from the CPU time "
        f"it used, {fps[1]:.0f} frames/s on 2 free cores.", ""])


if __name__ == "__main__":
    main()
