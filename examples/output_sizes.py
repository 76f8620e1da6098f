"""Output sizes: floor((in + 2p - d(k-1) - 1)/s) + 1, and its transposed twin.

    python examples/output_sizes.py
"""
import numpy as np

from fastconv import analysis, nn

x = np.zeros((1, 3, 224, 224), np.float32)
cases = [("3x3, padding 1 ('same')", nn.Conv2d(3, 8, 3, padding=1), x, 224),
         ("3x3, stride 2, padding 1", nn.Conv2d(3, 8, 3, stride=2, padding=1), x, 112),
         ("ResNet stem 7x7, stride 2, padding 3", nn.Conv2d(3, 8, 7, stride=2, padding=3), x, 112),
         ("transposed 4x4, stride 2, padding 1", nn.ConvTranspose2d(3, 8, 4, 2, 1),
          np.zeros((1, 3, 14, 14), np.float32), 28)]
for d in (1, 2, 4):
    cases.append((f"3x3, dilation {d}, padding {d} (effective kernel {3 + 2 * (d - 1)})",
                  nn.Conv2d(3, 8, 3, dilation=d, padding=d), np.zeros((1, 3, 32, 32), np.float32), 32))
for name, layer, inp, expected in cases:
    out = layer(inp).shape[2]
    print(f"{name:50s} {inp.shape[2]:>4d} -> {out:<4d}")
    assert out == expected
print("formula:", analysis.conv_output_size(224, 7, 2, 3), "=", "floor((224 + 6 - 6 - 1)/2) + 1")
