"""Built-in synthetic security-camera scenes: "person" vs "no person".

Every image is rendered on the fly from ``(seed, index)``, so the data set needs no
download, is identical on every machine and thread count, and exists at any
resolution.  A scene is a room, a corridor or an outdoor view (texture, perspective,
furniture), lit unevenly, seen through a cheap camera (blur, sensor noise, JPEG
blocks, sometimes a grey night mode).  "person" scenes hold one to three human
figures in varied poses and clothing, from 0.15 of the frame's height (the far end
of a corridor) to frame-filling, far ones more often, any of them cropped by the
border or partly hidden.  Both classes hold distractors, and "no
person" scenes hold the hard negatives a real camera meets: coats on hooks (with
hats), chairs, plants, pets, lamp posts, doors, bags and shadows.  Sizes (drawn
from one law for persons and objects), colours and positions are shared between the
classes, so no pixel statistic gives the
answer away: a linear model on pixels does poorly, a small CNN does well."""
from typing import NamedTuple

import numpy as np

from . import _draw as D
from ._cached import CachedImages

CLASSES = ("no_person", "person")

_SKIN = np.array([[0.98, 0.83, 0.70], [0.90, 0.70, 0.55], [0.78, 0.57, 0.42],
                  [0.62, 0.43, 0.30], [0.45, 0.30, 0.20], [0.33, 0.22, 0.15]], np.float32)


def _hsv(h, s, v):
    """HSV (each in [0, 1]) to RGB."""
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i],
                    np.float32)


def _cloth(rng):
    """A clothing / object colour: any hue, often muted, sometimes black or white."""
    r = rng.random()
    if r < 0.15:
        return np.full(3, rng.uniform(0.05, 0.2), np.float32)
    if r < 0.25:
        return np.full(3, rng.uniform(0.75, 0.95), np.float32)
    return _hsv(rng.random(), rng.uniform(0.2, 0.9), rng.uniform(0.25, 0.9))


def _skin(rng):
    return np.clip(_SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.9, 1.1), 0, 1)


def _muted(rng, lo=0.35, hi=0.85):
    return _hsv(rng.random(), rng.uniform(0.05, 0.35), rng.uniform(lo, hi))


def _jitter(rng, c, amount=0.08):
    return np.clip(c + rng.uniform(-amount, amount, 3).astype(np.float32), 0, 1)


# ----------------------------------------------------------------- backgrounds

def _room(rng, H, W):
    yy = (np.arange(H, dtype=np.float32)[:, None] + 0.5) / H
    xx = (np.arange(W, dtype=np.float32)[None, :] + 0.5) / W
    horizon = rng.uniform(0.45, 0.7)
    wall, floor = _muted(rng), _muted(rng, 0.2, 0.7)
    img = np.empty((H, W, 3), np.float32)
    img[:] = wall
    img *= (1 + 0.08 * D.smooth_noise(rng, H, W, int(rng.integers(3, 8))))[..., None]
    depth = np.maximum(yy - horizon, 1e-3)                    # floor depth ~ 1 / depth
    tiles = rng.random() < 0.6
    f = np.broadcast_to(floor, (H, W, 3)).copy()
    if tiles:                                                 # perspective floor tiles
        vx = rng.uniform(0.2, 0.8)
        u = (xx - vx) / depth
        v = 1.0 / depth
        k = rng.uniform(2, 5)
        check = ((np.floor(u * k * 0.25) + np.floor(v * k * 0.1)) % 2).astype(np.float32)
        f *= (1 - rng.uniform(0.05, 0.25) * check)[..., None]
    f *= (1 + 0.1 * D.smooth_noise(rng, H, W, 6))[..., None]
    below = (yy > horizon)[..., None]
    img = np.where(below, f, img)
    D.box(img, horizon * H, W / 2, max(H * 0.012, 0.6), W, wall * 0.5)   # skirting board
    for _ in range(rng.integers(0, 3)):                       # windows / pictures
        cx, cy = rng.uniform(0.1, 0.9) * W, rng.uniform(0.1, horizon - 0.15) * H
        hw, hh = rng.uniform(0.05, 0.15) * W, rng.uniform(0.05, 0.15) * H
        D.box(img, cy, cx, hh + 1, hw + 1, wall * 0.6)
        D.box(img, cy, cx, hh, hw, _hsv(rng.uniform(0.5, 0.65), rng.uniform(0, 0.4),
                                        rng.uniform(0.6, 1.0)))
    return img, horizon * H


