"""course_utils.batch_augment and data.view_loader: per-sample batched augmentations.

Deterministic pieces are compared with torchvision.transforms.functional at fixed factors;
the random ops are checked by properties and statistics over large batches (fixed seeds,
tolerances of several standard errors), never pixel by pixel against a seeded torchvision.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import transforms as T
from torchvision.transforms import functional as TF
from torchvision.transforms import v2

from course_utils import augment, data
from course_utils import batch_augment as B
from course_utils.augment import CIFAR_RECIPE, CIFAR10_MEAN, CIFAR10_STD
from course_utils.batch_augment import UnsupportedTransform

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def colourful(n: int, h: int = 8, w: int = 8, seed: int = 1) -> torch.Tensor:
    """(n, 3, h, w) float images in [0, 1] with varied hues and saturations."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g)


def repeated(image: torch.Tensor, n: int) -> torch.Tensor:
    return image.unsqueeze(0).expand(n, *image.shape).contiguous()


def binomial_tol(p: float, n: int) -> float:
    return 5 * math.sqrt(p * (1 - p) / n) + 1e-9


def distinct(x: torch.Tensor, decimals: int = 4) -> int:
    """Number of different samples in a batch (rounded, to ignore float noise)."""
    return len(torch.unique(torch.round(x.flatten(1) * 10 ** decimals), dim=0))


def simclr_compose(size=32, recipe=CIFAR_RECIPE, blur=False, api=T, solarize=False):
    """The notebook's simclr_transform, written with torchvision v1 or v2."""
    steps = [api.RandomResizedCrop(size, scale=recipe.crop_scale),
             api.RandomHorizontalFlip(recipe.flip_p),
             api.RandomApply([api.ColorJitter(**recipe.jitter())], p=recipe.jitter_p),
             api.RandomGrayscale(recipe.grayscale_p)]
    if blur:
        steps.append(api.RandomApply([api.GaussianBlur(recipe.blur_kernel(size),
                                                       recipe.blur_sigma)], p=0.5))
    if solarize:
        steps.append(api.RandomSolarize(threshold=128, p=0.2))
    if api is T:
        finish = [T.ToTensor()]
    else:
        finish = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    return api.Compose(steps + finish + [api.Normalize(CIFAR10_MEAN, CIFAR10_STD)])


# ---------------------------------------------------------------------------- colour functions


FACTORS = torch.tensor([0.0, 0.3, 1.0, 1.7])


@pytest.mark.parametrize("ours, theirs", [
    (B.adjust_brightness, TF.adjust_brightness),
    (B.adjust_contrast, TF.adjust_contrast),
    (B.adjust_saturation, TF.adjust_saturation),
])
def test_adjust_functions_match_torchvision_per_sample(ours, theirs):
    x = colourful(len(FACTORS))
    out = ours(x, FACTORS)
    for i, f in enumerate(FACTORS.tolist()):
        torch.testing.assert_close(out[i], theirs(x[i], f), atol=1e-6, rtol=0)


def test_adjust_hue_matches_torchvision_per_sample():
    shifts = torch.tensor([-0.5, -0.2, 0.0, 0.35, 0.5])
    x = colourful(len(shifts))
    out = B.adjust_hue(x, shifts)
    for i, s in enumerate(shifts.tolist()):
        torch.testing.assert_close(out[i], TF.adjust_hue(x[i], s), atol=1e-5, rtol=0)


def test_adjust_hue_keeps_greys_and_rotates_primaries():
    greys = torch.stack([torch.full((3, 4, 4), v) for v in (0.0, 0.4, 1.0)])
    torch.testing.assert_close(B.adjust_hue(greys, torch.tensor([0.3, -0.5, 0.1])), greys)
    primaries = torch.eye(3).view(3, 3, 1, 1)    # red, green, blue
    third = torch.full((3,), 1 / 3)              # red -> green -> blue -> red
    torch.testing.assert_close(B.adjust_hue(primaries, third), primaries.roll(-1, dims=0),
                               atol=1e-6, rtol=0)
    x = colourful(4)
    torch.testing.assert_close(B.adjust_hue(x, torch.zeros(4)), x, atol=1e-6, rtol=0)
    torch.testing.assert_close(B.adjust_hue(B.adjust_hue(x, torch.full((4,), 0.2)),
                                            torch.full((4,), -0.2)), x, atol=1e-5, rtol=0)


