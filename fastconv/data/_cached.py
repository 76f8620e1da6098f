"""The base of the data sets: images made on demand, kept once made."""
import numpy as np


class CachedImages:
    """uint8 (H, W, 3) images made by ``_load(i)`` on first use and kept in one
    preallocated array when all of them fit in ``max_cache_bytes``.  Subclasses set
    ``labels`` and ``image_size`` and call ``_init_cache``; ``extra_bytes`` is what a
    subclass keeps beside each cached image (annotations), counted in the budget."""

    def _init_cache(self, enabled, max_cache_bytes, extra_bytes=0):
        n = len(self)
        nbytes = n * (self.image_size[0] * self.image_size[1] * 3 + extra_bytes)
        self._cache = np.empty((n, *self.image_size, 3), np.uint8) \
            if enabled and nbytes <= max_cache_bytes else None
        self._done = np.zeros(n, bool)

    def _load(self, i):
        raise NotImplementedError

    def _index(self, i):
        n, i = len(self), int(i)
        if not -n <= i < n:
            raise IndexError(f"{type(self).__name__}: index {i} out of range for {n} images")
        return i % n

    def image(self, i):
        """Image i as uint8 (H, W, 3)."""
        i = self._index(i)
        if self._cache is not None and self._done[i]:
            return self._cache[i]
        img = self._load(i)
        if self._cache is not None:
            self._cache[i], self._done[i] = img, True
        return img

    def __getitem__(self, i):
        return self.image(i), int(self.labels[i])

    def images(self, indices):
        """uint8 (len(indices), H, W, 3)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        out = np.empty((len(idx), *self.image_size, 3), np.uint8)
        for k, i in enumerate(idx):
            out[k] = self.image(i)
        return out