def _corridor(rng, H, W):
    yy = np.arange(H, dtype=np.float32)[:, None] + 0.5
    xx = np.arange(W, dtype=np.float32)[None, :] + 0.5
    vy, vx = rng.uniform(0.35, 0.55) * H, rng.uniform(0.3, 0.7) * W
    a, b = rng.uniform(0.08, 0.2) * W, rng.uniform(0.08, 0.2) * H
    dx, dy = np.abs(xx - vx) / a, np.abs(yy - vy) / b
    t = np.maximum(dx, dy)
    colors = [_muted(rng) for _ in range(3)] + [_muted(rng, 0.2, 0.6)]
    back, side, ceil, floor = colors
    img = np.empty((H, W, 3), np.float32)
    img[:] = back
    wall = (t >= 1) & (dx >= dy)
    img[wall] = side
    img[(t >= 1) & (dx < dy) & (yy < vy)] = ceil
    fl = (t >= 1) & (dx < dy) & (yy >= vy)
    img[fl] = floor
    depth = 1.0 / np.maximum(t, 1.0)                          # 1 at the back wall
    stripes = (np.floor(depth * rng.uniform(6, 14)) % 2).astype(np.float32)
    img *= (1 - rng.uniform(0.0, 0.15) * stripes * (t >= 1))[..., None]
    img *= (0.75 + 0.35 * (1 - depth))[..., None]             # nearer walls brighter
    img *= (1 + 0.06 * D.smooth_noise(rng, H, W, 5))[..., None]
    for _ in range(rng.integers(0, 3)):                       # ceiling lights
        tt = rng.uniform(1.3, 3)
        D.ellipse(img, vy - b * tt * 0.97, vx + rng.uniform(-0.3, 0.3) * a * tt, b * 0.06 * tt,
                  a * 0.35 * tt, np.full(3, 0.97, np.float32))
    return img, vy + b


def _outdoor(rng, H, W):
    yy = (np.arange(H, dtype=np.float32)[:, None] + 0.5) / H
    horizon = rng.uniform(0.3, 0.6)
    top = _hsv(rng.uniform(0.55, 0.65), rng.uniform(0.1, 0.6), rng.uniform(0.6, 1.0))
    sky = top + (yy / horizon)[..., None] * (np.float32(0.95) - top) * 0.6
    sky = np.broadcast_to(sky, (H, W, 3)).astype(np.float32)
    g = rng.random()
    ground = (_hsv(rng.uniform(0.2, 0.4), rng.uniform(0.3, 0.7), rng.uniform(0.25, 0.6))
              if g < 0.5 else np.full(3, rng.uniform(0.25, 0.55), np.float32))
    gr = np.broadcast_to(ground, (H, W, 3)) * (1 + 0.15 * D.smooth_noise(
        rng, H, W, int(rng.integers(6, 14))))[..., None]
    img = np.where((yy > horizon)[..., None], gr, sky).astype(np.float32)
    x = 0.0
    while x < W:                                              # buildings on the horizon
        w = rng.uniform(0.1, 0.35) * W
        if rng.random() < 0.7:
            h = rng.uniform(0.05, 0.35) * H
            D.box(img, horizon * H - h / 2, x + w / 2, h / 2, w / 2, _muted(rng, 0.3, 0.8))
        x += w
    for _ in range(rng.integers(0, 4)):                       # trees
        tx, ts = rng.uniform(0, W), rng.uniform(0.15, 0.5) * H
        by = horizon * H + rng.uniform(0, 0.1) * H
        D.capsule(img, by, tx, by - ts * 0.6, tx, ts * 0.04, np.array([0.35, 0.25, 0.15],
                                                                        np.float32))
        D.ellipse(img, by - ts * 0.75, tx, ts * 0.3, ts * 0.25,
                  _hsv(rng.uniform(0.22, 0.4), rng.uniform(0.4, 0.8), rng.uniform(0.2, 0.5)))
    if g >= 0.5 and rng.random() < 0.5:                        # a road marking
        D.box(img, H * (horizon + 1) / 2, W * rng.uniform(0.2, 0.8), H * 0.3, W * 0.008,
              np.full(3, 0.9, np.float32), angle=rng.uniform(-0.5, 0.5))
    return img, horizon * H