def test_grayscale_matches_torchvision():
    x = colourful(3)
    torch.testing.assert_close(B.grayscale(x), TF.rgb_to_grayscale(x, 1), atol=1e-6, rtol=0)


@pytest.mark.parametrize("kernel, sigma", [(5, 1.3), ((3, 5), 0.8), ((7, 3), 2.0)])
def test_gaussian_blur_with_a_fixed_sigma_matches_torchvision(kernel, sigma):
    x = colourful(3, 12, 10)
    out = B.GaussianBlur(kernel, (sigma, sigma))(x)
    ks = [kernel, kernel] if isinstance(kernel, int) else list(kernel)
    torch.testing.assert_close(out, TF.gaussian_blur(x, ks, [sigma, sigma]), atol=1e-5, rtol=0)


def test_gaussian_blur_draws_sigma_per_sample_within_its_range():
    impulse = torch.zeros(3, 9, 9)
    impulse[:, 4, 4] = 1.0
    out = B.GaussianBlur(5, (0.5, 2.0))(repeated(impulse, 64))
    centre = out[:, 0, 4, 4]                     # decreases as sigma grows
    sharpest = TF.gaussian_blur(impulse, [5, 5], [0.5, 0.5])[0, 4, 4]
    widest = TF.gaussian_blur(impulse, [5, 5], [2.0, 2.0])[0, 4, 4]
    assert torch.all(centre <= sharpest + 1e-6) and torch.all(centre >= widest - 1e-6)
    assert distinct(out) >= 60
    torch.testing.assert_close(out.sum(dim=(-2, -1)), torch.ones(64, 3))  # mass is kept


# ---------------------------------------------------------------------------- crops


def test_resized_crops_of_the_full_box_is_the_identity():
    x = colourful(4, 12, 10)
    boxes = torch.tensor([[0.0, 0.0, 10.0, 12.0]]).repeat(4, 1)
    torch.testing.assert_close(B.resized_crops(x, boxes, (12, 10)), x, atol=1e-6, rtol=0)


