"""Drawing a synthetic PA chest radiograph: the anatomy under the phantom's opacities.

Everything is drawn in *canonical* coordinates: x from -1 (image left = patient's right
in a PA view) to +1, y from -1 (top) to +1 (bottom). A random affine (rotation, scale,
shift) maps the canonical chest onto the pixel grid, so every structure (and the lung mask)
moves together. Structures add up in a "density" map (bone > soft tissue > air); `expose`
turns density into an 8-bit film-like image. All of it is vectorised numpy: a 256 px case
takes about 10-15 ms on one core.

Used only by `labkit.data.phantom`; students never call this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage as ndi

# Speed notes (hundreds of cases should take seconds): scipy.ndimage blurs float32 in place of
# skimage.filters.gaussian (which converts to float64, ~10x slower here); wide blurs and
# smooth noise are computed at low resolution and upsampled with PIL; PIL also rasterises
# the lung polygons (~50x faster than skimage.draw.polygon with this many vertices). No
# BLAS matrix products: multi-threaded BLAS slows down 5x when other processes share the
# cores. Every map stays float32 (a numpy float64 scalar would silently promote it).


def _polygon_mask(xy: np.ndarray, size: int) -> np.ndarray:
    """Boolean (size, size) mask of a polygon given as (N, 2) pixel (x, y) vertices."""
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).polygon(xy.ravel().tolist(), fill=1)
    return np.asarray(canvas, dtype=bool)


@dataclass
class Chest:
    """One drawn chest, before exposure.

    Attributes:
        density: float32 (H, W) attenuation map (higher = whiter).
        lung: bool (H, W) lung fields, exactly the mask the lungs were drawn with.
        side: int8 (H, W): 1 in the image-left lung, 2 in the image-right lung, 0 elsewhere.
        air: float32 (H, W) density the lung air removes; an opacity filling a fraction f
            of the air spaces adds ``f * air`` back, so it can never outshine solid tissue.
        xc, yc: float32 (H, W) canonical coordinates of every pixel (for zone-aware opacities).
        px: size of one canonical unit in pixels (half the image width at scale 1).
    """

    density: np.ndarray
    lung: np.ndarray
    side: np.ndarray
    air: np.ndarray
    xc: np.ndarray
    yc: np.ndarray
    px: float


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, a smooth S in between (soft edges without a blur)."""
    t = np.clip(x, 0.0, 1.0)
    t2 = t * t
    t *= -2.0
    t += 3.0
    t *= t2  # t^2 (3 - 2t), computed in place: this runs ~20 times per image
    return t


def _resize(x: np.ndarray, size: int, resample: Image.Resampling) -> np.ndarray:
    """Resize a float32 map with PIL (fast C code, single-threaded, deterministic)."""
    return np.array(
        Image.fromarray(x.astype(np.float32, copy=False)).resize((size, size), resample)
    )


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Zero-mean noise, std about 1, with blobs about ``size / cells`` pixels wide.

    Drawn at low resolution, blurred and normalised there, then upsampled bicubically: far
    cheaper than blurring full-size white noise with a wide kernel.
    """
    low = ndi.gaussian_filter(rng.standard_normal((cells + 2, cells + 2), dtype=np.float32), 0.7)
    low -= low.mean()
    low /= low.std() + 1e-6
    return _resize(low, size, Image.Resampling.BICUBIC)


def _chaikin(points: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Round a closed polygon by corner cutting; repeated vertices stay sharp corners."""
    for _ in range(iterations):
        nxt = np.roll(points, -1, axis=0)
        points = np.stack([0.75 * points + 0.25 * nxt, 0.25 * points + 0.75 * nxt], axis=1)
        points = points.reshape(-1, 2)
    return points


