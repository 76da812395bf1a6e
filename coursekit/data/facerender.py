"""Deterministic 2D renderer of synthetic talking faces (the course's synthetic corpus).

A frame is fully described by an :class:`Identity` (what the speaker looks like), the
intensities of the five speech AUs (``coursekit.au.AUS`` order, OpenFace 0-5 scale), a
blink amount and a small head pose.  :func:`face_landmarks` turns those into the 68
iBUG 300-W landmarks (the ground truth, see :mod:`coursekit.data.facegeometry`) and
:func:`render_face` draws a shaded cartoon face that follows the landmarks exactly::

    rng = np.random.default_rng(0)
    who = random_identity(rng)
    pts = face_landmarks(who, np.array([0, 0, 0, 2.0, 3.0]), blink=0.2)
    rgb = render_face(who, pts, aus=np.array([0, 0, 0, 2.0, 3.0]))   # (160, 160, 3) uint8

Shapes are drawn with anti-aliased OpenCV primitives on a ``SUPERSAMPLE`` times larger
canvas reduced with ``INTER_AREA``; soft shading is applied at output size.  No global RNG
is used anywhere.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from coursekit.au import AUS

from .facegeometry import (EYE_LINE_Y, HAIR_STYLES, RGB, Identity, face_landmarks,
                           neutral_landmarks, random_identity)

__all__ = ["EYE_LINE_Y", "HAIR_STYLES", "RGB", "SUPERSAMPLE", "Identity", "face_landmarks",
           "neutral_landmarks", "random_identity", "render_face"]

SUPERSAMPLE = 3           # drawing canvas is this many times the output size
_SHIFT = 4                # fixed-point bits for sub-pixel OpenCV drawing
_AA = cv2.LINE_AA


# ----------------------------------------------------------------------------- drawing
@lru_cache(maxsize=None)
def _spline_matrix(m: int, n: int, closed: bool) -> np.ndarray:
    """(samples, m) matrix of a Catmull-Rom curve through m points (the curve is linear in them)."""
    p = np.eye(m)
    ext = np.concatenate([p[-1:], p, p[:2]]) if closed else np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])
    p0, p1, p2, p3 = (ext[i:len(ext) - 3 + i, None] for i in range(4))
    t = np.linspace(0, 1, n, endpoint=False)[None, :, None]
    seg = 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (3 * p1 - p0 - 3 * p2 + p3) * t**3)
    out = seg.reshape(-1, m)
    return out if closed else np.concatenate([out, p[-1:]])


def _spline(pts: np.ndarray, n: int = 6, closed: bool = False) -> np.ndarray:
    """Smooth Catmull-Rom curve through ``pts`` (m, 2) with ``n`` samples per segment."""
    return _spline_matrix(len(pts), n, closed) @ np.asarray(pts, np.float64)


class _Pen:
    """Anti-aliased, sub-pixel drawing in output-pixel coordinates on a canvas ``k`` times larger."""

    def __init__(self, img: np.ndarray, k: int):
        self.img, self.k = img, k

    def fix(self, pts) -> np.ndarray:
        q = (np.asarray(pts, np.float64) + 0.5) * self.k - 0.5
        return np.round(q * (1 << _SHIFT)).astype(np.int32)

    def poly(self, pts, col):
        cv2.fillPoly(self.img, [self.fix(pts).reshape(-1, 2)], _col(col), _AA, _SHIFT)

    def line(self, pts, col, width):                  # pts (m, 2), or (K, m, 2) for K polylines
        pts = np.asarray(pts)
        arr = self.fix(pts).reshape(-1, pts.shape[-2], 2)
        cv2.polylines(self.img, list(arr), False, _col(col), max(1, round(width * self.k)), _AA, _SHIFT)

    def disk(self, c, r, col):
        ctr = tuple(int(v) for v in self.fix(c).ravel())
        cv2.circle(self.img, ctr, int(r * self.k * (1 << _SHIFT)), _col(col), -1, _AA, _SHIFT)


def _col(c) -> tuple:
    return tuple(float(min(255.0, v)) for v in np.atleast_1d(c))


def _mul(rgb, f) -> tuple:
    return tuple(min(255.0, c * f) for c in rgb)


class _Frame:
    """Face-attached frame: origin midway between landmarks 0 and 16, u along them, v down.
    ``at`` maps (a, b) in face widths to pixels, so shapes without landmarks follow the face."""

    def __init__(self, p: np.ndarray):
        self.c = 0.5 * (p[0] + p[16])
        self.w = float(np.hypot(*(p[16] - p[0])))
        self.u = (p[16] - p[0]) / self.w
        self.v = np.array([-self.u[1], self.u[0]])

    def at(self, ab) -> np.ndarray:
        ab = np.asarray(ab, np.float64)
        return self.c + self.w * (ab[..., :1] * self.u + ab[..., 1:] * self.v)

    def ellipse(self, centre, ra, rb) -> np.ndarray:
        return np.asarray(centre) + self.w * (ra * _CIRCLE[:, :1] * self.u + rb * _CIRCLE[:, 1:] * self.v)


_CIRCLE = np.stack([np.cos(np.arange(24) * np.pi / 12), np.sin(np.arange(24) * np.pi / 12)], 1)


@lru_cache(maxsize=32)
def _background(top: RGB, bottom: RGB, n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None, None]
    x = np.linspace(-1.0, 1.0, n)
    vignette = 1.0 - 0.12 * (x[None, :] ** 2 + x[:, None] ** 2)[..., None]
    img = np.clip(((1 - t) * np.array(top) + t * np.array(bottom)) * vignette, 0, 255).astype(np.uint8)
    img.flags.writeable = False
    return img


@lru_cache(maxsize=32)
def _grain(seed: int, n: int) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal((n, n)).astype(np.float32)
    return 1.0 + 0.035 * cv2.GaussianBlur(noise, (0, 0), 0.7)


# Shirt, neck and hairlines in face-frame units (face widths; origin between the ears).
_SHIRT = np.array([(-.3, .9), (-.75, .98), (-1.05, 1.14), (-1.2, 2.2), (1.2, 2.2), (1.05, 1.14), (.75, .98), (.3, .9)])
_NECK_BASE = np.array([(.3, .93), (0, 1.07), (-.3, .93)])
_HAIRLINES = {
    "bob": [(-.51, .02), (-.5, -.2), (-.4, -.27), (0, -.29), (.4, -.27), (.5, -.2), (.51, .02)],
    "long": [(-.51, .02), (-.47, -.2), (-.36, -.35), (-.12, -.44), (0, -.41), (.12, -.44), (.36, -.35),
             (.47, -.2), (.51, .02)],
    "short": [(-.51, -.01), (-.47, -.22), (-.36, -.36), (-.12, -.4), (.12, -.38), (.34, -.35), (.46, -.22), (.51, -.01)],
}


@lru_cache(maxsize=512)
def _hair_shapes(style: str, fh: float, seed: int):
    """Hair geometry in face-frame units: (back polygon or None, back curls, cap, strands, front curls)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(-0.12, np.pi + 0.12, 25)
    back, curls_back, curls_front = None, [], []
    if style in ("long", "bob"):
        d = 1.25 if style == "long" else 0.62
        top = np.stack([0.6 * np.cos(t[1:-1]), -(fh + 0.09) * np.sin(t[1:-1])], 1)
        sides = [(-.61, .3), (-.64, d - .12), (-.56, d), (-.3, d - .06), (.3, d - .06), (.56, d), (.64, d - .12), (.61, .3)]
        back = _spline(np.vstack([top, sides]), 3, closed=True)
    if style == "curly":
        ang = np.linspace(-0.5, np.pi + 0.5, 18)
        curls_back = [((0.55 * np.cos(a), -(fh + 0.02) * np.sin(a) + 0.1), r) for a, r in zip(ang, rng.uniform(0.1, 0.15, 18))]
    pad = {"buzz": 0.02, "curly": 0.1}.get(style, 0.06)
    outer = np.stack([(0.5 + pad) * np.cos(t), -(fh + pad) * np.sin(t)], 1)            # right to left
    line = np.array(_HAIRLINES.get(style, _HAIRLINES["short"]))                          # left to right
    cap = np.vstack([_spline(outer, 2), _spline(line, 4)])
    strands = []
    for a in np.linspace(0.08, 0.92, 14):
        o = outer[::-1][int(a * (len(outer) - 1))]
        h = line[int(np.clip(a + rng.uniform(-0.05, 0.05), 0, 1) * (len(line) - 1) + 0.5)]
        strands.append(_spline(np.array([o * 0.97, 0.5 * (o + h) + (0, 0.03), h * 0.98 + (0, -0.02)]), 5))
    if style == "curly":
        for x, r in zip(np.linspace(-0.45, 0.45, 9), rng.uniform(0.05, 0.08, 9)):
            curls_front.append(((x, np.interp(x, line[:, 0], line[:, 1]) - 0.6 * r), r))
    return back, curls_back, cap, np.array(strands), curls_front


