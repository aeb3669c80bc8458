"""course_utils.segments, plots.overlay_masks and widgets.click_explorer: notebook 05's
targets, clicks, IoU and figures."""
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from course_utils import data, plots, segments, widgets


@pytest.fixture(scope="module")
def shapes():
    return data.make_shapes(40, seed=3, colours=data.SHAPES_COLOURS)


def test_outline_is_the_band_where_shape_and_backdrop_meet():
    masks = torch.zeros(1, 9, 9, dtype=torch.bool)
    masks[0, 3:6, 3:6] = True                                     # a 3x3 square
    band = segments.outline(masks)[0]
    assert not band[4, 4] and not band[0, 0]                      # deep inside, far outside
    assert band[3, 3] and band[2, 4] and band[6, 4]               # on either side of the edge
    assert band.sum() == 5 * 5 - 1                                # the 5x5 ring around the centre


def test_semantic_targets_give_class_plus_one_on_the_shape_and_ignore_outlines(shapes):
    plain = segments.semantic_targets(shapes, ignore_outline=0)
    masks = torch.as_tensor(shapes.masks)
    labels = torch.as_tensor(shapes.labels)
    assert plain.dtype == torch.long
    assert torch.equal(plain == 0, ~masks)
    assert torch.equal(plain[masks], (labels[:, None, None] + 1).expand_as(plain)[masks])
    target = segments.semantic_targets(shapes)
    ignored = target == segments.IGNORE
    assert torch.equal(ignored, segments.outline(masks))
    assert torch.equal(target[~ignored], plain[~ignored])


def test_semantic_targets_need_masks():
    arrays = data.make_shapes(4)
    arrays.masks = None
    with pytest.raises(ValueError, match="no masks"):
        segments.semantic_targets(arrays)


def test_clicks_land_on_the_mask_and_follow_the_generator(shapes):
    masks = torch.as_tensor(shapes.masks)
    points, labels = segments.sample_clicks(masks, torch.Generator().manual_seed(0))
    assert points.shape == (len(masks), 1, 2) and points.dtype == torch.float32
    assert labels.shape == (len(masks), 1) and (labels == 1).all()
    x, y = points[:, 0, 0].long(), points[:, 0, 1].long()
    assert masks[torch.arange(len(masks)), y, x].all()            # (x, y) = (column, row)
    again, _ = segments.sample_clicks(masks, torch.Generator().manual_seed(0))
    assert torch.equal(points, again)


def test_clicks_cover_the_whole_mask_uniformly():
    masks = torch.zeros(4000, 4, 4, dtype=torch.bool)
    masks[:, 1, 1:3] = True                                       # two pixels to click
    points, _ = segments.sample_clicks(masks, torch.Generator().manual_seed(1))
    share = (points[:, 0, 0] == 1).float().mean().item()
    assert abs(share - 0.5) < 0.05


def test_an_empty_mask_cannot_be_clicked():
    with pytest.raises(ValueError, match="empty mask"):
        segments.sample_clicks(torch.zeros(2, 4, 4, dtype=torch.bool))


def test_class_iou_and_mean_iou_against_counting_by_hand():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, segments.IGNORE, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 0, 1]])
    ious = segments.class_iou(pred, target, 4)
    # over the 7 labelled pixels; class 0: predicted at (0,0), (1,1), true at (0,0), (0,1)
    assert ious[0].item() == pytest.approx(1 / 3)
    assert ious[1].item() == pytest.approx(3 / 4)
    assert ious[2].item() == pytest.approx(1 / 2)
    assert torch.isnan(ious[3])                                    # absent from both
    assert segments.mean_iou(pred, target, 4) == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)


def test_mask_iou_per_image():
    pred = torch.tensor([[[1, 1], [0, 0]], [[0, 0], [0, 0]], [[1, 0], [0, 0]]]).bool()
    target = torch.tensor([[[1, 0], [0, 0]], [[0, 0], [0, 0]], [[0, 0], [0, 1]]]).bool()
    assert segments.mask_iou(pred, target).tolist() == [0.5, 1.0, 0.0]


def test_overlay_tints_the_mask_only_and_draws_the_click():
    images = torch.zeros(1, 3, 8, 8)
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[0, :4] = True
    out = plots.overlay_masks(images, mask, torch.tensor([[[6.0, 6.0]]]))
    assert out[0, 0, :4, :5].gt(0).all() and out[0, :, 5, 0].eq(0).all()
    assert out[0, :, 6, 6].eq(1).all() and out[0, :, 6, 5].eq(1).all()
    assert images.eq(0).all()                                      # the input is left alone


def test_click_explorer_draws_the_candidates(shapes):
    calls = []

    def three_masks(index, x, y):
        calls.append((index, x, y))
        return torch.ones(3, 32, 32, dtype=torch.bool), torch.tensor([0.9, 0.5, 0.1])

    fig = widgets.click_explorer(shapes, three_masks, interactive=False)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    assert calls == [(0, 16, 16)]
    assert [ax.get_title() for ax in fig.axes[1:]] == [
        "predicted IoU 0.90", "predicted IoU 0.50", "predicted IoU 0.10"]


def test_click_explorer_widget_redraws_on_a_new_click(shapes):
    pytest.importorskip("ipywidgets")
    calls = []

    def three_masks(index, x, y):
        calls.append((index, x, y))
        return np.zeros((3, 32, 32), dtype=bool), [0.1, 0.2, 0.3]

    box = widgets.click_explorer(shapes, three_masks, n_images=5, interactive=True)
    sliders = box.children[0].children
    assert sliders[0].max == 4
    sliders[1].value = 3
    assert calls[-1] == (0, 3, 16) and box.children[1].value[:4] == b"\x89PNG"
