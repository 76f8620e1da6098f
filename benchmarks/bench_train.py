"""The camera-classifier training recipe in fastconv and in PyTorch, side by side.

    python benchmarks/bench_train.py [--epochs 6] [--synthetic-size 8000] [--threads 2]
                                     [--json out.json]

Same model (torch's copy is built from fastconv's initial weights with
``fastconv.to_torch``), same data and augmentation (one DataLoader per library over
the same seeded batches, each over its own copy of the data set, so both render the
same scenes inside their timed epochs), same optimiser, schedule and loss.  Epochs
alternate (fastconv epoch 1, torch epoch 1, fastconv epoch 2, ...) so a shared machine's
drift hits both; each prints its wall time per epoch and validation accuracy, and
the ratio is torch time / fastconv time (> 1: fastconv faster).
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import fastconv as fc  # noqa: E402
from fastconv import data  # noqa: E402
from fastconv.train import (TrainConfig, build_dataset, build_model, build_optimizer,  # noqa: E402
                            build_splits, evaluate, learning_rate)


def torch_epoch(model, opt, loader, config, epoch, steps):
    model.train()
    crit = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    correct = seen = 0
    loss_sum = 0.0
    for k, (x, y) in enumerate(loader.epoch(epoch)):
        for g in opt.param_groups:
            g["lr"] = learning_rate(config, epoch * steps + k, steps)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        opt.zero_grad(set_to_none=True)
        logits = model(xt)
        loss = crit(logits, yt)
        loss.backward()
        opt.step()
        loss_sum += loss.item() * len(y)
        correct += int((logits.argmax(1) == yt).sum())
        seen += len(y)
    return loss_sum / seen, correct / seen


def torch_eval(model, loader):
    model.eval()
    correct = seen = 0
    with torch.no_grad():
        for x, y in loader.epoch(0):
            correct += int((model(torch.from_numpy(x)).argmax(1).numpy() == y).sum())
            seen += len(y)
    return correct / seen


def fc_epoch(model, opt, crit, loader, config, epoch, steps):
    model.train()
    correct = seen = 0
    loss_sum = 0.0
    for k, (x, y) in enumerate(loader.epoch(epoch)):
        opt.lr = learning_rate(config, epoch * steps + k, steps)
        opt.zero_grad()
        logits = model(x)
        loss = crit(logits, y)
        model.backward(crit.backward(), input_grad=False)
        opt.step()
        loss_sum += loss * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
    return loss_sum / seen, correct / seen


def main():
    d = TrainConfig()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=d.epochs)
    ap.add_argument("--synthetic-size", type=int, default=d.synthetic_size)
    ap.add_argument("--image-size", type=int, default=d.image_size)
    ap.add_argument("--batch-size", type=int, default=d.batch_size)
    ap.add_argument("--width", type=float, default=None, help="(the trainer's default)")
    ap.add_argument("--pool", choices=["avg", "max"], default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    config = TrainConfig(epochs=args.epochs, synthetic_size=args.synthetic_size,
                         image_size=args.image_size, batch_size=args.batch_size,
                         width=args.width, pool=args.pool).check()
    if args.threads:
        fc.set_num_threads(args.threads)
    threads = fc.get_num_threads()
    torch.set_num_threads(threads)

    # one copy of the (identical, seeded) scenes per library: each renders its epoch's
    # fresh scenes inside its own timed epoch, and neither reads the other's cache
    train_fc, val_set = build_splits(config, build_dataset(config))
    train_th, _ = build_splits(config, build_dataset(config))

    def loader(train_for, epoch):
        return data.DataLoader(train_for(epoch), config.batch_size, shuffle=True,
                               seed=config.seed,
                               augment=data.Augment() if config.augment_on else None,
                               drop_last=True)
    val_loader = data.DataLoader(val_set, 256)
    train_set = train_fc(0)
    steps = len(loader(train_fc, 0))

    model = build_model(config, 2)
    tmodel = fc.to_torch(model)
    opt = build_optimizer(config, model.parameters())
    topt = torch.optim.AdamW(tmodel.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    crit = fc.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    print(f"camera classifier, {len(train_set)} train / {len(val_set)} val synthetic images "
          f"{config.image_size}x{config.image_size}, batch {config.batch_size}, "
          f"{config.optimizer} lr {config.lr:g}, {config.epochs} epochs, {threads} threads, "
          f"torch {torch.__version__}")
    print(f"{'epoch':>5s} {'fastconv s':>11s} {'torch s':>9s} {'ratio':>6s} "
          f"{'fc val acc':>10s} {'torch val acc':>13s}")
    rows = []
    for e in range(config.epochs):
        t = time.perf_counter()
        fc_loss, _ = fc_epoch(model, opt, crit, loader(train_fc, e), config, e, steps)
        t_fc = time.perf_counter() - t
        t = time.perf_counter()
        th_loss, _ = torch_epoch(tmodel, topt, loader(train_th, e), config, e, steps)
        t_th = time.perf_counter() - t
        fc_acc = evaluate(model, val_loader, crit)[1]
        th_acc = torch_eval(tmodel, val_loader)
        rows.append(dict(epoch=e + 1, fastconv_s=t_fc, torch_s=t_th, ratio=t_th / t_fc,
                         fastconv_loss=fc_loss, torch_loss=th_loss, fastconv_val_acc=fc_acc,
                         torch_val_acc=th_acc))
        print(f"{e + 1:5d} {t_fc:11.1f} {t_th:9.1f} {t_th / t_fc:6.2f} {fc_acc:10.4f} "
              f"{th_acc:13.4f}", flush=True)
    tf, tt = sum(r["fastconv_s"] for r in rows), sum(r["torch_s"] for r in rows)
    print(f"total {tf:.0f} s vs {tt:.0f} s: fastconv {tt / tf:.2f}x faster per epoch; "
          f"final val accuracy {rows[-1]['fastconv_val_acc']:.4f} vs "
          f"{rows[-1]['torch_val_acc']:.4f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(threads=threads, config=vars(args), epochs=rows), fh, indent=1)
    return np.mean([r["ratio"] for r in rows])


if __name__ == "__main__":
    main()
