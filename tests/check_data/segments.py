"""Notebook 05 (paradigms and segments): the reference solutions and known mistakes of
rotate_batch, Decoder, SegmentationHead, upsample_logits, segmentation_loss, encode_points and
best_of_three_loss, and the tables course_utils/checks/segments.py compares with.

Regenerate course_utils/checks/stored/segments.py: ``python -m tests.check_data segments``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.checks import segments as checks

from . import Mistake, double, on_cases, table

IGNORE = checks.IGNORE


# ----------------------------------------------------------------------------- rotation


def make_rotate(turn="right", order="blocks", labels="right"):
    """rotate_batch with one mistake switched on (the right one by default)."""
    def rotate_batch(images):
        B = len(images)
        copies = {
            "right": lambda k: torch.rot90(images, k, dims=(2, 3)),
            "other_way": lambda k: torch.rot90(images, -k, dims=(2, 3)),
            "transpose": lambda k: [images, images.transpose(2, 3), images.flip(2, 3),
                                    images.flip(2, 3).transpose(2, 3)][k],
            "mirror": lambda k: [images, images.flip(3), images.flip(2), images.flip(2, 3)][k],
            "default_dims": lambda k: torch.rot90(images, k),
            "none": lambda k: images,
        }[turn]
        if order == "blocks":
            rotated = torch.cat([copies(k) for k in range(4)])
        else:
            rotated = torch.stack([copies(k) for k in range(4)], dim=1).flatten(0, 1)
        ks = torch.arange(4, device=images.device)
        label = {"right": ks.repeat_interleave(B), "interleaved": ks.repeat(B),
                 "one_based": (ks + 1).repeat_interleave(B),
                 "degrees": (90 * ks).repeat_interleave(B)}[labels]
        if order != "blocks":
            label = ks.repeat(B)
        return rotated, label
    return rotate_batch


rotate_batch = make_rotate()

ROTATE_MISTAKES = [
    Mistake("other_way", make_rotate(turn="other_way"),
            "your copies turn the other way (clockwise). The text turns copy k by "
            "torch.rot90(images, k, dims=(2, 3)), counter-clockwise: the top row becomes the "
            "left column, read from the bottom up."),
    Mistake("transpose", make_rotate(turn="transpose"),
            "a transpose (rows and columns swapped) mirrors the image along its diagonal; it "
            "is no rotation. Turn the images with torch.rot90(images, k, dims=(2, 3))."),
    Mistake("mirror", make_rotate(turn="mirror"),
            "your copies are mirror images (flips), not rotations; a quarter turn moves the "
            "top row to the left column: torch.rot90(images, k, dims=(2, 3))."),
    Mistake("default_dims", make_rotate(turn="default_dims"),
            "torch.rot90's default dims=(0, 1) turns the batch and channel axes; turn the "
            "image plane (rows and columns): dims=(2, 3)."),
    Mistake("none", make_rotate(turn="none"),
            "every copy is the image unturned; copy k is turned by k * 90 degrees, "
            "k = 0, 1, 2, 3."),
    Mistake("image_major", make_rotate(order="interleaved"),
            "the copies come image by image (the four turns of image 0, then of image 1, "
            "...); the text puts them in four blocks of B: block k holds every image turned "
            "k times, in the batch's order (torch.cat over k)."),
]
LABEL_MISTAKES = [
    Mistake("interleaved", make_rotate(labels="interleaved"),
            "the labels are interleaved (0, 1, 2, 3, 0, 1, ...) but the copies come in four "
            "blocks of B: the labels are B zeros, then B ones, B twos, B threes "
            "(repeat_interleave, not repeat)."),
    Mistake("one_based", make_rotate(labels="one_based"),
            "the labels run from 1 to 4; they are k = 0, 1, 2, 3 (class indices start at 0)."),
    Mistake("degrees", make_rotate(labels="degrees"),
            "the labels are angles in degrees; they are the class indices k = 0, 1, 2, 3 of "
            "the four rotations."),
]


def _rotate_cases(part: int):
    cases = [(x,) for x in checks.rotate_inputs()]
    return lambda fn: on_cases(cases)(lambda x: fn(x)[part].long())


# ----------------------------------------------------------------------------- the decoder


def make_decoder(mistake=None):
    """Decoder with one mistake switched on (the right one by default)."""
    class Decoder(nn.Module):
        def __init__(self, feature_dim, width=32, image_size=32):
            super().__init__()
            self.width, self.side = width, image_size // 8
            self.fc = nn.Linear(feature_dim, 4 * width * self.side ** 2)

            def block(c_in, c_out):
                conv = nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)
                if mistake == "relu_before_bn":
                    return [conv, nn.ReLU(), nn.BatchNorm2d(c_out)]
                if mistake == "no_relu":
                    return [conv, nn.BatchNorm2d(c_out)]
                return [conv, nn.BatchNorm2d(c_out), nn.ReLU()]

            end = {"relu_last": [nn.ReLU()], "tanh_last": [nn.Tanh()],
                   "sigmoid_last": [nn.Sigmoid()]}.get(mistake, [])
            self.up = nn.Sequential(*block(4 * width, 2 * width), *block(2 * width, width),
                                    nn.ConvTranspose2d(width, 3, 4, stride=2, padding=1), *end)

        def forward(self, h):
            x = self.fc(h)
            if mistake == "channels_last_view":
                x = x.view(len(h), self.side, self.side, 4 * self.width).permute(0, 3, 1, 2)
            else:
                x = x.view(len(h), 4 * self.width, self.side, self.side)
            return self.up(x)
    return Decoder


Decoder = make_decoder()

DECODER_MISTAKES = [
    Mistake("relu_last", make_decoder("relu_last"),
            "a ReLU comes after the last ConvTranspose2d, so no pixel is negative; "
            "normalised pixels take both signs: put nothing after the last layer."),
    Mistake("sigmoid_last", make_decoder("sigmoid_last"),
            "a Sigmoid squeezes the pixels into (0, 1), but the targets are normalised "
            "pixels (both signs, beyond 1): put nothing after the last ConvTranspose2d."),
    Mistake("tanh_last", make_decoder("tanh_last"),
            "a Tanh squeezes the pixels into (-1, 1), but normalised pixels go beyond: put "
            "nothing after the last ConvTranspose2d."),
    Mistake("relu_before_bn", make_decoder("relu_before_bn"),
            "the ReLU comes before the BatchNorm2d; the order is ConvTranspose2d, "
            "BatchNorm2d, ReLU."),
    Mistake("no_relu", make_decoder("no_relu"),
            "there is no ReLU after the BatchNorm2d layers, so the decoder is linear in its "
            "features (up to the normalisation): ConvTranspose2d, BatchNorm2d, ReLU, twice, "
            "then the last ConvTranspose2d."),
    Mistake("channels_last_view", make_decoder("channels_last_view"),
            "the Linear's output is read as (B, side, side, 4 * width), channels last; view "
            "it as (B, 4 * width, side, side): channel first, as ConvTranspose2d expects."),
]


def _decoder(cls):
    feature_dim, width, image_size = checks.DECODER_CASE
    decoder = checks.fill_decoder(cls(feature_dim, width=width, image_size=image_size))
    return checks.decoder_values(decoder.double(), checks.decoder_input().double())


# ----------------------------------------------------------------------------- the head


def make_head(mistake=None):
    """SegmentationHead with one mistake switched on (the right one by default)."""
    class SegmentationHead(nn.Module):
        def __init__(self, embed_dim, num_classes):
            super().__init__()
            self.linear = nn.Linear(embed_dim, num_classes)

        def forward(self, patch_tokens):
            B, L, _ = patch_tokens.shape
            g = math.isqrt(L)
            logits = self.linear(patch_tokens)
            if mistake == "softmax":
                logits = logits.softmax(dim=-1)
            if mistake == "no_transpose":
                return logits.reshape(B, -1, g, g)
            if mistake == "column_major":
                return logits.transpose(1, 2).reshape(B, -1, g, g).transpose(2, 3)
            return logits.transpose(1, 2).reshape(B, -1, g, g)
    return SegmentationHead


SegmentationHead = make_head()

HEAD_MISTAKES = [
    Mistake("no_transpose", make_head("no_transpose"),
            "the (B, L, num_classes) logits were reshaped to (B, num_classes, g, g) without "
            "moving the class axis first: that scrambles tokens and classes. Transpose to "
            "(B, num_classes, L), then reshape L into (g, g)."),
    Mistake("column_major", make_head("column_major"),
            "the tokens are laid out column by column; the ViT numbers its patches row by "
            "row: token l sits at row l // g, column l % g."),
    Mistake("softmax", make_head("softmax"),
            "the head returns probabilities (a softmax over the classes); it returns logits: "
            "the Linear's output as it is (the loss applies the softmax)."),
]


def _heads(cls):
    return [checks.fill_head(cls(embed_dim, K)).double()(tokens.double())
            for embed_dim, K, tokens in checks.head_inputs()]


# ----------------------------------------------------------------------------- upsampling


def upsample_logits(logits, size):
    return F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False)


def make_upsample(mode="bilinear", align_corners=False, space="logits"):
    def upsample(logits, size):
        x = logits.softmax(dim=1) if space != "logits" else logits
        kwargs = {} if mode == "nearest" else {"align_corners": align_corners}
        x = F.interpolate(x, size=(size, size), mode=mode, **kwargs)
        return x.log() if space == "log_probabilities" else x
    return upsample


UPSAMPLE_MISTAKES = [
    Mistake("nearest", make_upsample(mode="nearest"),
            "this is nearest-neighbour upsampling (blocks of equal logits); use "
            "mode='bilinear', which blends the four nearest patches."),
    Mistake("align_corners", make_upsample(align_corners=True),
            "align_corners=True pins the corner pixels' centres to the corner patches' "
            "centres; the text uses align_corners=False, which treats each patch as a square "
            "of pixels."),
    Mistake("bicubic", make_upsample(mode="bicubic"),
            "this is bicubic interpolation; the text uses mode='bilinear'."),
    Mistake("softmax_first", make_upsample(space="probabilities"),
            "you interpolated probabilities (a softmax first) and returned them; "
            "interpolate the logits themselves and return logits."),
    Mistake("log_probabilities", make_upsample(space="log_probabilities"),
            "you interpolated probabilities and took their log; interpolate the logits "
            "themselves (the loss applies the softmax after)."),
]


# ----------------------------------------------------------------------------- the loss


def segmentation_loss(logits, target):
    return F.cross_entropy(logits, target, ignore_index=IGNORE)


def make_seg_loss(mistake):
    def loss_fn(logits, target):
        counted = target != IGNORE
        if mistake == "ignored_as_class_0":
            return F.cross_entropy(logits, target.masked_fill(~counted, 0))
        if mistake == "softmax_first":
            return F.cross_entropy(logits.softmax(dim=1), target, ignore_index=IGNORE)
        if mistake == "no_log_softmax":
            return F.nll_loss(logits, target, ignore_index=IGNORE)
        per_pixel = F.cross_entropy(logits, target, ignore_index=IGNORE, reduction="none")
        if mistake == "ignored_averaged_in":
            return per_pixel.mean()
        if mistake == "sum":
            return per_pixel.sum()
        if mistake == "per_image_mean":
            return (per_pixel.sum(dim=(1, 2)) / counted.sum(dim=(1, 2))).mean()
        raise ValueError(mistake)
    return loss_fn


LOSS_MISTAKES = [
    Mistake("ignored_averaged_in", make_seg_loss("ignored_averaged_in"),
            "the ignored pixels count in the average (their loss is 0 but they are in the "
            "count): the mean is over the pixels that count only, as "
            "F.cross_entropy(..., ignore_index=IGNORE) takes it."),
    Mistake("ignored_as_class_0", make_seg_loss("ignored_as_class_0"),
            "the ignored pixels are scored as class 0 (the backdrop); they count nothing: "
            "pass ignore_index=IGNORE instead of replacing the 255s."),
    Mistake("sum", make_seg_loss("sum"),
            "the loss is summed over the pixels; take the mean over the pixels that count "
            "(F.cross_entropy's default reduction)."),
    Mistake("per_image_mean", make_seg_loss("per_image_mean"),
            "you averaged each image's pixels, then the images; the loss is one mean over "
            "all the batch's pixels that count (images with more counted pixels weigh more)."),
    Mistake("softmax_first", make_seg_loss("softmax_first"),
            "a softmax is applied before F.cross_entropy, which applies its own "
            "log_softmax: pass the raw logits."),
    Mistake("no_log_softmax", make_seg_loss("no_log_softmax"),
            "F.nll_loss expects log-probabilities, not logits; use F.cross_entropy (which "
            "applies log_softmax over dim 1)."),
]


# ----------------------------------------------------------------------------- the point prompt


def encode_points(points, labels, image_size, gaussian_matrix, label_embedding):
    c = (points + 0.5) / image_size
    proj = 2 * math.pi * ((2 * c - 1) @ gaussian_matrix)
    return torch.cat([proj.sin(), proj.cos()], dim=-1) + label_embedding[labels]


def make_points(half=0.5, rescale=True, factor=2 * math.pi, order="sin_cos", xy=True,
                label="right"):
    def encode(points, labels, image_size, gaussian_matrix, label_embedding):
        p = points if xy else points.flip(-1)
        c = (p + half) / image_size
        if rescale:
            c = 2 * c - 1
        proj = factor * (c @ gaussian_matrix)
        if order == "interleaved":
            waves = torch.stack([proj.sin(), proj.cos()], dim=-1).flatten(-2)
        else:
            parts = [proj.sin(), proj.cos()]
            waves = torch.cat(parts if order == "sin_cos" else parts[::-1], dim=-1)
        if label == "none":
            return waves
        return waves + label_embedding[labels if label == "right" else 1 - labels]
    return encode


POINTS_MISTAKES = [
    Mistake("no_half", make_points(half=0.0),
            "the + 0.5 is missing: a pixel's coordinate names its corner; its centre is at "
            "(points + 0.5) / image_size."),
    Mistake("no_rescale", make_points(rescale=False),
            "the coordinates stay in [0, 1]; map them to [-1, 1] with 2 * c - 1 before the "
            "matrix product."),
    Mistake("no_2pi", make_points(factor=1.0),
            "the factor 2 * pi is missing: proj = 2 * pi * (c @ gaussian_matrix)."),
    Mistake("pi", make_points(factor=math.pi),
            "the factor is pi; it is 2 * pi: proj = 2 * pi * (c @ gaussian_matrix)."),
    Mistake("cos_first", make_points(order="cos_sin"),
            "cos comes before sin; the encoding is cat([sin(proj), cos(proj)], dim=-1)."),
    Mistake("interleaved", make_points(order="interleaved"),
            "sin and cos are interleaved (sin, cos, sin, cos, ...); the encoding is all "
            "sines, then all cosines: cat([sin(proj), cos(proj)], dim=-1)."),
    Mistake("yx", make_points(xy=False),
            "the coordinates are taken as (y, x) = (row, column); points hold (x, y) = "
            "(column, row), in that order, as SAM's do."),
    Mistake("no_label", make_points(label="none"),
            "the label embedding is missing: add label_embedding[labels] (row 1 for a "
            "foreground click, row 0 for a background one)."),
    Mistake("labels_swapped", make_points(label="swapped"),
            "the label embeddings are swapped: row 0 is for background clicks (label 0), row "
            "1 for foreground clicks (label 1): label_embedding[labels]."),
]


# ----------------------------------------------------------------------------- best of three


def best_of_three_loss(mask_logits, iou_pred, target):
    return make_best()(mask_logits, iou_pred, target)


def mask_losses(mask_logits, target, bce_reduce="mean", dice_one=1.0, dice_two=2.0,
                terms=("bce", "dice")):
    """bce + dice of every image and candidate: (B, 3)."""
    t = target[:, None].expand_as(mask_logits).to(mask_logits.dtype)
    p = mask_logits.sigmoid()
    bce = F.binary_cross_entropy_with_logits(mask_logits, t, reduction="none")
    bce = bce.mean(dim=(2, 3)) if bce_reduce == "mean" else bce.sum(dim=(2, 3))
    dice = 1 - (dice_two * (p * t).sum(dim=(2, 3)) + dice_one) / (
        p.sum(dim=(2, 3)) + t.sum(dim=(2, 3)) + dice_one)
    return (bce if "bce" in terms else 0) + (dice if "dice" in terms else 0)


def hard_iou(mask_logits, target, threshold=0.0, soft=False):
    """The IoU target of every image and candidate, without gradient: (B, 3)."""
    with torch.no_grad():
        t = target[:, None].expand_as(mask_logits) > 0.5
        if soft:
            p = mask_logits.sigmoid()
            inter = (p * t).sum(dim=(2, 3))
            return inter / (p.sum(dim=(2, 3)) + t.sum(dim=(2, 3)) - inter)
        hard = mask_logits > threshold
        inter = (hard & t).sum(dim=(2, 3)).to(mask_logits.dtype)
        union = (hard | t).sum(dim=(2, 3)).to(mask_logits.dtype)
        return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(union))


def make_best(pick="min", over="images", iou="hard", iou_on="all", iou_reduce="mean",
              **mask_kwargs):
    """best_of_three_loss with one mistake switched on (the right one by default)."""
    def loss_fn(mask_logits, iou_pred, target):
        losses = mask_losses(mask_logits, target, **mask_kwargs)
        if pick == "min":
            best = losses.min(dim=1).values
        elif pick == "max":
            best = losses.max(dim=1).values
        elif pick == "mean":
            best = losses.mean(dim=1)
        else:                                       # the highest predicted IoU
            best = losses.gather(1, iou_pred.argmax(dim=1, keepdim=True))[:, 0]
        if over == "batch":
            mask_term = losses.min()
        elif over == "sum":
            mask_term = best.sum()
        else:
            mask_term = best.mean()
        target_iou = {"hard": lambda: hard_iou(mask_logits, target),
                      "soft": lambda: hard_iou(mask_logits, target, soft=True),
                      "half": lambda: hard_iou(mask_logits, target, threshold=0.5)}[iou]()
        error = (iou_pred - target_iou.to(iou_pred.dtype)) ** 2
        if iou_on == "none":
            return mask_term
        if iou_on == "best":
            error = error.gather(1, losses.argmin(dim=1, keepdim=True))
        return mask_term + (error.mean() if iou_reduce == "mean" else error.sum())
    return loss_fn


BEST_MISTAKES = [
    Mistake("mean_candidates", make_best(pick="mean"),
            "the mask loss is averaged over the three candidates; only the best candidate of "
            "each image learns its mask: the min over c of mask_loss[b, c]."),
    Mistake("max_candidates", make_best(pick="max"),
            "you took the worst candidate (max); the best one has the lowest mask loss: the "
            "min over c."),
    Mistake("min_whole_batch", make_best(over="batch"),
            "the min is taken over the whole batch (one candidate of one image); take it "
            "per image, over its three candidates (dim=1), then the mean over the images."),
    Mistake("sum_images", make_best(over="sum"),
            "the best candidates' losses are summed over the images; take their mean."),
    Mistake("chosen_by_iou_pred", make_best(pick="iou_pred"),
            "the candidate that learns its mask is the one with the highest predicted IoU; "
            "it is the one with the lowest mask loss (bce + dice), whatever the IoU head "
            "says."),
    Mistake("soft_iou", make_best(iou="soft"),
            "the IoU target is computed on probabilities; it is the IoU of the hard masks: "
            "M = mask_logits > 0 and T = target > 0.5, |M & T| / |M | T|."),
    Mistake("threshold_half", make_best(iou="half"),
            "the hard mask is mask_logits > 0.5; a logit of 0 is probability 0.5, so the "
            "mask is mask_logits > 0."),
    Mistake("dice_no_one", make_best(dice_one=0.0),
            "the dice has no +1 smoothing: 1 - (2 * sum(p * t) + 1) / (sum(p) + sum(t) + 1)."),
    Mistake("dice_no_two", make_best(dice_two=1.0),
            "the dice's numerator lacks the factor 2: 1 - (2 * sum(p * t) + 1) / (sum(p) + "
            "sum(t) + 1)."),
    Mistake("bce_sum", make_best(bce_reduce="sum"),
            "the binary cross-entropy is summed over the pixels; average it over the H * W "
            "pixels."),
    Mistake("no_dice", make_best(terms=("bce",)),
            "the dice term is missing: mask_loss = bce + dice."),
    Mistake("no_bce", make_best(terms=("dice",)),
            "the binary cross-entropy term is missing: mask_loss = bce + dice."),
    Mistake("no_iou", make_best(iou_on="none"),
            "the IoU head's term is missing: add the mean squared error of iou_pred against "
            "the hard masks' IoU."),
    Mistake("iou_best_only", make_best(iou_on="best"),
            "the IoU head learns the best candidate only; it learns the quality of all three: "
            "the mean squared error over all B * 3 candidates."),
    Mistake("iou_sum", make_best(iou_reduce="sum"),
            "the IoU errors are summed; take the mean squared error over the B * 3 "
            "candidates."),
]


def _best_candidate(fn):
    logits, _, target = double(checks.best_of_three_inputs()[0])
    return fn(logits, target).argmin(dim=1)


# ----------------------------------------------------------------------------- the tables


def tables() -> dict:
    return {
        "rotate": table(_rotate_cases(0), rotate_batch, ROTATE_MISTAKES),
        "rotate_labels": table(_rotate_cases(1), rotate_batch, LABEL_MISTAKES),
        "decoder": table(_decoder, Decoder, DECODER_MISTAKES),
        "head": table(_heads, SegmentationHead, HEAD_MISTAKES),
        "upsample": table(on_cases(checks.upsample_inputs()), upsample_logits,
                          UPSAMPLE_MISTAKES),
        "loss": table(on_cases(checks.loss_inputs()), segmentation_loss, LOSS_MISTAKES),
        "points": table(on_cases(checks.points_inputs()), encode_points, POINTS_MISTAKES),
        "best_of_three": table(on_cases(checks.best_of_three_inputs()), best_of_three_loss,
                               BEST_MISTAKES),
        "best_candidate": table(_best_candidate, mask_losses),
    }