def _draw_hair(pen: _Pen, fr: _Frame, idy: Identity, back: bool) -> None:
    """Hair behind the head (``back``) or the cap over the skull, in front of the face."""
    col = idy.hair_rgb if idy.hair_style != "buzz" else tuple(np.add(idy.hair_rgb, idy.skin_rgb) / 2)
    poly, curls_back, cap, strands, curls_front = _hair_shapes(idy.hair_style, idy.forehead_height, idy.seed)
    if back:
        if poly is not None:
            pen.poly(fr.at(poly), _mul(col, 0.8))
        for c, r in curls_back:
            pen.disk(fr.at(c), r * fr.w, col)
        return
    pen.poly(fr.at(cap), col)
    pen.line(fr.at(strands[0::3]), _mul(col, 1.25), 0.006 * fr.w)
    pen.line(fr.at(np.delete(strands, np.s_[0::3], 0)), _mul(col, 0.7), 0.006 * fr.w)
    for i, (c, r) in enumerate(curls_front):
        pen.disk(fr.at(c), r * fr.w, _mul(col, 0.9 + 0.2 * (i % 2)))


def _eye(pen: _Pen, p: np.ndarray, idx, idy: Identity, blink: float) -> None:
    """Sclera, iris, pupil and catch-light, then skin-coloured lids that cover them down to the lid lines."""
    o, u1, u2, i, l1, l2 = idx
    upper, lower = _spline(p[[o, u1, u2, i]], 6), _spline(p[[i, l1, l2, o]], 6)
    ew = float(np.hypot(*(p[i] - p[o])))
    up = np.array([(p[i] - p[o])[1], -(p[i] - p[o])[0]]) / ew
    up = up if up[1] < 0 else -up
    pen.poly(np.vstack([upper, lower[1:-1]]), (238, 234, 228))
    ctr, r = 0.25 * (p[u1] + p[u2] + p[l1] + p[l2]), 0.23 * ew
    pen.disk(ctr, r, _mul(idy.iris_rgb, 0.55))
    pen.disk(ctr, 0.82 * r, idy.iris_rgb)
    pen.disk(ctr, 0.42 * r, (15, 12, 12))
    pen.disk(ctr + r * np.array([-0.35, -0.35]), 0.2 * r, (250, 250, 250))
    crease = _spline(np.array([p[o], 0.5 * (p[o] + p[u1]) + 0.55 * ew * up, 0.5 * (p[u2] + p[i]) + 0.55 * ew * up, p[i]]), 6)
    below = _spline(np.array([p[i], 0.5 * (p[i] + p[l1]) - 0.4 * ew * up, 0.5 * (p[l2] + p[o]) - 0.4 * ew * up, p[o]]), 6)
    pen.poly(np.vstack([crease, upper[::-1]]), _mul(idy.skin_rgb, 0.94))
    pen.poly(np.vstack([lower, below[::-1]]), _mul(idy.skin_rgb, 0.98))
    pen.line(crease[3:-3], _mul(idy.skin_rgb, 0.78), 0.035 * ew)
    pen.line(upper, (35, 25, 25), (0.07 + 0.03 * blink) * ew)
    pen.line(lower, _mul(idy.skin_rgb, 0.7), 0.03 * ew)


