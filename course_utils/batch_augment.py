"""Per-sample random augmentations applied to whole batches, made for the GPU.

On Colab a student has one GPU and two CPU cores: decoding and augmenting PIL images in
DataLoader workers cannot feed SimCLR's two views (or DINO's eight crops) fast enough, and
the GPU waits. This module keeps the images on the device and augments a whole batch at
once. torchvision's transforms cannot do that for SSL: on a batched tensor they draw *one*
crop, one jitter, one flip for the whole batch. Every op here draws its parameters per sample,
as tensors, and applies them without a Python loop over images.

:func:`translate` reads a torchvision pipeline, such as a student's ``simclr_transform`` or
the crops of a ``MultiCropTransform``, and builds the same recipe from these ops, so the
recipe a student wrote is the recipe the GPU trains with. :class:`GPUViewLoader` yields
batches of views, in the layout a DataLoader over :mod:`course_utils.data` datasets yields.

Differences from the PIL pipeline, all small: the pixels stay float between ops (PIL rounds
to uint8 after each), the crop is resampled by ``roi_align`` (bilinear, averaging when it
shrinks, where PIL filters), hue is shifted in float HSV, and the order of the four colour
jitters is drawn per batch rather than per image.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

Op = Callable[[torch.Tensor], torch.Tensor]   # (B, 3, H, W) in [0, 1] -> same


class UnsupportedTransform(ValueError):
    """A torchvision transform this module has no batched version of."""


def _coin(n: int, p: float, device) -> torch.Tensor:
    """(n, 1, 1, 1) booleans, each True with probability p."""
    return (torch.rand(n, device=device) < p).view(n, 1, 1, 1)


def _uniform(n: int, low: float, high: float, device) -> torch.Tensor:
    return torch.empty(n, device=device).uniform_(low, high)


_CONSTANTS: dict = {}


def _constant(values: tuple, like: torch.Tensor) -> torch.Tensor:
    """``values`` as a (1, C, 1, 1) tensor on ``like``'s device, made once per device: a
    copy to the GPU at every call would make the CPU wait for the GPU each time."""
    key = (values, like.device, like.dtype)
    if key not in _CONSTANTS:
        _CONSTANTS[key] = torch.tensor(values, device=like.device, dtype=like.dtype).view(1, -1, 1, 1)
    return _CONSTANTS[key]


LUMA = (0.2989, 0.587, 0.114)   # torchvision's weights (ITU-R 601-2)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma (B, 1, H, W)."""
    return (x * _constant(LUMA, x)).sum(dim=1, keepdim=True)


# ---------------------------------------------------------------------------- crop and flip

