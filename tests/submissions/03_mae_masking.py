"""Wrong variants for notebook 03: grade_id of a solution cell -> the whole cell, answered wrong.

Each is a mistake students make. tests/test_autograder.py grades the master with one of
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