# --------------------------------------------------------------------- figures

def _person(rng, img, base, fx, h):
    """A standing / walking / waving human figure, feet at (base, fx), height h px."""
    pose = rng.choice(["stand", "walk", "wave", "side", "walk"])
    lean = rng.normal(0, 0.04)
    skin, hair, shirt = _skin(rng), _cloth(rng) * 0.5, _cloth(rng)
    pants, shoes = _cloth(rng) * rng.uniform(0.5, 1.0), _cloth(rng) * 0.5
    side = pose == "side"
    top = base - h

    def P(fy, dx):                        # point at height fraction fy, offset dx * h
        y = top + fy * h
        return y, fx + dx * h + lean * (base - y)

    def limb(j, angle, l1, l2, bend, r1, r2, color):
        y0, x0 = j
        y1, x1 = y0 + np.cos(angle) * l1 * h, x0 + np.sin(angle) * l1 * h
        a2 = angle + bend
        y2, x2 = y1 + np.cos(a2) * l2 * h, x1 + np.sin(a2) * l2 * h
        D.capsule(img, y0, x0, y1, x1, r1 * h, color)
        D.capsule(img, y1, x1, y2, x2, r2 * h, color)
        return y2, x2

    sw = 0.06 if side else rng.uniform(0.09, 0.12)
    hw = 0.055 if side else rng.uniform(0.07, 0.095)
    if pose in ("walk", "side"):
        s = rng.uniform(0.15, 0.5)
        legs, arms = (s, -s), (-s * 0.8, s * 0.8)
    else:
        legs = (rng.uniform(-0.15, 0.02), rng.uniform(-0.02, 0.15))
        arms = (rng.uniform(-0.4, -0.05), rng.uniform(0.05, 0.4))
    if pose == "wave":
        k = rng.integers(2)
        arms = tuple((np.pi - rng.uniform(0.3, 1.2)) * (1 if i == 1 else -1) if i == k else a
                     for i, a in enumerate(arms))
    shoulder = [P(0.2, -sw + 0.02), P(0.2, sw - 0.02)]
    hip = [P(0.5, -hw + 0.035), P(0.5, hw - 0.035)]
    order = [0, 1] if rng.random() < 0.5 else [1, 0]
    far, near = order
    # angles are measured from "straight down", positive towards +x
    arm = lambda i: limb(shoulder[i], -arms[i], 0.16, 0.15, -arms[i] * 0.3 * rng.random(),
                         0.032, 0.027, shirt * (0.85 if i == far else 1.0))
    hand = arm(far)
    D.ellipse(img, hand[0], hand[1], 0.026 * h, 0.022 * h, skin)
    for i in order:
        foot = limb(hip[i], -legs[i], 0.25, 0.24, rng.uniform(0, 0.3) * np.sign(legs[i] + 1e-3),
                    0.047, 0.038, pants * (0.85 if i == far else 1.0))
        D.ellipse(img, foot[0], foot[1] + 0.02 * h * (1 if i else -1), 0.02 * h, 0.045 * h, shoes)
    yt, xt = P(0.35, 0)
    D.trapezoid(img, top + 0.18 * h, top + 0.54 * h, xt, sw * h, hw * h, shirt)
    hand = arm(near)
    D.ellipse(img, hand[0], hand[1], 0.026 * h, 0.022 * h, skin)
    ny, nx = P(0.15, 0)
    D.capsule(img, ny - 0.03 * h, nx, ny + 0.03 * h, nx, 0.025 * h, skin)
    hy, hx = P(0.075, 0)
    D.ellipse(img, hy, hx, 0.07 * h, 0.055 * h, skin)
    r = rng.random()
    if r < 0.7:                                               # hair
        D.ellipse(img, hy - 0.025 * h, hx + (0.01 * h if side else 0), 0.05 * h, 0.058 * h, hair)
    elif r < 0.85:                                            # cap / hat
        D.box(img, hy - 0.045 * h, hx, 0.028 * h, 0.062 * h, _cloth(rng), round_=0.02 * h)
    if rng.random() < 0.2:                                    # a bag or backpack
        D.box(img, top + 0.42 * h, fx + rng.choice([-1, 1]) * sw * h, 0.08 * h, 0.05 * h,
              _cloth(rng), round_=0.02 * h)


