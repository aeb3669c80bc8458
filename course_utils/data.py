"""Data sets as uint8 image arrays, and the PyTorch datasets built on them.

Every data set, whatever its source, becomes an :class:`ImageArrays`: ``images`` of shape
(N, H, W, 3) and dtype uint8, ``labels`` of shape (N,), and the class names. The same
loaders and transforms then serve CIFAR-10, the offline ``shapes`` set and a user's folder.

Names understood by :func:`load_dataset`:

``cifar10``       torchvision's CIFAR-10, downloaded once into :func:`data_dir`.
``stl10``         torchvision's STL-10 (96x96; the labelled train/test splits).
``shapes``        generated here, no network: 10 classes of shapes and textures, 32x32 RGB,
                  with each object's pixels (``masks``). The offline default for fast
                  mode, grading and CI: every object in one colour on a backdrop of
                  another, :data:`SHAPES_COLOURS` (see :func:`make_shapes`).
``folder:PATH``   an ImageFolder (``PATH/<class>/*.jpg``, or ``PATH/<split>/<class>/*``),
                  or a ``.tar``/``.tar.gz`` archive holding one.
"""
from __future__ import annotations

import hashlib
import io
import os
import socket
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .runtime import flag, project_root

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")
DOWNLOAD_TIMEOUT_S = 30
OFFLINE_HINT = ("To continue offline, use dataset='shapes' (generated, needs no network), "
                "or put a copy of the data set in that folder (or point COURSE_DATA_DIR at one).")


class DatasetUnavailable(RuntimeError):
    """A data set could not be found or downloaded."""


