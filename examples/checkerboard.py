"""Checkerboard artefacts: ConvTranspose2d(k=3, s=2) gives output pixels of different
parity a different number of kernel taps; bilinear upsampling + conv does not.

    python examples/checkerboard.py
"""
import numpy as np

import fastconv as fc
from fastconv import analysis, models, nn
from _plotting import figure

fc.manual_seed(0)
convt = nn.ConvTranspose2d(8, 8, 3, stride=2, padding=1, output_padding=1)
smooth = models.SmoothUpsample(8, 8)
results = {}
for name, layer in (("ConvTranspose2d(k=3, s=2)", convt), ("SmoothUpsample (bilinear + 3x3)", smooth)):
    m = analysis.checkerboard(layer, 8, size=16)
    results[name] = m
    print(f"{name:34s} variation across the 4 output phases: {m['variation']:.3f}")
    print("   phase means:", np.round(m["phase_means"], 4).tolist())
assert results["ConvTranspose2d(k=3, s=2)"]["variation"] > 10 * max(
    results["SmoothUpsample (bilinear + 3x3)"]["variation"], 1e-6)

x = np.ones((1, 8, 16, 16), np.float32)
with fc.no_grad():
    a, b = convt(x)[0].mean(0), smooth(x)[0].mean(0)


def draw(plt):
    for i, (name, img) in enumerate((("ConvTranspose2d k=3 s=2", a), ("bilinear x2 + conv", b))):
        ax = plt.subplot(1, 2, i + 1)
        ax.imshow(img[4:-4, 4:-4], cmap="viridis")
        ax.set_title(f"{name}\n(response to a constant input)", fontsize=9)
        ax.axis("off")


figure("checkerboard.png", draw, (7, 3.6))
