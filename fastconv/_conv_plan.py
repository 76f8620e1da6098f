"""The convolution planner: one frozen geometry, one pure choice of algorithm.

``functional.conv2d`` builds a :class:`ConvGeometry` from the shapes once, asks
:func:`choose_algorithm` which kernel runs it, allocates and calls that kernel; its
backward asks :func:`input_grad_algorithm` and :func:`weight_grad_algorithm`.  Nothing
here touches data or kernels, so every rule can be read, tested and changed in one
place, and a test can force any algorithm that :func:`accepts` a geometry.
"""
import enum
import functools
from typing import NamedTuple

import numpy as np


class Algorithm(enum.Enum):
    """How a convolution's forward runs."""
    WINOGRAD4 = "winograd4"         # F(4x4, 3x3): 36 multiplies per 16 outputs, not 144
    WINOGRAD2 = "winograd2"         # F(2x2, 3x3): 16 per 4 outputs, not 36
    PADDED = "padded"               # a zero-padded copy (stride s: split in s*s phases), so
                                    # im2col rows are contiguous slices
    GATHER = "gather"               # implicit GEMM gathering im2col patches while packing
    TAPS = "taps"                   # small planes: a GEMM per class of output pixels over
                                    # the taps inside the input (padding never multiplied)
    DEPTHWISE_S1 = "depthwise_s1"   # groups == channels, stride 1, float32: padded planes
    DEPTHWISE = "depthwise"         # groups == channels, any stride and dtype: direct loops


class InputGrad(enum.Enum):
    """How d input is computed."""
    FLIPPED = "flipped"     # stride 1: the convolution of dy with flipped weights (planned)
    FOLD = "fold"           # GEMM W^T dy then col2im
    DEPTHWISE_S1 = "depthwise_s1"
    DEPTHWISE = "depthwise"


class WeightGrad(enum.Enum):
    """How d weight is computed."""
    WINOGRAD = "winograd"   # F(2x2, 3x3) over tiles, fixed chunks
    PADDED = "padded"       # GEMM over the forward's padded copy
    DIRECT = "direct"       # 3-wide kernels, stride 1: FMAs straight over the padded copy,
                            # no im2col packed (wgrad_direct.c)
    GATHER = "gather"       # GEMM gathering im2col patches
    TAPS = "taps"           # by border classes, the padding never multiplied (small planes)
    DEPTHWISE_S1 = "depthwise_s1"
    DEPTHWISE = "depthwise"


WINOGRAD = (Algorithm.WINOGRAD4, Algorithm.WINOGRAD2)
TAPS_MIN_BATCH = 8
DEPTHWISE = (Algorithm.DEPTHWISE_S1, Algorithm.DEPTHWISE)


class _Fields(NamedTuple):
    N: int
    C: int
    H: int
    W: int
    M: int              # output channels
    KH: int
    KW: int
    sh: int
    sw: int
    pt: int
    pb: int
    pl: int
    pr: int
    dh: int
    dw: int
    groups: int
    dtype: np.dtype     # compares equal to its name too
    bf16: bool          # float32 arrays, bf16 products (fastconv.autocast)
    OH: int             # derived: the output size
    OW: int


class ConvGeometry(_Fields):
    """Everything about a convolution but its data.  Pads may be negative (a crop: the
    adjoint of a transposed convolution's padding).  OH and OW are derived once."""

    __slots__ = ()

    def __new__(cls, N, C, H, W, M, KH, KW, sh=1, sw=1, pt=0, pb=0, pl=0, pr=0, dh=1, dw=1,
                groups=1, dtype=np.dtype(np.float32), bf16=False):
        OH = (H + pt + pb - dh * (KH - 1) - 1) // sh + 1
        OW = (W + pl + pr - dw * (KW - 1) - 1) // sw + 1
        dtype = np.dtype(dtype)
        if bf16 and dtype != np.float32:
            raise TypeError(f"bf16 products take float32 arrays; got {dtype}")
        return super().__new__(cls, N, C, H, W, M, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw,
                               groups, dtype, bool(bf16), OH, OW)

    @classmethod
    def of(cls, x_shape, w_shape, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1),
           groups=1, dtype=np.float32, bf16=False):
        """From x (N, C, H, W), w (M, C/groups, KH, KW) and the arguments (ints)."""
        N, C, H, W = x_shape
        M, _, KH, KW = w_shape
        pt, pb, pl, pr = pads
        return cls(N, C, H, W, M, KH, KW, stride[0], stride[1], pt, pb, pl, pr, dilation[0],
                   dilation[1], groups, dtype, bf16)

    def _replace(self, **changes):
        fields = self._asdict()
        del fields["OH"], fields["OW"]
        fields.update(changes)
        return ConvGeometry(**fields)

    @property
    def Cg(self):
        """Input channels per group."""
        return self.C // self.groups

    @property
    def pads(self):
        return self.pt, self.pb, self.pl, self.pr

    @property
    def is_depthwise(self):
        return self.groups == self.C and self.C > 1


