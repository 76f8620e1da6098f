"""Anti-aliased 2-D drawing on float32 (H, W, 3) canvases, vectorised in NumPy.

Each primitive evaluates a signed distance (in pixels) only inside its bounding box,
turns it into coverage with a one-pixel ramp, and blends a colour in.  Shapes are
what the synthetic scenes are made of: ellipses (heads, leaves, bodies), capsules
(limbs, poles, chair legs) and rotated rounded boxes (torsos, doors, furniture).

``with tracking(shares):`` also records, for the figures a ``Shares`` follows, which
part of every pixel each of them painted (the synthetic scenes' masks); the canvas
gets the same bits with or without it."""
import contextlib
import threading

import numpy as np

_local = threading.local()          # the Shares being recorded in this thread, if any


class Shares:
    """Who painted each pixel: ``share[k]`` (float32 (H, W), in [0, 1]) is the part of
    every pixel's colour that figure k's paint makes up.  Blending with coverage c
    mixes a pixel as ``(1 - c) * old + c * colour``, so every share is scaled by
    (1 - c) and the painting figure's (``owner``; None for anything else) gains c.
    Shading (a shadow darkening a figure) leaves the shares alone.  ``drawn[k]`` keeps
    figure k's share as it was when ``keep(k)`` was called (before anything hid it)."""

    def __init__(self, k, h, w):
        self.share = np.zeros((k, h, w), np.float32)
        self.drawn = np.zeros((k, h, w), np.float32)
        self.owner = None

    def keep(self, k):
        self.drawn[k] = self.share[k]

    def paint(self, win, cov):
        ya, yb, xa, xb = win
        s = self.share[:, ya:yb, xa:xb]
        s *= 1 - cov
        if self.owner is not None:
            s[self.owner] += cov


@contextlib.contextmanager
def tracking(shares):
    """Record every blend in this thread into ``shares`` (a Shares, or None: no-op)."""
    prev = getattr(_local, "shares", None)
    _local.shares = shares
    try:
        yield shares
    finally:
        _local.shares = prev


def _window(canvas, y0, y1, x0, x1):
    """Integer bounds of a box clipped to the canvas, or None when it is outside."""
    h, w = canvas.shape[:2]
    ya, yb = max(int(np.floor(y0)), 0), min(int(np.ceil(y1)) + 1, h)
    xa, xb = max(int(np.floor(x0)), 0), min(int(np.ceil(x1)) + 1, w)
    if ya >= yb or xa >= xb:
        return None
    return ya, yb, xa, xb


def _grid(win):
    ya, yb, xa, xb = win
    y = np.arange(ya, yb, dtype=np.float32)[:, None] + 0.5
    x = np.arange(xa, xb, dtype=np.float32)[None, :] + 0.5
    return y, x


def _blend(canvas, win, sd, color, alpha):
    """Coverage from the signed distance sd, then canvas = mix(canvas, color, coverage)."""
    cov = np.clip(0.5 - sd, 0.0, 1.0) * alpha
    ya, yb, xa, xb = win
    region = canvas[ya:yb, xa:xb]
    region += cov[..., None] * (np.asarray(color, np.float32) - region)
    shares = getattr(_local, "shares", None)
    if shares is not None:
        shares.paint(win, cov)


def ellipse(canvas, cy, cx, ry, rx, color, angle=0.0, alpha=1.0):
    """Filled ellipse centred at (cy, cx) with radii (ry, rx), rotated by angle (rad)."""
    r = max(ry, rx) + 1
    win = _window(canvas, cy - r, cy + r, cx - r, cx + r)
    if win is None or min(ry, rx) <= 0:
        return
    y, x = _grid(win)
    c, s = np.cos(angle), np.sin(angle)
    u, v = (x - cx) * c + (y - cy) * s, -(x - cx) * s + (y - cy) * c
    sd = (np.sqrt((u / rx) ** 2 + (v / ry) ** 2) - 1.0) * min(ry, rx)
    _blend(canvas, win, sd, color, alpha)


def capsule(canvas, y0, x0, y1, x1, radius, color, alpha=1.0):
    """Thick segment from (y0, x0) to (y1, x1) with round ends: limbs, poles, legs."""
    r = radius + 1
    win = _window(canvas, min(y0, y1) - r, max(y0, y1) + r, min(x0, x1) - r, max(x0, x1) + r)
    if win is None or radius <= 0:
        return
    y, x = _grid(win)
    dy, dx = y1 - y0, x1 - x0
    t = np.clip(((y - y0) * dy + (x - x0) * dx) / max(dy * dy + dx * dx, 1e-9), 0.0, 1.0)
    sd = np.hypot(y - (y0 + t * dy), x - (x0 + t * dx)) - radius
    _blend(canvas, win, sd, color, alpha)