def _coat(rng, img, base, fx, h):
    """A coat (often with a hat above it) hanging on a hook: a person's torso and arms
    without a body."""
    hook = base - h * rng.uniform(0.75, 0.95)
    c = _cloth(rng)
    D.capsule(img, hook - 0.03 * h, fx, hook + 0.02 * h, fx, 0.012 * h, np.full(3, 0.2, np.float32))
    length = rng.uniform(0.35, 0.6)
    sw = rng.uniform(0.07, 0.11)
    D.trapezoid(img, hook + 0.02 * h, hook + length * h, fx, sw * h, (sw + 0.03) * h, c)
    for s in (-1, 1):
        D.capsule(img, hook + 0.05 * h, fx + s * sw * h, hook + length * 0.85 * h,
                  fx + s * (sw + 0.01) * h, 0.028 * h, c * 0.85)
    if rng.random() < 0.3:                                    # hat or scarf on top
        D.ellipse(img, hook - 0.03 * h, fx, 0.04 * h, 0.07 * h, _cloth(rng))
    if rng.random() < 0.3:
        _coat(rng, img, base, fx + rng.choice([-1, 1]) * 0.25 * h, h)


def _chair(rng, img, base, fx, h):
    c = _cloth(rng) if rng.random() < 0.5 else np.array([0.45, 0.3, 0.15], np.float32) * \
        rng.uniform(0.6, 1.4)
    s = h * rng.uniform(0.4, 0.55)
    seat = base - s * 0.5
    w = s * rng.uniform(0.35, 0.5)
    for dx in (-w * 0.9, w * 0.9):
        D.capsule(img, seat, fx + dx, base, fx + dx * 1.05, s * 0.03, c * 0.7)
    D.box(img, seat, fx, s * 0.05, w, c)
    d = rng.choice([-1, 1]) * w * 0.9
    D.capsule(img, seat, fx + d, seat - s * 0.55, fx + d * 1.1, s * 0.035, c * 0.8)
    D.box(img, seat - s * 0.4, fx + d * 0.6, s * 0.15, w * 0.5, c)


def _plant(rng, img, base, fx, h):
    s = h * rng.uniform(0.4, 1.0)
    pot = _cloth(rng)
    D.trapezoid(img, base - 0.2 * s, base, fx, 0.12 * s, 0.08 * s, pot)
    green = _hsv(rng.uniform(0.2, 0.42), rng.uniform(0.4, 0.9), rng.uniform(0.2, 0.6))
    for _ in range(rng.integers(5, 12)):
        a = rng.uniform(-1.2, 1.2)
        l = rng.uniform(0.4, 0.9) * s
        ty, tx = base - 0.2 * s - np.cos(a) * l, fx + np.sin(a) * l * 0.6
        D.capsule(img, base - 0.2 * s, fx, ty, tx, 0.01 * s + 0.3, green * 0.7)
        D.ellipse(img, ty, tx, 0.12 * s, 0.04 * s, _jitter(rng, green), angle=a + np.pi / 2)


def _pet(rng, img, base, fx, h):
    s = h * rng.uniform(0.25, 0.45)
    fur = _cloth(rng) * 0.6 + np.float32(0.3) * _SKIN[rng.integers(len(_SKIN))]
    d = rng.choice([-1, 1])
    by = base - 0.35 * s
    for dx in (-0.35, -0.2, 0.2, 0.35):
        D.capsule(img, by, fx + dx * s, base, fx + dx * s, 0.05 * s, fur * 0.8)
    D.ellipse(img, by, fx, 0.17 * s, 0.45 * s, fur)
    D.capsule(img, by - 0.05 * s, fx - d * 0.4 * s, by - 0.35 * s, fx - d * 0.6 * s,
              0.04 * s, fur)
    hy, hx = by - 0.25 * s, fx + d * 0.5 * s
    D.ellipse(img, hy, hx, 0.14 * s, 0.15 * s, fur)
    for e in (-0.07, 0.07):                                   # ears
        D.ellipse(img, hy - 0.13 * s, hx + e * s, 0.06 * s, 0.035 * s, fur * 0.8)


