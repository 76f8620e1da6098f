"""Data for the camera classifier: the built-in synthetic scenes, image folders, and
the batch loader.

    from fastconv.data import SyntheticCameraDataset, DataLoader, Augment
    ds = SyntheticCameraDataset(n=8000, image_size=64, seed=0)
    train, val = train_val_split(ds, 0.125)
    for x, y in DataLoader(train, 64, shuffle=True, augment=Augment()).epoch(0):
        ...                                   # x: float32 (64, 3, 64, 64), y: int64 (64,)
    ds.scene(3).mask, ds.masks(idx)           # person masks (and boxes) for segmentation
"""
from .folder import IMAGE_EXTENSIONS, ImageFolder, read_image, write_image
from .loader import MEAN, STD, Augment, DataLoader, Subset, normalize, train_val_split
from .synthetic import CLASSES, Scene, SyntheticCameraDataset, render_scene

__all__ = ["SyntheticCameraDataset", "render_scene", "Scene", "CLASSES", "ImageFolder",
           "read_image", "write_image", "IMAGE_EXTENSIONS", "DataLoader", "Augment", "Subset",
           "train_val_split", "normalize", "MEAN", "STD"]
