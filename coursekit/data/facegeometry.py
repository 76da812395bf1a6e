"""Synthetic speakers and the geometry of their faces, which
:mod:`coursekit.data.facerender` draws.

An :class:`Identity` is what one speaker looks like (:func:`random_identity` draws one);
:func:`neutral_landmarks` places its 68 iBUG 300-W landmarks with all AUs at 0, and
:func:`face_landmarks` moves them by the five speech AUs, a blink and a head pose, in pixels.

Landmarks: 0-16 jaw (image left to right), 17-21 / 22-26 brows, 27-30 nose bridge, 31-35
nose base, 36-41 / 42-47 eyes, 48-59 outer lips, 60-67 inner lips.  AU effects (``_AU_RULES``):
AU26 drops the jaw and lower lip, AU25 parts the inner lips, AU20 pulls the corners sideways,
AU14 tightens and lifts the corners (plus dimples), AU10 raises the upper lip (teeth show);
with all AUs at 0 the inner lips coincide (mouth closed).  No global RNG is used anywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from coursekit.au import AUS

HAIR_STYLES = ("short", "long", "bob", "curly", "buzz")
EYE_LINE_Y = -0.075       # canonical y of the eye line

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Identity:
    """Everything that makes one synthetic speaker look different.

    Lengths are in canonical units (1.0 = output image width at pose scale 1, see
    :func:`neutral_landmarks`), except ``forehead_height`` (in face widths).  Colours are
    RGB 0-255.
    """

    face_width: float = 0.54        # jaw width, landmark 0 to 16
    face_length: float = 0.37       # eye line to chin (landmark 8)
    jaw_roundness: float = 0.5      # 0 square jaw .. 1 round, tapered jaw
    forehead_height: float = 0.62   # eye line to top of skull, in face widths
    eye_spacing: float = 0.21       # distance between the eye centres
    eye_size: float = 0.095         # eye width, corner to corner
    eye_openness: float = 0.36      # eye height / eye width
    brow_height: float = 0.07       # eye line to brow (upper edge)
    brow_arch: float = 0.012        # how much the brow arches up
    brow_thickness: float = 0.018
    nose_length: float = 0.13       # eye line to nose tip (landmark 30)
    nose_width: float = 0.10        # landmark 31 to 35
    mouth_width: float = 0.17       # landmark 48 to 54
    mouth_offset: float = 0.065     # nose base (33) to the lip seam
    lip_thickness: float = 0.024
    skin_rgb: RGB = (224, 172, 135)
    lip_rgb: RGB = (190, 100, 100)
    iris_rgb: RGB = (100, 70, 40)
    hair_rgb: RGB = (60, 40, 30)
    hair_style: str = "short"       # one of HAIR_STYLES
    shirt_rgb: RGB = (60, 90, 140)
    bg_top_rgb: RGB = (170, 185, 200)
    bg_bottom_rgb: RGB = (90, 100, 120)
    light_x: float = -0.4           # light direction, -1 from the left .. 1 from the right
    seed: int = 0                   # seeds the skin grain and hair texture


_SKIN = np.array([(255, 224, 200), (241, 194, 160), (224, 172, 135), (198, 134, 96),
                  (160, 102, 70), (115, 72, 50), (85, 55, 40)], float)
_HAIR = [(25, 20, 20), (55, 38, 28), (95, 65, 40), (135, 70, 40), (200, 165, 105),
         (165, 160, 155), (215, 195, 150)]
_IRIS = [(70, 45, 25), (110, 75, 40), (115, 100, 50), (70, 110, 70), (70, 110, 160), (110, 120, 130)]


def random_identity(rng: np.random.Generator) -> Identity:
    """Draw a random speaker from ``rng`` (the only source of randomness)."""
    u, pick = rng.uniform, lambda palette: tuple(int(c) for c in palette[int(rng.integers(len(palette)))])

    def hsv(sat, val):                                  # random hue with saturation / value in ranges
        px = np.uint8([[[rng.integers(0, 180), rng.integers(*sat), rng.integers(*val)]]])
        return tuple(int(c) for c in cv2.cvtColor(px, cv2.COLOR_HSV2RGB)[0, 0])
    t = u(0, len(_SKIN) - 1)
    k = int(t)
    skin = _SKIN[k] + (t - k) * (_SKIN[min(k + 1, len(_SKIN) - 1)] - _SKIN[k])
    skin = np.clip(skin * u(0.95, 1.05, 3), 0, 255)
    lip = skin + u(0.4, 0.55) * (np.array((190, 65, 78)) + u(-15, 15, 3) - skin)
    bg_top = hsv((20, 110), (140, 230))
    bg_bottom = tuple(int(c * u(0.45, 0.75)) for c in bg_top)
    return Identity(
        face_width=u(0.50, 0.58), face_length=u(0.35, 0.40), jaw_roundness=u(0, 1),
        forehead_height=u(0.58, 0.68), eye_spacing=u(0.195, 0.225), eye_size=u(0.085, 0.105),
        eye_openness=u(0.30, 0.42), brow_height=u(0.06, 0.08), brow_arch=u(0.005, 0.02),
        brow_thickness=u(0.013, 0.024), nose_length=u(0.115, 0.145), nose_width=u(0.085, 0.115),
        mouth_width=u(0.15, 0.20), mouth_offset=u(0.055, 0.075), lip_thickness=u(0.018, 0.03),
        skin_rgb=tuple(int(c) for c in skin), lip_rgb=tuple(int(c) for c in lip),
        iris_rgb=pick(_IRIS), hair_rgb=pick(_HAIR),
        hair_style=HAIR_STYLES[int(rng.integers(len(HAIR_STYLES)))],
        shirt_rgb=hsv((40, 200), (40, 200)), bg_top_rgb=bg_top, bg_bottom_rgb=bg_bottom,
        light_x=u(-0.7, 0.7), seed=int(rng.integers(2**31)))


# ----------------------------------------------------------------------------- geometry
def _jaw(idy: Identity) -> np.ndarray:
    """17 jaw points, equally spaced along a tapered superellipse (canonical coords)."""
    n = 2.0 + 1.8 * (1.0 - idy.jaw_roundness)
    phi = np.linspace(0.0, np.pi, 400)
    c, s = np.cos(phi), np.sin(phi)
    depth = np.abs(s) ** (2.0 / n)                       # 0 at the ears, 1 at the chin
    x = -0.5 * idy.face_width * np.sign(c) * np.abs(c) ** (2.0 / n)
    x *= 1.0 - (0.22 + 0.18 * idy.jaw_roundness) * depth ** 1.5
    y = EYE_LINE_Y - 0.02 + (idy.face_length + 0.02) * depth
    curve = np.stack([x, y], 1)
    arc = np.r_[0.0, np.cumsum(np.hypot(*np.diff(curve, axis=0).T))]
    at = np.linspace(0.0, arc[-1], 17)
    return np.stack([np.interp(at, arc, x), np.interp(at, arc, y)], 1)


def neutral_landmarks(identity: Identity) -> np.ndarray:
    """(68, 2) float64 landmarks of the neutral face (all AUs 0, eyes open) in canonical coords.

    Canonical frame: origin at the image centre, x to the right, y downwards (image
    convention), 1.0 = the output image width when the pose scale is 1.  The subject's right
    side is on the image left (points 0-8, 17-21, 36-41).  The eye line lies at
    ``EYE_LINE_Y``; the face spans roughly y = -0.45 (hair) .. 0.30 (chin).
    """
    d = identity
    p = np.zeros((68, 2))
    p[0:17] = _jaw(d)
    ey = EYE_LINE_Y
    for side, brow, eye in ((-1, [17, 18, 19, 20, 21], (36, 37, 38, 39, 40, 41)),
                           (1, [26, 25, 24, 23, 22], (45, 44, 43, 42, 47, 46))):
        cx = side * d.eye_spacing / 2
        ew, eh = d.eye_size, d.eye_size * d.eye_openness
        t = np.linspace(0, 1, 5)                             # outer (0) .. inner (1)
        bx = cx + side * (0.8 * ew - t * (1.45 * ew))
        by = ey - d.brow_height - d.brow_arch * np.sin(np.pi * (0.1 + 0.8 * t)) + 0.01 * t
        p[brow] = np.stack([bx, by], 1)
        ox, ix = cx + side * ew / np.array([2, 6]), cx - side * ew / np.array([2, 6])    # outer / inner x
        p[list(eye)] = [(ox[0], ey - 0.004), (ox[1], ey - 0.52 * eh), (ix[1], ey - 0.5 * eh),    # corner, upper lid,
                        (ix[0], ey + 0.002), (ix[1], ey + 0.44 * eh), (ox[1], ey + 0.46 * eh)]   # corner, lower lid
    tip = ey + d.nose_length
    p[27:31] = np.stack([np.zeros(4), np.linspace(ey - 0.002, tip - 0.01, 4)], 1)
    nw = d.nose_width
    p[31:36] = [(-nw / 2, tip + 0.012), (-nw / 4, tip + 0.022), (0, tip + 0.027),
                (nw / 4, tip + 0.022), (nw / 2, tip + 0.012)]
    m, hw = tip + 0.027 + d.mouth_offset, d.mouth_width / 2
    tu, tl = 0.8 * d.lip_thickness, 1.45 * d.lip_thickness
    p[48:60] = [(-hw, m + 0.003), (-0.62 * hw, m - 0.75 * tu), (-0.24 * hw, m - 1.05 * tu),
                (0, m - 0.9 * tu), (0.24 * hw, m - 1.05 * tu), (0.62 * hw, m - 0.75 * tu),
                (hw, m + 0.003), (0.6 * hw, m + 0.8 * tl), (0.25 * hw, m + 0.98 * tl),
                (0, m + tl), (-0.25 * hw, m + 0.98 * tl), (-0.6 * hw, m + 0.8 * tl)]
    ic = hw - 0.015
    p[60:68] = [(-ic, m), (-0.32 * hw, m), (0, m), (0.32 * hw, m),
                (ic, m), (0.32 * hw, m), (0, m), (-0.32 * hw, m)]
    return p


# Per-AU landmark displacements at intensity 5, as (left, right, outward dx, dy) rows in
# canonical units for a 0.54-wide face; a right index of -1 marks a midline point.
_AU_RULES = {
    "AU10": [(50, 52, 0, -.042), (51, -1, 0, -.038), (49, 53, .004, -.028), (48, 54, 0, -.008),
             (61, 63, 0, -.030), (62, -1, 0, -.034), (60, 64, 0, -.006), (31, 35, .004, -.010),
             (32, 34, 0, -.008), (33, -1, 0, -.006)],
    "AU14": [(48, 54, -.030, -.012), (60, 64, -.028, -.010), (49, 53, -.012, .002),
             (59, 55, -.012, -.004), (61, 63, -.006, 0), (67, 65, -.006, 0),
             (50, 52, 0, .008), (51, -1, 0, .009), (58, 56, 0, -.008), (57, -1, 0, -.009)],
    "AU20": [(48, 54, .048, .007), (60, 64, .045, .007), (49, 53, .027, .004), (59, 55, .027, -.002),
             (50, 52, .010, .004), (58, 56, .010, -.004), (51, -1, 0, .004), (57, -1, 0, -.006),
             (61, 63, .020, 0), (67, 65, .020, 0), (4, 12, .006, 0)],
    "AU25": [(61, 63, 0, -.006), (62, -1, 0, -.008), (67, 65, 0, .016), (66, -1, 0, .02),
             (59, 55, 0, .012), (58, 56, 0, .016), (57, -1, 0, .018), (50, 52, 0, -.004),
             (51, -1, 0, -.004), (49, 53, 0, -.003), (6, 10, 0, .004), (7, 9, 0, .006), (8, -1, 0, .008)],
    "AU26": [(3, 13, 0, .007), (4, 12, 0, .021), (5, 11, 0, .038), (6, 10, 0, .06), (7, 9, 0, .077),
             (8, -1, 0, .085), (57, -1, 0, .076), (58, 56, 0, .072), (59, 55, 0, .06), (66, -1, 0, .074),
             (67, 65, 0, .066), (48, 54, -.007, .034), (60, 64, -.007, .034)],
}


@lru_cache(maxsize=1)
def _au_basis() -> np.ndarray:
    """(5, 68, 2) displacement of every landmark per unit of AU intensity (1/5 of the rules)."""
    basis = np.zeros((len(AUS), 68, 2))
    for k, au in enumerate(AUS):
        for left, right, dx, dy in _AU_RULES[au]:
            basis[k, left] = (-dx / 5, dy / 5)
            if right >= 0:
                basis[k, right] = (dx / 5, dy / 5)
    return basis


def _constrain(p: np.ndarray, idy: Identity) -> np.ndarray:
    """Clip a deformed face back to valid geometry (lips never cross, chin below the lips)."""
    up, lo = [61, 62, 63], [67, 66, 65]                      # inner lips: lower never above upper
    mid = 0.5 * (p[up, 1] + p[lo, 1])
    p[up, 1], p[lo, 1] = np.minimum(p[up, 1], mid), np.maximum(p[lo, 1], mid)
    gap = 0.3 * idy.lip_thickness                            # outer lip at least this far from the inner lip
    p[49:54, 1] = np.minimum(p[49:54, 1], p[[61, 61, 62, 63, 63], 1] - gap)
    p[55:60, 1] = np.maximum(p[55:60, 1], p[[65, 65, 66, 67, 67], 1] + gap)
    p[60, 0] = max(p[60, 0], p[48, 0] + 0.004)
    p[64, 0] = min(p[64, 0], p[54, 0] - 0.004)
    p[8, 1] = max(p[8, 1], p[57, 1] + 0.04)
    return p


def face_landmarks(identity: Identity, aus: np.ndarray, blink: float = 0.0,
                   pose: tuple[float, float, float, float] = (0, 0, 0, 1), size: int = 160) -> np.ndarray:
    """(68, 2) float32 pixel coordinates (x, y) of the face in a ``size`` x ``size`` image.

    ``aus``: (5,) AU intensities 0-5 in ``coursekit.au.AUS`` order (clipped); effects add up
    linearly and are then constrained to valid geometry.  ``blink``: 0 open .. 1 closed.
    ``pose`` = (dx, dy, roll, scale): shift in image widths, in-plane rotation in degrees
    (positive = clockwise on screen), and zoom, applied about the image centre.
    """
    a = np.clip(np.asarray(aus, np.float64).reshape(len(AUS)), 0.0, 5.0)
    s = identity.face_width / 0.54
    p = neutral_landmarks(identity) + s * np.tensordot(a, _au_basis(), axes=1)
    p = _constrain(p, identity)
    b = float(np.clip(blink, 0.0, 1.0))
    for up, lo in ((37, 41), (38, 40), (43, 47), (44, 46)):
        gap = p[lo, 1] - p[up, 1]
        p[lo, 1] -= 0.15 * b * gap
        p[up, 1] += b * (p[lo, 1] - p[up, 1])
    dx, dy, roll, scale = pose
    r = np.deg2rad(roll)
    rot = np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])
    out = size / 2.0 + size * (scale * p @ rot.T + (dx, dy)) - 0.5
    return out.astype(np.float32)