def _pole(rng, img, base, fx, h):
    """Lamp post, coat stand or floor lamp: tall and thin, with a head-like top."""
    s = h * rng.uniform(0.8, 1.4)
    c = _cloth(rng) * 0.7
    D.capsule(img, base, fx, base - s, fx, max(0.02 * h, 0.6), c)
    D.box(img, base - 0.01 * s, fx, 0.015 * s, 0.07 * s, c)
    r = rng.random()
    top = np.full(3, rng.uniform(0.6, 1.0), np.float32)
    if r < 0.4:
        D.ellipse(img, base - s, fx, 0.06 * h, 0.06 * h, top)
    elif r < 0.7:
        D.trapezoid(img, base - s - 0.06 * h, base - s + 0.04 * h, fx, 0.04 * h, 0.1 * h,
                    _jitter(rng, top))
    else:                                                     # coat stand arms
        for sgn in (-1, 1):
            D.capsule(img, base - 0.9 * s, fx, base - 0.97 * s, fx + sgn * 0.08 * h, 0.012 * h, c)


def _door(rng, img, base, fx, h):
    s = h * rng.uniform(0.9, 1.2)
    w = s * rng.uniform(0.18, 0.25)
    c = _cloth(rng) if rng.random() < 0.5 else _muted(rng, 0.3, 0.8)
    D.box(img, base - s / 2, fx, s / 2 + 1, w + 1, c * 0.6)
    D.box(img, base - s / 2, fx, s / 2, w, c)
    if rng.random() < 0.5:
        D.box(img, base - s * 0.72, fx, s * 0.12, w * 0.6, c * 0.9)
        D.box(img, base - s * 0.28, fx, s * 0.12, w * 0.6, c * 0.9)
    D.ellipse(img, base - s * 0.48, fx + w * 0.75, 0.02 * s, 0.02 * s, np.full(3, 0.8, np.float32))


def _bag(rng, img, base, fx, h):
    s = h * rng.uniform(0.2, 0.4)
    c = _cloth(rng)
    D.box(img, base - s / 2, fx, s / 2, s * 0.35, c, round_=0.1 * s)
    D.capsule(img, base - s, fx - 0.2 * s, base - s, fx + 0.2 * s, 0.04 * s, c * 0.7)


def _shadow(rng, img, base, fx, h):
    """A soft cast shadow: a long dark ellipse on the floor, or a tall one on a wall."""
    ang = rng.uniform(-1.3, 1.3)
    ry, rx = h * rng.uniform(0.25, 0.55), h * rng.uniform(0.05, 0.12)
    cy, cx = base - ry * np.cos(ang) * (0.5 if rng.random() < 0.5 else 1), fx
    darkness = rng.uniform(0.4, 0.75)
    c, s = np.cos(ang), np.sin(ang)

    def mask(y, x):
        u, v = (x - cx) * c + (y - cy) * s, -(x - cx) * s + (y - cy) * c
        return np.clip(1.5 - np.sqrt((u / rx) ** 2 + (v / ry) ** 2) * 1.5, 0, 1)

    D.shade(img, mask, darkness)


_OBJECTS = [_coat, _chair, _plant, _pet, _pole, _door, _bag, _shadow]
_HARD = [_coat, _plant, _pet, _pole, _door, _shadow]


def _occluder(rng, img, base, fx, h, W):
    """Furniture, a counter or a car bonnet hiding the lower part of a figure."""
    cover = rng.uniform(0.15, 0.5) * h
    w = min(rng.uniform(0.8, 3.0) * h, W)         # a far counter looks small too
    cx = fx + rng.uniform(-0.2, 0.2) * w
    c = _muted(rng, 0.2, 0.8)
    D.box(img, base + 0.05 * h - cover / 2, cx, cover / 2 + 0.05 * h, w / 2, c, round_=0.03 * h)


class Scene(NamedTuple):
    """A scene and what it shows.  K is the number of persons that stay visible, far
    to near (the order they were drawn); a "no person" scene has K = 0."""

    image: np.ndarray      # (H, W, 3): render_scene's float in [0, 1], or a data set's uint8
    label: int             # 1 for "person" scenes (K may be 0 if every figure is hidden)
    mask: np.ndarray       # bool (H, W): the person pixels of the final image
    instances: np.ndarray  # uint8 (H, W): 0 background, k for the pixels of person k (1..K)
    boxes: np.ndarray      # int32 (K, 4): y0, x0, y1, x1 of person k's pixels (y1, x1 exclusive)
    heights: np.ndarray    # float32 (K,): the figure's full height / H (head to feet, also
    #                        where the border or something in front cuts it; up to 1.05)
    cropped: np.ndarray    # bool (K,): the figure reaches the frame's edge (cut by the border)
    occluded: np.ndarray   # bool (K,): more than 5 % of it is hidden by what is in front
    visible: np.ndarray    # float32 (K,): the part of its pixels still visible, in (0, 1]


