"""Visible checks for notebook 03 (MAE: patches, random masking, unshuffle, the loss).

Each ``check_*`` runs your function on fixed inputs and compares the result with stored
numbers: the right one and those of known mistakes (see ``course_utils.checks``), in
``stored/mae.py``; this module only compares.

The patch checks feed ``arange`` images, so every output value *is* the flat index of a
pixel of the input: value v is channel v // (H*W), row (v % (H*W)) // W, column v % W. The
masking check draws random numbers, so it checks properties (counts, consistency between the
three outputs), never the particular patches that were drawn.
"""
from __future__ import annotations

import torch

from . import (as_array, close, diagnose, fail, fixed_tensor, known, passed, quiet,
               require_finite, require_grad, require_tensor, short)
from .stored.mae import TABLES

# ============================================================================ fixed inputs


def patch_inputs():
    """imgs (2, 3, 6, 6) = arange(216): sample 1 is sample 0 plus 108."""
    return torch.arange(216, dtype=torch.float32).reshape(2, 3, 6, 6)


def unshuffle_inputs():
    """Two (x_kept, mask_token, ids_restore) cases: N=2, L=7, 3 kept, D=4; N=1, L=5, 2 kept, D=2."""
    return [(fixed_tensor(2, 3, 4), fixed_tensor(1, 1, 4, phase=5.0),
             torch.tensor(UNSHUFFLE_IDS_RESTORE[0])),
            (fixed_tensor(1, 2, 2, phase=2.0), fixed_tensor(1, 1, 2, phase=7.0),
             torch.tensor(UNSHUFFLE_IDS_RESTORE[1]))]


def all_kept_inputs():
    """x_kept (1, 4, 3), mask_token (1, 1, 3), ids_restore (1, 4): every patch kept."""
    return (fixed_tensor(1, 4, 3, phase=4.0), fixed_tensor(1, 1, 3, phase=9.0),
            torch.tensor([[2, 0, 3, 1]]))


# ids_restore of the two unshuffle cases
UNSHUFFLE_IDS_RESTORE = [[[4, 6, 5, 1, 2, 0, 3], [5, 3, 0, 2, 6, 4, 1]],
                         [[2, 0, 1, 3, 4]]]

# (L, mask_ratio) of the cases of the number of kept patches
LEN_KEEP_CASES = [(16, 0.75), (20, 0.9), (10, 0.9), (49, 0.75), (7, 0.5), (8, 0.6), (10, 0.7),
                  (5, 0.5)]


def loss_inputs():
    """imgs (2, 3, 4, 4), pred (2, 4, 12) for patch_size 2, mask (2, 4) with 5 removed patches."""
    imgs = fixed_tensor(2, 3, 4, 4)
    pred = fixed_tensor(2, 4, 12, phase=1.3, scale=0.8)
    mask = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]])
    return imgs, pred, mask, 2


def low_contrast_inputs():
    """imgs (1, 3, 4, 4) of low contrast (variance about 5e-7 per patch) whose last patch is
    flat (variance 0), pred (1, 4, 12), every patch removed, patch_size 2."""
    imgs = 0.25 + 1e-3 * fixed_tensor(1, 3, 4, 4, phase=0.4)
    imgs[:, :, 2:4, 2:4] = 0.5
    pred = fixed_tensor(1, 4, 12, phase=2.1, scale=0.7)
    return imgs, pred, torch.ones(1, 4), 2


# ============================================================================ stored numbers
# patchify(arange(108).reshape(1, 3, 6, 6), p)[0] for p = 2 and 3: one row per patch. The
# unshuffle tables hold where each output token comes from: j = x_kept[n, j], -1 = the mask
# token.

PATCHES, PATCHES_P3 = TABLES["patchify"]["expected"], TABLES["patchify_p3"]["expected"]

# ============================================================================ patchify


def _pixels(values, size: int = 6, n: int = 6) -> str:
    """Name the first pixels of an arange image: value v is (channel, row, column)."""
    names = []
    for v in as_array(values).ravel()[:n]:
        v = int(round(v))
        names.append(f"({v // (size * size)}, {v % (size * size) // size}, {v % size})")
    return ", ".join(names) + ", ..."


def _match(value, stored) -> bool:
    return close(value, stored, rtol=0, atol=1e-3)


