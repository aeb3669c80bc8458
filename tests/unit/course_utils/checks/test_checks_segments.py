"""The visible checks of notebook 05 accept right answers and name the known mistakes."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from check_data.segments import (BEST_MISTAKES, DECODER_MISTAKES, HEAD_MISTAKES, LABEL_MISTAKES,
                                 LOSS_MISTAKES, POINTS_MISTAKES, ROTATE_MISTAKES,
                                 UPSAMPLE_MISTAKES, Decoder, SegmentationHead,
                                 best_of_three_loss, encode_points, hard_iou, mask_losses,
                                 rotate_batch, segmentation_loss, upsample_logits)
from course_utils.checks import segments as checks
from helpers import fails_with

IGNORE = checks.IGNORE


def named(mistakes):
    """pytest parameters (fn, message) of known mistakes, with their names as ids."""
    return [pytest.param(m.fn, m.message, id=m.name) for m in mistakes]


def accepts(check, answers, capsys, what):
    for answer in answers:
        check(answer)
    out = capsys.readouterr()
    assert out.out.count(f"[ok] {what}") == len(answers) and out.err == ""


def not_written(*args, **kwargs):
    raise NotImplementedError


# ----------------------------------------------------------------------------- rotation


def rotate_by_flips(images):
    """Written differently: quarter turns from transposes and flips, labels from a list."""
    turned = [images, images.transpose(2, 3).flip(2), images.flip(2).flip(3),
              images.transpose(2, 3).flip(3)]
    labels = torch.tensor([k for k in range(4) for _ in range(len(images))])
    return torch.cat(turned, dim=0), labels


def rotate_per_image(images):
    """Written differently: a loop over k, then over the images."""
    copies, labels = [], []
    for k in range(4):
        for image in images:
            copies.append(torch.rot90(image, k, dims=(1, 2)))
            labels.append(k)
    return torch.stack(copies), torch.as_tensor(labels, dtype=torch.int64)


def test_rotate_batch_accepts_right_answers(capsys):
    accepts(checks.check_rotate_batch, [rotate_batch, rotate_by_flips, rotate_per_image], capsys,
            "rotate_batch")


@pytest.mark.parametrize("fn, message", named(ROTATE_MISTAKES + LABEL_MISTAKES))
def test_rotate_batch_names_mistakes(fn, message):
    fails_with(checks.check_rotate_batch, fn, message)


def rotate_blocks_reordered(images):
    rotated, labels = rotate_batch(images)
    B = len(images)
    order = torch.cat([torch.arange(B) + k * B for k in (0, 2, 1, 3)])
    return rotated[order], labels


def rotate_noise(images):
    rotated, labels = rotate_batch(images)
    return rotated + 0.5, labels


def rotate_shuffled_pixels(images):
    rotated, labels = rotate_batch(images)
    return rotated.flatten(2).flip(-1).reshape(rotated.shape).roll(1, dims=-1), labels


def rotate_in_place(images):
    out = rotate_batch(images.clone())
    images.add_(1.0)
    return out


@pytest.mark.parametrize("fn, words", [
    (not_written, ["notimplementederror", "not written yet"]),
    (lambda images: rotate_batch(images)[0], ["pair (rotated, labels)"]),
    (lambda images: ([torch.rot90(images, k, dims=(2, 3)) for k in range(4)],
                     rotate_batch(images)[1]), ["torch.cat"]),
    (lambda images: (torch.stack([torch.rot90(images, k, dims=(2, 3)) for k in range(4)]),
                     rotate_batch(images)[1]), ["torch.stack", "(4b, c, h, w)"]),
    (lambda images: (rotate_batch(images)[0][:len(images)], rotate_batch(images)[1]),
     ["shape"]),
    (lambda images: (rotate_batch(images)[0], rotate_batch(images)[1].float()), ["int64"]),
    (lambda images: (rotate_batch(images)[0], rotate_batch(images)[1].tolist()), ["tensor"]),
    (lambda images: (rotate_batch(images)[0].numpy(), rotate_batch(images)[1]), ["numpy"]),
    (rotate_blocks_reordered, ["copy 2 holds image 0 turned 2 times",
                               "should hold image 0 turned 1 times"]),
    (rotate_noise, ["not in the arange images"]),
    (rotate_shuffled_pixels, ["no rotation"]),
    (lambda images: rotate_batch(images.detach()), ["requires_grad"]),
    (lambda images: rotate_batch(images.float()), ["float64"]),
    (rotate_in_place, ["changed images in place"]),
])
def test_rotate_batch_reports_broken_answers(fn, words):
    fails_with(checks.check_rotate_batch, fn, *words)


# ----------------------------------------------------------------------------- the decoder


class DecoderUnflatten(nn.Module):
    """Written differently: the layers registered from the last, nn.Unflatten, no bias before
    the BatchNorm2d layers, one attribute per layer."""

    def __init__(self, feature_dim, width=32, image_size=32):
        super().__init__()
        s = image_size // 8
        self.to_rgb = nn.ConvTranspose2d(width, 3, kernel_size=4, stride=2, padding=1)
        self.up2 = nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(width)
        self.up1 = nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1, bias=False)
        self.norm1 = nn.BatchNorm2d(2 * width)
        self.project = nn.Sequential(nn.Linear(feature_dim, 4 * width * s * s),
                                     nn.Unflatten(1, (4 * width, s, s)))

    def forward(self, h):
        x = F.relu(self.norm1(self.up1(self.project(h))))
        x = F.relu(self.norm2(self.up2(x)))
        return self.to_rgb(x)


def test_decoder_accepts_right_answers(capsys):
    accepts(checks.check_decoder, [Decoder, DecoderUnflatten], capsys, "Decoder")


@pytest.mark.parametrize("cls, message", named(DECODER_MISTAKES))
def test_decoder_names_mistakes(cls, message):
    fails_with(checks.check_decoder, cls, message)


def decoder_variant(change):
    """A Decoder whose layers or forward ``change(self, feature_dim, width, image_size)``
    alters after the right ones are built."""
    class Variant(Decoder):
        def __init__(self, feature_dim, width=32, image_size=32):
            super().__init__(feature_dim, width, image_size)
            change(self, feature_dim, width, image_size)
    return Variant


def drop_norms(self, *_):
    self.up = nn.Sequential(*[m for m in self.up if not isinstance(m, nn.BatchNorm2d)])


def norm_at_the_end(self, *_):
    self.up.append(nn.BatchNorm2d(3))


def kernel_3(self, feature_dim, width, image_size):
    self.up[0] = nn.ConvTranspose2d(4 * width, 2 * width, 3, stride=2, padding=1,
                                    output_padding=1)


def upsample_conv(self, feature_dim, width, image_size):
    self.up = nn.Sequential(nn.Upsample(scale_factor=8), nn.Conv2d(4 * width, 3, 3, padding=1))


def no_last_bias(self, feature_dim, width, image_size):
    self.up[-1] = nn.ConvTranspose2d(width, 3, 4, stride=2, padding=1, bias=False)


def two_linears(self, feature_dim, width, image_size):
    self.fc = nn.Sequential(nn.Linear(feature_dim, feature_dim), self.fc)


class FixedWidth(Decoder):
    def __init__(self, feature_dim, width=32, image_size=32):
        super().__init__(feature_dim, 32, image_size)


class FixedSize(Decoder):
    def __init__(self, feature_dim, width=32, image_size=32):
        super().__init__(feature_dim, width, 32)


class DetachedInput(Decoder):
    def forward(self, h):
        return super().forward(h.detach())


class NotWrittenForward(Decoder):
    def forward(self, h):
        raise NotImplementedError


class ReturnsList(Decoder):
    def forward(self, h):
        return [super().forward(h)]


class NotAModule:
    def __init__(self, feature_dim, width=32, image_size=32):
        pass


class NoArguments(Decoder):
    def __init__(self, feature_dim):
        super().__init__(feature_dim)


@pytest.mark.parametrize("cls, words", [
    (decoder_variant(drop_norms), ["batchnorm2d", "after each of the first two"]),
    (decoder_variant(norm_at_the_end), ["normalises the 3 output channels"]),
    (decoder_variant(kernel_3), ["kernel_size=3", "kernel_size=4, stride=2, padding=1"]),
    (decoder_variant(upsample_conv), ["no nn.convtranspose2d"]),
    (decoder_variant(no_last_bias), ["no bias"]),
    (decoder_variant(two_linears), ["2 nn.linear layers"]),
    (FixedWidth, ["4 * width -> 2 * width -> width -> 3"]),
    (FixedSize, ["linear maps", "grid"]),
    (DetachedInput, ["no gradient reaches h"]),
    (NotWrittenForward, ["not written yet"]),
    (ReturnsList, ["torch.tensor", "list"]),
    (NotAModule, ["nn.module"]),
    (NoArguments, ["signature decoder(feature_dim, width=32, image_size=32)"]),
])
def test_decoder_reports_broken_answers(cls, words):
    fails_with(checks.check_decoder, cls, *words)


# ----------------------------------------------------------------------------- the head


class HeadEinsum(nn.Module):
    """Written differently: the Linear's weights in an einsum, the grid by unflatten."""

    def __init__(self, embed_dim, num_classes):
        super().__init__()
        self.classifier = nn.Linear(embed_dim, num_classes)

    def forward(self, patch_tokens):
        g = int(math.sqrt(patch_tokens.shape[1]))
        logits = torch.einsum("bld,kd->bkl", patch_tokens, self.classifier.weight)
        logits = logits + self.classifier.bias[None, :, None]
        return logits.unflatten(2, (g, g))


