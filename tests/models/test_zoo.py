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


def _grads_match(m, t, gmax_rel=1e-3, rtol=2e-3):
    """Every fastconv parameter gradient against the twin's (same names)."""
    tp = dict(t.named_parameters())
    assert [n for n, _ in m.named_parameters()] == list(tp)
    gmax = max(float(np.abs(v.grad.numpy()).max()) for v in tp.values())
    for n, p in m.named_parameters():
        want = tp[n].grad.numpy()
        assert p.grad is not None, n
        if np.abs(want).max() < gmax_rel * gmax:
            # zero in exact arithmetic: a BatchNorm bias whose shift the next BatchNorm
            # (after a 1x1 convolution) removes; both libraries leave rounding noise
            assert np.abs(p.grad).max() < gmax_rel * gmax, n
        else:
            assert_close(p.grad, want, rtol, n)


@pytest.mark.parametrize("arch, width", [("mobilenet_v3_small", 1.0),
                                         ("mobilenet_v3_small", 0.75),
                                         ("mobilenet_v3_large", 0.5)])
def test_mobilenet_v3_keys_outputs_and_gradients_match_torch(arch, width, rng):
    torch = torch_or_skip()
    import torch_models
    m = getattr(zoo, arch)(num_classes=4, width_mult=width, dropout=0.0)
    t = getattr(torch_models, arch)(4, width, dropout=0.0)
    fs, ts = m.state_dict(), t.state_dict()
    assert list(fs) == list(ts)
    assert [fs[k].shape for k in fs] == [tuple(v.shape) for v in ts.values()]
    for k, v in fs.items():                       # int64 counters, float32 weights as torch
        assert v.dtype == ts[k].numpy().dtype, k
    # non-trivial BatchNorm state, so eval exercises eps and the running statistics
    for sub in m.modules():
        if isinstance(sub, fc.nn.BatchNorm2d):
            sub.running_mean[...] = rng.standard_normal(sub.num_features) * 0.1
            sub.running_var[...] = rng.uniform(0.002, 2, sub.num_features)
            sub.bias.data[...] = rng.standard_normal(sub.num_features) * 0.1
    load_twin(torch, m, t)
    # float64: dozens of batch-of-two BatchNorms amplify float32 rounding differences
    m.double()
    t.double()
    x = rng.standard_normal((2, 3, 64, 64))
    target = np.array([3, 0])
    loss = fc.nn.CrossEntropyLoss()(m(fc.Tensor(x)), target)
    loss.backward()
    tl = torch.nn.functional.cross_entropy(t(torch.tensor(x)), torch.tensor(target))
    tl.backward()
    assert_close(float(loss), tl.item(), 1e-7, "loss")
    _grads_match(m, t)
    tb = dict(t.named_buffers())                  # momentum 0.01 moved the statistics
    for n, b in m.named_buffers():
        assert_close(b, tb[n].numpy(), 1e-7, n)
    m.eval()
    t.eval()
    x = rng.standard_normal((3, 3, 72, 56))
    with fc.no_grad():
        y = m(x)
    assert y.shape == m.output_shape(x.shape) == (3, 4)
    assert_close(y, t(torch.tensor(x)).detach().numpy(), 1e-7, "eval forward")


def test_mobilenet_v3_float32_step_matches_torch(rng):
    """The float32 path too (looser: rounding differences through BatchNorm)."""
    torch = torch_or_skip()
    import torch_models
    m = zoo.mobilenet_v3_small(num_classes=3, dropout=0.0)
    t = load_twin(torch, m, torch_models.mobilenet_v3_small(3, dropout=0.0))
    x = rng.standard_normal((4, 3, 64, 64)).astype(np.float32)
    target = np.array([0, 1, 2, 1])
    loss = fc.nn.CrossEntropyLoss()(m(fc.Tensor(x)), target)
    loss.backward()
    tl = torch.nn.functional.cross_entropy(t(torch.tensor(x)), torch.tensor(target))
    tl.backward()
    assert_close(float(loss), tl.item(), 1e-5, "loss")
    _grads_match(m, t, gmax_rel=1e-2, rtol=2e-2)


