"""coursekit.data.facerender: determinism, shapes, AU geometry and what the renderer shows."""

import cv2
import numpy as np
import pytest

from coursekit.au import AUS
from coursekit.data import facerender as F

SIZE = 160


def au(**levels) -> np.ndarray:
    """AU vector in coursekit.au.AUS order, e.g. au(AU25=3)."""
    return np.array([float(levels.get(name, 0.0)) for name in AUS])


@pytest.fixture(scope="module")
def people() -> list[F.Identity]:
    rng = np.random.default_rng(7)
    return [F.random_identity(rng) for _ in range(6)]


def inner_gap(pts: np.ndarray) -> float:
    """Mean vertical distance between the inner lower (65-67) and inner upper (61-63) lip."""
    return float(np.mean(pts[[67, 66, 65], 1] - pts[[61, 62, 63], 1]))


def eyelid_gap(pts: np.ndarray) -> float:
    return float(np.mean(pts[[41, 40, 47, 46], 1] - pts[[37, 38, 43, 44], 1]))


def inner_mouth_grey(img: np.ndarray, pts: np.ndarray, stat=np.mean, grow: bool = False) -> float:
    """Grey level (``stat`` over pixels) inside the inner-lip polygon; ``grow`` widens it by one
    pixel, so that a closed mouth (a polygon of zero area) still covers the lip seam."""
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(pts[60:68]).astype(np.int32)], 255)
    if grow:
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    return float(stat(img.mean(axis=2)[mask > 0]))


# ----------------------------------------------------------------------------- API


def test_random_identity_is_reproducible_and_varied():
    a = F.random_identity(np.random.default_rng(1))
    b = F.random_identity(np.random.default_rng(1))
    c = F.random_identity(np.random.default_rng(2))
    assert a == b and a != c
    rng = np.random.default_rng(0)
    styles = {F.random_identity(rng).hair_style for _ in range(60)}
    assert styles == set(F.HAIR_STYLES)


def test_shapes_and_dtypes(people):
    who = people[0]
    neutral = F.neutral_landmarks(who)
    assert neutral.shape == (68, 2) and np.isfinite(neutral).all()
    pts = F.face_landmarks(who, au(AU25=2), blink=0.3, pose=(0.02, -0.01, 4.0, 1.05), size=SIZE)
    assert pts.shape == (68, 2) and pts.dtype == np.float32
    img = F.render_face(who, pts, size=SIZE, blink=0.3, aus=au(AU25=2))
    assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8
    big = F.render_face(who, F.face_landmarks(who, au(), size=256), size=256)
    assert big.shape == (256, 256, 3)


def test_render_is_deterministic(people):
    who = people[1]
    levels = au(AU10=1, AU20=2, AU25=3, AU26=2)
    pts = F.face_landmarks(who, levels, blink=0.4, pose=(0.01, 0.02, -5.0, 0.95))
    again = F.face_landmarks(who, levels, blink=0.4, pose=(0.01, 0.02, -5.0, 0.95))
    np.testing.assert_array_equal(pts, again)
    first = F.render_face(who, pts, blink=0.4, aus=levels)
    np.random.seed(123)                                  # the global generator must play no part
    second = F.render_face(who, pts, blink=0.4, aus=levels)
    np.testing.assert_array_equal(first, second)


def test_landmarks_stay_inside_the_image(people):
    rng = np.random.default_rng(3)
    for who in people:
        for _ in range(20):
            pose = (rng.uniform(-0.04, 0.04), rng.uniform(-0.04, 0.04), rng.uniform(-8, 8), rng.uniform(0.9, 1.1))
            pts = F.face_landmarks(who, rng.uniform(0, 5, 5), rng.uniform(0, 1), pose, SIZE)
            assert pts.min() >= 0 and pts.max() <= SIZE - 1


