"""Grader of notebook 03 (MAE: patches, random masking, unshuffle, the loss).

Never released, never mounted in a sandbox. Every property draws its inputs from ``rng``
(fresh each run), calls the student's function in the scoring worker and checks the answer
against this module's own computation, written in NumPy from the text of the exercises:

* patchify: patch l = r * (W/p) + c holds the pixels of patch row r, patch column c; entry
  (i * p + j) * 3 + channel inside it (loops over the patches below, no reshape trick);
* random_masking: len_keep = int(L * (1 - mask_ratio)); mask 1 = removed, in patch order;
  ids_restore the inverse of the shuffle; x_kept = x at ids_shuffle[:, :len_keep]; uniform
  sampling without replacement, per sample, honouring the generator (statistics over many
  draws, never a particular seeded mask: a correct answer may shuffle another way);
* unshuffle: out[n, l] = the kept token of patch l, the mask token where l was removed;
* mae_loss: per-patch mean squared error averaged over the removed patches, the target
  optionally standardised per patch with the unbiased variance and 1e-6 inside the root.

mae_loss calls the student's patchify; a mistake there is exercise 1's alone, so each loss
property also accepts the loss computed against the target the student's own patchify gives
(of the right shape; with norm_pix_loss only if it holds imgs' numbers, moved, since any
normalisation of a constant target looks right). A patchify of the wrong shape, or one that
raises, still breaks the mae_loss that calls it: the worker cannot be handed a patchify of
the grader's.

Properties are kept apart: an answer is judged against its own count of kept patches and,
for the gradients, its own arrangement of tokens, so that one mistake costs the properties
it breaks and not the others.
"""
from __future__ import annotations

import numpy as np

from autograder.grader_tools import as_array, bf16, draw_seed, generator, put
from autograder.scoring import Property

# ============================================================================ helpers


def _kept(worker, name: str, what: str) -> dict:
    """Type, dtype and shape of a kept result that must be a torch tensor."""
    info = {"type": worker.get(name, "__class__.__qualname__")}
    module = worker.get(name, "__class__.__module__")
    if not (isinstance(module, str) and module.startswith("torch")
            and info["type"] in ("Tensor", "Parameter")):
        raise AssertionError(f"{what} should be a torch.Tensor, got {module}.{info['type']}")
    info["dtype"] = worker.get(name, "dtype")
    info["shape"] = tuple(worker.get(name, "shape"))
    return info


def _shape(value: np.ndarray, shape, what: str) -> None:
    if tuple(value.shape) != tuple(shape):
        raise AssertionError(f"{what} has shape {tuple(value.shape)}, expected {tuple(shape)}")


# ============================================================================ exercise 1
# the reference layout, patch by patch


def ref_patchify(imgs: np.ndarray, p: int) -> np.ndarray:
    N, C, H, W = imgs.shape
    h, w = H // p, W // p
    out = np.empty((N, h * w, p * p * C), dtype=imgs.dtype)
    for r in range(h):
        for c in range(w):
            block = imgs[:, :, r * p:(r + 1) * p, c * p:(c + 1) * p]     # (N, C, i, j)
            out[:, r * w + c] = block.transpose(0, 2, 3, 1).reshape(N, -1)  # (i, j, channel)
    return out


def ref_unpatchify(patches: np.ndarray, p: int, channels: int = 3) -> np.ndarray:
    N, L, _ = patches.shape
    h = w = int(round(L ** 0.5))
    imgs = np.empty((N, channels, h * p, w * p), dtype=patches.dtype)
    for l in range(L):
        r, c = divmod(l, w)
        block = patches[:, l].reshape(N, p, p, channels).transpose(0, 3, 1, 2)
        imgs[:, :, r * p:(r + 1) * p, c * p:(c + 1) * p] = block
    return imgs


def _layout_mistake(got: np.ndarray, imgs: np.ndarray, p: int) -> str:
    """Name the layout a wrong patchify output matches, if it is a known one."""
    N, C, H, W = imgs.shape
    h, w = H // p, W // p
    six = imgs.reshape(N, C, h, p, w, p)                   # (n, c, r, i, s, j)
    known = {
        "inside each patch the channel comes first, (c, i, j); MAE's layout is pixel row i, "
        "then pixel column j, then channel c":
            six.transpose(0, 2, 4, 1, 3, 5),
        "the patches are numbered column by column; MAE numbers them row by row "
        "(l = r * (W/p) + c)": six.transpose(0, 4, 2, 3, 5, 1),
        "inside each patch pixel rows and columns are swapped": six.transpose(0, 2, 4, 5, 3, 1),
        "a plain reshape moves numbers without moving them into patches":
            imgs.reshape(N, h * w, -1),
        "each 'patch' is a run of pixels along an image row, not a p x p square":
            imgs.transpose(0, 2, 3, 1).reshape(N, h * w, -1),
    }
    for words, layout in known.items():
        if got.shape == (N, h * w, p * p * C) and np.array_equal(got, layout.reshape(got.shape)):
            return f": {words}"
    return ""


def _patchify_case(worker, rng, N, h, p, dtype=np.float32):
    imgs = rng.standard_normal((N, 3, h * p, h * p)).astype(dtype)
    got = as_array(worker.call("patchify", imgs, p, as_torch=True), f"patchify(imgs, {p})")
    return imgs, got


def patchify_layout(worker, rng):
    cases = [(int(rng.integers(1, 4)), int(rng.integers(2, 6)), int(p)) for p in (2, 4)]
    cases.append((int(rng.integers(1, 4)), int(rng.integers(2, 5)), 3))   # an odd patch size
    rng.shuffle(cases)
    for N, h, p in cases:
        imgs, got = _patchify_case(worker, rng, N, h, p)
        H = h * p
        what = f"patchify(imgs of shape ({N}, 3, {H}, {H}), {p})"
        if got.shape == (N, p * p * 3, h * h) and h * h != p * p * 3:
            raise AssertionError(f"{what} has shape (N, p*p*3, L); MAE's is (N, L, p*p*3)")
        _shape(got, (N, h * h, p * p * 3), what)
        if not np.array_equal(got, ref_patchify(imgs, p)):
            raise AssertionError(f"{what} does not hold MAE's patches{_layout_mistake(got, imgs, p)}"
                                 f" (patch l = r * (W/p) + c, entry (i * p + j) * 3 + channel)")


