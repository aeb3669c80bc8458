"""Visible checks for notebook 05 (paradigms and segments: rotation prediction, the
autoencoder's decoder, a segmentation head on patch tokens, upsampling its logits, the
pixel-wise loss, SAM's point prompt and its best-of-three loss).

Each ``check_*`` runs your function (or class) on fixed inputs and compares the result with
stored numbers: the right one and those of known mistakes (see ``course_utils.checks``), in
``stored/segments.py``; this module only compares.

The rotation check feeds ``arange`` images, so every output value *is* the flat index of an
input pixel: each copy you return is named by the stored copy it equals (image b turned k
times). The decoder and the head start from random weights, so their checks test the
structure the text states, then set every parameter from a formula (``fill_decoder``,
``fill_head``) and compare the outputs with the stored ones.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from . import (CheckFailure, as_array, close, diagnose, fail, fixed_tensor, known, passed,
               quiet, require_finite, require_grad, require_tensor, short)
from .stored.segments import TABLES

IGNORE = 255          # the target value of a pixel that counts nothing

# ============================================================================ fixed inputs


def rotate_inputs():
    """Two batches of arange images: (2, 2, 3, 3) and (3, 1, 2, 2). Value v of the first is
    image v // 18, channel (v % 18) // 9, row (v % 9) // 3, column v % 3."""
    return [torch.arange(36, dtype=torch.float32).reshape(2, 2, 3, 3),
            torch.arange(12, dtype=torch.float32).reshape(3, 1, 2, 2)]


# (feature_dim, width, image_size) of the decoder whose outputs are compared; the others are
# checked for their shapes only (the first uses the defaults width=32, image_size=32).
DECODER_CASE = (5, 2, 16)
DECODER_SHAPE_CASES = [(7, None, None), (4, 3, 8), (6, 4, 24)]
DECODER_STRIDE = 5          # the compared pixels: rows and columns 0, 5, 10, 15


def decoder_input():
    """h (3, 5): a batch of three features for DECODER_CASE."""
    return fixed_tensor(3, 5, scale=1.5)


def _modules(model: nn.Module, kind) -> list:
    return [m for m in model.modules() if isinstance(m, kind)]


def _fill_layer(layer: nn.Module, phase: float, scale: float) -> None:
    layer.weight.copy_(fixed_tensor(*layer.weight.shape, scale=scale, phase=phase))
    if getattr(layer, "bias", None) is not None:
        layer.bias.copy_(fixed_tensor(*layer.bias.shape, scale=0.5 * scale, phase=phase + 1.0))


def fill_decoder(decoder: nn.Module) -> nn.Module:
    """Set the decoder's parameters from formulas, by role (whatever their names and order):
    the Linear, the ConvTranspose2d layers from the widest input, the BatchNorm2d layers from
    the widest."""
    convs = sorted(_modules(decoder, nn.ConvTranspose2d), key=lambda m: -m.in_channels)
    norms = sorted(_modules(decoder, nn.BatchNorm2d), key=lambda m: -m.num_features)
    with torch.no_grad():
        for n, layer in enumerate(_modules(decoder, nn.Linear) + convs):
            _fill_layer(layer, phase=2.0 * n, scale=0.4)
        for n, norm in enumerate(norms):
            if norm.weight is not None:
                norm.weight.copy_(1.0 + 0.3 * fixed_tensor(*norm.weight.shape, phase=9.0 + n))
                norm.bias.copy_(0.2 * fixed_tensor(*norm.bias.shape, phase=12.0 + n))
    return decoder


