"""Visible checks for notebook 04 (DINO: multi-crop, the head, the loss, center and schedule).

Each ``check_*`` runs your function (or class) on fixed inputs and compares the result with
stored numbers: the right one and those of known mistakes (see ``course_utils.checks``), in
``stored/dino.py``; this module only compares.

The multi-crop check records which ``transforms.RandomResizedCrop`` your transform applies
(size and scale), as the autograder does; the crops themselves are random, so it checks
their shapes and properties, never their pixels. The head is randomly initialised, so its
check tests properties: unit-norm bottleneck, weight-normalised last layer, frozen gain.
"""
from __future__ import annotations

import math
import random
from contextlib import contextmanager

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision import transforms as T

from . import (CIFAR_BLACK, IMAGENET_BLACK, as_array, close, diagnose, fail, fixed_tensor, known,
               passed, quiet, require_finite, require_grad, require_tensor, short)
from .stored.dino import TABLES

# ============================================================================ fixed inputs

# (global_size, local_size, n_local, global_scale, local_scale); the first are the defaults.
CROP_CASES = [(32, 16, 6, (0.4, 1.0), (0.05, 0.4)),
              (24, 8, 2, (0.5, 1.0), (0.1, 0.3)),
              (32, 16, 0, (0.3, 0.9), (0.05, 0.2))]
DEFAULT_SCALES = CROP_CASES[0][3:]
TORCHVISION_SCALE = (0.08, 1.0)          # RandomResizedCrop's default scale

# (in_dim, out_dim, hidden_dim, bottleneck_dim, nlayers, norm_last_layer)
HEAD_CASES = [(12, 20, 16, 6, 3, True), (10, 7, 12, 5, 2, False), (8, 9, 14, 4, 1, True)]


def crop_image(width: int = 40, height: int = 36) -> Image.Image:
    """A fixed RGB image from a formula (smooth waves, no flat area)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    rgb = np.stack([128 + 120 * np.sin(0.31 * x + 0.17 * y),
                    128 + 120 * np.cos(0.23 * x - 0.37 * y),
                    128 + 120 * np.sin(0.05 * x * y / 7 + 1.0)], axis=-1)
    return Image.fromarray(rgb.round().astype(np.uint8))


def large_loss_inputs():
    """Outputs far larger than the head's, at the text's temperatures (0.1, 0.04): B = 2,
    K = 9, 4 crops; a loss that is not computed stably overflows here."""
    return (fixed_tensor(8, 9, scale=20.0, phase=0.5, step=1.9),
            fixed_tensor(4, 9, scale=10.0, phase=2.5, step=2.3),
            fixed_tensor(1, 9, scale=5.0, phase=1.5), 0.1, 0.04)


def loss_inputs():
    """Two (student_out, teacher_out, center, student_temp, teacher_temp) cases:
    B = 3, K = 5, 4 crops, temperatures (0.1, 0.04); B = 2, K = 6, 2 crops, (0.2, 0.07)."""
    return [(fixed_tensor(12, 5, scale=0.3), fixed_tensor(6, 5, scale=0.3, phase=2.0, step=1.1),
             fixed_tensor(1, 5, scale=0.2, phase=4.0), 0.1, 0.04),
            (fixed_tensor(4, 6, scale=0.5, phase=1.0, step=0.9),
             fixed_tensor(4, 6, scale=0.4, phase=3.0, step=1.3),
             fixed_tensor(1, 6, scale=0.3, phase=5.0), 0.2, 0.07)]


def center_inputs():
    """Two (center (1, K), teacher_out (2B, K), momentum) cases."""
    return [(fixed_tensor(1, 5, scale=0.5), fixed_tensor(6, 5, scale=2.0, phase=1.0), 0.9),
            (fixed_tensor(1, 4, scale=0.8, phase=2.0),
             fixed_tensor(4, 4, scale=1.5, phase=3.0, step=1.1), 0.6)]


# (base, final, total_steps, steps)
SCHEDULE_CASES = [(0.996, 1.0, 100, (0, 10, 25, 50, 75, 90, 100, 101, 150)),
                  (0.5, 0.1, 9, (0, 2, 3, 6, 8, 9, 12)),
                  (0.04, 0.4, 4, (0, 1, 2, 3, 4, 7))]

# ============================================================================ multi-crop


@contextmanager
def _fixed_rng(seed: int = 0):
    """Seed torch, random and NumPy inside; give the caller's generators back untouched."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed)
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


# The steps of DINO's recipe that the check records, with the settings it notes of each.
RECORDED = {"crop": T.RandomResizedCrop, "flip": T.RandomHorizontalFlip,
            "apply": T.RandomApply, "gray": T.RandomGrayscale, "solarize": T.RandomSolarize}
JITTER = {"brightness": (0.6, 1.4), "contrast": (0.6, 1.4), "saturation": (0.8, 1.2),
          "hue": (-0.1, 0.1)}                     # ColorJitter(0.4, 0.4, 0.2, 0.1) as stored


