"""The scenes of benchmarks/prompt_scenes.py are what its docstring says: each click's target
is one object's pixels, and the painted (blue) pixels are the objects' and nothing else's."""
from __future__ import annotations

import numpy as np
import pytest

import prompt_scenes


def painted(images):
    """Blue pixels: the offline objects' colour (blue above red by far more than the noise)."""
    return images[..., 2].astype(int) > images[..., 0].astype(int)


def by_image(owner, masks, n):
    return [masks[owner == i] for i in range(n)]


@pytest.mark.parametrize("kind", prompt_scenes.SCENES)
def test_every_scene_has_clickable_objects(kind):
    images, owner, masks = prompt_scenes.make_scenes(kind, 12, seed=3)
    assert images.shape == (12, 32, 32, 3) and images.dtype == np.uint8
    assert masks.shape == (len(owner), 32, 32) and masks.dtype == bool
    assert set(owner.tolist()) == set(range(12))            # every image has an object
    assert masks.reshape(len(masks), -1).sum(1).min() > 4    # none too small to click


@pytest.mark.parametrize("kind, per_image", [("one shape", 1), ("four shapes", 4),
                                             ("like this one", 2), ("two overlapping", None)])
def test_objects_are_disjoint_and_are_the_painted_pixels(kind, per_image):
    images, owner, masks = prompt_scenes.make_scenes(kind, 20, seed=5)
    blue = painted(images)
    for i, objects in enumerate(by_image(owner, masks, 20)):
        if per_image:
            assert len(objects) == per_image
        assert objects.sum(0).max() <= 1                     # no pixel in two objects
        if kind != "two overlapping":                        # a tiny visible part is dropped
            assert np.array_equal(objects.any(0), blue[i])


def test_like_this_one_groups_two_shapes_of_a_class():
    _, owner, masks = prompt_scenes.make_scenes("like this one", 6, seed=1)
    assert all(len(objects) == 2 for objects in by_image(owner, masks, 6))


def test_a_shape_on_texture_is_painted_with_texture_around_it():
    images, owner, masks = prompt_scenes.make_scenes("shape on texture", 20, seed=2)
    blue = painted(images)
    assert np.array_equal(owner, np.arange(20))
    assert (masks <= blue).all()                             # the shape is painted
    assert (blue & ~masks).reshape(20, -1).sum(1).min() > 0   # and so is texture outside it


def test_two_textures_split_the_image_in_two():
    _, owner, masks = prompt_scenes.make_scenes("two textures", 10, seed=4)
    for objects in by_image(owner, masks, 10):
        assert len(objects) == 2 and (objects.sum(0) == 1).all()