def accepts(algorithm, g):
    """Whether `algorithm` computes geometry g correctly (speed aside)."""
    f32 = g.dtype == "float32"
    s1 = g.sh == g.sw == 1
    if algorithm in WINOGRAD:
        # under bf16, F(2x2) multiplies its tiles in bf16 (error within 2x a direct bf16
        # convolution's: tests/test_bf16.py); F(4x4) keeps float32 products, as its
        # transforms (entries up to 5 and 8) would amplify bf16's rounding tenfold (2e-2
        # rms), and where the planner picks it, it is faster than F(2x2) in bf16
        return (f32 and (g.KH, g.KW, g.sh, g.sw, g.dh, g.dw) == (3, 3, 1, 1, 1, 1)
                and g.groups == 1 and min(g.pads) >= 0)
    if algorithm is Algorithm.PADDED:
        # stride s > 1 (equal, no dilation): over the input's s*s phases (polyphase)
        return min(g.pads) >= 0 and (s1 or (g.sh == g.sw and g.dh == g.dw == 1))
    if algorithm is Algorithm.DEPTHWISE_S1:
        return f32 and s1 and g.is_depthwise and min(g.pads) >= 0
    if algorithm is Algorithm.DEPTHWISE:
        return g.is_depthwise and min(g.pads) >= 0
    if algorithm is Algorithm.TAPS:
        return g.groups == 1 and not g.bf16 and g.H * g.W < 2 ** 31
    return algorithm is Algorithm.GATHER


def in_range_taps(g):
    """The fraction of a convolution's multiply-adds whose input lies inside the image
    (the rest multiply the padding's zeros)."""
    def taps(O, s, p, d, K, H):
        return sum(1 for o in range(O) for k in range(K) if 0 <= o * s - p + k * d < H)
    return (taps(g.OH, g.sh, g.pt, g.dh, g.KH, g.H) * taps(g.OW, g.sw, g.pl, g.dw, g.KW, g.W)
            / (g.OH * g.OW * g.KH * g.KW))


