"""course_utils.data: the generated shapes, image folders, CIFAR-10 failures, subsets, datasets."""
import socket
import tarfile
import urllib.error

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torchvision import transforms as T

from course_utils import data
from course_utils.data import (DatasetUnavailable, ImageArrays, ImageDataset, TwoViewDataset,
                               balanced_subset, label_fraction, load_dataset, make_shapes)

# ---------------------------------------------------------------------------- the shapes set


def test_make_shapes_shapes_dtype_and_balance():
    arrays = make_shapes(200, seed=0)
    assert arrays.images.shape == (200, 32, 32, 3) and arrays.images.dtype == np.uint8
    assert arrays.labels.shape == (200,) and arrays.labels.dtype == np.int64
    assert arrays.classes == data.SHAPE_CLASSES and arrays.num_classes == 10
    assert np.bincount(arrays.labels, minlength=10).tolist() == [20] * 10
    assert arrays.images.std() > 30  # not blank: shapes on contrasting backgrounds


def test_make_shapes_is_deterministic_per_seed_and_seeds_differ():
    a, b, c = make_shapes(50, seed=3), make_shapes(50, seed=3), make_shapes(50, seed=4)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, c.images)


def test_make_shapes_image_size():
    assert make_shapes(10, image_size=48).images.shape == (10, 48, 48, 3)


def test_load_dataset_shapes_splits_differ_and_limit_is_balanced(course_env):
    train = load_dataset("shapes", "train", limit=100)
    test = load_dataset("shapes", "test", limit=100)
    assert len(train) == len(test) == 100
    assert not np.array_equal(train.images, test.images)
    assert np.bincount(train.labels, minlength=10).tolist() == [10] * 10
    assert set(np.unique(test.labels)) == set(range(10))


def test_load_dataset_rejects_unknown_names_and_splits(course_env):
    with pytest.raises(ValueError, match="unknown data set"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="split"):
        load_dataset("shapes", "val")


# ---------------------------------------------------------------------------- subsets


def test_label_fraction_per_class_counts():
    labels = np.repeat(np.arange(10), 100)
    for fraction, per_class in [(0.01, 1), (0.1, 10), (1.0, 100)]:
        idx = label_fraction(labels, fraction, seed=0)
        assert len(np.unique(idx)) == len(idx) and np.all(np.diff(idx) > 0)
        assert np.bincount(labels[idx], minlength=10).tolist() == [per_class] * 10


def test_label_fraction_keeps_at_least_one_per_class_and_varies_with_seed():
    labels = np.array([0] * 200 + [1] * 3 + [2] * 50)
    idx = label_fraction(labels, 0.01, seed=0)
    assert np.bincount(labels[idx]).tolist() == [2, 1, 1]
    assert not np.array_equal(label_fraction(labels, 0.1, seed=0),
                              label_fraction(labels, 0.1, seed=1))


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5])
def test_label_fraction_rejects_fractions_outside_0_1(fraction):
    with pytest.raises(ValueError, match="fraction"):
        label_fraction(np.zeros(10, dtype=int), fraction)


def test_balanced_subset_balances_as_far_as_the_data_allow():
    labels = np.array([0] * 50 + [1] * 5 + [2] * 45)
    idx = balanced_subset(labels, 9)
    assert np.bincount(labels[idx]).tolist() == [3, 3, 3]
    idx = balanced_subset(labels, 35)
    counts = np.bincount(labels[idx]).tolist()
    assert len(idx) == len(np.unique(idx)) == 35
    assert counts[1] == 5 and sorted(counts[::2]) == [15, 15]
    assert len(balanced_subset(labels, 1000)) == 100


# ---------------------------------------------------------------------------- ImageArrays


def test_image_arrays_validation():
    good = np.zeros((4, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        ImageArrays(good.astype(np.float32), np.zeros(4), ["a"])
    with pytest.raises(ValueError, match="uint8"):
        ImageArrays(np.zeros((4, 8, 8, 1), np.uint8), np.zeros(4), ["a"])
    with pytest.raises(ValueError, match="uint8"):
        ImageArrays(np.zeros((8, 8, 3), np.uint8), np.zeros(8), ["a"])
    with pytest.raises(ValueError, match="length"):
        ImageArrays(good, np.zeros(3), ["a"])


def test_image_arrays_subset_pil_and_tensor():
    arrays = make_shapes(20, seed=1)
    sub = arrays.subset([3, 5])
    assert np.array_equal(sub.images, arrays.images[[3, 5]]) and sub.classes == arrays.classes
    assert np.array_equal(np.asarray(arrays.pil(3)), arrays.images[3])
    x = arrays.tensor()
    assert x.shape == (20, 3, 32, 32) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1
    assert torch.allclose(x[3, :, 4, 7] * 255, torch.tensor(arrays.images[3, 4, 7], dtype=torch.float))


# ---------------------------------------------------------------------------- image folders

COLOURS = {"cat": (255, 0, 0), "dog": (0, 0, 255), "emu": (0, 255, 0)}


def _write_class_folders(root, counts):
    """root/<class>/<i>.png, every image of a class filled with that class's colour."""
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8), COLOURS[name]).save(root / name / f"{i}.png")