@pytest.mark.parametrize("box, size, border", [
    ((4, 5, 12, 15), (20, 16), 1),               # exactly x2 in both directions
    ((3, 2, 10, 13), (16, 15), 2),               # non-integer factors
])
def test_resized_crops_upscaled_interior_matches_torchvision_resize(box, size, border):
    """Away from the border (where roi_align reads the pixels around the crop and
    torchvision clamps to the crop's edge), the upscaled crop is a bilinear resize."""
    x = colourful(2, 20, 20)
    x1, y1, x2, y2 = box
    boxes = torch.tensor([box], dtype=torch.float32).repeat(2, 1)
    out = B.resized_crops(x, boxes, size)
    expected = TF.resize(x[..., y1:y2, x1:x2], list(size), antialias=False,
                         interpolation=T.InterpolationMode.BILINEAR)
    b = border
    torch.testing.assert_close(out[..., b:-b, b:-b], expected[..., b:-b, b:-b],
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_resized_crops_shrinking_by_an_integer_factor_averages_blocks(factor):
    """Shrinking a crop k times samples the k x k pixel centres of each block: an average
    pool (roi_align's adaptive sampling, the anti-aliasing)."""
    x = colourful(2, 24, 24)
    boxes = torch.tensor([[0.0, 0.0, 24.0, 24.0], [3.0, 9.0, 15.0, 21.0]])
    out = B.resized_crops(x, boxes, (24 // factor, 24 // factor))
    torch.testing.assert_close(out[0], F.avg_pool2d(x[0], factor), atol=1e-6, rtol=0)
    small = B.resized_crops(x, boxes, (12 // factor, 12 // factor))
    torch.testing.assert_close(small[1], F.avg_pool2d(x[1, :, 9:21, 3:15], factor),
                               atol=1e-6, rtol=0)


def test_sample_crop_boxes_lie_inside_the_image_within_scale_and_ratio():
    h, w, scale, ratio = 24, 40, (0.1, 0.6), (0.5, 2.0)
    boxes = B.sample_crop_boxes(4000, h, w, scale, ratio)
    x1, y1, x2, y2 = boxes.unbind(1)
    assert torch.all(boxes == boxes.round())
    assert torch.all((x1 >= 0) & (y1 >= 0) & (x2 <= w) & (y2 <= h))
    bw, bh = x2 - x1, y2 - y1
    assert torch.all((bw > 0) & (bh > 0))
    # w = round(sqrt(T a)), h = round(sqrt(T / a)) with T in area * scale, a in ratio
    area = h * w
    assert torch.all((bw - 0.5) * (bh - 0.5) <= scale[1] * area)
    assert torch.all((bw + 0.5) * (bh + 0.5) >= scale[0] * area)
    assert torch.all((bw - 0.5) / (bh + 0.5) <= ratio[1])
    assert torch.all((bw + 0.5) / (bh - 0.5) >= ratio[0])


def test_sample_crop_boxes_follow_torchvision_distribution():
    h, w, n = 24, 40, 4000
    image = torch.zeros(3, h, w)
    scale, ratio = [0.08, 1.0], [3 / 4, 4 / 3]
    ours = B.sample_crop_boxes(n, h, w, tuple(scale), tuple(ratio))
    ours_area = ((ours[:, 2] - ours[:, 0]) * (ours[:, 3] - ours[:, 1]) / (h * w)).numpy()
    ours_ratio = ((ours[:, 2] - ours[:, 0]) / (ours[:, 3] - ours[:, 1])).log().numpy()
    ours_cx = ((ours[:, 0] + ours[:, 2]) / 2).numpy()
    theirs = np.array([T.RandomResizedCrop.get_params(image, scale, ratio) for _ in range(n)])
    i, j, ch, cw = theirs.T
    theirs_area, theirs_ratio, theirs_cx = ch * cw / (h * w), np.log(cw / ch), j + cw / 2
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        assert abs(np.quantile(ours_area, q) - np.quantile(theirs_area, q)) < 0.04, q
    assert abs(ours_area.mean() - theirs_area.mean()) < 0.02
    assert abs(ours_ratio.mean() - theirs_ratio.mean()) < 0.03
    assert abs(ours_ratio.std() - theirs_ratio.std()) < 0.03
    assert abs(ours_cx.mean() - theirs_cx.mean()) < 0.5


@pytest.mark.parametrize("h, w, scale, ratio", [
    (64, 8, (0.5, 1.0), (3.0, 4.0)),            # a tall image, only wide crops asked for
    (8, 64, (0.5, 1.0), (0.25, 1 / 3)),         # a wide image, only tall crops asked for
    (10, 10, (2.0, 3.0), (1.0, 1.0)),           # crops larger than the image
])
def test_sample_crop_boxes_fall_back_to_torchvision_central_crop(h, w, scale, ratio):
    boxes = B.sample_crop_boxes(50, h, w, scale, ratio)
    i, j, ch, cw = T.RandomResizedCrop.get_params(torch.zeros(3, h, w), list(scale), list(ratio))
    expected = torch.tensor([j, i, j + cw, i + ch], dtype=boxes.dtype)
    assert torch.equal(boxes, expected.expand_as(boxes))


# ---------------------------------------------------------------------------- per-sample randomness


@pytest.fixture(scope="module")
def shape_image():
    """One 32x32 image of the offline shapes set, (3, H, W) in [0, 1]."""
    return data.make_shapes(10, image_size=32, seed=0).tensor()[3]


@pytest.mark.parametrize("make_op", [
    lambda: B.RandomResizedCrop(32),
    lambda: B.ColorJitter((0.6, 1.4), (0.6, 1.4), (0.6, 1.4), (-0.1, 0.1)),
    lambda: B.translate(simclr_compose(32)),
], ids=["crop", "jitter", "simclr"])
def test_ops_draw_their_parameters_per_sample(make_op, shape_image):
    out = make_op()(repeated(shape_image, 256))
    assert out.shape == (256, 3, 32, 32)
    assert distinct(out) >= 240                  # torchvision on a batch: 1


def test_flip_after_a_full_crop_gives_the_image_or_its_mirror_with_probability_p(shape_image):
    n, p = 2000, 0.3
    ops = B.BatchAugment([B.RandomResizedCrop(32, scale=(1.0, 1.0), ratio=(1.0, 1.0)),
                          B.RandomHorizontalFlip(p)])
    out = ops(repeated(shape_image, n))
    same = (out - shape_image).abs().flatten(1).amax(1) < 1e-5
    mirrored = (out - shape_image.flip(-1)).abs().flatten(1).amax(1) < 1e-5
    assert torch.all(same ^ mirrored)
    assert abs(mirrored.float().mean().item() - p) < binomial_tol(p, n)


def test_random_grayscale_fraction_and_equal_channels():
    n, p = 4000, 0.2
    x = colourful(n, 3, 3)
    out = B.RandomGrayscale(p)(x)
    gray = (out.amax(1) - out.amin(1)).flatten(1).amax(1) < 1e-7
    assert abs(gray.float().mean().item() - p) < binomial_tol(p, n)
    torch.testing.assert_close(out[gray], TF.rgb_to_grayscale(x[gray], 3))
    assert torch.equal(out[~gray], x[~gray])


def test_random_solarize_threshold_semantics_and_fraction():
    """Pixels at or above the threshold are inverted (torchvision's >=), the rest kept."""
    n, p = 4000, 0.3
    ramp = (torch.arange(11) / 10).view(1, 1, 11).expand(3, 11, 11)
    threshold = ramp[0, 0, 3].item()                       # a pixel value exactly at it
    x = repeated(ramp, n)
    out = B.RandomSolarize(threshold, p)(x)
    solarized = torch.where(ramp >= threshold, 1 - ramp, ramp)
    torch.testing.assert_close(solarized, TF.solarize(ramp, threshold), atol=0, rtol=0)
    assert solarized[0, 0, 3] == 1 - ramp[0, 0, 3]
    assert torch.equal(solarized[..., :3], ramp[..., :3])
    hit = (out == solarized).flatten(1).all(1)
    assert torch.all(hit | (out == x).flatten(1).all(1))
    assert abs(hit.float().mean().item() - p) < binomial_tol(p, n)


def test_random_apply_fraction_applies_all_its_ops_together():
    n, p = 4000, 0.7
    x = torch.full((n, 3, 2, 2), 0.25)
    op = B.RandomApply([lambda y: 1 - y, lambda y: y * 0.5], p)
    out = op(x)
    applied = torch.isclose(out, torch.tensor(0.375)).flatten(1).all(1)
    assert torch.all(applied | (out == 0.25).flatten(1).all(1))
    assert abs(applied.float().mean().item() - p) < binomial_tol(p, n)


def test_brightness_factors_are_uniform_in_range_and_per_sample():
    n, lo, hi = 4000, 0.2, 1.8
    out = B.ColorJitter(brightness=(lo, hi))(torch.full((n, 3, 2, 2), 0.5))
    factor = out[:, 0, 0, 0] / 0.5
    assert torch.allclose(out, factor.view(n, 1, 1, 1) * 0.5 * torch.ones_like(out), atol=1e-6)
    assert factor.min() >= lo - 1e-6 and factor.max() <= hi + 1e-6
    assert len(torch.unique(factor)) > 0.99 * n
    cdf = (torch.sort(factor).values - lo) / (hi - lo)             # Kolmogorov-Smirnov
    assert (cdf - (torch.arange(n) + 0.5) / n).abs().max() < 0.04
    assert abs(factor.mean().item() - 1.0) < 0.03


def test_jitter_order_is_one_of_the_permutations_drawn_afresh_per_batch():
    """Contrast and hue do not commute (a hue shift moves the grey mean). With fixed
    factors every sample is one of the two orders. The order is drawn per batch (the
    module's documented choice, as kornia's ColorJiggle), so one batch shares it, and
    over many batches both orders occur about equally often."""
    image = torch.zeros(3, 4, 4)
    image[:, :, :2] = torch.tensor([0.9, 0.1, 0.1]).view(3, 1, 1)   # red | blue
    image[:, :, 2:] = torch.tensor([0.1, 0.2, 0.8]).view(3, 1, 1)
    contrast_first = TF.adjust_hue(TF.adjust_contrast(image, 0.5), 0.25)
    hue_first = TF.adjust_contrast(TF.adjust_hue(image, 0.25), 0.5)
    assert (contrast_first - hue_first).abs().max() > 0.05
    jitter = B.ColorJitter(contrast=(0.5, 0.5), hue=(0.25, 0.25))
    batches = 200
    orders = []
    for _ in range(batches):
        out = jitter(repeated(image, 4))
        is_cf = (out - contrast_first).abs().flatten(1).amax(1) < 1e-4
        is_hf = (out - hue_first).abs().flatten(1).amax(1) < 1e-4
        assert torch.all(is_cf ^ is_hf)
        assert torch.all(is_cf) or torch.all(is_hf)
        orders.append(bool(is_cf[0]))
    assert abs(np.mean(orders) - 0.5) < binomial_tol(0.5, batches)


# ---------------------------------------------------------------------------- value ranges


EVERY_OP = {
    "crop": B.RandomResizedCrop(8, scale=(0.05, 1.0)),
    "crop_up": B.RandomResizedCrop(24),
    "flip": B.RandomHorizontalFlip(),
    "jitter": B.ColorJitter((0.0, 3.0), (0.0, 3.0), (0.0, 3.0), (-0.5, 0.5)),
    "gray": B.RandomGrayscale(0.5),
    "blur": B.GaussianBlur(5, (0.1, 3.0)),
    "solarize": B.RandomSolarize(0.4),
    "apply": B.RandomApply([B.ColorJitter(brightness=(0.0, 5.0))], 0.5),
}


@pytest.mark.parametrize("name", list(EVERY_OP))
def test_every_op_keeps_values_in_the_unit_interval(name):
    x = colourful(128, 12, 12)
    x[:16] = x[:16].round()                      # saturated pixels too
    out = EVERY_OP[name](x)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert out.min() >= 0 and out.max() <= 1 + 1e-6, (out.min(), out.max())


def test_translated_pipeline_with_normalize_stays_within_normalised_bounds():
    augment_ = B.translate(simclr_compose(16, blur=True, solarize=True))
    out = augment_(torch.randint(0, 256, (256, 3, 16, 16), dtype=torch.uint8))
    mean, std = torch.tensor(CIFAR10_MEAN).view(3, 1, 1), torch.tensor(CIFAR10_STD).view(3, 1, 1)
    low, high = (0 - mean) / std, (1 - mean) / std
    assert torch.all(out >= low - 1e-5) and torch.all(out <= high + 1e-5)
    assert out.min() < low.max() and out.max() > high.min()    # the bounds are reached-ish


def test_batch_augment_accepts_uint8_as_float_over_255():
    images = torch.randint(0, 256, (4, 3, 6, 6), dtype=torch.uint8)
    pipeline = B.BatchAugment([B.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    torch.testing.assert_close(pipeline(images), pipeline(images.float() / 255))
    assert B.BatchAugment([])(images).dtype == torch.float32


def test_channels_last_option():
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    out = B.translate(simclr_compose(8), channels_last=True)(images)
    assert out.shape == (4, 3, 8, 8) and out.is_contiguous(memory_format=torch.channels_last)
    out = B.translate(simclr_compose(8))(images)
    assert out.is_contiguous()


# ---------------------------------------------------------------------------- translate


def _check_simclr_ops(ops, size, blur=False):
    kinds = [type(op) for op in ops]
    expected = [B.RandomResizedCrop, B.RandomHorizontalFlip, B.RandomApply, B.RandomGrayscale]
    expected += [B.RandomApply] if blur else []
    assert kinds == expected + [B.Normalize]
    crop, flip, jitter, gray = ops[:4]
    assert crop.size == (size, size) and crop.scale == pytest.approx(CIFAR_RECIPE.crop_scale)
    assert crop.ratio == pytest.approx((3 / 4, 4 / 3))
    assert flip.p == CIFAR_RECIPE.flip_p and gray.p == CIFAR_RECIPE.grayscale_p
    assert jitter.p == CIFAR_RECIPE.jitter_p and len(jitter.ops) == 1
    s = CIFAR_RECIPE.jitter()
    b, c, sat, hue = jitter.ops[0].ranges
    assert b == pytest.approx((1 - s["brightness"], 1 + s["brightness"]))
    assert c == pytest.approx((1 - s["contrast"], 1 + s["contrast"]))
    assert sat == pytest.approx((1 - s["saturation"], 1 + s["saturation"]))
    assert hue == pytest.approx((-s["hue"], s["hue"]))
    if blur:
        assert ops[4].p == 0.5 and len(ops[4].ops) == 1
        k = CIFAR_RECIPE.blur_kernel(size)
        assert ops[4].ops[0].kernel_size == (k, k)
        assert ops[4].ops[0].sigma == pytest.approx(CIFAR_RECIPE.blur_sigma)
    normalize = ops[-1]
    assert normalize.mean == pytest.approx(CIFAR10_MEAN)
    assert normalize.std == pytest.approx(CIFAR10_STD)


@pytest.mark.parametrize("api", [T, v2], ids=["v1", "v2"])
@pytest.mark.parametrize("blur", [False, True])
def test_translate_simclr_recipe_keeps_every_parameter(api, blur):
    _check_simclr_ops(B.translate(simclr_compose(24, blur=blur, api=api)).ops, 24, blur)


def test_translate_flattens_nested_compose_and_grayscale():
    inner = T.Compose([T.RandomResizedCrop(16, scale=(0.2, 1.0)), T.RandomHorizontalFlip(0.3)])
    ops = B.translate(T.Compose([inner, T.Grayscale(3), T.ToTensor()])).ops
    assert [type(op) for op in ops] == [B.RandomResizedCrop, B.RandomHorizontalFlip,
                                        B.RandomGrayscale]
    assert ops[0].scale == (0.2, 1.0) and ops[1].p == 0.3 and ops[2].p == 1.0


def test_translate_jitter_ranges_skip_zero_strength():
    op, = B.translate(T.Compose([T.ColorJitter(brightness=0.4, hue=0.1)])).ops
    assert op.ranges[0] == pytest.approx((0.6, 1.4)) and op.ranges[1:3] == (None, None)
    assert op.ranges[3] == pytest.approx((-0.1, 0.1))
    op, = B.translate(T.Compose([T.ColorJitter(contrast=(0.5, 2.0))])).ops
    assert op.ranges == (None, (0.5, 2.0), None, None)


@pytest.mark.parametrize("steps, expected", [
    ([T.RandomSolarize(128, p=0.2), T.ToTensor()], 128 / 255),
    ([T.ToTensor(), T.RandomSolarize(0.5, p=0.2)], 0.5),
    ([v2.RandomSolarize(128, p=0.2), v2.ToImage(), v2.ToDtype(torch.float32, scale=True)],
     128 / 255),
    ([v2.ToImage(), v2.RandomSolarize(128, p=0.2), v2.ToDtype(torch.float32, scale=True)],
     128 / 255),
    ([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.RandomSolarize(0.5, p=0.2)], 0.5),
])
def test_translate_solarize_threshold_in_unit_range(steps, expected):
    compose = v2.Compose(steps) if isinstance(steps[0], torch.nn.Module) else T.Compose(steps)
    solarize, = [op for op in B.translate(compose).ops]
    assert isinstance(solarize, B.RandomSolarize)
    assert solarize.threshold == pytest.approx(expected) and solarize.p == 0.2


@pytest.mark.parametrize("step", [T.Lambda(lambda im: im), T.RandomRotation(10),
                                  v2.RandomErasing()])
def test_translate_rejects_unbatchable_steps(step):
    with pytest.raises(UnsupportedTransform, match="no batched version"):
        B.translate(T.Compose([T.RandomHorizontalFlip(), step, T.ToTensor()]))
    assert issubclass(UnsupportedTransform, ValueError)


def test_translated_pipeline_agrees_statistically_with_the_pil_pipeline():
    """Per-channel mean and std of many SimCLR views of the shapes set, PIL vs batched."""
    arrays = data.make_shapes(64, image_size=32, seed=0)
    compose = simclr_compose(32)
    views = 16
    torch.manual_seed(1)
    pil = torch.stack([compose(arrays.pil(i)) for _ in range(views) for i in range(len(arrays))])
    images = torch.from_numpy(arrays.images).permute(0, 3, 1, 2).repeat(views, 1, 1, 1)
    batched = B.translate(compose)(images)
    assert batched.shape == pil.shape
    for stat in (lambda v: v.mean(dim=(0, 2, 3)), lambda v: v.std(dim=(0, 2, 3)),
                 lambda v: v.std(dim=(2, 3)).mean(0)):          # within-view contrast
        a, b = stat(pil), stat(batched)
        assert torch.allclose(a, b, atol=0.1), (a, b)


# ---------------------------------------------------------------------------- traced pipelines


class MultiCrop:
    """DINO-like: two global pipelines and one local pipeline called n_local times."""

    def __init__(self, global_size=16, local_size=8, n_local=3):
        def crop(size, scale):
            return T.Compose([T.RandomResizedCrop(size, scale=scale), T.RandomHorizontalFlip(),
                              T.ToTensor(), augment.normalize()])
        self.global_1, self.global_2 = crop(global_size, (0.4, 1.0)), crop(global_size, (0.4, 1.0))
        self.local, self.n_local = crop(local_size, (0.05, 0.4)), n_local

    def __call__(self, image):
        crops = [self.global_1(image), self.global_2(image)]
        return crops + [self.local(image) for _ in range(self.n_local)]


class RepeatsOneView:
    def __init__(self):
        self.compose = T.Compose([T.ToTensor()])

    def __call__(self, image):
        view = self.compose(image)
        return [view, view.clone()]


class Explodes:
    def __init__(self):
        self.compose = T.Compose([T.ToTensor()])
        self.compose_v2 = v2.Compose([v2.ToImage()])

    def __call__(self, image):
        self.compose(image)
        self.compose_v2(image)
        raise RuntimeError("boom")


@pytest.fixture
def pil_image():
    return data.make_shapes(1, image_size=16).pil(0)


def _compose_calls():
    return T.Compose.__call__, v2.Compose.__call__


def test_traced_pipelines_returns_compose_objects_in_call_order(pil_image):
    before = _compose_calls()
    mc = MultiCrop(n_local=3)
    calls = B.traced_pipelines(mc, pil_image)
    assert [id(c) for c in calls] == [id(mc.global_1), id(mc.global_2)] + [id(mc.local)] * 3
    single = simclr_compose(16)
    assert [id(c) for c in B.traced_pipelines(single, pil_image)] == [id(single)]
    nested = T.Compose([T.Compose([T.RandomHorizontalFlip()]), T.ToTensor()])
    assert [id(c) for c in B.traced_pipelines(nested, pil_image)] == [id(nested)]
    assert _compose_calls() == before


def test_traced_pipelines_rejects_more_views_than_compose_calls(pil_image):
    before = _compose_calls()
    with pytest.raises(UnsupportedTransform, match="2 view"):
        B.traced_pipelines(RepeatsOneView(), pil_image)
    assert _compose_calls() == before


def test_traced_pipelines_restores_compose_after_an_exception(pil_image):
    before = _compose_calls()
    with pytest.raises(RuntimeError, match="boom"):
        B.traced_pipelines(Explodes(), pil_image)
    assert _compose_calls() == before
    assert T.Compose.__dict__["__call__"] is before[0]
    assert T.Compose([T.ToTensor()])(pil_image).shape == (3, 16, 16)      # still works


def test_traced_pipelines_leaves_an_inherited_call_inherited(pil_image):
    """v2.Compose inherits __call__ from nn.Module: afterwards it still does."""
    inherited = "__call__" not in vars(v2.Compose)
    B.traced_pipelines(v2.Compose([v2.ToImage()]), pil_image)
    assert ("__call__" not in vars(v2.Compose)) == inherited


# ---------------------------------------------------------------------------- view_loader


@pytest.fixture(scope="module")
def arrays():
    """20 images of 16x16 whose labels are their indices."""
    shapes = data.make_shapes(20, image_size=16, seed=2)
    return data.ImageArrays(shapes.images, np.arange(20), [str(i) for i in range(20)])


def loaders(arrays, transform, **kwargs):
    gpu = data.view_loader(arrays, transform, 8, gpu=True, device=CPU, **kwargs)
    cpu = data.view_loader(arrays, transform, 8, gpu=False, device=CPU, num_workers=0, **kwargs)
    return gpu, cpu


def layout(batch):
    views, labels = batch
    if torch.is_tensor(views):
        return ("tensor", tuple(views.shape), views.dtype), tuple(labels.shape), labels.dtype
    return (type(views).__name__, [(tuple(v.shape), v.dtype) for v in views],
            tuple(labels.shape), labels.dtype)


@pytest.mark.parametrize("case", ["single", "two_views", "multicrop"])
def test_view_loader_gpu_batches_have_the_dataloader_layout(arrays, case):
    transform = MultiCrop(16, 8, 3) if case == "multicrop" else simclr_compose(16)
    gpu, cpu = loaders(arrays, transform, two_views=case == "two_views")
    assert isinstance(gpu, B.GPUViewLoader) and isinstance(cpu, DataLoader)
    g, c = next(iter(gpu)), next(iter(cpu))
    assert layout(g) == layout(c)
    if case == "single":
        assert g[0].shape == (8, 3, 16, 16)
    elif case == "two_views":
        assert isinstance(g[0], list) and len(g[0]) == 2
    else:
        assert [v.shape[-1] for v in g[0]] == [16, 16, 8, 8, 8]


@pytest.mark.parametrize("drop_last, lengths", [(True, [8, 8]), (False, [8, 8, 4])])
def test_view_loader_length_and_batch_sizes(arrays, drop_last, lengths):
    gpu, cpu = loaders(arrays, simclr_compose(16), drop_last=drop_last)
    assert len(gpu) == len(cpu) == len(lengths)
    assert [len(labels) for _, labels in gpu] == lengths


def test_view_loader_visits_every_image_once_per_epoch_shuffled(arrays):
    loader = data.view_loader(arrays, simclr_compose(16), 8, gpu=True, device=CPU,
                              drop_last=False)
    epochs = [torch.cat([labels for _, labels in loader]) for _ in range(2)]
    for seen in epochs:
        assert sorted(seen.tolist()) == list(range(20))
    assert not torch.equal(epochs[0], torch.arange(20))           # shuffled (seeded)
    assert not torch.equal(epochs[0], epochs[1])                   # afresh each epoch
    ordered = data.view_loader(arrays, simclr_compose(16), 8, gpu=True, device=CPU,
                               shuffle=False, drop_last=False)
    assert torch.cat([labels for _, labels in ordered]).tolist() == list(range(20))


def test_view_loader_views_are_augmentations_of_their_images(arrays):
    """Without randomness the views are the normalised images of their labels."""
    transform = T.Compose([T.ToTensor(), augment.normalize()])
    loader = data.view_loader(arrays, transform, 8, gpu=True, device=CPU, two_views=True)
    (v1, v2_), labels = next(iter(loader))
    expected = torch.stack([transform(arrays.pil(i)) for i in labels.tolist()])
    torch.testing.assert_close(v1, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(v2_, expected, atol=1e-5, rtol=0)


def test_view_loader_two_views_differ(arrays):
    loader = data.view_loader(arrays, simclr_compose(16), 8, gpu=True, device=CPU,
                              two_views=True)
    (v1, v2_), _ = next(iter(loader))
    assert (v1 - v2_).abs().flatten(1).amax(1).min() > 1e-3


def test_view_loader_cpu_path_is_a_dataloader(arrays, monkeypatch):
    loader = data.view_loader(arrays, simclr_compose(16), 8, gpu=False, device=CPU,
                              num_workers=0)
    assert isinstance(loader, DataLoader)
    monkeypatch.setenv("COURSE_GPU_AUGMENT", "0")
    loader = data.view_loader(arrays, simclr_compose(16), 8, device=CPU, num_workers=0)
    assert isinstance(loader, DataLoader)                  # switched off: PIL workers
    monkeypatch.delenv("COURSE_GPU_AUGMENT", raising=False)
    loader = data.view_loader(arrays, simclr_compose(16), 8, device=CPU, num_workers=0)
    assert isinstance(loader, B.GPUViewLoader)             # the default on the CPU: batched


def test_gpu_augment_enabled_on_cuda_and_cpu_unless_switched_off(monkeypatch):
    monkeypatch.delenv("COURSE_GPU_AUGMENT", raising=False)
    assert data.gpu_augment_enabled(torch.device("cuda"))
    assert data.gpu_augment_enabled(CPU)
    assert not data.gpu_augment_enabled(torch.device("mps"))
    for off in ("0", "false", "No", " off "):
        monkeypatch.setenv("COURSE_GPU_AUGMENT", off)
        assert not data.gpu_augment_enabled(torch.device("cuda"))
        assert not data.gpu_augment_enabled(CPU)
    monkeypatch.setenv("COURSE_GPU_AUGMENT", "1")
    assert data.gpu_augment_enabled(torch.device("mps"))


def test_view_loader_falls_back_to_pil_for_untranslatable_transforms(arrays, capsys):
    transform = T.Compose([T.Lambda(lambda im: im), T.ToTensor()])
    loader = data.view_loader(arrays, transform, 8, gpu=True, device=CPU, num_workers=0)
    assert isinstance(loader, DataLoader)
    assert "GPU augmentation is off" in capsys.readouterr().out
    views, labels = next(iter(loader))
    assert views.shape == (8, 3, 16, 16)
    loader = data.view_loader(arrays, RepeatsOneView(), 8, gpu=True, device=CPU, num_workers=0)
    assert isinstance(loader, DataLoader) and "PIL workers" in capsys.readouterr().out
