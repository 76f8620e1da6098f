"""fastconv -> torch model conversion keeps structure, keys and outputs."""
import numpy as np

import fastconv as fc
from fastconv import models
from fastconv.interop import to_torch
from helpers import assert_close, torch_or_skip


def test_to_torch_camera_classifier_same_outputs(rng):
    torch = torch_or_skip()
    m = models.camera_classifier()
    m.eval()
    t = to_torch(m)
    assert list(t.state_dict()) == list(m.state_dict())
    assert not t.training
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    with fc.no_grad():
        y = m(x)
    with torch.no_grad():
        assert_close(y, t(torch.from_numpy(x)).numpy(), 1e-4)


def test_to_torch_blocks(rng):
    torch = torch_or_skip()
    for m, shape in [(fc.nn.Residual(models.Bottleneck(16, 4)), (1, 16, 5, 5)),
                     (models.DepthwiseSeparableConv(4, 6), (1, 4, 6, 6)),
                     (models.SmoothUpsample(3, 2), (1, 3, 4, 4)),
                     (fc.nn.Sequential(fc.nn.ConvTranspose2d(2, 3, 3, 2, 1, 1), fc.nn.AvgPool2d(2),
                                       fc.nn.Upsample(size=5)), (1, 2, 4, 4))]:
        t = to_torch(m)
        x = rng.standard_normal(shape).astype(np.float32)
        assert_close(m(x), t(torch.from_numpy(x)).detach().numpy(), 1e-4)
