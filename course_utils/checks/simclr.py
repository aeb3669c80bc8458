"""Visible checks for notebook 01 (SimCLR and the NT-Xent loss).

Each ``check_*`` takes your function (or class), runs it on fixed inputs and compares the
result with stored numbers: the right one and those of known mistakes (see
``course_utils.checks``), in ``stored/simclr.py``; this module only compares.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.overrides import TorchFunctionMode

from ..augment import CIFAR10_MEAN, CIFAR10_STD
from . import (CIFAR_BLACK, IMAGENET_BLACK, as_array, close, diagnose, fail, fixed_tensor, known,
               passed, quiet, require_finite, require_grad, require_tensor, short)
from .stored.simclr import TABLES

# ============================================================================ fixed inputs


def ce_inputs():
    """logits (4, 5), targets (4,), the same logits times 1000, and logits with -inf entries."""
    logits = fixed_tensor(4, 5, scale=3.0)
    targets = torch.tensor([3, 0, 4, 1])
    big = logits * 1000.0
    masked = logits.clone()
    masked[0, 1] = float("-inf")   # never a target column
    masked[2, 2] = float("-inf")
    return logits, targets, big, masked


def cos_inputs():
    """z (5, 3) whose rows have clearly different norms."""
    return fixed_tensor(5, 3, scale=2.0, step=0.9) * torch.tensor([[1.0], [2.0], [0.5], [3.0], [1.5]])


def nt_xent_inputs():
    """Two (z_i, z_j, tau) cases: N=4, D=3, tau=0.5 and N=3, D=4, tau=0.2."""
    z_i = fixed_tensor(4, 3, scale=1.5) * torch.tensor([[1.0], [2.0], [0.7], [1.3]])
    z_j = z_i + 0.8 * fixed_tensor(4, 3, phase=2.0)
    w_i = fixed_tensor(3, 4, scale=2.0, phase=0.5, step=1.1)
    w_j = 0.7 * w_i + fixed_tensor(3, 4, phase=4.0, step=0.9)
    return [(z_i, z_j, 0.5), (w_i, w_j, 0.2)]


class TorchCalls(TorchFunctionMode):
    """Inside ``with TorchCalls() as calls:``, ``calls.names`` lists the torch functions and
    tensor methods the code called (their names only; nested calls are not listed)."""

    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.append(getattr(func, "__name__", type(func).__name__))
        return func(*args, **(kwargs or {}))


def count_torch_calls(fn, *args) -> int:
    """How many torch calls ``fn(*args)`` makes (a loop over a batch makes more for more)."""
    with quiet(), TorchCalls() as calls:
        fn(*args)
    return len(calls.names)


NT_TAU_SMALLEST = 0.01      # the smallest temperature exercise 5 names

# ============================================================================ stored numbers
# The checks read TABLES; the same numbers by name, as tests/unit/autograder/graders/test_grader_simclr.py compares
# the grader's own families of mistakes with them:


def _by_name(table: dict, case: int | None = None) -> dict:
    return {m["name"]: m["values"] if case is None else m["values"][case]
            for m in table["mistakes"]}


CE, CE_MISTAKES = TABLES["ce"]["expected"], _by_name(TABLES["ce"])
COS, COS_MISTAKES = TABLES["cos"]["expected"], _by_name(TABLES["cos"])
NT = [{"expected": expected, "mistakes": _by_name(TABLES["nt"], case)}
      for case, expected in enumerate(TABLES["nt"]["expected"])]

# ============================================================================ cross-entropy


def check_softmax_cross_entropy(fn) -> None:
    """Check ``softmax_cross_entropy(logits, targets)`` on fixed logits."""
    logits, targets, big, masked = ce_inputs()
    B = len(targets)
    what = "softmax_cross_entropy"
    x = logits.clone().requires_grad_(True)
    with quiet():
        loss = fn(x, targets)
    require_tensor(loss, f"{what}(logits, targets)")
    if tuple(loss.shape) == (B,):
        fail(f"{what} returned one loss per sample (shape ({B},)); average them into one "
             f"number with .mean().")
    if loss.dim() != 0:
        fail(f"{what} should return a scalar (0-dim tensor), got shape {tuple(loss.shape)}.")
    require_finite(loss, f"{what} on small logits")
    require_grad(loss, what)
    diagnose(loss, TABLES["ce"]["expected"], known(TABLES["ce"]), what,
             hint="Compute, for each row, -z_y + logsumexp(z), then take the mean.")
    with quiet():
        loss_big = fn(big.clone(), targets)
    require_finite(loss_big, f"{what} on logits of size ~3000",
                   hint="exp(3000) overflows float32 (it is inf beyond about exp(88)). "
                        "Subtract each row's maximum before exp and add it back afterwards "
                        "(the log-sum-exp trick).")
    diagnose(loss_big, TABLES["ce_big"]["expected"], known(TABLES["ce_big"]),
             f"{what} on logits of size ~3000",
             hint="Small logits work but large ones do not: check the log-sum-exp trick.")
    with quiet():
        loss_masked = fn(masked.clone(), targets)
    require_finite(loss_masked, f"{what} with some logits = -inf (masked classes)",
                   hint="A -inf logit is a class of probability 0 and must simply drop out. "
                        "NaN usually comes from 0 * (-inf) (multiplying log-probabilities by "
                        "a one-hot) or from (-inf) - (-inf): pick the target logit by "
                        "indexing instead.")
    diagnose(loss_masked, TABLES["ce_masked"]["expected"], known(TABLES["ce_masked"]),
             f"{what} with -inf logits")
    with quiet(), TorchCalls() as calls:
        fn(logits.clone(), targets)
    ready_made = sorted({n for n in calls.names
                         if "cross_entropy" in n or "log_softmax" in n or "logsumexp" in n})
    if ready_made:
        fail(f"{what} calls {', '.join(ready_made)}: the exercise is to build the loss "
             f"yourself from max, exp, sum, log and indexing (no F.cross_entropy, "
             f"F.log_softmax, torch.log_softmax or torch.logsumexp).")
    passed(what, f"loss {loss.item():.4f} for the fixed logits; stable for large and -inf logits")


# ============================================================================ cosine similarity


def check_cosine_similarity_matrix(fn) -> None:
    """Check ``cosine_similarity_matrix(z)`` on a fixed (5, 3) input."""
    z = cos_inputs()
    M, D = z.shape
    what = "cosine_similarity_matrix"
    untouched = z.clone()
    with quiet():
        fn(untouched)
    if not torch.equal(untouched, z):
        fail(f"{what} changed its input z in place (e.g. z /= ...): compute a normalised "
             f"copy instead, the caller still needs z.")
    x = z.clone().requires_grad_(True)
    with quiet():
        sim = fn(x)
    require_tensor(sim, f"{what}(z)")
    if tuple(sim.shape) == (M,):
        fail(f"{what} returned shape ({M},): F.cosine_similarity(z, z) compares each row "
             f"only with itself; you need every pair, an ({M}, {M}) matrix.")
    if tuple(sim.shape) == (D, D):
        fail(f"{what} returned shape ({D}, {D}): that is z.T @ z (features x features); "
             f"the similarity between samples is the ({M}, {M}) matrix from z @ z.T.")
    require_tensor(sim, f"{what}(z)", shape=(M, M))
    require_finite(sim, what)
    require_grad(sim, what)
    diagnose(sim, TABLES["cos"]["expected"], known(TABLES["cos"]), what,
             hint="Entry (i, k) is z_i . z_k / (|z_i| |z_k|).")
    lengths = torch.tensor([[0.1], [0.25], [7.0], [1.0], [0.5]])
    with quiet():
        rescaled = fn(z * lengths)
    if not close(rescaled, as_array(sim), rtol=1e-4, atol=1e-5):
        fail(f"{what}: rescaling the rows of z changed the matrix; the cosine similarity "
             f"ignores the lengths of the vectors.")
    with quiet():
        single = fn(z[:1].clone())
    if not close(single, [[1.0]], atol=1e-5):
        fail(f"{what} of a single row should be the (1, 1) matrix [[1.]], got {short(single)}.")
    passed(what, f"({M}, {M}) matrix with a unit diagonal, values match")


# ============================================================================ NT-Xent


def _check_nt_xent(fn, what: str, loops: bool) -> None:
    first = None
    stored = TABLES["nt"]
    for case, (z_i, z_j, tau) in enumerate(nt_xent_inputs()):
        N = len(z_i)
        a = z_i.clone().requires_grad_(True)
        b = z_j.clone().requires_grad_(True)
        label = f"{what} (N={N}, tau={tau})"
        with quiet():
            loss = fn(a, b, tau)
        require_tensor(loss, label)
        if loss.dim() != 0:
            fail(f"{label} should return a scalar (0-dim tensor), got shape "
                 f"{tuple(loss.shape)}" + (": average the 2N per-anchor terms with .mean()."
                                           if loss.numel() == 2 * N else "."))
        value = as_array(loss)
        if not np.isfinite(value) or abs(value) > 1e4:
            fail(f"{label} is {short(loss)}: an infinite or huge loss means a target points "
                 f"at a masked entry (the anchor itself). The positive of anchor i is i + N "
                 f"for i < N and i - N for i >= N.")
        if value < 0:
            fail(f"{label} is negative ({short(loss)}): it is -log of a probability, so >= 0.")
        require_grad(loss, label)
        diagnose(loss, stored["expected"][case], known(stored, case), label,
                 hint="Check the parts one at a time: cosine similarities of the 2N samples, "
                      "division by tau, k = i left out of the denominator, the positive "
                      "(i + N) mod 2N as the target, the mean over 2N anchors. Make sure the "
                      "checks of softmax_cross_entropy and cosine_similarity_matrix pass "
                      "first if you use them.")
        loss.backward()
        for name, t in (("z_i", a), ("z_j", b)):
            if t.grad is None or not torch.isfinite(t.grad).all() or t.grad.abs().sum() == 0:
                fail(f"{label}: no (finite) gradient reaches {name}.")
        first = first if first is not None else loss.item()
    for N in (2, 5):
        same = torch.ones(N, 3)
        with quiet():
            collapsed = fn(same, same.clone(), 0.5)
        if not close(collapsed, math.log(2 * N - 1), rtol=1e-4, atol=1e-4):
            fail(f"{what}: when all 2N = {2 * N} embeddings are equal every anchor sees 2N - 1 "
                 f"equally similar views, so the loss is ln(2N - 1) = {math.log(2 * N - 1):.4f}; "
                 f"got {short(collapsed)}.")
    (z_i, z_j, _), _ = nt_xent_inputs()
    few = count_torch_calls(fn, z_i[:2].clone(), z_j[:2].clone(), 0.5)
    many = count_torch_calls(fn, z_i.clone(), z_j.clone(), 0.5)
    if loops and many - few < 4:
        fail(f"{what}: the number of torch calls does not grow with N ({few} for N=2, {many} "
             f"for N=4); this version loops in Python over the 2N anchors, term by term.")
    if not loops and many > few:
        fail(f"{what}: the number of torch calls grows with N ({few} for N=2, {many} for "
             f"N=4), so a Python loop over the batch is left; compute all anchors at once.")
    if not loops:
        (z_i, z_j, _), (w_i, w_j, _) = nt_xent_inputs()
        with quiet():
            tiny = fn(z_i.clone(), z_j.clone(), NT_TAU_SMALLEST)
        label = f"{what} at tau = {NT_TAU_SMALLEST} (logits up to {1 / NT_TAU_SMALLEST:g})"
        require_finite(tiny, label, hint="Mask the diagonal with -inf and use the stable "
                                         "cross-entropy, never exp of the raw logits.")
        smallest = TABLES["nt_smallest_tau"]
        diagnose(tiny, smallest["expected"], known(smallest), label, rtol=1e-3, atol=1e-3)
        with quiet():
            large = fn(w_i * 1000, w_j * 1000, 0.05)
        label = f"{what} for |z| about 1000 at tau = 0.05"
        require_finite(large, label, hint="Normalise z (cosine similarity) before the dot "
                                          "products.")
        large_z = TABLES["nt_large_z"]
        diagnose(large, large_z["expected"], known(large_z), label, rtol=1e-3, atol=1e-3)
    passed(what, f"loss {first:.4f} for the first fixed batch; matches for two batch sizes "
                 f"and temperatures; gradients reach both views")


def check_nt_xent_loss_naive(fn) -> None:
    """Check ``nt_xent_loss_naive(z_i, z_j, tau)`` on two fixed batches."""
    _check_nt_xent(fn, "nt_xent_loss_naive", loops=True)


def check_nt_xent_loss(fn) -> None:
    """Check the vectorised ``nt_xent_loss(z_i, z_j, tau)`` on two fixed batches."""
    _check_nt_xent(fn, "nt_xent_loss", loops=False)


# ============================================================================ the transform

N_DRAWS = 240


def _image(size_wh, fill) -> Image.Image:
    w, h = size_wh
    if callable(fill):
        return Image.fromarray(fill(w, h))
    return Image.new("RGB", (w, h), tuple(fill))


def _halves(w: int, h: int) -> np.ndarray:
    """Left half dark gray (60), right half light gray (190)."""
    img = np.full((h, w, 3), 190, dtype=np.uint8)
    img[:, : w // 2] = 60
    return img


def _denormalize(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(CIFAR10_MEAN).view(3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(3, 1, 1)
    return x.detach().float() * std + mean


def _find(transform, name: str) -> bool | None:
    """Whether a transform named ``name`` occurs in a (nested) composition; None if opaque."""
    children = getattr(transform, "transforms", None)
    if type(transform).__name__ == name:
        return True
    if children is None:
        return None
    found = [_find(t, name) for t in children]
    return True if any(found) else False


def _steps(transform) -> list[tuple[object, float | None]]:
    """The leaves of a (nested) composition with the p of an enclosing RandomApply."""
    found = []
    for step in getattr(transform, "transforms", None) or []:
        inner = getattr(step, "transforms", None)
        if inner is not None:
            p = getattr(step, "p", None) if type(step).__name__ == "RandomApply" else None
            found += [(leaf, p) for leaf in inner]
        else:
            found.append((step, None))
    return found


def _pair(value) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
    except (TypeError, ValueError):
        return ()


def _about(value, expected, tol=1e-3) -> bool:
    got = _pair(value)
    return len(got) == len(expected) and all(abs(a - b) <= tol for a, b in zip(got, expected))


def _recipe_settings(what: str, transform, image_size: int, blur: bool) -> None:
    """Compare the settings of the steps (where they can be read) with the recipe's."""
    steps = _steps(transform)
    if not steps:
        return
    by_name = {}
    for leaf, p in steps:
        by_name.setdefault(type(leaf).__name__, (leaf, p))
    if "RandomResizedCrop" in by_name:
        crop = by_name["RandomResizedCrop"][0]
        if not _about(getattr(crop, "scale", None), (0.08, 1.0)):
            fail(f"{what}: RandomResizedCrop has scale={_pair(getattr(crop, 'scale', None))}; "
                 f"the recipe crops 8% to 100% of the area, scale=(0.08, 1.0).")
        if not _about(getattr(crop, "ratio", None), (3 / 4, 4 / 3)):
            fail(f"{what}: RandomResizedCrop's aspect ratios should be the default (3/4, 4/3).")
    if "RandomHorizontalFlip" in by_name:
        if not _about(getattr(by_name["RandomHorizontalFlip"][0], "p", None), (0.5,)):
            fail(f"{what}: RandomHorizontalFlip should mirror half of the views (p=0.5).")
    if "ColorJitter" in by_name:
        jitter, p = by_name["ColorJitter"]
        wanted = {"brightness": (0.6, 1.4), "contrast": (0.6, 1.4), "saturation": (0.6, 1.4),
                  "hue": (-0.1, 0.1)}
        for field, interval in wanted.items():
            if not _about(getattr(jitter, field, None), interval):
                fail(f"{what}: ColorJitter's {field} range is "
                     f"{_pair(getattr(jitter, field, None))}; ColorJitter(0.4, 0.4, 0.4, 0.1) "
                     f"gives {interval} (strength s = 0.5).")
        if p is None or not _about(p, (0.8,)):
            fail(f"{what}: wrap the jitter as RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], "
                 f"p=0.8), so that 20% of the views keep their colours.")
    if "RandomGrayscale" in by_name:
        if not _about(getattr(by_name["RandomGrayscale"][0], "p", None), (0.2,)):
            fail(f"{what}: RandomGrayscale should turn 20% of the views gray (p=0.2).")
    if blur and "GaussianBlur" in by_name:
        kernel, p = by_name["GaussianBlur"]
        side = _pair(getattr(kernel, "kernel_size", None))
        if not side or side[0] % 2 != 1 or abs(side[0] - image_size / 10) > 2:
            fail(f"{what}(image_size={image_size}, blur=True): the blur kernel is {side}; use "
                 f"an odd kernel of about 10% of image_size "
                 f"(augment.CIFAR_RECIPE.blur_kernel(image_size)).")
        if not _about(getattr(kernel, "sigma", None), (0.1, 2.0)):
            fail(f"{what}: GaussianBlur's sigma should be drawn from (0.1, 2.0).")
        if p is None or not _about(p, (0.5,)):
            fail(f"{what}: blur half of the views: RandomApply([GaussianBlur(...)], p=0.5).")