def test_pose_moves_and_scales_the_face(people):
    who = people[2]
    base = F.face_landmarks(who, au())
    shifted = F.face_landmarks(who, au(), pose=(0.05, -0.02, 0, 1))
    np.testing.assert_allclose(shifted - base, np.tile([0.05 * SIZE, -0.02 * SIZE], (68, 1)), atol=1e-3)
    zoomed = F.face_landmarks(who, au(), pose=(0, 0, 0, 1.1))
    assert np.ptp(zoomed[:, 0]) == pytest.approx(1.1 * np.ptp(base[:, 0]), rel=1e-4)
    rolled = F.face_landmarks(who, au(), pose=(0, 0, 10, 1))
    d = rolled[16] - rolled[0]
    assert np.degrees(np.arctan2(d[1], d[0])) == pytest.approx(10, abs=1.5)


# ----------------------------------------------------------------------------- AU geometry


def test_lips_closed_at_neutral(people):
    for who in people:
        pts = F.face_landmarks(who, au())
        assert abs(inner_gap(pts)) < 0.25
        assert (pts[[49, 50, 51, 52, 53], 1] < pts[[61, 61, 62, 63, 63], 1]).all()   # upper lip above the seam
        assert (pts[[55, 56, 57, 58, 59], 1] > pts[[65, 65, 66, 67, 67], 1]).all()   # lower lip below it


@pytest.mark.parametrize("name", ["AU25", "AU26"])
def test_inner_lip_gap_grows_with_opening_aus(people, name):
    for who in people:
        gaps = [inner_gap(F.face_landmarks(who, au(**{name: x}))) for x in range(6)]
        assert all(b > a for a, b in zip(gaps, gaps[1:])), gaps
        assert gaps[-1] > (8.0 if name == "AU26" else 3.0)


def test_jaw_drop_lowers_the_chin_most(people):
    for who in people:
        ys = [F.face_landmarks(who, au(AU26=x))[8, 1] for x in range(6)]
        assert all(b > a for a, b in zip(ys, ys[1:]))
        move = F.face_landmarks(who, au(AU26=5)) - F.face_landmarks(who, au())
        assert move[8, 1] >= move[0:17, 1].max() - 1e-6
        assert abs(move[0, 1]) < 1e-6 and abs(move[16, 1]) < 1e-6          # the jaw hinges at the ears
        assert move[57, 1] > 5 and move[66, 1] > 5                            # lower lip follows the jaw


def test_lip_stretcher_widens_the_mouth(people):
    for who in people:
        widths = [np.linalg.norm(np.diff(F.face_landmarks(who, au(AU20=x))[[48, 54]], axis=0)) for x in range(6)]
        assert all(b > a for a, b in zip(widths, widths[1:]))


def test_dimpler_tightens_and_lifts_the_corners(people):
    for who in people:
        rest, tight = F.face_landmarks(who, au()), F.face_landmarks(who, au(AU14=4))
        assert np.linalg.norm(tight[54] - tight[48]) < np.linalg.norm(rest[54] - rest[48])
        assert tight[48, 1] < rest[48, 1] and tight[54, 1] < rest[54, 1]


def test_upper_lip_raiser_lifts_the_upper_lip(people):
    for who in people:
        ys = [F.face_landmarks(who, au(AU10=x))[[50, 51, 52, 62], 1].mean() for x in range(6)]
        assert all(b < a for a, b in zip(ys, ys[1:]))
        assert inner_gap(F.face_landmarks(who, au(AU10=5))) > 1.0          # lips part: teeth can show


def test_lips_never_cross_for_any_combination(people):
    rng = np.random.default_rng(11)
    for who in people:
        for _ in range(50):
            pts = F.face_landmarks(who, rng.uniform(0, 5, 5) * (rng.random(5) < 0.6))
            assert (pts[[67, 66, 65], 1] >= pts[[61, 62, 63], 1] - 1e-4).all()
            assert pts[60, 0] < pts[64, 0] and pts[48, 0] < pts[60, 0] and pts[64, 0] < pts[54, 0]
            assert pts[8, 1] > pts[57, 1]