class HeadPermute(SegmentationHead):
    """Written differently: (B, g, g, K), then permute."""

    def forward(self, patch_tokens):
        B, L, _ = patch_tokens.shape
        g = int(L ** 0.5)
        return self.linear(patch_tokens).reshape(B, g, g, -1).permute(0, 3, 1, 2)


def test_segmentation_head_accepts_right_answers(capsys):
    accepts(checks.check_segmentation_head, [SegmentationHead, HeadEinsum, HeadPermute],
            capsys, "SegmentationHead")


@pytest.mark.parametrize("cls, message", named(HEAD_MISTAKES))
def test_segmentation_head_names_mistakes(cls, message):
    fails_with(checks.check_segmentation_head, cls, message)


class ChannelsLast(SegmentationHead):
    def forward(self, patch_tokens):
        B, L, _ = patch_tokens.shape
        g = int(L ** 0.5)
        return self.linear(patch_tokens).reshape(B, g, g, -1)


class TokensOnly(SegmentationHead):
    def forward(self, patch_tokens):
        return self.linear(patch_tokens)


class MLPHead(SegmentationHead):
    def __init__(self, embed_dim, num_classes):
        super().__init__(embed_dim, num_classes)
        self.hidden = nn.Linear(embed_dim, embed_dim)

    def forward(self, patch_tokens):
        return super().forward(F.relu(self.hidden(patch_tokens)))


