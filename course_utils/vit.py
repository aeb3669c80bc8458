"""A small Vision Transformer for 32x32 images, shared by notebooks 03 (MAE) and 04 (DINO).

Read it top to bottom: an image is cut into ``patch_size`` x ``patch_size`` patches, each
patch becomes a token (a linear map, written as a strided convolution), a fixed 2-D sin-cos
position embedding says where the patch was, a learned [CLS] token is put in front, and
pre-norm Transformer blocks (attention, then MLP, each with a residual) mix the tokens.
``forward`` returns h, the [CLS] token (or the mean patch token) after the final LayerNorm.

The pieces are exposed for the methods that need them: MAE embeds the patches, drops most of
them and runs ``blocks`` on the rest; DINO crops small views (their patches get the position
embedding of the area they cover) and looks at the last block's attention.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sincos_1d(embed_dim: int, positions: torch.Tensor) -> torch.Tensor:
    """(M,) positions -> (M, embed_dim): sin of half the frequencies, cos of the other half."""
    assert embed_dim % 2 == 0, "embed_dim must be even"
    omega = torch.arange(embed_dim // 2, dtype=torch.float64) / (embed_dim / 2.0)
    omega = 1.0 / 10000 ** omega                                  # (D/2,)
    angles = positions.double().reshape(-1, 1) * omega            # (M, D/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_pos_embed_2d(embed_dim: int, grid_size: int, base_grid: int | None = None
                        ) -> torch.Tensor:
    """Fixed 2-D sin-cos embedding of a grid_size x grid_size patch grid: (grid**2, D).

    Half the channels encode the row, half the column (as in MAE's ``pos_embed.py``);
    patches are in row-major order. With ``base_grid`` the grid is spread over the
    coordinates of a base_grid x base_grid grid, so a smaller crop resized to fewer patches
    gets the positions of the area it covers (the analytic form of DINO's interpolation).
    """
    assert embed_dim % 4 == 0, "embed_dim must be a multiple of 4"
    coords = torch.arange(grid_size, dtype=torch.float64)
    if base_grid is not None and base_grid != grid_size:
        coords = (coords + 0.5) * (base_grid / grid_size) - 0.5
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")
    emb_rows = sincos_1d(embed_dim // 2, rows.reshape(-1))
    emb_cols = sincos_1d(embed_dim // 2, cols.reshape(-1))
    return torch.cat([emb_cols, emb_rows], dim=1).float()        # (grid**2, D)


class PatchEmbed(nn.Module):
    """(B, C, H, W) -> (B, L, D) with L = (H / p) * (W / p), patches in row-major order."""

    def __init__(self, patch_size: int = 4, in_chans: int = 3, embed_dim: int = 192):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        H, W = imgs.shape[-2:]
        p = self.patch_size
        assert H % p == 0 and W % p == 0, f"image {H}x{W} is not a whole number of {p}x{p} patches"
        return self.proj(imgs).flatten(2).transpose(1, 2)        # (B, L, D)


class Attention(nn.Module):
    """Multi-head self-attention; optionally returns the attention weights (B, heads, T, T)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        assert dim % num_heads == 0, "dim must be divisible by num_heads"
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        B, T, D = x.shape
        qkv = self.qkv(x).reshape(B, T, 3, self.num_heads, D // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)                     # each (B, heads, T, D/heads)
        if not return_attention:
            out = F.scaled_dot_product_attention(q, k, v)
            return self.proj(out.transpose(1, 2).reshape(B, T, D))
        attn = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(B, T, D)
        return self.proj(out), attn


class Block(nn.Module):
    """Pre-norm Transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        if return_attention:
            y, attn = self.attn(self.norm1(x), return_attention=True)
        else:
            y, attn = self.attn(self.norm1(x)), None
        x = x + y
        x = x + self.mlp(self.norm2(x))
        return (x, attn) if return_attention else x


class VisionTransformer(nn.Module):
    """ViT encoder; ``forward`` returns h (B, embed_dim): the [CLS] token or the mean patch."""

    def __init__(self, img_size: int = 32, patch_size: int = 4, in_chans: int = 3,
                 embed_dim: int = 192, depth: int = 6, num_heads: int = 3,
                 mlp_ratio: float = 4.0, pool: str = "cls"):
        super().__init__()
        assert pool in ("cls", "mean"), "pool is 'cls' or 'mean'"
        assert img_size % patch_size == 0, "img_size must be a multiple of patch_size"
        self.img_size, self.patch_size, self.pool = img_size, patch_size, pool
        self.grid_size = img_size // patch_size
        self.num_patches = self.grid_size ** 2                      # L
        self.feature_dim = self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        # fixed, not learned: a buffer (saved with the model, never given to an optimiser)
        self.register_buffer("pos_embed", sincos_pos_embed_2d(embed_dim, self.grid_size)[None],
                             persistent=False)                      # (1, L, D)
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim)
        self.init_weights()

    def init_weights(self) -> None:
        """MAE's initialisation: Xavier-uniform linear layers (and patch projection)."""
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.proj.bias)
        nn.init.normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def pos_embed_for(self, grid_size: int) -> torch.Tensor:
        """(1, grid**2, D) position embedding for a grid of grid_size x grid_size patches."""
        if grid_size == self.grid_size:
            return self.pos_embed
        emb = sincos_pos_embed_2d(self.embed_dim, grid_size, base_grid=self.grid_size)
        return emb[None].to(self.pos_embed.device, self.pos_embed.dtype)

    def embed_patches(self, imgs: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> patch tokens with their positions, (B, L, D)."""
        tokens = self.patch_embed(imgs)
        grid = imgs.shape[-1] // self.patch_size
        return tokens + self.pos_embed_for(grid)

    def prepend_cls(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L', D) -> (B, 1 + L', D) with the [CLS] token in front."""
        cls = self.cls_token.expand(len(tokens), -1, -1)
        return torch.cat([cls, tokens], dim=1)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Run the blocks and the final norm on (B, T, D) tokens."""
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)

    def forward_tokens(self, imgs: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> all output tokens (B, 1 + L, D), [CLS] first."""
        return self.encode(self.prepend_cls(self.embed_patches(imgs)))

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        tokens = self.forward_tokens(imgs)
        return tokens[:, 0] if self.pool == "cls" else tokens[:, 1:].mean(dim=1)

    @torch.no_grad()
    def last_selfattention(self, imgs: torch.Tensor) -> torch.Tensor:
        """Attention weights of the last block, (B, heads, 1 + L, 1 + L); row 0 is [CLS]'s."""
        tokens = self.prepend_cls(self.embed_patches(imgs))
        for block in self.blocks[:-1]:
            tokens = block(tokens)
        _, attn = self.blocks[-1](tokens, return_attention=True)
        return attn


# Sizes for 32x32 images with 4x4 patches (64 tokens). "tiny" is ViT-Ti's width (Touvron et
# al. 2021) at half its depth; "micro" trains in a minute or two on a CPU; "nano" is micro
# with two blocks, whose [CLS] attention settles on the object within a CPU run of DINO
# (benchmarks/dino_fast_data.py).
VIT_SIZES = {
    "vit_tiny": dict(embed_dim=192, depth=6, num_heads=3),
    "vit_micro": dict(embed_dim=64, depth=3, num_heads=4),
    "vit_nano": dict(embed_dim=64, depth=2, num_heads=4),
}


def build_vit(name: str = "vit_tiny", img_size: int = 32, patch_size: int = 4,
              **overrides) -> VisionTransformer:
    """A ViT by size name (a key of VIT_SIZES); keyword overrides win."""
    if name not in VIT_SIZES:
        raise ValueError(f"unknown ViT size {name!r}: use one of {sorted(VIT_SIZES)}")
    kwargs = {**VIT_SIZES[name], **overrides}
    return VisionTransformer(img_size=img_size, patch_size=patch_size, **kwargs)
