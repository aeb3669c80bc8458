"""The visible checks of notebook 03 accept right answers and name the known mistakes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from check_data import by_name
from check_data.mae import (LEN_KEEP_MISTAKES, loss_eps_outside, make_loss, masking_right,
                            patchify_channels_first, patchify_column_major, patchify_plain,
                            patchify_right, patchify_rows_columns_swapped, patchify_strided,
                            patchify_strips, unpatchify_channels_first,
                            unpatchify_channels_last_image, unpatchify_column_major,
                            unpatchify_plain, unpatchify_right, unshuffle_inverse,
                            unshuffle_mask_first, unshuffle_none, unshuffle_right)
from course_utils.checks import mae as checks
from helpers import fails_with

LEN_KEEP = by_name(LEN_KEEP_MISTAKES)


# ----------------------------------------------------------------------------- patchify


def patchify_unfold(imgs, patch_size):
    """Written differently: F.unfold gives (N, 3*p*p, L) channel first; reorder to (p, p, 3)."""
    p = patch_size
    cols = F.unfold(imgs, kernel_size=p, stride=p)                  # (N, 3*p*p, L)
    N, _, L = cols.shape
    return cols.reshape(N, 3, p, p, L).permute(0, 4, 2, 3, 1).reshape(N, L, p * p * 3)


def unpatchify_fold(x, patch_size):
    p = patch_size
    N, L, _ = x.shape
    side = int(L ** 0.5) * p
    cols = x.reshape(N, L, p, p, 3).permute(0, 4, 2, 3, 1).reshape(N, 3 * p * p, L)
    return F.fold(cols, output_size=(side, side), kernel_size=p, stride=p)


def test_patchify_accepts_right_answers(capsys):
    checks.check_patchify(patchify_right, unpatchify_right)
    checks.check_patchify(patchify_unfold, unpatchify_fold)
    out = capsys.readouterr()
    assert out.out.count("[ok] patchify / unpatchify") == 2 and out.err == ""


def patchify_transposed(imgs, p):
    return patchify_right(imgs, p).transpose(1, 2)


def patchify_p2_only(imgs, p):
    return patchify_right(imgs, 2)


def patchify_mixes_samples(imgs, p):
    return patchify_right(imgs.flip(0), p)


def patchify_detached(imgs, p):
    return patchify_right(imgs.detach(), p)


def unpatchify_first_sample_only(x, p):
    return unpatchify_right(x[:1], p).expand(len(x), -1, -1, -1)


@pytest.mark.parametrize("patchify, words", [
    (patchify_channels_first, ["channel comes first"]),
    (patchify_plain, ["plain reshape"]),
    (patchify_column_major, ["column by column"]),
    (patchify_strips, ["p x p square"]),
    (patchify_strided, ["h apart"]),
    (patchify_rows_columns_swapped, ["swapped"]),
    (patchify_transposed, ["(n, l, p*p*3)"]),
    (patchify_p2_only, ["patch_size everywhere"]),
    (patchify_mixes_samples, ["sample 1"]),
    (patchify_detached, ["requires_grad"]),
])
def test_patchify_names_mistakes(patchify, words):
    fails_with(lambda fn: checks.check_patchify(fn, unpatchify_right), patchify, *words)


@pytest.mark.parametrize("unpatchify, words", [
    (unpatchify_plain, ["give imgs back", "plain reshape"]),
    (unpatchify_channels_first, ["give imgs back", "(c, i, j)"]),
    (unpatchify_column_major, ["give imgs back", "row by row"]),
    (unpatchify_channels_last_image, ["give imgs back", "p x p square"]),
    (unpatchify_first_sample_only, ["exact inverses"]),
])
def test_unpatchify_names_mistakes(unpatchify, words):
    fails_with(lambda fn: checks.check_patchify(patchify_right, fn), unpatchify, *words)


# ----------------------------------------------------------------------------- random masking


def masking_randperm(x, mask_ratio, generator=None):
    """Written differently: one randperm per sample, advanced indexing, scatter for the mask."""
    N, L, _ = x.shape
    len_keep = int(L * (1 - mask_ratio))
    ids_shuffle = torch.stack([torch.randperm(L, generator=generator) for _ in range(N)])
    ids_restore = torch.empty_like(ids_shuffle)
    ids_restore.scatter_(1, ids_shuffle, torch.arange(L).expand(N, L))
    rows = torch.arange(N)[:, None]
    x_kept = x[rows, ids_shuffle[:, :len_keep]]
    mask = torch.ones(N, L).scatter(1, ids_shuffle[:, :len_keep], 0.0)
    return x_kept, mask, ids_restore


def test_random_masking_accepts_right_answers(capsys):
    checks.check_random_masking(masking_right)
    checks.check_random_masking(masking_randperm)
    out = capsys.readouterr()
    assert out.out.count("[ok] random_masking") == 2 and out.err == ""


def make_masking(len_keep=None, mask_order="right", kept="right", noise="per_sample",
                 gen_use="right", returns="ids_restore", detach=False, mask_dtype=None,
                 ids_dtype=None, one_for="removed"):
    """random_masking with one mistake switched on."""
    def masking(x, mask_ratio, generator=None):
        N, L, D = x.shape
        K = int(L * (1 - mask_ratio)) if len_keep is None else len_keep(L, mask_ratio)
        gen = generator if gen_use == "right" else None
        if gen_use == "reseed":
            torch.manual_seed(0)
        rows = 1 if noise == "shared" else N
        ids_shuffle = torch.argsort(torch.rand(rows, L, generator=gen), dim=1).expand(N, L)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = {"right": ids_shuffle[:, :K], "sorted": ids_shuffle[:, :K].sort(1)[0],
                    "restore": ids_restore[:, :K]}[kept]
        source = x.detach() if detach else x
        x_kept = torch.gather(source, 1, ids_keep[..., None].expand(-1, -1, D))
        mask = torch.ones(N, L)
        mask[:, :K] = 0
        if one_for == "kept":
            mask = 1 - mask
        if mask_order == "right":
            mask = torch.gather(mask, 1, ids_restore)
        elif mask_order == "ids_shuffle":
            mask = torch.gather(mask, 1, ids_shuffle)
        if mask_dtype is not None:
            mask = mask.to(mask_dtype)
        ids = ids_restore if returns == "ids_restore" else ids_shuffle
        if ids_dtype is not None:
            ids = ids.to(ids_dtype)
        return x_kept, mask, ids
    return masking


def masking_without_generator(x, mask_ratio):
    return masking_right(x, mask_ratio)


@pytest.mark.parametrize("kwargs, words", [
    (dict(len_keep=LEN_KEEP["round"]), ["round(L * (1 - mask_ratio))"]),
    (dict(len_keep=LEN_KEEP["removed_by_int"]), ["L - int(L * mask_ratio)"]),
    (dict(len_keep=LEN_KEEP["removed"]), ["number to remove"]),
    (dict(len_keep=lambda L, r: max(1, int(L * (1 - r)))), ["int(L * (1 - mask_ratio))"]),
    (dict(mask_order="shuffled"), ["shuffled order"]),
    (dict(mask_order="ids_shuffle"), ["ids_restore"]),
    (dict(one_for="kept"), ["1 for kept"]),
    (dict(kept="sorted"), ["another order"]),
    (dict(kept="restore"), ["ids_restore[:, :len_keep]"]),
    (dict(returns="ids_shuffle"), ["returned ids_shuffle"]),
    (dict(noise="shared"), ["same shuffle"]),
    (dict(gen_use="ignore"), ["seeded alike"]),
    (dict(gen_use="reseed"), ["different seeds"]),
    (dict(detach=True), ["requires_grad"]),
    (dict(mask_dtype=torch.bool), ["float"]),
    (dict(ids_dtype=torch.int32), ["int64"]),
])
def test_random_masking_names_mistakes(kwargs, words):
    fails_with(checks.check_random_masking, make_masking(**kwargs), *words)


def test_random_masking_wants_the_generator_argument():
    fails_with(checks.check_random_masking, masking_without_generator, "generator")


def test_random_masking_reports_a_crash_with_no_kept_patch():
    def crashes_without_kept(x, mask_ratio, generator=None):
        if int(x.shape[1] * (1 - mask_ratio)) == 0:
            raise RuntimeError("cannot keep nothing")
        return masking_right(x, mask_ratio, generator)
    fails_with(checks.check_random_masking, crashes_without_kept, "RuntimeError", "(N, 0, D)")


# ----------------------------------------------------------------------------- unshuffle


def unshuffle_scatter(x_kept, mask_token, ids_restore):
    """Written differently: scatter the shuffled sequence to the positions ids_shuffle names."""
    N, K, D = x_kept.shape
    L = ids_restore.shape[1]
    shuffled = torch.cat([x_kept, mask_token.expand(N, L - K, D)], dim=1)
    ids_shuffle = ids_restore.argsort(dim=1)
    return torch.zeros(N, L, D, dtype=x_kept.dtype).scatter(
        1, ids_shuffle[..., None].expand(-1, -1, D), shuffled)


def test_unshuffle_accepts_right_answers(capsys):
    checks.check_unshuffle(unshuffle_right)
    checks.check_unshuffle(unshuffle_scatter)
    out = capsys.readouterr()
    assert out.out.count("[ok] unshuffle") == 2 and out.err == ""


def unshuffle_zeros(x_kept, mask_token, ids_restore):
    return unshuffle_right(x_kept, torch.zeros_like(mask_token), ids_restore)


def unshuffle_token_copy(x_kept, mask_token, ids_restore):
    return unshuffle_right(x_kept, mask_token.detach().clone(), ids_restore)


def unshuffle_short(x_kept, mask_token, ids_restore):
    return unshuffle_right(x_kept, mask_token, ids_restore)[:, 1:]


@pytest.mark.parametrize("fn, words", [
    (unshuffle_inverse, ["inverse permutation"]),
    (unshuffle_mask_first, ["before x_kept"]),
    (unshuffle_none, ["not put back"]),
    (unshuffle_zeros, ["neither"]),
    (unshuffle_token_copy, ["mask_token"]),
    (unshuffle_short, ["shape"]),
])
def test_unshuffle_names_mistakes(fn, words):
    fails_with(checks.check_unshuffle, fn, *words)


# ----------------------------------------------------------------------------- the loss


def loss_boolean_index(imgs, pred, mask, patch_size, norm_pix_loss=False):
    """Written differently: select the removed patches, normalise with std."""
    target = patchify_unfold(imgs, patch_size)
    if norm_pix_loss:
        target = (target - target.mean(-1, keepdim=True)) / torch.sqrt(
            target.var(-1, keepdim=True) + 1e-6)
    removed = mask.bool()
    return F.mse_loss(pred[removed], target[removed])


def test_mae_loss_accepts_right_answers(capsys):
    checks.check_mae_loss(make_loss())
    checks.check_mae_loss(loss_boolean_index)
    out = capsys.readouterr()
    assert out.out.count("[ok] mae_loss") == 2 and out.err == ""


def loss_detached(imgs, pred, mask, patch_size, norm_pix_loss=False):
    return make_loss()(imgs, pred.detach(), mask, patch_size, norm_pix_loss)


def loss_item(imgs, pred, mask, patch_size, norm_pix_loss=False):
    return make_loss()(imgs, pred, mask, patch_size, norm_pix_loss).item()


@pytest.mark.parametrize("fn, words", [
    (make_loss(reduce="all"), ["all patches"]),
    (make_loss(reduce="visible"), ["visible patches"]),
    (make_loss(reduce="mean_with_mask"), ["mask.sum()"]),
    (make_loss(per_patch="sum"), ["sum over its pixels"]),
    (make_loss(reduce="per_patch"), ["0-dim"]),
    (make_loss(norm="ignored"), ["norm_pix_loss=true gives the same"]),
    (make_loss(norm="biased"), ["unbiased"]),
    (make_loss(norm="no_sqrt"), ["standard deviation"]),
    (make_loss(norm="whole_image"), ["whole image"]),
    (make_loss(norm="across_patches"), ["across patches"]),
    (make_loss(patchify=patchify_channels_first), ["check_patchify", "channel comes first"]),
    (make_loss(patchify=patchify_column_major), ["check_patchify", "column by column"]),
    (make_loss(patchify=patchify_plain), ["check_patchify", "plain reshape"]),
    (loss_detached, ["requires_grad"]),
    (loss_item, ["python number"]),
])
def test_mae_loss_names_mistakes(fn, words):
    fails_with(checks.check_mae_loss, fn, *words)


def test_mae_loss_check_skips_while_the_notebooks_patchify_is_wrong(capsys):
    """A wrong patchify must cost exercise 1's points only: the loss check then skips."""
    namespace = {"torch": torch}
    exec("def patchify(imgs, patch_size):\n"
         "    N, C, H, W = imgs.shape\n"
         "    return imgs.reshape(N, (H // patch_size) * (W // patch_size), -1)\n"
         "def mae_loss(imgs, pred, mask, patch_size, norm_pix_loss=False):\n"
         "    return ((pred - patchify(imgs, patch_size)) ** 2).mean()\n", namespace)
    checks.check_mae_loss(namespace["mae_loss"])     # wrong, but not judged: no failure
    out = capsys.readouterr()
    assert "[skipped]" in out.out and "check_patchify" in out.out and out.err == ""