def _settings(kind: str, step) -> tuple:
    if kind == "crop":
        size = step.size if isinstance(step.size, (tuple, list)) else (step.size, step.size)
        return tuple(int(s) for s in size), tuple(float(s) for s in step.scale)
    if kind == "apply":
        return float(step.p), [(type(t).__name__, {k: tuple(getattr(t, k, None) or ())
                                                   for k in JITTER})
                               for t in step.transforms]
    if kind == "solarize":
        return float(step.threshold), float(step.p)
    return (float(step.p),)


@contextmanager
def _recording_crops():
    """Record (size, scale) of every transforms.RandomResizedCrop applied inside, and in
    ``calls.steps`` every step of the recipe applied, in order: (kind, settings)."""
    calls, steps = _Calls(), []
    calls.steps = steps
    originals = {kind: cls.forward for kind, cls in RECORDED.items()}

    def recorder(kind):
        original = originals[kind]

        def forward(self, *args, **kwargs):
            settings = _settings(kind, self)
            steps.append((kind, settings))
            if kind == "crop":
                calls.append(settings)
            return original(self, *args, **kwargs)
        return forward

    for kind, cls in RECORDED.items():
        cls.forward = recorder(kind)
    try:
        yield calls
    finally:
        for kind, cls in RECORDED.items():
            cls.forward = originals[kind]


class _Calls(list):
    """The (size, scale) of each crop, with the recorded steps as ``.steps``."""
    steps: list


def _make_multicrop(cls, case):
    g, l, n, gs, ls = case
    try:
        with quiet():
            return cls(global_size=g, local_size=l, n_local=n, global_scale=gs, local_scale=ls)
    except TypeError as error:
        fail(f"MultiCropTransform(global_size={g}, local_size={l}, n_local={n}, "
             f"global_scale={gs}, local_scale={ls}) failed ({error}); keep the signature "
             f"MultiCropTransform(global_size=32, local_size=16, n_local=6, "
             f"global_scale=(0.4, 1.0), local_scale=(0.05, 0.4)).")


def _call_multicrop(transform, image, label):
    with quiet(), _recording_crops() as calls:
        crops = transform(image)
    if isinstance(crops, torch.Tensor):
        fail(f"{label} returned one tensor of shape {tuple(crops.shape)}; return a list of "
             f"crops (the global and local ones have different sizes, they cannot be stacked).")
    if not isinstance(crops, (list, tuple)):
        fail(f"{label} returned {type(crops).__name__}; return a list of 2 + n_local crops.")
    for i, crop in enumerate(crops):
        if isinstance(crop, Image.Image):
            fail(f"{label}: crop {i} is a PIL image; end each crop's pipeline with "
                 f"T.ToTensor() and augment.normalize().")
        require_tensor(crop, f"{label}: crop {i}")
    return list(crops), calls


def _shapes_message(shapes, case, label) -> str:
    g, l, n = case[:3]
    glob, loc = (3, g, g), (3, l, l)
    expected = [glob] * 2 + [loc] * n
    if len(shapes) != 2 + n:
        return (f"{label} returned {len(shapes)} crops, expected 2 + n_local = {2 + n}: the two "
                f"global crops, then n_local local ones.")
    if shapes == [loc] * n + [glob] * 2:
        return (f"{label}: the local crops come first; return the two global crops first, "
                f"then the local ones (the training loop gives the teacher crops[:2]).")
    if n and shapes == [loc] * 2 + [glob] * n:
        return (f"{label}: the global crops have local_size and the local ones global_size; "
                f"global crops are RandomResizedCrop(global_size, ...), local ones "
                f"RandomResizedCrop(local_size, ...).")
    if (shapes[:2] == [(3, 32, 32)] * 2 and g != 32) or \
            (n and shapes[2:] == [(3, 16, 16)] * n and l != 16):
        return (f"{label} gives crops of shapes {shapes[:3]}...: the sizes are hard-coded; use "
                f"the arguments global_size and local_size.")
    wrong = [i for i, (a, b) in enumerate(zip(shapes, expected)) if a != b]
    return (f"{label}: crop {wrong[0]} has shape {shapes[wrong[0]]}, expected "
            f"{expected[wrong[0]]} (crops 0 and 1: (3, global_size, global_size); the others: "
            f"(3, local_size, local_size)).")


