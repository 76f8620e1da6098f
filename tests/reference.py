"""The readable reference tier: convolution, pooling and BatchNorm, forward and
backward, as naive NumPy loops in float64 (CS231n style: one tap or one window at a
time, nothing clever).  Slow and obviously right; the tests hold the compiled kernels
to it without torch.  Shapes are NCHW; ``pads`` is (top, bottom, left, right)."""
import numpy as np


def _taps(k, d, s, out):
    """(tap index, first input row, slice of input rows) for each tap along one axis."""
    return [(i, slice(i * d, i * d + s * (out - 1) + 1, s)) for i in range(k)]


def conv2d(x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """y (N, M, OH, OW) of x (N, C, H, W) and w (M, C/groups, KH, KW)."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    N, C, H, W = x.shape
    M, Cg, KH, KW = w.shape
    (sh, sw), (dh, dw), (pt, pb, pl, pr) = stride, dilation, pads
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    OH = (H + pt + pb - dh * (KH - 1) - 1) // sh + 1
    OW = (W + pl + pr - dw * (KW - 1) - 1) // sw + 1
    Mg = M // groups
    y = np.zeros((N, M, OH, OW))
    for g in range(groups):
        xs, ms = slice(g * Cg, (g + 1) * Cg), slice(g * Mg, (g + 1) * Mg)
        for i, rows in _taps(KH, dh, sh, OH):
            for j, cols in _taps(KW, dw, sw, OW):
                patch = xp[:, xs, rows, cols]                       # (N, Cg, OH, OW)
                y[:, ms] += np.einsum("nchw,mc->nmhw", patch, w[ms, :, i, j])
    if b is not None:
        y += np.asarray(b, np.float64).reshape(1, M, 1, 1)
    return y


def conv2d_backward(x, w, gy, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """(dx, dw, db) of conv2d: the same tap loop, each tap's products scattered back."""
    x, w, gy = (np.asarray(a, np.float64) for a in (x, w, gy))
    N, C, H, W = x.shape
    M, Cg, KH, KW = w.shape
    (sh, sw), (dh, dw_), (pt, pb, pl, pr) = stride, dilation, pads
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    gxp = np.zeros_like(xp)
    gw = np.zeros_like(w)
    OH, OW = gy.shape[2:]
    Mg = M // groups
    for g in range(groups):
        xs, ms = slice(g * Cg, (g + 1) * Cg), slice(g * Mg, (g + 1) * Mg)
        for i, rows in _taps(KH, dh, sh, OH):
            for j, cols in _taps(KW, dw_, sw, OW):
                gw[ms, :, i, j] += np.einsum("nmhw,nchw->mc", gy[:, ms], xp[:, xs, rows, cols])
                gxp[:, xs, rows, cols] += np.einsum("nmhw,mc->nchw", gy[:, ms], w[ms, :, i, j])
    gx = gxp[:, :, pt:pt + H, pl:pl + W]
    return gx, gw, gy.sum(axis=(0, 2, 3))


def conv_transpose2d(x, w, b=None, stride=(1, 1), padding=(0, 0), output_padding=(0, 0),
                     dilation=(1, 1), groups=1):
    """The adjoint of conv2d: x (N, C_in, H, W), w (C_in, C_out/groups, KH, KW)."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    N, C, H, W = x.shape
    _, Mg, KH, KW = w.shape
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
    OH = (H - 1) * sh - 2 * ph + dh * (KH - 1) + oph + 1
    OW = (W - 1) * sw - 2 * pw + dw * (KW - 1) + opw + 1
    # scatter every input pixel's weighted kernel onto a canvas big enough for all taps
    canvas = np.zeros((N, Mg * groups, OH + 2 * ph + KH * dh + sh, OW + 2 * pw + KW * dw + sw))
    Cg = C // groups
    for g in range(groups):
        xs, ms = slice(g * Cg, (g + 1) * Cg), slice(g * Mg, (g + 1) * Mg)
        for i, rows in _taps(KH, dh, sh, H):
            for j, cols in _taps(KW, dw, sw, W):
                canvas[:, ms, rows, cols] += np.einsum("nchw,cm->nmhw", x[:, xs], w[xs, :, i, j])
    y = canvas[:, :, ph:ph + OH, pw:pw + OW]
    if b is not None:
        y = y + np.asarray(b, np.float64).reshape(1, -1, 1, 1)
    return y


def _pool_windows(H, W, k, s, p, d, ceil_mode):
    """Each output's (row taps, column taps) inside the input, torch's output size."""
    def size(n, k, s, p, d):
        span = n + 2 * p - d * (k - 1) - 1
        out = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (out - 1) * s >= n + p:     # the last window must start inside
            out -= 1
        return out
    OH, OW = size(H, k[0], s[0], p[0], d[0]), size(W, k[1], s[1], p[1], d[1])
    rows = [[oh * s[0] - p[0] + i * d[0] for i in range(k[0])
             if 0 <= oh * s[0] - p[0] + i * d[0] < H] for oh in range(OH)]
    cols = [[ow * s[1] - p[1] + j * d[1] for j in range(k[1])
             if 0 <= ow * s[1] - p[1] + j * d[1] < W] for ow in range(OW)]
    return rows, cols


def max_pool2d(x, k, s, p=(0, 0), d=(1, 1), ceil_mode=False):
    """(y, dx_of) where dx_of(gy) routes each output's gradient to its window's first
    maximum; a window wholly in padding gives -inf and no gradient."""
    x = np.asarray(x, np.float64)
    N, C, H, W = x.shape
    rows, cols = _pool_windows(H, W, k, s, p, d, ceil_mode)
    y = np.full((N, C, len(rows), len(cols)), -np.inf)
    arg = {}
    for oh, r in enumerate(rows):
        for ow, c in enumerate(cols):
            for n in range(N):
                for ch in range(C):
                    taps = [(x[n, ch, i, j], i, j) for i in r for j in c]
                    if taps:
                        best = max(taps, key=lambda t: t[0])   # first maximum in scan order
                        y[n, ch, oh, ow] = best[0]
                        arg[n, ch, oh, ow] = best[1:]

    def dx_of(gy):
        gx = np.zeros_like(x)
        for (n, ch, oh, ow), (i, j) in arg.items():
            gx[n, ch, i, j] += gy[n, ch, oh, ow]
        return gx
    return y, dx_of


def avg_pool2d(x, k, s, p=(0, 0), ceil_mode=False, count_include_pad=True, divisor=None):
    """(y, dx_of): torch's divisor - the window clipped to the padded input when
    count_include_pad, to the input otherwise, unless divisor is given."""
    x = np.asarray(x, np.float64)
    N, C, H, W = x.shape
    rows, cols = _pool_windows(H, W, k, s, p, (1, 1), ceil_mode)
    y = np.zeros((N, C, len(rows), len(cols)))
    div = np.zeros((len(rows), len(cols)))
    for oh, r in enumerate(rows):
        for ow, c in enumerate(cols):
            if divisor:
                div[oh, ow] = divisor
            elif count_include_pad:
                h0, w0 = oh * s[0] - p[0], ow * s[1] - p[1]
                div[oh, ow] = ((min(h0 + k[0], H + p[0]) - h0) * (min(w0 + k[1], W + p[1]) - w0))
            else:
                div[oh, ow] = len(r) * len(c)
            if r and c:
                y[:, :, oh, ow] = x[:, :, r][:, :, :, c].sum(axis=(2, 3)) / div[oh, ow]

    def dx_of(gy):
        gx = np.zeros_like(x)
        for oh, r in enumerate(rows):
            for ow, c in enumerate(cols):
                for i in r:
                    for j in c:
                        gx[:, :, i, j] += gy[:, :, oh, ow] / div[oh, ow]
        return gx
    return y, dx_of


def batch_norm_train(x, gamma, beta, eps):
    """(y, mean, biased var, dx_of): batch statistics over (N, H, W) per channel;
    dx_of(gy) gives (dx, dgamma, dbeta)."""
    x = np.asarray(x, np.float64)
    ax = (0, 2, 3)
    mean = x.mean(axis=ax, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=ax, keepdims=True)
    xhat = (x - mean) / np.sqrt(var + eps)
    g = np.asarray(gamma, np.float64).reshape(1, -1, 1, 1)
    y = g * xhat + np.asarray(beta, np.float64).reshape(1, -1, 1, 1)

    def dx_of(gy):
        n = x.size / x.shape[1]
        dxhat = gy * g
        dx = (dxhat - dxhat.mean(axis=ax, keepdims=True)
              - xhat * (dxhat * xhat).sum(axis=ax, keepdims=True) / n) / np.sqrt(var + eps)
        return dx, (gy * xhat).sum(axis=ax), gy.sum(axis=ax)
    return y, mean.ravel(), var.ravel(), dx_of