# ----------------------------------------------------------------------------- checks added
# for issue 13, item 7: requirements of the text a visible check can test without the answer


def patchify_view(imgs, p):
    """Flattens with view first: right on a contiguous image, an error on a channels-last one."""
    N, _, H, _ = imgs.shape
    h = H // p
    flat = imgs.view(N, -1)
    return flat.view(N, 3, h, p, h, p).permute(0, 2, 4, 3, 5, 1).reshape(N, h * h, p * p * 3)


def patchify_as_float32(imgs, p):
    return patchify_right(imgs.float(), p)


def unpatchify_as_float32(x, p):
    return unpatchify_right(x.float(), p)


@pytest.mark.parametrize("patchify, unpatchify, words", [
    (patchify_view, unpatchify_right, ["non-contiguous", "reshape"]),
    (patchify_as_float32, unpatchify_right, ["patchify of a float64", "dtype"]),
    (patchify_right, unpatchify_as_float32, ["unpatchify of a float64", "dtype"]),
])
def test_patchify_memory_order_and_dtype(patchify, unpatchify, words):
    fails_with(lambda fn: checks.check_patchify(patchify, unpatchify), None, *words)


def masking_fixed_seed_without_generator(x, mask_ratio, generator=None):
    if generator is None:
        generator = torch.Generator().manual_seed(0)      # the same mask at every call
    return masking_right(x, mask_ratio, generator)


