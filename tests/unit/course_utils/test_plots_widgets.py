"""course_utils.plots and course_utils.widgets: what each figure draws, on the Agg backend."""
import sys
import warnings

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from torchvision import transforms as T

from course_utils import plots, widgets
from course_utils.augment import to_model_input
from course_utils.data import make_shapes
from course_utils.train import History


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(30, seed=0)


def _images(ax):
    return [a for a in ax.get_children() if isinstance(a, AxesImage)]


def test_backend_is_agg():
    assert matplotlib.get_backend().lower() == "agg"


# ---------------------------------------------------------------------------- image grids

def test_image_grid_from_uint8_nhwc(shapes):
    titles = [shapes.classes[y] for y in shapes.labels[:10]]
    fig = plots.image_grid(shapes.images[:10], nrow=4, titles=titles, title="ten shapes")
    assert isinstance(fig, Figure) and len(fig.axes) == 10  # the 2 empty cells are removed
    assert [ax.get_title() for ax in fig.axes] == titles
    assert fig._suptitle.get_text() == "ten shapes"
    assert all(len(_images(ax)) == 1 for ax in fig.axes)
    shown = _images(fig.axes[3])[0].get_array()
    assert np.allclose(shown, shapes.images[3] / 255)
    first_row = {round(ax.get_position().y0, 3) for ax in fig.axes[:4]}
    assert len(first_row) == 1  # nrow images per row


def test_image_grid_from_float_nchw_tensor(shapes):
    x = shapes.tensor()[:5]
    fig = plots.image_grid(x, nrow=8)
    assert len(fig.axes) == 5
    assert np.allclose(_images(fig.axes[0])[0].get_array(), x[0].permute(1, 2, 0).numpy())
    gray = plots.image_grid(x[:, :1])
    assert _images(gray.axes[0])[0].get_array().ndim == 2


def test_image_grid_rejects_bad_input(shapes):
    with pytest.raises(ValueError, match="N, H, W"):
        plots.image_grid(shapes.images[0])
    with pytest.raises(ValueError, match="titles"):
        plots.image_grid(shapes.images[:3], titles=["a"])


def test_show_augmentations_grid_and_global_rng_untouched(shapes):
    transform = T.Compose([T.RandomResizedCrop(32, scale=(0.2, 1.0)), to_model_input()])
    torch.manual_seed(5)
    expected_next = torch.rand(1)
    torch.manual_seed(5)
    fig = plots.show_augmentations(shapes, transform, n_images=3, n_views=2)
    assert torch.equal(torch.rand(1), expected_next)
    assert len(fig.axes) == 9 and all(len(_images(ax)) == 1 for ax in fig.axes)
    rows = [fig.axes[3 * r: 3 * r + 3] for r in range(3)]
    labels = [row[0].get_ylabel() for row in rows]
    assert len(set(labels)) == 3 and set(labels) <= set(shapes.classes)  # 3 different classes
    assert [ax.get_title() for ax in rows[0]] == ["original", "view 1", "view 2"]
    for row in rows:
        original = _images(row[0])[0].get_array()
        assert any(np.allclose(original, img / 255) for img in shapes.images)
        for ax in row[1:]:  # denormalised back to [0, 1]
            view = np.asarray(_images(ax)[0].get_array())
            assert view.shape == (32, 32, 3) and view.min() >= 0 and view.max() <= 1
            assert view.std() > 0.02


def test_show_augmentations_with_a_pil_transform(shapes):
    fig = plots.show_augmentations(shapes, T.RandomHorizontalFlip(), n_images=2, n_views=1)
    originals = [_images(fig.axes[i])[0].get_array() for i in (0, 2)]
    views = [_images(fig.axes[i])[0].get_array() for i in (1, 3)]
    for original, view in zip(originals, views):  # a flip or the image itself
        assert np.allclose(view, original) or np.allclose(view, original[:, ::-1])


# ---------------------------------------------------------------------------- losses

