"""Moving a photo's own pixels: a dense backward warp driven by mouth and jaw landmarks.

The identity image keeps its pixels; only the mouth and the jaw move. Given the source
landmarks of the image and target landmarks (the :data:`MOVING` points displaced, every
other point where it was), a thin-plate spline fitted from the target points to the source
points (plus :data:`ANCHORS` and a ring of image-border points that stay fixed) says, for
every output pixel, where to read the input: a backward map for ``cv2.remap``.

* :func:`backward_map` ``(source (68, 2), target (68, 2), (H, W)) -> (H, W, 2)`` float32;
  evaluated on a coarse grid and upsampled bilinearly (the spline is smooth), so a frame
  costs a few milliseconds;
* :func:`warp_image` applies a map to an ``(H, W, 3)`` uint8 image (edges replicated);
* :func:`photo_map` turns a map of an aligned crop (made by :func:`coursekit.face.warp_faces`
  with an image -> crop transform) into a map of the whole photo, so the warp runs at the
  photo's native resolution while the motion is computed on the crop; :func:`warp_photo`
  does it resampling only the region that moves (the fast path for large photos);
* :func:`mouth_mask` ``(H, W)`` in [0, 1]: where the target's lips part (the inner-lip
  polygon 60-67, feathered), the region a warp cannot fill (no cavity or teeth appear
  from stretched lips) and a network must paint.

Landmarks are ``(x, y)`` pixels in dlib's 68-point order. Displacements of the moving points
are kept in units of the inter-ocular distance (:func:`inter_ocular`) so that they transfer
between faces of any size: :func:`displace`.
"""

from __future__ import annotations

import numpy as np

JAW = np.arange(2, 15)
MOUTH = np.arange(48, 68)
MOVING = np.r_[JAW, MOUTH]
"""The 33 points speech moves: jaw 2-14, then mouth 48-67 (the order of motion vectors)."""

ANCHORS = np.r_[0, 1, 15, 16, 17:48]
"""Points that stay fixed: the jaw's upper ends, brows, nose and eyes."""

MIRROR = np.r_[16:-1:-1, 26:16:-1, 27:31, 35:30:-1, 45:41:-1, 47, 46, 39:35:-1, 41, 40,
               54:47:-1, 59:54:-1, 64:59:-1, 67:64:-1]
"""Left-right mirror permutation of the 68 points: ``mirrored = points[MIRROR]`` with x
negated about the face's axis."""

MOVING_MIRROR = np.searchsorted(MOVING, MIRROR[MOVING])
"""The mirror permutation within :data:`MOVING` (indices into the 33 moving points)."""

INNER_LIPS = np.arange(60, 68)


def inter_ocular(landmarks: np.ndarray) -> np.ndarray:
    """Eye-centre distance of ``(..., 68, 2)`` landmarks, ``(...)`` pixels."""
    pts = np.asarray(landmarks, np.float64)
    return np.linalg.norm(pts[..., 42:48, :].mean(-2) - pts[..., 36:42, :].mean(-2), axis=-1)


def displace(source: np.ndarray, motion: np.ndarray, iod: float | None = None) -> np.ndarray:
    """Target landmarks: ``source (68, 2)`` with the :data:`MOVING` points shifted by
    ``motion (K=33, 2)`` inter-ocular distances (``iod``: pixels per unit, default the
    source's own). ``motion`` may carry leading axes, e.g. ``(T, 33, 2) -> (T, 68, 2)``."""
    source = np.asarray(source, np.float32)
    motion = np.asarray(motion, np.float32)
    if source.shape != (68, 2) or motion.shape[-2:] != (len(MOVING), 2):
        raise ValueError(f"displace: source must be (68, 2) and motion (..., {len(MOVING)}, 2), "
                         f"got {source.shape} and {motion.shape}")
    scale = float(inter_ocular(source) if iod is None else iod)
    out = np.broadcast_to(source, motion.shape[:-2] + (68, 2)).copy()
    out[..., MOVING, :] += motion * scale
    return out


def border_ring(height: int, width: int, per_side: int = 8) -> np.ndarray:
    """``(4 * per_side, 2)`` points evenly along the image border (corners included)."""
    xs = np.linspace(0, width - 1, per_side + 1)
    ys = np.linspace(0, height - 1, per_side + 1)
    top = np.stack([xs[:-1], np.zeros(per_side)], 1)
    right = np.stack([np.full(per_side, width - 1.0), ys[:-1]], 1)
    bottom = np.stack([xs[:0:-1], np.full(per_side, height - 1.0)], 1)
    left = np.stack([np.zeros(per_side), ys[:0:-1]], 1)
    return np.concatenate([top, right, bottom, left]).astype(np.float64)


