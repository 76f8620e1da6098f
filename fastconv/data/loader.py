"""Batches for training: splits, augmentation and a background-thread loader.

Every random choice (shuffle order, crops, flips, brightness) is drawn from a
generator seeded by ``(seed, epoch, batch)``, so an epoch can be restarted at any
batch and produces the same bits: that is what makes ``--resume`` equal to an
uninterrupted run."""
import queue
import threading

import numpy as np

# Inputs are scaled to about [-2, 2]: (pixel / 255 - MEAN) / STD, per channel.
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


def shard_bounds(n, rank, size):
    """(start, stop) of rank's contiguous part of n items split over size ranks: parts
    differ by at most one, the larger ones first."""
    q, r = divmod(n, size)
    start = rank * q + min(rank, r)
    return start, start + q + (rank < r)


class Subset:
    """The items ``indices`` of ``dataset`` (same interface: images, labels, classes)."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, np.int64)
        self.labels = dataset.labels[self.indices]
        self.classes = dataset.classes
        self.image_size = dataset.image_size

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.dataset[self.indices[i]]

    def images(self, indices):
        return self.dataset.images(self.indices[np.asarray(indices, np.int64)])

    def masks(self, indices):
        """The data set's masks (where it has them), by this subset's indices."""
        return self.dataset.masks(self.indices[np.asarray(indices, np.int64)])

    def scene(self, i):
        """Item i's Scene (image, label, mask, boxes...), where the data set has them."""
        return self.dataset.scene(self.indices[i])


def train_val_split(dataset, val_fraction, seed=0):
    """Stratified split into (train, val) Subsets: each class keeps its share, the
    choice depends only on seed.  val_fraction in [0, 1)."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"train_val_split: val_fraction must be in [0, 1), got {val_fraction}")
    rng = np.random.default_rng([seed, 0x5b117])
    val = []
    for c in np.unique(dataset.labels):
        idx = np.flatnonzero(dataset.labels == c)
        k = int(round(len(idx) * val_fraction))
        val.append(rng.permutation(idx)[:k])
    val = np.sort(np.concatenate(val)) if val else np.zeros(0, np.int64)
    train = np.setdiff1d(np.arange(len(dataset)), val)
    return Subset(dataset, train), Subset(dataset, val)


def normalize(images):
    """uint8 or float-in-[0, 1] (N, H, W, 3) -> float32 (N, 3, H, W), scaled by
    MEAN / STD: the network's input."""
    x = np.asarray(images)
    x = x.astype(np.float32) * np.float32(1 / 255) if x.dtype == np.uint8 else \
        x.astype(np.float32, copy=False)
    x = (x - np.float32(MEAN)) / np.float32(STD)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class Augment:
    """Random resized crop (area ``scale``, aspect ``ratio``), horizontal flip and
    brightness / contrast jitter, on a whole uint8 (N, H, W, 3) batch at once.

    A scene's label must survive: the default crop keeps at least 70 % of the area,
    so a person is rarely cut out."""

    def __init__(self, scale=(0.7, 1.0), ratio=(3 / 4, 4 / 3), flip=True, brightness=0.25,
                 contrast=0.25):
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"Augment: scale must satisfy 0 < lo <= hi <= 1, got {scale}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"Augment: ratio must satisfy 0 < lo <= hi, got {ratio}")
        if brightness < 0 or contrast < 0:
            raise ValueError("Augment: brightness and contrast must be >= 0")
        self.scale, self.ratio, self.flip = scale, ratio, flip
        self.brightness, self.contrast = brightness, contrast

    def __call__(self, images, rng, within=None):
        """uint8 (N, H, W, 3) -> float32 (N, H, W, 3) in [0, 1].

        within=(start, total): images are items start .. start + N of a batch of total
        (one rank's share): the draws are made for the whole batch and this part's are
        used, so each image gets the same augmentation whatever the number of ranks."""
        n, H, W, _ = images.shape
        start, total = (0, n) if within is None else within
        p = slice(start, start + n)
        area = rng.uniform(*self.scale, total)[p]
        logr = rng.uniform(np.log(self.ratio[0]), np.log(self.ratio[1]), total)[p]
        ch = np.clip(np.sqrt(area / np.exp(logr)) * H, 1, H)
        cw = np.clip(np.sqrt(area * np.exp(logr)) * W, 1, W)
        y0 = rng.uniform(0, 1, total)[p] * (H - ch)
        x0 = rng.uniform(0, 1, total)[p] * (W - cw)
        flip = (rng.random(total) < 0.5)[p] if self.flip else np.zeros(n, bool)
        b = 1 + rng.uniform(-self.brightness, self.brightness, total)[p]
        c = 1 + rng.uniform(-self.contrast, self.contrast, total)[p]
        # bilinear sampling of the crop, pixel centres mapped to pixel centres
        ys = y0[:, None] + (np.arange(H) + 0.5)[None, :] * (ch / H)[:, None] - 0.5
        xs = x0[:, None] + (np.arange(W) + 0.5)[None, :] * (cw / W)[:, None] - 0.5
        xs = np.where(flip[:, None], xs[:, ::-1], xs)
        ys, xs = np.clip(ys, 0, H - 1), np.clip(xs, 0, W - 1)
        yi, xi = np.minimum(ys.astype(np.int64), H - 2), np.minimum(xs.astype(np.int64), W - 2)
        wy = (ys - yi).astype(np.float32)[:, :, None, None]
        wx = (xs - xi).astype(np.float32)[:, None, :, None]
        ni = np.arange(n)[:, None, None]
        yy, xx = yi[:, :, None], xi[:, None, :]
        im = images.astype(np.float32) * np.float32(1 / 255)
        top = im[ni, yy, xx] * (1 - wx) + im[ni, yy, xx + 1] * wx
        bot = im[ni, yy + 1, xx] * (1 - wx) + im[ni, yy + 1, xx + 1] * wx
        out = top * (1 - wy) + bot * wy
        mean = out.mean(axis=(1, 2, 3), keepdims=True)
        out = (out - mean) * c[:, None, None, None].astype(np.float32) + mean
        out *= b[:, None, None, None].astype(np.float32)
        return np.clip(out, 0, 1, out=out)