def masking_in_place(x, mask_ratio, generator=None):
    x_kept, mask, ids_restore = masking_right(x, mask_ratio, generator)
    x.detach().masked_fill_(mask.bool()[..., None], 0.0)  # "zero the removed tokens" of x itself
    return x_kept, mask, ids_restore


def masking_float32(x, mask_ratio, generator=None):
    x_kept, mask, ids_restore = masking_right(x, mask_ratio, generator)
    return x_kept.float(), mask, ids_restore


def masking_window(x, mask_ratio, generator=None):
    """A random block of len_keep neighbouring patches (wrapping around): every patch is kept
    equally often, but neighbours always together; not a uniform subset."""
    N, L, D = x.shape
    K = int(L * (1 - mask_ratio))
    start = torch.randint(0, L, (N, 1), generator=generator)
    ids_shuffle = (start + torch.arange(L)) % L
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    x_kept = torch.gather(x, 1, ids_shuffle[:, :K, None].expand(-1, -1, D))
    mask = torch.ones(N, L)
    mask[:, :K] = 0
    return x_kept, torch.gather(mask, 1, ids_restore), ids_restore


def masking_biased(x, mask_ratio, generator=None):
    """Noise that grows with the patch index: the first patches are kept far more often."""
    N, L, D = x.shape
    K = int(L * (1 - mask_ratio))
    noise = torch.rand(N, L, generator=generator) + torch.linspace(0, 1, L)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    x_kept = torch.gather(x, 1, ids_shuffle[:, :K, None].expand(-1, -1, D))
    mask = torch.ones(N, L)
    mask[:, :K] = 0
    return x_kept, torch.gather(mask, 1, ids_restore), ids_restore