def test_moving_average():
    assert np.allclose(plots.moving_average([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])
    assert np.allclose(plots.moving_average([4.0], 10), [4.0])
    assert len(plots.moving_average([], 3)) == 0


def test_plot_losses_history_raw_and_smoothed():
    gen = np.random.default_rng(0)
    loss = list(np.linspace(3, 1, 200) + 0.3 * gen.standard_normal(200))
    fig = plots.plot_losses(History(loss=loss), title="SimCLR")
    ax = fig.axes[0]
    raw, smooth = ax.get_lines()
    assert np.array_equal(raw.get_xdata(), np.arange(1, 201)) and np.allclose(raw.get_ydata(), loss)
    assert raw.get_alpha() < 1 and smooth.get_linewidth() > raw.get_linewidth()
    assert np.diff(smooth.get_ydata()).std() < 0.2 * np.diff(raw.get_ydata()).std()
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "loss" and ax.get_title() == "SimCLR"


def test_plot_losses_dict_of_runs_on_a_given_axes():
    fig, (left, right) = plt.subplots(1, 2)
    out = plots.plot_losses({"naive": [3.0, 2.0, 1.0], "vectorised": History(loss=[2.0, 1.0])},
                            ax=right)
    assert out is fig and len(left.get_lines()) == 0 and len(right.get_lines()) == 4
    assert [t.get_text() for t in right.get_legend().get_texts()] == ["naive", "vectorised"]
    assert len(plots.plot_losses([1.0, 0.5]).axes[0].get_lines()) == 2


# ---------------------------------------------------------------------------- embeddings

def test_plot_embedding_2d_pca_scatter_and_legend():
    gen = torch.Generator().manual_seed(0)
    plane = torch.randn(2, 10, generator=gen)
    coords = torch.randn(60, 2, generator=gen) * torch.tensor([3.0, 1.0])
    feats = coords @ plane + 5                     # 60 points on a 2-D plane in 10-D
    labels = torch.arange(60) % 3
    fig = plots.plot_embedding_2d(feats, labels, classes=["cat", "dog", "emu", "unused"])
    ax = fig.axes[0]
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    points = np.concatenate([s.get_offsets() for s in scatters])
    assert len(scatters) == 3 and len(points) == 60
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["cat", "dog", "emu"]
    # PCA of data on a plane keeps every distance (a rotation of the centred plane)
    order = np.concatenate([np.flatnonzero(labels.numpy() == c) for c in range(3)])
    exact = "donot_use_mm_for_euclid_dist"
    original = torch.cdist(feats[order], feats[order], compute_mode=exact)
    projected = torch.cdist(torch.tensor(points), torch.tensor(points), compute_mode=exact).float()
    assert torch.allclose(projected, original, atol=1e-3)
    assert "PC 1" in ax.get_xlabel() and "100%" not in ax.get_ylabel()


def test_plot_embedding_2d_accepts_numpy_and_ax():
    fig, ax = plt.subplots()
    out = plots.plot_embedding_2d(np.random.default_rng(0).normal(size=(20, 4)), np.arange(20) % 2,
                                  ax=ax, title="h")
    assert out is fig and ax.get_title() == "h"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["0", "1"]


def test_plot_embedding_2d_tsne_without_sklearn_says_use_pca(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)
    with pytest.raises(ImportError, match="pca"):
        plots.plot_embedding_2d(torch.randn(10, 4), torch.zeros(10), method="tsne")
    with pytest.raises(ValueError, match="method"):
        plots.plot_embedding_2d(torch.randn(10, 4), torch.zeros(10), method="umap")


# ---------------------------------------------------------------------------- similarities, bars

def test_plot_similarity_matrix_heatmap_colorbar_and_values():
    z = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    sim = z @ z.T
    fig = plots.plot_similarity_matrix(sim, title="cosine", tick_labels=["a", "b", "c", "d"])
    ax, colorbar = fig.axes
    image = _images(ax)[0]
    assert np.allclose(image.get_array(), sim.numpy()) and image.get_clim() == (-1, 1)
    assert image.get_cmap().name == "RdBu_r" and colorbar.get_ylabel() == "cosine similarity"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c", "d"]
    assert len(ax.texts) == 16 and ax.get_title() == "cosine"


def test_plot_similarity_matrix_on_ax_large_and_masked():
    sim = torch.randn(20, 20) * 3
    sim.fill_diagonal_(float("-inf"))  # a masked diagonal, as in NT-Xent's logits
    fig, ax = plt.subplots()
    assert plots.plot_similarity_matrix(sim, ax=ax) is fig
    vmin, vmax = _images(ax)[0].get_clim()
    assert vmin == -vmax and vmax == pytest.approx(sim[sim.isfinite()].abs().max().item())
    assert len(ax.texts) == 0  # too many cells to print values


def test_plot_accuracy_bars_values_as_percent():
    results = {"random init": 0.31, "SimCLR kNN": 0.823, "SimCLR linear": 0.864}
    fig = plots.plot_accuracy_bars(results, title="CIFAR-10", chance=0.1)
    ax = fig.axes[0]
    bars = ax.patches
    assert len(bars) == 3
    assert np.allclose([b.get_width() for b in bars], [31.0, 82.3, 86.4])
    texts = {t.get_text() for t in ax.texts}
    assert {"31.0%", "82.3%", "86.4%"} <= texts
    assert [t.get_text() for t in ax.get_yticklabels()] == list(results)
    with pytest.raises(ValueError, match="0..1"):
        plots.plot_accuracy_bars({"knn": 82.3})
    fig2, ax2 = plt.subplots()
    assert plots.plot_accuracy_bars({"a": 0.5}, ax=ax2) is fig2 and len(ax2.patches) == 1


def test_plots_write_nothing_to_stderr_and_raise_no_warning(shapes, capfd):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figs = [plots.image_grid(shapes.images[:9], nrow=3, title="t"),
                plots.show_augmentations(shapes, to_model_input(), n_images=2, n_views=2),
                plots.plot_losses({"a": [1.0, 0.5], "b": [2.0]}),
                plots.plot_embedding_2d(torch.randn(30, 5), torch.arange(30) % 10, shapes.classes),
                plots.plot_similarity_matrix(torch.eye(3)),
                plots.plot_accuracy_bars({"a": 0.5}),
                widgets.temperature_explorer(interactive=False)]
        for fig in figs:
            fig.canvas.draw()
    assert capfd.readouterr().err == ""


# ---------------------------------------------------------------------------- temperature widget

def _bar_heights(ax):
    return np.array([p.get_height() for p in ax.patches])


def test_temperature_explorer_static_without_ipywidgets(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets -> ImportError
    fig = widgets.temperature_explorer(interactive=True)
    assert isinstance(fig, Figure) and len(fig.axes) == len(widgets.STATIC_TAUS) == 4
    n = len(widgets.example_similarities())
    p_positive = []
    for ax, tau in zip(fig.axes, widgets.STATIC_TAUS):
        heights = _bar_heights(ax)
        assert len(heights) == n and heights.sum() == pytest.approx(1, abs=1e-5)
        assert f"tau = {tau:g}" in ax.get_title()
        p_positive.append(heights[0])
    assert p_positive == sorted(p_positive, reverse=True)  # a higher tau flattens the softmax
    assert p_positive[0] > 0.5 and p_positive[-1] < 2 / n


def test_temperature_explorer_outside_a_notebook_is_static():
    assert isinstance(widgets.temperature_explorer(), Figure)


def test_default_similarities_have_hard_negatives():
    sims = widgets.example_similarities()
    assert sims.ndim == 1 and 10 <= len(sims) <= 14 and torch.equal(sims, widgets.example_similarities())
    assert sims[0] == sims.max() and -0.4 <= sims[1:].min() and sims[1:].max() <= 0.7
    assert (sims[1:] > sims[0] - 0.2).sum() >= 2


def test_temperature_explorer_widget_redraws_when_tau_changes(capfd):
    ipywidgets = pytest.importorskip("ipywidgets")
    box = widgets.temperature_explorer(interactive=True, tau=0.5)
    assert isinstance(box, ipywidgets.VBox)
    slider, image = box.children
    assert isinstance(slider, ipywidgets.FloatLogSlider) and slider.value == pytest.approx(0.5)
    assert 10 ** slider.min == pytest.approx(0.01) and 10 ** slider.max == pytest.approx(10)
    assert image.value[:8] == b"\x89PNG\r\n\x1a\n"
    before = image.value

    slider.value = 0.01
    heights = _bar_heights(box.figure.axes[0])
    assert heights.sum() == pytest.approx(1, abs=1e-5)
    assert heights[0] == heights.max() and heights[0] > 0.99
    assert "tau = 0.01" in box.figure.axes[0].get_title() and image.value != before

    slider.value = 10
    heights = _bar_heights(box.figure.axes[0])
    assert heights.sum() == pytest.approx(1, abs=1e-5)
    assert heights.max() - heights.min() < 0.02  # nearly uniform
    assert capfd.readouterr().err == ""


def test_temperature_explorer_custom_similarities_highlight_the_positive():
    fig = widgets.temperature_explorer([0.1, 0.9, 0.2], positive=1, interactive=False)
    ax = fig.axes[0]
    colours = [tuple(p.get_facecolor()) for p in ax.patches]
    assert colours[1] != colours[0] and colours[0] == colours[2]
    assert "p(positive) = " in ax.get_title()


@pytest.mark.parametrize("kwargs, message", [
    (dict(similarities=torch.ones(2, 3)), "1-D"),
    (dict(similarities=[0.5, 0.1], positive=2), "positive"),
    (dict(tau=0.0), "tau"),
])
def test_temperature_explorer_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        widgets.temperature_explorer(interactive=False, **kwargs)
