"""What notebook 05's segmentation needs around the exercises: per-pixel targets from the
offline data's masks, clicks on objects, and IoU.

The offline shapes know every image's object pixels (``ImageArrays.masks``). A semantic
target gives each pixel its class: 0 for the backdrop, 1 + the image's class on the shape.
The pixels along an outline are marked ``IGNORE`` (255), as the Pascal VOC annotations mark
theirs: whether a half-covered pixel is shape or backdrop is a matter of taste, and a loss
that counts them rewards guessing the taste.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

IGNORE = 255


def outline(masks: torch.Tensor, width: int = 1) -> torch.Tensor:
    """(N, H, W) booleans -> the pixels within ``width`` of the other side of the mask's
    edge: those whose (2 width + 1)^2 neighbourhood holds both mask and backdrop."""
    m = masks.float()[:, None]
    k = 2 * width + 1
    inside = F.max_pool2d(m, k, stride=1, padding=width)                # any mask pixel near
    outside = F.max_pool2d(1 - m, k, stride=1, padding=width)           # any backdrop near
    return (inside * outside)[:, 0].bool()


def semantic_targets(arrays, ignore_outline: int = 1) -> torch.Tensor:
    """(N, H, W) int64 targets of an :class:`~course_utils.data.ImageArrays` with masks: 0 on
    the backdrop, 1 + the class on the shape, IGNORE within ``ignore_outline`` pixels of an
    outline (0: none ignored)."""
    if arrays.masks is None:
        raise ValueError(f"{arrays.name} has no masks: segmentation needs the offline shapes")
    masks = torch.as_tensor(np.asarray(arrays.masks))
    labels = torch.as_tensor(np.asarray(arrays.labels), dtype=torch.long)
    target = torch.where(masks, labels[:, None, None] + 1, torch.zeros((), dtype=torch.long))
    if ignore_outline:
        target[outline(masks, ignore_outline)] = IGNORE
    return target


def sample_clicks(masks: torch.Tensor, generator: torch.Generator | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """One foreground click per image, uniform over its mask pixels: points (N, 1, 2) as
    pixel (x, y) = (column, row), float, and labels (N, 1) int64 ones."""
    masks = torch.as_tensor(np.asarray(masks)).bool()
    n, _, width = masks.shape
    flat = masks.flatten(1).float()
    if (flat.sum(1) == 0).any():
        raise ValueError("an image has an empty mask: there is nothing to click on")
    index = torch.multinomial(flat, 1, generator=generator)[:, 0]       # (N,)
    points = torch.stack([index % width, index // width], dim=1).float()[:, None]
    return points, torch.ones(n, 1, dtype=torch.long)


def class_iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """IoU of each class over a whole set: (num_classes,) floats, NaN for a class absent from
    both; pixels whose target is IGNORE count nothing."""
    keep = target != IGNORE
    pred, target = pred[keep], target[keep]
    ious = torch.full((num_classes,), float("nan"))
    for k in range(num_classes):
        union = ((pred == k) | (target == k)).sum()
        if union:
            ious[k] = ((pred == k) & (target == k)).sum() / union
    return ious


def mean_iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """The mean of class_iou over the classes present (mIoU, as Pascal VOC reports it)."""
    return float(np.nanmean(class_iou(pred, target, num_classes).numpy()))


def mask_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of each image's boolean mask with its target mask: (N, H, W) -> (N,)."""
    pred, target = pred.bool(), target.bool()
    union = (pred | target).flatten(1).sum(1).float()
    inter = (pred & target).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
