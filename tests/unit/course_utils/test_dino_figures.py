"""Notebook 04's figures: the multi-crop views and the [CLS] attention maps."""
import warnings

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from course_utils import plots
from course_utils.augment import to_model_input
from course_utils.data import make_shapes

N_LOCAL = 3
TITLES = ["original", "global 1", "global 2"] + [f"local {k + 1}" for k in range(N_LOCAL)]


def fake_multicrop(image):
    """Two 32x32 'global' crops (the image, maybe flipped) and N_LOCAL 16x16 'local' crops
    at random places, normalised like the course's transforms."""
    x = to_model_input()(image)                                          # (3, 32, 32)
    crops = [x, x.flip(-1) if torch.rand(1) < 0.5 else x]
    for _ in range(N_LOCAL):
        top, left = torch.randint(0, 17, (2,)).tolist()
        crops.append(x[:, top:top + 16, left:left + 16])
    return crops


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(40)


@pytest.fixture(scope="module")
def images():
    """4 random uint8 images (B, H, W, 3)."""
    return np.random.default_rng(0).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)


def _images_of(ax):
    return [np.asarray(a.get_array()) for a in ax.get_children() if isinstance(a, AxesImage)]


def _grid(fig, cols):
    return [fig.axes[r: r + cols] for r in range(0, len(fig.axes), cols)]


# ---------------------------------------------------------------------------- multi-crop

def test_show_multicrop_rows_titles_and_classes(shapes):
    fig = plots.show_multicrop(shapes, fake_multicrop, n_images=3)
    assert isinstance(fig, Figure)
    cols = 1 + 2 + N_LOCAL
    rows = _grid(fig, cols)
    assert len(fig.axes) == 3 * cols and len(rows) == 3
    assert [ax.get_title() for ax in rows[0]] == TITLES
    classes = [row[0].get_ylabel() for row in rows]
    assert len(set(classes)) == 3 and set(classes) <= set(shapes.classes)
    sizes = [_images_of(ax)[0].shape[:2] for ax in rows[0]]
    assert sizes == [(32, 32)] * 3 + [(16, 16)] * N_LOCAL
    assert "2 global crops" in fig._suptitle.get_text()
    assert f"{N_LOCAL} local crops" in fig._suptitle.get_text()


def test_show_multicrop_draws_local_crops_at_half_the_size(shapes):
    fig = plots.show_multicrop(shapes, fake_multicrop, n_images=2)
    fig.canvas.draw()  # applies the layout and the equal aspect
    row = fig.axes[:1 + 2 + N_LOCAL]
    boxes = [ax.get_window_extent() for ax in row]
    global_w, global_h = boxes[1].width, boxes[1].height
    assert boxes[2].width == pytest.approx(global_w, rel=0.02)
    for box in boxes[3:]:
        assert box.width == pytest.approx(global_w / 2, rel=0.1)
        assert box.height == pytest.approx(global_h / 2, rel=0.1)


def test_show_multicrop_leaves_the_global_rng_untouched(shapes):
    torch.manual_seed(1)
    expected_next = torch.rand(1)
    torch.manual_seed(1)
    plots.show_multicrop(shapes, fake_multicrop, n_images=2, seed=5)
    assert torch.equal(torch.rand(1), expected_next)


def test_show_multicrop_asks_for_a_list_of_crops(shapes):
    with pytest.raises(TypeError, match="list of crops"):
        plots.show_multicrop(shapes, to_model_input(), n_images=1)


# ---------------------------------------------------------------------------- attention maps

def test_attention_maps_panels_and_titles(images):
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255        # (4, 3, 32, 32)
    attention = torch.rand(4, 3, 8, 8)
    fig = plots.attention_maps(x, attention, title="last layer")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4 * (3 + 2)
    assert [ax.get_title() for ax in fig.axes[:5]] == ["image", "head 1", "head 2", "head 3",
                                                      "mean"]
    assert fig._suptitle.get_text() == "last layer"
    assert np.allclose(_images_of(fig.axes[5])[0], images[1] / 255, atol=1e-6)
    for ax in fig.axes[6:10]:  # image 1: greyed image, then its map scaled to [0, 1]
        grey, heat = _images_of(ax)
        assert grey.shape == heat.shape == (32, 32)
        assert heat.min() == pytest.approx(0) and heat.max() == pytest.approx(1)


def test_attention_maps_shows_a_hot_patch_where_it_is(images):
    attention = torch.full((2, 2, 8, 8), 0.01)
    attention[0, 1, 2, 5] = 1.0     # image 0, head 2: patch row 2, column 5
    fig = plots.attention_maps(images[:2], attention)                 # uint8 (B, H, W, 3)
    _, heat = _images_of(fig.axes[2])                                 # row 0, "head 2"
    assert heat.shape == (32, 32)
    hot = np.argwhere(heat == heat.max())
    assert len(hot) == 16                                             # one 4x4 patch
    assert set(hot[:, 0]) == set(range(8, 12)) and set(hot[:, 1]) == set(range(20, 24))
    _, mean = _images_of(fig.axes[3])                                 # the mean shows it too
    assert np.unravel_index(mean.argmax(), mean.shape) == (8, 20)
    _, flat = _images_of(fig.axes[1])                                 # a constant map: no NaN
    assert np.all(np.isfinite(flat))


def test_attention_maps_accepts_flat_patches_and_explains_a_cls_column(images):
    fig = plots.attention_maps(images[:2], torch.rand(2, 4, 64))
    assert len(fig.axes) == 2 * 6
    with pytest.raises(ValueError, match=r"attn\[:, :, 0, 1:\]"):
        plots.attention_maps(images[:2], torch.rand(2, 4, 65))
    with pytest.raises(ValueError, match="B = 2"):
        plots.attention_maps(images[:2], torch.rand(3, 4, 8, 8))


def test_dino_figures_write_nothing_to_stderr_and_raise_no_warning(shapes, images, capfd):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figs = [plots.show_multicrop(shapes, fake_multicrop, n_images=2),
                plots.attention_maps(images, torch.rand(4, 2, 8, 8))]
        for fig in figs:
            fig.canvas.draw()
    assert capfd.readouterr().err == ""