def _assert_colours_match_labels(arrays):
    for image, label in zip(arrays.images, arrays.labels):
        assert tuple(image[0, 0]) == COLOURS[arrays.classes[label]]


def test_load_image_folder_class_layout_holds_out_a_test_split(course_env, tmp_path):
    _write_class_folders(tmp_path / "pets", {"dog": 2, "cat": 10})
    train = load_dataset(f"folder:{tmp_path / 'pets'}", "train")
    test = load_dataset(f"folder:{tmp_path / 'pets'}", "test")
    assert train.classes == test.classes == ["cat", "dog"]
    assert train.images.shape == (9, 8, 8, 3) and train.images.dtype == np.uint8
    assert np.bincount(train.labels).tolist() == [8, 1]   # 20% of each class held out
    assert np.bincount(test.labels).tolist() == [2, 1]    # at least one per class
    _assert_colours_match_labels(train)
    _assert_colours_match_labels(test)


def test_folder_split_is_disjoint_and_complete():
    from course_utils.data import _folder_entries
    names = [f"{c}/{i:02d}.jpg" for c in ("a", "b") for i in range(10)] + ["a/notes.txt"]
    train, test = _folder_entries(names, "train"), _folder_entries(names, "test")
    assert not set(train) & set(test)
    assert sorted(train + test) == sorted((n, n[0]) for n in names if n.endswith(".jpg"))
    assert [n for n, _ in test] == ["a/08.jpg", "a/09.jpg", "b/08.jpg", "b/09.jpg"]


def _split_layout(root):
    _write_class_folders(root / "train", {"cat": 4, "dog": 4, "emu": 4})
    _write_class_folders(root / "test", {"cat": 1, "dog": 2, "emu": 1})


def test_load_image_folder_split_layout_and_limit(course_env, tmp_path):
    _split_layout(tmp_path / "pets")
    train = load_dataset(f"folder:{tmp_path / 'pets'}", "train")
    test = load_dataset(f"folder:{tmp_path / 'pets'}", "test")
    assert len(train) == 12 and np.bincount(test.labels).tolist() == [1, 2, 1]
    assert train.classes == test.classes == ["cat", "dog", "emu"]
    _assert_colours_match_labels(test)
    limited = load_dataset(f"folder:{tmp_path / 'pets'}", "train", limit=6)
    assert np.bincount(limited.labels).tolist() == [2, 2, 2]
    _assert_colours_match_labels(limited)


def test_load_image_folder_tar_gz_is_cached(course_env, tmp_path, monkeypatch):
    _split_layout(tmp_path / "pets")
    archive = tmp_path / "pets.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "pets", arcname="pets")
    first = load_dataset(f"folder:{archive}", "test")
    assert np.bincount(first.labels).tolist() == [1, 2, 1]
    assert first.classes == ["cat", "dog", "emu"]
    assert all(type(c) is str for c in first.classes)
    _assert_colours_match_labels(first)
    assert list((data.data_dir() / "cache").glob("pets-test-*.npz"))

    def no_tar(*args, **kwargs):
        raise AssertionError("the archive was opened again instead of using the cache")

    monkeypatch.setattr(tarfile, "open", no_tar)
    again = load_dataset(f"folder:{archive}", "test")
    assert np.array_equal(again.images, first.images) and again.classes == first.classes
    assert all(type(c) is str for c in again.classes)


def test_load_image_folder_missing_or_empty(course_env, tmp_path):
    with pytest.raises(DatasetUnavailable, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'nothing'}")
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(DatasetUnavailable, match="No images"):
        load_dataset(f"folder:{tmp_path / 'empty'}")


# ---------------------------------------------------------------------------- CIFAR-10 failures