def _brow(pen: _Pen, pts: np.ndarray, idy: Identity, fr: _Frame) -> None:
    """Eyebrow whose upper edge follows the landmarks (given outer to inner), thicker inside."""
    c = _spline(pts, 4)
    th = idy.brow_thickness * (fr.w / idy.face_width) * (0.45 + 0.55 * np.sqrt(np.linspace(0, 1, len(c))))[:, None]
    pen.poly(np.vstack([c - 0.15 * th * fr.v, (c + 0.85 * th * fr.v)[::-1]]), 0.36 * np.array(idy.hair_rgb) + (16, 12, 10))


def _mouth(pen: _Pen, p: np.ndarray, idy: Identity, fr: _Frame) -> None:
    """Lips, and when open the dark mouth, tongue and teeth (upper teeth fixed to the skull)."""
    lip, k = idy.lip_rgb, fr.w / idy.face_width                  # k: pixels per canonical unit
    pen.poly(_spline(p[48:60], 5, closed=True), lip)
    up, lo = _spline(p[[60, 61, 62, 63, 64]], 6), _spline(p[[60, 67, 66, 65, 64]], 6)
    up_v, lo_v = (up - p[27]) @ fr.v, (lo - p[27]) @ fr.v
    gap = lo_v - up_v
    if gap.max() > 0.25:
        pen.poly(np.vstack([up, lo[::-1]]), (32, 10, 12))
        pen.poly(np.vstack([lo - fr.v * np.minimum(0.3 * gap, 0.025 * k)[:, None], lo[::-1]]), (120, 45, 52))
        xu = (up - p[27]) @ fr.u / (0.5 * idy.mouth_width * k)
        edge = (idy.nose_length + idy.mouth_offset + 0.035 - 0.008 * xu ** 2) * k
        teeth_up = up + fr.v * (np.clip(edge, up_v, lo_v) - up_v)[:, None]
        teeth_lo = lo - fr.v * np.clip(0.3 * gap - 0.004 * k, 0, 0.013 * k)[:, None]
        for sl, col in ((slice(2, -2), (165, 160, 150)), (slice(6, -6), (240, 236, 226))):
            pen.poly(np.vstack([lo[sl], teeth_lo[sl][::-1]]), _mul(col, 0.88))
            pen.poly(np.vstack([up[sl], teeth_up[sl][::-1]]), col)
        pen.line(np.stack([up[12], teeth_up[12]]), (170, 165, 155), 0.006 * fr.w)
    pen.poly(np.vstack([_spline(p[48:55], 5), up[::-1]]), _mul(lip, 0.86))
    pen.line(up, _mul(lip, 0.55), 0.008 * fr.w)