def box(canvas, cy, cx, hh, hw, color, angle=0.0, round_=0.0, alpha=1.0):
    """Rectangle centred at (cy, cx), half-height hh, half-width hw, corner radius round_."""
    r = np.hypot(hh, hw) + 1
    win = _window(canvas, cy - r, cy + r, cx - r, cx + r)
    if win is None or hh <= 0 or hw <= 0:
        return
    y, x = _grid(win)
    c, s = np.cos(angle), np.sin(angle)
    u, v = (x - cx) * c + (y - cy) * s, -(x - cx) * s + (y - cy) * c
    rr = min(round_, hh, hw)
    qu, qv = np.abs(u) - (hw - rr), np.abs(v) - (hh - rr)
    sd = np.hypot(np.maximum(qu, 0), np.maximum(qv, 0)) + np.minimum(np.maximum(qu, qv), 0) - rr
    _blend(canvas, win, sd, color, alpha)


def trapezoid(canvas, y_top, y_bot, cx, hw_top, hw_bot, color, alpha=1.0):
    """Axis-aligned trapezoid (coats, lamp shades, flower pots): half-width hw_top at
    y_top, hw_bot at y_bot."""
    hw = max(hw_top, hw_bot)
    win = _window(canvas, y_top, y_bot, cx - hw - 1, cx + hw + 1)
    if win is None or y_bot <= y_top:
        return
    y, x = _grid(win)
    t = np.clip((y - y_top) / (y_bot - y_top), 0.0, 1.0)
    half = hw_top + t * (hw_bot - hw_top)
    sd = np.maximum(np.abs(x - cx) - half, np.maximum(y_top - y, y - y_bot))
    _blend(canvas, win, sd, color, alpha)


def shade(canvas, mask_fn, factor):
    """Multiply the canvas by factor where mask_fn(y, x) in [0, 1] says (shadows)."""
    h, w = canvas.shape[:2]
    y, x = _grid((0, h, 0, w))
    m = mask_fn(y, x)
    canvas *= (1.0 - m * (1.0 - factor))[..., None]


def smooth_noise(rng, h, w, cells):
    """Low-frequency noise in about [-1, 1]: a random (cells+1)^2 grid, bilinearly
    interpolated to (h, w)."""
    g = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    ys = np.linspace(0, cells, h, dtype=np.float32)
    xs = np.linspace(0, cells, w, dtype=np.float32)
    y0 = np.minimum(ys.astype(np.int64), cells - 1)
    x0 = np.minimum(xs.astype(np.int64), cells - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a = g[y0][:, x0] * (1 - fx) + g[y0][:, x0 + 1] * fx
    b = g[y0 + 1][:, x0] * (1 - fx) + g[y0 + 1][:, x0 + 1] * fx
    return a * (1 - fy) + b * fy


def gaussian_blur(img, sigma):
    """Separable Gaussian blur of an (H, W, C) image with edge replication."""
    if sigma < 0.3:
        return img
    r = max(1, int(np.ceil(2.5 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1, dtype=np.float32) / sigma) ** 2)
    k /= k.sum()
    h, w = img.shape[:2]
    p = np.pad(img, ((r, r), (0, 0), (0, 0)), mode="edge")
    out = sum(k[i] * p[i:i + h] for i in range(2 * r + 1))
    p = np.pad(out, ((0, 0), (r, r), (0, 0)), mode="edge")
    return sum(k[i] * p[:, i:i + w] for i in range(2 * r + 1)).astype(np.float32)


def _dct_matrix(n=8):
    k = np.arange(n)
    m = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m.astype(np.float32)


_DCT = _dct_matrix()
# JPEG's luminance table (Annex K); chroma uses a flat, coarser step.
_QLUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    np.float32).reshape(8, 8)


def jpeg_artefacts(img, quality):
    """Round trip through JPEG's lossy step: YCbCr, 8x8 DCT, quantisation at the given
    quality (1..100), inverse.  img: (H, W, 3) float in [0, 1]."""
    h, w = img.shape[:2]
    ph, pw = -h % 8, -w % 8
    x = np.pad(img * 255.0, ((0, ph), (0, pw), (0, 0)), mode="edge")
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    ycc = np.stack([0.299 * r + 0.587 * g + 0.114 * b - 128,
                    -0.168736 * r - 0.331264 * g + 0.5 * b,
                    0.5 * r - 0.418688 * g - 0.081312 * b])
    scale = 5000.0 / quality if quality < 50 else 200.0 - 2 * quality
    q = np.maximum(np.floor((_QLUMA * scale + 50) / 100), 1)
    qs = np.stack([q, np.maximum(q * 1.6, 1), np.maximum(q * 1.6, 1)])[:, None, :, None, :]
    H, W = x.shape[:2]
    blocks = ycc.reshape(3, H // 8, 8, W // 8, 8)
    coef = np.einsum("ij,cajbk,lk->caibl", _DCT, blocks, _DCT, optimize=True)
    coef = np.round(coef / qs) * qs
    blocks = np.einsum("ij,caibl,lk->cajbk", _DCT, coef, _DCT, optimize=True)
    y, cb, cr = blocks.reshape(3, H, W)
    y = y + 128
    out = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=-1)
    return (out[:h, :w] / 255.0).astype(np.float32)
