"""Landmark-driven warp speed: milliseconds of CPU per frame, on one core (threads pinned to 1).

A sample speaker's first frame is the identity; the clip's own landmarks drive the jaw and
mouth (:mod:`coursekit.warp`). Timed per frame, mean CPU time over the clip's frames:

* a 112 px aligned crop: :func:`~coursekit.warp.backward_map` + :func:`~coursekit.warp.warp_image`
  + :func:`~coursekit.warp.mouth_mask`;
* a 1280 x 960 photo (the sample frame enlarged 6x and padded; the face is about 860 px
  tall): the crop's map, the photo warped through it (:func:`~coursekit.warp.warp_photo`,
  which resamples only the region that moves) and the photo's mouth mask;
* for reference, :func:`~coursekit.warp.backward_map` evaluated on the photo itself.

Targets: well under 10 ms per 112 px frame, under 40 ms per 1280 x 960 photo frame.

    python benchmarks/warp.py [--frames 40]
"""

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import time  # noqa: E402

import numpy as np  # noqa: E402

PHOTO = (960, 1280)
ZOOM = 6


def cpu_ms(fn, items) -> float:
    """Mean CPU milliseconds of ``fn(item)`` over ``items`` (after one warm-up call)."""
    fn(items[0])
    start = time.process_time()
    for item in items:
        fn(item)
    return 1000 * (time.process_time() - start) / len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40, help="driving frames to time")
    args = parser.parse_args()

    import cv2

    from coursekit import warp
    from coursekit.data.corpus import SAMPLES_DIR, list_clips, read_ground_truth
    from coursekit.face import alignment_transforms, transform_points, warp_faces
    from coursekit.video import read_video

    cv2.setNumThreads(1)
    clip = list_clips(SAMPLES_DIR, ["spk1"])[0]
    frames, _ = read_video(clip.video)
    landmarks = read_ground_truth(clip.ground_truth)["landmarks"]
    m = alignment_transforms(landmarks[:1], 112)[0]
    crop = warp_faces(frames[:1], m[None], 112)[0]
    aligned = transform_points(landmarks, m)  # every frame in frame 0's crop
    source = aligned[0]
    targets = [warp.displace(source, (a[warp.MOVING] - source[warp.MOVING])
                             / warp.inter_ocular(source)) for a in aligned[:args.frames]]

    h, w = frames.shape[1:3]
    big = cv2.resize(frames[0], (w * ZOOM, h * ZOOM), interpolation=cv2.INTER_CUBIC)
    photo = cv2.copyMakeBorder(big, 0, PHOTO[0] - h * ZOOM, 0, PHOTO[1] - w * ZOOM,
                               cv2.BORDER_REPLICATE)
    m_photo = (m @ np.diag([1 / ZOOM, 1 / ZOOM, 1])).astype(np.float32)  # photo -> crop
    inv = cv2.invertAffineTransform(m_photo)

    def crop_frame(target):
        cmap = warp.backward_map(source, target, (112, 112))
        return warp.warp_image(crop, cmap), warp.mouth_mask(target, (112, 112))

    def photo_frame(target):
        cmap = warp.backward_map(source, target, (112, 112))
        return (warp.warp_photo(photo, cmap, m_photo),
                warp.mouth_mask(transform_points(target, inv), PHOTO))

    photo_source = transform_points(source, inv)

    def photo_direct(target):
        pmap = warp.backward_map(photo_source, transform_points(target, inv), PHOTO)
        return warp.warp_image(photo, pmap)

    t_crop = cpu_ms(crop_frame, targets)
    t_photo = cpu_ms(photo_frame, targets)
    t_direct = cpu_ms(photo_direct, targets[:10])
    print(f"warp: {len(targets)} frames of {clip.speaker}/{clip.utt_id}, one core")
    print(f"112 px crop (map + warp + mask):             {t_crop:6.2f} ms/frame (target < 10)")
    print(f"{PHOTO[1]}x{PHOTO[0]} photo (crop map + warp_photo + mask): "
          f"{t_photo:6.2f} ms/frame (target < 40)")
    print(f"{PHOTO[1]}x{PHOTO[0]} photo, spline evaluated on the photo itself:  "
          f"{t_direct:6.2f} ms/frame (reference)")


if __name__ == "__main__":
    main()
