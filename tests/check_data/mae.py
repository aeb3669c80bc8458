"""Notebook 03 (MAE): the reference solutions and known mistakes of patchify / unpatchify, the
number of kept patches, unshuffle and the loss, and the tables course_utils/checks/mae.py
compares with.

Regenerate course_utils/checks/stored/mae.py: ``python -m tests.check_data mae``.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from course_utils.checks import mae as checks

from . import Mistake, double, table


# ----------------------------------------------------------------------------- patchify


def patchify_right(imgs, patch_size, pattern="nchpwq->nhwpqc"):
    p = patch_size
    N, _, H, W = imgs.shape
    h, w = H // p, W // p
    x = imgs.reshape(N, 3, h, p, w, p)
    x = torch.einsum(pattern, x)
    return x.reshape(N, h * w, p * p * 3)


def unpatchify_right(x, patch_size, pattern="nhwpqc->nchpwq", layout=None):
    p = patch_size
    N, L, _ = x.shape
    h = w = int(L ** 0.5)
    x = x.reshape(N, h, w, *(layout or (p, p, 3)))
    x = torch.einsum(pattern, x)
    return x.reshape(N, 3, h * p, w * p)


def patchify_channels_first(imgs, p):
    return patchify_right(imgs, p, "nchpwq->nhwcpq")


def patchify_plain(imgs, p):
    return imgs.reshape(len(imgs), (imgs.shape[2] // p) ** 2, -1)


def patchify_column_major(imgs, p):
    return patchify_right(imgs, p, "nchpwq->nwhpqc")


def patchify_strips(imgs, p):
    return imgs.permute(0, 2, 3, 1).reshape(len(imgs), (imgs.shape[2] // p) ** 2, -1)


def patchify_strided(imgs, p):
    N, _, H, _ = imgs.shape
    h = H // p
    x = torch.einsum("ncphqw->nhwpqc", imgs.reshape(N, 3, p, h, p, h))
    return x.reshape(N, h * h, p * p * 3)


def patchify_rows_columns_swapped(imgs, p):
    return patchify_right(imgs, p, "nchpwq->nhwqpc")


PATCHIFY_MISTAKES = [
    Mistake("channels_first", patchify_channels_first,
            "inside each patch the channel comes first, (c, i, j) order (what F.unfold gives); "
            "MAE's layout is pixel row i, then pixel column j, then channel c: value "
            "(i * p + j) * 3 + c of a patch."),
    Mistake("plain_reshape", patchify_plain,
            "a plain reshape(N, L, -1) cuts the image's memory into runs of p*p*3 numbers, "
            "which are not patches: split H into (h, p) and W into (w, p), move the axes so "
            "that the order is (N, h, w, p, p, 3), then reshape."),
    Mistake("column_major", patchify_column_major,
            "the patches are numbered column by column; MAE numbers them row by row: patch k "
            "sits at patch-row k // w, patch-column k % w."),
    Mistake("strips", patchify_strips,
            "each of your 'patches' is a run of pixels along one image row, not a p x p "
            "square: split H into (h, p) and W into (w, p) before moving the axes."),
    Mistake("strided", patchify_strided,
            "each of your patches takes pixels h apart, spread over the whole image, not p x p "
            "neighbours: reshape to (N, 3, h, p, w, p) (patch index before pixel index), not "
            "(N, 3, p, h, p, w)."),
    Mistake("rows_columns_swapped", patchify_rows_columns_swapped,
            "inside each patch, pixel rows and columns are swapped: MAE's order is pixel row "
            "i, then pixel column j, then channel c."),
]


def unpatchify_plain(x, p):
    side = int(x.shape[1] ** 0.5) * p
    return x.reshape(len(x), 3, side, side)


def unpatchify_channels_first(x, p):
    return unpatchify_right(x, p, "nhwcpq->nchpwq", layout=(3, p, p))


def unpatchify_column_major(x, p):
    return unpatchify_right(x, p, "nwhpqc->nchpwq")


def unpatchify_channels_last_image(x, p):
    side = int(x.shape[1] ** 0.5) * p
    return x.reshape(len(x), side, side, 3).permute(0, 3, 1, 2)


UNPATCHIFY_MISTAKES = [
    Mistake("plain_reshape", unpatchify_plain,
            "a plain reshape(N, 3, H, W) does not undo patchify: reshape to (N, h, w, p, p, "
            "3), move the axes back to (N, 3, h, p, w, p), then reshape."),
    Mistake("channels_first", unpatchify_channels_first,
            "your unpatchify reads each patch as (c, i, j); patchify writes it as (i, j, c)."),
    Mistake("column_major", unpatchify_column_major,
            "your unpatchify puts patch k at patch-column k // w; patches are numbered row by "
            "row (patch-row k // w, patch-column k % w)."),
    Mistake("channels_last_image", unpatchify_channels_last_image,
            "reshape(N, H, W, 3) reads the patches as runs of image rows; each patch is a p x "
            "p square."),
]


# ----------------------------------------------------------------------------- kept patches

LEN_KEEP_MISTAKES = [
    Mistake("round", lambda L, r: round(L * (1 - r)),
            "your counts are those of len_keep = round(L * (1 - mask_ratio))"),
    Mistake("ceil", lambda L, r: math.ceil(L * (1 - r)),
            "your counts are those of len_keep = math.ceil(L * (1 - mask_ratio))"),
    Mistake("removed_by_int", lambda L, r: L - int(L * r),
            "your counts are those of len_keep = L - int(L * mask_ratio)"),
    Mistake("removed_by_round", lambda L, r: L - round(L * r),
            "your counts are those of len_keep = L - round(L * mask_ratio)"),
    Mistake("int_of_difference", lambda L, r: int(L - L * r),
            "your counts are those of len_keep = int(L - L * mask_ratio)"),
    Mistake("removed", lambda L, r: int(L * r),
            "your counts are those of len_keep = int(L * mask_ratio) (the number to REMOVE)"),
]


# ----------------------------------------------------------------------------- random masking


def masking_right(x, mask_ratio, generator=None):
    """facebookresearch/mae models_mae.py, random_masking (with a generator)."""
    N, L, D = x.shape
    len_keep = int(L * (1 - mask_ratio))
    noise = torch.rand(N, L, generator=generator)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    x_kept = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, D))
    mask = torch.ones([N, L])
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, dim=1, index=ids_restore)
    return x_kept, mask, ids_restore


# ----------------------------------------------------------------------------- unshuffle


def unshuffle_right(x_kept, mask_token, ids_restore):
    """facebookresearch/mae models_mae.py, forward_decoder (without the cls token)."""
    N, K, D = x_kept.shape
    mask_tokens = mask_token.repeat(N, ids_restore.shape[1] - K, 1)
    x = torch.cat([x_kept, mask_tokens], dim=1)
    return torch.gather(x, dim=1, index=ids_restore.unsqueeze(-1).repeat(1, 1, D))


def unshuffle_inverse(x_kept, mask_token, ids_restore):
    return unshuffle_right(x_kept, mask_token, ids_restore.argsort(dim=1))


def unshuffle_mask_first(x_kept, mask_token, ids_restore):
    N, K, D = x_kept.shape
    x = torch.cat([mask_token.repeat(N, ids_restore.shape[1] - K, 1), x_kept], dim=1)
    return torch.gather(x, 1, ids_restore[..., None].repeat(1, 1, D))


def unshuffle_none(x_kept, mask_token, ids_restore):
    N, K, _ = x_kept.shape
    return torch.cat([x_kept, mask_token.repeat(N, ids_restore.shape[1] - K, 1)], dim=1)


UNSHUFFLE_MISTAKES = [
    Mistake("inverse", unshuffle_inverse,
            "you applied the inverse permutation: gather with ids_restore (or scatter with "
            "ids_shuffle = argsort(ids_restore)), not the other way round."),
    Mistake("mask_first", unshuffle_mask_first,
            "the mask tokens went before x_kept: append them after the kept tokens (the first "
            "len_keep shuffled positions are the kept ones), then unshuffle."),
    Mistake("none", unshuffle_none,
            "the tokens are not put back in their places: after appending the mask tokens, "
            "reorder with ids_restore."),
]


def token_maps(cases) -> Callable:
    """The ``outputs`` of table(): where each output token of a function comes from, on each
    case (as the check reads it: j = x_kept[n, j], -1 = the mask token)."""
    def maps(fn):
        return [checks._token_map(fn(*case), case[0], case[1]) for case in map(double, cases)]
    return maps


# ----------------------------------------------------------------------------- the loss


def make_loss(patchify=patchify_right, reduce="removed", per_patch="mean", norm="right"):
    def mae_loss(imgs, pred, mask, patch_size, norm_pix_loss=False):
        target = patchify(imgs, patch_size)
        if norm_pix_loss and norm != "ignored":
            dims, kw = {"right": (-1, {}), "biased": (-1, {"unbiased": False}),
                        "no_sqrt": (-1, {}), "whole_image": ((1, 2), {}),
                        "across_patches": (1, {}), "whole_batch": ((0, 1, 2), {})}[norm]
            mean = target.mean(dim=dims, keepdim=True)
            var = target.var(dim=dims, keepdim=True, **kw)
            scale = var + 1e-6 if norm == "no_sqrt" else (var + 1e-6) ** 0.5
            target = (target - mean) / scale
        squared = (pred - target) ** 2
        loss = squared.mean(dim=-1) if per_patch == "mean" else squared.sum(dim=-1)
        if reduce == "all":
            return loss.mean()
        if reduce == "visible":
            return (loss * (1 - mask)).sum() / (1 - mask).sum()
        if reduce == "mean_with_mask":
            return (loss * mask).mean()
        if reduce == "no_division":
            return (loss * mask).sum()
        if reduce == "per_patch":
            return loss * mask
        return (loss * mask).sum() / mask.sum()
    return mae_loss


def loss_eps_outside(imgs, pred, mask, patch_size, norm_pix_loss=False):
    target = patchify_right(imgs, patch_size)
    if norm_pix_loss:
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True).sqrt()
                                                             + 1e-6)
    return (((pred - target) ** 2).mean(-1) * mask).sum() / mask.sum()


# mistakes of the reduction, made with or without norm_pix_loss
REDUCE_MISTAKES = [
    Mistake("all_patches", make_loss(reduce="all"),
            "the loss is averaged over all patches; MAE averages over the removed ones only: "
            "(loss * mask).sum() / mask.sum()."),
    Mistake("visible", make_loss(reduce="visible"),
            "the loss is averaged over the visible patches; it should use the removed ones "
            "(mask == 1)."),
    Mistake("pixel_sum", make_loss(per_patch="sum"),
            "each patch's error is a sum over its pixels; take the mean over the last "
            "dimension (mean squared error per patch)."),
]
# mistakes of the normalisation, tried on the fixed inputs and on low-contrast patches
IGNORED, BIASED, NO_SQRT = (
    Mistake("ignored", make_loss(norm="ignored"),
            "norm_pix_loss=True gives the same loss as False: normalise the target patches "
            "when it is set."),
    Mistake("biased", make_loss(norm="biased"),
            "use the unbiased variance (torch.var's default, as MAE), not unbiased=False."),
    Mistake("no_sqrt", make_loss(norm="no_sqrt"),
            "divide by the standard deviation, (var + 1e-6) ** 0.5, not by the variance."))
# a patchify with a layout mistake makes mae_loss wrong too (it calls the notebook's patchify)
LAYOUT_MISTAKES = [
    Mistake(f"layout_{m.name}", make_loss(patchify=m.fn),
            f"the loss is what a patchify with a layout mistake gives (mae_loss uses your "
            f"patchify): make check_patchify pass first. The mistake: {m.message}")
    for m in PATCHIFY_MISTAKES]

LOSS_MISTAKES = REDUCE_MISTAKES + [
    Mistake("no_division", make_loss(reduce="no_division"),
            "the loss is summed over the removed patches; divide by their number, "
            "mask.sum()."),
    Mistake("mean_with_mask", make_loss(reduce="mean_with_mask"),
            "(loss * mask).mean() divides by the number of all patches; divide by the number "
            "of removed ones, mask.sum()."),
] + LAYOUT_MISTAKES
LOSS_NORM_MISTAKES = [
    IGNORED, BIASED, NO_SQRT,
    Mistake("whole_image", make_loss(norm="whole_image"),
            "the mean and variance are those of the whole image; MAE normalises each patch "
            "with its own mean and variance (over the last dimension)."),
    Mistake("across_patches", make_loss(norm="across_patches"),
            "the mean and variance are taken across patches (dim=1); take them over each "
            "patch's own pixels (dim=-1)."),
    Mistake("whole_batch", make_loss(norm="whole_batch"),
            "the mean and variance are those of the whole batch; take them per patch "
            "(dim=-1, keepdim=True)."),
] + REDUCE_MISTAKES + LAYOUT_MISTAKES
LOW_CONTRAST_MISTAKES = [
    Mistake("outside", loss_eps_outside,
            "the 1e-6 is added outside the square root; the text divides by "
            "(var + 1e-6) ** 0.5, which matters for low-contrast patches."),
    NO_SQRT, BIASED, IGNORED,
]


def losses(inputs, **kwargs) -> Callable:
    """The ``outputs`` of table(): a loss function's value on fixed inputs, in float64."""
    return lambda fn: fn(*double(inputs), **kwargs)