@dataclass
class ImageArrays:
    """A labelled image data set held in memory as uint8 arrays."""

    images: np.ndarray            # (N, H, W, 3) uint8
    labels: np.ndarray            # (N,) int64
    classes: list[str]
    name: str = "images"
    meta: dict = field(default_factory=dict)
    masks: np.ndarray | None = None   # (N, H, W) bool: the object's pixels, where known

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be (N, H, W, 3) uint8, got {self.images.shape} "
                             f"{self.images.dtype}")
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.labels) != len(self.images):
            raise ValueError("images and labels differ in length")
        if self.masks is not None and self.masks.shape != self.images.shape[:3]:
            raise ValueError(f"masks must be (N, H, W) = {self.images.shape[:3]}, got "
                             f"{self.masks.shape}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, indices) -> "ImageArrays":
        indices = np.asarray(indices)
        masks = None if self.masks is None else self.masks[indices]
        return ImageArrays(self.images[indices], self.labels[indices], list(self.classes),
                           self.name, dict(self.meta), masks)

    def pil(self, i: int) -> Image.Image:
        return Image.fromarray(self.images[i])

    def tensor(self) -> torch.Tensor:
        """All images as one float tensor (N, 3, H, W) in [0, 1]."""
        return torch.from_numpy(self.images).permute(0, 3, 1, 2).float().div(255)

    def __repr__(self) -> str:
        h, w = self.images.shape[1:3]
        return f"ImageArrays({self.name!r}, n={len(self)}, {h}x{w}, classes={self.num_classes})"


# ---------------------------------------------------------------------------- where data lives

def data_dir() -> Path:
    """The download cache: ``COURSE_DATA_DIR`` if set, else the checkout's ``data/``,
    else ``./data``. Point it at a mounted Google Drive to download only once on Colab."""
    env = os.environ.get("COURSE_DATA_DIR")
    if env:
        path = Path(env).expanduser()
    elif project_root() is not None:
        path = project_root() / "data"
    else:
        path = Path.cwd() / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path


def offline() -> bool:
    """True when ``COURSE_OFFLINE`` is on (``1``, ``true``, ``yes``, ``on``): no download
    is attempted."""
    return flag("COURSE_OFFLINE")


# ---------------------------------------------------------------------------- the front door

def load_dataset(name: str, split: str = "train", root: str | Path | None = None,
                 download: bool = True, limit: int | None = None, seed: int = 0) -> ImageArrays:
    """Load a data set by name (see the module docstring) as :class:`ImageArrays`.

    ``limit`` keeps a class-balanced random subset of that many images.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root) if root is not None else data_dir()
    if name == "shapes":
        n = limit or (5000 if split == "train" else 1000)
        return make_shapes(n, seed=seed + (0 if split == "train" else 10_000),
                           colours=SHAPES_COLOURS)
    if name == "cifar10":
        arrays = load_cifar10(split, root, download)
    elif name == "stl10":
        arrays = load_stl10(split, root, download)
    elif name.startswith("folder:"):
        arrays = load_image_folder(name[len("folder:"):], split)
    else:
        raise ValueError(f"unknown data set {name!r}: use 'cifar10', 'stl10', 'shapes' "
                         f"or 'folder:PATH'")
    if limit is not None and limit < len(arrays):
        arrays = arrays.subset(balanced_subset(arrays.labels, limit, seed))
    return arrays


def _download(make: Callable, dataset: str, root: Path, download: bool):
    """Build a torchvision data set, turning every failure into :class:`DatasetUnavailable`."""
    download = download and not offline()
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # a dead network fails, it does not hang
    try:
        return make(download)
    except Exception as err:  # noqa: BLE001 - any failure gets the same helpful message
        action = "download" if download else "find (downloads are off)"
        raise DatasetUnavailable(
            f"Could not {action} {dataset} in {root}: {type(err).__name__}: {err}. "
            f"{OFFLINE_HINT}") from err
    finally:
        socket.setdefaulttimeout(old_timeout)


def load_cifar10(split: str, root: Path, download: bool = True) -> ImageArrays:
    """CIFAR-10 through torchvision (about 170 MB, downloaded once, with a progress bar)."""
    from torchvision.datasets import CIFAR10

    ds = _download(lambda dl: CIFAR10(str(root), train=split == "train", download=dl),
                   "CIFAR-10", root, download)
    return ImageArrays(np.asarray(ds.data), np.asarray(ds.targets), list(ds.classes),
                       "cifar10")


def load_stl10(split: str, root: Path, download: bool = True) -> ImageArrays:
    """STL-10's labelled splits through torchvision (2.6 GB download)."""
    from torchvision.datasets import STL10

    ds = _download(lambda dl: STL10(str(root), split=split, download=dl), "STL-10", root,
                   download)
    return ImageArrays(np.ascontiguousarray(ds.data.transpose(0, 2, 3, 1)), ds.labels,
                       list(ds.classes), "stl10")


# ---------------------------------------------------------------------------- image folders

def _decode(data: bytes | str | Path) -> np.ndarray:
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    with Image.open(source) as img:
        return np.asarray(img.convert("RGB"))


SPLITS = ("train", "test")
HELD_OUT_FRACTION = 0.2   # test share of each class in a folder without train/ and test/


def _folder_entries(names: Sequence[str], split: str) -> list[tuple[str, str]]:
    """(name, class) of the ``split`` for image paths laid out as [prefix/][split/]class/file.

    Without ``train/`` and ``test/`` folders, the last 20% of each class (in name order,
    at least one image of a class of two or more) is the test split, the rest is train.
    """
    images = sorted((n, Path(n).parts) for n in names if n.lower().endswith(IMAGE_SUFFIXES))
    if any(s in parts[:-2] for _, parts in images for s in SPLITS):
        return [(n, parts[-2]) for n, parts in images if split in parts[:-2]]
    by_class: dict[str, list[str]] = {}
    for n, parts in images:
        by_class.setdefault(parts[-2], []).append(n)
    entries = []
    for cls, files in by_class.items():
        n_test = max(1, round(HELD_OUT_FRACTION * len(files))) if len(files) > 1 else 0
        chosen = files[len(files) - n_test:] if split == "test" else files[:len(files) - n_test]
        entries += [(n, cls) for n in chosen]
    return sorted(entries)


def load_image_folder(path: str | Path, split: str = "train") -> ImageArrays:
    """An ImageFolder (or a tar archive of one) as :class:`ImageArrays`.

    With ``train/`` and ``test/`` subfolders the split is chosen; otherwise the last 20% of
    each class is held out as the test split. Images must share one size. Decoded archives are cached under :func:`data_dir`.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetUnavailable(f"Image folder {path} does not exist. {OFFLINE_HINT}")
    if path.is_file():
        return _load_tar(path, split)
    names = [str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()]
    entries = _folder_entries(names, split)
    if not entries:
        raise DatasetUnavailable(f"No images found in {path} (expected {path}/<class>/*.jpg)")
    classes = sorted({c for _, c in entries})
    images = np.stack([_decode(path / n) for n, _ in entries])
    labels = np.array([classes.index(c) for _, c in entries])
    return ImageArrays(images, labels, classes, f"folder:{path.name}")


def _load_tar(path: Path, split: str) -> ImageArrays:
    stat = path.stat()
    key = hashlib.sha1(f"v2:{path.resolve()}:{stat.st_size}:{stat.st_mtime}:{split}".encode())
    cache = data_dir() / "cache" / f"{path.name.split('.')[0]}-{split}-{key.hexdigest()[:10]}.npz"
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            classes = [str(c) for c in z["classes"]]  # plain str, not numpy.str_
            return ImageArrays(z["images"], z["labels"], classes, f"folder:{path.name}")
    # One sequential pass: random access into a compressed tar re-reads it from the start.
    with tarfile.open(path, mode="r|*") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar
                 if m.isfile() and m.name.lower().endswith(IMAGE_SUFFIXES)}
    entries = _folder_entries(list(files), split)
    if not entries:
        raise DatasetUnavailable(f"No images found in archive {path}")
    classes = sorted({c for _, c in entries})
    images = np.stack([_decode(files[n]) for n, _ in entries])
    labels = np.array([classes.index(c) for _, c in entries])
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, images=images, labels=labels, classes=np.array(classes))
    return ImageArrays(images, labels, classes, f"folder:{path.name}")


# ---------------------------------------------------------------------------- the offline set

SHAPE_CLASSES = ["circle", "square", "triangle", "cross", "ring",
                 "stripes", "checker", "dots", "star", "crescent"]
OBJECT_CLASSES = (0, 1, 2, 3, 4, 8, 9)     # one shape on a background (the rest: textures)
# The offline data set's colours: every image is a blue shape (or texture) on a brown
# backdrop, with pixel noise. Colour then tells no image from another, and what two crops
# of one image share is its shape, so that a short run of any method learns shape rather
# than colour (with colours that differ between images, DINO, which has no negatives, keeps
# telling images apart by their colours and learns less about shape:
# benchmarks/dino_fast_data.py measures it, benchmarks/fast_mode_simclr.py --palette N for
# SimCLR). Any colour (no palette, no colours) is make_shapes' default.
SHAPES_COLOURS = ((60, 80, 200), (170, 100, 85))     # (object, backdrop) RGB


def _shape_mask(label: int, u: np.ndarray, v: np.ndarray, r: float, rng) -> np.ndarray:
    """Boolean mask of one shape in rotated, centred coordinates (u, v) of radius r."""
    d = np.hypot(u, v)
    if label == 0:
        return d < r
    if label == 1:
        return np.maximum(abs(u), abs(v)) < 0.8 * r
    if label == 2:  # equilateral triangle
        return (v > -0.5 * r) & (v < r - np.sqrt(3) * abs(u))
    if label == 3:
        return ((abs(u) < r / 3) & (abs(v) < r)) | ((abs(v) < r / 3) & (abs(u) < r))
    if label == 4:
        return (d < r) & (d > 0.55 * r)
    freq = rng.uniform(9, 14)
    if label == 5:
        return np.sin(u * freq) > 0
    if label == 6:
        return np.sin(u * freq * 0.8) * np.sin(v * freq * 0.8) > 0
    if label == 7:
        cell = 2 * np.pi / freq * 1.6
        du, dv = (u % cell) - cell / 2, (v % cell) - cell / 2
        return np.hypot(du, dv) < cell * 0.28
    phi = np.arctan2(v, u)
    if label == 8:
        return d < r * (0.55 + 0.45 * np.cos(5 * phi))
    return (d < r) & (np.hypot(u - 0.45 * r, v) > 0.8 * r)   # crescent


def _colours(rng, palette: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """A foreground and a background colour far enough apart to keep the shape visible:
    any RGB colour, or two of ``palette``'s rows."""
    draw = (lambda: rng.uniform(0, 255, size=3)) if palette is None else \
        (lambda: palette[rng.integers(len(palette))])
    fg, bg = draw(), draw()
    while np.abs(fg - bg).sum() < 200:
        bg = draw()
    return fg, bg


def make_shapes(n: int, image_size: int = 32, seed: int = 0, palette: int | None = None,
                colours: tuple | None = None) -> ImageArrays:
    """Generate ``n`` images of 10 shape/texture classes (balanced), no network needed.

    Position, size and rotation are random, and so are the two colours of an image by
    default, so a good representation must be about shape, which is what the augmentations
    teach it. With ``palette``, the two colours are drawn from that many fixed colours (the
    same for every split); with ``colours`` = (foreground RGB, background RGB), every image
    has those two. ``masks`` holds each image's shape pixels (for a texture class, its
    foreground stripes, checks or dots).
    """
    if palette is not None and colours is not None:
        raise ValueError("give a palette or fixed colours, not both")
    rng = np.random.default_rng(seed)
    palette_rgb = None if palette is None else \
        np.random.default_rng(12345).uniform(0, 255, size=(palette, 3))
    if palette_rgb is not None:
        apart = np.abs(palette_rgb[:, None] - palette_rgb[None]).sum(-1) >= 200
        if not apart.any(axis=1).all():
            raise ValueError(f"palette={palette}: some colour has no other far enough from "
                             f"it to draw a visible shape; use more colours")
    coords = (np.arange(image_size) + 0.5) / image_size * 2 - 1
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    labels = np.arange(n) % len(SHAPE_CLASSES)
    rng.shuffle(labels)
    images = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    masks = np.empty((n, image_size, image_size), dtype=bool)
    for i, label in enumerate(labels):
        cx, cy = rng.uniform(-0.3, 0.3, size=2)
        theta = rng.uniform(0, 2 * np.pi)
        r = rng.uniform(0.45, 0.7)
        x, y = xx - cx, yy - cy
        u, v = np.cos(theta) * x + np.sin(theta) * y, -np.sin(theta) * x + np.cos(theta) * y
        mask = masks[i] = _shape_mask(int(label), u, v, r, rng)
        fg, bg = (np.asarray(c, dtype=float) for c in colours) if colours is not None \
            else _colours(rng, palette_rgb)
        img = np.where(mask[..., None], fg, bg) + rng.normal(0, 12, size=(image_size, image_size, 3))
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
    return ImageArrays(images, labels, list(SHAPE_CLASSES), "shapes",
                       {"seed": seed, "palette": palette, "colours": colours}, masks)


# ---------------------------------------------------------------------------- subsets

def balanced_subset(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of about ``n`` samples with the classes as balanced as the data allow."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    order = [idx for rank in range(max(map(len, per_class)))
             for idx in (p[rank] for p in per_class if rank < len(p))]
    return np.sort(np.array(order[:n], dtype=np.int64))


def label_fraction(labels: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Indices of a class-stratified ``fraction`` of the samples (at least one per class)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = max(1, int(round(fraction * len(idx))))
        keep.append(rng.choice(idx, size=k, replace=False))
    return np.sort(np.concatenate(keep))


# ---------------------------------------------------------------------------- torch datasets

class ImageDataset(Dataset):
    """(transform(PIL image), label) pairs from :class:`ImageArrays`."""

    def __init__(self, arrays: ImageArrays, transform: Callable | None = None):
        self.arrays, self.transform = arrays, transform

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i: int):
        img = self.arrays.pil(i)
        return (self.transform(img) if self.transform else img), int(self.arrays.labels[i])


class TwoViewDataset(Dataset):
    """((view_1, view_2), label): two independent random augmentations of each image.

    ``transform`` is applied twice; pass two transforms for asymmetric views (BYOL, DINO).
    """

    def __init__(self, arrays: ImageArrays, transform: Callable,
                 transform_2: Callable | None = None):
        self.arrays = arrays
        self.transform_1, self.transform_2 = transform, transform_2 or transform

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i: int):
        img = self.arrays.pil(i)
        return (self.transform_1(img), self.transform_2(img)), int(self.arrays.labels[i])