def _features(fr: _Frame, p: np.ndarray, idy: Identity, a: np.ndarray, n: int):
    """Soft shadow and highlight maps (n, n) in 0..1: nose, folds, dimples, lips, cheeks."""
    dark, light = np.zeros((n, n), np.uint8), np.zeros((n, n), np.uint8)
    pd, pl = _Pen(dark, 1), _Pen(light, 1)
    w, u, v, lx = fr.w, fr.u, fr.v, idy.light_x
    for side, wing, corner, eye in ((-1, 31, 48, 38), (1, 35, 54, 43)):
        shadow_side = side * lx < 0                                # the nose side facing away from the light
        pd.line(np.array([p[28] + side * 0.05 * w * u, p[30] + side * 0.07 * w * u, p[wing]]), 30 + 50 * shadow_side, 0.03 * w)
        fold = np.array([p[wing] + w * (side * 0.035 * u - 0.03 * v), p[wing] + w * (side * 0.07 * u + 0.07 * v),
                         p[corner] + w * (side * 0.04 * u + 0.03 * v)])
        pd.line(_spline(fold, 5), 45 + 70 * a[0] + 30 * a[2], 0.025 * w)
        pd.poly(fr.ellipse(p[corner] + side * 0.07 * w * u, 0.018, 0.03), 60 * a[1])
        pd.poly(fr.ellipse(0.5 * (p[eye] + p[27]) - 0.03 * w * v, 0.06, 0.04), 35)
        cheek = p[2 if side < 0 else 14] + 0.22 * (p[30] - p[2 if side < 0 else 14])
        pl.poly(fr.ellipse(cheek, 0.06, 0.04), 12 + 18 * (side * lx > 0))
    pd.poly(fr.ellipse(p[33] + 0.012 * w * v, 0.05, 0.015), 45)
    pd.poly(fr.ellipse(p[57] + 0.04 * w * v, 0.07, 0.018), 35)
    pl.line(np.array([p[27], p[29]]) + lx * 0.01 * w * u, 40, 0.025 * w)
    pl.poly(fr.ellipse(p[30] - w * (0.01 * v - lx * 0.012 * u), 0.025, 0.018), 70)
    pl.poly(fr.ellipse(fr.at((0.0, -0.33)), 0.14, 0.06), 30)
    pl.poly(fr.ellipse(0.5 * (p[66] + p[57]), 0.05, 0.012), 55)
    sig = max(0.6, 0.02 * w)
    return (cv2.GaussianBlur(dark, (0, 0), sig).astype(np.float32) / 255,
            cv2.GaussianBlur(light, (0, 0), sig).astype(np.float32) / 255)