def test_blink_closes_the_eyes(people):
    for who in people:
        gaps = [eyelid_gap(F.face_landmarks(who, au(), blink=b)) for b in (0.0, 0.5, 1.0)]
        assert gaps[0] > 3.0 and gaps[1] < gaps[0] and abs(gaps[2]) < 0.05 * gaps[0]


# ----------------------------------------------------------------------------- rendering


def test_open_mouth_is_dark_inside(people):
    """The open mouth shows a dark cavity.  Bright teeth cover up to about a third of it, which
    for the darkest lips lifts the plain mean to the lips' level, so the per-pixel median is
    compared across all identities and the mean where the lips are not dark."""
    rng = np.random.default_rng(5)
    for who in people + [F.random_identity(rng) for _ in range(24)]:
        closed = F.face_landmarks(who, au())
        opened = F.face_landmarks(who, au(AU25=5, AU26=5))
        open_img, closed_img = F.render_face(who, opened, aus=au(AU25=5, AU26=5)), F.render_face(who, closed)
        dark = inner_mouth_grey(open_img, opened, np.median)
        lips = inner_mouth_grey(closed_img, closed, np.median, grow=True)
        assert dark < lips - 10, (dark, lips)
        if np.mean(who.lip_rgb) > 110:
            assert inner_mouth_grey(open_img, opened) < inner_mouth_grey(closed_img, closed, grow=True) - 8


def test_teeth_show_when_the_upper_lip_rises(people):
    who = people[0]
    pts = F.face_landmarks(who, au(AU10=5, AU25=3))
    img = F.render_face(who, pts, aus=au(AU10=5, AU25=3))
    band = img[int(pts[62, 1]) + 2:int(pts[62, 1]) + 5, int(pts[61, 0]):int(pts[63, 0])]
    assert band.mean() > 170                       # bright upper teeth just below the inner upper lip


def test_closed_eyes_hide_the_iris(people):
    who = people[3]
    opened = F.render_face(who, F.face_landmarks(who, au(), blink=0.0))
    closed = F.render_face(who, F.face_landmarks(who, au(), blink=1.0))
    pts = F.face_landmarks(who, au())
    x0, x1 = int(pts[36, 0]), int(pts[39, 0]) + 1
    y0, y1 = int(pts[[37, 38], 1].min()), int(pts[[40, 41], 1].max()) + 1
    assert np.abs(opened[y0:y1, x0:x1].astype(int) - closed[y0:y1, x0:x1]).mean() > 10


def test_dimples_and_folds_follow_the_aus(people):
    who = people[4]
    pts = F.face_landmarks(who, au())
    plain = F.render_face(who, pts).astype(float)
    dimpled = F.render_face(who, pts, aus=au(AU14=5)).astype(float)
    x, y = int(pts[48, 0] - 0.05 * np.ptp(pts[:17, 0])), int(pts[48, 1])
    assert dimpled[y - 2:y + 3, x - 2:x + 3].mean() < plain[y - 2:y + 3, x - 2:x + 3].mean() - 3


def test_different_identities_look_different(people):
    imgs = [F.render_face(w, F.face_landmarks(w, au())).astype(float) for w in people[:4]]
    for i in range(len(imgs)):
        for j in range(i + 1, len(imgs)):
            assert np.abs(imgs[i] - imgs[j]).mean() > 10


def test_face_is_in_the_middle_and_differs_from_background(people):
    who = people[5]
    pts = F.face_landmarks(who, au())
    img = F.render_face(who, pts).astype(float)
    centre = img[int(pts[29, 1]) - 2:int(pts[29, 1]) + 3, int(pts[29, 0]) - 2:int(pts[29, 0]) + 3].mean(axis=(0, 1))
    np.testing.assert_allclose(centre, np.array(who.skin_rgb), atol=60)
    corner, top = img[:8, :8].mean(axis=(0, 1)), np.array(who.bg_top_rgb, float)
    assert corner @ top / (np.linalg.norm(corner) * np.linalg.norm(top)) > 0.99      # background hue
    assert 0.6 * top.mean() < corner.mean() <= top.mean() + 10                          # minus vignette