def choose_algorithm(g, finite=True, prepared=False):
    """The fastest algorithm for g.  finite: the input holds no NaN/Inf (Winograd's
    transforms subtract inputs, so an Inf would become NaN where a direct convolution
    gives +-Inf: non-finite inputs take another path).  prepared: inference with the
    weights' transform kept between calls (a layer's weight cache), so only the tiles'
    work counts."""
    if g.is_depthwise and min(g.pads) >= 0:
        return Algorithm.DEPTHWISE_S1 if accepts(Algorithm.DEPTHWISE_S1, g) else Algorithm.DEPTHWISE
    if prepared and finite and g.C >= 16 and g.M >= 16 and accepts(Algorithm.WINOGRAD2, g):
        # measured at one frame (1 and 2 threads): F(2x2) wins from 16 tiles of 6x6 up
        # (1.3-2.2x on 8-24 planes), loses on 4x4 planes, where its 16/9 larger weights
        # make the call memory-bound; F(4x4) wins on large planes, and from 12x12 up
        # once C*M is large enough that the multiplies dominate its transforms
        side = min(g.OH, g.OW)
        if side >= 6 and _tiles(g, 2) >= 16:
            return _winograd(g, (side >= 32 and _tiles(g, 4) >= 128) or
                             (side >= 12 and g.C * g.M >= 256 * 256))
    # planes under 6x6: the weights' transform (16/9 of them, every call) outweighs the
    # multiplies saved on so few tiles; the batch-stacked GEMM is faster
    # and too few tiles (a single frame's late stages): the same trade, per call; the
    # weights' transform grows with C*M, the saving with the tile count
    if finite and g.C >= 16 and g.M >= 16 and min(g.OH, g.OW) >= 6 and \
            _tiles(g, 2) >= max(192, g.C * g.M // 1024) and accepts(Algorithm.WINOGRAD2, g):
        # F(4x4)'s transforms want long tile rows and enough tiles to fill their vectors:
        # 16 lanes (AVX-512) from 32x32 planes; AVX2's 8 from 20x20 (64-128 channels at
        # N=4-16: 28x28 1.1-1.25x at 1 thread, 1.2-1.25x at 2; 20-24 1.02x and 1.16-1.27x;
        # 14x14, whose tiles overhang by 2 pixels, 0.7-0.86x at 1 thread: F(2x2))
        side, tiles = (20, 128) if running_isa() == "avx2" else (32, 256)
        return _winograd(g, min(g.OH, g.OW) >= side and _tiles(g, 4) >= tiles)
    # small planes where a quarter or more of im2col is padding (a 3x3 on 4x4: 31%, on
    # 2x2: 56%; on 7x7 18% does not pay for the classes): one GEMM per border class skips it; each class needs enough images to fill
    # the GEMM's 48-column panels
    if accepts(Algorithm.TAPS, g) and g.OH * g.OW < 64 and g.N >= TAPS_MIN_BATCH and \
            in_range_taps(g) <= 0.75:
        return Algorithm.TAPS
    # the padded width pays a crop pass over the output: worth it when each output has
    # enough of K (Cg*KH*KW) behind it that the gathers it saves dominate
    # (planes under 64 pixels: the gather path runs the whole batch as one GEMM)
    # strided, over the input's phases: the phases' wider rows and per-image GEMMs lose to
    # the batch-wide gather on 3x3 layers (5-30%) and its weight gradient loses 10%; the
    # 7x7 stem once gained 1.1-1.2x at inference, but since the gather packs whole runs
    # of panels it wins there too (N=1-8, 64-224 planes, 1 and 2 threads: 1.04-1.25x)
    if g.sh > 1:
        return Algorithm.GATHER
    if accepts(Algorithm.PADDED, g) and (g.KH, g.KW) != (1, 1) and g.Cg * g.KH * g.KW >= 64 \
            and g.OH * g.OW >= 64 and not _flat_table_gather(g):
        return Algorithm.PADDED
    return Algorithm.GATHER


def _flat_table_gather(g):
    """Whether the gather packs g's im2col through the tap table as masked contiguous
    slices of each plane, four values a load (gemm_impl.h, gather_table: float32,
    stride 1, rows of at most 8 kept at the input's width): then it beats the padded
    copy and its crop (8x8 planes, N=1-32, 32-256 channels: 1.05-1.2x f+b)."""
    return (g.dtype == "float32" and g.sh == g.sw == 1 and g.OW == g.W and g.OW <= 8
            and g.KH * g.KW <= 64 and g.KH * g.KW * g.OH * g.OW <= 4096)


@functools.lru_cache(maxsize=1)
def running_isa():
    """The ISA path the kernels run ('avx512', 'avx2', 'generic', 'neon'): where vector
    width moves a crossover, the rule says so."""
    from ._kernels import _cpu
    return _cpu.isa_name()


def _tiles(g, t):
    """Winograd F(t x t) output tiles of g, the batch's images together."""
    return g.N * ((g.OH + t - 1) // t) * ((g.OW + t - 1) // t)


def _winograd(g, four):
    """F(4x4) where `four` says its tiles pay and bf16 does not prefer F(2x2), else F(2x2)."""
    return Algorithm.WINOGRAD4 if four and _four_under_bf16(g) and \
        accepts(Algorithm.WINOGRAD4, g) else Algorithm.WINOGRAD2


def _four_under_bf16(g):
    """Whether F(4x4) (float32 products) still beats F(2x2) with bf16 products: under
    bf16 only for few channels on large planes (64@64x64: 1.2x, 64->128@112: 1.06x),
    where the transforms dominate; from 64@32x32 or 128->128 up, F(2x2) in bf16 is
    1.15-1.6x faster (1 and 2 threads, one frame and batches)."""
    return not g.bf16 or (g.C * g.M <= 64 * 128 and min(g.OH, g.OW) >= 64)


def input_grad_algorithm(g, forward):
    """d input of a forward run with `forward`."""
    if forward in DEPTHWISE:
        return InputGrad.DEPTHWISE_S1 if _depthwise_s1_backward(g) else InputGrad.DEPTHWISE
    # the flipped convolution has M = C/G rows: under 8 (a first layer's 3 colour
    # channels) most of each 8-row GEMM tile would be idle, so go through col2im
    # k x k on planes under 64 pixels: the batch-stacked GEMM + col2im, with no flipped
    # copy of the weights to make, unless the forward found a faster kernel than a GEMM,
    # which the flipped convolution will find too (by taps; Winograd: 256@7x7 N=16 1.5x,
    # 512@7x7 1.4x at 2 threads, 0.9-1.15x at 1, AVX2)
    small = g.OH * g.OW < 64 and g.KH * g.KW > 1 and forward not in (Algorithm.TAPS,) + WINOGRAD
    return InputGrad.FLIPPED if g.sh == g.sw == 1 and g.Cg >= 8 and not small \
        else InputGrad.FOLD


def weight_grad_algorithm(g, forward, finite=True):
    """d weight of a forward run with `forward`; finite: dy holds no NaN/Inf."""
    if forward in DEPTHWISE:
        return WeightGrad.DEPTHWISE_S1 if _depthwise_s1_backward(g) else WeightGrad.DEPTHWISE
    wg = _gemm_weight_grad(g, forward, finite)
    # where a GEMM over the padded copy would run, few channels on rows of 28 and more:
    # 4 output channels x 3 taps of FMAs straight over the copy, no im2col packed (each
    # packed value fed only M multiply-adds): 1.4-2.7x the GEMM for 3-32 channels at
    # 64x64-128x128, 1.15-1.2x at 32-64, even at 64@28x28; on 14-16 rows its masked row
    # ends lose (0.7x at 128@16) (AVX2, N=8-16, 1 and 2 threads)
    if wg is WeightGrad.PADDED and accepts_direct_weight_grad(g) and g.OW >= 28 and \
            g.C * g.M <= 128 * 128:
        return WeightGrad.DIRECT
    return wg


def accepts_direct_weight_grad(g):
    """Whether WeightGrad.DIRECT computes g's weight gradient (speed aside)."""
    return (g.dtype == "float32" and not g.bf16 and g.groups == 1 and g.KW == 3
            and g.sh == g.sw == 1 and min(g.pads) >= 0)


def _gemm_weight_grad(g, forward, finite):
    # 64x64 channels on planes under 64x64 (resnet18's first stage), AVX2: Winograd's own
    # gradient, whose transforms now write whole vectors (tile rows of 5-14): 1.05-1.15x
    # over the direct and padded ones at 16-56 (N=8-16, 1 and 2 threads); from 64x64
    # planes, and at 32 channels on either side, the direct one wins
    if forward in WINOGRAD and finite and min(g.C, g.M) >= 64 and g.M * g.C <= 64 * 64 and \
            min(g.OH, g.OW) < 64 and running_isa() == "avx2":
        return WeightGrad.WINOGRAD
    # few channels (C*M <= 64*64) on planes of 16 and more that a Winograd forward ran: the
    # GEMM over a padded copy made here (its transposed packing through registers), 1.2-1.5x
    # Winograd's for 16-32 channels at 64x64-128x128, even (1.0-1.1x) at 64 (AVX2, N=8-16);
    # with more channels or smaller planes Winograd's own gradient wins (128@16x16: 1.5x)
    if forward in WINOGRAD and g.M * g.C <= 64 * 64 and min(g.OH, g.OW) >= 16:
        return WeightGrad.PADDED
    # Winograd F(2x2, 3x3) while the per-chunk partial sums (chunks x 16 x M x C) stay
    # small next to the work
    if forward in WINOGRAD and g.M * g.C <= 128 * 128 and finite:
        return WeightGrad.WINOGRAD
    # by classes too once a corner class (one pixel per image) gives its GEMMs a K of 32
    # images; with fewer, the one im2col GEMM over the whole batch is faster
    if forward is Algorithm.TAPS and g.N >= 32:
        return WeightGrad.TAPS
    # a gathered stride-1 forward (too few taps x channels for a padded one) on large
    # planes: the padded GEMM's rows are contiguous, the gathered transposed im2col is not
    # (3->16 at 128x128: 1.3x); strided and small planes keep the gather (0.3-0.7x)
    # (a 1x1's im2col is its input: nothing to gain)
    if forward is Algorithm.GATHER and g.sh == g.sw == 1 and g.KH * g.KW > 1 and \
            g.OH * g.OW >= 32 * 32 and accepts(Algorithm.PADDED, g):
        return WeightGrad.PADDED
    return WeightGrad.PADDED if forward is Algorithm.PADDED else WeightGrad.GATHER


def _depthwise_s1_backward(g):
    # the padded-plane backward needs the padding inside the dilated kernel's reach
    return (g.dtype == "float32" and g.sh == g.sw == 1
            and g.pt <= g.dh * (g.KH - 1) and g.pl <= g.dw * (g.KW - 1))