def _lung_outline(rng: np.random.Generator, right: bool, heart: float, dome: float):
    """Control polygon (x, y) of one lung in canonical coordinates.

    ``right`` is the image-right lung (the patient's left): the heart cuts its cardiac
    notch and its hemidiaphragm sits lower. Points run apex -> lateral wall ->
    costophrenic angle (tripled, so it stays sharp) -> diaphragm dome -> medial border.
    """
    j = lambda sd: float(rng.normal(0.0, sd))  # noqa: E731 - tiny local jitter helper
    top = -0.78 + j(0.025)
    wid = 0.82 + j(0.025)
    cp = dome + 0.18 + j(0.025)  # costophrenic angle, below the dome's top
    lateral = [
        (0.28, top),
        (0.45, top + 0.04),
        (0.60, top + 0.20),
        (0.71, top + 0.48),
        (wid - 0.03, top + 0.85),
        (wid, cp - 0.08),
    ]
    corner = [(wid + 0.01, cp)] * 3
    if right:  # the dome meets the heart; then the left heart border and aortic knob
        medial = [
            (wid - 0.14, dome + 0.06),
            (0.62, dome + 0.005),
            (heart + 0.06, dome + 0.01),
            (heart - 0.02, dome + 0.06),
            (heart, dome - 0.08),
            (heart - 0.06, dome - 0.24),
            (0.25, dome - 0.36),
            (0.19, -0.14 + j(0.02)),
            (0.22 + j(0.015), -0.28),
            (0.13, -0.42),
            (0.13, -0.62),
        ]
    else:  # the dome, then the right heart border (right atrium) and superior vena cava
        medial = [
            (wid - 0.14, dome + 0.06),
            (0.55, dome + 0.005),
            (0.40, dome),
            (0.27, dome + 0.04),
            (0.16, dome + 0.08),
            (0.19 + j(0.015), dome - 0.05),
            (0.17, dome - 0.22),
            (0.13, -0.05),
            (0.10, -0.25),
            (0.10, -0.45),
            (0.13, -0.64),
        ]
    pts = np.array(lateral + corner + medial, dtype=np.float64)
    pts += rng.normal(0.0, 0.008, pts.shape)
    pts[:, 0] *= 1.0 if right else -1.0
    return _chaikin(pts)


def _band(t: np.ndarray, width: float, edge: float) -> np.ndarray:
    """1 inside [0, width] of a periodic phase t in [0, 1), with soft edges of ``edge``."""
    return smoothstep((width / 2 - np.abs(t - width / 2)) / edge)