PERSON_HEIGHTS = (0.15, 1.05)
"""The range of figure heights (a fraction of the frame's height) the scenes draw by
default: from the far end of a corridor to right in front of the lens."""


def _check_heights(heights, who):
    try:
        lo, hi = (float(v) for v in heights)
    except (TypeError, ValueError):
        raise ValueError(f"{who}: heights must be a pair (lo, hi), got {heights!r}") from None
    if not 0.05 <= lo <= hi <= 1.05:
        raise ValueError(f"{who}: heights must satisfy 0.05 <= lo <= hi <= 1.05 (fractions of "
                         f"the frame's height), got {heights!r}")
    return lo, hi


def render_scene(rng, size, person, truth=False, heights=PERSON_HEIGHTS):
    """One scene as float (H, W, 3) in [0, 1] (float32, or float64 when the camera
    neither blurs nor compresses).  size: int or (H, W); person: bool.

    heights: (lo, hi), the range of figure heights as fractions of H.  Persons and
    the things that stand in for them (coats, poles, doors, plants, pets, shadows)
    draw their size from the same log-uniform law on it (far figures more often, as a
    camera sees them) and stand where that size puts them on the floor (the smaller,
    the nearer the horizon), so that size and position alone predict nothing.  Any
    figure may be cut by the frame's edge or half hidden behind furniture.

    ``truth=True`` returns a ``Scene`` instead: the same image, bit for bit, and the
    same draws from ``rng``, with each person's mask and box.  The mask is where the
    persons' paint makes up at least half of a pixel's colour in the final image:
    after nearer figures, objects and occluders painted over them, and blurred with
    the image when the camera blurs (a linear mix, so the share stays exact; light,
    noise and JPEG blocks move nothing).  Shadows falling on a person keep it a person;
    what a figure carries (a bag) is part of it."""
    H, W = (size, size) if np.isscalar(size) else size
    lo_h, hi_h = _check_heights(heights, "render_scene")
    kind = rng.integers(3)
    img, horizon = (_room, _corridor, _outdoor)[kind](rng, H, W)
    horizon = min(horizon, 0.8 * H)
    items = []                                    # (base, fx, height, kind), far first

    def draw_height():
        return H * np.exp(rng.uniform(np.log(lo_h), np.log(hi_h)))

    def place():
        h = draw_height()
        # on a floor seen from above head height, feet lie lower in the frame the
        # nearer (taller) the figure
        base = horizon + rng.uniform(0.25, 1.1) * h
        hi = H + (0.25 * h if h > 0.8 * H else 0.05 * h)      # big figures: legs cropped
        base = min(max(base, 0.95 * h), hi)                   # the head stays in frame
        fx = rng.uniform(0.0, 1.0) * W if rng.random() < 0.15 else rng.uniform(0.1, 0.9) * W
        return base, fx, h

    n_people = 0
    if person:
        n_people = 1 + (rng.random() < 0.25) + (rng.random() < 0.08)
        for _ in range(n_people):
            items.append((*place(), _person))
    n_obj = rng.integers(1, 4) if not person else rng.integers(0, 3)
    for i in range(n_obj):
        fn = _HARD[rng.integers(len(_HARD))] if (not person and i == 0) else \
            _OBJECTS[rng.integers(len(_OBJECTS))]
        if fn in (_coat, _door):                  # on a wall: base near the horizon
            h = draw_height()
            items.append((min(horizon + rng.uniform(0, 0.3) * h, H), rng.uniform(0.05, 0.95) * W,
                          h, fn))
        else:
            items.append((*place(), fn))
    items.sort(key=lambda t: (t[0], t[1]))
    shares = D.Shares(n_people, H, W) if truth else None
    heights = []
    with D.tracking(shares):
        for base, fx, h, fn in items:
            if shares is not None:
                shares.owner = len(heights) if fn is _person else None
            fn(rng, img, base, fx, h)
            if fn is _person and shares is not None:
                shares.keep(len(heights))         # "visible" compares with this
                shares.owner = None               # the occluder hides, it is not the person
                heights.append(h / H)
            if fn not in (_coat, _door, _shadow) and rng.random() < 0.12:
                _occluder(rng, img, base, fx, h, W)
    if not truth:
        return _camera(rng, img)[0]
    # the blur mixes the shares like the colours: blur both at once
    img, share = _camera(rng, img, np.concatenate([shares.share, shares.drawn]))
    return _truth(img, int(bool(person)), share[:n_people], share[n_people:], heights)


