"""The landmark-driven warp (coursekit.warp): maps, anchors, photo scale, the mouth mask."""

import cv2
import numpy as np
import pytest

from coursekit import warp
from coursekit.face import TEMPLATE, template, transform_points, warp_faces

S = 112


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB image (so bilinear resampling errors stay small)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _open_mouth(source: np.ndarray, drop: float = 6.0) -> np.ndarray:
    """The lower lip and jaw ``drop`` pixels down (the upper lip stays)."""
    target = source.copy()
    lower = np.r_[warp.JAW, 55:60, 64:68, 48, 54, 60]
    target[lower, 1] += drop
    return target


def _sample(backward: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The map at sub-pixel ``points (n, 2)``: ``(n, 2)``."""
    p = points.astype(np.float32)
    return cv2.remap(backward, p[None, :, 0], p[None, :, 1], cv2.INTER_LINEAR)[0]


def test_mirror_permutation_maps_the_symmetric_template_onto_itself():
    assert sorted(warp.MIRROR) == list(range(68))
    assert (warp.MIRROR[warp.MIRROR] == np.arange(68)).all()
    mirrored = TEMPLATE[warp.MIRROR] * [-1, 1]
    assert np.abs(mirrored - TEMPLATE).max() < 1e-3
    assert (warp.MOVING[warp.MOVING_MIRROR] == warp.MIRROR[warp.MOVING]).all()


def test_no_displacement_is_the_identity_map_and_leaves_the_image_unchanged():
    src = template(S)
    backward = warp.backward_map(src, src, (S, S))
    assert backward.shape == (S, S, 2) and backward.dtype == np.float32
    np.testing.assert_allclose(backward, warp.identity_map(S, S), atol=1e-4)
    image = _texture(S, S)
    assert np.array_equal(warp.warp_image(image, backward), image)
    assert np.array_equal(warp.displace(src, np.zeros((len(warp.MOVING), 2))), src)


def test_a_known_displacement_moves_a_marked_pixel_there():
    src = template(S)
    target = warp.displace(src, np.tile([[0.0, 0.2]], (len(warp.MOVING), 1)))  # 0.2 IOD down
    shift = 0.2 * warp.inter_ocular(src)
    np.testing.assert_allclose(target[warp.MOVING] - src[warp.MOVING], [[0, shift]] * 33, atol=1e-4)
    image = np.full((S, S, 3), 60, np.uint8)
    x, y = np.round(src[57]).astype(int)
    image[y - 1:y + 2, x - 1:x + 2] = 255  # a 3x3 white mark on the lower lip
    out = warp.warp_image(image, warp.backward_map(src, target, (S, S))).astype(float)[..., 0]
    weights = np.clip(out - 60, 0, None)
    ys, xs = np.indices(out.shape)
    centre = np.array([(xs * weights).sum(), (ys * weights).sum()]) / weights.sum()
    assert np.abs(centre - [x, y + shift]).max() < 0.5, centre


def test_moving_points_reach_their_targets_and_anchors_stay():
    src = template(S)
    target = _open_mouth(src)
    backward = warp.backward_map(src, target, (S, S))
    # output pixel at a target point reads the input at the matching source point
    np.testing.assert_allclose(_sample(backward, target[warp.MOVING]), src[warp.MOVING], atol=0.2)
    identity = warp.identity_map(S, S)
    anchors = src[warp.ANCHORS]
    np.testing.assert_allclose(_sample(backward, anchors), anchors, atol=0.1)
    ring = warp.border_ring(S, S)
    np.testing.assert_allclose(_sample(backward, ring), ring, atol=0.05)
    above_nose = int(src[27:31, 1].min())  # the upper face hardly moves
    assert np.abs(backward[:above_nose] - identity[:above_nose]).max() < 0.25
    coarse_vs_exact = np.abs(backward - warp.backward_map(src, target, (S, S), step=1)).max()
    assert coarse_vs_exact < 0.2


def test_photo_map_agrees_with_the_crop_map():
    photo = _texture(300, 400, seed=1)
    angle, scale = np.deg2rad(8), 0.55
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    m = np.c_[rot, [-60.0, -40.0]].astype(np.float32)  # photo -> crop
    inv = cv2.invertAffineTransform(m)
    src = template(S)
    target = _open_mouth(src)
    crop_map = warp.backward_map(src, target, (S, S))
    full = warp.photo_map(crop_map, m, photo.shape[:2])
    assert full.shape == (300, 400, 2) and full.dtype == np.float32
    # the photo map sends the target's photo points to the source's photo points
    moved = transform_points(_sample(full, transform_points(target, inv)[warp.MOVING]), m)
    np.testing.assert_allclose(moved, src[warp.MOVING], atol=0.25)
    # far from the face the photo does not move
    np.testing.assert_array_equal(full[:5, :5], warp.identity_map(300, 400)[:5, :5])
    # the fast path resamples the same pixels
    warped = warp.warp_photo(photo, crop_map, m)
    assert np.abs(warped.astype(int) - warp.warp_image(photo, full)).max() <= 1
    # cropping the warped photo = warping the crop (inside the crop, away from its edges)
    crop = warp_faces(photo[None], m[None], S)[0]
    recrop = warp_faces(warped[None], m[None], S)[0]
    diff = np.abs(recrop.astype(int) - warp.warp_image(crop, crop_map))[8:-8, 8:-8]
    assert diff.mean() < 1.5 and diff.max() < 25


def test_mouth_mask_covers_the_inner_lips():
    src = template(S)
    target = _open_mouth(src, drop=8.0)
    mask = warp.mouth_mask(target, (S, S))
    assert mask.shape == (S, S) and mask.dtype == np.float32
    assert mask.min() >= 0 and mask.max() <= 1
    poly = target[warp.INNER_LIPS].astype(np.float32)
    ys, xs = np.indices((S, S))
    inside = np.array([cv2.pointPolygonTest(poly, (float(x), float(y)), True)
                       for x, y in zip(xs.ravel(), ys.ravel())]).reshape(S, S)
    assert (inside > 0.5).sum() > 20
    assert mask[inside > 0.5].min() == pytest.approx(1.0)
    width = np.linalg.norm(target[54] - target[48])
    assert mask[inside < -6 * 0.12 * width].max() < 1e-3  # feathered, then gone
    closed = src.copy()
    closed[[65, 66, 67]] = closed[[63, 62, 61]]
    assert warp.mouth_mask(closed, (S, S)).max() == 0.0


def test_bad_input_is_one_line_error():
    with pytest.raises(ValueError, match="backward_map"):
        warp.backward_map(np.zeros((5, 2)), np.zeros((5, 2)), (S, S))
    with pytest.raises(ValueError, match="warp_image"):
        warp.warp_image(np.zeros((S, S), np.float32), warp.identity_map(S, S))
