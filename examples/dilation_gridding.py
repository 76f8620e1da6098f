"""Gridding: three 3x3 layers with dilation 2 reach only every other input pixel; mixed
dilations (1, 2, 4) cover the whole receptive field.

    python examples/dilation_gridding.py
"""
import numpy as np

from fastconv import analysis, nn
from _plotting import figure


def reach(dilations, size=33):
    """Which input pixels influence the centre output: the support of the backprop map
    with all-ones weights."""
    stack = nn.Sequential(*[nn.Conv2d(1, 1, 3, dilation=d, padding=d, bias=False)
                            for d in dilations])
    for m in stack:
        m.weight.data[...] = 1.0
    return analysis.effective_receptive_field(stack, (1, 1, size, size), samples=1) > 0


grid = reach((2, 2, 2))
mixed = reach((1, 2, 4))
spans = {}
for name, r in (("dilation 2, 2, 2", grid), ("dilation 1, 2, 4", mixed)):
    rows, cols = np.nonzero(r)
    span = spans[name] = rows.max() - rows.min() + 1
    print(f"{name}: receptive field {span}x{span}, pixels reached {r.sum()} of {span * span}")
assert grid.sum() == 7 * 7 < spans["dilation 2, 2, 2"] ** 2       # holes: every other pixel
assert mixed.sum() == spans["dilation 1, 2, 4"] ** 2 == 15 * 15   # dense


def draw(plt):
    for i, (name, r) in enumerate((("dilation 2, 2, 2", grid), ("dilation 1, 2, 4", mixed))):
        ax = plt.subplot(1, 2, i + 1)
        ax.imshow(r, cmap="gray_r")
        ax.set_title(f"{name}: {r.sum()} pixels reached", fontsize=9)
        ax.axis("off")


figure("dilation_gridding.png", draw, (7, 3.6))