def _scales_message(got, right, other, kind, case) -> str | None:
    """What is wrong with the scales ``got`` recorded for the ``kind`` crops, or None."""
    if all(s == right for s in got):
        return None
    name = f"{kind}_scale"
    default = DEFAULT_SCALES[0 if kind == "global" else 1]
    if all(s == other for s in got):
        return None if right == other else (
            f"the {kind} crops use the other crops' scale {other}; pass {name}={right} to the "
            f"{kind} crops' RandomResizedCrop.")
    if all(s == TORCHVISION_SCALE for s in got):
        return (f"the {kind} crops use scale {TORCHVISION_SCALE}, RandomResizedCrop's default: "
                f"pass scale={name}.")
    if all(s == default for s in got):
        return (f"the {kind} crops use scale {default} although {name}={right} was given: "
                f"the scale is hard-coded; use the argument {name}.")
    return (f"the {kind} crops use RandomResizedCrop scales {sorted(set(got))}, expected "
            f"{name} = {right}.")


def _check_calls(calls, case, label) -> None:
    g, l, n, gs, ls = case
    if not calls:
        fail(f"{label}: no torchvision.transforms.RandomResizedCrop was applied. Build every "
             f"crop with T.RandomResizedCrop(size, scale=...) from `torchvision.transforms` "
             f"(imported as T; not transforms.v2, not a crop of your own).")
    if len(calls) != 2 + n:
        fail(f"{label}: RandomResizedCrop was applied {len(calls)} times for {2 + n} crops; "
             f"each crop is cut from the image by its own RandomResizedCrop.")
    sizes = sorted(size for size, _ in calls)
    if sizes != sorted([(g, g)] * 2 + [(l, l)] * n):
        fail(f"{label}: the RandomResizedCrops produced sizes {sorted(set(sizes))}; the global "
             f"crops are RandomResizedCrop(global_size={g}, ...), the local ones "
             f"RandomResizedCrop(local_size={l}, ...).")
    global_scales = [s for size, s in calls if size == (g, g)]
    local_scales = [s for size, s in calls if size == (l, l)]
    wrong_global = _scales_message(global_scales, gs, ls, "global", case)
    wrong_local = _scales_message(local_scales, ls, gs, "local", case)
    if wrong_global and wrong_local and all(s == ls for s in global_scales) \
            and all(s == gs for s in local_scales):
        fail(f"{label}: the scales are swapped: the global crops use local_scale {ls} and the "
             f"local crops global_scale {gs}.")
    for message in (wrong_global, wrong_local):
        if message:
            fail(f"{label}: {message}")