def decoder_values(decoder: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """The compared pixels of a filled decoder's output on ``h``, in training mode."""
    with quiet():
        out = decoder.train()(h)
    return out[:, :, ::DECODER_STRIDE, ::DECODER_STRIDE]


# (embed_dim, num_classes, tokens) of the head's cases: g = 3 and g = 4
def head_inputs():
    return [(4, 5, fixed_tensor(2, 9, 4, scale=1.2)),
            (3, 2, fixed_tensor(1, 16, 3, phase=2.0, step=0.9))]


def fill_head(head: nn.Module) -> nn.Module:
    """Set the head's Linear from a formula."""
    with torch.no_grad():
        for layer in _modules(head, nn.Linear):
            _fill_layer(layer, phase=0.5, scale=0.8)
    return head


def upsample_inputs():
    """Two (logits, size) cases: (1, 2, 3, 3) to 7 (not a multiple of 3), (2, 2, 2, 2) to 4."""
    return [(fixed_tensor(1, 2, 3, 3, scale=2.0), 7),
            (fixed_tensor(2, 2, 2, 2, scale=2.0, phase=1.0, step=1.3), 4)]


# targets of the loss: image 0 has 4 ignored pixels, image 1 one; the second case none
LOSS_TARGETS = [[[[0, 0, 1, IGNORE], [0, 1, 1, IGNORE], [2, IGNORE, 1, 1], [2, 2, IGNORE, 0]],
                 [[1, 1, 0, 0], [IGNORE, 2, 2, 0], [1, 2, 2, 0], [1, 1, 0, 0]]],
                [[[0, 3, 1], [2, 0, 3], [1, 2, 0]]]]


def loss_inputs():
    """Two (logits, target) cases: (2, 3, 4, 4) with ignored pixels, (1, 4, 3, 3) without."""
    return [(fixed_tensor(2, 3, 4, 4, scale=2.0), torch.tensor(LOSS_TARGETS[0])),
            (fixed_tensor(1, 4, 3, 3, scale=1.5, phase=3.0), torch.tensor(LOSS_TARGETS[1]))]


def points_inputs():
    """Two (points, labels, image_size, gaussian_matrix, label_embedding) cases: B=2, N=3,
    D=8, image_size 16; B=1, N=2, D=6, image_size 32."""
    return [(torch.tensor([[[3.0, 10.0], [0.0, 15.0], [7.0, 2.0]],
                           [[12.0, 5.0], [1.0, 1.0], [15.0, 8.0]]]),
             torch.tensor([[1, 0, 1], [0, 0, 1]]), 16,
             fixed_tensor(2, 4, step=1.1), fixed_tensor(2, 8, scale=0.5, phase=2.0)),
            (torch.tensor([[[20.0, 3.0], [9.0, 31.0]]]), torch.tensor([[0, 1]]), 32,
             fixed_tensor(2, 3, scale=1.5, phase=1.0), fixed_tensor(2, 6, scale=0.5, phase=4.0))]


def best_of_three_inputs():
    """Two (mask_logits, iou_pred, target) cases. Case 0: B=2, 4 x 4, candidates clearly
    apart (the best: candidate 1 of image 0, candidate 2 of image 1). Case 1: B=1, an empty
    target and a candidate 0 that predicts nothing either (an empty union)."""
    target = (fixed_tensor(2, 4, 4, phase=0.4) > 0).float()
    toward = torch.tensor([[0.5, 3.0, -1.0], [-0.5, 1.0, 2.5]])[:, :, None, None]
    logits = fixed_tensor(2, 3, 4, 4, scale=1.5, phase=0.3) + toward * (2 * target[:, None] - 1)
    iou_pred = 0.5 + 0.4 * fixed_tensor(2, 3, phase=1.1)
    empty = torch.zeros(1, 3, 3)
    logits_empty = fixed_tensor(1, 3, 3, 3, scale=2.0, phase=2.0)
    logits_empty[0, 0] = -1.0 - logits_empty[0, 0].abs()
    return [(logits, iou_pred, target),
            (logits_empty, 0.5 + 0.4 * fixed_tensor(1, 3, phase=3.0), empty)]


# ============================================================================ helpers


def _call(fn, label: str, *args, hint: str = "", when: str = ""):
    """``fn(*args)`` with warnings silenced; an exception becomes a CheckFailure that names
    the call (NotImplementedError: the exercise is not written yet), with ``hint`` when the
    error's message holds ``when``."""
    try:
        with quiet():
            return fn(*args)
    except CheckFailure:
        raise
    except NotImplementedError as error:
        raise CheckFailure(f"{label} raised NotImplementedError: the exercise is not written "
                           f"yet. Replace `raise NotImplementedError` with your code, run "
                           f"the cell, then this check again.") from error
    except Exception as error:   # the student's code crashed: name the call that did
        extra = hint if when in str(error) else ""
        raise CheckFailure(f"{label} raised {type(error).__name__}: {error}. {extra}".strip()
                           ) from error


def _build(cls, label: str, signature: str, *args, **kwargs) -> nn.Module:
    try:
        with quiet():
            model = cls(*args, **kwargs)
    except TypeError as error:
        raise CheckFailure(f"{label} failed ({error}); keep the signature {signature}."
                           ) from error
    except NotImplementedError as error:
        raise CheckFailure(f"{label} raised NotImplementedError: the exercise is not written "
                           f"yet. Replace `raise NotImplementedError` with your code.") from error
    if not isinstance(model, nn.Module):
        name = signature.split("(")[0]
        fail(f"{name} must be an nn.Module: class {name}(nn.Module), calling "
             f"super().__init__() first in __init__.")
    return model


def _unchanged(label: str, pairs) -> None:
    """Fail when an input was changed in place: ``pairs`` of (name, before, after)."""
    for name, before, after in pairs:
        if not torch.equal(before, after.detach()):
            fail(f"{label} changed {name} in place; leave the inputs alone and build new "
                 f"tensors (no +=, no [...] = assignments, no in-place methods ending in _).")


def _dims(x) -> str:
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


# ============================================================================ rotation


def _copy_names(stored, B: int) -> list[str]:
    return [f"image {i % B} turned {i // B} times" for i in range(len(stored))]


def _name_copies(rotated, stored, B: int, label: str) -> None:
    """Name the first wrong copy of ``rotated`` by the stored copy it equals, if any."""
    stored = np.asarray(stored)
    names = _copy_names(stored, B)
    for j, copy in enumerate(as_array(rotated)):
        if np.array_equal(copy, stored[j]):
            continue
        same = [i for i in range(len(stored)) if np.array_equal(copy, stored[i])]
        holds = (f"holds {names[same[0]]}" if same else
                 "is no rotation of an input image by a multiple of 90 degrees")
        fail(f"{label}: copy {j} {holds}; it should hold {names[j]} (k * 90 degrees, "
             f"torch.rot90(images, k, dims=(2, 3))). The copies come in four blocks of B = "
             f"{B}: block k holds every image turned k times, in the batch's order.")
    fail(f"{label} differs from the stored copies.")


def _check_rotate_case(fn, case: int, images: torch.Tensor) -> None:
    B, C, H, W = images.shape
    label = f"rotate_batch(images of shape {(B, C, H, W)})"
    given = images.clone()
    out = _call(fn, label, given)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        got = f"{type(out).__name__}" + (f" of {len(out)} items" if isinstance(out, (tuple, list))
                                         else "")
        fail(f"{label} returned {got}; return the pair (rotated, labels).")
    rotated, labels = out
    if isinstance(rotated, (list, tuple)):
        fail(f"{label}: rotated is a {type(rotated).__name__}; torch.cat the four blocks into "
             f"one tensor of shape {(4 * B, C, H, W)}.")
    require_tensor(rotated, f"{label}: rotated")
    if tuple(rotated.shape) == (4, B, C, H, W):
        fail(f"{label}: rotated has shape (4, B, C, H, W) = {(4, B, C, H, W)}: torch.stack "
             f"adds an axis; torch.cat the four blocks along dim 0, giving (4B, C, H, W).")
    require_tensor(rotated, f"{label}: rotated", shape=(4 * B, C, H, W),
                   hint="Four rotated copies of every image: (4B, C, H, W).")
    if not isinstance(labels, torch.Tensor):
        fail(f"{label}: labels is a {type(labels).__name__}; return a tensor of int64 "
             f"(torch.long) rotation indices.")
    if labels.dtype != torch.long:
        fail(f"{label}: labels have dtype {labels.dtype}; use int64 (torch.long): "
             f"F.cross_entropy takes class indices as long integers.")
    if tuple(labels.shape) != (4 * B,):
        fail(f"{label}: labels have shape {tuple(labels.shape)}, expected ({4 * B},): one "
             f"label per copy.")

    require_finite(rotated, f"{label}: rotated")
    stored = TABLES["rotate"]
    values = rotated.detach().round().long()
    if not torch.equal(values.double(), rotated.detach().double()):
        fail(f"{label}: the copies hold values that are not in the arange images; rotating "
             f"only moves pixels (torch.rot90), it never computes new values.")
    expected = stored["expected"][case]
    if not close(values, expected, rtol=0, atol=0):
        for copies, message in known(stored, case):
            if close(values, copies, rtol=0, atol=0):
                fail(f"rotate_batch: {message}")
        _name_copies(values, expected, B, label)
    labels_stored = TABLES["rotate_labels"]
    got = labels.tolist()
    if got != labels_stored["expected"][case]:
        for right, message in known(labels_stored, case):
            if got == right:
                fail(f"rotate_batch: {message}")
        fail(f"{label}: labels {got}, expected {labels_stored['expected'][case]}: copy j of "
             f"block k = j // B has the label k.")
    _unchanged(label, [("images", images, given)])


def check_rotate_batch(fn) -> None:
    """Check ``rotate_batch(images)`` on two fixed batches of arange images."""
    what = "rotate_batch"
    for case, images in enumerate(rotate_inputs()):
        _check_rotate_case(fn, case, images)
    x = fixed_tensor(2, 3, 4, 4).requires_grad_(True)
    rotated, _ = _call(fn, f"{what}(images of shape (2, 3, 4, 4))", x)
    require_tensor(rotated, f"{what}: rotated")
    require_grad(rotated, f"{what}: rotated")
    x64 = fixed_tensor(1, 1, 2, 2).double()
    rotated64, _ = _call(fn, f"{what}(float64 images)", x64)
    if getattr(rotated64, "dtype", None) != torch.float64:
        fail(f"{what} of float64 images returned {getattr(rotated64, 'dtype', None)}: keep "
             f"the images' dtype (a rotation only moves pixels).")
    passed(what, "four blocks of B copies, block k turned k * 90 degrees (torch.rot90 over "
                 "the image plane), int64 labels k, for B = 2 and 3")


# ============================================================================ the decoder

DECODER_SIGNATURE = "Decoder(feature_dim, width=32, image_size=32)"


def _make_decoder(cls, feature_dim, width, image_size):
    kwargs = {k: v for k, v in (("width", width), ("image_size", image_size)) if v is not None}
    call = f"Decoder({', '.join([str(feature_dim)] + [f'{k}={v}' for k, v in kwargs.items()])})"
    return _build(cls, call, DECODER_SIGNATURE, feature_dim, **kwargs), call


def _check_decoder_structure(decoder, feature_dim, width, image_size, call) -> None:
    width, image_size = width or 32, image_size or 32
    grid_side = image_size // 8
    convs = _modules(decoder, nn.ConvTranspose2d)
    if not convs:
        fail(f"{call} has no nn.ConvTranspose2d; the decoder grows the grid with three "
             f"ConvTranspose2d(kernel_size=4, stride=2, padding=1), each doubling the grid_side.")
    if len(convs) != 3:
        fail(f"{call} has {len(convs)} ConvTranspose2d layers; it needs three, each doubling "
             f"the grid_side: image_size / 8 -> / 4 -> / 2 -> image_size.")
    for conv in convs:
        settings = (conv.kernel_size, conv.stride, conv.padding, conv.output_padding)
        if settings != ((4, 4), (2, 2), (1, 1), (0, 0)):
            fail(f"{call}: a ConvTranspose2d has kernel_size={conv.kernel_size[0]}, "
                 f"stride={conv.stride[0]}, padding={conv.padding[0]}, output_padding="
                 f"{conv.output_padding[0]}; each is ConvTranspose2d(in, out, kernel_size=4, "
                 f"stride=2, padding=1), which doubles the grid_side exactly: (s - 1) * 2 - 2 + 4 "
                 f"= 2 s.")
    channels = sorted(((c.in_channels, c.out_channels) for c in convs), reverse=True)
    expected = [(4 * width, 2 * width), (2 * width, width), (width, 3)]
    if channels != expected:
        fail(f"{call}: the ConvTranspose2d layers map the channels {channels}, expected "
             f"{expected}: 4 * width -> 2 * width -> width -> 3 (width={width}).")
    if min(convs, key=lambda m: m.in_channels).bias is None:
        fail(f"{call}: the last ConvTranspose2d has no bias; keep it (bias=True, the "
             f"default): it is the pixels' offset.")
    linears = _modules(decoder, nn.Linear)
    size = 4 * width * grid_side ** 2
    if len(linears) != 1:
        fail(f"{call} has {len(linears)} nn.Linear layers; it needs one, "
             f"Linear(feature_dim, 4 * width * (image_size / 8) ** 2) = Linear({feature_dim}, "
             f"{size}), whose output is viewed as (B, 4 * width, image_size / 8, "
             f"image_size / 8).")
    if (linears[0].in_features, linears[0].out_features) != (feature_dim, size):
        fail(f"{call}: the Linear maps {linears[0].in_features} -> "
             f"{linears[0].out_features}, expected {feature_dim} -> 4 * width * (image_size "
             f"/ 8) ** 2 = {size}: 4 * width = {4 * width} channels on a {grid_side} x {grid_side} grid.")
    norms = sorted((m.num_features for m in _modules(decoder, nn.BatchNorm2d)), reverse=True)
    if 3 in norms and width != 3:
        fail(f"{call}: a BatchNorm2d normalises the 3 output channels; put nothing after the "
             f"last ConvTranspose2d (normalised pixels take both signs and any scale).")
    if norms != [2 * width, width]:
        fail(f"{call}: its BatchNorm2d layers have {norms} channels, expected "
             f"[{2 * width}, {width}]: a BatchNorm2d (and a ReLU) after each of the first two "
             f"ConvTranspose2d layers.")


def _check_decoder_shape(cls, feature_dim, width, image_size) -> torch.Tensor:
    decoder, call = _make_decoder(cls, feature_dim, width, image_size)
    _check_decoder_structure(decoder, feature_dim, width, image_size, call)
    size = image_size or 32
    h = fixed_tensor(2, feature_dim, phase=float(feature_dim))
    label = f"{call}(h of shape (2, {feature_dim}))"
    out = _call(decoder.train(), label, h)
    require_tensor(out, label, shape=(2, 3, size, size),
                   hint=f"An image (B, 3, image_size, image_size): a {size // 8} x {size // 8} "
                        f"grid doubled three times. Use the arguments width and image_size, "
                        f"not fixed numbers.")
    require_finite(out, label)
    return out


def check_decoder(cls) -> None:
    """Check ``Decoder(feature_dim, width=32, image_size=32)``: its layers, the shapes of its
    images, the signs of its pixels, its outputs with fixed weights, its gradients."""
    what = "Decoder"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for case in DECODER_SHAPE_CASES:
            out = _check_decoder_shape(cls, *case)
        feature_dim, width, image_size = DECODER_CASE
        decoder, call = _make_decoder(cls, feature_dim, width, image_size)
        _check_decoder_structure(decoder, feature_dim, width, image_size, call)
        h = decoder_input().requires_grad_(True)
        label = f"{call}(h of shape {tuple(h.shape)})"
        random_out = _call(decoder.train(), label, h)
    require_tensor(random_out, label, shape=(3, 3, image_size, image_size))
    require_grad(random_out, what)
    with quiet():
        random_out.square().mean().backward()
    if h.grad is None or not bool(h.grad.abs().sum() > 0):
        fail(f"{what}: no gradient reaches h, so the encoder below would not learn; do not "
             f"detach h inside forward().")
    for layer in _modules(decoder, nn.Linear) + _modules(decoder, nn.ConvTranspose2d):
        if layer.weight.grad is None or not bool(layer.weight.grad.abs().sum() > 0):
            fail(f"{what}: the weight of {type(layer).__name__}({layer.weight.shape[1]}, "
                 f"{layer.weight.shape[0]}, ...) gets no gradient; is it used in forward()?")

    stored = TABLES["decoder"]
    fixed = _call(decoder_values, f"{label} with fixed weights", fill_decoder(decoder),
                  decoder_input())
    require_tensor(fixed, f"{label} with fixed weights")
    if close(fixed, stored["expected"], rtol=1e-3, atol=1e-4):
        passed(what, "Linear to 4 * width channels on an (image_size / 8)^2 grid, three "
                     "ConvTranspose2d(kernel_size=4, stride=2, padding=1) 4w -> 2w -> w -> 3 "
                     "with BatchNorm2d and ReLU after the first two, pixels of both signs, "
                     "outputs with fixed weights as stored, gradients reach h")
        return
    for values, message in known(stored):
        if close(fixed, values, rtol=1e-3, atol=1e-4):
            fail(f"{what}: {message}")
    for image in (out, random_out, fixed):
        if float(image.detach().min()) >= 0:
            fail(f"{what}: every pixel of the output is >= 0; normalised pixels take both "
                 f"signs: put nothing after the last ConvTranspose2d (no ReLU, no Sigmoid).")
    fail(f"{what}: with every parameter set from a formula, the output pixels (rows and "
         f"columns 0, 5, 10, 15) are {short(fixed)}, expected {short(stored['expected'])}. "
         f"Order: Linear, view as (B, 4 * width, side, side), then ConvTranspose2d, "
         f"BatchNorm2d, ReLU, ConvTranspose2d, BatchNorm2d, ReLU, ConvTranspose2d.")


# ============================================================================ the head

HEAD_SIGNATURE = "SegmentationHead(embed_dim, num_classes)"


def _check_head_structure(head, embed_dim, num_classes, call) -> None:
    linears = _modules(head, nn.Linear)
    if not linears:
        fail(f"{call} has no nn.Linear; the head is one nn.Linear(embed_dim, num_classes) "
             f"applied to every patch token on its own.")
    if len(linears) > 1:
        fail(f"{call} has {len(linears)} nn.Linear layers; the head is a single "
             f"nn.Linear(embed_dim, num_classes) (a linear probe of the patch features).")
    layer = linears[0]
    if (layer.in_features, layer.out_features) != (embed_dim, num_classes):
        fail(f"{call}: the Linear maps {layer.in_features} -> {layer.out_features}, "
             f"expected embed_dim -> num_classes = {embed_dim} -> {num_classes}.")
    n_params = sum(p.numel() for p in head.parameters())
    if n_params != embed_dim * num_classes + num_classes:
        fail(f"{call} has {n_params} parameters; nn.Linear({embed_dim}, {num_classes}) with "
             f"its bias has {embed_dim * num_classes + num_classes}, and the head holds "
             f"nothing else.")


def _shape_hint(shape, B, K, g) -> str:
    L = g * g
    if shape == (B, g, g, K):
        return ("the classes are last, (B, g, g, num_classes); they go in dim 1, (B, "
                "num_classes, g, g), as F.interpolate and F.cross_entropy expect.")
    if shape in ((B, L, K), (B, K, L)):
        return "the tokens are not laid on the g x g grid yet: reshape L into (g, g)."
    return "(B, num_classes, g, g) with g = sqrt(L)."


def check_segmentation_head(cls) -> None:
    """Check ``SegmentationHead(embed_dim, num_classes)``: one Linear, the logits' layout on
    the patch grid (with fixed weights), gradients."""
    what = "SegmentationHead"
    stored = TABLES["head"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for case, (embed_dim, K, tokens) in enumerate(head_inputs()):
            call = f"SegmentationHead({embed_dim}, {K})"
            head = _build(cls, call, HEAD_SIGNATURE, embed_dim, K)
            _check_head_structure(head, embed_dim, K, call)
            B, L, _ = tokens.shape
            g = int(round(L ** 0.5))
            given = tokens.clone().requires_grad_(True)
            label = f"{call}(patch tokens of shape {tuple(tokens.shape)})"
            out = _call(head.train(), label, given)
            require_tensor(out, label)
            if tuple(out.shape) != (B, K, g, g):
                fail(f"{label} has shape {tuple(out.shape)}, expected {(B, K, g, g)}: "
                     + _shape_hint(tuple(out.shape), B, K, g))
            require_finite(out, label)
            require_grad(out, what)
            with quiet():
                out.square().sum().backward()
            if given.grad is None or not bool((given.grad.abs().sum(-1) > 0).all()):
                fail(f"{what}: the gradient does not reach every patch token; apply the "
                     f"Linear to every token, without detaching.")
            _unchanged(label, [("the patch tokens", tokens, given)])
            fill_head(head)
            fixed = _call(head, f"{label} with fixed weights", tokens.clone())
            require_tensor(fixed, label, shape=(B, K, g, g))
            diagnose(fixed, stored["expected"][case], known(stored, case),
                     f"{label} with the Linear's weights set from a formula",
                     hint="Token l sits at row l // g, column l % g (row-major); the logits "
                          "of its classes go in dim 1.")
    passed(what, "one Linear(embed_dim, num_classes) on every token, logits laid out "
                 "(B, num_classes, g, g) with token l at row l // g, column l % g, for g = 3 "
                 "and 4, gradients reach every token")


# ============================================================================ upsampling


def check_upsample_logits(fn) -> None:
    """Check ``upsample_logits(logits, size)`` on two fixed cases."""
    what, stored = "upsample_logits", TABLES["upsample"]
    for case, (logits, size) in enumerate(upsample_inputs()):
        B, K, g, _ = logits.shape
        label = f"{what}(logits of shape {(B, K, g, g)}, {size})"
        given = logits.clone().requires_grad_(True)
        out = _call(fn, label, given, size)
        require_tensor(out, label, shape=(B, K, size, size),
                       hint="(B, K, size, size): interpolate to size=(size, size).")
        require_finite(out, label)
        require_grad(out, what)
        diagnose(out, stored["expected"][case], known(stored, case), label,
                 hint="F.interpolate(logits, size=(size, size), mode='bilinear', "
                      "align_corners=False).")
        _unchanged(label, [("logits", logits, given)])
    passed(what, "bilinear, align_corners=False, on the logits, for a size that is not a "
                 "multiple of g and one that is")


# ============================================================================ the loss


def check_segmentation_loss(fn) -> None:
    """Check ``segmentation_loss(logits, target)`` on two fixed cases (with and without
    ignored pixels)."""
    what, stored = "segmentation_loss", TABLES["loss"]
    for case, (logits, target) in enumerate(loss_inputs()):
        B, K, H, W = logits.shape
        ignored = int((target == IGNORE).sum())
        label = (f"{what}(logits {(B, K, H, W)}, target {(B, H, W)} with {ignored} pixels "
                 f"of IGNORE)")
        given, target_in = logits.clone().requires_grad_(True), target.clone()
        loss = _call(fn, label, given, target_in,
                     hint="A target of 255 is no class: pass ignore_index=IGNORE to "
                          "F.cross_entropy so that those pixels count nothing.",
                     when="out of bounds")
        require_tensor(loss, label)
        if loss.dim() != 0:
            fail(f"{label} should be one number (a 0-dim tensor), got shape "
                 f"{tuple(loss.shape)}: the mean over the pixels that count.")
        require_finite(loss, label, hint="Are all the pixels of an image ignored? They are "
                                         "not here: average over the pixels that count.")
        require_grad(loss, what)
        diagnose(loss, stored["expected"][case], known(stored, case), label,
                 hint="Pixel-wise cross-entropy over the K classes of dim 1, averaged over "
                      "the pixels whose target is not IGNORE.")
        _unchanged(label, [("target", target, target_in), ("logits", logits, given)])
        with quiet():
            loss.backward()
        counted = (given.grad.abs().sum(1) > 0) if given.grad is not None else None
        if counted is None or not torch.equal(counted, target != IGNORE):
            fail(f"{what}: the gradient should reach the logits of every pixel that counts "
                 f"and of no ignored pixel (target == IGNORE).")
    right = stored["expected"]
    passed(what, f"{right[0]:.4f} and {right[1]:.4f} for the fixed inputs: cross-entropy over "
                 f"the classes, the mean over the pixels that count, IGNORE pixels count "
                 f"nothing")


# ============================================================================ the point prompt


def check_encode_points(fn) -> None:
    """Check ``encode_points(points, labels, image_size, gaussian_matrix, label_embedding)``."""
    what, stored = "encode_points", TABLES["points"]
    for case, (points, labels, size, gaussian, embedding) in enumerate(points_inputs()):
        (B, N, _), D = points.shape, embedding.shape[1]
        label = (f"{what}(points {(B, N, 2)}, labels {(B, N)}, image_size={size}, "
                 f"gaussian_matrix {tuple(gaussian.shape)}, label_embedding {(2, D)})")
        inputs = (points.clone(), labels.clone(), size, gaussian.clone(),
                  embedding.clone().requires_grad_(True))
        out = _call(fn, label, *inputs)
        require_tensor(out, label)
        if tuple(out.shape) == (B, N, D // 2):
            fail(f"{label} has shape {(B, N, D // 2)}, half of D = {D}: concatenate "
                 f"sin(proj) and cos(proj) along the last dimension.")
        require_tensor(out, label, shape=(B, N, D), hint="One vector of D per point.")
        require_finite(out, label)
        diagnose(out, stored["expected"][case], known(stored, case), label,
                 hint="c = (points + 0.5) / image_size; c = 2 * c - 1; proj = 2 * pi * (c @ "
                      "gaussian_matrix); cat([sin(proj), cos(proj)], dim=-1) + "
                      "label_embedding[labels].")
        require_grad(out, f"{what} (with respect to label_embedding)")
        with quiet():
            out.sum().backward()
        grad = inputs[4].grad
        if grad is None or not bool((grad.abs().sum(1) > 0).all()):
            fail(f"{what}: the gradient does not reach label_embedding (a learned parameter "
                 f"in SAM): add label_embedding[labels] itself, without detaching.")
        _unchanged(label, [("points", points, inputs[0]), ("labels", labels, inputs[1]),
                           ("gaussian_matrix", gaussian, inputs[3])])
    passed(what, "pixel centres (+ 0.5) scaled to [-1, 1], 2 pi (c @ gaussian_matrix), sin "
                 "then cos, plus the label's embedding, for two sizes")


# ============================================================================ best of three

BEST_HINT = ("bce + dice per image and candidate, the min over the 3 candidates, the mean "
             "over the images; plus the mean squared error of iou_pred against the IoU of "
             "the hard masks (mask_logits > 0, target > 0.5), 0 where the union is empty, "
             "without gradient.")


def check_best_of_three_loss(fn) -> None:
    """Check ``best_of_three_loss(mask_logits, iou_pred, target)`` on two fixed cases."""
    what, stored = "best_of_three_loss", TABLES["best_of_three"]
    for case, (logits, iou_pred, target) in enumerate(best_of_three_inputs()):
        B, _, H, W = logits.shape
        label = (f"{what}(mask_logits {(B, 3, H, W)}, iou_pred {(B, 3)}, target {(B, H, W)}"
                 + (", an empty target and a candidate predicting nothing)" if case else ")"))
        inputs = (logits.clone().requires_grad_(True), iou_pred.clone().requires_grad_(True),
                  target.clone())
        loss = _call(fn, label, *inputs)
        require_tensor(loss, label)
        if loss.dim() != 0:
            fail(f"{label} should be one number (a 0-dim tensor), got shape "
                 f"{tuple(loss.shape)}: the mean over the images of the best candidate's "
                 f"mask loss, plus the mean squared error of the IoU predictions.")
        require_finite(loss, label,
                       hint="Where the union is empty (an empty hard mask and an empty "
                            "target) the IoU is 0 by the text's convention, not 0 / 0 = NaN: "
                            "divide only where the union is positive (torch.where).")
        require_grad(loss, what)
        diagnose(loss, stored["expected"][case], known(stored, case), label, hint=BEST_HINT)
        _unchanged(label, [("mask_logits", logits, inputs[0]),
                           ("iou_pred", iou_pred, inputs[1]), ("target", target, inputs[2])])
        if case:
            continue
        with quiet():
            loss.backward()
        grad_logits, grad_iou = inputs[0].grad, inputs[1].grad
        learns = [[c for c in range(3)
                   if grad_logits is not None and bool(grad_logits[b, c].abs().sum() > 0)]
                  for b in range(B)]
        best = TABLES["best_candidate"]["expected"]
        if learns != [[c] for c in best]:
            extra = (" The IoU target is a number without gradient: compute it from the hard "
                     "masks under torch.no_grad() (or .detach() it)."
                     if all(len(c) == 3 for c in learns) else "")
            fail(f"{what}: the masks get a gradient at the candidates {learns} of each image; "
                 f"only the best candidate (lowest bce + dice) of each image learns its mask: "
                 f"{[[c] for c in best]} here.{extra}")
        if grad_iou is None or not bool((grad_iou.abs() > 0).all()):
            fail(f"{what}: iou_pred does not get a gradient at every candidate; the IoU head "
                 f"learns the quality of all three: the mean squared error over all B * 3.")
    right = stored["expected"]
    passed(what, f"{right[0]:.4f} and {right[1]:.4f} for the fixed inputs: bce + dice (+1 "
                 f"smoothing) per candidate, the best candidate of each image learns its "
                 f"mask, the IoU head learns every candidate's hard-mask IoU (0 for an empty "
                 f"union)")


__all__ = ["IGNORE", "best_of_three_inputs", "check_best_of_three_loss", "check_decoder",
           "check_encode_points", "check_rotate_batch", "check_segmentation_head",
           "check_segmentation_loss", "check_upsample_logits", "decoder_input",
           "decoder_values", "fill_decoder", "fill_head", "head_inputs", "loss_inputs",
           "points_inputs", "rotate_inputs", "upsample_inputs"]