def render_face(identity: Identity, landmarks: np.ndarray, size: int = 160, blink: float = 0.0,
                aus: np.ndarray | None = None) -> np.ndarray:
    """(size, size, 3) uint8 RGB image of ``identity`` with the geometry of ``landmarks``.

    ``landmarks``: (68, 2) pixel coordinates for this ``size`` (from :func:`face_landmarks`);
    every drawn part follows them.  ``aus`` (5,) only adds shading cues that have no landmark
    (AU14 dimples, deeper nasolabial folds for AU10/AU20); ``blink`` thickens the lash line.
    """
    idy, k = identity, SUPERSAMPLE
    p = np.asarray(landmarks, np.float64).reshape(68, 2)
    a = np.zeros(len(AUS)) if aus is None else np.clip(np.asarray(aus, np.float64), 0, 5) / 5
    img = _background(tuple(idy.bg_top_rgb), tuple(idy.bg_bottom_rgb), size * k).copy()
    pen, fr, skin = _Pen(img, k), _Frame(p), idy.skin_rgb
    # body: shirt, hair behind the head, neck (darker bands under the jaw), ears
    pen.poly(fr.at(_SHIRT), idy.shirt_rgb)
    _draw_hair(pen, fr, idy, back=True)
    jaw = np.stack([(p[2:15] - fr.c) @ fr.u, (p[2:15] - fr.c) @ fr.v], 1) / fr.w
    for drop, shade in ((-0.2, 0.6), (0.05, 0.68), (0.1, 0.76), (0.16, 0.84)):
        top = np.stack([np.clip(jaw[:, 0], -0.28, 0.28), jaw[:, 1] + drop], 1)
        pen.poly(fr.at(np.vstack([top, _NECK_BASE])), _mul(skin, shade))
    pen.line(fr.at(_NECK_BASE), _mul(idy.shirt_rgb, 0.6), 0.03 * fr.w)
    for side in (-1, 1):
        ear = fr.at((0.5 * side, 0.13))
        pen.poly(fr.ellipse(ear + side * 0.015 * fr.w * fr.u, 0.07, 0.16), _mul(skin, 0.78))
        pen.poly(fr.ellipse(ear + side * 0.025 * fr.w * fr.u, 0.035, 0.1), _mul(skin, 0.6))
    # face oval (jaw line closed by the forehead arc), hair cap, brows, eyes, nose, mouth
    t = np.linspace(0, np.pi, 11)[1:-1]
    oval = _spline(np.vstack([p[0:17], fr.at(np.stack([0.5 * np.cos(t), -idy.forehead_height * np.sin(t)], 1))]), 4, True)
    pen.poly(oval, skin)
    _draw_hair(pen, fr, idy, back=False)
    _brow(pen, p[17:22], idy, fr)
    _brow(pen, p[26:21:-1], idy, fr)
    _eye(pen, p, (36, 37, 38, 39, 40, 41), idy, blink)
    _eye(pen, p, (45, 44, 43, 42, 47, 46), idy, blink)
    for side, wing, nostril in ((-1, 31, 32), (1, 35, 34)):
        pen.poly(fr.ellipse(0.5 * (p[wing] + p[nostril]) - 0.006 * fr.w * fr.v, 0.025, 0.013), _mul(skin, 0.35))
        alar = fr.ellipse(p[wing] - fr.w * (side * 0.025 * fr.u + 0.015 * fr.v), 0.035, 0.035)
        pen.line(alar[[9, 11, 13, 15, 17] if side < 0 else [3, 1, 23, 21, 19]], _mul(skin, 0.7), 0.012 * fr.w)
    _mouth(pen, p, idy, fr)
    small = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    # soft shading at output size: rounded face (darker rim), directional light, shadows, highlights
    mask = np.zeros((size, size), np.uint8)
    _Pen(mask, 1).poly(oval, 255)
    mask_f = mask.astype(np.float32) / 255
    rim = np.sqrt(np.clip(2 * cv2.GaussianBlur(mask_f, (0, 0), 0.12 * fr.w) - 1, 0, 1))
    xx, yy = np.arange(size, dtype=np.float32)[None, :], np.arange(size, dtype=np.float32)[:, None]
    ldir = np.array([idy.light_x, -0.8]) / np.hypot(idy.light_x, 0.8)
    lin = 1 + 0.18 * ((xx - fr.c[0]) * ldir[0] + (yy - fr.c[1]) * ldir[1]) / fr.w
    dark, light = _features(fr, p, idy, a, size)
    shade = (1 + mask_f * ((0.74 + 0.26 * rim) * lin - 1)) * (1 - 0.8 * dark) * _grain(idy.seed, size)
    return np.clip(small * (shade + 0.6 * light)[..., None] + 50 * light[..., None], 0, 255).astype(np.uint8)
