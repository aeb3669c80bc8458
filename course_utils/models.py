"""Encoders that map an image to its representation h.

``resnet18_cifar`` is ResNet-18 with the CIFAR stem used by SimCLR's CIFAR-10 experiments
(3x3 first convolution with stride 1, no max-pool); ``SmallConvNet`` is a few-hundred-
thousand-parameter encoder that trains in minutes on a CPU. Both return h of size
``feature_dim`` and have no classification layer.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18

from .vit import VIT_SIZES, build_vit


class ResNetCIFAR(nn.Module):
    """ResNet-18 with a CIFAR stem; ``forward`` returns h (B, 512)."""

    feature_dim = 512

    def __init__(self):
        super().__init__()
        net = resnet18(weights=None)
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        net.fc = nn.Identity()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class SmallConvNet(nn.Module):
    """Four conv-BN-ReLU stages and global average pooling; h is (B, width * 4)."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.feature_dim = width * 4
        self.net = nn.Sequential(
            _conv_bn(3, width), _conv_bn(width, width),
            _conv_bn(width, 2 * width, stride=2),
            _conv_bn(2 * width, 4 * width, stride=2),
            _conv_bn(4 * width, 4 * width, stride=2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def resnet18_cifar() -> ResNetCIFAR:
    return ResNetCIFAR()


def build_encoder(name: str, **vit_options) -> nn.Module:
    """'resnet18' (CIFAR stem), 'small', or a ViT size of :mod:`course_utils.vit`
    ('vit_tiny', 'vit_micro', 'vit_nano', with ``build_vit``'s options: ``patch_size``,
    ``img_size``, ``pool``); every encoder has ``.feature_dim``."""
    if name in VIT_SIZES:
        return build_vit(name, **vit_options)
    if vit_options:
        raise ValueError(f"{name!r} is not a ViT: {sorted(vit_options)} do not apply")
    if name == "resnet18":
        return resnet18_cifar()
    if name == "small":
        return SmallConvNet()
    raise ValueError(f"unknown encoder {name!r}: use 'resnet18', 'small' or one of "
                     f"{sorted(VIT_SIZES)}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
