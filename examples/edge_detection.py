"""The article's first example: a 3x3 vertical-edge kernel on a 5x5 image.

    python examples/edge_detection.py
"""
import numpy as np

import fastconv as fc

image = np.array([[1, 1, 0, 0, 0]] * 5, np.float32)      # bright left, dark right
kernel = np.array([[1, 0, -1]] * 3, np.float32)          # vertical-edge detector

conv = fc.nn.Conv2d(1, 1, kernel_size=3, bias=False)
conv.weight.data = kernel.reshape(1, 1, 3, 3)
feature_map = conv(image.reshape(1, 1, 5, 5))[0, 0]

print("image:\n", image.astype(int))
print("kernel:\n", kernel.astype(int))
print("feature map (5 - 3 + 1 = 3 per side):\n", feature_map.astype(int))
assert feature_map.tolist() == [[3, 3, 0]] * 3
