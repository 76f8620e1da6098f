"""Thread control and bitwise determinism across thread counts."""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastconv as fc
from fastconv import models


def test_set_get_num_threads_and_threadpoolctl():
    n0 = fc.get_num_threads()
    try:
        fc.set_num_threads(1)
        assert fc.get_num_threads() == 1
        fc.set_num_threads(3)
        assert fc.get_num_threads() == 3
        with threadpool_limits(limits=1, user_api="openmp"):
            assert fc.get_num_threads() == 1
        assert fc.get_num_threads() == 3
    finally:
        fc.set_num_threads(n0)


def _train_step(threads, rng_seed=0):
    fc.set_num_threads(threads)
    fc.manual_seed(0)
    m = models.camera_classifier()
    opt = fc.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    crit = fc.nn.CrossEntropyLoss()
    rng = np.random.default_rng(rng_seed)
    for _ in range(2):
        x = rng.standard_normal((6, 3, 24, 24)).astype(np.float32)
        y = rng.integers(0, 2, 6)
        opt.zero_grad()
        crit(m(x), y)
        gx = m.backward(crit.backward())
        opt.step()
    return m.state_dict(), gx


def test_training_bitwise_identical_for_1_2_and_3_threads():
    n0 = fc.get_num_threads()
    try:
        ref_state, ref_gx = _train_step(1)
        for nt in (2, 3):
            state, gx = _train_step(nt)
            np.testing.assert_array_equal(gx, ref_gx)
            for k in ref_state:
                np.testing.assert_array_equal(state[k], ref_state[k], err_msg=f"{k} @ {nt} threads")
    finally:
        fc.set_num_threads(n0)


@pytest.mark.parametrize("make,shape", [
    (lambda: fc.nn.Conv2d(8, 16, 3, padding=1, groups=2), (20, 8, 9, 9)),
    (lambda: fc.nn.Conv2d(16, 24, 3, padding=1), (20, 16, 30, 30)),
    (lambda: fc.nn.Conv2d(16, 20, 3, padding=1), (6, 16, 40, 36)),        # Winograd F(4x4)
    (lambda: fc.nn.Conv2d(16, 32, 3, padding=1, groups=16), (20, 16, 30, 30)),
    (lambda: fc.nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16), (20, 16, 30, 30)),
    (lambda: fc.nn.MaxPool2d(2), (20, 8, 30, 30)),
    (lambda: fc.nn.MaxPool2d(3, 2, 1), (20, 8, 30, 30)),
    (lambda: fc.nn.ConvTranspose2d(8, 4, 3, stride=2), (20, 8, 5, 5)),
    (lambda: fc.nn.Linear(64, 32), (300, 64)),
    (lambda: fc.nn.BatchNorm2d(8), (20, 8, 30, 30)),
    (lambda: fc.nn.Upsample(scale_factor=2, mode="bilinear"), (20, 8, 30, 30)),
    (lambda: fc.nn.AvgPool2d(3, 2, 1), (20, 8, 30, 30)),
])
def test_layers_bitwise_identical_across_threads(make, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    outs = []
    for nt in (1, 2, 4):
        with threadpool_limits(limits=nt, user_api="openmp"):
            fc.manual_seed(1)
            m = make()
            y = m(x)
            gx = m.backward(np.ones_like(y))
            outs.append((y, gx, [p.grad for p in m.parameters()]))
    for y, gx, grads in outs[1:]:
        np.testing.assert_array_equal(y, outs[0][0])
        np.testing.assert_array_equal(gx, outs[0][1])
        for g, g0 in zip(grads, outs[0][2]):
            np.testing.assert_array_equal(g, g0)


def test_python_threads_with_separate_models_match_serial_runs():
    import threading
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((4, 3, 24, 24)).astype(np.float32) for _ in range(3)]
    # models are built serially: initialisation draws from the one global generator
    states = []
    for i in range(3):
        fc.manual_seed(i)
        states.append(models.camera_classifier().state_dict())

    def run(i, out):
        m = models.camera_classifier()
        m.load_state_dict(states[i])
        y = m(xs[i])
        m.backward(np.ones_like(y))
        out[i] = (y, [p.grad.copy() for p in m.parameters()])

    serial, parallel = {}, {}
    for i in range(3):
        run(i, serial)
    threads = [threading.Thread(target=run, args=(i, parallel)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(3):
        np.testing.assert_array_equal(parallel[i][0], serial[i][0])
        for a, b in zip(parallel[i][1], serial[i][1]):
            np.testing.assert_array_equal(a, b)


def test_one_module_from_two_threads_raises_instead_of_mixing_activations():
    import threading
    m = fc.nn.Conv2d(2, 2, 3)
    x = np.ones((1, 2, 5, 5), np.float32)
    y = m(x)
    t = threading.Thread(target=lambda: m(x))      # another thread's forward replaces ours
    t.start()
    t.join()
    with pytest.raises(RuntimeError, match="ran in another thread"):
        m.backward(np.ones_like(y))