def _differ(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape != b.shape or not torch.equal(a, b)


def check_multicrop_transform(cls) -> None:
    """Check ``MultiCropTransform(...)`` on a fixed image: crops, shapes, scales, normalisation."""
    with _fixed_rng(0):
        _check_multicrop(cls)


def _check_multicrop(cls) -> None:
    what = "MultiCropTransform"
    image = crop_image()
    first = None
    for case in CROP_CASES:
        g, l, n, gs, ls = case
        label = (f"{what}(global_size={g}, local_size={l}, n_local={n}, global_scale={gs}, "
                 f"local_scale={ls})(image)")
        transform = _make_multicrop(cls, case)
        crops, calls = _call_multicrop(transform, image, label)
        shapes = [tuple(c.shape) for c in crops]
        if shapes != [(3, g, g)] * 2 + [(3, l, l)] * n:
            fail(_shapes_message(shapes, case, label))
        if not all(c.dtype == torch.float32 for c in crops):
            fail(f"{label}: the crops should be float32 tensors (T.ToTensor() gives them), got "
                 f"{sorted({str(c.dtype) for c in crops})}.")
        if first is None:
            first = (transform, crops, calls)
            if all(float(c.min()) >= 0 and float(c.max()) <= 1 for c in crops):
                fail(f"{label}: every value is in [0, 1]: did you forget augment.normalize() "
                     f"after T.ToTensor()?")
            if not _differ(crops[0], crops[1]):
                fail(f"{label}: the two global crops are equal: the same crop repeated. Draw "
                     f"each crop separately (call the random transform once per crop).")
            local = crops[2:]
            if any(not _differ(a, b) for i, a in enumerate(local) for b in local[i + 1:]):
                fail(f"{label}: some local crops are equal: the same crop repeated. Draw each "
                     f"crop separately ([local(image) for _ in range(n_local)], not "
                     f"[local(image)] * n_local).")
        _check_calls(calls, case, label)

    transform, crops, _ = first
    again, _ = _call_multicrop(transform, image, what)
    if not _differ(again[0], crops[0]) and not _differ(again[2], crops[2]):
        fail(f"{what}: a second call on the same image gave the same crops; build the random "
             f"transforms in __init__ and apply them in __call__, so that every call draws "
             f"new crops.")
    # Every operation of DINO's recipe keeps a black image black, so each crop is exactly
    # augment.normalize() of 0, i.e. -mean / std per channel.
    black, _ = _call_multicrop(transform, Image.new("RGB", (40, 36)), what)
    for i, crop in enumerate(black):
        means = as_array(crop.mean(dim=(1, 2)))
        if close(means, CIFAR_BLACK, rtol=1e-3, atol=1e-3):
            continue
        if close(means, (0, 0, 0), atol=1e-4):
            fail(f"{what}: crop {i} of a black image is 0: the values are in [0, 1]: did you "
                 f"forget augment.normalize() after T.ToTensor()?")
        if close(means, IMAGENET_BLACK, rtol=1e-3, atol=1e-3):
            fail(f"{what}: normalised with the ImageNet statistics; use augment.normalize() "
                 f"(CIFAR-10's).")
        fail(f"{what}: crop {i} of a black image should be -mean/std = {CIFAR_BLACK} per "
             f"channel, got {short(means)}. End each crop with T.ToTensor() and "
             f"augment.normalize() (after the colour operations).")
    _check_recipe(first[2], CROP_CASES[0], what)
    g, l, n, gs, ls = CROP_CASES[0]
    passed(what, f"2 global crops (3, {g}, {g}) with scale {gs}, then {n} local (3, {l}, {l}) "
                 f"with scale {ls}, each drawn separately, flipped, colour-jittered (p=0.8), "
                 f"grayscale (p=0.2), the second global crop solarised (p=0.2), normalised")


def _per_crop(steps) -> list[tuple[tuple, list]]:
    """The recorded steps split by crop: (the crop's (size, scale), its other steps)."""
    crops = []
    for kind, settings in steps:
        if kind == "crop":
            crops.append((settings, []))
        elif crops:
            crops[-1][1].append((kind, settings))
    return crops


def _check_recipe(calls, case, what) -> None:
    """The steps each crop went through (recorded on the first fixed case): flip, colour
    jitter with p=0.8, grayscale with p=0.2, and solarisation on the second global crop."""
    g = case[0]
    crops = _per_crop(calls.steps)
    global_crops = [i for i, ((size, _), _) in enumerate(crops) if size == (g, g)]
    for i, ((size, _), steps) in enumerate(crops):
        kind = "global" if i in global_crops else "local"
        label = f"{what}: crop {i} ({kind}, in the order drawn)"
        kinds = [k for k, _ in steps]
        if "flip" not in kinds:
            fail(f"{label} has no T.RandomHorizontalFlip(); every crop is flipped at random.")
        if any(settings != (0.5,) for k, settings in steps if k == "flip"):
            fail(f"{label}: RandomHorizontalFlip should keep its default p=0.5.")
        applies = [settings for k, settings in steps if k == "apply"]
        jitters = [(p, found) for p, inner in applies for name, found in inner
                   if name == "ColorJitter"]
        if not jitters:
            fail(f"{label} has no T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8) "
                 f"(a ColorJitter on its own is applied to every crop; wrap it in "
                 f"T.RandomApply).")
        for p, found in jitters:
            wrong = {k: v for k, v in found.items() if not close(v, JITTER[k], atol=1e-6)}
            if wrong:
                hint = (" (0.4 is notebook 01's saturation; DINO's is 0.2)"
                        if "saturation" in wrong else "")
                fail(f"{label}: ColorJitter should be ColorJitter(0.4, 0.4, 0.2, 0.1) "
                     f"(brightness, contrast, saturation, hue); its ranges "
                     f"{ {k: tuple(round(x, 3) for x in v) for k, v in wrong.items()} } differ"
                     f"{hint}.")
            if abs(p - 0.8) > 1e-9:
                fail(f"{label}: the colour jitter is applied with p={p}; use "
                     f"T.RandomApply([...], p=0.8).")
        grays = [settings for k, settings in steps if k == "gray"]
        if not grays or any(abs(p - 0.2) > 1e-9 for (p,) in grays):
            fail(f"{label} should go through T.RandomGrayscale(p=0.2).")
        solarize = [settings for k, settings in steps if k == "solarize"]
        for threshold, p in solarize:
            if abs(threshold - 128) > 1e-9 or abs(p - 0.2) > 1e-9:
                fail(f"{what}: use T.RandomSolarize(threshold=128, p=0.2), got "
                     f"threshold={threshold:g}, p={p:g}.")
        if solarize and kind == "local":
            fail(f"{what}: the local crops are solarised too; only the second global crop "
                 f"gets T.RandomSolarize(threshold=128, p=0.2).")
    solarized = [i for i in global_crops if any(k == "solarize" for k, _ in crops[i][1])]
    if not solarized:
        fail(f"{what}: the second global crop should also go through "
             f"T.RandomSolarize(threshold=128, p=0.2), as in DINO.")
    if len(solarized) == len(global_crops):
        fail(f"{what}: both global crops are solarised; only the second one gets "
             f"T.RandomSolarize(threshold=128, p=0.2).")


# ============================================================================ the head


def _gain_name(gain_name: str) -> str:
    return ("last_layer.weight_g" if gain_name.endswith("weight_g")
            else "last_layer.parametrizations.weight.original0")


def _make_head(cls, case):
    in_dim, out_dim, hidden, bottleneck, nlayers, norm_last = case
    call = (f"DINOHead({in_dim}, {out_dim}, norm_last_layer={norm_last}, nlayers={nlayers}, "
            f"hidden_dim={hidden}, bottleneck_dim={bottleneck})")
    try:
        with quiet():
            head = cls(in_dim, out_dim, norm_last_layer=norm_last, nlayers=nlayers,
                       hidden_dim=hidden, bottleneck_dim=bottleneck)
    except TypeError as error:
        fail(f"{call} failed ({error}); keep the signature DINOHead(in_dim, out_dim, "
             f"use_bn=False, norm_last_layer=True, nlayers=3, hidden_dim=2048, "
             f"bottleneck_dim=256).")
    if not isinstance(head, nn.Module):
        fail("DINOHead must be an nn.Module (class DINOHead(nn.Module), super().__init__() "
             "first).")
    for name in ("mlp", "last_layer"):
        if not isinstance(getattr(head, name, None), nn.Module):
            fail(f"{call} has no module .{name}: store the MLP as self.mlp and the "
                 f"weight-normalised linear layer as self.last_layer.")
    return head, call


def _check_mlp(mlp: nn.Module, case, call: str) -> None:
    in_dim, _, hidden, bottleneck, nlayers, _ = case
    linears = [m for m in mlp.modules() if isinstance(m, nn.Linear)]
    if len(linears) != nlayers:
        fail(f"{call}: self.mlp has {len(linears)} nn.Linear layers, expected nlayers = "
             f"{nlayers} (in_dim -> hidden_dim -> ... -> bottleneck_dim).")
    dims = [(m.in_features, m.out_features) for m in linears]
    expected = ([(in_dim, bottleneck)] if nlayers == 1 else
                [(in_dim, hidden)] + [(hidden, hidden)] * (nlayers - 2) + [(hidden, bottleneck)])
    if dims != expected:
        fail(f"{call}: the MLP's linear layers map {dims}, expected {expected} (in_dim -> "
             f"hidden_dim -> ... -> bottleneck_dim).")
    if nlayers > 1:
        kinds = {type(m).__name__ for m in mlp.modules()}
        if "GELU" not in kinds:
            extra = " (DINO uses GELU, not ReLU)" if "ReLU" in kinds else ""
            fail(f"{call}: no nn.GELU in self.mlp{extra}; put a GELU after every linear layer "
                 f"but the last.")
    if isinstance(mlp, nn.Sequential) and not isinstance(mlp[-1], nn.Linear):
        fail(f"{call}: self.mlp ends with {type(mlp[-1]).__name__}; its last module is the "
             f"Linear to bottleneck_dim, with no activation after it.")


def _effective_weight(layer: nn.Module, bottleneck: int) -> torch.Tensor:
    """The weight as the layer applies it: (out_dim, bottleneck), from the basis vectors."""
    with torch.no_grad(), quiet():
        return layer(torch.eye(bottleneck)).T


def _check_last_layer(head: nn.Module, case, call: str) -> None:
    _, out_dim, _, bottleneck, _, norm_last = case
    layer = head.last_layer
    if getattr(layer, "bias", None) is not None:
        fail(f"{call}: the last layer has a bias; DINO's has none: nn.Linear(bottleneck_dim, "
             f"out_dim, bias=False).")
    params = dict(layer.named_parameters())
    directions = [(k, p) for k, p in params.items() if tuple(p.shape) == (out_dim, bottleneck)]
    gains = [(k, p) for k, p in params.items() if tuple(p.shape) == (out_dim, 1)]
    if len(directions) != 1 or len(gains) != 1:
        if any(tuple(p.shape) == (1, bottleneck) for p in params.values()):
            fail(f"{call}: the last layer's gain has shape (1, {bottleneck}): weight_norm "
                 f"normalises each output unit's weight row with dim=0 (the default), "
                 f"giving a gain of shape (out_dim, 1).")
        fail(f"{call}: the last layer is not weight-normalised (its parameters: "
             f"{ {k: tuple(p.shape) for k, p in params.items()} }). Wrap it: "
             f"nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck_dim, out_dim, "
             f"bias=False)); it then holds a direction v ({out_dim}, {bottleneck}) and a gain "
             f"g ({out_dim}, 1).")
    (_, direction), (gain_key, gain) = directions[0], gains[0]
    gain_name = _gain_name(gain_key)

    weight = _effective_weight(layer, bottleneck)
    with torch.no_grad():
        saved = direction.detach().clone()
        direction.mul_(3.0)
        rescaled = _effective_weight(layer, bottleneck)
        direction.copy_(saved)
    if not close(rescaled, weight, rtol=1e-4, atol=1e-6):
        fail(f"{call}: multiplying the last layer's direction v by 3 changed its weight; with "
             f"weight normalisation the weight is g * v / ||v||, whatever the scale of v. Use "
             f"nn.utils.parametrizations.weight_norm.")
    row_norms = as_array(weight.norm(dim=1))
    if not close(row_norms, np.ones(out_dim), atol=1e-5):
        if not close(gain, np.ones((out_dim, 1)), atol=1e-6):
            fail(f"{call}: the gains g are not 1 (the rows of the last layer's weight have "
                 f"norms {short(row_norms)}): weight_norm starts g at the norms of the initial "
                 f"rows; set it to 1, with torch.no_grad(): {gain_name}.fill_(1.0).")
        fail(f"{call}: the rows of the last layer's weight should have norm 1, got "
             f"{short(row_norms)}.")
    if not direction.requires_grad:
        fail(f"{call}: the direction v of the last layer is frozen; it must be trained. "
             f"Freeze only the gain g ({gain_name}), and only when norm_last_layer=True.")
    if norm_last and gain.requires_grad:
        fail(f"{call}: the gain is trainable: with norm_last_layer=True call "
             f"requires_grad_(False) on {gain_name}.")
    if not norm_last and not gain.requires_grad:
        fail(f"{call}: the gain is frozen although norm_last_layer=False; freeze it (requires_"
             f"grad_(False) on {gain_name}) only when norm_last_layer=True.")


def check_dino_head(cls) -> None:
    """Check ``DINOHead(in_dim, out_dim, ...)`` by its properties on three sizes."""
    with _fixed_rng(0):
        for case in HEAD_CASES:
            _check_head_case(cls, case)
        _check_head_init(cls)
    passed("DINOHead", "MLP of nlayers Linear layers with GELU, L2-normalised bottleneck, "
                       "weight-normalised last layer without bias, gain 1 (frozen when "
                       "norm_last_layer=True), outputs in [-1, 1], MLP initialised with "
                       "trunc_normal_(std=0.02) and bias 0")


INIT_CASE = (48, 16, 256, 64, 3, True)      # large layers: their weights' spread is clear


def _check_head_init(cls) -> None:
    """The MLP's Linear layers start as DINO's: weights trunc_normal_(std=0.02), bias 0."""
    head, call = _make_head(cls, INIT_CASE)
    for name, module in head.mlp.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        layer = f"self.mlp{'.' + name if name else ''}"
        spread = float(module.weight.detach().double().std())
        if not 0.016 <= spread <= 0.024:
            default = 1 / math.sqrt(module.in_features) / math.sqrt(3)
            extra = (" (that is nn.Linear's default initialisation)"
                     if abs(spread - default) < 0.2 * default else "")
            fail(f"{call}: the weights of {layer} have standard deviation {spread:.4f}{extra}; "
                 f"initialise them as DINO does: nn.init.trunc_normal_(weight, std=0.02).")
        if module.bias is not None and bool(module.bias.detach().abs().max() > 0):
            fail(f"{call}: the bias of {layer} should start at 0 (nn.init.zeros_(bias)).")


def _check_head_case(cls, case) -> None:
    in_dim, out_dim, _, bottleneck, _, _ = case
    head, call = _make_head(cls, case)
    B = 4
    h = fixed_tensor(B, in_dim, scale=2.0)
    seen = []
    hook = head.last_layer.register_forward_pre_hook(
        lambda module, args: seen.append(args[0].detach().clone()))
    try:
        head.train()
        with quiet():
            out = head(h)
    finally:
        hook.remove()
    require_tensor(out, f"{call}(h of shape ({B}, {in_dim}))")
    if not seen:
        fail(f"{call}: forward() never calls self.last_layer; it should return "
             f"self.last_layer(F.normalize(self.mlp(h), dim=-1)).")
    if tuple(out.shape) != (B, out_dim):
        fail(f"{call}(h of shape ({B}, {in_dim})) has shape {tuple(out.shape)}, expected "
             f"({B}, {out_dim}) = (B, out_dim).")
    require_finite(out, call)
    require_grad(out, call)
    _check_mlp(head.mlp, case, call)

    x = seen[0]
    if tuple(x.shape) != (B, bottleneck):
        fail(f"{call}: the last layer gets an input of shape {tuple(x.shape)}, expected "
             f"({B}, {bottleneck}) = (B, bottleneck_dim), the MLP's output.")
    with torch.no_grad(), quiet():
        plain = head.last_layer(x)
    out_norms = as_array(out.detach().norm(dim=-1))
    if not close(out, plain, rtol=1e-4, atol=1e-6):
        if close(out_norms, np.ones(B), atol=1e-4):
            fail(f"{call}: you normalised after the last layer; normalise its input, the "
                 f"bottleneck: self.last_layer(F.normalize(self.mlp(h), dim=-1)).")
        fail(f"{call}: forward() changes the last layer's output; return "
             f"self.last_layer(x) as it is.")
    if not close(x.norm(dim=-1), np.ones(B), atol=1e-4):
        if close(x.norm(dim=0), np.ones(bottleneck), atol=1e-4):
            fail(f"{call}: the bottleneck is normalised across the batch (dim=0); normalise "
                 f"each sample's vector: F.normalize(x, dim=-1).")
        if close(out_norms, np.ones(B), atol=1e-4):
            fail(f"{call}: you normalised after the last layer; normalise its input, the "
                 f"bottleneck: self.last_layer(F.normalize(self.mlp(h), dim=-1)).")
        fail(f"{call}: the input of the last layer should be L2-normalised (norms "
             f"{short(x.norm(dim=-1))}): self.last_layer(F.normalize(self.mlp(h), dim=-1)).")
    _check_last_layer(head, case, call)
    if float(out.detach().abs().max()) > 1 + 1e-4:
        fail(f"{call}: outputs reach {float(out.detach().abs().max()):.4g}; with a unit "
             f"bottleneck and unit weight rows they are cosine similarities, in [-1, 1].")

    head.zero_grad()
    with quiet():
        head(h).square().sum().backward()       # a new graph: the rescaling test above was in place
    first_linear = next(m for m in head.mlp.modules() if isinstance(m, nn.Linear))
    if first_linear.weight.grad is None or float(first_linear.weight.grad.abs().sum()) == 0:
        fail(f"{call}: no gradient reaches the MLP's first layer; keep it in the graph.")
    direction = next(p for p in head.last_layer.parameters()
                     if tuple(p.shape) == (out_dim, bottleneck))
    if direction.grad is None or float(direction.grad.abs().sum()) == 0:
        fail(f"{call}: no gradient reaches the last layer's direction v.")


# ============================================================================ the loss

PAIRS = "the 2 * n_crops - 2 pairs (teacher crop i in {0, 1}, student crop v != i)"
LOSS_HINT = ("P_t = softmax((teacher_out - center) / teacher_temp).detach(), chunked in 2; "
             "log P_s = log_softmax(student_out / student_temp), chunked in n_crops; the mean "
             f"of -(P_t[i] * log P_s[v]).sum(-1).mean() over {PAIRS}.")


def check_dino_loss(fn) -> None:
    """Check ``dino_loss(student_out, teacher_out, center, student_temp, teacher_temp)``."""
    what, stored = "dino_loss", TABLES["loss"]
    for case, (student, teacher, center, ts, tt) in enumerate(loss_inputs()):
        B, K = len(teacher) // 2, teacher.shape[1]
        n_crops = len(student) // B
        label = (f"{what}(student_out ({n_crops}*{B}, {K}), teacher_out (2*{B}, {K}), "
                 f"center (1, {K}), {ts}, {tt})")
        student_in = student.clone().requires_grad_(True)
        teacher_in = teacher.clone().requires_grad_(True)
        center_in = center.clone()
        with quiet():
            loss = fn(student_in, teacher_in, center_in, ts, tt)
        require_tensor(loss, label)
        if loss.dim() != 0:
            fail(f"{label} should return one number (a 0-dim tensor), got shape "
                 f"{tuple(loss.shape)}: average over the batch and over the pairs.")
        require_finite(loss, label)
        require_grad(loss, what)
        diagnose(loss, stored["expected"][case], known(stored, case), label, hint=LOSS_HINT)
        if not torch.equal(center_in, center):
            fail(f"{what} changed the center in place; leave it alone: update_center "
                 f"(the next exercise) updates it, after the loss.")
        if not (torch.equal(student_in.detach(), student) and
                torch.equal(teacher_in.detach(), teacher)):
            fail(f"{what} changed student_out or teacher_out in place; work on new tensors.")
        with quiet():
            loss.backward()
        if teacher_in.grad is not None and float(teacher_in.grad.abs().sum()) != 0:
            fail(f"{what}: a gradient flows into the teacher's outputs; the teacher's "
                 f"probabilities are targets: .detach() them (the teacher is trained by EMA "
                 f"only).")
        if student_in.grad is None or float(student_in.grad.abs().sum()) == 0:
            fail(f"{what}: no gradient reaches student_out; keep the student in the graph.")

    student, teacher, center, ts, tt = large_loss_inputs()
    label = (f"{what} on outputs of size 10 to 20 at student_temp={ts}, teacher_temp={tt} "
             f"(the text's temperatures)")
    with quiet():
        large = fn(student, teacher, center, ts, tt)
    require_tensor(large, label)
    if not bool(torch.isfinite(large.detach()).all()):
        fail(f"{label} is {short(large)}, not a finite number: compute log P_s with "
             f"F.log_softmax(student_out / student_temp, dim=-1), not torch.log(softmax(...)) "
             f"(a probability that underflows to 0 gives log 0 = -inf), and P_t with "
             f"F.softmax.")
    expected = TABLES["loss_large"]["expected"]
    if not close(large, expected, rtol=1e-4, atol=1e-3):
        fail(f"{label}: got {short(large)}, expected {expected}: large outputs lose "
             f"precision in your computation; use F.softmax and F.log_softmax.")

    for K in (7, 50):
        with quiet():
            uniform = fn(torch.zeros(3 * 2, K), torch.full((2 * 2, K), 0.7), torch.zeros(1, K),
                         0.1, 0.04)
        require_tensor(uniform, f"{what} on uniform outputs")
        if not close(uniform, math.log(K), rtol=1e-5, atol=1e-5):
            fail(f"{what}: when every output is the same (uniform distributions over K = {K}) "
                 f"the loss should be ln K = {math.log(K):.5f}, got {short(uniform)}.")
    first, second = stored["expected"]
    passed(what, f"{first:.4f} and {second:.4f} for the fixed inputs (4 and 2 crops): "
                 f"centred, sharpened, detached teacher; every pair of different crops; "
                 f"finite for large outputs at temperatures 0.1 and 0.04; uniform outputs "
                 f"give ln K")


# ============================================================================ the center


def check_update_center(fn) -> None:
    """Check ``update_center(center, teacher_out, momentum)`` on two fixed cases."""
    what, stored = "update_center", TABLES["center"]
    for case, (center, teacher, m) in enumerate(center_inputs()):
        n, K = teacher.shape
        label = f"{what}(center (1, {K}), teacher_out ({n}, {K}), momentum={m})"
        teacher_in = teacher.clone().requires_grad_(True)
        with quiet():
            new = fn(center.clone(), teacher_in, m)
        if new is None:
            fail(f"{label} returned None; return the new center (the training loop does "
                 f"center = update_center(center, teacher_out, momentum)).")
        require_tensor(new, label)
        if tuple(new.shape) == (K,):
            fail(f"{label} has shape ({K},), expected (1, {K}), the shape of center: take the "
                 f"mean with keepdim=True.")
        if tuple(new.shape) != (1, K):
            fail(f"{label} has shape {tuple(new.shape)}, expected (1, {K}): the mean over the "
                 f"batch (dim=0, keepdim=True).")
        require_finite(new, label)
        diagnose(new, stored["expected"][case], known(stored, case), label,
                 hint="new center = center * momentum + teacher_out.mean(dim=0, keepdim=True) "
                      "* (1 - momentum).")
        if new.requires_grad:
            fail(f"{label} requires grad; the center is a running statistic: compute it under "
                 f"torch.no_grad() or from teacher_out.detach().")
        if not torch.equal(teacher_in.detach(), teacher):
            fail(f"{what} changed teacher_out in place; leave it alone.")
    passed(what, "center * momentum + mean of the raw teacher outputs * (1 - momentum), "
                 "shape (1, K), no gradient")


# ============================================================================ the schedule


def _schedule_value(fn, base, final, step, total):
    with quiet():
        value = fn(base, final, step, total)
    call = f"cosine_schedule({base}, {final}, {step}, {total})"
    if isinstance(value, bool) or not isinstance(value, (float, int)):
        kind = type(value).__name__
        if isinstance(value, torch.Tensor):
            kind = "a torch.Tensor"
        elif isinstance(value, (np.ndarray, np.generic)):
            kind = f"a NumPy {type(value).__name__}"
        fail(f"{call} returned {kind}; return a float (a Python number: use math.cos, or "
             f"float(...) on the result).")
    if isinstance(value, int):
        fail(f"{call} returned the int {value}; return a float (float(...)).")
    return float(value)


def check_cosine_schedule(fn) -> None:
    """Check ``cosine_schedule(base, final, step, total_steps)`` on three fixed schedules."""
    what, stored = "cosine_schedule", TABLES["schedule"]
    got = [[_schedule_value(fn, base, final, step, total) for step in steps]
           for base, final, total, steps in SCHEDULE_CASES]
    matches = [close(row, right, rtol=0, atol=1e-9)
               for row, right in zip(got, stored["expected"])]
    if all(matches):
        base, final, total, _ = SCHEDULE_CASES[0]
        passed(what, f"{base} at step 0, {final} at step {total} and after, cosine in between "
                     f"(3 schedules)")
        return
    for values, message in known(stored):
        if all(close(row, v, rtol=0, atol=1e-9) for row, v in zip(got, values)):
            fail(f"{what}: {message}")
    case = matches.index(False)
    base, final, total, steps = SCHEDULE_CASES[case]
    for step, value, right in zip(steps, got[case], stored["expected"][case]):
        if not close(value, right, rtol=0, atol=1e-9):
            after = " (after the end: final)" if step >= total else ""
            fail(f"{what}({base}, {final}, {step}, {total}) = {value:.10g}, expected "
                 f"{right:.10g}{after}. m(t) = final + 0.5 * (base - final) * (1 + cos(pi * t "
                 f"/ T)) for t < T, final for t >= T.")


__all__ = ["check_cosine_schedule", "check_dino_head", "check_dino_loss",
           "check_multicrop_transform", "check_update_center", "center_inputs", "crop_image",
           "large_loss_inputs", "loss_inputs"]
