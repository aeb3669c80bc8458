"""Wrong variants for notebook 03: grade_id of a solution cell -> the whole cell, answered wrong.

Each is a mistake students make. tests/e2e/test_autograder.py grades the master with one of
these cells swapped in, once per entry, and expects exactly test_<grade_id> to lose its
points. Keep a few: each costs one grading.
"""

WRONG = {
    # Channels first inside a patch: a consistent round trip, but not MAE's layout. The
    # loss exercise is graded with a correct patchify, so only exercise 1 loses points.
    "patchify": '''\
def patchify(imgs, patch_size):
    """(N, 3, H, W) -> (N, L, p*p*3): row-major patches, each (row, column, channel)."""
    p = patch_size
    N, C, H, W = imgs.shape
    h = w = H // p
    x = imgs.reshape(N, C, h, p, w, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(N, h * w, C * p * p)


def unpatchify(patches, patch_size):
    """(N, L, p*p*3) -> (N, 3, H, W), the inverse of patchify."""
    p = patch_size
    N, L, _ = patches.shape
    h = w = int(round(math.sqrt(L)))
    x = patches.reshape(N, h, w, 3, p, p).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(N, 3, h * p, w * p)
''',
    # The mask is left in shuffled order: its ones are not at the removed patches.
    "random_masking": '''\
def random_masking(x, mask_ratio, generator=None):
    """x: (N, L, D) -> x_kept (N, len_keep, D), mask (N, L) 1 = removed, ids_restore (N, L)."""
    N, L, D = x.shape
    len_keep = int(L * (1 - mask_ratio))
    noise = torch.rand(N, L, generator=generator, device=x.device)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    x_kept = torch.gather(x, 1, ids_shuffle[:, :len_keep].unsqueeze(-1).expand(-1, -1, D))
    mask = torch.ones(N, L, device=x.device)
    mask[:, :len_keep] = 0
    return x_kept, mask, ids_restore
''',
    # The mask tokens go in front of the kept tokens.
    "unshuffle": '''\
def unshuffle(x_kept, mask_token, ids_restore):
    """(N, len_keep, D) kept tokens + mask tokens -> (N, L, D) in the original patch order."""
    N, len_keep, D = x_kept.shape
    L = ids_restore.shape[1]
    x = torch.cat([mask_token.expand(N, L - len_keep, D), x_kept], dim=1)
    return torch.gather(x, 1, ids_restore.unsqueeze(-1).expand(-1, -1, D))
''',
    # Averaged over every patch, the visible ones included.
    "mae_loss": '''\
def mae_loss(imgs, pred, mask, patch_size, norm_pix_loss=False):
    """Mean squared error per patch, averaged over the removed patches (mask == 1) only."""
    target = patchify(imgs, patch_size)
    if norm_pix_loss:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6) ** 0.5
    return ((pred - target) ** 2).mean()
''',
}

# Correct answers written differently from the master: tests/e2e/test_autograder.py grades the
# master with all of them in place and expects full marks, so the hidden tests must check
# what the lecture asks for, not the master's way of doing it.
CORRECT = {
    # Tensor.unfold cuts the (h, w) grid of p x p windows; F.fold puts them back (no
    # overlap, so the sum it does is a copy). No einsum, no six-axis reshape of the image.
    "patchify": '''\
def patchify(imgs, patch_size):
    """(N, 3, H, W) -> (N, L, p*p*3): row-major patches, each (row, column, channel)."""
    p = patch_size
    n = imgs.shape[0]
    windows = imgs.unfold(2, p, p).unfold(3, p, p)       # (N, 3, h, w, p, p)
    windows = windows.permute(0, 2, 3, 4, 5, 1)          # (N, h, w, i, j, c)
    return windows.reshape(n, -1, p * p * imgs.shape[1])


def unpatchify(patches, patch_size):
    """(N, L, p*p*3) -> (N, 3, H, W), the inverse of patchify."""
    p = patch_size
    n, num_patches, _ = patches.shape
    side = math.isqrt(num_patches) * p
    columns = patches.reshape(n, num_patches, p * p, 3).permute(0, 3, 2, 1)   # (N, c, i*p+j, L)
    columns = columns.reshape(n, 3 * p * p, num_patches)                      # F.fold's layout
    return F.fold(columns, output_size=(side, side), kernel_size=p, stride=p)
''',
    # One torch.randperm per image from the generator instead of argsort(noise); the inverse
    # permutation by scatter, x_kept by advanced indexing, the mask by scatter of zeros.
    "random_masking": '''\
def random_masking(x, mask_ratio, generator=None):
    """x: (N, L, D) -> x_kept (N, len_keep, D), mask (N, L) 1 = removed, ids_restore (N, L)."""
    batch, length, _ = x.shape
    n_keep = int(length * (1 - mask_ratio))
    order = torch.stack([torch.randperm(length, generator=generator, device=x.device)
                         for _ in range(batch)])               # (N, L): a shuffle per image
    positions = torch.arange(length, device=x.device).expand(batch, length)
    ids_restore = torch.empty_like(order).scatter_(1, order, positions)   # inverse of order
    keep = order[:, :n_keep]
    rows = torch.arange(batch, device=x.device).unsqueeze(1)
    x_kept = x[rows, keep]                                     # (N, n_keep, D), shuffled order
    mask = torch.ones(batch, length, device=x.device).scatter_(1, keep, 0.0)
    return x_kept, mask, ids_restore
''',
    # Scatter instead of gather: start from mask tokens everywhere and write each kept token
    # at its patch, ids_shuffle[:, j] = the patch of shuffled position j.
    "unshuffle": '''\
def unshuffle(x_kept, mask_token, ids_restore):
    """(N, len_keep, D) kept tokens + mask tokens -> (N, L, D) in the original patch order."""
    batch, n_keep, dim = x_kept.shape
    length = ids_restore.shape[1]
    ids_shuffle = torch.argsort(ids_restore, dim=1)
    target = ids_shuffle[:, :n_keep].unsqueeze(-1).expand(batch, n_keep, dim)
    background = mask_token.to(x_kept.dtype).expand(batch, length, dim)
    return torch.scatter(background, 1, target, x_kept)
''',
    # Boolean indexing of the removed patches and F.mse_loss over them (every patch has the
    # same number of values, so it is the mean of the per-patch errors); torch.var_mean and
    # rsqrt for the normalised target.
    "mae_loss": '''\
def mae_loss(imgs, pred, mask, patch_size, norm_pix_loss=False):
    """Mean squared error per patch, averaged over the removed patches (mask == 1) only."""
    target = patchify(imgs, patch_size)
    if norm_pix_loss:
        var, mean = torch.var_mean(target, dim=-1, keepdim=True)
        target = (target - mean) * torch.rsqrt(var + 1e-6)
    removed = mask > 0.5
    return F.mse_loss(pred[removed], target[removed])
''',
}