def _check_patch_values(out, expected, p: int) -> None:
    if _match(out, expected):
        return
    if p == 2:
        for patches, message in known(TABLES["patchify"]):   # told apart by 2 patches
            if _match(out[:2], patches[:2]):
                fail(f"patchify: {message}")
    for k, (got, want) in enumerate(zip(as_array(out), expected)):
        if not _match(got, want):
            fail(f"patchify(imgs, {p}) of the arange image (3, 6, 6): patch {k} should hold "
                 f"the pixels (channel, row, column) = {_pixels(want)} but holds "
                 f"{_pixels(got)}. Patches go row by row; inside a patch the order is pixel "
                 f"row, pixel column, channel.")
    fail(f"patchify(imgs, {p}) of the arange image differs from the stored patches.")


def _check_unpatch_values(img, p: int, image) -> None:
    """``img``: the student's unpatchify of the stored right patches, ``image``: what it must be."""
    what = f"unpatchify(patchify(imgs), {p})"
    require_tensor(img, what, shape=(1, 3, 6, 6),
                   hint="unpatchify maps (N, L, p*p*3) to (N, 3, H, W) with H = W = sqrt(L) * p.")
    if _match(img, image):
        return
    if p == 2:
        for image_back, message in known(TABLES["unpatchify"]):   # by each channel's row 0
            if _match(img[0, :, 0, :], as_array(image_back)[0, :, 0, :]):
                fail(f"{what} should give imgs back: {message}")
    fail(f"{what} should give the arange image back; the first row of channel 0 holds the "
         f"pixels (channel, row, column) = {_pixels(img[0, 0, 0])} instead of "
         f"{_pixels(image[0, 0, 0])}. unpatchify must undo patchify step by step.")


def _check_patchify_only(patchify) -> None:
    """The patchify half of :func:`check_patchify` (raises CheckFailure on a mistake)."""
    imgs = patch_inputs()
    with quiet():
        out = patchify(imgs.clone(), 2)
    require_tensor(out, "patchify(imgs, 2)")
    if tuple(out.shape) == (2, 12, 9):
        fail("patchify(imgs (2, 3, 6, 6), 2) has shape (2, 12, 9) = (N, p*p*3, L); MAE's is "
             "(N, L, p*p*3) = (2, 9, 12): one row per patch.")
    require_tensor(out, "patchify(imgs (2, 3, 6, 6), 2)", shape=(2, 9, 12),
                   hint="(N, L, p*p*3) with L = (H / p) * (W / p).")
    if bool((out[0].detach() >= 108).any()):
        fail("patchify: the patches of sample 0 hold pixels of sample 1 (the input is "
             "arange(216), sample 1 = values 108..215): keep the batch axis first and never "
             "mix it with the other axes.")
    _check_patch_values(out[0], PATCHES, 2)
    if not _match(out[1], torch.tensor(PATCHES) + 108):
        fail("patchify: sample 0 is right but sample 1 is not (sample 1 of the input is sample "
             "0 plus 108, so its patches should be too): keep the batch axis first and "
             "patchify every image the same way.")
    with quiet():
        out3 = patchify(imgs[:1].clone(), 3)
    require_tensor(out3, "patchify(imgs (1, 3, 6, 6), 3)", shape=(1, 4, 27),
                   hint="Use patch_size everywhere; nothing may assume p = 2.")
    _check_patch_values(out3[0], PATCHES_P3, 3)
    with quiet():
        traced = patchify(fixed_tensor(1, 3, 4, 4).requires_grad_(True), 2)
    require_grad(traced, "patchify")