def _truth(img, label, share, alone, heights):
    """The Scene from the persons' final shares and their shares as drawn (each
    (n, H, W)): masks at a share >= 0.5, boxes of the visible pixels; persons with no
    pixel left are dropped."""
    H, W = img.shape[:2]
    mask = share.sum(axis=0) >= 0.5 if len(share) else np.zeros((H, W), bool)
    owner = share.argmax(axis=0) if len(share) else np.zeros((H, W), np.int64)
    instances = np.zeros((H, W), np.uint8)
    boxes, kept, cropped, visible = [], [], [], []
    for k in range(len(share)):
        ys, xs = np.nonzero(mask & (owner == k))
        if len(ys) == 0:
            continue
        instances[ys, xs] = len(boxes) + 1
        boxes.append((ys.min(), xs.min(), ys.max() + 1, xs.max() + 1))
        kept.append(heights[k])
        drawn = alone[k] >= 0.5
        cropped.append(bool(drawn[0].any() or drawn[-1].any() or drawn[:, 0].any()
                            or drawn[:, -1].any()))
        visible.append(min(len(ys) / max(int(drawn.sum()), 1), 1.0))
    visible = np.array(visible, np.float32)
    return Scene(img, label, mask, instances, np.array(boxes, np.int32).reshape(-1, 4),
                 np.array(kept, np.float32), np.array(cropped, bool), visible < 0.95, visible)


def _camera(rng, img, share=None):
    """Uneven light, colour cast, night mode, blur, sensor noise and JPEG blocks.
    ``share`` ((k, H, W) or None): per-pixel shares that the blur mixes like the image.
    Returns (image, share)."""
    H, W = img.shape[:2]
    yy = np.linspace(-1, 1, H, dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, W, dtype=np.float32)[None, :]
    a = rng.uniform(0, 2 * np.pi)
    light = rng.uniform(0.75, 1.25) * (1 + rng.uniform(0, 0.3) * (np.cos(a) * xx + np.sin(a) * yy))
    if rng.random() < 0.3:                                    # vignette
        light = light * (1 - rng.uniform(0.1, 0.4) * (xx ** 2 + yy ** 2) / 2)
    img = img * light[..., None] * rng.uniform(0.88, 1.12, 3).astype(np.float32)
    if rng.random() < 0.05:                                   # infrared night mode
        img = np.repeat(img.mean(axis=2, keepdims=True), 3, axis=2) * rng.uniform(0.6, 1.1)
    if rng.random() < 0.4:
        sigma = rng.uniform(0.3, 0.8) * H / 64
        img = D.gaussian_blur(img, sigma)
        if share is not None and len(share):
            share = D.gaussian_blur(share.transpose(1, 2, 0), sigma).transpose(2, 0, 1)
    img = img + rng.normal(0, rng.uniform(0.004, 0.025), img.shape).astype(np.float32)
    img = np.clip(img, 0, 1)
    if rng.random() < 0.5:
        img = D.jpeg_artefacts(img, rng.uniform(35, 90))
    return np.clip(img, 0, 1), share