def _draw(transform, image, n: int) -> list[torch.Tensor]:
    with quiet():
        return [transform(image) for _ in range(n)]


def check_simclr_transform(fn) -> None:
    """Check ``simclr_transform(image_size, blur)`` by its behaviour on synthetic images.

    The numbers below are statistics over many draws (a fixed seed keeps the check
    reproducible on one machine; the bounds leave room for other torchvision versions).
    """
    what = "simclr_transform"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        _check_simclr_transform(fn, what)


def _check_simclr_transform(fn, what: str) -> None:
    size_wh = (40, 36)                       # not square, not 32: the transform must resize
    with quiet():
        transform = fn(image_size=32)
    if transform is None:
        fail(f"{what}(image_size=32) returned None: return the composed transform.")
    out = _draw(transform, _image(size_wh, _halves), 1)[0]
    if isinstance(out, Image.Image):
        fail(f"{what} produces a PIL image: end with transforms.ToTensor() and "
             f"transforms.Normalize(mean, std).")
    require_tensor(out, f"{what}(image_size=32)(image)")
    if tuple(out.shape) == (3, size_wh[1], size_wh[0]):
        fail(f"{what}: a {size_wh[0]}x{size_wh[1]} image stays {size_wh[0]}x{size_wh[1]}; "
             f"RandomResizedCrop(image_size, ...) must produce image_size x image_size.")
    require_tensor(out, f"{what}(image_size=32)(image)", shape=(3, 32, 32))
    with quiet():
        out24 = _draw(fn(image_size=24), _image(size_wh, _halves), 1)[0]
    if tuple(getattr(out24, "shape", ())) != (3, 24, 24):
        fail(f"{what}(image_size=24) gives shape {tuple(getattr(out24, 'shape', ()))}: "
             f"use the image_size argument, do not hard-code 32.")

    # Normalisation: every operation of the recipe keeps a black image black, so the output
    # is exactly Normalize(mean, std) applied to 0, i.e. -mean / std per channel.
    black = as_array(_draw(transform, _image(size_wh, (0, 0, 0)), 1)[0].mean(dim=(1, 2)))
    if not close(black, CIFAR_BLACK, rtol=1e-3, atol=1e-3):
        if close(black, (0, 0, 0), atol=1e-4):
            fail(f"{what}: the output is not normalised. Add transforms.Normalize(mean, std) "
                 f"after ToTensor(), with the CIFAR-10 statistics "
                 f"(course_utils.augment.CIFAR10_MEAN / CIFAR10_STD).")
        if close(black, (-1, -1, -1), atol=1e-3):
            fail(f"{what}: normalised with mean 0.5 and std 0.5; use the CIFAR-10 statistics "
                 f"(course_utils.augment.CIFAR10_MEAN / CIFAR10_STD).")
        if close(black, IMAGENET_BLACK, rtol=1e-3, atol=1e-3):
            fail(f"{what}: normalised with the ImageNet statistics; on CIFAR-10 use "
                 f"course_utils.augment.CIFAR10_MEAN / CIFAR10_STD.")
        fail(f"{what}: a black image should become -mean/std = {CIFAR_BLACK} per channel, "
             f"got {short(black)}. Normalize(CIFAR10_MEAN, CIFAR10_STD) must come last, "
             f"after ToTensor().")

    # Blur is looked for by name, where the transform is a (nested) composition.
    if _find(transform, "GaussianBlur"):
        fail(f"{what}(blur=False) blurs; blur only when blur=True (the CIFAR recipe has no "
             f"blur).")

    # Crop and flip, on an image whose left half is dark and right half light. Colour
    # jitter keeps the order of the two grays, so only a flip puts the light half left, and
    # only a crop that falls inside one half gives a uniform output.
    views = [_denormalize(v).mean(0) for v in _draw(transform, _image(size_wh, _halves), N_DRAWS)]
    if all(torch.equal(views[0], v) for v in views[1:20]):
        fail(f"{what}: twenty calls on the same image gave the same output; the "
             f"augmentations must be random (RandomResizedCrop, RandomHorizontalFlip, "
             f"RandomApply(..., p=0.8), RandomGrayscale).")
    uniform = [float(v.max() - v.min()) < 0.02 for v in views]
    flipped = [float(v[:, :16].mean()) > float(v[:, 16:].mean())
               for v, u in zip(views, uniform) if not u]
    frac_uniform = float(np.mean(uniform))
    frac_flipped = float(np.mean(flipped)) if flipped else 0.0
    if frac_uniform < 0.04:
        fail(f"{what}: the crops are never small enough to miss half of the image "
             f"({frac_uniform:.0%} of views). Use RandomResizedCrop(image_size, "
             f"scale=(0.08, 1.0)): crops of 8% to 100% of the area, resized.")
    if not 0.3 <= frac_flipped <= 0.7:
        fail(f"{what}: {frac_flipped:.0%} of the views are mirrored; "
             f"RandomHorizontalFlip() mirrors half of them.")

    # Colour: a uniformly coloured image (crops cannot change it). Grayscale views have equal
    # channels; views equal to the original had neither jitter nor grayscale (expected
    # 0.2 * 0.8 = 16%).
    orig = torch.tensor([200.0, 120.0, 40.0]) / 255
    colours = [_denormalize(v).mean(dim=(1, 2))
               for v in _draw(transform, _image(size_wh, (200, 120, 40)), N_DRAWS)]
    gray = [float(c.max() - c.min()) < 2 / 255 for c in colours]
    unchanged = [float((c - orig).abs().max()) < 2 / 255 for c in colours]
    frac_gray, frac_unchanged = float(np.mean(gray)), float(np.mean(unchanged))
    if frac_gray < 0.08:
        fail(f"{what}: only {frac_gray:.0%} of the views are grayscale; add "
             f"RandomGrayscale(p=0.2).")
    if frac_gray > 0.4:
        fail(f"{what}: {frac_gray:.0%} of the views are grayscale; p should be 0.2.")
    if frac_unchanged > 0.4:
        fail(f"{what}: {frac_unchanged:.0%} of the views keep the original colour: colour "
             f"jitter is missing or applied too rarely. Use RandomApply([ColorJitter(0.4, "
             f"0.4, 0.4, 0.1)], p=0.8).")
    if frac_unchanged < 0.04:
        fail(f"{what}: every view has its colours changed; wrap ColorJitter in "
             f"RandomApply([...], p=0.8) so that some views keep theirs.")
    jittered = [float(c.mean() / orig.mean()) for c, g, u in zip(colours, gray, unchanged)
                if not (g or u)]
    if np.std(jittered) < 0.1:
        fail(f"{what}: the colour jitter is too weak (brightness varies by "
             f"{np.std(jittered):.2f}); the CIFAR recipe uses strength s = 0.5: "
             f"ColorJitter(0.8s, 0.8s, 0.8s, 0.2s) = (0.4, 0.4, 0.4, 0.1).")

    with quiet():
        blurred = fn(image_size=32, blur=True)
    out_blur = _draw(blurred, _image(size_wh, _halves), 1)[0]
    require_tensor(out_blur, f"{what}(image_size=32, blur=True)(image)", shape=(3, 32, 32))
    if _find(blurred, "GaussianBlur") is False:
        fail(f"{what}(blur=True) has no GaussianBlur: add RandomApply([GaussianBlur(kernel, "
             f"sigma=(0.1, 2.0))], p=0.5) with an odd kernel of about 10% of image_size.")
    _recipe_settings(what, transform, 32, blur=False)
    with quiet():
        wide = fn(image_size=96, blur=True)
    _recipe_settings(what, wide, 96, blur=True)
    passed(what, f"(3, 32, 32) normalised tensors; {frac_uniform:.0%} of crops inside one "
                 f"half, {frac_flipped:.0%} flipped, {frac_gray:.0%} grayscale, "
                 f"{1 - frac_unchanged:.0%} recoloured")


