"""Train the camera classifier for a few SGD steps on random data and print the loss.

    python examples/train_random.py [--steps 20] [--batch 16] [--size 64] [--threads N]

A smoke test of the whole stack (forward, backward, optimiser) until the real
trainer (``python -m fastconv train``) lands.  On random labels the loss should
fall as the network memorises the batch."""
import argparse
import time

import numpy as np

import fastconv as fc


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        fc.set_num_threads(args.threads)
    fc.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = fc.models.camera_classifier()
    crit = fc.nn.CrossEntropyLoss()
    opt = fc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x = rng.standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32)
    y = rng.integers(0, 2, args.batch)
    print(f"camera_classifier: {sum(p.data.size for p in model.parameters()):,} parameters, "
          f"batch {args.batch} x 3 x {args.size} x {args.size}, {fc.get_num_threads()} threads")
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        opt.zero_grad()
        loss = crit(model(x), y)
        model.backward(crit.backward())
        opt.step()
        print(f"step {step:3d}  loss {loss:.4f}")
    dt = time.perf_counter() - t0
    print(f"{args.steps * args.batch / dt:.1f} images/s")


if __name__ == "__main__":
    main()