def sample_crop_boxes(n: int, height: int, width: int, scale=(0.08, 1.0),
                      ratio=(3 / 4, 4 / 3), device=None, tries: int = 10) -> torch.Tensor:
    """(n, 4) boxes (x1, y1, x2, y2) in pixels, each drawn as RandomResizedCrop draws one.

    Up to ``tries`` (area, aspect ratio) draws per sample; the first that fits is kept, and
    a sample where none fits gets torchvision's fallback, the central crop.
    """
    area = height * width
    target_area = area * torch.empty(n, tries, device=device).uniform_(*scale)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(torch.empty(n, tries, device=device).uniform_(log_lo, log_hi))
    w = torch.round(torch.sqrt(target_area * aspect))
    h = torch.round(torch.sqrt(target_area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.int().argmax(dim=1, keepdim=True)                # first try that fits
    w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
    found = fits.any(dim=1)

    in_ratio = width / height                                     # the fallback: central crop
    if in_ratio < min(ratio):
        fallback_w, fallback_h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        fallback_w, fallback_h = round(height * max(ratio)), height
    else:
        fallback_w, fallback_h = width, height
    w = torch.where(found, w, torch.full_like(w, fallback_w))
    h = torch.where(found, h, torch.full_like(h, fallback_h))

    y1 = torch.floor(torch.rand(n, device=device) * (height - h + 1))   # randint(0, H - h)
    x1 = torch.floor(torch.rand(n, device=device) * (width - w + 1))
    y1 = torch.where(found, y1, torch.div(height - h, 2, rounding_mode="floor"))
    x1 = torch.where(found, x1, torch.div(width - w, 2, rounding_mode="floor"))
    return torch.stack([x1, y1, x1 + w, y1 + h], dim=1)


def resized_crops(x: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop box i of image i and resize it to ``size``: (B, C, *size).

    ``roi_align`` samples bilinearly at the output pixels' centres, and averages several
    samples per output pixel where a crop is shrunk (an anti-aliased resize).
    """
    index = torch.arange(len(x), device=x.device, dtype=boxes.dtype).unsqueeze(1)
    return roi_align(x, torch.cat([index, boxes], dim=1), output_size=size,
                     spatial_scale=1.0, sampling_ratio=-1, aligned=True)


class RandomResizedCrop:
    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.scale, self.ratio = tuple(scale), tuple(ratio)

    def __call__(self, x):
        boxes = sample_crop_boxes(len(x), x.shape[-2], x.shape[-1], self.scale, self.ratio,
                                  device=x.device)
        return resized_crops(x, boxes.to(x.dtype), self.size)


class RandomHorizontalFlip:
    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, x):
        return torch.where(_coin(len(x), self.p, x.device), x.flip(-1), x)


# ---------------------------------------------------------------------------- colour

def _blend(x, other, factor):
    """factor * x + (1 - factor) * other, clamped to [0, 1]; factor is (B,)."""
    return torch.lerp(other, x, factor.view(-1, 1, 1, 1)).clamp_(0, 1)


def adjust_brightness(x, factor):
    return (x * factor.view(-1, 1, 1, 1)).clamp_(0, 1)


def adjust_contrast(x, factor):
    mean = grayscale(x).mean(dim=(-3, -2, -1), keepdim=True)   # one grey level per image
    return _blend(x, mean, factor)


def adjust_saturation(x, factor):
    return _blend(x, grayscale(x), factor)


def adjust_hue(x, shift):
    """Rotate the hue by ``shift`` (B,) in [-0.5, 0.5] turns; saturation and value stay.

    HSV without the round trip: value is the largest channel, chroma = value - smallest,
    hue (in sixths of a turn) comes from the largest channel's sector, and the rotated
    colour is value - chroma * ramp(hue + 6 shift) per channel.
    """
    r, g, b = x.unbind(1)
    value = x.amax(dim=1)                                      # (B, H, W)
    chroma = value - x.amin(dim=1)
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))   # grey: hue unused
    sixths = torch.where(value == r, (g - b) / safe,                   # red is largest
                         torch.where(value == g, 2 + (b - r) / safe, 4 + (r - g) / safe))
    sixths = sixths + 6 * shift.view(-1, 1, 1)
    k = (_constant((5.0, 3.0, 1.0), x) + sixths.unsqueeze(1)) % 6
    ramp = torch.minimum(k, 4 - k).clamp_(0, 1)
    return value.unsqueeze(1) - chroma.unsqueeze(1) * ramp


class ColorJitter:
    """Brightness, contrast, saturation and hue, each factor drawn per sample.

    Ranges are torchvision's: factors in [lo, hi] (1 = unchanged), hue shift in [lo, hi].
    torchvision draws the order of the four adjustments per image; here it is drawn per
    batch (as kornia's ColorJiggle does), since an order per image would cost each
    adjustment four passes over the batch.
    """

    ADJUST = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)

    def __init__(self, brightness=None, contrast=None, saturation=None, hue=None):
        self.ranges = (brightness, contrast, saturation, hue)

    def __call__(self, x):
        for k in torch.randperm(4).tolist():
            if self.ranges[k] is not None:
                x = self.ADJUST[k](x, _uniform(len(x), *self.ranges[k], x.device))
        return x


class RandomGrayscale:
    def __init__(self, p=0.1):
        self.p = p

    def __call__(self, x):
        return torch.where(_coin(len(x), self.p, x.device), grayscale(x).expand_as(x), x)


class GaussianBlur:
    """Separable Gaussian blur with sigma drawn per sample, reflect padding (torchvision's)."""

    def __init__(self, kernel_size, sigma=(0.1, 2.0)):
        kx, ky = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        self.kernel_size = (int(kx), int(ky))
        self.sigma = (float(sigma), float(sigma)) if isinstance(sigma, (int, float)) else tuple(sigma)

    @staticmethod
    def kernels(size: int, sigma: torch.Tensor) -> torch.Tensor:
        """(B, size) normalised 1-D Gaussians, one per sigma."""
        half = (size - 1) / 2
        offsets = torch.linspace(-half, half, size, device=sigma.device, dtype=sigma.dtype)
        pdf = torch.exp(-0.5 * (offsets / sigma.unsqueeze(1)) ** 2)
        return pdf / pdf.sum(dim=1, keepdim=True)

    def __call__(self, x):
        b, c, h, w = x.shape
        kx, ky = self.kernel_size
        sigma = _uniform(b, *self.sigma, x.device).to(x.dtype)
        x = F.pad(x, [kx // 2, kx // 2, ky // 2, ky // 2], mode="reflect")
        x = x.reshape(1, b * c, *x.shape[-2:])                          # one group per channel
        row = self.kernels(kx, sigma).repeat_interleave(c, dim=0).view(b * c, 1, 1, kx)
        col = self.kernels(ky, sigma).repeat_interleave(c, dim=0).view(b * c, 1, ky, 1)
        x = F.conv2d(F.conv2d(x, row, groups=b * c), col, groups=b * c)
        return x.view(b, c, h, w)


class RandomSolarize:
    """Invert the pixels at or above ``threshold`` (in [0, 1]) with probability p."""

    def __init__(self, threshold, p=0.5):
        self.threshold, self.p = threshold, p

    def __call__(self, x):
        solarized = torch.where(x >= self.threshold, 1 - x, x)
        return torch.where(_coin(len(x), self.p, x.device), solarized, x)


class RandomApply:
    """Apply ``ops`` in turn to each sample with probability p."""

    def __init__(self, ops: Sequence[Op], p=0.5):
        self.ops, self.p = list(ops), p

    def __call__(self, x):
        y = x
        for op in self.ops:
            y = op(y)
        return torch.where(_coin(len(x), self.p, x.device), y, x)


class Normalize:
    def __init__(self, mean, std):
        self.mean = tuple(float(m) for m in torch.as_tensor(mean).flatten())
        self.std = tuple(float(s) for s in torch.as_tensor(std).flatten())

    def __call__(self, x):
        return (x - _constant(self.mean, x)) / _constant(self.std, x)


# ---------------------------------------------------------------------------- a pipeline

class BatchAugment:
    """A pipeline of batched ops: uint8 or [0, 1] float images (B, 3, H, W) -> float views."""

    def __init__(self, ops: Sequence[Op], channels_last: bool = False):
        self.ops, self.channels_last = list(ops), channels_last

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div(255) if images.dtype == torch.uint8 else images.float()
        for op in self.ops:
            x = op(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def __repr__(self) -> str:
        inner = ",\n  ".join(f"{type(op).__name__}({_describe(op)})" for op in self.ops)
        return f"BatchAugment(\n  {inner})"


def _describe(op) -> str:
    return ", ".join(f"{k}={v}" for k, v in vars(op).items() if not torch.is_tensor(v))


def _steps(transform) -> list:
    """The flat list of steps of a (nested) torchvision Compose."""
    steps = getattr(transform, "transforms", None)
    if type(transform).__name__ == "Compose" and steps is not None:
        return [s for t in steps for s in _steps(t)]
    return [transform]


def _range(value, centre: float):
    """torchvision keeps jitter ranges as [lo, hi] or None; a 0 range does nothing."""
    if value is None:
        return None
    lo, hi = (centre - value, centre + value) if isinstance(value, (int, float)) else value
    return None if lo == hi == centre else (float(lo), float(hi))


def _translate_step(t, in_pil_range: bool) -> list[Op]:
    """The batched ops for one torchvision step (v1 or v2)."""
    name = type(t).__name__
    if name == "RandomResizedCrop":
        return [RandomResizedCrop(t.size, t.scale, t.ratio)]
    if name == "RandomHorizontalFlip":
        return [RandomHorizontalFlip(t.p)]
    if name == "ColorJitter":
        return [ColorJitter(_range(t.brightness, 1), _range(t.contrast, 1),
                            _range(t.saturation, 1), _range(t.hue, 0))]
    if name == "RandomGrayscale":
        return [RandomGrayscale(t.p)]
    if name == "Grayscale" and getattr(t, "num_output_channels", 3) == 3:
        return [RandomGrayscale(1.0)]
    if name == "GaussianBlur":
        return [GaussianBlur(t.kernel_size, t.sigma)]
    if name == "RandomSolarize":
        threshold = t.threshold / 255 if in_pil_range else t.threshold
        return [RandomSolarize(threshold, t.p)]
    if name == "RandomApply":
        inner = [op for s in t.transforms for op in _translate_step(s, in_pil_range)]
        return [RandomApply(inner, t.p)]
    if name == "Normalize":
        return [Normalize(t.mean, t.std)]
    if name in ("ToTensor", "PILToTensor", "ToImage", "ToImageTensor", "ConvertImageDtype",
                "ToDtype"):
        return []            # BatchAugment already works on float images in [0, 1]
    raise UnsupportedTransform(f"no batched version of {t!r}")


def translate(transform, channels_last: bool = False) -> BatchAugment:
    """A :class:`BatchAugment` with the steps and parameters of a torchvision pipeline.

    Raises :class:`UnsupportedTransform` for a step it cannot batch (say a ``Lambda``).
    """
    ops, in_pil_range = [], True
    for step in _steps(transform):
        if type(step).__name__ in ("ToTensor", "ToDtype", "ConvertImageDtype"):
            in_pil_range = False    # thresholds after this point are in [0, 1]
        ops += _translate_step(step, in_pil_range)
    return BatchAugment(ops, channels_last)


def traced_pipelines(transform, image) -> list:
    """The torchvision Compose objects a transform calls, in call order, for one ``image``.

    For a transform that returns a list of views (``MultiCropTransform``): one Compose per
    view. The Compose classes are wrapped only while the probe call runs.
    """
    from torchvision import transforms as T
    classes = [T.Compose]
    try:
        from torchvision.transforms import v2
        classes.append(v2.Compose)
    except ImportError:  # pragma: no cover - older torchvision
        pass
    calls, depth = [], [0]
    originals = {cls: cls.__call__ for cls in classes}
    own = {cls: "__call__" in vars(cls) for cls in classes}   # else inherited: delete after

    def recording(original):
        def call(self, *args, **kwargs):
            if depth[0] == 0:
                calls.append(self)
            depth[0] += 1
            try:
                return original(self, *args, **kwargs)
            finally:
                depth[0] -= 1
        return call

    try:
        for cls, original in originals.items():
            cls.__call__ = recording(original)
        views = transform(image)
    finally:
        for cls, original in originals.items():
            if own[cls]:
                cls.__call__ = original
            else:
                del cls.__call__
    count = len(views) if isinstance(views, (list, tuple)) else 1
    if len(calls) != count:
        raise UnsupportedTransform(f"{type(transform).__name__} returned {count} view(s) from "
                                   f"{len(calls)} torchvision Compose call(s): cannot match them")
    return calls


# ---------------------------------------------------------------------------- the loader

class GPUViewLoader:
    """Augmented views of a data set kept on ``device`` as uint8, batch by batch.

    ``views``: one :class:`BatchAugment` per view. Yields ``(view, labels)`` when
    ``single`` is set, else ``([view_1, ..., view_k], labels)``: what a DataLoader over
    ``ImageDataset`` or ``TwoViewDataset`` yields, already on the device.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, views: Sequence[BatchAugment],
                 batch_size: int, shuffle: bool = True, drop_last: bool = True,
                 single: bool = False):
        self.images, self.labels = images, labels          # (N, 3, H, W) uint8, (N,)
        self.views, self.single = list(views), single
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last

    @classmethod
    def from_arrays(cls, arrays, views, batch_size: int, device, **kwargs) -> "GPUViewLoader":
        """From :class:`course_utils.data.ImageArrays` (N, H, W, 3) uint8 in host memory."""
        images = torch.from_numpy(arrays.images).permute(0, 3, 1, 2).contiguous().to(device)
        labels = torch.from_numpy(arrays.labels).to(device)
        return cls(images, labels, views, batch_size, **kwargs)

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        n, device = len(self.images), self.images.device
        order = torch.randperm(n, device=device) if self.shuffle else torch.arange(n, device=device)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            idx = order[start:start + self.batch_size]
            images = self.images[idx]
            views = [augment(images) for augment in self.views]   # fresh draws per view
            yield (views[0] if self.single else views), self.labels[idx]