def _ribs(s: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Posterior (clear) and anterior (faint) rib arcs for both sides at once (s = |x|)."""
    # Posterior ribs leave the spine almost horizontally and droop laterally. Warping y by
    # that droop makes every rib a horizontal band, so one periodic function draws them all;
    # the square root spreads the lower ribs apart, as in a real chest.
    droop = 0.9 + float(rng.normal(0, 0.08))
    v = y - (droop * s * s - 0.35 * s) + 0.012 * np.sin(9.0 * s + float(rng.uniform(0, 6)))
    start = -0.80 + float(rng.normal(0, 0.02))
    phase = 9.0 * np.sqrt(np.clip(v - start, 0.0, None) / 1.55) + float(rng.uniform(-0.1, 0.1))
    t = phase - np.floor(phase)
    post = _band(t, 0.5, 0.12) * (1.0 + 0.6 * _band(t, 0.08, 0.04))  # brighter lower cortex
    post *= (phase > 0.2) & (phase < 10.0)
    post *= smoothstep((s - 0.07) / 0.06)
    # Anterior ribs run down and inwards from the lateral wall and fade towards the sternum.
    va = y + 0.5 * s + 0.2 * s * s
    pa = (va + 0.4 + float(rng.normal(0, 0.02))) / 0.17
    ta = pa - np.floor(pa)
    ant = _band(ta, 0.45, 0.15) * ((pa > 0) & (pa < 6)) * smoothstep((s - 0.3) / 0.25)
    cage = smoothstep((1.0 - (s / 0.92) ** 2 - ((y + 0.05) / 0.85) ** 2) * 5.0)
    return (post + 0.4 * ant) * cage


def _canonical_grid(rot: np.ndarray, shift: np.ndarray, n: int):
    """Canonical (x, y) of the pixel centres of an n x n grid covering the image."""
    f32 = np.float32
    grid = (np.arange(n, dtype=f32) + 0.5) / n * 2.0 - 1.0
    gx, gy = np.meshgrid(grid - f32(shift[0]), grid - f32(shift[1]))
    inv = np.linalg.inv(rot).astype(f32)
    return inv[0, 0] * gx + inv[0, 1] * gy, inv[1, 0] * gx + inv[1, 1] * gy


def _soft_tissue(x, y, dome: float, heart: float, gas: float) -> np.ndarray:
    """Smooth (low-resolution) density: body, abdomen, heart, mediastinum, hila, gas."""
    s = np.abs(x)
    # Neck, rounded sloping shoulders, chest wall; thicker in the middle (a cylinder).
    lateral = np.clip((s - 0.28) / 0.8, 0.0, None)
    body = smoothstep((y + 1.05 - 0.5 * lateral * np.sqrt(lateral)) * 12.0)
    body *= smoothstep((1.25 - s) * 8.0)
    thick = np.sqrt(np.clip(1.0 - (s / 1.2) ** 2, 0.0, 1.0))
    out = body * (0.15 + 0.5 * thick + 0.15 * smoothstep((y - dome) * 2.5))  # + abdomen
    # Heart and mediastinum: the lungs are cut out of them later, this is their extra bulk.
    heart_r = np.hypot((x - 0.08) / (heart + 0.06), (y - dome + 0.1) / 0.3)
    out += 0.08 * smoothstep((1.0 - heart_r) * 2.0) + 0.1 * smoothstep((0.2 - s) * 8.0)
    out += 0.08 * np.exp(-(((s - 0.2) / 0.07) ** 2) - ((y + 0.02) / 0.12) ** 2)  # hila
    # Gas bubble in the stomach, under the image-right (patient's left) hemidiaphragm.
    out -= gas * smoothstep((1.0 - np.hypot((x - 0.5) / 0.13, (y - dome - 0.2) / 0.07)) * 3.0)
    return out


def draw_chest(rng: np.random.Generator, size: int) -> Chest:
    """Draw one chest (anatomy only, no disease) with random pose and shape.

    Args:
        rng: the case's random generator; the same state gives the same chest.
        size: image side in pixels.

    Returns:
        A `Chest` whose ``density`` still needs `expose` to become an image.
    """
    f32, bicubic = np.float32, Image.Resampling.BICUBIC
    # Pose: canonical -> normalised pixel coordinates p = rot @ c + shift.
    angle = np.deg2rad(float(rng.normal(0.0, 2.5)))
    scale = float(rng.uniform(0.9, 1.04))
    shift = rng.normal(0.0, 0.03, 2) + (0.0, 0.05)
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    xc, yc = _canonical_grid(rot, shift, size)  # (H, W) canonical coordinates of each pixel

    def box(x0: float, x1: float, y0: float, y1: float):
        """Pixel window (rows, cols) holding a canonical box: local structures stay local."""
        corners = np.array([[x0, y0], [x0, y1], [x1, y0], [x1, y1]]) @ rot.T + shift
        lo = np.clip(np.floor((corners.min(0) + 1.0) / 2.0 * size) - 2, 0, size).astype(int)
        hi = np.clip(np.ceil((corners.max(0) + 1.0) / 2.0 * size) + 2, 0, size).astype(int)
        return slice(lo[1], hi[1]), slice(lo[0], hi[0])

    # Lungs: polygons mapped to pixels and rasterised; this mask *is* the lung mask.
    dome = 0.33 + float(rng.normal(0.0, 0.04))
    heart = 0.46 + float(rng.normal(0.0, 0.035))
    side = np.zeros((size, size), np.int8)
    for label, right in ((1, False), (2, True)):
        poly = _lung_outline(rng, right, heart, dome + (0.05 if right else 0.0))
        pix = (poly @ rot.T + shift + 1.0) / 2.0 * size - 0.5  # (x, y) in pixels
        side[_polygon_mask(pix, size)] = label
    lung = side > 0
    lungf = lung.astype(f32)

    # Smooth terms are drawn at quarter resolution and upsampled once (16x fewer pixels).
    n_lo = max(32, size // 4)
    x_lo, y_lo = _canonical_grid(rot, shift, n_lo)
    density = _resize(
        _soft_tissue(x_lo, y_lo, dome, heart, float(rng.uniform(0, 0.1))), size, bicubic
    )
    # Air: darker where the lung is thick (centre, base) than at its edges and apices.
    depth = ndi.gaussian_filter(
        _resize(lungf, n_lo, Image.Resampling.BOX), 0.05 * n_lo, mode="nearest"
    )
    air_w = (0.5 + 0.5 * depth / (depth.max() + 1e-6)) * (
        0.8 + 0.2 * smoothstep((y_lo + 0.6) * 2.5)
    )
    hilum = np.exp(-(((np.abs(x_lo) - 0.2) / 0.32) ** 2) - (y_lo / 0.4) ** 2)
    soft_lung = ndi.gaussian_filter(lungf, 0.004 * size + 0.3)
    air = 0.38 * soft_lung * _resize(air_w, size, bicubic)
    density -= air

    # Lung markings: ridged noise gives a branching, vessel-like network, densest at the hila.
    r1 = np.clip(1.0 - np.abs(smooth_noise(rng, size, 10)) / 2.0, 0.0, 1.0)
    r2 = np.clip(1.0 - np.abs(smooth_noise(rng, size, 22)) / 2.0, 0.0, 1.0)
    r1, r2 = r1 * r1 * r1, r2 * r2 * r2
    ridge = r1 * r1 + 0.7 * r2 * r2  # ** 6 by hand: numpy's float power is slow
    vessels = ridge * _resize(0.15 + hilum, size, bicubic)
    density += soft_lung * (0.1 * vessels + 0.012 * smooth_noise(rng, size, 40))

    # Bones: ribs (faint outside the lungs), spine (vertebral bodies, disc spaces), clavicles.
    w = box(-0.95, 0.95, -0.95, 0.9)
    density[w] += 0.08 * _ribs(np.abs(xc[w]), yc[w], rng) * (0.5 + 0.5 * soft_lung[w])
    w = box(-0.1, 0.1, -1.6, dome + 0.6)
    s, y = np.abs(xc[w]), yc[w]
    vert = 0.6 + 0.4 * smoothstep(np.cos(2 * np.pi * (y - float(rng.random()) * 0.1) / 0.1) + 0.7)
    density[w] += 0.06 * smoothstep((0.07 - s) * 40.0) * vert * smoothstep((dome + 0.3 - y) * 4.0)
    w = box(-0.85, 0.85, -0.95, -0.5)
    s, y = np.abs(xc[w]), yc[w]
    clav_y = -0.64 - 0.25 * (s - 0.08) + 0.05 * np.sin(np.pi * (s - 0.08) / 0.35)
    clav = smoothstep((0.035 - np.abs(y - clav_y)) * 40.0) * smoothstep((s - 0.08) * 20.0)
    density[w] += 0.1 * clav * smoothstep((0.8 - s) * 10.0)
    # Trachea: an air column down to the carina, dark over the mediastinum.
    w = box(-0.08, 0.1, -1.6, -0.15)
    trachea = smoothstep((0.04 - np.abs(xc[w] - 0.01)) * 60.0) * smoothstep((-0.3 - yc[w]) * 8)
    density[w] -= 0.1 * trachea
    return Chest(density.astype(f32), lung, side, air, xc, yc, size / 2.0 * scale)


def expose(rng: np.random.Generator, density: np.ndarray, size: int) -> np.ndarray:
    """Turn a density map into an 8-bit radiograph with random exposure and quality.

    Quantum noise and detector blur come first; then a film-like saturating curve, a gamma
    and a percentile stretch so every image uses the full 0-255 range, as COVID-QU-Ex does.
    """
    noise = float(rng.uniform(0.006, 0.02))
    noisy = density + noise * rng.standard_normal(density.shape, dtype=np.float32)
    noisy = ndi.gaussian_filter(noisy, float(rng.uniform(0.5, 1.0)) * size / 256.0)
    film = 1.0 - np.exp(-float(rng.uniform(0.8, 1.5)) * np.clip(noisy, 0.0, None))
    lo, hi = np.percentile(film, [float(rng.uniform(0.2, 3.0)), float(rng.uniform(99.0, 99.95))])
    img = np.clip((film - lo) / (hi - lo + 1e-6), 0.0, 1.0) ** float(rng.uniform(0.8, 1.4))
    return np.round(img * 255.0).astype(np.uint8)
