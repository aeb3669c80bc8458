"""course_utils.vit: shapes, the fixed sin-cos positions, attention maps, gradients."""
import math

import pytest
import torch

from course_utils.models import build_encoder, count_parameters
from course_utils.vit import (Attention, PatchEmbed, VisionTransformer, build_vit,
                              sincos_pos_embed_2d)


def test_vit_maps_images_to_feature_dim_with_cls_or_mean_pooling():
    torch.manual_seed(0)
    for pool in ("cls", "mean"):
        vit = VisionTransformer(embed_dim=32, depth=2, num_heads=4, pool=pool)
        h = vit(torch.randn(3, 3, 32, 32))
        assert h.shape == (3, 32) and vit.feature_dim == 32 and torch.isfinite(h).all()
        tokens = vit.forward_tokens(torch.randn(2, 3, 32, 32))
        assert tokens.shape == (2, 1 + 64, 32)                   # [CLS] + 8x8 patches


def test_patch_embed_is_row_major_and_local():
    embed = PatchEmbed(patch_size=4, embed_dim=8)
    imgs = torch.zeros(1, 3, 32, 32)
    imgs[0, :, 4:8, 8:12] = 1.0                                 # the patch in row 1, column 2
    tokens = embed(imgs) - embed(torch.zeros_like(imgs))
    changed = tokens.abs().sum(-1)[0].nonzero().flatten().tolist()
    assert changed == [1 * 8 + 2]


def test_sincos_embedding_distinguishes_positions_and_matches_the_formula():
    emb = sincos_pos_embed_2d(16, 4)                            # (16 patches, 16 channels)
    assert emb.shape == (16, 16)
    assert torch.cdist(emb, emb).add(torch.eye(16)).min() > 0.1  # every position distinct
    # channel 0 is sin(column * omega_0) with omega_0 = 1, channel D/4 its cosine
    cols = torch.arange(16) % 4
    rows = torch.arange(16) // 4
    assert torch.allclose(emb[:, 0], cols.float().sin(), atol=1e-6)
    assert torch.allclose(emb[:, 4], cols.float().cos(), atol=1e-6)
    assert torch.allclose(emb[:, 8], rows.float().sin(), atol=1e-6)
    # a 2x2 crop grid spread over a 4x4 base grid sits at its centres 0.5 and 2.5
    small = sincos_pos_embed_2d(16, 2, base_grid=4)
    assert torch.allclose(small[:, 0], torch.tensor([0.5, 2.5, 0.5, 2.5]).sin(), atol=1e-6)


def test_position_embedding_is_fixed_and_not_a_parameter():
    vit = VisionTransformer(embed_dim=32, depth=1, num_heads=2)
    names = {n for n, _ in vit.named_parameters()}
    assert "pos_embed" not in names and "cls_token" in names
    assert not vit.pos_embed.requires_grad and vit.pos_embed.shape == (1, 64, 32)


def test_smaller_crops_get_their_own_position_grid():
    torch.manual_seed(0)
    vit = VisionTransformer(embed_dim=32, depth=1, num_heads=2)
    assert vit(torch.randn(2, 3, 16, 16)).shape == (2, 32)       # a DINO local crop
    assert vit.forward_tokens(torch.randn(2, 3, 16, 16)).shape == (2, 1 + 16, 32)


def test_attention_weights_are_a_distribution_and_match_the_fast_path():
    torch.manual_seed(0)
    attn = Attention(16, num_heads=4)
    x = torch.randn(2, 5, 16)
    out, weights = attn(x, return_attention=True)
    assert weights.shape == (2, 4, 5, 5)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4, 5), atol=1e-5)
    assert torch.allclose(out, attn(x), atol=1e-5)


def test_last_selfattention_of_the_cls_token():
    torch.manual_seed(0)
    vit = VisionTransformer(embed_dim=32, depth=2, num_heads=4)
    attn = vit.last_selfattention(torch.randn(2, 3, 32, 32))
    assert attn.shape == (2, 4, 65, 65)
    assert torch.allclose(attn[:, :, 0].sum(-1), torch.ones(2, 4), atol=1e-5)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    vit = build_vit("vit_micro")
    vit(torch.randn(2, 3, 32, 32)).pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in vit.parameters())


def test_sizes_and_build_encoder():
    tiny, micro = build_encoder("vit_tiny"), build_encoder("vit_micro")
    assert tiny.feature_dim == 192 and micro.feature_dim == 64
    assert 2_500_000 < count_parameters(tiny) < 3_000_000
    assert count_parameters(micro) < 200_000
    assert build_vit("vit_micro", depth=1).blocks.__len__() == 1
    with pytest.raises(ValueError, match="vit_micro"):
        build_vit("vit_huge")


def test_init_keeps_token_scale_sane():
    torch.manual_seed(0)
    tokens = build_vit("vit_tiny").forward_tokens(torch.randn(4, 3, 32, 32))
    assert math.isclose(tokens.std().item(), 1.0, rel_tol=0.2)   # after the final LayerNorm
