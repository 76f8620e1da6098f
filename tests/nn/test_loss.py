"""Losses against torch (value, input gradient, every reduction, weights, ignored
targets, per-pixel targets, unbatched input) and float64 finite differences."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import nn
from helpers import assert_close, at_thread_counts, torch_or_skip


def both(torch, make_fc, make_t, x, target, gout=None, tol=1e-5):
    crit, tcrit = make_fc(), make_t()
    loss = crit(x, target)
    tx = torch.tensor(x, requires_grad=True)
    tt = torch.tensor(target)
    tl = tcrit(tx, tt)
    assert_close(loss, tl.detach().numpy(), tol, "loss")
    if gout is None:
        gout = np.ones(np.shape(loss), x.dtype) if np.ndim(loss) else 1.0
    g = crit.backward(gout)
    tl.backward(torch.as_tensor(np.asarray(gout, x.dtype)))
    assert_close(g, tx.grad.numpy(), tol, "grad input")


CE_CASES = [
    dict(shape=(5, 4)),
    dict(shape=(5, 4), reduction="sum"),
    dict(shape=(5, 4), reduction="none"),
    dict(shape=(5, 4), weight=True),
    dict(shape=(6, 3), ignore=True),
    dict(shape=(6, 3), ignore=True, weight=True, smoothing=0.2),
    dict(shape=(2, 3, 4, 5)),                                   # per-pixel classes
    dict(shape=(2, 3, 4, 5), weight=True, ignore=True, reduction="none", smoothing=0.1),
    dict(shape=(2, 2, 6, 6), reduction="sum", smoothing=0.3),
    # several pixel blocks per image (the kernel's unit of work), a partial last one
    dict(shape=(3, 2, 23, 29), weight=True, ignore=True, smoothing=0.1),
    dict(shape=(2, 5, 17, 40), reduction="none"),
    dict(shape=(4,)),                                           # unbatched
]


@pytest.mark.parametrize("case", CE_CASES, ids=[str(c) for c in CE_CASES])
@pytest.mark.parametrize("loss", ["ce", "nll"])
def test_cross_entropy_and_nll_match_torch(case, loss, rng):
    torch = torch_or_skip()
    shape = case["shape"]
    C = shape[1] if len(shape) > 1 else shape[0]
    x = rng.standard_normal(shape).astype(np.float32)
    tshape = (shape[0],) + shape[2:] if len(shape) > 1 else ()
    t = rng.integers(0, C, tshape)
    kw = dict(reduction=case.get("reduction", "mean"))
    if case.get("ignore"):
        t.flat[::3] = 7
        kw["ignore_index"] = 7
    w = rng.uniform(0.5, 2, C).astype(np.float32) if case.get("weight") else None
    if loss == "nll":
        x = x - np.log(np.exp(x).sum(axis=1 if len(shape) > 1 else 0, keepdims=True))
        both(torch, lambda: nn.NLLLoss(w, **kw),
             lambda: torch.nn.NLLLoss(None if w is None else torch.tensor(w), **kw), x, t)
        return
    sm = case.get("smoothing", 0.0)
    both(torch, lambda: nn.CrossEntropyLoss(w, label_smoothing=sm, **kw),
         lambda: torch.nn.CrossEntropyLoss(None if w is None else torch.tensor(w),
                                           label_smoothing=sm, **kw), x, t)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weights", [False, True])
def test_bce_with_logits_matches_torch(reduction, weights, rng):
    torch = torch_or_skip()
    x = (rng.standard_normal((6, 3)) * 4).astype(np.float32)
    y = rng.uniform(0, 1, (6, 3)).astype(np.float32)
    w = rng.uniform(0.5, 2, (1, 3)).astype(np.float32) if weights else None
    pw = rng.uniform(1, 4, 3).astype(np.float32) if weights else None
    tw = (lambda a: None if a is None else torch.tensor(a))
    both(torch, lambda: nn.BCEWithLogitsLoss(w, reduction, pw),
         lambda: torch.nn.BCEWithLogitsLoss(tw(w), reduction=reduction, pos_weight=tw(pw)), x, y)


@pytest.mark.parametrize("name", ["MSELoss", "L1Loss", "SmoothL1Loss"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses_match_torch(name, reduction, rng):
    torch = torch_or_skip()
    x = rng.standard_normal((3, 2, 4)).astype(np.float32)
    y = rng.standard_normal((3, 2, 4)).astype(np.float32)
    kw = dict(beta=0.5) if name == "SmoothL1Loss" else {}
    both(torch, lambda: getattr(nn, name)(reduction=reduction, **kw),
         lambda: getattr(torch.nn, name)(reduction=reduction, **kw), x, y)


@pytest.mark.parametrize("crit, target", [
    (nn.CrossEntropyLoss(np.array([1.0, 2.0, 0.5]), ignore_index=1, label_smoothing=0.1),
     np.array([[0, 1], [2, 2]])),
    (nn.BCEWithLogitsLoss(pos_weight=np.array([2.0, 1.0])), np.array([[1.0, 0.0], [0.3, 1.0]])),
    (nn.SmoothL1Loss(beta=0.7), np.array([[0.1, -0.4], [0.9, 2.0]])),
])
def test_losses_finite_differences(crit, target, rng):
    shape = (2, 3, 2) if isinstance(crit, nn.CrossEntropyLoss) else (2, 2)
    x = rng.standard_normal(shape)
    crit(x, target)
    g = crit.backward()
    v = rng.standard_normal(shape)
    eps = 1e-6
    num = (crit(x + eps * v, target) - crit(x - eps * v, target)) / (2 * eps)
    assert abs(num - np.sum(g * v)) <= 1e-6 * max(1, abs(num))


def test_loss_on_the_tape_matches_explicit(rng):
    m = nn.Conv2d(3, 4, 3, padding=1)
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    t = rng.integers(0, 4, (2, 5, 5))
    crit = nn.CrossEntropyLoss(reduction="sum")
    crit(m(x), t)
    m.backward(crit.backward())
    want = m.weight.grad.copy()
    m.zero_grad()
    loss = crit(m(fc.Tensor(x)), t)
    loss.backward()
    assert_close(m.weight.grad, want, 1e-6)


def test_loss_errors():
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(TypeError, match="label_smoothing by keyword"):
        nn.CrossEntropyLoss(0.1)
    with pytest.raises(ValueError, match=r"target of shape \(2, 3\)"):
        nn.CrossEntropyLoss()(np.zeros((2, 4, 3), np.float32), np.zeros((2, 4), int))
    with pytest.raises(ValueError, match="target values must be in"):
        nn.CrossEntropyLoss()(np.zeros((2, 4), np.float32), np.array([0, 4]))
    # per-pixel targets, one out of range among ignored ones; a negative one
    t = np.zeros((2, 3, 3), int)
    t[0, 0, 0], t[1, 2, 2] = -100, 4
    with pytest.raises(ValueError, match="at least one class"):
        fc.functional.cross_entropy(np.zeros((2, 0, 3, 3), np.float32), np.full((2, 3, 3), -100))
    for loss in (nn.CrossEntropyLoss(), fc.functional.cross_entropy):    # layer, functional
        with pytest.raises(ValueError, match=r"target values must be in \[0, 4\)"):
            loss(np.zeros((2, 4, 3, 3), np.float32), t)
    with pytest.raises(ValueError, match=r"target values must be in \[0, 4\).*-4"):
        fc.functional.cross_entropy(np.zeros((2, 4, 3, 3), np.float32), -t, ignore_index=100)
    with pytest.raises(ValueError, match="weight must have shape"):
        nn.CrossEntropyLoss(np.ones(3))(np.zeros((2, 4), np.float32), np.array([0, 1]))
    with pytest.raises(ValueError, match="target shape"):
        nn.MSELoss()(np.zeros((2, 4), np.float32), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="does not broadcast"):
        nn.BCEWithLogitsLoss(pos_weight=np.ones(3))(np.zeros((2, 4), np.float32),
                                                    np.zeros((2, 4)))
    with pytest.raises(TypeError, match="integer class indices"):
        nn.NLLLoss()(np.zeros((2, 4), np.float32), np.zeros(2))


def test_cross_entropy_every_target_ignored_gives_nan_and_zero_gradient():
    """torch: the mean over no counted target is nan, and the gradient is zero."""
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    t = np.full((2, 4, 4), 7)
    xt = fc.Tensor(x, requires_grad=True)
    loss = nn.CrossEntropyLoss(ignore_index=7)(xt, t)
    assert np.isnan(float(loss.data))
    loss.backward()
    np.testing.assert_array_equal(xt.grad, np.zeros_like(x))


def test_per_pixel_cross_entropy_same_bits_at_any_thread_count():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 9, 7)).astype(np.float32)
    t = rng.integers(0, 4, (3, 9, 7))
    t[0, 0, :3] = -100
    crit = nn.CrossEntropyLoss(weight=np.array([1.0, 2.0, 0.5, 1.5]), label_smoothing=0.1)
    outs, n0 = [], fc.get_num_threads()
    try:
        for nt in (1, 2, 3):
            fc.set_num_threads(nt)
            outs.append((crit(x, t), crit.backward()))
    finally:
        fc.set_num_threads(n0)
    for loss, g in outs[1:]:
        assert loss == outs[0][0]
        np.testing.assert_array_equal(g, outs[0][1])


def test_per_pixel_cross_entropy_bits_do_not_depend_on_threads(rng):
    """Partial sums per pixel block, added in block order: the same loss and gradient
    bits on 1, 2 and 3 threads."""
    x = rng.standard_normal((3, 4, 37, 41)).astype(np.float32)
    t = rng.integers(0, 4, (3, 37, 41))
    t.flat[::5] = -100

    def run():
        loss, ctx = fc.functional.cross_entropy(x, t, 0.1, np.array([1.0, 2.0, 0.5, 1.5]))
        return loss, fc.functional.cross_entropy_backward(ctx)[0]
    (l1, g1), (l2, g2), (l3, g3) = at_thread_counts(run)
    assert l1 == l2 == l3
    assert np.array_equal(g1, g2) and np.array_equal(g1, g3)