def check_patchify(patchify, unpatchify) -> None:
    """Check ``patchify(imgs, patch_size)`` and ``unpatchify(patches, patch_size)``."""
    _check_patchify_only(patchify)
    imgs = patch_inputs()
    image = imgs[:1]
    with quiet():
        back = unpatchify(torch.tensor(PATCHES, dtype=torch.float32)[None], 2)
        back3 = unpatchify(torch.tensor(PATCHES_P3, dtype=torch.float32)[None], 3)
    _check_unpatch_values(back, 2, image)
    _check_unpatch_values(back3, 3, image)

    x = fixed_tensor(2, 3, 8, 8)
    z = fixed_tensor(2, 4, 48, phase=1.0)
    with quiet():
        x_again = unpatchify(patchify(x.clone(), 4), 4)
        z_again = patchify(unpatchify(z.clone(), 4), 4)
    if not (isinstance(x_again, torch.Tensor) and close(x_again, x, rtol=0, atol=1e-6)):
        fail("unpatchify(patchify(x, 4), 4) does not give x (2, 3, 8, 8) back: they must be "
             "exact inverses for any batch size and patch size.")
    if not (isinstance(z_again, torch.Tensor) and close(z_again, z, rtol=0, atol=1e-6)):
        fail("patchify(unpatchify(z, 4), 4) does not give z (2, 4, 48) back.")

    # a channels-last image (as on the GPU): the same numbers, another memory order
    strided = imgs.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    try:
        with quiet():
            out = patchify(strided, 2)
    except RuntimeError as error:
        fail(f"patchify of a channels-last (non-contiguous) image raised RuntimeError: {error}. "
             f"Use reshape (it copies when it must), not view.")
    if not (isinstance(out, torch.Tensor) and _match(out[0], PATCHES)
            and _match(out[1], torch.tensor(PATCHES) + 108)):
        fail("patchify of a channels-last (non-contiguous) copy of the image gives other "
             "patches than the image itself: never rely on the memory order of imgs.")
    with quiet():
        out64 = patchify(imgs.double(), 2)
        back64 = unpatchify(torch.tensor(PATCHES, dtype=torch.float64)[None], 2)
    for value, what in ((out64, "patchify"), (back64, "unpatchify")):
        if not isinstance(value, torch.Tensor) or value.dtype != torch.float64:
            fail(f"{what} of a float64 input returned {getattr(value, 'dtype', type(value))}: "
                 f"keep the dtype (it only moves numbers).")
    passed("patchify / unpatchify", "(N, 3, H, W) <-> (N, L, p*p*3), patches row by row, each "
                                    "as (pixel row, pixel column, channel); exact inverses; "
                                    "any memory order; dtype kept")


# ============================================================================ random masking

MASKING_HINT = ("MAE: noise = torch.rand(N, L, generator=generator); ids_shuffle = argsort(noise); "
                "ids_restore = argsort(ids_shuffle); keep x at ids_shuffle[:, :len_keep]; mask "
                "(1 = removed) back in patch order with ids_restore.")


def _call_masking(fn, x, ratio, **kwargs):
    with quiet():
        try:
            out = fn(x, ratio, **kwargs)
        except TypeError as error:
            if "generator" in str(error):
                fail(f"random_masking(x, mask_ratio, generator=None) must accept the keyword "
                     f"argument generator (and pass it to torch.rand): {error}")
            raise
    if not isinstance(out, tuple) or len(out) != 3:
        fail(f"random_masking should return a tuple (x_kept, mask, ids_restore), got "
             f"{type(out).__name__}" + (f" of length {len(out)}" if isinstance(out, tuple)
                                         else "") + ".")
    return out


def _require_masking_types(out, N: int, L: int, D: int) -> None:
    x_kept, mask, ids_restore = out
    require_tensor(x_kept, "x_kept")
    if x_kept.dim() != 3 or x_kept.shape[0] != N or x_kept.shape[2] != D:
        fail(f"x_kept has shape {tuple(x_kept.shape)}; for x of shape ({N}, {L}, {D}) it should "
             f"be ({N}, len_keep, {D}): the kept patches of every sample, whole.")
    if not isinstance(mask, torch.Tensor) or not mask.is_floating_point():
        fail(f"mask should be a float tensor (1. = removed, 0. = kept; the loss multiplies by "
             f"it), got {getattr(mask, 'dtype', type(mask).__name__)}.")
    require_tensor(mask, "mask", shape=(N, L), hint="One value per patch, in the patch order of x.")
    if not isinstance(ids_restore, torch.Tensor) or ids_restore.dtype != torch.long:
        fail(f"ids_restore should be a torch.int64 tensor (what argsort returns; gather wants "
             f"int64 indices), got {getattr(ids_restore, 'dtype', type(ids_restore).__name__)}.")
    if tuple(ids_restore.shape) != (N, L):
        fail(f"ids_restore has shape {tuple(ids_restore.shape)}, expected ({N}, {L}).")


