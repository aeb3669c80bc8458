"""course_utils.models: encoders give h of size feature_dim, the CIFAR stem, gradients."""
import pytest
import torch
from torch import nn

from course_utils.models import ResNetCIFAR, SmallConvNet, build_encoder, count_parameters


@pytest.mark.parametrize("name, dim", [("small", 128), ("resnet18", 512)])
def test_encoders_map_32x32_images_to_feature_dim(name, dim):
    torch.manual_seed(0)
    encoder = build_encoder(name)
    assert encoder.feature_dim == dim
    h = encoder(torch.randn(4, 3, 32, 32))
    assert h.shape == (4, dim) and torch.isfinite(h).all()
    encoder.eval()
    assert encoder(torch.randn(1, 3, 32, 32)).shape == (1, dim)  # batch of one in eval mode


def test_resnet_has_the_cifar_stem_and_no_classifier():
    encoder = build_encoder("resnet18")
    assert isinstance(encoder, ResNetCIFAR)
    conv1 = encoder.net.conv1
    assert conv1.kernel_size == (3, 3) and conv1.stride == (1, 1) and conv1.padding == (1, 1)
    assert isinstance(encoder.net.maxpool, nn.Identity) and isinstance(encoder.net.fc, nn.Identity)
    assert 11_000_000 < count_parameters(encoder) < 11_300_000  # ResNet-18 without fc


def test_small_encoder_is_small_and_has_a_width():
    assert count_parameters(SmallConvNet()) < 1_000_000
    assert SmallConvNet(width=8)(torch.randn(2, 3, 32, 32)).shape == (2, 32)


@pytest.mark.parametrize("name", ["small", "resnet18"])
def test_gradients_reach_the_first_layer(name):
    torch.manual_seed(0)
    encoder = build_encoder(name)
    encoder(torch.randn(2, 3, 16, 16)).pow(2).mean().backward()  # any size; 16 is quicker
    first = next(encoder.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0
    assert all(p.grad is not None for p in encoder.parameters())


def test_build_encoder_rejects_unknown_names():
    with pytest.raises(ValueError, match="vit_tiny"):
        build_encoder("vit")