def test_cifar10_offline_without_a_copy_names_data_set_folder_and_alternative(course_env):
    course_env.setenv("COURSE_OFFLINE", "1")
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset("cifar10", "train")
    message = str(info.value)
    assert "CIFAR-10" in message and str(data.data_dir()) in message and "'shapes'" in message


def test_cifar10_failed_download_raises_and_restores_socket_timeout(course_env):
    seen = {}

    def unreachable(root, train=True, download=False, **kwargs):
        seen.update(timeout=socket.getdefaulttimeout(), download=download, root=root)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    course_env.setattr(torchvision.datasets, "CIFAR10", unreachable)
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(12.5)
    try:
        with pytest.raises(DatasetUnavailable) as info:
            load_dataset("cifar10", "test")
        after = socket.getdefaulttimeout()
    finally:
        socket.setdefaulttimeout(before)
    assert after == 12.5
    assert seen["download"] is True and seen["timeout"] == data.DOWNLOAD_TIMEOUT_S
    message = str(info.value)
    assert "download" in message and "CIFAR-10" in message and "URLError" in message
    assert seen["root"] in message and "'shapes'" in message
    assert isinstance(info.value.__cause__, urllib.error.URLError)


def test_data_dir_honours_course_data_dir(course_env, tmp_path):
    target = tmp_path / "drive" / "course-data"
    course_env.setenv("COURSE_DATA_DIR", str(target))
    assert data.data_dir() == target and target.is_dir()


# ---------------------------------------------------------------------------- torch datasets


def test_image_dataset_applies_transform_and_returns_label():
    arrays = make_shapes(10, seed=0)
    x, y = ImageDataset(arrays, T.ToTensor())[4]
    assert x.shape == (3, 32, 32) and y == arrays.labels[4] and isinstance(y, int)
    img, _ = ImageDataset(arrays)[4]
    assert isinstance(img, Image.Image)


def test_two_view_dataset_gives_two_different_random_views():
    arrays = make_shapes(10, seed=0)
    random_crop = T.Compose([T.RandomResizedCrop(32, scale=(0.1, 0.5)), T.ToTensor()])
    dataset = TwoViewDataset(arrays, random_crop)
    assert len(dataset) == 10
    (v1, v2), y = dataset[2]
    assert v1.shape == v2.shape == (3, 32, 32) and y == arrays.labels[2]
    assert not torch.equal(v1, v2)


def test_two_view_dataset_with_two_transforms():
    arrays = make_shapes(10, seed=0)
    dataset = TwoViewDataset(arrays, T.ToTensor(), T.Compose([T.Grayscale(3), T.ToTensor()]))
    (v1, v2), _ = dataset[0]
    assert torch.allclose(v1 * 255, torch.from_numpy(arrays.images[0]).permute(2, 0, 1).float())
    assert torch.equal(v2[0], v2[1]) and torch.equal(v2[1], v2[2])  # grayscale view


def test_a_palette_limits_the_colours_and_keeps_shapes_visible():
    from course_utils.data import make_shapes
    shapes = make_shapes(200, seed=1, palette=6)
    corners = shapes.images[:, 0, 0].astype(float)          # background, plus noise
    fixed = np.random.default_rng(12345).uniform(0, 255, size=(6, 3))
    nearest = np.abs(corners[:, None] - fixed[None]).sum(-1).min(axis=1)
    assert np.percentile(nearest, 90) < 60                   # each corner near one of the 6
    assert len(np.unique(shapes.labels)) == 10
    with pytest.raises(ValueError, match="palette"):
        make_shapes(10, palette=1)


def test_shapes_know_each_objects_pixels():
    """The masks are the pixels drawn in the foreground colour, and subsets keep them."""
    from course_utils.data import OBJECT_CLASSES, load_dataset
    shapes = load_dataset("shapes", "train", limit=60)
    assert shapes.masks.shape == shapes.images.shape[:3] and shapes.masks.dtype == bool
    for img, mask, label in zip(shapes.images.astype(float), shapes.masks, shapes.labels):
        inside, outside = img[mask].mean(0), img[~mask].mean(0)
        assert np.abs(inside - outside).sum() > 150          # two far-apart colours
        if label in OBJECT_CLASSES:                           # one object, not a texture
            assert 0.05 < mask.mean() < 0.6
    part = shapes.subset([3, 1])
    assert np.array_equal(part.masks, shapes.masks[[3, 1]])
    with pytest.raises(ValueError, match="masks"):
        type(shapes)(shapes.images, shapes.labels, shapes.classes, masks=shapes.masks[:, :5])