def test_mobilenet_v3_hyper_parameters_and_init():
    """torchvision's BatchNorm settings, activations, dropout and initialisation:
    BatchNorm (1, 0), conv and Linear biases 0, conv weights N(0, 2 / fan_out),
    Linear weights N(0, 0.01^2)."""
    fc.manual_seed(0)
    m = zoo.mobilenet_v3_small()
    assert sum(p.data.size for p in m.parameters()) == 2542856     # torchvision's
    assert sum(p.data.size for p in zoo.mobilenet_v3_large().parameters()) == 5483032
    bns = [s for s in m.modules() if isinstance(s, fc.nn.BatchNorm2d)]
    assert bns and all(b.eps == 0.001 and b.momentum == 0.01 for b in bns)
    assert all((b.weight.data == 1).all() and (b.bias.data == 0).all() for b in bns)
    assert [type(s).__name__ for s in m.classifier] == ["Linear", "Hardswish", "Dropout", "Linear"]
    assert m.classifier[2].p == 0.2 and m.classifier[3].out_features == 1000
    # per-block activations: ReLU in the first three blocks, Hardswish after (Table 2)
    acts = [type(b.block[0][2]).__name__ for b in list(m.features)[1:-1]]
    assert acts == ["ReLU"] * 3 + ["Hardswish"] * 8
    se = m.features[1].block[1]
    assert isinstance(se, zoo.SqueezeExcitation) and se.fc1.out_channels == 8
    assert isinstance(se.scale_activation, fc.nn.Hardsigmoid)
    biases = [n for n, p in m.named_parameters() if n.endswith("bias")]
    assert "features.1.block.1.fc1.bias" in biases and "classifier.0.bias" in biases
    assert all((p.data == 0).all() for n, p in m.named_parameters() if n.endswith("bias"))
    convs = [s for s in m.modules() if isinstance(s, fc.nn.Conv2d)]
    w = np.concatenate([c.weight.data.ravel() / np.sqrt(2.0 / (c.weight.shape[0] * np.prod(
        c.weight.shape[2:]))) for c in convs])
    assert abs(w.std() - 1) < 0.01 and abs(w.mean()) < 0.01          # ~1.5 M draws
    lin = np.concatenate([s.weight.data.ravel() for s in m.classifier
                          if isinstance(s, fc.nn.Linear)])
    assert abs(lin.std() - 0.01) < 2e-4


def test_mobilenet_v3_bad_arguments():
    with pytest.raises(ValueError, match="width_mult must be a positive number, got -1"):
        zoo.mobilenet_v3_small(width_mult=-1)
    with pytest.raises(TypeError, match="non-empty list of InvertedResidualConfig"):
        zoo.MobileNetV3([], 1024)
    with pytest.raises(ValueError, match="activation must be 'RE' or 'HS', got 'XX'"):
        zoo.InvertedResidualConfig(16, 3, 16, 16, True, "XX", 1)


def test_mobilenet_v3_summary_counts_every_parameter():
    from fastconv import analysis
    m = zoo.mobilenet_v3_small(num_classes=4)
    s = analysis.summary(m, (1, 3, 64, 64))
    assert s.total_params == sum(p.data.size for p in m.parameters())
    assert s.rows[-1]["output_shape"] == (1, 4)
    names = [r["name"] for r in s.rows]
    assert "features.1.block.1.fc1" in names and "features.12.0" in names


@pytest.mark.parametrize("arch", ["mobilenet_v3_small", "mobilenet_v3_large"])
def test_mobilenet_v3_loads_torchvision_weights_when_installed(arch, rng):
    torch = torch_or_skip()
    tv = pytest.importorskip("torchvision")
    t = getattr(tv.models, arch)(num_classes=7).eval()
    m = getattr(zoo, arch)(num_classes=7)
    assert list(m.state_dict()) == list(t.state_dict())
    m.load_state_dict(t.state_dict())
    x = rng.standard_normal((1, 3, 64, 64)).astype(np.float32)
    with fc.no_grad():
        y = m.eval()(x)
    assert_close(y, t(torch.tensor(x)).detach().numpy(), 1e-4)