class DataLoader:
    """Batches of (float32 (N, 3, H, W) network input, int64 (N,) labels) from a data
    set, made in a background thread while the previous batch trains.

    ``loader.epoch(e, start=k)`` iterates epoch e from batch k; the order (when
    ``shuffle``) and the augmentation depend only on (seed, e, batch).  ``len(loader)``
    is the number of batches (the last one may be short unless ``drop_last``).

    shard=(rank, world_size): data-parallel training.  ``batch_size`` stays the global
    batch; each rank gets its contiguous part of every batch (sizes differ by at most
    one) and renders or reads only those items.  Order and augmentation are drawn for
    the global batch, so the union over ranks is the same images, augmented the same,
    whatever the world size.  ``shard_range(n)`` gives a part's (start, stop)."""

    def __init__(self, dataset, batch_size=64, shuffle=False, augment=None, seed=0,
                 drop_last=False, prefetch=3, shard=None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if len(dataset) == 0:
            raise ValueError("DataLoader: the data set is empty")
        rank, size = (0, 1) if shard is None else (int(shard[0]), int(shard[1]))
        if size < 1 or not 0 <= rank < size:
            raise ValueError(f"DataLoader: shard must be (rank, world_size) with 0 <= rank < "
                             f"world_size, got {shard!r}")
        self.dataset, self.batch_size, self.shuffle = dataset, int(batch_size), shuffle
        self.augment, self.seed, self.drop_last = augment, seed, drop_last
        self.prefetch = max(1, prefetch)
        self.rank, self.world_size = rank, size

    def shard_range(self, n):
        """(start, stop) of this rank's part of a batch of n items."""
        return shard_bounds(n, self.rank, self.world_size)

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch):
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch, 0x0de7]).permutation(n)

    def batch(self, epoch, k, order=None):
        """Batch k of epoch e, made in the calling thread."""
        order = self.order(epoch) if order is None else order
        idx = order[k * self.batch_size:(k + 1) * self.batch_size]
        total = len(idx)
        start, stop = self.shard_range(total)
        idx = idx[start:stop]
        images = self.dataset.images(idx)
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, epoch, k, 0xa09])
            images = self.augment(images, rng, None if self.world_size == 1 else (start, total))
        return normalize(images), self.dataset.labels[idx]

    def epoch(self, epoch=0, start=0):
        """Iterate the batches of one epoch from batch ``start``, prefetched in a thread."""
        order = self.order(epoch)
        q = queue.Queue(self.prefetch)
        stop = threading.Event()

        def work():
            try:
                for k in range(start, len(self)):
                    item = self.batch(epoch, k, order)
                    while not stop.is_set():
                        try:
                            q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            pass
                    if stop.is_set():
                        return
                q.put(None)
            except BaseException as e:          # handed to the consumer, raised there
                q.put(e)

        t = threading.Thread(target=work, name="fastconv-loader", daemon=True)
        t.start()
        try:
            while True:
                item = q.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            t.join()

    def __iter__(self):
        return self.epoch(0)