class SyntheticCameraDataset(CachedImages):
    """The built-in "person / no person" data set: ``n`` scenes of ``image_size``
    pixels, rendered deterministically from ``seed``; persons and the objects that
    stand in for them are drawn at ``heights`` (a (lo, hi) range of fractions of the
    frame's height; ``(0.15, 0.3)`` makes a far-end test set).

    ``ds[i]`` -> (uint8 image (H, W, 3), label); ``ds.images(idx)`` -> uint8
    (len(idx), H, W, 3); ``ds.labels`` -> int64 (n,).  The classes are balanced
    exactly: each aligned pair (2j, 2j+1) holds one scene of each, in seeded order.
    Scene i depends only on (seed, i): not on n, order or threads, so any aligned
    slice of indices is a balanced data set of its own.  Rendered images are kept (``cache``) when
    they fit in ``max_cache_bytes``, so later epochs cost nothing.

    Masks and boxes: ``ds.scene(i)`` -> ``Scene`` (uint8 image, label, person mask
    (H, W), instances, boxes...; see render_scene), ``ds.masks(idx)`` -> bool
    (len(idx), H, W).  They work on any data set, and the images stay the same bits;
    ``with_masks=True`` records them whenever an image is rendered and caches them
    beside it (2 bytes a pixel more), so masks and images together cost one render."""

    classes = CLASSES

    def __init__(self, n=8000, image_size=64, seed=0, cache=True, max_cache_bytes=1 << 30,
                 with_masks=False, heights=PERSON_HEIGHTS):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"SyntheticCameraDataset: n must be a positive int, got {n!r}")
        hw = (image_size, image_size) if np.isscalar(image_size) else tuple(image_size)
        if len(hw) != 2 or any(isinstance(s, bool) or not isinstance(s, (int, np.integer))
                               or s < 8 for s in hw):
            raise ValueError("SyntheticCameraDataset: image_size must be an int >= 8 or a "
                             f"pair of them, got {image_size!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"SyntheticCameraDataset: seed must be an int >= 0, got {seed!r}")
        self.n, self.image_size, self.seed = int(n), (int(hw[0]), int(hw[1])), int(seed)
        self.heights = _check_heights(heights, "SyntheticCameraDataset")
        self.with_masks = bool(with_masks)
        # pairs (2j, 2j+1) hold one scene of each class in random order: balanced
        # exactly, and label i does not depend on n (a prefix of the same stream)
        first = np.random.default_rng([self.seed, 0x1abe1]).random((self.n + 1) // 2) < 0.5
        self.labels = np.stack([first, ~first], axis=1).reshape(-1)[:self.n].astype(np.int64)
        self._init_cache(cache, max_cache_bytes, 2 * hw[0] * hw[1] if self.with_masks else 0)
        # each scene's truth without its image (that is in the image cache)
        self._truth = [None] * self.n if self.with_masks and self._cache is not None else None

    def __len__(self):
        return self.n

    def _rng(self, i):
        return np.random.default_rng([self.seed, i, 0x5ce7e])

    def render(self, i):
        """Scene i as float32 (H, W, 3) in [0, 1] (not cached)."""
        if not -self.n <= i < self.n:
            raise IndexError(f"SyntheticCameraDataset: index {i} out of range for {self.n} images")
        i = int(i) % self.n
        return render_scene(self._rng(i), self.image_size, bool(self.labels[i]),
                            heights=self.heights)

    def _render_truth(self, i):
        """Scene i with a uint8 image, rendered now; kept when with_masks caches."""
        s = render_scene(self._rng(i), self.image_size, bool(self.labels[i]), truth=True,
                         heights=self.heights)
        s = s._replace(image=(s.image * 255 + 0.5).astype(np.uint8))
        if self._truth is not None:
            self._truth[i] = s._replace(image=None)
        return s

    def _load(self, i):
        if self.with_masks:
            return self._render_truth(i).image
        return (self.render(i) * 255 + 0.5).astype(np.uint8)

    def scene(self, i):
        """Scene i with its truth: a ``Scene`` (uint8 image (H, W, 3), label, bool mask
        (H, W), uint8 instances (H, W), int32 boxes (K, 4) y0, x0, y1, x1, heights,
        cropped, occluded, visible (K,)); the image equals ``ds.image(i)``."""
        i = self._index(i)
        if self._truth is not None and self._truth[i] is not None:
            return self._truth[i]._replace(image=self.image(i))
        s = self._render_truth(i)
        if self._cache is not None:                 # the image costs nothing more
            self._cache[i], self._done[i] = s.image, True
        return s

    def mask(self, i):
        """The person mask of scene i: bool (H, W)."""
        return self.scene(i).mask

    def masks(self, indices):
        """Person masks: bool (len(indices), H, W)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        out = np.empty((len(idx), *self.image_size), bool)
        for k, i in enumerate(idx):
            out[k] = self.scene(i).mask
        return out

    def __repr__(self):
        return (f"SyntheticCameraDataset(n={self.n}, image_size={self.image_size}, "
                f"seed={self.seed}{', with_masks=True' if self.with_masks else ''}"
                f"{'' if self.heights == PERSON_HEIGHTS else f', heights={self.heights}'})")