class ConvHead(nn.Module):
    def __init__(self, embed_dim, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(embed_dim, num_classes, 1)

    def forward(self, patch_tokens):
        B, L, D = patch_tokens.shape
        g = int(L ** 0.5)
        return self.conv(patch_tokens.transpose(1, 2).reshape(B, D, g, g))


class NoBias(SegmentationHead):
    def __init__(self, embed_dim, num_classes):
        super().__init__(embed_dim, num_classes)
        self.linear = nn.Linear(embed_dim, num_classes, bias=False)


class FixedGrid(SegmentationHead):
    def forward(self, patch_tokens):
        return self.linear(patch_tokens).transpose(1, 2).reshape(len(patch_tokens), -1, 3, 3)


class DetachedTokens(SegmentationHead):
    def forward(self, patch_tokens):
        return super().forward(patch_tokens.detach())


class NotWrittenHead(SegmentationHead):
    def forward(self, patch_tokens):
        raise NotImplementedError


@pytest.mark.parametrize("cls, words", [
    (ChannelsLast, ["classes are last", "dim 1"]),
    (TokensOnly, ["g x g grid"]),
    (MLPHead, ["2 nn.linear layers"]),
    (ConvHead, ["no nn.linear"]),
    (NoBias, ["parameters", "bias"]),
    (FixedGrid, ["segmentationhead(3, 2)", "shape"]),
    (DetachedTokens, ["does not reach every patch token"]),
    (NotWrittenHead, ["not written yet"]),
])
def test_segmentation_head_reports_broken_answers(cls, words):
    fails_with(checks.check_segmentation_head, cls, *words)


# ----------------------------------------------------------------------------- upsampling


def upsample_module(logits, size):
    """Written differently: nn.Upsample (align_corners=None means False)."""
    return nn.Upsample(size=size, mode="bilinear")(logits)


def test_upsample_logits_accepts_right_answers(capsys):
    accepts(checks.check_upsample_logits, [upsample_logits, upsample_module], capsys,
            "upsample_logits")


@pytest.mark.parametrize("fn, message", named(UPSAMPLE_MISTAKES))
def test_upsample_logits_names_mistakes(fn, message):
    fails_with(checks.check_upsample_logits, fn, message)


@pytest.mark.parametrize("fn, words", [
    (not_written, ["not written yet"]),
    (lambda logits, size: F.interpolate(logits, scale_factor=size // logits.shape[-1],
                                        mode="bilinear"), ["shape", "size=(size, size)"]),
    (lambda logits, size: [upsample_logits(logits, size)], ["torch.tensor", "list"]),
    (lambda logits, size: upsample_logits(logits, size).detach(), ["requires_grad"]),
    (lambda logits, size: upsample_logits(logits, size)[0], ["shape"]),
])
def test_upsample_logits_reports_broken_answers(fn, words):
    fails_with(checks.check_upsample_logits, fn, *words)


# ----------------------------------------------------------------------------- the loss


def loss_by_hand(logits, target):
    """Written differently: log_softmax, gather, the mean over a boolean mask."""
    counted = target != IGNORE
    logp = logits.log_softmax(dim=1)
    picked = logp.gather(1, target.where(counted, 0)[:, None])[:, 0]
    return -picked[counted].mean()


def test_segmentation_loss_accepts_right_answers(capsys):
    accepts(checks.check_segmentation_loss, [segmentation_loss, loss_by_hand], capsys,
            "segmentation_loss")


@pytest.mark.parametrize("fn, message", named(LOSS_MISTAKES))
def test_segmentation_loss_names_mistakes(fn, message):
    fails_with(checks.check_segmentation_loss, fn, message)


def loss_in_place(logits, target):
    counted = target != IGNORE
    target[~counted] = 0
    per_pixel = F.cross_entropy(logits, target, reduction="none")
    return (per_pixel * counted).sum() / counted.sum()


@pytest.mark.parametrize("fn, words", [
    (lambda logits, target: F.cross_entropy(logits, target), ["ignore_index=ignore"]),
    (lambda logits, target: F.cross_entropy(logits, target, ignore_index=IGNORE,
                                            reduction="none"), ["0-dim"]),
    (lambda logits, target: segmentation_loss(logits, target).item(), ["python number"]),
    (lambda logits, target: [segmentation_loss(logits, target)], ["torch.tensor", "list"]),
    (loss_in_place, ["changed target in place"]),
    (not_written, ["not written yet"]),
])
def test_segmentation_loss_reports_broken_answers(fn, words):
    fails_with(checks.check_segmentation_loss, fn, *words)


# ----------------------------------------------------------------------------- the point prompt


def encode_by_hand(points, labels, image_size, gaussian_matrix, label_embedding):
    """Written differently: the centre mapped to [-1, 1] in one step, 2 pi in the matrix,
    the label embedding chosen with torch.where."""
    c = (2 * points + 1) / image_size - 1
    proj = c @ (2 * math.pi * gaussian_matrix)
    chosen = torch.where(labels[..., None] == 1, label_embedding[1], label_embedding[0])
    return torch.cat((torch.sin(proj), torch.cos(proj)), -1) + chosen


def test_encode_points_accepts_right_answers(capsys):
    accepts(checks.check_encode_points, [encode_points, encode_by_hand], capsys,
            "encode_points")


@pytest.mark.parametrize("fn, message", named(POINTS_MISTAKES))
def test_encode_points_names_mistakes(fn, message):
    fails_with(checks.check_encode_points, fn, message)


def encode_sin_only(points, labels, image_size, gaussian_matrix, label_embedding):
    return encode_points(points, labels, image_size, gaussian_matrix,
                         label_embedding)[..., :gaussian_matrix.shape[1]]


def encode_in_place(points, labels, image_size, gaussian_matrix, label_embedding):
    points += 0.5
    return encode_points(points - 0.5, labels, image_size, gaussian_matrix, label_embedding)


def encode_detached(points, labels, image_size, gaussian_matrix, label_embedding):
    return encode_points(points, labels, image_size, gaussian_matrix, label_embedding.detach())


@pytest.mark.parametrize("fn, words", [
    (encode_sin_only, ["concatenate"]),
    (encode_in_place, ["changed points in place"]),
    (encode_detached, ["requires_grad"]),
    (lambda *args: encode_points(*args)[:, :1], ["shape"]),
    (lambda *args: list(encode_points(*args)), ["torch.tensor", "list"]),
    (not_written, ["not written yet"]),
])
def test_encode_points_reports_broken_answers(fn, words):
    fails_with(checks.check_encode_points, fn, *words)


# ----------------------------------------------------------------------------- best of three


def best_by_loops(mask_logits, iou_pred, target):
    """Written differently: a loop over images and candidates, bce from softplus."""
    B = len(mask_logits)
    mask_terms, squared = [], []
    for b in range(B):
        t = target[b]
        losses = []
        for c in range(3):
            x = mask_logits[b, c]
            p = torch.sigmoid(x)
            bce = (F.softplus(x) - x * t).mean()
            dice = 1 - (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1)
            losses.append(bce + dice)
            with torch.no_grad():
                m, truth = x > 0, t > 0.5
                union = (m | truth).sum()
                iou = (m & truth).sum() / union if union > 0 else torch.tensor(0.0)
            squared.append((iou_pred[b, c] - iou.to(iou_pred.dtype)) ** 2)
        mask_terms.append(torch.stack(losses).min())
    return torch.stack(mask_terms).mean() + torch.stack(squared).mean()


def test_best_of_three_loss_accepts_right_answers(capsys):
    accepts(checks.check_best_of_three_loss, [best_of_three_loss, best_by_loops], capsys,
            "best_of_three_loss")


@pytest.mark.parametrize("fn, message", named(BEST_MISTAKES))
def test_best_of_three_loss_names_mistakes(fn, message):
    fails_with(checks.check_best_of_three_loss, fn, message)


def best_nan_on_empty_union(mask_logits, iou_pred, target):
    t = target[:, None].expand_as(mask_logits) > 0.5
    hard = mask_logits > 0
    iou = ((hard & t).sum(dim=(2, 3)) / (hard | t).sum(dim=(2, 3))).float()
    best = mask_losses(mask_logits, target).min(dim=1).values.mean()
    return best + F.mse_loss(iou_pred, iou)


def best_iou_with_gradient(mask_logits, iou_pred, target):
    """The hard IoU's value, but a gradient through the probabilities (straight-through)."""
    soft = mask_logits.sigmoid().mean()
    iou = hard_iou(mask_logits, target) + soft - soft.detach()
    best = mask_losses(mask_logits, target).min(dim=1).values.mean()
    return best + F.mse_loss(iou_pred, iou)


def best_iou_pred_detached(mask_logits, iou_pred, target):
    return best_of_three_loss(mask_logits, iou_pred.detach(), target)


@pytest.mark.parametrize("fn, words", [
    (best_nan_on_empty_union, ["nan", "union is empty"]),
    (best_iou_with_gradient, ["candidates [[0, 1, 2], [0, 1, 2]]", "without gradient"]),
    (best_iou_pred_detached, ["iou_pred does not get a gradient"]),
    (lambda m, i, t: best_of_three_loss(m.detach(), i, t), ["candidates [[], []]"]),
    (lambda m, i, t: mask_losses(m, t).min(dim=1).values, ["0-dim"]),
    (lambda m, i, t: best_of_three_loss(m, i, t).item(), ["python number"]),
    (lambda m, i, t: [best_of_three_loss(m, i, t)], ["torch.tensor", "list"]),
    (not_written, ["not written yet"]),
])
def test_best_of_three_loss_reports_broken_answers(fn, words):
    fails_with(checks.check_best_of_three_loss, fn, *words)


# ----------------------------------------------------------------------------- the fixed inputs


def test_the_fixed_inputs_are_what_the_docstrings_say():
    first, second = checks.rotate_inputs()
    assert tuple(first.shape) == (2, 2, 3, 3) and tuple(second.shape) == (3, 1, 2, 2)
    logits, _, target = checks.best_of_three_inputs()[0]
    assert mask_losses(logits, target).argmin(dim=1).tolist() == [1, 2]
    losses = mask_losses(logits, target).sort(dim=1).values
    assert bool((losses[:, 1] - losses[:, 0] > 0.05).all()), "the best candidates are clear"
    empty_logits, _, empty = checks.best_of_three_inputs()[1]
    assert not bool(empty.any()) and not bool((empty_logits[0, 0] > 0).any())
    for _, target in checks.loss_inputs():
        assert target.dtype == torch.long
    assert (checks.loss_inputs()[0][1] == IGNORE).sum(dim=(1, 2)).tolist() == [4, 1]