@pytest.mark.parametrize("fn, words", [
    (masking_fixed_seed_without_generator, ["without a generator", "global"]),
    (masking_in_place, ["changed x in place"]),
    (masking_float32, ["float64", "dtype"]),
    (masking_window, ["pairs of patches", "uniformly"]),
    (masking_biased, ["equally likely"]),
])
def test_random_masking_randomness_and_inputs(fn, words):
    fails_with(checks.check_random_masking, fn, *words)


def unshuffle_reads_first_kept(x_kept, mask_token, ids_restore):
    """Looks at x_kept[:, 0]: breaks when no patch is kept."""
    N, K, D = x_kept.shape
    mask_tokens = mask_token.expand(N, ids_restore.shape[1] - K, D) + 0 * x_kept[:, :1, :]
    x = torch.cat([x_kept, mask_tokens], dim=1)
    return torch.gather(x, 1, ids_restore[..., None].expand(-1, -1, D))


def unshuffle_float32(x_kept, mask_token, ids_restore):
    return unshuffle_right(x_kept.float(), mask_token.float(), ids_restore)


def unshuffle_zeros_float32(x_kept, mask_token, ids_restore):
    N, K, D = x_kept.shape
    L = ids_restore.shape[1]
    shuffled = torch.cat([x_kept, mask_token.expand(N, L - K, D)], dim=1)
    return torch.zeros(N, L, D).scatter(1, ids_restore.argsort(1)[..., None].expand(-1, -1, D),
                                        shuffled)


