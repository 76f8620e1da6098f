"""Real images from disk: ``root/<class>/*.png|jpg`` (Pillow, an optional extra)."""
import os

import numpy as np

from ._cached import CachedImages

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading image files needs Pillow: pip install 'fastconv[images]'"
                          ) from None
    return Image


# the decoders Image.open may pick (it goes by content, not extension): the formats of
# IMAGE_EXTENSIONS, so no other plugin (e.g. EPS, which runs Ghostscript) ever sees a file
_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")   # JPEG covers MPO


def read_image(path, image_size):
    """Read an image file as uint8 (H, W, 3): RGB, centre-cropped to the target aspect
    ratio and resized (bilinear).  image_size: int or (H, W).  Raises ValueError naming
    the file when it cannot be read or decoded, or when it has more pixels than
    Pillow's decompression-bomb limit ``PIL.Image.MAX_IMAGE_PIXELS`` (checked before
    anything is decoded)."""
    Image = _pil()
    H, W = (image_size, image_size) if np.isscalar(image_size) else image_size
    try:
        with Image.open(path, formats=_FORMATS) as im:
            w, h = im.size
            # Pillow only warns between 1x and 2x its limit; refuse those too
            limit = Image.MAX_IMAGE_PIXELS
            if limit is not None and w * h > limit:
                raise ValueError(f"{w}x{h} = {w * h} pixels exceeds Pillow's limit of {limit} "
                                 "(PIL.Image.MAX_IMAGE_PIXELS), could be a decompression bomb")
            return _fit(im.convert("RGB"), H, W)
    # PIL raises all of OSError, ValueError, SyntaxError on bad files; beyond its pixel
    # limit DecompressionBombError, or its warning when warnings are made errors
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:
        raise ValueError(f"cannot read image {os.fspath(path)!r}: {e}") from None


def _fit(im, H, W):
    """A PIL RGB image centre-cropped to H:W and resized (bilinear), so nothing is
    stretched -> uint8 (H, W, 3)."""
    Image = _pil()
    w, h = im.size
    if w * H > h * W:
        cw = max(1, round(h * W / H))
        box = ((w - cw) // 2, 0, (w - cw) // 2 + cw, h)
    else:
        ch = max(1, round(w * H / W))
        box = (0, (h - ch) // 2, w, (h - ch) // 2 + ch)
    im = im.resize((W, H), Image.BILINEAR, box=box)
    return np.asarray(im, dtype=np.uint8).copy()


def fit_image(image, image_size):
    """uint8 (h, w, 3) RGB -> uint8 (H, W, 3) the way read_image fits a file's image
    (centre crop to the aspect ratio, bilinear resize); image_size: int or (H, W)."""
    H, W = (image_size, image_size) if np.isscalar(image_size) else image_size
    image = np.asarray(image, np.uint8)
    if image.shape[:2] == (H, W):
        return image
    return _fit(_pil().fromarray(image), H, W)


def write_image(path, image):
    """Write a uint8 (H, W, 3) array as an image file (format from the extension)."""
    _pil().fromarray(np.asarray(image, np.uint8)).save(path)


class ImageFolder(CachedImages):
    """Images in ``root/<class>/*.png|jpg|...``: one sub-folder per class, classes in
    sorted order (label = position).  ``ds[i]`` -> (uint8 (H, W, 3), label), resized
    to ``image_size``; ``ds.labels`` -> int64 (n,), ``ds.classes``, ``ds.files``.

    Decoded images are cached when they fit in ``max_cache_bytes``.  An empty root,
    a class folder with no images, or an unreadable file raises ValueError naming it."""

    def __init__(self, root, image_size=64, max_cache_bytes=1 << 30):
        _pil()                                          # fail early without Pillow
        root = os.fspath(root)
        if not os.path.isdir(root):
            raise ValueError(f"ImageFolder: {root!r} is not a directory")
        self.root = root
        self.image_size = (image_size, image_size) if np.isscalar(image_size) else \
            tuple(image_size)
        classes = sorted(d for d in os.listdir(root)
                         if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
        if not classes:
            raise ValueError(f"ImageFolder: no class folders in {root!r} "
                             "(expected root/<class>/*.png|jpg)")
        files, labels = [], []
        for k, c in enumerate(classes):
            found = sorted(f for f in os.listdir(os.path.join(root, c))
                           if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))
            if not found:
                raise ValueError(f"ImageFolder: class folder {os.path.join(root, c)!r} holds "
                                 f"no images ({'/'.join(e[1:] for e in IMAGE_EXTENSIONS)})")
            files += [os.path.join(root, c, f) for f in found]
            labels += [k] * len(found)
        if len(classes) < 2:
            raise ValueError(f"ImageFolder: {root!r} has one class folder ({classes[0]!r}); "
                             "a classifier needs at least two")
        self.classes = tuple(classes)
        self.files = files
        self.labels = np.asarray(labels, np.int64)
        self._init_cache(True, max_cache_bytes)

    def __len__(self):
        return len(self.files)

    def _load(self, i):
        return read_image(self.files[i], self.image_size)

    def __repr__(self):
        return (f"ImageFolder({self.root!r}, {len(self)} images, classes={list(self.classes)}, "
                f"image_size={self.image_size})")
