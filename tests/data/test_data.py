"""fastconv.data: the synthetic scenes, image folders, augmentation and the loader."""
import threading

import numpy as np
import pytest

from fastconv import data
from fastconv.data import (Augment, DataLoader, ImageFolder, SyntheticCameraDataset,
                           train_val_split)


def test_synthetic_is_deterministic_and_order_free():
    a = SyntheticCameraDataset(24, 32, seed=3)
    b = SyntheticCameraDataset(24, 32, seed=3)
    forward = a.images(range(24))
    backward = b.images(range(23, -1, -1))[::-1]        # other order, other instance
    assert np.array_equal(forward, backward)
    assert np.array_equal(a.labels, b.labels)
    c = SyntheticCameraDataset(24, 32, seed=4)
    assert not np.array_equal(forward, c.images(range(24)))
    # the cache returns what a fresh render gives
    assert np.array_equal(a.image(5), (a.render(5) * 255 + 0.5).astype(np.uint8))


@pytest.mark.parametrize("n", [10, 11, 200])
def test_synthetic_classes_balanced(n):
    ds = SyntheticCameraDataset(n, 16, seed=1, cache=False)
    counts = np.bincount(ds.labels, minlength=2)
    assert counts.sum() == n and abs(counts[0] - counts[1]) <= 1
    assert ds.classes == ("no_person", "person")
    assert 0 < np.mean(ds.labels[: n // 2]) < 1 or n < 20        # shuffled, not blocked


@pytest.mark.parametrize("size", [16, 64, (48, 80), 128])
def test_synthetic_shapes(size):
    ds = SyntheticCameraDataset(4, size, seed=0)
    hw = (size, size) if np.isscalar(size) else size
    img, label = ds[1]
    assert img.shape == (*hw, 3) and img.dtype == np.uint8 and label in (0, 1)
    assert ds.images([0, 3]).shape == (2, *hw, 3)
    assert img.std() > 5                                     # a scene, not a flat fill


def _auc(score, labels):
    """Probability that a random "person" image scores above a random other one."""
    r = score.argsort().argsort()
    pos = labels == 1
    n1, n0 = pos.sum(), (~pos).sum()
    return (r[pos].sum() - n1 * (n1 - 1) / 2) / (n1 * n0)


def test_synthetic_classes_not_separable_by_global_statistics():
    """No whole-image statistic gives the label away: mean brightness, each channel's
    mean and the contrast all separate the classes barely better than a coin (AUC
    within 0.4..0.6; a person is a small part of a scene)."""
    ds = SyntheticCameraDataset(400, 32, seed=0)
    imgs = ds.images(range(400)).astype(np.float64)
    stats = [imgs.mean(axis=(1, 2, 3)), imgs.std(axis=(1, 2, 3))] + \
        [imgs[..., c].mean(axis=(1, 2)) for c in range(3)]
    for s in stats:
        assert 0.4 < _auc(s, ds.labels) < 0.6


def test_synthetic_bad_arguments():
    with pytest.raises(ValueError, match="n must be a positive int"):
        SyntheticCameraDataset(0)
    with pytest.raises(ValueError, match="image_size must be"):
        SyntheticCameraDataset(4, 4)
    with pytest.raises(ValueError, match="seed must be"):
        SyntheticCameraDataset(4, 16, seed=-1)
    with pytest.raises(IndexError, match="out of range"):
        SyntheticCameraDataset(4, 16).render(4)


def test_split_is_stratified_disjoint_and_complete():
    ds = SyntheticCameraDataset(200, 16, seed=0, cache=False)
    tr, va = train_val_split(ds, 0.25, seed=1)
    assert len(tr) + len(va) == 200 and len(va) == 50
    assert not set(tr.indices) & set(va.indices)
    assert np.bincount(va.labels).tolist() == [25, 25]
    tr2, va2 = train_val_split(ds, 0.25, seed=1)
    assert np.array_equal(va.indices, va2.indices)
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(ds, 1.0)


def test_augment_identity_and_flip():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (6, 12, 10, 3), dtype=np.uint8)
    ident = Augment(scale=(1, 1), ratio=(1, 1), flip=False, brightness=0, contrast=0)
    np.testing.assert_allclose(ident(imgs, rng), imgs / 255.0, atol=1e-6)
    flip = Augment(scale=(1, 1), ratio=(1, 1), flip=True, brightness=0, contrast=0)
    out = flip(imgs, np.random.default_rng(1))
    mirrored = 0
    for o, i in zip(out, imgs / 255.0):
        same, mirror = np.allclose(o, i, atol=1e-6), np.allclose(o, i[:, ::-1], atol=1e-6)
        assert same or mirror
        mirrored += mirror
    assert 0 < mirrored < 6
    full = Augment()(imgs, np.random.default_rng(2))
    assert full.shape == imgs.shape and full.dtype == np.float32
    assert full.min() >= 0 and full.max() <= 1


def test_augment_bad_arguments():
    with pytest.raises(ValueError, match="scale"):
        Augment(scale=(0, 1))
    with pytest.raises(ValueError, match="ratio"):
        Augment(ratio=(2, 1))


def test_loader_batches_and_restart():
    ds = SyntheticCameraDataset(40, 16, seed=0)
    dl = DataLoader(ds, 16, shuffle=True, augment=Augment(), seed=5)
    assert len(dl) == 3 and len(DataLoader(ds, 16, drop_last=True)) == 2
    batches = list(dl.epoch(2))
    assert [len(y) for _, y in batches] == [16, 16, 8]
    x, y = batches[0]
    assert x.shape == (16, 3, 16, 16) and x.dtype == np.float32 and y.dtype == np.int64
    assert x.flags.c_contiguous
    # every image once per epoch; epochs differ in order
    seen = np.concatenate([dl.order(2)])
    assert sorted(seen.tolist()) == list(range(40))
    assert not np.array_equal(dl.order(2), dl.order(3))
    # restarting at batch 2 gives the same bits as the full pass
    (x2, y2), = list(dl.epoch(2, start=2))
    assert np.array_equal(x2, batches[2][0]) and np.array_equal(y2, batches[2][1])


def test_loader_thread_stops_on_break_and_raises_worker_errors():
    before = threading.active_count()
    dl = DataLoader(SyntheticCameraDataset(64, 16, seed=0), 8)
    for _ in dl.epoch(0):
        break
    assert threading.active_count() == before

    class Broken(SyntheticCameraDataset):
        def images(self, idx):
            raise OSError("disk on fire")

    with pytest.raises(OSError, match="disk on fire"):
        list(DataLoader(Broken(16, 16), 8).epoch(0))
    assert threading.active_count() == before
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(Broken(16, 16), 0)


def test_normalize():
    img = np.array([[[[0, 128, 255]]]], np.uint8)
    x = data.normalize(img)
    assert x.shape == (1, 3, 1, 1)
    np.testing.assert_allclose(x.ravel(), (np.array([0, 128, 255]) / 255 - 0.5) / 0.25, atol=1e-6)


# ------------------------------------------------------- masks and boxes (Scene)

def _scenes(sizes=(32, 64, (48, 80)), n=12, seed=11):
    """(rng seed, size, person) of a spread of scenes, persons and not."""
    return [([seed, i], size, person) for size in sizes for i in range(n)
            for person in (True, False)]


def test_truth_leaves_images_and_draws_unchanged():
    """The trained default and its figures rely on the images: asking for the truth
    must give the same bits and leave the generator where the plain render leaves it."""
    for key, size, person in _scenes():
        r1, r2 = np.random.default_rng(key), np.random.default_rng(key)
        img = data.render_scene(r1, size, person)
        s = data.render_scene(r2, size, person, truth=True)
        assert s.image.dtype == img.dtype and np.array_equal(img, s.image)
        assert r1.integers(1 << 62) == r2.integers(1 << 62)
    plain = SyntheticCameraDataset(16, 32, seed=2)
    masked = SyntheticCameraDataset(16, 32, seed=2, with_masks=True)
    assert np.array_equal(plain.images(range(16)), masked.images(range(16)))
    assert np.array_equal(plain.images(range(16)), np.stack([plain.scene(i).image
                                                             for i in range(16)]))


@pytest.mark.parametrize("size", [32, (48, 80)])
def test_truth_shapes_and_dtypes(size):
    hw = (size, size) if np.isscalar(size) else size
    ds = SyntheticCameraDataset(6, size, seed=0, with_masks=True)
    for i in range(6):
        s = ds.scene(i)
        assert isinstance(s, data.Scene) and s.label == ds.labels[i]
        assert s.image.shape == (*hw, 3) and s.image.dtype == np.uint8
        assert s.mask.shape == hw and s.mask.dtype == bool
        assert s.instances.shape == hw and s.instances.dtype == np.uint8
        k = len(s.boxes)
        assert s.boxes.shape == (k, 4) and s.boxes.dtype == np.int32
        assert s.heights.shape == s.cropped.shape == s.occluded.shape == s.visible.shape == (k,)
        assert s.heights.dtype == s.visible.dtype == np.float32
        assert s.cropped.dtype == s.occluded.dtype == bool
    m = ds.masks([5, 0, 5])
    assert m.shape == (3, *hw) and m.dtype == bool
    assert np.array_equal(m[0], ds.mask(5)) and np.array_equal(m[1], ds.scene(0).mask)


def test_no_person_scenes_have_no_truth_and_person_scenes_do():
    ds = SyntheticCameraDataset(60, 32, seed=4)
    seen = 0
    for i in range(60):
        s = ds.scene(i)
        if s.label == 0:
            assert not s.mask.any() and not s.instances.any() and s.boxes.shape == (0, 4)
        else:                       # one to three figures (all of them hidden: rare)
            assert len(s.boxes) <= 3 and s.mask.any() == (len(s.boxes) > 0)
            seen += len(s.boxes) > 0
    assert seen >= 28


def test_boxes_are_tight_around_their_instances():
    ds = SyntheticCameraDataset(80, 48, seed=6, cache=False)
    singles = 0
    for i in np.flatnonzero(ds.labels == 1):
        s = ds.scene(i)
        H, W = s.mask.shape
        assert np.array_equal(s.mask, s.instances > 0)
        assert s.instances.max() == len(s.boxes)
        for k, (y0, x0, y1, x1) in enumerate(s.boxes):
            ys, xs = np.nonzero(s.instances == k + 1)
            assert 0 <= y0 < y1 <= H and 0 <= x0 < x1 <= W
            assert ys.min() == y0 and ys.max() == y1 - 1      # y1, x1 exclusive
            assert xs.min() == x0 and xs.max() == x1 - 1
        assert np.all((s.heights >= 0.15 - 1e-6) & (s.heights <= 1.05 + 1e-6))
        assert np.all((s.visible > 0) & (s.visible <= 1))
        assert np.array_equal(s.occluded, s.visible < 0.95)
        if len(s.boxes) == 1:       # visible at the frame's edge: cut by the border
            singles += 1
            y0, x0, y1, x1 = s.boxes[0]
            if y0 == 0 or x0 == 0 or y1 == H or x1 == W:
                assert s.cropped[0]
    assert singles > 10


def _dilate(m, r):
    """Binary dilation by a (2r+1)^2 square."""
    p = np.pad(m, r)
    H, W = m.shape
    return np.any([p[dy:dy + H, dx:dx + W] for dy in range(2 * r + 1)
                   for dx in range(2 * r + 1)], axis=0)


def test_masks_align_with_the_pixels_the_persons_changed(monkeypatch):
    """Render each scene again with its figures drawn on a scratch canvas (the same
    draws, so everything else is identical: noise, light, occluders) and compare: the
    mask's pixels changed, and nothing changed farther from the mask than the
    anti-aliased edge (up to 2 px along a thin ellipse's long axis, plus the blur's
    radius when the camera blurred).  A painted-over pixel keeps float rounding of
    what was under it (1e-7), so "changed" is more than 1e-3 (1/255 is 4e-3).  JPEG's
    blocks move nothing but spread a change over 8x8 pixels: left out here (its
    quality is drawn by the caller, so the draws stay the same)."""
    from fastconv.data import _draw, synthetic
    monkeypatch.setattr(_draw, "jpeg_artefacts", lambda img, quality: img)
    blur = _draw.gaussian_blur
    sigmas = []

    def recording_blur(img, sigma):
        sigmas.append(sigma)
        return blur(img, sigma)

    monkeypatch.setattr(_draw, "gaussian_blur", recording_blur)
    person = synthetic._person

    def ghost(rng, img, base, fx, h):
        person(rng, img.copy(), base, fx, h)

    hit = total = off_hit = 0
    for key, size, _ in _scenes(n=10, seed=9)[::2]:            # person scenes
        del sigmas[:]
        # figures of 0.4 H and more: at a few pixels, whole limbs are thinner than the
        # half-pixel share the mask asks for
        s = data.render_scene(np.random.default_rng(key), size, True, truth=True,
                              heights=(0.4, 1.05))
        r = 2 + (int(np.ceil(2.5 * sigmas[-1])) if sigmas and sigmas[-1] >= 0.3 else 0)
        monkeypatch.setattr(synthetic, "_person", ghost)
        without = data.render_scene(np.random.default_rng(key), size, True, heights=(0.4, 1.05))
        monkeypatch.setattr(synthetic, "_person", person)
        changed = np.abs(s.image - without).max(axis=2) > 1e-3
        assert not (changed & ~_dilate(s.mask, r)).any()
        hit, total = hit + (changed & s.mask).sum(), total + s.mask.sum()
        off_hit += min((changed & np.roll(s.mask, d, axis=a)).sum() for d in (-1, 1)
                       for a in (0, 1))
    assert hit >= 0.99 * total                 # (a colour equal to the background's: not seen)
    assert off_hit < 0.97 * total              # the test sees a mask one pixel off


def test_masks_are_deterministic_and_cached_consistently():
    a = SyntheticCameraDataset(20, 32, seed=8, with_masks=True)
    b = SyntheticCameraDataset(20, 32, seed=8, cache=False)
    c = SyntheticCameraDataset(20, 32, seed=8, with_masks=True, max_cache_bytes=0)
    first = a.masks(range(20))
    assert first.any()
    assert np.array_equal(first, a.masks(range(20)))             # from the cache
    assert np.array_equal(first, b.masks(range(19, -1, -1))[::-1])
    assert np.array_equal(first, c.masks(range(20)))             # nothing cached
    for i in (0, 1, 7):
        sa, sb = a.scene(i), b.scene(i)
        for f in data.Scene._fields:
            assert np.array_equal(getattr(sa, f), getattr(sb, f)), f
    assert not np.array_equal(first, SyntheticCameraDataset(20, 32, seed=9).masks(range(20)))
    tr, va = train_val_split(a, 0.25)
    assert np.array_equal(va.masks([1, 0]), first[va.indices[[1, 0]]])


def test_shares_follow_the_owner_and_stay_per_thread():
    from fastconv.data import _draw
    canvas = np.zeros((20, 20, 3), np.float32)
    plain = canvas.copy()
    shares = _draw.Shares(1, 20, 20)
    with _draw.tracking(shares):
        shares.owner = 0
        _draw.box(canvas, 10, 10, 6, 6, (1, 0, 0))
        shares.owner = None
        _draw.ellipse(canvas, 10, 10, 3, 3, (0, 0, 1))       # something in front
        t = threading.Thread(target=_draw.box, args=(np.zeros((20, 20, 3), np.float32),
                                                     2, 2, 2, 2, (0, 1, 0)))
        t.start()
        t.join()                # another thread's drawing is not recorded here
    _draw.box(plain, 10, 10, 6, 6, (1, 0, 0))
    _draw.ellipse(plain, 10, 10, 3, 3, (0, 0, 1))
    assert np.array_equal(canvas, plain)                      # same bits either way
    s = shares.share[0]
    assert s[10, 10] == 0 and s[5, 5] == 1 and s[1, 1] == 0
    assert np.allclose(s, canvas[..., 0])                     # red is exactly her paint


# ------------------------------------------------------------------ image folders

PIL = pytest.importorskip("PIL.Image")


def _write(path, arr):
    PIL.fromarray(arr).save(path)


def test_image_folder_loads_classes(tmp_path):
    rng = np.random.default_rng(0)
    for c, n in (("cat", 2), ("dog", 3)):
        (tmp_path / c).mkdir()
        for i in range(n):
            _write(tmp_path / c / f"{i}.png", rng.integers(0, 256, (20, 30, 3), np.uint8))
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    ds = ImageFolder(tmp_path, image_size=16)
    assert ds.classes == ("cat", "dog") and len(ds) == 5
    assert ds.labels.tolist() == [0, 0, 1, 1, 1]
    img, label = ds[3]
    assert img.shape == (16, 16, 3) and img.dtype == np.uint8 and label == 1
    assert ds.images([0, 4]).shape == (2, 16, 16, 3)


def test_read_image_crops_centre_and_converts(tmp_path):
    arr = np.zeros((10, 20), np.uint8)           # grey, 2:1: the centre 10x10 is white
    arr[:, 5:15] = 255
    _write(tmp_path / "a.png", arr)
    img = data.read_image(tmp_path / "a.png", 10)
    assert img.shape == (10, 10, 3)
    assert img.min() == 255


def test_image_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="is not a directory"):
        ImageFolder(tmp_path / "missing")
    with pytest.raises(ValueError, match="no class folders"):
        ImageFolder(tmp_path)
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        ImageFolder(tmp_path)
    _write(tmp_path / "a" / "x.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="one class folder"):
        ImageFolder(tmp_path)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "broken.jpg").write_bytes(b"this is not a jpeg")
    ds = ImageFolder(tmp_path, 8)
    with pytest.raises(ValueError, match="cannot read image .*broken.jpg"):
        ds[1]