def _kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Thin-plate kernel ``U = r^2 log r^2`` between ``a (n, 2)`` and ``b (m, 2)``: ``(n, m)``
    (in ``a``'s dtype: float32 for the dense evaluation, float64 for the fit)."""
    b = b.astype(a.dtype)
    r2 = a @ (-2 * b.T)
    r2 += (a * a).sum(1)[:, None]
    r2 += (b * b).sum(1)[None, :]
    np.maximum(r2, 1e-20, out=r2)
    return np.multiply(r2, np.log(r2), out=r2)


def tps_fit(control: np.ndarray, values: np.ndarray, smooth: float = 0.0) -> np.ndarray:
    """Thin-plate spline through ``values (n, d)`` at ``control (n, 2)`` points.

    Returns the coefficients ``(n + 3, d)``: ``n`` kernel weights then the affine part
    ``(1, x, y)``. ``smooth`` > 0 relaxes the interpolation (regularisation ``lambda I``),
    which keeps the system well conditioned when two control points nearly coincide.
    """
    n = len(control)
    a = np.zeros((n + 3, n + 3))
    a[:n, :n] = _kernel(control, control) + smooth * np.eye(n)
    p = np.c_[np.ones(n), control]
    a[:n, n:], a[n:, :n] = p, p.T
    rhs = np.zeros((n + 3, values.shape[1]))
    rhs[:n] = values
    return np.linalg.solve(a, rhs)


def tps_eval(coef: np.ndarray, control: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The spline of :func:`tps_fit` at ``points (m, 2)``: ``(m, d)``."""
    n = len(control)
    coef = coef.astype(points.dtype)
    return _kernel(points, control) @ coef[:n] + coef[n] + points @ coef[n + 1:]


def backward_map(source: np.ndarray, target: np.ndarray, shape: tuple[int, int], *,
                 step: int | None = None, border: int = 8, smooth: float = 1e-6) -> np.ndarray:
    """Dense backward map of the warp that moves ``source`` landmarks to ``target``.

    A thin-plate spline fitted from target points to source points (the :data:`MOVING`
    points, the fixed :data:`ANCHORS` and a ring of ``border`` points per image side, which
    map to themselves), evaluated at every ``step``-th pixel and upsampled bilinearly, and
    evaluated more densely around the jaw and more again around the lips (every pixel on a
    crop), where it bends most.

    Args:
        source, target: ``(68, 2)`` pixels of the image and of the wanted face; only the
            :data:`MOVING` points of ``target`` are used (the anchors come from ``source``).
        shape: ``(H, W)`` of the image.
        step: grid spacing of the coarse evaluation (default: about ``max(H, W) / 28``
            pixels, at least 1); 1 evaluates every pixel.
        smooth: the spline's regularisation (:func:`tps_fit`, coordinates in image sizes),
            so that a closing mouth may bring two control points together.

    Returns:
        ``(H, W, 2)`` float32: output pixel ``(y, x)`` reads the input at ``map[y, x]``
        (``cv2.remap``'s convention). Equal source and target give the identity grid.
    """
    h, w = int(shape[0]), int(shape[1])
    source = np.asarray(source, np.float64)
    target = np.asarray(target, np.float64)
    if source.shape != (68, 2) or target.shape != (68, 2):
        raise ValueError(f"backward_map: landmarks must be (68, 2), got {source.shape} and "
                         f"{target.shape}")
    fixed = np.concatenate([source[ANCHORS], border_ring(h, w, border)])
    scale = float(max(h, w))  # unit coordinates: the system stays well conditioned
    control = np.concatenate([target[MOVING], fixed]) / scale
    shift = np.concatenate([source[MOVING] - target[MOVING], np.zeros_like(fixed)]) / scale
    step = max(1, round(max(h, w) / 28)) if step is None else max(1, int(step))
    with _one_thread():
        coef = tps_fit(control, shift, smooth)
        disp = _dense(coef, control, scale, (0, 0, w, h), step)
        fine = step
        for points, budget in ((MOVING, 2000), (MOUTH, 2500)):  # jaw and mouth, then lips
            if fine == 1:
                break
            near = np.concatenate([target[points], source[points]])
            x0, y0 = np.maximum(np.floor(near.min(0)).astype(int) - 3 * fine, 0)
            x1, y1 = np.minimum(np.ceil(near.max(0)).astype(int) + 3 * fine + 1, [w, h])
            finer = max(1, int(np.ceil(np.sqrt(max(x1 - x0, 0) * max(y1 - y0, 0) / budget))))
            if finer < fine:
                disp[y0:y1, x0:x1] = _dense(coef, control, scale, (x0, y0, x1, y1), finer)
                fine = finer
    return identity_map(h, w) + disp


def _dense(coef: np.ndarray, control: np.ndarray, scale: float, box: tuple[int, int, int, int],
           step: int) -> np.ndarray:
    """The spline's displacement ``(y1 - y0, x1 - x0, 2)`` float32 pixels over ``box``
    ``(x0, y0, x1, y1)``, evaluated on a grid of about ``step`` pixels that includes the
    box's edges and interpolated bilinearly in between."""
    x0, y0, x1, y1 = box
    h, w = y1 - y0, x1 - x0
    gh, gw = -(-(h - 1) // step) + 1, -(-(w - 1) // step) + 1
    ys, xs = np.linspace(y0, y1 - 1, gh), np.linspace(x0, x1 - 1, gw)
    gx, gy = np.meshgrid(xs, ys)
    pts = (np.stack([gx.ravel(), gy.ravel()], 1) / scale).astype(np.float32)
    disp = (tps_eval(coef, control, pts) * scale).reshape(gh, gw, 2).astype(np.float32)
    if (gh, gw) == (h, w):
        return disp
    rows = _lerp_matrix(h, gh) @ disp.reshape(gh, gw * 2)  # (h, gw * 2)
    return np.ascontiguousarray((rows.reshape(h, gw, 2).transpose(0, 2, 1)
                                 @ _lerp_matrix(w, gw).T).transpose(0, 2, 1))


def _lerp_matrix(n: int, m: int) -> np.ndarray:
    """``(n, m)`` float32 linear interpolation from ``m`` samples spanning ``n`` pixels (the
    first and last samples on the first and last pixels)."""
    pos = np.arange(n) * (m - 1) / max(n - 1, 1)
    lo = np.minimum(np.floor(pos).astype(int), m - 2) if m > 1 else np.zeros(n, int)
    frac = pos - lo
    out = np.zeros((n, m), np.float32)
    out[np.arange(n), lo] = 1 - frac
    if m > 1:
        out[np.arange(n), lo + 1] += frac
    return out


_THREADS = []


def _one_thread():
    """A context that keeps numpy's BLAS on one thread: the spline's small solves and
    products are far slower when a threaded BLAS contends with other work for the cores."""
    import contextlib

    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # a transitive dependency (scikit-learn's); without it, no limit
        return contextlib.nullcontext()
    if not _THREADS:
        _THREADS.append(ThreadpoolController())
    return _THREADS[0].limit(limits=1, user_api="blas")


def identity_map(height: int, width: int) -> np.ndarray:
    """``(H, W, 2)`` float32 grid of each pixel's own ``(x, y)``: the map that changes nothing."""
    grid = np.empty((height, width, 2), np.float32)
    grid[..., 0] = np.arange(width, dtype=np.float32)
    grid[..., 1] = np.arange(height, dtype=np.float32)[:, None]
    return grid


def warp_image(image: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """``image (H, W, 3)`` uint8 resampled through ``backward (H', W', 2)`` (bilinear,
    edges replicated): ``(H', W', 3)`` uint8."""
    import cv2

    image = np.asarray(image)
    if image.ndim != 3 or image.dtype != np.uint8:
        raise ValueError(f"warp_image: expected an (H, W, 3) uint8 image, got {image.shape} "
                         f"{image.dtype}")
    return cv2.remap(image, np.ascontiguousarray(backward, np.float32), None, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def photo_map(crop_map: np.ndarray, transform: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The backward map of a whole photo from the map of its aligned crop.

    The crop was made with ``transform (2, 3)`` (photo -> crop, as for ``cv2.warpAffine``;
    :attr:`coursekit.infer.FaceCrop.transform`). A photo pixel ``x`` sits at ``q = M x`` in
    the crop; the crop map moves it by ``d(q) = crop_map(q) - q`` crop pixels, which is
    ``A^-1 d(q)`` photo pixels (``A`` the linear part of ``M``). Outside the part of the crop
    that moves (:func:`moving_box`) the photo does not move.

    Args:
        crop_map: ``(S, S, 2)`` float32 from :func:`backward_map` on the crop.
        transform: ``(2, 3)`` photo -> crop. shape: ``(H, W)`` of the photo.

    Returns:
        ``(H, W, 2)`` float32 backward map of the photo.
    """
    h, w = int(shape[0]), int(shape[1])
    out = identity_map(h, w)
    box, local = photo_map_box(crop_map, transform, (h, w))
    x0, y0, x1, y1 = box
    out[y0:y1, x0:x1] = local
    return out


def warp_photo(photo: np.ndarray, crop_map: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """``photo (H, W, 3)`` uint8 warped at its own resolution by the map of its aligned crop
    (as ``warp_image(photo, photo_map(...))``, but only the region that moves is resampled):
    ``(H, W, 3)`` uint8."""
    import cv2

    photo = np.asarray(photo)
    out = photo.copy()
    (x0, y0, x1, y1), local = photo_map_box(crop_map, transform, photo.shape[:2])
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = cv2.remap(photo, local, None, cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REPLICATE)
    return out


def photo_map_box(crop_map: np.ndarray, transform: np.ndarray, shape: tuple[int, int],
                  tol: float = 0.01) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """The part of :func:`photo_map` that moves: ``((x0, y0, x1, y1), (y1 - y0, x1 - x0, 2))``,
    the photo box around the crop pixels displaced by more than ``tol`` crop pixels and the
    map there (absolute photo coordinates)."""
    import cv2

    m = np.asarray(transform, np.float32)
    disp = np.ascontiguousarray(crop_map, np.float32) - identity_map(*crop_map.shape[:2])
    x0, y0, x1, y1 = moving_box(disp, m, shape, tol)
    if x1 <= x0 or y1 <= y0:
        return (0, 0, 0, 0), np.zeros((0, 0, 2), np.float32)
    xs = np.arange(x0, x1, dtype=np.float32)[None, :]
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    qx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]  # where each photo pixel lies in the crop
    qy = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    d = cv2.remap(disp, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                  borderValue=(0.0, 0.0, 0.0, 0.0))
    inv = np.linalg.inv(m[:, :2].astype(np.float64)).astype(np.float32)
    local = np.empty_like(d)
    local[..., 0] = xs + inv[0, 0] * d[..., 0] + inv[0, 1] * d[..., 1]
    local[..., 1] = ys + inv[1, 0] * d[..., 0] + inv[1, 1] * d[..., 1]
    return (x0, y0, x1, y1), local


def moving_box(disp: np.ndarray, transform: np.ndarray, shape: tuple[int, int],
               tol: float = 0.01) -> tuple[int, int, int, int]:
    """Photo box ``(x0, y0, x1, y1)`` (end exclusive, clipped to ``shape (H, W)``) around the
    crop pixels whose displacement ``disp (S, S, 2)`` exceeds ``tol`` crop pixels (empty
    when none does); ``transform (2, 3)`` is photo -> crop."""
    moving = np.abs(disp).max(-1) > tol
    rows, cols = np.flatnonzero(moving.any(1)), np.flatnonzero(moving.any(0))
    if not len(rows):
        return 0, 0, 0, 0
    inv = np.linalg.inv(np.vstack([np.asarray(transform, np.float64), [0, 0, 1]]))
    corners = np.array([[cols[0] - 1, rows[0] - 1, 1], [cols[-1] + 1, rows[0] - 1, 1],
                        [cols[0] - 1, rows[-1] + 1, 1], [cols[-1] + 1, rows[-1] + 1, 1]], float)
    pts = corners @ inv[:2].T
    x0, y0 = np.floor(pts.min(0)).astype(int)
    x1, y1 = np.ceil(pts.max(0)).astype(int) + 1
    return max(0, x0), max(0, y0), min(int(shape[1]), x1), min(int(shape[0]), y1)


def mouth_mask(landmarks: np.ndarray, shape: tuple[int, int], feather: float = 0.12) -> np.ndarray:
    """Where the lips part: the inner-lip polygon (60-67) of ``landmarks (68, 2)`` filled
    (1 inside) and feathered outside with a Gaussian fall-off of ``feather`` mouth widths;
    faded out as the inner-lip gap closes below one pixel (closed lips: all 0).

    Returns ``(H, W)`` float32 in [0, 1].
    """
    import cv2

    h, w = int(shape[0]), int(shape[1])
    pts = np.asarray(landmarks, np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"mouth_mask: landmarks must be (68, 2), got {pts.shape}")
    sigma = max(feather * float(np.linalg.norm(pts[54] - pts[48])), 0.5)
    lips = pts[INNER_LIPS]
    reach = 4 * sigma + 2  # the fall-off is below 4e-4 beyond this
    x0, y0 = np.maximum(np.floor(lips.min(0) - reach).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(lips.max(0) + reach).astype(int) + 1, [w, h])
    out = np.zeros((h, w), np.float32)
    if x1 <= x0 or y1 <= y0:
        return out
    poly = np.zeros((y1 - y0, x1 - x0), np.uint8)
    bits = 4  # sub-pixel vertices
    cv2.fillPoly(poly, [np.round((lips - [x0, y0]) * (1 << bits)).astype(np.int32)], 1,
                 lineType=cv2.LINE_8, shift=bits)
    if poly.any():
        dist = cv2.distanceTransform(1 - poly, cv2.DIST_L2, 5)
        gap = np.linalg.norm(pts[[61, 62, 63]] - pts[[67, 66, 65]], axis=1).mean()
        out[y0:y1, x0:x1] = min(float(gap), 1.0) * np.exp(-0.5 * (dist / sigma) ** 2)
    return out
