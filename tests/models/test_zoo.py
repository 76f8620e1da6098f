"""fastconv.zoo: torchvision-identical keys and outputs, training on the tape."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import models as zoo
from helpers import assert_close, torch_or_skip


def load_twin(torch, fc_model, t_model):
    t_model.load_state_dict({k: torch.tensor(np.array(v)) for k, v in
                             fc_model.state_dict().items()})
    return t_model


@pytest.mark.parametrize("name, layers", [("resnet18", [2, 2, 2, 2]), ("resnet34", [3, 4, 6, 3])])
def test_resnet_keys_outputs_and_gradients_match_torch(name, layers, rng):
    torch = torch_or_skip()
    import torch_models
    m = getattr(zoo, name)(num_classes=5)
    t = torch_models.ResNet(layers, 5)
    assert list(m.state_dict()) == list(t.state_dict())
    load_twin(torch, m, t)
    x = rng.standard_normal((2, 3, 48, 40)).astype(np.float32)
    target = np.array([1, 4])
    loss = fc.nn.CrossEntropyLoss()(m(fc.Tensor(x)), target)
    loss.backward()
    tl = torch.nn.functional.cross_entropy(t(torch.tensor(x)), torch.tensor(target))
    tl.backward()
    assert_close(float(loss), tl.item(), 1e-5, "loss")
    tp = dict(t.named_parameters())
    for n, p in m.named_parameters():
        assert_close(p.grad, tp[n].grad.numpy(), 2e-3, n)
    for n, b in m.named_buffers():
        assert_close(b, dict(t.named_buffers())[n].numpy(), 1e-4, n)
    m.eval()
    t.eval()
    with fc.no_grad():
        y = m(x)
    assert_close(y, t(torch.tensor(x)).detach().numpy(), 1e-4, "eval forward")


def test_resnet_loads_torchvision_weights_when_installed(rng):
    torch = torch_or_skip()
    tv = pytest.importorskip("torchvision")
    t = tv.models.resnet18(num_classes=7).eval()
    m = zoo.resnet18(num_classes=7)
    m.load_state_dict(t.state_dict())
    x = rng.standard_normal((1, 3, 64, 64)).astype(np.float32)
    with fc.no_grad():
        y = m.eval()(x)
    assert_close(y, t(torch.tensor(x)).detach().numpy(), 1e-4)


def test_unet_segments_on_the_tape_like_torch(rng):
    torch = torch_or_skip()
    F = torch.nn.functional
    m = zoo.unet(3, 2, width=4, depth=2)
    x = rng.standard_normal((2, 3, 16, 12)).astype(np.float32)
    mask = rng.integers(0, 2, (2, 16, 12))
    y = m(fc.Tensor(x))
    assert y.shape == (2, 2, 16, 12) == m.output_shape(x.shape)
    fc.nn.CrossEntropyLoss()(y, mask).backward()
    P = {n: torch.nn.Parameter(torch.tensor(p.data.copy())) for n, p in m.named_parameters()}

    def dc(v, pre):
        for i in (0, 3):
            v = F.conv2d(v, P[f"{pre}.{i}.weight"], None, padding=1)
            v = F.relu(F.batch_norm(v, None, None, P[f"{pre}.{i + 1}.weight"],
                                    P[f"{pre}.{i + 1}.bias"], training=True))
        return v
    v, skips = torch.tensor(x), []
    for i in range(2):
        v = dc(v, f"down.{i}")
        skips.append(v)
        v = F.max_pool2d(v, 2)
    v = dc(v, "bottom")
    for i, s in enumerate(reversed(skips)):
        u = F.conv_transpose2d(v, P[f"up.{i}.weight"], P[f"up.{i}.bias"], stride=2)
        v = dc(torch.cat([u, s], 1), f"dec.{i}")
    ty = F.conv2d(v, P["head.weight"], P["head.bias"])
    F.cross_entropy(ty, torch.tensor(mask)).backward()
    assert_close(y.data, ty.detach().numpy(), 1e-4, "forward")
    for n, p in m.named_parameters():
        assert_close(p.grad, P[n].grad.numpy(), 2e-3, n)


def test_plain_forward_models_point_to_the_tape(rng):
    m = zoo.resnet18(num_classes=3)
    y = m(rng.standard_normal((2, 3, 64, 64)).astype(np.float32))
    with pytest.raises(RuntimeError, match="plain forward"):
        m.backward(np.ones_like(y))


@pytest.mark.parametrize("width", [0.5, 1.0])
def test_mobilenet_v2_keys_outputs_and_gradients_match_torch(width, rng):
    torch = torch_or_skip()
    import torch_models
    m = zoo.mobilenet_v2(num_classes=4, width_mult=width, dropout=0.0)
    t = torch_models.MobileNetV2(4, width, dropout=0.0)
    assert list(m.state_dict()) == list(t.state_dict())
    load_twin(torch, m, t)
    # float64: 50 layers of batch-of-two BatchNorm amplify float32 rounding differences
    # between the libraries to about 1% in the first layer's gradient
    m.double()
    t.double()
    x = rng.standard_normal((2, 3, 64, 64))
    target = np.array([3, 0])
    loss = fc.nn.CrossEntropyLoss()(m(fc.Tensor(x)), target)
    loss.backward()
    tl = torch.nn.functional.cross_entropy(t(torch.tensor(x)), torch.tensor(target))
    tl.backward()
    assert_close(float(loss), tl.item(), 1e-5, "loss")
    tp = dict(t.named_parameters())
    gmax = max(float(np.abs(v.grad.numpy()).max()) for v in tp.values())
    for n, p in m.named_parameters():
        want = tp[n].grad.numpy()
        if np.abs(want).max() < 1e-3 * gmax:
            # zero in exact arithmetic: a BatchNorm bias whose shift the next BatchNorm
            # (after a 1x1 convolution) removes; both libraries leave rounding noise
            assert np.abs(p.grad).max() < 1e-3 * gmax, n
        else:
            assert_close(p.grad, want, 2e-3, n)
    m.eval()
    t.eval()
    with fc.no_grad():
        y = m(x)
    assert_close(y, t(torch.tensor(x)).detach().numpy(), 1e-4, "eval forward")


def test_mobilenet_v2_parameter_count():
    m = zoo.mobilenet_v2()
    assert sum(p.data.size for p in m.parameters()) == 3504872     # torchvision's
