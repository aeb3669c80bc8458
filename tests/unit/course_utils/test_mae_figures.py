"""Notebook 03's figures: the mask-ratio explorer, the patch grid and MAE reconstructions."""
import sys
import warnings

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from check_data.mae import masking_right
from course_utils import plots, widgets

PATCH = 4
N_PATCHES = (32 // PATCH) ** 2  # 64


class RecordingMasking:
    """masking_right that remembers the ratio and mask of every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, mask_ratio, generator=None):
        out = masking_right(x, mask_ratio, generator=generator)
        self.calls.append((mask_ratio, out[1].clone()))
        return out


def not_written(x, mask_ratio, generator=None):
    raise NotImplementedError


@pytest.fixture(scope="module")
def images():
    """6 random uint8 images (N, H, W, 3): no pixel is exactly 0.5 grey (127.5 / 255)."""
    return np.random.default_rng(0).integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)


def _image_data(ax):
    return np.asarray([a for a in ax.get_children() if isinstance(a, AxesImage)][0].get_array())


def _grey_fraction(ax):
    """Share of the pixels painted 0.5 grey (the removed patches)."""
    return float(np.all(_image_data(ax) == 0.5, axis=-1).mean())


# ---------------------------------------------------------------------------- mask ratio widget

def test_mask_ratio_explorer_static_rows_and_grey_fractions(images, monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets -> ImportError
    fig = widgets.mask_ratio_explorer(images, masking_right, interactive=True)
    assert isinstance(fig, Figure)
    ratios = widgets.STATIC_MASK_RATIOS
    assert len(fig.axes) == 6 * (1 + len(ratios))
    rows = [fig.axes[6 * r: 6 * r + 6] for r in range(1 + len(ratios))]
    assert rows[0][0].get_ylabel() == "original"
    for ax, image in zip(rows[0], images):
        assert np.allclose(_image_data(ax), image / 255) and _grey_fraction(ax) == 0
    for row, ratio in zip(rows[1:], ratios):
        kept = int(N_PATCHES * (1 - ratio))
        assert f"{ratio:.2f}" in row[0].get_ylabel()
        assert f"kept {kept}/{N_PATCHES}" in row[0].get_ylabel()
        for ax in row:
            assert _grey_fraction(ax) == pytest.approx(1 - kept / N_PATCHES)
    assert [_grey_fraction(ax) for ax in rows[1]] != [_grey_fraction(ax) for ax in rows[2]]


def test_mask_ratio_explorer_outside_a_notebook_is_static(images):
    assert isinstance(widgets.mask_ratio_explorer(images, masking_right), Figure)


def test_mask_ratio_explorer_widget_follows_the_slider(images, capfd):
    ipywidgets = pytest.importorskip("ipywidgets")
    masking = RecordingMasking()
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255  # float NCHW works too
    box = widgets.mask_ratio_explorer(x, masking, interactive=True, mask_ratio=0.75, seed=3)
    assert isinstance(box, ipywidgets.VBox)
    slider, image = box.children
    assert isinstance(slider, ipywidgets.FloatSlider) and slider.value == pytest.approx(0.75)
    assert (slider.min, slider.max, slider.step) == (0.0, pytest.approx(0.95), pytest.approx(0.05))
    assert image.value[:8] == b"\x89PNG\r\n\x1a\n"
    fig = box.figure
    assert len(fig.axes) == 12
    title = fig._suptitle.get_text()
    assert "0.75" in title and "kept 16 of 64 patches" in title
    assert all(_grey_fraction(ax) == pytest.approx(0.75) for ax in fig.axes[6:])
    mask_at_75 = masking.calls[-1][1]
    before = image.value

    slider.value = 0.15000000000000002  # as a browser sends 0.15
    ratio, mask = masking.calls[-1]
    assert ratio == 0.15 and int((mask == 0).sum(1)[0]) == int(64 * 0.85) == 54
    assert torch.all((mask == 1) <= (mask_at_75 == 1))  # one seed: the same noise, fewer removed
    assert all(_grey_fraction(ax) == pytest.approx(10 / 64) for ax in fig.axes[6:])
    assert "kept 54 of 64 patches" in fig._suptitle.get_text() and image.value != before

    slider.value = 0.95
    assert all(_grey_fraction(ax) == pytest.approx(61 / 64) for ax in fig.axes[6:])
    slider.value = 0.0
    assert all(_grey_fraction(ax) == 0 for ax in fig.axes[6:])
    assert all(torch.is_tensor(m) for _, m in masking.calls)
    assert capfd.readouterr().err == ""


def test_mask_ratio_explorer_masks_are_stable_and_the_global_rng_untouched(images):
    masking = RecordingMasking()
    torch.manual_seed(1)
    expected_next = torch.rand(1)
    torch.manual_seed(1)
    widgets.mask_ratio_explorer(images, masking, interactive=False)
    widgets.mask_ratio_explorer(images, masking, interactive=False)
    assert torch.equal(torch.rand(1), expected_next)
    first, second = masking.calls[:5], masking.calls[5:]
    assert all(torch.equal(a[1], b[1]) for a, b in zip(first, second))


def test_mask_ratio_explorer_says_finish_random_masking_first(images):
    with pytest.raises(NotImplementedError, match="random_masking exercise first"):
        widgets.mask_ratio_explorer(images, not_written, interactive=False)
    with pytest.raises(NotImplementedError, match="random_masking exercise first"):
        widgets.mask_ratio_explorer(images, not_written, interactive=True)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(patch_size=5), ValueError, "patch_size=5"),
    (dict(mask_ratio=1.0), ValueError, "mask_ratio"),
    (dict(masking_fn=lambda x, r, generator=None: (x, torch.zeros(6, 10), None)),
     ValueError, r"\(N, L\)"),
])
def test_mask_ratio_explorer_rejects_bad_input(images, kwargs, error, message):
    kwargs = dict(dict(masking_fn=masking_right), **kwargs)
    with pytest.raises(error, match=message):
        widgets.mask_ratio_explorer(images, interactive=False, **kwargs)


# ---------------------------------------------------------------------------- plots

def test_grey_out_patches_paints_the_removed_patches_in_row_major_order(images):
    mask = torch.zeros(2, N_PATCHES)
    mask[0, 1] = 1     # row 0, column 1
    mask[1, 9] = 1     # row 1, column 1
    out = plots.grey_out_patches(images[:2], mask, PATCH)
    assert out.shape == (2, 3, 32, 32)
    assert torch.all(out[0, :, 0:4, 4:8] == 0.5) and torch.all(out[1, :, 4:8, 4:8] == 0.5)
    assert (out == 0.5).float().mean() == pytest.approx(1 / N_PATCHES)


def test_patch_grid_lines_and_numbers(images):
    fig = plots.patch_grid(images[0], patch_size=PATCH)
    ax = fig.axes[0]
    assert np.allclose(_image_data(ax), images[0] / 255)
    assert len(ax.collections) == 2  # vertical and horizontal lines
    assert all(len(c.get_segments()) == 9 for c in ax.collections)
    assert [t.get_text() for t in ax.texts] == [str(i) for i in range(N_PATCHES)]
    x9, y9 = ax.texts[9].get_position()  # patch 9: row 1, column 1
    assert 3.5 <= x9 < 7.5 and 3.5 <= y9 < 7.5
    assert "64 patches" in ax.get_title()


def test_patch_grid_float_chw_without_numbers_on_a_given_axes(images):
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2)
    chw = torch.from_numpy(images[0]).permute(2, 0, 1).float() / 255
    assert plots.patch_grid(chw, patch_size=8, ax=right, numbers=False) is fig
    assert len(right.texts) == 0 and all(len(c.get_segments()) == 5 for c in right.collections)
    assert _image_data(right).shape == (32, 32, 3) and not left.images
    with pytest.raises(ValueError, match="patch_size=5"):
        plots.patch_grid(chw, patch_size=5)


def test_mae_reconstructions_one_named_row_per_entry(images):
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    rows = {"original": images, "masked": x * 0.5, "reconstruction": x.flip(0),
            "reconstruction + visible": x[:4]}
    fig = plots.mae_reconstructions(rows, n_images=6, title="MAE on 6 images")
    assert len(fig.axes) == 4 * 4  # the shortest entry has 4 images
    firsts = fig.axes[::4]
    assert [ax.get_ylabel().replace("\n", " ") for ax in firsts] == list(rows)
    assert np.allclose(_image_data(fig.axes[4]), images[0] / 255 * 0.5, atol=1e-6)
    assert fig._suptitle.get_text() == "MAE on 6 images"
    assert len(plots.mae_reconstructions({"a": images}, n_images=2).axes) == 2
    with pytest.raises(ValueError, match="empty"):
        plots.mae_reconstructions({})


def test_mae_figures_write_nothing_to_stderr_and_raise_no_warning(images, capfd):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figs = [widgets.mask_ratio_explorer(images, masking_right, interactive=False),
                plots.patch_grid(images[0]),
                plots.mae_reconstructions({"original": images, "masked": images})]
        for fig in figs:
            fig.canvas.draw()
    assert capfd.readouterr().err == ""
