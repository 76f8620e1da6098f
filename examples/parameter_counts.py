"""Parameter counts from the article, counted on fastconv's own layers.

    python examples/parameter_counts.py
"""
from fastconv import models, nn


def count(m):
    return sum(p.data.size for p in m.parameters())


rows = [
    ("Conv2d(3, 16, 3): 16 x (3*3*3) + 16", nn.Conv2d(3, 16, 3), 448),
    ("fully connected 32x32x3 -> 28x28, no sharing", nn.Linear(3072, 784, bias=False), 2_408_448),
    ("Conv2d(3, 64, 7)  (ResNet stem)", nn.Conv2d(3, 64, 7), 9_472),
    ("Conv2d(64, 128, 3)", nn.Conv2d(64, 128, 3), 73_856),
    ("Conv2d(512, 512, 3)", nn.Conv2d(512, 512, 3), 2_359_808),
    ("standard Conv2d(256, 256, 3)", nn.Conv2d(256, 256, 3), 590_080),
    ("DepthwiseSeparableConv(256, 256)", models.DepthwiseSeparableConv(256, 256), 67_840),
    ("Bottleneck(256, 64)", models.Bottleneck(256, 64), 70_400),
    ("camera_classifier()", models.camera_classifier(), 1_146_818),
]
for name, m, expected in rows:
    n = count(m)
    print(f"{name:48s} {n:>12,}")
    assert n == expected, (name, n, expected)
print(f"depthwise separable saving: {590_080 / 67_840:.1f}x fewer parameters")

print("\ncamera classifier, per stage (the article's '~957K' is wrong: it is 1,146,818):")
m = models.camera_classifier()
for i, stage in enumerate(m):
    print(f"  {i:2d} {repr(stage).splitlines()[0][:60]:60s} {count(stage):>9,}")
