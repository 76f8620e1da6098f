"""Frames for a deployed detector: image files and folders, a folder watched for new
files, or raw RGB frames piped in (``ffmpeg ... -f rawvideo -pix_fmt rgb24 -``)."""
import os
import sys
import time

import numpy as np

from .folder import IMAGE_EXTENSIONS, fit_image, read_image


def _images_in(folder):
    return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                  if f.lower().endswith(IMAGE_EXTENSIONS))


def frames(inputs=(), image_size=64, watch=None, raw=None, stream=None, poll=0.2,
           max_frames=None, settle=1.0):
    """Yield (name, uint8 (image_size, image_size, 3) frame, or the ValueError that
    reading it raised), in order:

    - inputs: image files, and folders (their images, sorted by name);
    - watch: a folder; after the inputs, each image file that appears in it (checked
      every ``poll`` seconds, until ``max_frames`` or Ctrl-C).  A file that cannot be
      read yet is retried until it has been unchanged for ``settle`` seconds (a camera
      may still be writing it);
    - raw: (width, height): frames of width * height * 3 bytes (RGB24) read from
      ``stream`` (default standard input) until it ends, named ``frame N``.
    """
    count = 0

    def done():
        return max_frames is not None and count >= max_frames

    for path in inputs:
        paths = _images_in(path) if os.path.isdir(path) else [path]
        for p in paths:
            if done():
                return
            count += 1
            try:
                yield p, read_image(p, image_size)
            except ValueError as e:
                yield p, e
    if raw is not None:
        w, h = raw
        src = stream if stream is not None else sys.stdin.buffer
        n = w * h * 3
        k = 0
        while not done():
            buf = src.read(n)
            if not buf:
                return
            if len(buf) < n:
                count += 1
                yield f"frame {k}", ValueError(f"the stream ended inside frame {k} "
                                               f"({len(buf)} of {n} bytes)")
                return
            count += 1
            yield f"frame {k}", fit_image(np.frombuffer(buf, np.uint8).reshape(h, w, 3),
                                          image_size)
            k += 1
    if watch is not None:
        seen = set(_images_in(watch))
        pending = {}
        while not done():
            for p in _images_in(watch):
                if p in seen or done():
                    continue
                try:
                    img = read_image(p, image_size)
                except ValueError as e:
                    try:
                        changed = os.path.getmtime(p)
                    except OSError:
                        changed = 0
                    if time.time() - changed < settle:
                        pending[p] = e
                        continue            # probably still being written: next poll
                    img = e
                seen.add(p)
                pending.pop(p, None)
                count += 1
                yield p, img
            time.sleep(poll)