def _rows_of(tokens: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Index of the row of ``source`` (N, L, D) that each row of ``tokens`` (N, K, D) equals."""
    same = (tokens.detach()[:, :, None, :] == source.detach()[:, None, :, :]).all(-1)  # (N, K, L)
    index = same.long().argmax(-1)
    index[~same.any(-1)] = -1
    return index


def _sets(index: torch.Tensor) -> list[set]:
    return [set(row.tolist()) for row in index]


def _where(row: torch.Tensor) -> set:
    """The positions where a boolean row is True."""
    return set(row.nonzero().ravel().tolist())


def _check_consistency(x: torch.Tensor, out, ratio: float) -> None:
    """x_kept, mask and ids_restore describe the same shuffle; mask is 1 where removed."""
    x_kept, mask, ids_restore = out
    N, L, _ = x.shape
    K = x_kept.shape[1]
    case = f"(x of shape {tuple(x.shape)}, mask_ratio={ratio})"
    if not all(sorted(row) == list(range(L)) for row in ids_restore.tolist()):
        fail(f"each row of ids_restore should be a permutation of 0..{L - 1} {case}; got "
             f"{ids_restore[0].tolist()} in row 0. ids_restore = argsort(ids_shuffle).")
    if not bool(((mask == 0) | (mask == 1)).all()):
        fail(f"mask should hold only 0. (kept) and 1. (removed); got {short(mask[0])} in row 0.")
    kept = _rows_of(x_kept, x)                                    # (N, K) patch index or -1
    if (kept < 0).any():
        fail(f"x_kept holds rows that are not patches of the same sample of x {case}: keep "
             f"the patches themselves, unchanged (gather along dim 1).")
    ids_shuffle = ids_restore.argsort(dim=1)
    first = ids_shuffle[:, :K]
    kept_sets, zero_sets = _sets(kept), [_where(row) for row in mask == 0]
    if not torch.equal(kept, first):
        if torch.equal(kept, ids_restore[:, :K]) and zero_sets == kept_sets:
            fail("you returned ids_shuffle where ids_restore is expected: ids_restore = "
                 "argsort(ids_shuffle), the permutation that puts the shuffled tokens back.")
        if torch.equal(kept, ids_restore[:, :K]):
            fail("x_kept holds the patches ids_restore[:, :len_keep]: keep x at "
                 "ids_shuffle[:, :len_keep] (ids_shuffle = argsort(noise)); ids_restore "
                 "is only for putting tokens back later.")
        if kept_sets == _sets(first):
            fail("x_kept holds the right patches in another order: keep them in shuffled "
                 "order, x gathered at ids_shuffle[:, :len_keep], so that the decoder's "
                 "unshuffle with ids_restore puts each one back in its place.")
        fail(f"x_kept's patches are not the first len_keep of the shuffle your ids_restore "
             f"describes (ids_shuffle = argsort(ids_restore)) {case}: compute x_kept, mask "
             f"and ids_restore from the same ids_shuffle. {MASKING_HINT}")
    if zero_sets == kept_sets:
        return
    if [_where(row) for row in mask == 1] == kept_sets:
        fail("mask uses 1 for kept patches; MAE's mask is 1 = removed, 0 = kept.")
    if zero_sets == _sets(ids_restore[:, :K]):
        fail("mask was put in order with ids_shuffle; use ids_restore (the inverse "
             "permutation) to bring it back to the patch order of x.")
    if all(s == set(range(K)) for s in zero_sets):
        fail("mask is in shuffled order, not the original patch order: its first len_keep "
             "entries are 0. Put it back in patch order with ids_restore, so that mask[n, l] "
             "says whether patch l of x was removed.")
    fail(f"mask should be 0. exactly at the patches x_kept holds and 1. at the "
         f"{L - K} others, in the patch order of x {case}; row 0 is {mask[0].tolist()} "
         f"while x_kept[0] holds patches {kept[0].tolist()}.")


def _check_uniform(fn, draws: int = 2000, L: int = 16, ratio: float = 0.75) -> None:
    """Over many draws every patch, and every pair of patches, is kept about as often as a
    uniform choice of len_keep of L patches gives (generous bounds; the draws are seeded)."""
    K = int(L * (1 - ratio))
    tokens = torch.arange(L, dtype=torch.float32).reshape(1, L, 1).expand(draws, L, 1)
    x_kept = _call_masking(fn, tokens.clone(), ratio, generator=torch.Generator().manual_seed(3))[0]
    kept = x_kept.detach()[..., 0].round().long()                   # the patch numbers kept
    hits = torch.zeros(draws, L).scatter_(1, kept, 1.0)
    if not bool((hits.sum(1) == K).all()):
        fail(f"random_masking(x of {L} numbered tokens, {ratio}) does not keep {K} different "
             f"patches of x in every sample.")
    freq = hits.mean(0)
    worst = int((freq - K / L).abs().argmax())
    if abs(float(freq[worst]) - K / L) > 0.05:
        fail(f"over {draws} seeded draws (L = {L}, mask_ratio = {ratio}) patch {worst} was kept "
             f"{float(freq[worst]):.0%} of the time instead of about len_keep / L = {K / L:.0%}: "
             f"every patch must be equally likely to be kept (argsort of uniform noise).")
    both = (hits.T @ hits / draws)[~torch.eye(L, dtype=torch.bool)]
    if float((both - K * (K - 1) / (L * (L - 1))).abs().max()) > 0.025:
        fail(f"over {draws} seeded draws some pairs of patches are kept together far more (or "
             f"less) often than a uniform choice of {K} of {L} patches gives: keep a uniformly "
             f"random subset (argsort of uniform noise), not a random block or stride.")


def check_random_masking(fn) -> None:
    """Check ``random_masking(x, mask_ratio, generator=None)`` by its properties."""
    what = "random_masking"
    N, L, D, ratio = 4, 16, 5, 0.75
    x = fixed_tensor(N, L, D)
    x_in = x.clone().requires_grad_(True)
    out = _call_masking(fn, x_in, ratio, generator=torch.Generator().manual_seed(0))
    if not torch.equal(x_in.detach(), x):
        fail(f"{what} changed x in place; gather into a new tensor.")
    _require_masking_types(out, N, L, D)

    got = []
    for L_case, ratio_case in LEN_KEEP_CASES:
        x_case = fixed_tensor(2, L_case, 3, phase=0.5)
        try:
            kept_case = _call_masking(fn, x_case, ratio_case,
                                      generator=torch.Generator().manual_seed(1))[0]
        except AssertionError:
            raise
        except Exception as error:   # name the case that made it crash
            extra = (" Here int(10 * (1 - 0.9)) = int(0.9999999999999998) = 0: no patch is "
                     "kept and x_kept has shape (N, 0, D); MAE's code handles that."
                     if (L_case, ratio_case) == (10, 0.9) else "")
            fail(f"{what}(x with L = {L_case}, mask_ratio={ratio_case}) raised "
                 f"{type(error).__name__}: {error}.{extra}")
        got.append(int(kept_case.shape[1]) if isinstance(kept_case, torch.Tensor) else -1)
    stored = TABLES["len_keep"]
    if got != stored["expected"]:
        table = ", ".join(f"L={c[0]}, ratio={c[1]}: {g} (expected {e})"
                          for c, g, e in zip(LEN_KEEP_CASES, got, stored["expected"]) if g != e)
        named = [message for counts, message in known(stored) if counts == got]
        why = f"{named[0]}; " if named else ""
        fail(f"{what} keeps the wrong number of patches ({table}): {why}MAE keeps exactly "
             f"len_keep = int(L * (1 - mask_ratio)), floating point included: "
             f"int(20 * (1 - 0.9)) = int(1.9999999999999996) = 1 and int(10 * (1 - 0.9)) = 0.")

    _check_consistency(x, out, ratio)
    x_kept, mask, ids_restore = out
    if all(torch.equal(row, ids_restore[0]) for row in ids_restore):
        fail("every sample of the batch got the same shuffle: draw one row of noise per sample, "
             "torch.rand(N, L), so that each image loses different patches.")
    require_grad(x_kept, f"{what}: x_kept")
    with quiet():
        x_kept.sum().backward()
    grad_rows = x_in.grad.abs().sum(-1) > 0 if x_in.grad is not None else None
    kept_rows = torch.zeros(N, L, dtype=torch.bool)
    kept_rows.scatter_(1, _rows_of(x_kept, x), True)
    if grad_rows is None or not torch.equal(grad_rows, kept_rows):
        fail("the gradient of x_kept.sum() should reach x at the kept patches (and only "
             "there): gather or index x itself, without detaching.")

    runs = [_call_masking(fn, x, ratio, generator=torch.Generator().manual_seed(seed))
            for seed in (7, 7, 8)]
    if not all(torch.equal(a, b) for a, b in zip(runs[0], runs[1])):
        fail("two calls with generators seeded alike gave different results: draw the noise "
             "with the generator you are given, torch.rand(N, L, generator=generator).")
    if torch.equal(runs[0][2], runs[2][2]):
        fail("generators with different seeds gave the same shuffle: draw the noise from "
             "the generator (do not reseed inside the function).")

    x1 = fixed_tensor(2, 9, 1, phase=3.0)
    out1 = _call_masking(fn, x1, 0.5)
    _require_masking_types(out1, 2, 9, 1)
    if out1[0].shape[1] != 4:
        fail(f"{what}(x of shape (2, 9, 1), 0.5) kept {out1[0].shape[1]} patches, expected "
             f"int(9 * 0.5) = 4.")
    _check_consistency(x1, out1, 0.5)
    if torch.equal(_call_masking(fn, x, ratio)[2], _call_masking(fn, x, ratio)[2]):
        fail(f"two calls of {what}(x, {ratio}) without a generator gave the same shuffle: with "
             f"generator=None, torch.rand draws from torch's global random numbers, a new "
             f"mask every call (never a fixed seed).")
    out64 = _call_masking(fn, x.double(), ratio, generator=torch.Generator().manual_seed(4))
    if not isinstance(out64[0], torch.Tensor) or out64[0].dtype != torch.float64:
        fail(f"x_kept of a float64 x is {getattr(out64[0], 'dtype', type(out64[0]))}: keep x's "
             f"dtype (x_kept holds x's tokens, unchanged).")
    _check_uniform(fn)
    passed(what, f"keeps int(L * (1 - mask_ratio)) patches ({len(LEN_KEEP_CASES)} cases), mask "
                 f"1 = removed in patch order, ids_restore inverts the shuffle, one shuffle "
                 f"per sample, generator honoured, every patch kept about equally often")


# ============================================================================ unshuffle


def _token_map(out: torch.Tensor, x_kept: torch.Tensor, mask_token: torch.Tensor) -> list:
    """For each output token: j when it equals x_kept[n, j], -1 for the mask token, -2 else."""
    index = _rows_of(out, x_kept)
    is_mask = (out.detach() == mask_token.detach().reshape(1, 1, -1)).all(-1)
    index[is_mask] = -1
    index[(index == -1) & ~is_mask] = -2
    return index.tolist()


def _show(row) -> str:
    return "[" + " ".join("M" if j == -1 else "?" if j == -2 else f"k{j}" for j in row) + "]"


def _check_unshuffle_edges(fn) -> None:
    """Every patch kept (no mask token), none kept, and float64 tokens."""
    what = "unshuffle"
    x_kept, token, ids_restore = all_kept_inputs()
    cases = {"every patch kept (len_keep = L)": (x_kept, ids_restore.clone()),
             "no patch kept (x_kept of shape (N, 0, D))": (torch.zeros(2, 0, 3),
                                                          torch.tensor([[1, 2, 0], [0, 2, 1]]))}
    outs = []
    for case, (kept, ids) in cases.items():
        try:
            with quiet():
                outs.append(fn(kept.clone(), token.clone(), ids))
        except Exception as error:   # name the case
            fail(f"{what} raised {type(error).__name__} with {case}: {error}. cat and gather "
                 f"handle empty parts; nothing needs a special case.")
    out, empty = outs
    require_tensor(out, f"{what} with every patch kept", shape=(1, 4, 3))
    right = TABLES["unshuffle_all_kept"]["expected"][0]
    if _token_map(out, x_kept, token) != right:
        fail(f"{what} with every patch kept (len_keep = L, no mask token) should be "
             f"{_show(right[0])}, got {_show(_token_map(out, x_kept, token)[0])} "
             f"(k<j> = x_kept[n, j]).")
    require_tensor(empty, f"{what} with no patch kept", shape=(2, 3, 3))
    if not torch.equal(empty.detach(), token.expand(2, 3, 3)):
        fail(f"{what} with no patch kept (x_kept of shape (N, 0, D)) should give the mask token "
             f"at every position.")
    try:
        with quiet():
            out64 = fn(x_kept.double(), token.double(), ids_restore.clone())
    except RuntimeError as error:
        fail(f"{what} of float64 tokens raised RuntimeError: {error}. Build every part from "
             f"the inputs (or with their dtype), not from float32 defaults.")
    if not isinstance(out64, torch.Tensor) or out64.dtype != torch.float64:
        fail(f"{what} of float64 tokens returned {getattr(out64, 'dtype', type(out64))}: keep "
             f"the tokens' dtype.")


def check_unshuffle(fn) -> None:
    """Check ``unshuffle(x_kept, mask_token, ids_restore)`` on two fixed cases."""
    what, stored = "unshuffle", TABLES["unshuffle"]
    for case, (x_kept, mask_token, ids_restore) in enumerate(unshuffle_inputs()):
        (N, _, D), L = x_kept.shape, ids_restore.shape[1]
        kept_in = x_kept.clone().requires_grad_(True)
        token_in = mask_token.clone().requires_grad_(True)
        with quiet():
            out = fn(kept_in, token_in, ids_restore.clone())
        label = (f"{what}(x_kept {tuple(x_kept.shape)}, mask_token (1, 1, {D}), "
                 f"ids_restore ({N}, {L}))")
        require_tensor(out, label, shape=(N, L, D),
                       hint="One token per patch: (N, L, D) with L = ids_restore.shape[1].")
        require_finite(out, label)
        got = _token_map(out, x_kept, mask_token)
        legend = "(k<j> = x_kept[n, j], M = the mask token)"
        if any(j == -2 for row in got for j in row):
            fail(f"{label}: some output tokens are neither kept tokens nor the mask token "
                 f"{_show(got[0])}: unshuffle only moves tokens and copies mask_token.")
        if got != stored["expected"][case]:
            for maps, message in known(stored, case):
                if got == maps:
                    fail(f"{what}: {message}")
            fail(f"{label}: sample 0 should be {_show(stored['expected'][case][0])}, got "
                 f"{_show(got[0])} {legend}. Append L - len_keep mask tokens after x_kept, then "
                 f"gather along dim 1 with ids_restore.")
        if case == 0:
            require_grad(out, what)
            with quiet():
                out.sum().backward()
            if kept_in.grad is None or not bool((kept_in.grad != 0).all()):
                fail(f"{what}: no gradient reached x_kept; keep it in the graph (no .detach(), "
                     f"no torch.no_grad()).")
            if token_in.grad is None or not bool((token_in.grad != 0).any()):
                fail(f"{what}: no gradient reached mask_token, a learned parameter: build the "
                     f"mask tokens from it (mask_token.repeat(N, L - len_keep, 1) or .expand), "
                     f"not from a copy or a new tensor.")
        if not (torch.equal(kept_in.detach(), x_kept) and torch.equal(token_in.detach(),
                                                                       mask_token)):
            fail(f"{what} changed its inputs in place; build a new tensor instead.")
    _check_unshuffle_edges(fn)
    passed(what, "mask tokens appended after the kept tokens, every token back at its patch "
                 "position (ids_restore), gradient reaches x_kept and mask_token; every patch "
                 "kept or none; dtype kept")


# ============================================================================ the loss


def _patchify_in_scope_passes(fn) -> bool:
    """False when the ``patchify`` that ``fn`` would call (its module's globals, i.e. the
    notebook's) exists and fails the patchify check; True otherwise."""
    patchify = getattr(fn, "__globals__", {}).get("patchify")
    if not callable(patchify):
        return True
    try:
        _check_patchify_only(patchify)
    except Exception:  # a CheckFailure, or the student's patchify crashing
        return False
    return True


def _check_loss_edges(fn) -> None:
    """A bfloat16 pred (autocast on a GPU) and low-contrast patches with norm_pix_loss."""
    what = "mae_loss"
    imgs, pred, mask, p = loss_inputs()
    try:
        with quiet():
            loss = fn(imgs.clone(), pred.bfloat16(), mask.clone(), p)
    except RuntimeError as error:
        fail(f"{what} with a bfloat16 pred (what the decoder gives under autocast on a GPU) "
             f"raised RuntimeError: {error}. Let (pred - target) promote to float32; do not "
             f"cast to pred's dtype before a matrix product.")
    require_tensor(loss, f"{what} with a bfloat16 pred", shape=())
    require_finite(loss, f"{what} with a bfloat16 pred")
    expected = TABLES["loss"]["expected"]
    if not close(loss, expected, rtol=2e-2, atol=1e-3):
        fail(f"{what} with a bfloat16 pred (what the decoder gives under autocast) is "
             f"{short(loss)}, far from {expected:.4f} in float32.")
    imgs, pred, mask, p = low_contrast_inputs()
    with quiet():
        loss = fn(imgs, pred, mask, p, norm_pix_loss=True)
    label = f"{what}(..., norm_pix_loss=True) of a low-contrast image with a flat patch"
    require_tensor(loss, label, shape=())
    require_finite(loss, label, hint="A flat patch has variance 0: the 1e-6 inside the square "
                                     "root, (var + 1e-6) ** 0.5, keeps the target finite (0).")
    stored = TABLES["loss_low_contrast"]
    diagnose(loss, stored["expected"], known(stored), label, rtol=2e-3, atol=1e-5,
             hint="target = (target - mean) / (var + 1e-6) ** 0.5 per patch.")


def check_mae_loss(fn) -> None:
    """Check ``mae_loss(imgs, pred, mask, patch_size, norm_pix_loss=False)`` on fixed inputs
    (it uses your patchify)."""
    what = "mae_loss"
    if not _patchify_in_scope_passes(fn):
        print("[skipped] mae_loss is not checked yet: the patchify it uses does not pass "
              "check_patchify. Fix exercise 1 first, then run this cell again. (The "
              "autograder grades mae_loss against a correct patchify and against yours, so "
              "a mistake there does not cost points here too.)")
        return
    imgs, pred, mask, p = loss_inputs()
    pred_in = pred.clone().requires_grad_(True)
    imgs_in, mask_in = imgs.clone(), mask.clone()
    with quiet():
        loss = fn(imgs_in, pred_in, mask_in, p)
    require_tensor(loss, f"{what}(...)")
    if loss.dtype != torch.float32:
        fail(f"{what} of float32 inputs returned {loss.dtype}: stay in float32 (no .double()).")
    if loss.dim() != 0:
        fail(f"{what} should return one number (a 0-dim tensor), got shape "
             f"{tuple(loss.shape)}: average the per-patch losses over the removed patches.")
    require_finite(loss, what)
    require_grad(loss, what)
    diagnose(loss, TABLES["loss"]["expected"], known(TABLES["loss"]),
             f"{what} (norm_pix_loss=False)",
             hint="target = patchify(imgs, patch_size); per patch the mean over the last "
                  "dimension of (pred - target) ** 2; then the mean over the removed patches. "
                  "(Does check_patchify pass? mae_loss uses your patchify.)")
    if not (torch.equal(imgs_in, imgs) and torch.equal(mask_in, mask)):
        fail(f"{what} changed imgs or mask in place; work on new tensors.")
    with quiet():
        loss.backward()
    grad = pred_in.grad.abs().sum(-1) if pred_in.grad is not None else torch.zeros(mask.shape)
    if not torch.equal(grad > 0, mask > 0):
        fail(f"the gradient w.r.t. pred should be non-zero on the removed patches only; it is "
             f"non-zero where {(grad > 0).int().tolist()} (mask {mask.int().tolist()}).")

    pred_in = pred.clone().requires_grad_(True)
    with quiet():
        loss = fn(imgs.clone(), pred_in, mask.clone(), p, norm_pix_loss=True)
    require_tensor(loss, f"{what}(..., norm_pix_loss=True)", shape=())
    require_finite(loss, f"{what}(..., norm_pix_loss=True)")
    require_grad(loss, f"{what}(..., norm_pix_loss=True)")
    diagnose(loss, TABLES["loss_norm"]["expected"], known(TABLES["loss_norm"]),
             f"{what} (norm_pix_loss=True)",
             hint="Normalise each target patch: mean and var over the last dimension "
                  "(keepdim=True), target = (target - mean) / (var + 1e-6) ** 0.5.")
    _check_loss_edges(fn)
    plain, normalised = TABLES["loss"]["expected"], TABLES["loss_norm"]["expected"]
    passed(what, f"{plain:.4f} (norm_pix_loss=False) and {normalised:.4f} (True) for the fixed "
                 f"inputs; mean over the removed patches only, per-patch normalised target "
                 f"(1e-6 inside the square root); float32, a bfloat16 pred works")


__all__ = ["all_kept_inputs", "check_mae_loss", "check_patchify", "check_random_masking",
           "check_unshuffle", "loss_inputs", "low_contrast_inputs", "patch_inputs",
           "unshuffle_inputs"]
