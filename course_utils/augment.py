"""The lecture's augmentation recipe, as numbers, plus the transforms every notebook shares.

The SimCLR paper (Chen et al. 2020, appendix A and B.9) composes, in this order: random
resized crop with horizontal flip, colour distortion (jitter with probability 0.8, strength
s, then grayscale with probability 0.2) and, for ImageNet only, Gaussian blur. For CIFAR-10
it uses s = 0.5 and no blur. Composing them is an exercise of notebook 01
(``simclr_transform``); this module only holds the numbers and the plain transforms.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision import transforms as T

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class SimCLRRecipe:
    """Augmentation parameters of the SimCLR paper; the defaults are its CIFAR-10 recipe."""

    crop_scale: tuple[float, float] = (0.08, 1.0)   # area fraction of the random crop
    flip_p: float = 0.5
    jitter_strength: float = 0.5                    # s: 0.5 on CIFAR-10, 1.0 on ImageNet
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.0                             # 0.5 on ImageNet, off on CIFAR-10
    blur_kernel_fraction: float = 0.1               # kernel = 10% of the image side
    blur_sigma: tuple[float, float] = (0.1, 2.0)

    def jitter(self) -> dict:
        """ColorJitter arguments for strength s: (0.8s, 0.8s, 0.8s, 0.2s)."""
        s = self.jitter_strength
        return dict(brightness=0.8 * s, contrast=0.8 * s, saturation=0.8 * s, hue=0.2 * s)

    def blur_kernel(self, image_size: int) -> int:
        """An odd kernel size of about ``blur_kernel_fraction`` of the image side."""
        k = max(3, int(round(self.blur_kernel_fraction * image_size)))
        return k if k % 2 == 1 else k + 1


CIFAR_RECIPE = SimCLRRecipe()
IMAGENET_RECIPE = SimCLRRecipe(jitter_strength=1.0, blur_p=0.5)


def normalize(mean=CIFAR10_MEAN, std=CIFAR10_STD) -> T.Normalize:
    return T.Normalize(mean, std)


def to_model_input(mean=CIFAR10_MEAN, std=CIFAR10_STD) -> T.Compose:
    """PIL image -> normalised float tensor (3, H, W)."""
    return T.Compose([T.ToTensor(), normalize(mean, std)])


def eval_transform(image_size: int | None = None) -> T.Compose:
    """The deterministic transform for evaluation (optional resize, then normalise)."""
    steps = [T.Resize(image_size)] if image_size else []
    return T.Compose(steps + [T.ToTensor(), normalize()])


def denormalize(x: torch.Tensor, mean=CIFAR10_MEAN, std=CIFAR10_STD) -> torch.Tensor:
    """Undo :func:`normalize` for display; clamps to [0, 1]."""
    m = torch.tensor(mean, device=x.device).view(-1, 1, 1)
    s = torch.tensor(std, device=x.device).view(-1, 1, 1)
    return (x * s + m).clamp(0, 1)