# ----------------------------------------------------------------------------- the tables


def tables() -> dict:
    image = checks.patch_inputs()[:1].double()
    patches = patchify_right(image, 2)
    return {
        "patchify": table(lambda fn: fn(image, 2)[0].long(), patchify_right, PATCHIFY_MISTAKES),
        "patchify_p3": table(lambda fn: fn(image, 3)[0].long(), patchify_right),
        "unpatchify": table(lambda fn: fn(patches, 2).long(), unpatchify_right,
                            UNPATCHIFY_MISTAKES),
        "len_keep": table(lambda fn: [fn(L, r) for L, r in checks.LEN_KEEP_CASES],
                          lambda L, r: int(L * (1 - r)), LEN_KEEP_MISTAKES),
        "unshuffle": table(token_maps(checks.unshuffle_inputs()), unshuffle_right,
                           UNSHUFFLE_MISTAKES),
        "unshuffle_all_kept": table(token_maps([checks.all_kept_inputs()]), unshuffle_right),
        "loss": table(losses(checks.loss_inputs()), make_loss(), LOSS_MISTAKES),
        "loss_norm": table(losses(checks.loss_inputs(), norm_pix_loss=True), make_loss(),
                           LOSS_NORM_MISTAKES),
        "loss_low_contrast": table(losses(checks.low_contrast_inputs(), norm_pix_loss=True),
                                   make_loss(), LOW_CONTRAST_MISTAKES),
    }
