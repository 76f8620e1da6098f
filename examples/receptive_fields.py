"""Receptive fields: the growth table for stacked 3x3 layers, the camera classifier's,
and the effective receptive field (Luo et al., 2016) of a stack of 3x3 convolutions
at initialisation and after a little training.

    python examples/receptive_fields.py
"""
import numpy as np

import fastconv as fc
from fastconv import analysis, models, nn
from _plotting import figure

print("stacked 3x3, stride 1:  RF = L(k-1) + 1")
for L in range(1, 11):
    rf = analysis.receptive_field(nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1) for _ in range(L)]),
                                  (1, 1, 32, 32))
    print(f"  L = {L:2d}   RF = {rf[0]:2d}")
    assert rf[0] == 2 * L + 1
print("strides multiply the growth: camera classifier at 64x64 ->",
      analysis.receptive_field(models.camera_classifier(), (1, 3, 64, 64))[0], "pixels")
print(analysis.summary(models.camera_classifier(), (1, 3, 64, 64)))

# effective RF of 8 stacked 3x3 convs (theoretical RF 17) at init ...
fc.manual_seed(0)
L, size = 8, 33
stack = nn.Sequential(*[nn.Conv2d(4, 4, 3, padding=1) for _ in range(L)])   # linear: Luo's setting
shape = (1, 4, size, size)
erf_init = analysis.effective_receptive_field(stack, shape, samples=16, reinit=True)
# ... and after a few steps learning a wide blur (taps 3 pixels apart): the ERF takes
# the task's shape (a lattice of taps) instead of the initial Gaussian
rng = np.random.default_rng(0)
opt = fc.optim.Adam(stack.parameters(), lr=1e-3)
for step in range(80):
    x = rng.standard_normal((8, 4, size, size)).astype(np.float32)
    target = sum(np.roll(np.roll(x, dy, 2), dx, 3) for dy in (-3, 0, 3) for dx in (-3, 0, 3)) / 9
    y = stack(x)
    opt.zero_grad()
    stack.backward(2 * (y - target) / y.size)
    opt.step()
erf_trained = analysis.effective_receptive_field(stack, shape, samples=16)
for name, erf in (("init", erf_init), ("trained", erf_trained)):
    s = analysis.erf_spread(erf)
    print(f"effective RF ({name}): sigma {s['sigma'][0]:.2f} px, 95% of the gradient mass "
          f"within +-{s['radius']} px; theoretical RF {2 * L + 1} (+-{L})")


def draw(plt):
    for i, (name, erf) in enumerate((("at init", erf_init), ("after training", erf_trained))):
        ax = plt.subplot(1, 2, i + 1)
        ax.imshow(erf, cmap="magma")
        c = size // 2
        ax.add_patch(plt.Rectangle((c - L - 0.5, c - L - 0.5), 2 * L + 1, 2 * L + 1, fill=False,
                                   ec="cyan", lw=1))
        ax.set_title(f"ERF {name}\n(cyan: theoretical RF {2 * L + 1})", fontsize=9)
        ax.axis("off")


figure("receptive_fields.png", draw, (7, 3.6))