@pytest.mark.parametrize("fn, words", [
    (unshuffle_reads_first_kept, ["raised", "no patch kept"]),
    (unshuffle_float32, ["float64 tokens", "dtype"]),
    (unshuffle_zeros_float32, ["float64 tokens raised"]),
])
def test_unshuffle_edges_and_dtype(fn, words):
    fails_with(checks.check_unshuffle, fn, *words)


def test_unshuffle_with_every_patch_kept():
    def unshuffle_all_kept_wrong(x_kept, mask_token, ids_restore):
        if x_kept.shape[1] == ids_restore.shape[1]:
            return x_kept.clone()                         # forgets to reorder
        return unshuffle_right(x_kept, mask_token, ids_restore)
    fails_with(checks.check_unshuffle, unshuffle_all_kept_wrong, "every patch kept")


def loss_no_eps(imgs, pred, mask, patch_size, norm_pix_loss=False):
    target = patchify_right(imgs, patch_size)
    if norm_pix_loss:
        target = (target - target.mean(-1, keepdim=True)) / target.std(-1, keepdim=True)
    return (((pred - target) ** 2).mean(-1) * mask).sum() / mask.sum()


def loss_float64(imgs, pred, mask, patch_size, norm_pix_loss=False):
    return make_loss()(imgs.double(), pred.double(), mask.double(), patch_size, norm_pix_loss)


def loss_mm_in_pred_dtype(imgs, pred, mask, patch_size, norm_pix_loss=False):
    """The target cast to pred's dtype and a matrix product with the float mask: fine in
    float32, a dtype error with a bfloat16 pred."""
    target = patchify_right(imgs, patch_size)
    if norm_pix_loss:
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True)
                                                             + 1e-6) ** 0.5
    target = target.type_as(pred)
    per_patch = ((pred - target) ** 2).mean(-1)
    return torch.mm(per_patch.reshape(1, -1), mask.reshape(-1, 1))[0, 0] / mask.sum()


@pytest.mark.parametrize("fn, words", [
    (loss_eps_outside, ["outside the square root"]),
    (loss_no_eps, ["nan", "inside the square root"]),
    (loss_float64, ["float32"]),
    (loss_mm_in_pred_dtype, ["bfloat16"]),
])
def test_mae_loss_eps_dtype_and_bfloat16(fn, words):
    fails_with(checks.check_mae_loss, fn, *words)