# ============================================================================ projection head


def _make_head(cls, in_dim, hidden_dim, out_dim, what):
    try:
        with quiet():
            head = cls(in_dim=in_dim, hidden_dim=hidden_dim, out_dim=out_dim)
    except TypeError as err:
        fail(f"{what}(in_dim={in_dim}, hidden_dim={hidden_dim}, out_dim={out_dim}) failed "
             f"({err}); keep the signature ProjectionHead(in_dim, hidden_dim, out_dim).")
    if not isinstance(head, nn.Module):
        fail(f"{what} must be an nn.Module: class ProjectionHead(nn.Module), calling "
             f"super().__init__() first in __init__.")
    return head


def check_projection_head(cls) -> None:
    """Check ``ProjectionHead(in_dim, hidden_dim, out_dim)``: shapes, non-linearity, gradients."""
    what = "ProjectionHead"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        _check_projection_head(cls, what)


def _check_projection_head(cls, what: str) -> None:
    in_dim, hidden_dim, out_dim, B = 12, 20, 6, 8
    head = _make_head(cls, in_dim, hidden_dim, out_dim, what)
    h = fixed_tensor(B, in_dim, scale=2.0).requires_grad_(True)
    head.train()
    with quiet():
        z = head(h)
    require_tensor(z, f"{what}(h)")
    if tuple(z.shape) == (B, hidden_dim):
        fail(f"{what}: the output has hidden_dim={hidden_dim} features; the last Linear "
             f"layer must map hidden_dim -> out_dim.")
    require_tensor(z, f"{what}(12 -> 20 -> 6)(h of shape ({B}, {in_dim}))", shape=(B, out_dim))
    require_finite(z, what)
    require_grad(z, what)
    z.pow(2).sum().backward()
    if h.grad is None or not bool(h.grad.abs().sum() > 0):
        fail(f"{what}: no gradient reaches h, so the encoder below the head would not learn; "
             f"do not detach h (or wrap it in torch.no_grad()) inside forward().")
    for name, p in head.named_parameters():
        if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0):
            fail(f"{what}: parameter {name} gets no gradient; is it used in forward()?")

    n_params = sum(p.numel() for p in head.parameters() if p.requires_grad)
    weights = in_dim * hidden_dim + hidden_dim * out_dim
    extra = 3 * hidden_dim + 3 * out_dim        # biases and BatchNorm scales/shifts
    if n_params < weights:
        fail(f"{what} has {n_params} trainable parameters, fewer than the {weights} of "
             f"Linear({in_dim}, {hidden_dim}) and Linear({hidden_dim}, {out_dim}).")
    if n_params > weights + extra:
        fail(f"{what} has {n_params} trainable parameters; Linear(in_dim, hidden_dim), an "
             f"optional BatchNorm1d, ReLU and Linear(hidden_dim, out_dim) have at most "
             f"{weights + extra}. Did you add layers?")

    # In eval mode BatchNorm is a fixed affine map, so a head without a non-linearity
    # is affine: the output of a midpoint is the midpoint of the outputs.
    head.eval()
    a, b = fixed_tensor(B, in_dim, scale=2.0), fixed_tensor(B, in_dim, scale=2.0, phase=1.3)
    with torch.no_grad(), quiet():
        fa, fb, fmid = head(a), head(b), head((a + b) / 2)
        first_alone = head(a[:1])
    if close(fmid, (fa + fb) / 2, rtol=1e-4, atol=1e-5):
        fail(f"{what} is a linear (affine) map: two Linear layers in a row collapse into "
             f"one. Put a ReLU between them.")
    if bool((fa >= 0).all() and (fb >= 0).all()):
        fail(f"{what}: every output is >= 0, so z went through a ReLU at the end. z is the "
             f"output of the last Linear layer (no activation after it); otherwise every "
             f"cosine similarity is >= 0.")
    if not close(first_alone, fa[:1], rtol=1e-4, atol=1e-5):
        fail(f"{what}: in eval mode a sample's output depends on the rest of the batch. "
             f"BatchNorm must use its running statistics in eval mode (nn.BatchNorm1d does; "
             f"batch statistics computed by hand do not).")

    other = _make_head(cls, 7, 5, 3, what)
    try:
        with quiet():
            z_other = other.train()(fixed_tensor(2, 7))
    except RuntimeError as err:
        fail(f"{what}(in_dim=7, hidden_dim=5, out_dim=3) fails on h of shape (2, 7): {err}. "
             f"Use the constructor's arguments, not fixed sizes.")
    require_tensor(z_other, f"{what}(in_dim=7, hidden_dim=5, out_dim=3)(h of shape (2, 7))",
                   shape=(2, 3), hint="Use the constructor's arguments, not fixed sizes.")
    passed(what, f"{in_dim} -> {hidden_dim} -> {out_dim} with {n_params} parameters, "
                 f"non-linear, gradients reach every parameter")


__all__ = ["check_cosine_similarity_matrix", "check_nt_xent_loss", "check_nt_xent_loss_naive",
           "check_projection_head", "check_simclr_transform", "check_softmax_cross_entropy"]