# ---------------------------------------------------------------------------- view loaders

def gpu_augment_enabled(device: torch.device) -> bool:
    """Batched augmentation on the training device: on CUDA and on the CPU (where it is
    about ten times faster than PIL in the training process) unless
    ``COURSE_GPU_AUGMENT=0``; ``COURSE_GPU_AUGMENT=1`` turns it on for any device."""
    switch = flag("COURSE_GPU_AUGMENT", default=None)
    return device.type in ("cuda", "cpu") if switch is None else switch


def view_loader(arrays: ImageArrays, transform: Callable, batch_size: int, *,
                two_views: bool = False, device: torch.device | None = None,
                gpu: bool | None = None, num_workers: int | None = None,
                shuffle: bool = True, drop_last: bool = True, channels_last: bool = False):
    """Batches of augmented views of ``arrays`` for training.

    ``transform`` maps a PIL image to a tensor (or, like ``MultiCropTransform``, to a list of
    them); ``two_views`` applies it twice. Yields ``(views, labels)`` as a DataLoader over
    :class:`ImageDataset` or :class:`TwoViewDataset` does. On CUDA (``gpu=None``) the images
    live on the GPU and the same recipe runs batched there
    (:mod:`course_utils.batch_augment`); elsewhere, or for a transform that cannot be batched,
    PIL workers augment as usual.
    """
    from torch.utils.data import DataLoader

    from . import batch_augment
    from .runtime import get_device, num_workers as default_workers

    device = device or get_device()
    if gpu if gpu is not None else gpu_augment_enabled(device):
        try:
            pipelines = ([transform, transform] if two_views
                         else batch_augment.traced_pipelines(transform, arrays.pil(0)))
            single = not two_views and not isinstance(transform(arrays.pil(0)), (list, tuple))
            by_id = {id(p): batch_augment.translate(p, channels_last) for p in pipelines}
            views = [by_id[id(p)] for p in pipelines]
            return batch_augment.GPUViewLoader.from_arrays(
                arrays, views, batch_size, device, shuffle=shuffle, drop_last=drop_last,
                single=single)
        except batch_augment.UnsupportedTransform as err:
            print(f"GPU augmentation is off ({err}); augmenting with PIL workers instead")
    dataset = TwoViewDataset(arrays, transform) if two_views else ImageDataset(arrays, transform)
    workers = default_workers() if num_workers is None else num_workers
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                      num_workers=workers, persistent_workers=workers > 0,
                      pin_memory=device.type == "cuda")