def patchify_edge_sizes(worker, rng):
    H = int(rng.choice([4, 6, 8]))
    for p in (1, H):                                       # every pixel a patch; one patch
        imgs = rng.standard_normal((2, 3, H, H)).astype(np.float32)
        what = f"patchify(imgs (2, 3, {H}, {H}), {p})"
        got = as_array(worker.call("patchify", imgs, p, as_torch=True), what)
        _shape(got, (2, (H // p) ** 2, p * p * 3), what)
        if not np.array_equal(got, ref_patchify(imgs, p)):
            raise AssertionError(f"{what} is wrong for patch size {p}"
                                 + (" (every pixel is its own patch)" if p == 1
                                    else " (one patch: the whole image)"))
        what = f"unpatchify(patches (2, {(H // p) ** 2}, {p * p * 3}), {p})"
        back = as_array(worker.call("unpatchify", ref_patchify(imgs, p), p, as_torch=True), what)
        _shape(back, imgs.shape, what)
        if not np.array_equal(back, imgs):
            raise AssertionError(f"{what} does not give the image back for patch size {p}")


def unpatchify_inverse(worker, rng):
    for p in (2, int(rng.choice([3, 4]))):
        N, h = int(rng.integers(1, 4)), int(rng.integers(2, 6))
        imgs = rng.standard_normal((N, 3, h * p, h * p)).astype(np.float32)
        patches = ref_patchify(imgs, p)                    # MAE's layout of a random image
        what = f"unpatchify(patches of shape {patches.shape}, {p})"
        back = as_array(worker.call("unpatchify", patches, p, as_torch=True), what)
        _shape(back, imgs.shape, what)
        if not np.array_equal(back, imgs):
            raise AssertionError(f"{what} does not give the image back: it must be the exact "
                                 f"inverse of MAE's layout (patches row by row, each (i, j, c))")


def patchify_dtypes(worker, rng):
    imgs = rng.standard_normal((2, 3, 8, 8))                       # float64
    worker.call("patchify", imgs, 4, as_torch=True, keep="p64")
    info = _kept(worker, "p64", "patchify of a float64 image")
    if info["dtype"] != "torch.float64":
        raise AssertionError(f"patchify of a float64 image returned {info['dtype']}: keep the "
                             f"dtype (it only moves numbers)")
    worker.call("unpatchify", ref_patchify(imgs, 4), 4, as_torch=True, keep="u64")
    info = _kept(worker, "u64", "unpatchify of float64 patches")
    if info["dtype"] != "torch.float64":
        raise AssertionError(f"unpatchify of float64 patches returned {info['dtype']}: keep "
                             f"the dtype")
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    put(worker, "xb", x, cast="bfloat16")
    worker.call("patchify", worker.ref("xb"), 2, keep="pb")
    info = _kept(worker, "pb", "patchify of a bfloat16 image")
    if info["dtype"] != "torch.bfloat16":
        raise AssertionError(f"patchify of a bfloat16 image returned {info['dtype']}: keep the "
                             f"dtype")
    values = np.sort(as_array(worker.get("pb", ""), "patchify").ravel())
    if not np.array_equal(values, np.sort(bf16(x).ravel())):
        raise AssertionError("patchify of a bfloat16 image changed the values: it should only "
                             "move them")


def patchify_non_contiguous(worker, rng):
    """A channels-last image (a permuted view, as on the GPU): the same patches."""
    N, p = 2, int(rng.choice([2, 4]))
    imgs = rng.standard_normal((N, 3, 4 * p, 4 * p)).astype(np.float32)
    plain = as_array(worker.call("patchify", imgs, p, as_torch=True), "patchify(imgs)")
    if not np.array_equal(np.sort(plain.ravel()), np.sort(imgs.ravel())):
        raise AssertionError("patchify(imgs) does not hold imgs' numbers: it should only move "
                             "them")
    put(worker, "nhwc", imgs.transpose(0, 2, 3, 1))
    worker.call("permute", 0, 3, 1, 2, on="nhwc", keep="view")    # (N, 3, H, W), not contiguous
    got = as_array(worker.call("patchify", worker.ref("view"), p), "patchify of a permuted view")
    if not (got.shape == plain.shape and np.array_equal(got, plain)):
        raise AssertionError("patchify of a channels-last (non-contiguous) image differs from "
                             "patchify of the same image stored contiguously: use reshape, not "
                             "view, and never rely on the memory order of imgs")


def patchify_gradient(worker, rng):
    N, p = int(rng.integers(1, 3)), 2
    imgs = rng.standard_normal((N, 3, 6, 6)).astype(np.float32)
    put(worker, "gx", imgs, requires_grad=True)
    worker.call("patchify", worker.ref("gx"), p, keep="gout")
    _kept(worker, "gout", "patchify(imgs, p)")
    if not worker.get("gout", "requires_grad"):
        raise AssertionError("patchify's output does not depend on imgs in autograd's eyes: "
                             "no .detach(), .numpy() or new tensors inside")
    shape = tuple(worker.get("gout", "shape"))
    weights = rng.standard_normal(shape).astype(np.float32)
    out = as_array(worker.get("gout", ""), "patchify(imgs, p)")
    worker.call("mul", weights, on="gout", as_torch=True, keep="gprod")
    worker.call("sum", on="gprod", keep="gsum")
    worker.call("backward", on="gsum")
    grad = worker.get("gx", "grad")
    if not isinstance(grad, np.ndarray) or grad.shape != imgs.shape:
        raise AssertionError("no gradient reached imgs through patchify")
    # patchify only moves numbers: its gradient moves the weights back, one to one
    if not (np.array_equal(np.sort(grad.ravel()), np.sort(weights.ravel()))
            and np.isclose(float((grad.astype(np.float64) * imgs).sum()),
                           float((weights.astype(np.float64) * out).sum()),
                           rtol=1e-4, atol=1e-4)):
        raise AssertionError("the gradient through patchify is not the gradient of a "
                             "rearrangement of imgs")


# ============================================================================ exercise 2


def len_keep(L: int, ratio: float) -> int:
    return int(L * (1 - ratio))                           # the text's formula, floats included


def _masking(worker, x, ratio, seed=None, name="gen"):
    kwargs = {"generator": generator(worker, name, seed)} if seed is not None else {}
    out = worker.call("random_masking", x, ratio, as_torch=True, **kwargs)
    if not isinstance(out, list) or len(out) != 3:
        raise AssertionError("random_masking should return a tuple (x_kept, mask, ids_restore)")
    return [as_array(v, n) for v, n in zip(out, ("x_kept", "mask", "ids_restore"))]


def _tokens(N: int, L: int) -> np.ndarray:
    """x of shape (N, L, 1) whose token l is the number l: x_kept names the kept patches."""
    return np.broadcast_to(np.arange(L, dtype=np.float32)[None, :, None], (N, L, 1)).copy()


def _kept_patches(x_kept: np.ndarray, L: int, K: int, what: str) -> np.ndarray:
    """The patch indices an x_kept of _tokens holds, each row K distinct patches."""
    if x_kept.shape[1:] != (K, 1):
        raise AssertionError(f"{what}: x_kept has shape {x_kept.shape}, expected (N, {K}, 1)")
    kept = np.rint(x_kept[..., 0]).astype(np.int64)
    if not np.array_equal(kept, x_kept[..., 0]) or kept.min(initial=0) < 0 or \
            kept.max(initial=0) >= L or any(len(set(row)) != K for row in kept.tolist()):
        raise AssertionError(f"{what}: x_kept should hold {K} different patches of x, unchanged")
    return kept


def _require_tokens(x: np.ndarray, x_kept: np.ndarray, what: str) -> None:
    """x_kept's rows are different tokens of the same sample of x, unchanged."""
    rows = _kept_rows(x, x_kept.astype(x.dtype)) if x_kept.shape[1:] and x_kept.shape[0] == len(x) \
        and x_kept.shape[-1] == x.shape[-1] else None
    if rows is None or any(len(set(r)) != len(r) for r in rows.tolist()):
        raise AssertionError(f"x_kept {what} should hold different tokens of the same sample of "
                             f"x, unchanged")


def masking_types(worker, rng):
    N, L, D = int(rng.integers(2, 5)), 16, int(rng.integers(2, 6))
    x = rng.standard_normal((N, L, D)).astype(np.float32)
    put(worker, "mx", x)
    worker.call("random_masking", worker.ref("mx"), 0.75,
                generator=generator(worker, "mg", draw_seed(rng)), keep="mout")
    if worker.get("mout", "__class__.__qualname__") not in ("tuple", "list") or \
            worker.call("__len__", on="mout") != 3:
        raise AssertionError("random_masking should return a tuple (x_kept, mask, ids_restore)")
    for i, name in enumerate(("x_kept", "mask", "ids_restore")):
        worker.call("__getitem__", i, on="mout", keep=f"mout{i}")
    kept, mask, ids = (_kept(worker, f"mout{i}", n)
                       for i, n in enumerate(("x_kept", "mask", "ids_restore")))
    if kept["shape"] != (N, 4, D):
        raise AssertionError(f"x_kept has shape {kept['shape']} for x of shape {x.shape} and "
                             f"mask_ratio 0.75; expected (N, len_keep, D)")
    if kept["dtype"] != "torch.float32":
        raise AssertionError(f"x_kept is {kept['dtype']} for a float32 x: keep x's dtype")
    _require_tokens(x, as_array(worker.get("mout0", ""), "x_kept"), f"for x of shape {x.shape}")
    if mask["shape"] != (N, L) or mask["dtype"] not in ("torch.float32", "torch.float64",
                                                        "torch.float16", "torch.bfloat16"):
        raise AssertionError(f"mask should be a float tensor of shape (N, L); got "
                             f"{mask['dtype']} of shape {mask['shape']}")
    if ids["shape"] != (N, L) or ids["dtype"] != "torch.int64":
        raise AssertionError(f"ids_restore should be an int64 tensor of shape (N, L); got "
                             f"{ids['dtype']} of shape {ids['shape']}")
    x64 = rng.standard_normal((3, 16, 1))
    put(worker, "mx64", x64)
    worker.call("random_masking", worker.ref("mx64"), 0.5, keep="mout64")
    worker.call("__getitem__", 0, on="mout64", keep="mk64")
    if _kept(worker, "mk64", "x_kept")["dtype"] != "torch.float64":
        raise AssertionError("x_kept of a float64 x is not float64: keep x's dtype")


LEN_KEEP_CASES = [(20, 0.9), (10, 0.9), (64, 0.75), (49, 0.75), (10, 0.7), (100, 0.7),
                  (16, 0.0), (16, 0.5), (3, 0.5), (64, 0.95), (10, 0.3)]


def masking_len_keep(worker, rng):
    cases = list(LEN_KEEP_CASES)
    cases += [(int(rng.integers(5, 90)), float(r)) for r in rng.choice(
        [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9], size=3, replace=False)]
    wrong = []
    for L, ratio in cases:
        N, D = 2, int(rng.integers(1, 4))
        x = rng.standard_normal((N, L, D)).astype(np.float32)
        try:
            x_kept = _masking(worker, x, ratio, draw_seed(rng))[0]
        except Exception as error:
            raise AssertionError(f"random_masking(x with L = {L}, mask_ratio={ratio}) failed "
                                 f"({str(error)[:200]}); len_keep = int(L * (1 - mask_ratio)) "
                                 f"is {len_keep(L, ratio)} there") from None
        if x_kept.ndim != 3 or x_kept.shape[0] != N or x_kept.shape[2] != D:
            raise AssertionError(f"x_kept has shape {x_kept.shape} for x of shape {x.shape}")
        if x_kept.shape[1] and x_kept.shape[1] <= L:
            _require_tokens(x, x_kept, f"for L = {L}, mask_ratio = {ratio}")
        if x_kept.shape[1] != len_keep(L, ratio):
            wrong.append(f"L = {L}, mask_ratio = {ratio}: kept {x_kept.shape[1]}, "
                         f"int(L * (1 - mask_ratio)) = {len_keep(L, ratio)}")
    if wrong:
        raise AssertionError("the number of kept patches should be len_keep = int(L * (1 - "
                             "mask_ratio)), floating point included: " + "; ".join(wrong[:3]))


def _random_case(rng, ratios=(0.25, 0.5, 0.6, 0.75, 0.9)):
    """Random tokens and a ratio that keeps at least 4 patches, so that the order of x_kept
    tells (the edge cases of the count have their own property)."""
    while True:
        N, L, D = int(rng.integers(2, 6)), int(rng.integers(10, 49)), int(rng.integers(1, 7))
        ratio = float(rng.choice(ratios))
        if len_keep(L, ratio) >= 4:
            return rng.standard_normal((N, L, D)).astype(np.float32), ratio


def _kept_rows(x: np.ndarray, x_kept: np.ndarray) -> np.ndarray | None:
    """For each row of x_kept the patch of x (same sample) it equals, or None if one is not."""
    same = (x_kept[:, :, None, :] == x[:, None, :, :]).all(-1)     # (N, K, L)
    if not same.any(-1).all():
        return None
    return same.argmax(-1)


def _own_count(x_kept: np.ndarray, x: np.ndarray, what: str) -> int:
    """The number of patches this answer keeps (its count is graded by its own property)."""
    N, L, D = x.shape
    if x_kept.ndim != 3 or x_kept.shape[0] != N or x_kept.shape[2] != D or x_kept.shape[1] > L:
        raise AssertionError(f"x_kept has shape {x_kept.shape} {what}; expected (N, len_keep, "
                             f"D)")
    return int(x_kept.shape[1])


def masking_x_kept(worker, rng):
    for _ in range(2):
        x, ratio = _random_case(rng)
        N, L, D = x.shape
        x_kept, _, ids = _masking(worker, x, ratio, draw_seed(rng))
        what = f"(x of shape {x.shape}, mask_ratio={ratio})"
        K = _own_count(x_kept, x, what)
        _shape(ids, (N, L), f"ids_restore {what}")
        if not all(sorted(row) == list(range(L)) for row in ids.astype(np.int64).tolist()):
            raise AssertionError(f"each row of ids_restore should be a permutation of 0..L-1 "
                                 f"{what}")
        ids_shuffle = np.argsort(ids.astype(np.int64), axis=1)      # the inverse permutation
        expected = np.take_along_axis(x, ids_shuffle[:, :K, None], axis=1)
        if np.array_equal(x_kept, expected):
            continue
        rows = _kept_rows(x, x_kept)
        if rows is None:
            raise AssertionError(f"x_kept holds tokens that are not tokens of the same sample "
                                 f"of x {what}: gather the tokens themselves, unchanged")
        if np.array_equal(rows, ids.astype(np.int64)[:, :K]):
            raise AssertionError("x_kept holds x at ids_restore[:, :len_keep]; keep x at "
                                 "ids_shuffle[:, :len_keep], ids_shuffle = argsort(noise) (the "
                                 "inverse of ids_restore)")
        if all(set(a) == set(b) for a, b in zip(rows.tolist(), ids_shuffle[:, :K].tolist())):
            raise AssertionError("x_kept holds the right tokens in another order: keep them in "
                                 "the shuffled order, x at ids_shuffle[:, :len_keep]")
        raise AssertionError(f"x_kept is not x at ids_shuffle[:, :len_keep] for the shuffle "
                             f"your ids_restore describes (ids_shuffle = argsort(ids_restore)) "
                             f"{what}")


def masking_mask(worker, rng):
    for _ in range(2):
        x, ratio = _random_case(rng)
        N, L, D = x.shape
        x_kept, mask, ids = _masking(worker, x, ratio, draw_seed(rng))
        K = _own_count(x_kept, x, f"(x of shape {x.shape}, mask_ratio={ratio})")
        _shape(mask, (N, L), "mask")
        rows = _kept_rows(x, x_kept)
        if rows is not None and all(len(set(r)) == K for r in rows.tolist()):
            kept = np.zeros((N, L), bool)
            np.put_along_axis(kept, rows, True, axis=1)
        elif ids.shape == (N, L) and all(sorted(row) == list(range(L))
                                         for row in ids.astype(np.int64).tolist()):
            kept = ids.astype(np.int64) < K                 # x_kept unusable: ids_restore's shuffle
        else:
            raise AssertionError("neither x_kept nor ids_restore says which patches were kept")
        expected = (~kept).astype(np.float64)
        if np.array_equal(mask.astype(np.float64), expected):
            continue
        if np.array_equal(mask.astype(np.float64), 1 - expected):
            raise AssertionError("mask is 1 at the kept patches; MAE's mask is 1 = removed, "
                                 "0 = kept")
        if np.array_equal(mask.astype(np.float64), np.broadcast_to(np.arange(L) >= K, (N, L))):
            raise AssertionError("mask is in shuffled order (its first len_keep entries are 0): "
                                 "put it back in the patch order of x with ids_restore")
        raise AssertionError("mask should be 1. exactly at the removed patches and 0. at the "
                             "kept ones (those in x_kept), in the patch order of x")


def masking_generator(worker, rng):
    x, ratio = _random_case(rng, ratios=(0.5, 0.75))
    seed = draw_seed(rng)
    a = _masking(worker, x, ratio, seed, name="ga")
    b = _masking(worker, x, ratio, seed, name="gb")
    if not all(u.shape == v.shape and np.array_equal(u, v) for u, v in zip(a, b)):
        raise AssertionError("two generators seeded alike gave different results: draw the "
                             "randomness from the generator you are given (and only from it)")
    c = _masking(worker, x, ratio, seed + 1, name="gc")
    if np.array_equal(a[2], c[2]):
        raise AssertionError("generators with different seeds gave the same shuffle: use the "
                             "generator (do not reseed inside the function)")


def masking_per_sample_and_call(worker, rng):
    N, L = 8, 64
    x = _tokens(N, L)
    for seed in (draw_seed(rng), None):
        x_kept = _masking(worker, x, 0.75, seed)[0]
        kept = _kept_patches(x_kept, L, 16, "random_masking(x (8, 64, 1), 0.75)")
        if len({frozenset(row) for row in kept.tolist()}) < N:
            raise AssertionError("samples of one batch got the same kept patches: draw one "
                                 "shuffle per sample (noise of shape (N, L))")
    first = _masking(worker, x, 0.75)[0]
    second = _masking(worker, x, 0.75)[0]
    if np.array_equal(first, second):
        raise AssertionError("two calls without a generator gave the same mask: without a "
                             "generator, draw from torch's global random numbers (generator="
                             "None), never a fixed seed")


# draws, L, mask_ratio, and the bounds on the frequency of each patch and of each pair (at
# least 5 standard deviations of a right answer's frequencies: tests/unit/autograder/graders/test_grader_mae.py)
UNIFORM_CASES = [(4000, 16, 0.75, 0.04, 0.02), (3000, 10, 0.5, 0.05, 0.04)]


def masking_uniform(worker, rng):
    """Sampling without replacement, uniform over patches and pairs of patches."""
    for N, L, ratio, tol, pair_tol in UNIFORM_CASES:
        x_kept = _masking(worker, _tokens(N, L), ratio, draw_seed(rng))[0]
        K = x_kept.shape[1] if x_kept.ndim == 3 and 0 < x_kept.shape[1] < L else len_keep(L, ratio)
        kept = _kept_patches(x_kept, L, K, f"random_masking(x ({N}, {L}, 1), {ratio})")
        hits = np.zeros((N, L))
        np.put_along_axis(hits, kept, 1.0, axis=1)
        freq = hits.mean(0)
        if np.abs(freq - K / L).max() > tol:
            worst = int(np.abs(freq - K / L).argmax())
            raise AssertionError(f"over {N} draws (L = {L}, mask_ratio = {ratio}) patch {worst} "
                                 f"was kept {freq[worst]:.1%} of the time, far from len_keep / L "
                                 f"= {K / L:.1%}: every patch must be equally likely to be kept")
        pairs = hits.T @ hits / N                          # P(both l and m kept)
        both = K * (K - 1) / (L * (L - 1))
        off = ~np.eye(L, dtype=bool)
        if np.abs(pairs[off] - both).max() > pair_tol:
            raise AssertionError(f"over {N} draws some pairs of patches are kept together far "
                                 f"more or less often than a uniform choice of {K} of {L} "
                                 f"gives: draw a uniformly random subset per sample")


def masking_gradient(worker, rng):
    N, L, D = 2, 16, int(rng.integers(2, 6))
    x = rng.standard_normal((N, L, D)).astype(np.float32)
    put(worker, "gx", x, requires_grad=True)
    worker.call("random_masking", worker.ref("gx"), 0.75,
                generator=generator(worker, "gg", draw_seed(rng)), keep="gout")
    worker.call("__getitem__", 0, on="gout", keep="gkept")
    if not worker.get("gkept", "requires_grad"):
        raise AssertionError("x_kept does not depend on x in autograd's eyes: gather or index "
                             "x itself, without detaching")
    x_kept = as_array(worker.get("gkept", ""), "x_kept")
    worker.call("sum", on="gkept", keep="gsum")
    worker.call("backward", on="gsum")
    grad = worker.get("gx", "grad")
    rows = _kept_rows(x, x_kept)
    if rows is None:
        raise AssertionError("x_kept holds tokens that are not tokens of x")
    expected = np.zeros((N, L, D), np.float32)
    np.put_along_axis(expected, rows[..., None].repeat(D, -1), 1.0, axis=1)
    if not isinstance(grad, np.ndarray) or not np.array_equal(grad, expected):
        raise AssertionError("the gradient of x_kept.sum() should be 1 at x's kept tokens and 0 "
                             "at the removed ones")
    if not np.array_equal(worker.get("gx", ""), x):
        raise AssertionError("random_masking changed x in place")


# ============================================================================ exercise 3


def _shuffle(rng, L: int) -> np.ndarray:
    """A random permutation that is not its own inverse, so that using ids_restore where
    ids_shuffle belongs (and the reverse) always shows."""
    while True:
        order = rng.permutation(L)
        if not np.array_equal(np.argsort(order), order):
            return order


def _unshuffle_case(rng, N, L, K, D, dtype=np.float32):
    ids_shuffle = np.stack([_shuffle(rng, L) for _ in range(N)])
    ids_restore = np.argsort(ids_shuffle, axis=1).astype(np.int64)
    x = rng.standard_normal((N, L, D)).astype(dtype)           # the tokens in patch order
    x_kept = np.take_along_axis(x, ids_shuffle[:, :K, None], axis=1)
    token = rng.standard_normal((1, 1, D)).astype(dtype)
    removed = np.ones((N, L), bool)
    np.put_along_axis(removed, ids_shuffle[:, :K], False, axis=1)
    expected = np.where(removed[..., None], token, x)
    return x_kept, token, ids_restore, removed, expected


def _unshuffle(worker, x_kept, token, ids_restore):
    what = f"unshuffle(x_kept {x_kept.shape}, mask_token {token.shape}, ids_restore {ids_restore.shape})"
    out = as_array(worker.call("unshuffle", x_kept, token, ids_restore, as_torch=True), what)
    N, L = ids_restore.shape
    _shape(out, (N, L, x_kept.shape[2]), what)
    return out


def _random_unshuffle(rng):
    N, L, D = int(rng.integers(1, 5)), int(rng.integers(5, 40)), int(rng.integers(1, 9))
    return N, L, int(rng.integers(1, L)), D


def _arrangement(out, x_kept, token):
    """Where each output token comes from: j for x_kept[n, j], -1 for the mask token; None
    unless the output holds every kept token once and the mask token L - len_keep times."""
    N, K, D = x_kept.shape
    L = out.shape[1]
    source = np.full((N, L), -2)
    for n in range(N):
        for j in range(K):
            source[n][(out[n] == x_kept[n, j]).all(-1)] = j
        source[n][(out[n] == token.reshape(-1)).all(-1)] = -1
    for n in range(N):
        if sorted(source[n].tolist()) != [-1] * (L - K) + list(range(K)):
            return None
    return source


def unshuffle_kept_tokens(worker, rng):
    for _ in range(2):
        x_kept, token, ids, removed, expected = _unshuffle_case(rng, *_random_unshuffle(rng))
        out = _unshuffle(worker, x_kept, token, ids)
        if not np.array_equal(out[~removed], expected[~removed]):
            inverse = np.take_along_axis(np.concatenate(
                [x_kept, np.broadcast_to(token, (len(ids), ids.shape[1] - x_kept.shape[1],
                                                 token.shape[2]))], 1),
                np.argsort(ids, 1)[..., None], axis=1)
            if np.array_equal(out, inverse):
                raise AssertionError("the tokens went through the inverse permutation: output "
                                     "position l takes the token at shuffled position "
                                     "ids_restore[:, l]")
            raise AssertionError("a kept token is not back at its patch: output position l "
                                 "should hold the token at shuffled position ids_restore[:, l] "
                                 "(the kept tokens are the first len_keep shuffled positions, "
                                 "the mask tokens come after them)")


def unshuffle_mask_token(worker, rng):
    for _ in range(2):
        x_kept, token, ids, removed, expected = _unshuffle_case(rng, *_random_unshuffle(rng))
        out = _unshuffle(worker, x_kept, token, ids)
        if not np.array_equal(out[removed], expected[removed]):
            raise AssertionError("a removed patch's position does not hold the mask token "
                                 "(one copy of mask_token per removed patch, unchanged)")
        if (out[~removed] == token.reshape(1, -1)).all(-1).any():
            raise AssertionError("a kept patch's position holds the mask token: only the removed "
                                 "patches get it")


def unshuffle_edges(worker, rng):
    N, L, D = int(rng.integers(1, 4)), int(rng.integers(4, 20)), int(rng.integers(1, 6))
    for K, words in ((L, "every patch kept (no mask token)"), (0, "no patch kept")):
        x_kept, token, ids, removed, expected = _unshuffle_case(rng, N, L, K, D)
        try:
            out = _unshuffle(worker, x_kept, token, ids)
        except AssertionError:
            raise
        except Exception as error:
            raise AssertionError(f"unshuffle failed with {words}: {str(error)[:200]}") from None
        if not np.array_equal(out, expected):
            raise AssertionError(f"unshuffle is wrong with {words}")


def unshuffle_gradient(worker, rng):
    N, L, K, D = _random_unshuffle(rng)
    x_kept, token, ids, removed, _ = _unshuffle_case(rng, N, L, K, D)
    put(worker, "uk", x_kept, requires_grad=True)
    worker.call("torch.nn.Parameter", token, as_torch=True, keep="ut")
    worker.call("unshuffle", worker.ref("uk"), worker.ref("ut"), ids, as_torch=True, keep="uout")
    _kept(worker, "uout", "unshuffle's output")
    if not worker.get("uout", "requires_grad"):
        raise AssertionError("unshuffle's output does not depend on x_kept and mask_token in "
                             "autograd's eyes")
    weights = rng.standard_normal((N, L, D)).astype(np.float32)
    worker.call("mul", weights, on="uout", as_torch=True, keep="uprod")
    worker.call("sum", on="uprod", keep="usum")
    worker.call("backward", on="usum")
    # the gradient of what this answer computed: where it put each token (its placement is
    # graded by the properties above), else where the tokens belong
    source = _arrangement(as_array(worker.get("uout", ""), "unshuffle's output"), x_kept, token)
    if source is None:
        source = np.full((N, L), -1)
        np.put_along_axis(source, np.argsort(ids, axis=1)[:, :K], np.arange(K)[None], axis=1)
    want = np.stack([np.stack([weights[n][source[n] == j].sum(0) for j in range(K)])
                     for n in range(N)])
    grad_kept = worker.get("uk", "grad")
    if not isinstance(grad_kept, np.ndarray) or not np.allclose(grad_kept, want, atol=1e-5):
        raise AssertionError("the gradient does not reach each kept token from where it sits in "
                             "the output: keep x_kept in the graph (cat and gather, or scatter)")
    grad_token = worker.get("ut", "grad")
    want = weights[source == -1].sum(0).reshape(1, 1, D)
    if not isinstance(grad_token, np.ndarray) or not np.allclose(grad_token, want,
                                                                 rtol=1e-4, atol=1e-4):
        raise AssertionError("the gradient of mask_token should be the sum over every removed "
                             "position: build the mask tokens from mask_token itself (expand or "
                             "repeat), not from a copy or a new tensor")


def unshuffle_dtype_and_inputs(worker, rng):
    N, L, K, D = _random_unshuffle(rng)
    x_kept, token, ids, removed, expected = _unshuffle_case(rng, N, L, K, D, dtype=np.float64)
    put(worker, "dk", x_kept)
    put(worker, "dt", token)
    put(worker, "di", ids)
    worker.call("unshuffle", worker.ref("dk"), worker.ref("dt"), worker.ref("di"), keep="dout")
    info = _kept(worker, "dout", "unshuffle's output")
    if info["dtype"] != "torch.float64":
        raise AssertionError(f"unshuffle of float64 tokens returned {info['dtype']}: keep the "
                             f"tokens' dtype")
    if _arrangement(as_array(worker.get("dout", ""), "unshuffle's output"), x_kept, token) is None:
        raise AssertionError("unshuffle of float64 tokens should hold every kept token once and "
                             "the mask token at the other positions, all unchanged")
    if not (np.array_equal(worker.get("dk", ""), x_kept) and
            np.array_equal(worker.get("dt", ""), token) and
            np.array_equal(worker.get("di", ""), ids)):
        raise AssertionError("unshuffle changed its inputs in place")


# ============================================================================ exercise 4


def ref_target(imgs: np.ndarray, p: int, norm: bool) -> np.ndarray:
    target = ref_patchify(imgs.astype(np.float64), p)
    if norm:
        mean = target.mean(-1, keepdims=True)
        var = target.var(-1, ddof=1, keepdims=True)              # unbiased, as torch.var
        target = (target - mean) / np.sqrt(var + 1e-6)
    return target


def ref_loss(target: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> float:
    per_patch = ((pred.astype(np.float64) - target) ** 2).mean(-1)     # (N, L)
    return float((per_patch * mask).sum() / mask.sum())


def _normalise(target: np.ndarray) -> np.ndarray:
    mean = target.mean(-1, keepdims=True)
    return (target - mean) / np.sqrt(target.var(-1, ddof=1, keepdims=True) + 1e-6)


def _candidate_targets(worker, imgs, p, norm):
    """The right target and, where it differs by a layout mistake, the one the student's own
    patchify gives."""
    targets = [ref_target(imgs, p, norm)]
    try:
        own = worker.call("patchify", imgs, p, as_torch=True)
    except Exception:                                    # a broken patchify: exercise 1's loss
        return targets
    # normalising needs real patches: with norm_pix_loss, only a layout mistake counts (the
    # student's patches hold imgs' numbers, moved), or a constant target would make any
    # normalisation look right
    moved = isinstance(own, np.ndarray) and \
        np.array_equal(np.sort(own.ravel()), np.sort(imgs.ravel()))
    if isinstance(own, np.ndarray) and own.shape == targets[0].shape and \
            (moved or not norm) and not np.array_equal(own, ref_patchify(imgs, p)):
        own = own.astype(np.float64)
        targets.append(_normalise(own) if norm else own)
    return targets


def _loss_case(rng):
    N, p = int(rng.integers(1, 4)), int(rng.choice([2, 4]))
    h = int(rng.integers(2, 5))
    L = h * h
    imgs = rng.standard_normal((N, 3, h * p, h * p)).astype(np.float32)
    pred = rng.standard_normal((N, L, p * p * 3)).astype(np.float32)
    mask = (rng.random((N, L)) < 0.6).astype(np.float32)
    removed, visible = rng.choice(mask.size, size=2, replace=False)
    mask.flat[removed], mask.flat[visible] = 1.0, 0.0       # some of each
    return imgs, pred, mask, p


def _loss_value(worker, imgs, pred, mask, p, norm, what):
    value = worker.call("mae_loss", imgs, pred, mask, p, norm_pix_loss=norm, as_torch=True)
    if isinstance(value, np.ndarray) and value.size == 1:
        value = float(value.reshape(()))
    if not isinstance(value, float):
        raise AssertionError(f"{what} should return a 0-dim tensor, got "
                             f"{getattr(value, 'shape', type(value).__name__)}")
    return value


def _matches(value, expected: list[float], rtol=1e-4) -> bool:
    return any(np.isfinite(value) and abs(value - e) <= rtol * max(1.0, abs(e)) for e in expected)


LOSS_HINT = ("per patch the mean over its p*p*3 values of (pred - target) ** 2, then the mean "
             "over the removed patches only: (loss * mask).sum() / mask.sum()")


def _loss_mistake(value, targets, pred, mask) -> str:
    for target in targets:
        per_patch = ((pred.astype(np.float64) - target) ** 2)
        known = {"averaged over all patches, the visible ones included": per_patch.mean(),
                 "averaged over the visible patches": float(
                     (per_patch.mean(-1) * (1 - mask)).sum() / max((1 - mask).sum(), 1)),
                 "each patch's error is a sum over its values, not a mean":
                     float((per_patch.sum(-1) * mask).sum() / mask.sum()),
                 "divided by the number of all patches, not of the removed ones":
                     float((per_patch.mean(-1) * mask).mean())}
        for words, loss in known.items():
            if _matches(value, [loss]):
                return f": {words}"
    return ""


def loss_values(worker, rng):
    for _ in range(2):
        imgs, pred, mask, p = _loss_case(rng)
        targets = _candidate_targets(worker, imgs, p, False)
        what = f"mae_loss(imgs {imgs.shape}, pred {pred.shape}, mask, {p})"
        value = _loss_value(worker, imgs, pred, mask, p, False, what)
        if not _matches(value, [ref_loss(t, pred, mask) for t in targets]):
            raise AssertionError(f"{what} is wrong{_loss_mistake(value, targets, pred, mask)} "
                                 f"({LOSS_HINT})")


def loss_scalar_and_dtype(worker, rng):
    imgs, pred, mask, p = _loss_case(rng)
    worker.call("mae_loss", imgs, pred, mask, p, as_torch=True, keep="l32")
    info = _kept(worker, "l32", "mae_loss(...)")
    if info["shape"] != ():
        raise AssertionError(f"mae_loss should return a 0-dim tensor, got shape {info['shape']}")
    if info["dtype"] != "torch.float32":
        raise AssertionError(f"mae_loss of float32 inputs returned {info['dtype']}: stay in "
                             f"float32")
    put(worker, "lp32", pred, requires_grad=True)
    worker.call("mae_loss", imgs, worker.ref("lp32"), mask, p, as_torch=True, keep="lg32")
    if not worker.get("lg32", "requires_grad"):
        raise AssertionError("mae_loss's tensor does not depend on pred in autograd's eyes")
    # a bfloat16 prediction, as the decoder gives under autocast on a GPU: finite, and the
    # loss this mae_loss gives for the same (rounded) values in float32
    rounded = bf16(pred)
    put(worker, "lpb", pred, cast="bfloat16")
    value = worker.call("mae_loss", imgs, worker.ref("lpb"), mask, p, as_torch=True)
    value = float(np.asarray(value).reshape(())) if np.size(value) == 1 else None
    same = _loss_value(worker, imgs, rounded, mask, p, False, "mae_loss(...)")
    if value is None or not np.isfinite(value) or not _matches(value, [same], rtol=2e-2):
        raise AssertionError("mae_loss of a bfloat16 pred (as under autocast) is not finite, or "
                             "far from its value for the same pred in float32")


def loss_norm_pix(worker, rng):
    for every in (True, False):
        imgs, pred, mask, p = _loss_case(rng)
        if every:              # every patch removed: the normalisation alone, whatever the mean
            mask[:] = 1.0
        targets = _candidate_targets(worker, imgs, p, True)
        what = f"mae_loss(imgs {imgs.shape}, pred, mask, {p}, norm_pix_loss=True)"
        put(worker, "nimgs", imgs)
        put(worker, "nmask", mask)
        value = worker.call("mae_loss", worker.ref("nimgs"), pred, worker.ref("nmask"), p,
                            norm_pix_loss=True, as_torch=True)
        value = float(np.asarray(value).reshape(())) if np.size(value) == 1 else None
        if value is None:
            raise AssertionError(f"{what} should return a 0-dim tensor")
        if _matches(value, [ref_loss(t, pred, mask) for t in targets]):
            if not (np.array_equal(worker.get("nimgs", ""), imgs)
                    and np.array_equal(worker.get("nmask", ""), mask)):
                raise AssertionError("mae_loss changed imgs or mask in place")
            continue
        plain = [ref_loss(t, pred, mask) for t in _candidate_targets(worker, imgs, p, False)]
        if _matches(value, plain):
            raise AssertionError("norm_pix_loss=True gives the loss of the raw pixels: "
                                 "normalise each target patch when it is set")
        raw = [ref_patchify(imgs.astype(np.float64), p)]
        biased = [ref_loss((t - t.mean(-1, keepdims=True)) / np.sqrt(t.var(-1, keepdims=True)
                                                                      + 1e-6), pred, mask)
                  for t in raw]
        if _matches(value, biased):
            raise AssertionError("the target is normalised with the biased variance; the text "
                                 "uses torch.var's default (unbiased)")
        raise AssertionError(f"{what} is wrong: standardise each target patch by its own mean "
                             f"and variance over its p*p*3 values, (y - mean) / (var + 1e-6) ** "
                             f"0.5, then {LOSS_HINT}")


def loss_norm_eps(worker, rng):
    """Low-contrast and flat patches: the 1e-6 sits inside the square root."""
    imgs, pred, mask, p = _loss_case(rng)
    N, L, D = pred.shape
    imgs = (0.25 + 1e-3 * rng.standard_normal(imgs.shape)).astype(np.float32)
    h = imgs.shape[2] // p
    flat = int(rng.integers(L))                             # one flat patch in every image
    r, c = divmod(flat, h)
    imgs[:, :, r * p:(r + 1) * p, c * p:(c + 1) * p] = 0.5
    mask[:] = 1.0                  # every patch removed: the normalisation alone counts
    what = "mae_loss(..., norm_pix_loss=True) of low-contrast images with a flat patch"
    value = _loss_value(worker, imgs, pred, mask, p, True, what)
    if not np.isfinite(value):
        raise AssertionError(f"{what} is not finite: the 1e-6 goes inside the square root, "
                             f"(var + 1e-6) ** 0.5, so a flat patch's target is 0")
    targets = _candidate_targets(worker, imgs, p, True)
    raw = [ref_patchify(imgs.astype(np.float64), p)]          # the biased variance costs
    targets += [(t - t.mean(-1, keepdims=True)) / np.sqrt(t.var(-1, keepdims=True) + 1e-6)
                for t in raw]                                  # norm_pix's property, not this
    expected = [ref_loss(t, pred, mask) for t in targets]
    if not _matches(value, expected, rtol=2e-3):
        raise AssertionError(f"{what} is wrong: divide by (var + 1e-6) ** 0.5, the 1e-6 inside "
                             f"the square root (not var ** 0.5 + 1e-6, not the variance)")


def loss_gradient(worker, rng):
    imgs, pred, mask, p = _loss_case(rng)
    put(worker, "gp", pred, requires_grad=True)
    worker.call("mae_loss", imgs, worker.ref("gp"), mask, p, as_torch=True, keep="gl")
    _kept(worker, "gl", "mae_loss(...)")
    if not worker.get("gl", "requires_grad"):
        raise AssertionError("mae_loss does not depend on pred in autograd's eyes: no .item(), "
                             ".detach() or .numpy() inside")
    worker.call("backward", on="gl")
    grad = worker.get("gp", "grad")
    if not isinstance(grad, np.ndarray) or grad.shape != pred.shape:
        raise AssertionError("no gradient reached pred")
    if np.abs(grad[mask == 0]).sum() > 0:
        raise AssertionError("the visible patches' predictions get a gradient: the loss must "
                             "use the removed patches only")
    D = pred.shape[-1]
    if not any(np.allclose(grad, 2 * (pred - target) * mask[..., None] / (D * mask.sum()),
                           rtol=1e-3, atol=1e-6)
               for target in _candidate_targets(worker, imgs, p, False)):
        raise AssertionError("the gradient with respect to pred is not that of the mean over "
                             "the removed patches of each patch's mean squared error")
    # with norm_pix_loss too, only the removed patches' predictions get a gradient (the
    # normalisation's values are graded by its own properties)
    put(worker, "np", pred, requires_grad=True)
    worker.call("mae_loss", imgs, worker.ref("np"), mask, p, norm_pix_loss=True,
                as_torch=True, keep="nl")
    worker.call("backward", on="nl")
    grad = worker.get("np", "grad")
    if not isinstance(grad, np.ndarray) or grad.shape != pred.shape or \
            np.abs(grad[mask == 0]).sum() > 0 or not (np.abs(grad).sum(-1)[mask == 1] > 0).all():
        raise AssertionError("with norm_pix_loss=True the gradient should reach the prediction "
                             "of every removed patch and of no visible one")


def loss_visible_and_perfect(worker, rng):
    imgs, pred, mask, p = _loss_case(rng)
    what = "mae_loss"
    base = _loss_value(worker, imgs, pred, mask, p, False, what)
    removed = pred + 1.0 * (mask == 1)[..., None].astype(np.float32)
    if not base > 0 or _loss_value(worker, imgs, removed, mask, p, False, what) == base:
        raise AssertionError("the loss does not change with the prediction of the removed "
                             "patches")
    moved = pred + 100.0 * (mask == 0)[..., None].astype(np.float32)
    if not abs(_loss_value(worker, imgs, moved, mask, p, False, what) - base) <= \
            1e-5 * max(1.0, abs(base)):
        raise AssertionError("changing the prediction of a visible patch changes the loss: "
                             "only the removed patches count")
    values = [_loss_value(worker, imgs, t.astype(np.float32), mask, p, False, what)
              for t in _candidate_targets(worker, imgs, p, False)]
    if not any(v < 1e-8 for v in values):
        raise AssertionError("a perfect prediction of the target patches does not give a loss "
                             "of 0")


# ============================================================================ the points

PROPERTIES = {
    "test_patchify": [
        Property("patchify: MAE's layout on random images (patches row by row, each as pixel "
                 "row, pixel column, channel), odd patch sizes included", 1.25, patchify_layout),
        Property("unpatchify: the exact inverse, the image back from MAE's patches", 0.75,
                 unpatchify_inverse),
        Property("patch size 1 and patch size H (one patch)", 0.25, patchify_edge_sizes),
        Property("the dtype is kept (float64, bfloat16), values only moved", 0.25,
                 patchify_dtypes),
        Property("a channels-last (non-contiguous) image gives the same patches", 0.25,
                 patchify_non_contiguous),
        Property("gradients flow from the patches back to imgs", 0.25, patchify_gradient),
    ],
    "test_random_masking": [
        Property("returns (x_kept, mask, ids_restore): shapes, mask float, ids_restore int64, "
                 "x's dtype kept", 0.25, masking_types),
        Property("keeps len_keep = int(L * (1 - mask_ratio)) patches, floating point and "
                 "ratios 0 and 0.9 included", 0.5, masking_len_keep),
        Property("ids_restore is a permutation and x_kept is x at ids_shuffle[:, :len_keep], "
                 "in shuffled order", 0.5, masking_x_kept),
        Property("mask is 1 at the removed patches, 0 at the kept ones, in patch order", 0.75,
                 masking_mask),
        Property("a seeded generator gives the same result, other seeds other masks", 0.5,
                 masking_generator),
        Property("one mask per sample, a new one on every call without a generator", 0.5,
                 masking_per_sample_and_call),
        Property("uniform without replacement: every patch (and pair) equally likely to be "
                 "kept, over many draws", 0.75, masking_uniform),
        Property("the gradient reaches exactly the kept tokens of x; x is not modified", 0.25,
                 masking_gradient),
    ],
    "test_unshuffle": [
        Property("every kept token is back at its patch's position", 1.0, unshuffle_kept_tokens),
        Property("every removed position holds the mask token", 0.5, unshuffle_mask_token),
        Property("every patch kept, or none", 0.5, unshuffle_edges),
        Property("gradients reach x_kept and mask_token", 0.75, unshuffle_gradient),
        Property("the tokens' dtype is kept and the inputs are not modified", 0.25,
                 unshuffle_dtype_and_inputs),
    ],
    "test_mae_loss": [
        Property("per-patch mean squared error averaged over the removed patches only", 1.0,
                 loss_values),
        Property("a 0-dim float32 tensor; a bfloat16 pred gives a finite, right value", 0.25,
                 loss_scalar_and_dtype),
        Property("norm_pix_loss: each target patch standardised by its own mean and unbiased "
                 "variance; imgs and mask not modified", 0.75, loss_norm_pix),
        Property("norm_pix_loss: 1e-6 inside the square root (low-contrast and flat patches)",
                 0.25, loss_norm_eps),
        Property("the gradient reaches pred, on the removed patches only, and is the loss's",
                 0.5, loss_gradient),
        Property("visible patches' predictions change nothing; a perfect prediction gives 0",
                 0.25, loss_visible_and_perfect),
    ],
}
