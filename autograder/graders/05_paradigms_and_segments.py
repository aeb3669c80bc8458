"""Grader of notebook 05 (paradigms and segments: rotation prediction, an autoencoder's
decoder, segmentation from patch features, a point prompt, SAM's best-of-three loss).

Never released, never mounted in a sandbox. Every property draws its inputs from ``rng``
(fresh each run), calls the student's code in the scoring worker and checks the answer
against this module's own computation, written in NumPy (float64) from the text of the
exercises:

* rotate_batch: (B, C, n, n) -> (4B, C, n, n) and int64 labels (4B,); copy k of an image
  is the image turned k quarter turns as torch.rot90(images, k, dims=(2, 3)) turns it, one
  turn putting entry (a, b) at (n - 1 - b, a); four blocks of B, block k holding every
  image turned k times, in the batch's order; labels k; differentiable (a rearrangement);
* Decoder(feature_dim, width=32, image_size=32): a Linear to 4 * width channels on an
  (image_size / 8)^2 grid, then three ConvTranspose2d(kernel_size=4, stride=2, padding=1)
  4w -> 2w -> w -> 3, each doubling the side, BatchNorm2d and ReLU after the first two and
  nothing after the last (normalised pixels take both signs, of any size); the forward
  pass recomputed from the module's own parameters, in training and in eval mode;
* SegmentationHead(embed_dim, num_classes): one nn.Linear applied to each token alone;
  (B, L, D) -> (B, K, g, g), g = sqrt(L), token l at row l // g, column l % g;
* upsample_logits: bilinear interpolation of the logits with align_corners=False
  (source coordinate (i + 0.5) * g / size - 0.5, clamped at 0), shape (B, K, size, size);
* segmentation_loss: pixel-wise cross-entropy, the mean over the pixels whose target is
  not IGNORE = 255; ignored pixels change nothing; a 0-dim tensor in the graph;
* encode_points: c = 2 * (points + 0.5) / image_size - 1 with points (x, y),
  proj = 2 pi c @ gaussian_matrix, [sin(proj), cos(proj)] + label_embedding[labels]
  (row 0 background, row 1 foreground); gradients reach label_embedding; inputs unchanged;
* best_of_three_loss: per candidate bce (mean over pixels) + dice with +1 smoothing on
  sigmoid probabilities; the mean over images of the min over the three candidates; plus
  the mean over all B * 3 candidates of (iou_pred - iou) ** 2, iou of the hard masks
  (logits > 0, target > 0.5), 0 for an empty union, carrying no gradient.

The loss of exercise 7 is split into its two terms by the answer's own values: with
iou_pred set to 0 and to each unit vector, a loss A + mean((iou_pred - u) ** 2) gives its
IoU targets u and its mask term A, so a mistake in one term costs that term's property
alone. The gradient of the mask logits is judged on inputs whose best candidate is clear.

Properties are kept apart: rotations are judged per copy and label whatever the order,
the order whatever the turn; a head's placement apart from its per-token map; the decoder's
output signs, shapes and gradients apart from its exact forward pass.
"""
from __future__ import annotations

import math

import numpy as np

from autograder.grader_tools import as_array, close, put
from autograder.scoring import Property

IGNORE = 255


# ============================================================================ helpers


def _ints(rng, low, high) -> int:
    """A Python int in [low, high] (inclusive)."""
    return int(rng.integers(low, high + 1))


def _seed_worker(worker, rng) -> None:
    """The worker's torch generator from this run's rng (module initialisation)."""
    worker.call("torch.manual_seed", _ints(rng, 1, 2 ** 31 - 2), keep="_seed")


def _kept(worker, name: str, what: str) -> dict:
    """Type, dtype, shape and requires_grad of a kept result that must be a torch tensor."""
    kind = worker.get(name, "__class__.__qualname__")
    module = worker.get(name, "__class__.__module__")
    if not (isinstance(module, str) and module.startswith("torch")
            and kind in ("Tensor", "Parameter")):
        raise AssertionError(f"{what} should be a torch.Tensor, got {module}.{kind}")
    return {"dtype": worker.get(name, "dtype"), "shape": tuple(worker.get(name, "shape")),
            "requires_grad": worker.get(name, "requires_grad")}


def _float(value, what: str) -> float:
    """A 0-dim answer as a float."""
    if isinstance(value, np.ndarray) and value.size == 1 and value.ndim == 0:
        value = float(value)
    is_number = isinstance(value, (float, int)) and not isinstance(value, bool)
    if not is_number:
        raise AssertionError(f"{what} should return a 0-dim tensor, got "
                             f"{getattr(value, 'shape', type(value).__name__)}")
    return float(value)


def _backward_weighted(worker, out: str, weights: np.ndarray, tag: str) -> None:
    """backward() of (out * weights).sum() in the worker."""
    worker.call("mul", weights, on=out, as_torch=True, keep=f"{tag}_prod")
    worker.call("sum", on=f"{tag}_prod", keep=f"{tag}_sum")
    worker.call("backward", on=f"{tag}_sum")


def _type_tail(type_name: str) -> str:
    return str(type_name).rsplit(".", 1)[-1]


def _modules_of(state: dict, kind: str) -> list[str]:
    return [name for name, type_name in state.get("modules", [])
            if _type_tail(type_name) == kind and name]


# ============================================================================ 1. rotations


def ref_rot90(x: np.ndarray, k: int) -> np.ndarray:
    """x (..., n, n) turned k quarter turns: each turn, out[i, j] = x[j, n - 1 - i]."""
    n = x.shape[-1]
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    for _ in range(k % 4):
        x = x[..., j, n - 1 - i]
    return x


def ref_rotate_batch(images: np.ndarray):
    B = len(images)
    rotated = np.concatenate([ref_rot90(images, k) for k in range(4)])
    labels = np.repeat(np.arange(4), B)
    return rotated, labels


def _rotate(worker, images, what):
    out = worker.call("rotate_batch", images, as_torch=True)
    if not isinstance(out, list) or len(out) != 2:
        raise AssertionError(f"{what} should return a tuple (rotated, labels)")
    B, C, n, _ = images.shape
    rotated = as_array(out[0], f"the rotated images of {what}", (4 * B, C, n, n))
    labels = as_array(out[1], f"the labels of {what}")
    if labels.shape != (4 * B,):
        raise AssertionError(f"the labels of {what} have shape {labels.shape}, expected "
                             f"({4 * B},): one label per copy")
    return rotated, labels


def _rotation_cases(rng):
    cases = [(_ints(rng, 2, 4), 3, _ints(rng, 4, 8)), (1, _ints(rng, 1, 3), _ints(rng, 2, 7)),
             (_ints(rng, 2, 5), 1, 2 * _ints(rng, 1, 3) + 1)]       # B = 1; an odd side
    rng.shuffle(cases)
    return cases


def _source(images: np.ndarray, copy: np.ndarray):
    """The index of the image whose pixels the copy holds (random pixels: unique), or None."""
    values = np.sort(copy.ravel())
    for b, image in enumerate(images):
        if image.size == copy.size and np.array_equal(np.sort(image.ravel()), values):
            return b
    return None


def _turn_mistake(copy, image, k) -> str:
    known = [
        (ref_rot90(image, -k), "it is turned the other way round: torch.rot90 with dims=(2, "
                               "3) turns from the row axis towards the column axis, so one "
                               "turn brings the top-right corner to the top-left"),
        (np.swapaxes(image, -1, -2), "it is the image transposed (mirrored along its "
                                     "diagonal), not turned: a transpose is not a rotation"),
        (image[..., ::-1, :], "it is the image flipped upside down, not turned"),
        (image[..., :, ::-1], "it is the image mirrored left to right, not turned"),
    ]
    for other, words in known:
        if np.array_equal(copy, other):
            return words
    return "it is not the image turned that many quarter turns"


def rotate_turns(worker, rng):
    """Each copy is its image turned as many quarter turns as its label says."""
    for B, C, n in _rotation_cases(rng):
        images = rng.standard_normal((B, C, n, n)).astype(np.float32)
        what = f"rotate_batch(images of shape {images.shape})"
        rotated, labels = _rotate(worker, images, what)
        ks = np.asarray(labels, dtype=np.float64)
        if not (np.all(np.isfinite(ks)) and np.array_equal(ks, np.rint(ks))
                and set(np.rint(ks).astype(int).tolist()) <= {0, 1, 2, 3}):
            raise AssertionError(f"the labels of {what} should be the numbers of quarter "
                                 f"turns, 0, 1, 2 or 3")
        for i, copy in enumerate(rotated):
            b, k = _source(images, copy), int(np.rint(ks[i]))
            if b is None:
                raise AssertionError(f"{what}: copy {i} does not hold the pixels of any image "
                                     f"of the batch (a rotation only moves pixels)")
            if not np.array_equal(copy, ref_rot90(images[b], k)):
                raise AssertionError(f"{what}: copy {i} has label {k}, but "
                                     f"{_turn_mistake(copy, images[b], k)} (the label k means "
                                     f"turned by k * 90 degrees, as torch.rot90(image, k, "
                                     f"dims=(2, 3)) turns it)")


def rotate_blocks(worker, rng):
    """Four blocks of B: block k holds every image (in the batch's order), labels k."""
    for B, C, n in _rotation_cases(rng)[:2] + [(_ints(rng, 3, 5), 3, _ints(rng, 3, 6))]:
        images = rng.standard_normal((B, C, n, n)).astype(np.float32)
        what = f"rotate_batch(images of shape {images.shape})"
        rotated, labels = _rotate(worker, images, what)
        _, expected = ref_rotate_batch(images)
        ks = np.asarray(labels, dtype=np.float64)
        if not np.array_equal(ks, expected):
            if B > 1 and np.array_equal(ks, np.tile(np.arange(4), B)):
                raise AssertionError(f"the labels of {what} are interleaved (0, 1, 2, 3, 0, 1, "
                                     f"...): the copies come in four blocks of B, block k "
                                     f"holding every image turned k times, labels k")
            raise AssertionError(f"the labels of {what} should be B zeros, then B ones, B twos "
                                 f"and B threes (four blocks of B, in the order k = 0, 1, 2, "
                                 f"3)")
        if not np.array_equal(rotated[:B], images):
            raise AssertionError(f"{what}: the first block (k = 0) should be the images "
                                 f"themselves, unturned, in the batch's order")
        for k in range(1, 4):
            for b in range(B):
                source = _source(images, rotated[k * B + b])
                if source != b:
                    held = "other pixels" if source is None else f"image {source}"
                    raise AssertionError(
                        f"{what}: copy {k * B + b} should be image {b} turned {k} times "
                        f"(block k holds every image in the batch's order); it holds {held}")


def rotate_types(worker, rng):
    """int64 labels of shape (4B,); the images' dtype kept; B = 1 and one channel work."""
    for B, C, dtype in [(1, 1, np.float64), (_ints(rng, 2, 4), 3, np.float32)]:
        n = _ints(rng, 2, 6)
        images = rng.standard_normal((B, C, n, n)).astype(dtype)
        put(worker, "rimg", images)
        worker.call("rotate_batch", worker.ref("rimg"), keep="rout")
        kind = worker.get("rout", "__class__.__qualname__")
        if kind not in ("tuple", "list") or worker.call("__len__", on="rout") != 2:
            raise AssertionError("rotate_batch should return a tuple (rotated, labels)")
        worker.call("__getitem__", 0, on="rout", keep="rout0")
        worker.call("__getitem__", 1, on="rout", keep="rout1")
        what = f"rotate_batch(images of shape {images.shape}, {images.dtype})"
        rotated, labels = _kept(worker, "rout0", "rotated"), _kept(worker, "rout1", "labels")
        if rotated["shape"] != (4 * B, C, n, n):
            raise AssertionError(f"{what}: the rotated images have shape {rotated['shape']}, "
                                 f"expected {(4 * B, C, n, n)}")
        want = "torch.float64" if dtype == np.float64 else "torch.float32"
        if rotated["dtype"] != want:
            raise AssertionError(f"{what}: the rotated images are {rotated['dtype']}: keep "
                                 f"the images' dtype (a rotation only moves pixels)")
        if labels["shape"] != (4 * B,):
            raise AssertionError(f"{what}: the labels have shape {labels['shape']}, expected "
                                 f"({4 * B},)")
        if labels["dtype"] != "torch.int64":
            raise AssertionError(f"{what}: the labels are {labels['dtype']}; cross-entropy "
                                 f"needs class indices as int64 (torch.long)")
        values = np.sort(as_array(worker.get("rout0", ""), "the rotated images").ravel())
        if not np.array_equal(values, np.sort(np.tile(images.ravel(), 4))):
            raise AssertionError(f"{what}: the copies should hold the images' pixels four "
                                 f"times over, unchanged (a rotation only moves pixels)")


def rotate_gradient(worker, rng):
    """The copies are in the images' graph: the gradient moves back to the pixels it came
    from (judged on the answer's own arrangement)."""
    B, n = _ints(rng, 1, 3), _ints(rng, 3, 5)
    images = rng.standard_normal((B, 3, n, n))
    put(worker, "gimg", images, requires_grad=True)
    worker.call("rotate_batch", worker.ref("gimg"), keep="gout")
    worker.call("__getitem__", 0, on="gout", keep="grot")
    info = _kept(worker, "grot", "the rotated images")
    if not info["requires_grad"]:
        raise AssertionError("the rotated images do not depend on the images in autograd's "
                             "eyes: no .detach(), .numpy() or new tensors inside")
    out = as_array(worker.get("grot", ""), "the rotated images")
    index = {float(v): i for i, v in enumerate(images.ravel())}
    if not all(float(v) in index for v in out.ravel()):
        raise AssertionError("the rotated copies are not made of the images' pixels")
    weights = rng.standard_normal(out.shape)
    _backward_weighted(worker, "grot", weights, "g")
    grad = worker.get("gimg", "grad")
    if not isinstance(grad, np.ndarray) or grad.shape != images.shape:
        raise AssertionError("no gradient reached the images through rotate_batch")
    expected = np.zeros(images.size)
    np.add.at(expected, [index[float(v)] for v in out.ravel()], weights.ravel())
    if not close(grad, expected.reshape(images.shape), rtol=1e-9, atol=1e-9):
        raise AssertionError("the gradient through rotate_batch is not that of a "
                             "rearrangement of the pixels")


# ============================================================================ 2. the decoder


def conv_transpose(x, weight, bias, stride, padding):
    """nn.ConvTranspose2d (groups 1, dilation 1, no output padding), by scattering every
    input pixel times the kernel into the output."""
    N, _, H, W = x.shape
    _, O, kh, kw = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    full = np.zeros((N, O, (H - 1) * sh + kh, (W - 1) * sw + kw))
    for i in range(kh):
        for j in range(kw):
            full[:, :, i:i + (H - 1) * sh + 1:sh, j:j + (W - 1) * sw + 1:sw] += \
                np.einsum("nchw,co->nohw", x, weight[:, :, i, j])
    out = full[:, :, ph:full.shape[2] - ph, pw:full.shape[3] - pw]
    return out + (0 if bias is None else bias[None, :, None, None])


def batch_norm(x, weight, bias, mean, var, eps, train):
    if train:
        mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    x = (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + eps)
    if weight is not None:
        x = x * weight[None, :, None, None] + bias[None, :, None, None]
    return x


def _relu(x):
    return np.maximum(x, 0.0)


def _decoder_cases(rng, n=3):
    cases = [(_ints(rng, 3, 12), _ints(rng, 4, 10), int(s), _ints(rng, 1, 3))
             for s in rng.permutation([8, 16, 32])[:n]]
    return cases


def _make_decoder(worker, rng, fd, width, size, name="dec"):
    _seed_worker(worker, rng)
    worker.call("Decoder", fd, width=width, image_size=size, keep=name)
    return name


def _decoder_parts(worker, name, state, call):
    """The Linear, the three ConvTranspose2d in the order of their channels and the
    BatchNorm2d after the first two; their settings. AssertionError if not found."""
    params, buffers = state["parameters"], state["buffers"]
    linears = _modules_of(state, "Linear")
    convs = _modules_of(state, "ConvTranspose2d")
    norms = _modules_of(state, "BatchNorm2d")
    if len(linears) != 1 or len(convs) != 3 or len(norms) != 2:
        raise AssertionError(f"{call}: could not find one nn.Linear, three "
                             f"nn.ConvTranspose2d and two nn.BatchNorm2d in the decoder (found "
                             f"{len(linears)}, {len(convs)} and {len(norms)}): its forward "
                             f"pass is checked on the layers the text describes")
    ins = {c: params[f"{c}.weight"].shape[0] for c in convs}
    outs = {c: params[f"{c}.weight"].shape[1] for c in convs}
    first = [c for c in convs if ins[c] not in outs.values()]
    chain = first[:1]
    while len(first) == 1 and len(chain) < 3:
        following = [c for c in convs if ins[c] == outs[chain[-1]] and c not in chain]
        if len(following) != 1:
            break
        chain.append(following[0])
    if len(chain) != 3:
        raise AssertionError(f"{call}: the three ConvTranspose2d do not chain their channels "
                             f"(each one's output channels the next one's input)")
    by_size = {params[f"{b}.weight"].shape[0] if f"{b}.weight" in params
               else buffers[f"{b}.running_mean"].shape[0]: b for b in norms}
    bns = [by_size.get(outs[chain[0]]), by_size.get(outs[chain[1]])]
    if None in bns or len(by_size) != 2:
        raise AssertionError(f"{call}: the BatchNorm2d layers do not match the channels of "
                             f"the first two ConvTranspose2d")
    settings = {c: {k: tuple(worker.get(name, f"{c}.{k}")) for k in
                    ("stride", "padding", "kernel_size", "output_padding", "dilation")}
                for c in chain}
    for c in chain:
        settings[c]["groups"] = worker.get(name, f"{c}.groups")
    eps = [float(worker.get(name, f"{b}.eps")) for b in bns]
    return linears[0], chain, bns, settings, eps


def ref_decoder(state, parts, h, train, final=None, relu_first=False, layout="channels"):
    """The forward pass from the parameters read back (float64). The keywords give known
    mistakes, for the messages."""
    params = {k: np.asarray(v, dtype=np.float64) for k, v in state["parameters"].items()}
    buffers = {k: np.asarray(v, dtype=np.float64) for k, v in state["buffers"].items()}
    linear, convs, bns, settings, eps = parts
    x = h @ params[f"{linear}.weight"].T
    if f"{linear}.bias" in params:
        x = x + params[f"{linear}.bias"]
    channels = params[f"{convs[0]}.weight"].shape[0]
    side = math.isqrt(x.shape[1] // channels)
    if layout == "channels":
        x = x.reshape(len(h), channels, side, side)
    else:
        x = x.reshape(len(h), side, side, channels).transpose(0, 3, 1, 2)
    for k, conv in enumerate(convs):
        s = settings[conv]
        x = conv_transpose(x, params[f"{conv}.weight"], params.get(f"{conv}.bias"),
                           s["stride"], s["padding"])
        if k < 2:
            bn = bns[k]
            norm = lambda z: batch_norm(z, params.get(f"{bn}.weight"), params.get(f"{bn}.bias"),
                                        buffers.get(f"{bn}.running_mean"),
                                        buffers.get(f"{bn}.running_var"), eps[k], train)
            x = norm(_relu(x)) if relu_first else _relu(norm(x))
    if final is not None:
        x = final(x)
    return x


def _settings_plain(settings) -> bool:
    return all(s["output_padding"] == (0, 0) and s["dilation"] == (1, 1) and s["groups"] == 1
               for s in settings.values())


def decoder_shapes(worker, rng):
    """(B, feature_dim) -> (B, 3, image_size, image_size), float32, finite; the defaults
    width=32, image_size=32."""
    cases = _decoder_cases(rng)
    for k, (fd, width, size, B) in enumerate(cases):
        call = f"Decoder({fd}, width={width}, image_size={size})"
        name = _make_decoder(worker, rng, fd, width, size, name=f"dec{k}")
        h = rng.standard_normal((B, fd)).astype(np.float32)
        out = worker.call("", h, on=name, as_torch=True)
        out = as_array(out, f"{call}(h of shape {h.shape})", (B, 3, size, size))
        if out.dtype != np.float32 or not np.all(np.isfinite(out)):
            raise AssertionError(f"{call}: the output should be finite float32 numbers")
        other = worker.call("", h[::-1] + 1, on=name, as_torch=True)
        if isinstance(other, np.ndarray) and np.array_equal(other, out):
            raise AssertionError(f"{call}: the output does not depend on h")
    fd = _ints(rng, 3, 10)
    _seed_worker(worker, rng)
    worker.call("Decoder", fd, keep="dec_default")
    h = rng.standard_normal((2, fd)).astype(np.float32)
    as_array(worker.call("", h, on="dec_default", as_torch=True),
             f"Decoder({fd}) with its default width and image_size, on h of shape {h.shape}",
             (2, 3, 32, 32))


def decoder_structure(worker, rng):
    """One Linear to 4w (image_size / 8)^2 values; three ConvTranspose2d(4, stride 2,
    padding 1), 4w -> 2w -> w -> 3; BatchNorm2d on 2w and w channels."""
    for k, (fd, width, size, _) in enumerate(_decoder_cases(rng, 2)):
        call = f"Decoder({fd}, width={width}, image_size={size})"
        name = _make_decoder(worker, rng, fd, width, size, name=f"sdec{k}")
        state = worker.state(name)
        params = state["parameters"]
        convs = _modules_of(state, "ConvTranspose2d")
        if len(convs) != 3:
            raise AssertionError(
                f"{call} has {len(convs)} nn.ConvTranspose2d layers; the text's decoder "
                f"upsamples with exactly three ConvTranspose2d(kernel_size=4, stride=2, "
                f"padding=1), each doubling the side (no F.interpolate, nn.Upsample or "
                f"plain convolutions)")
        pairs = sorted((params[f"{c}.weight"].shape[0], params[f"{c}.weight"].shape[1])
                       for c in convs)
        expected = sorted([(4 * width, 2 * width), (2 * width, width), (width, 3)])
        if pairs != expected:
            raise AssertionError(f"{call}: the ConvTranspose2d layers map channels "
                                 f"{sorted(pairs, reverse=True)}; expected 4w -> 2w -> w -> 3 "
                                 f"= {sorted(expected, reverse=True)}")
        for c in convs:
            got = {key: tuple(worker.get(name, f"{c}.{key}"))
                   for key in ("kernel_size", "stride", "padding", "output_padding",
                               "dilation")}
            if got["kernel_size"] != (4, 4) or got["stride"] != (2, 2) or \
                    got["padding"] != (1, 1) or got["output_padding"] != (0, 0) or \
                    got["dilation"] != (1, 1) or worker.get(name, f"{c}.groups") != 1:
                raise AssertionError(f"{call}: a ConvTranspose2d has kernel_size "
                                     f"{got['kernel_size']}, stride {got['stride']}, padding "
                                     f"{got['padding']}; the text's are kernel_size=4, "
                                     f"stride=2, padding=1 (the side doubles)")
        linears = _modules_of(state, "Linear")
        rows = 4 * width * (size // 8) ** 2
        if len(linears) != 1 or params[f"{linears[0]}.weight"].shape != (rows, fd):
            raise AssertionError(f"{call}: there should be one nn.Linear from feature_dim = "
                                 f"{fd} to 4 * width * (image_size / 8) ** 2 = {rows} values "
                                 f"(4 * width channels on an image_size / 8 square grid)")
        norms = _modules_of(state, "BatchNorm2d")
        sizes = sorted(state["buffers"][f"{b}.running_mean"].shape[0] for b in norms
                       if f"{b}.running_mean" in state["buffers"])
        if len(norms) != 2 or sizes != sorted([2 * width, width]):
            raise AssertionError(f"{call}: there should be two nn.BatchNorm2d, on the 2w and "
                                 f"w channels after the first two ConvTranspose2d (found "
                                 f"{len(norms)}, on {sizes} channels)")


def _diagnose_decoder(got, state, parts, h, train, call):
    variants = [
        (dict(final=np.tanh), "there is a tanh after the last ConvTranspose2d"),
        (dict(final=_relu), "there is a ReLU after the last ConvTranspose2d"),
        (dict(final=lambda x: 1 / (1 + np.exp(-x))), "there is a sigmoid after the last "
                                                    "ConvTranspose2d"),
        (dict(relu_first=True), "the ReLU comes before the BatchNorm2d; the text puts "
                                "BatchNorm2d, then ReLU"),
        (dict(layout="positions"), "the Linear's output is arranged position by position; "
                                   "view it as (B, 4 * width, side, side), channels first"),
    ]
    for kwargs, words in variants:
        if close(got, ref_decoder(state, parts, h, train, **kwargs), rtol=1e-3, atol=1e-4):
            raise AssertionError(f"{call}: {words}")
    raise AssertionError(f"{call}: the output is not Linear -> (4w, side, side) -> "
                         f"[ConvTranspose2d, BatchNorm2d, ReLU] x 2 -> ConvTranspose2d, "
                         f"recomputed from your decoder's parameters")


def decoder_forward(worker, rng):
    """The forward pass recomputed from the decoder's own parameters (BatchNorm's affine
    parameters and running statistics set here), in training mode and in eval mode."""
    for k, ((fd, width, size, _), train) in enumerate(zip(_decoder_cases(rng, 2),
                                                          (True, False))):
        call = f"Decoder({fd}, width={width}, image_size={size}) in " \
               f"{'training' if train else 'eval'} mode"
        name = _make_decoder(worker, rng, fd, width, size, name=f"fdec{k}")
        state = worker.state(name)
        parts = _decoder_parts(worker, name, state, call)
        if not _settings_plain(parts[3]):
            raise AssertionError(f"{call}: use ConvTranspose2d without output_padding, "
                                 f"dilation or groups")
        values = {}
        for bn in parts[2]:
            c = state["buffers"][f"{bn}.running_mean"].shape[0]
            if f"{bn}.weight" in state["parameters"]:
                values[f"{bn}.weight"] = rng.uniform(0.5, 2.0, c).astype(np.float32)
                values[f"{bn}.bias"] = rng.uniform(-0.5, 0.5, c).astype(np.float32)
            if not train:
                values[f"{bn}.running_mean"] = rng.uniform(-0.3, 0.3, c).astype(np.float32)
                values[f"{bn}.running_var"] = rng.uniform(0.5, 2.0, c).astype(np.float32)
        worker.call("load_state_dict", values, on=name, as_torch=True, strict=False)
        if not train:
            worker.call("eval", on=name, keep=f"{name}_eval")
        state = worker.state(name)
        B = _ints(rng, 2, 4)
        h = rng.standard_normal((B, fd)).astype(np.float32)
        got = as_array(worker.call("", h, on=name, as_torch=True), f"{call}(h)",
                       (B, 3, size, size))
        h64 = h.astype(np.float64)
        if not close(got, ref_decoder(state, parts, h64, train), rtol=1e-3, atol=1e-4):
            _diagnose_decoder(got, state, parts, h64, train, call)


def decoder_output_signs(worker, rng):
    """Nothing after the last layer: for large features (eval mode, so that BatchNorm
    keeps their scale) the output takes both signs and values beyond [-1, 1] (normalised
    pixels are not squashed)."""
    fd, width, size, _ = _decoder_cases(rng, 1)[0]
    call = f"Decoder({fd}, width={width}, image_size={size}) in eval mode, for large features"
    name = _make_decoder(worker, rng, fd, width, size, name="sgn")
    worker.call("eval", on=name, keep="sgn_eval")
    h = (1000 * rng.standard_normal((3, fd))).astype(np.float32)
    out = as_array(worker.call("", h, on=name, as_torch=True), f"{call}(h)")
    if not (out < 0).any() or not (out > 0).any():
        never = "negative" if (out >= 0).all() else "positive"
        raise AssertionError(f"{call}: the output is never {never}: normalised pixels take "
                             f"both signs, so there is no activation after the last "
                             f"ConvTranspose2d")
    if not np.all(np.isfinite(out)) or np.abs(out).max() <= 1.0:
        raise AssertionError(f"{call}: the output stays within [-1, 1]; there should be no "
                             f"squashing activation (tanh, sigmoid) after the last "
                             f"ConvTranspose2d")


def decoder_gradients(worker, rng):
    """In eval mode and float64: the gradient reaches h (it is the gradient of the output,
    by finite differences) and every parameter."""
    fd, width, size, _ = _decoder_cases(rng, 1)[0]
    call = f"Decoder({fd}, width={width}, image_size={size})"
    name = _make_decoder(worker, rng, fd, width, size, name="gdec")
    worker.call("double", on=name, keep="gdec_d")
    worker.call("eval", on=name, keep="gdec_e")
    B = _ints(rng, 2, 3)
    h = 30 * rng.standard_normal((B, fd))          # the features' path, not the biases, counts
    put(worker, "gh", h, requires_grad=True)
    worker.call("", worker.ref("gh"), on=name, keep="gy")
    info = _kept(worker, "gy", f"{call}(h)")
    if not info["requires_grad"]:
        raise AssertionError(f"{call}(h) is not in the graph of h and the parameters: no "
                             f".detach() or new tensors inside")
    weights = rng.standard_normal(info["shape"])
    _backward_weighted(worker, "gy", weights, "gd")
    grad = worker.get("gh", "grad")
    if not isinstance(grad, np.ndarray) or grad.shape != h.shape or not np.any(grad):
        raise AssertionError(f"{call}: no gradient reached h")
    state = worker.state(name, grads=True)
    missing = [n for n in state["parameters"]
               if n not in state["grads"] or not np.any(state["grads"][n])]
    if not state["parameters"] or missing:
        raise AssertionError(f"{call}: no gradient reached the parameters {missing[:4]}: every "
                             f"layer should take part in the output")

    def slope_matches(direction, eps=1e-5):
        plus = as_array(worker.call("", h + eps * direction, on=name, as_torch=True), call)
        minus = as_array(worker.call("", h - eps * direction, on=name, as_torch=True), call)
        slope = float(((plus - minus) * weights).sum() / (2 * eps))
        return math.isclose(slope, float((grad * direction).sum()), rel_tol=1e-4, abs_tol=1e-6)

    # a ReLU's kink between h - eps v and h + eps v spoils one difference now and then
    # (2 in 1000 draws of the master): a right gradient matches along one of three directions,
    # a wrong one along none
    if not any(slope_matches(rng.standard_normal(h.shape)) for _ in range(3)):
        raise AssertionError(f"{call}: the gradient that reaches h is not the gradient of the "
                             f"output")


# ============================================================================ 3. the head


def _make_head(worker, D, K, name):
    worker.call("SegmentationHead", D, K, keep=name)
    return name


def _head_linear(state, D, K, call):
    """The (K, D) weight and its bias, by name."""
    params = state["parameters"]
    weights = [n for n, p in params.items() if np.shape(p) == (K, D)]
    if len(weights) != 1:
        raise AssertionError(f"{call}: could not find the one nn.Linear(embed_dim={D}, "
                             f"num_classes={K}) (a weight of shape ({K}, {D}))")
    bias = weights[0].rsplit(".", 1)[0] + ".bias" if "." in weights[0] else "bias"
    return weights[0], bias if bias in params else None


def _head_cases(rng):
    cases = []
    for L in rng.permutation([1, 4, 9, 16, 25, 49])[:4]:
        D, K = _ints(rng, 3, 12), _ints(rng, 2, 7)
        if D == K:
            D += 1
        cases.append((_ints(rng, 1, 3), int(L), D, K))
    return cases


def _head_out(worker, name, x, call):
    B, L, _ = x.shape
    g = math.isqrt(L)
    return as_array(worker.call("", x, on=name, as_torch=True), f"{call}(tokens of shape "
                    f"{x.shape})", None), g


def ref_token_logits(state, weight, bias, x):
    W = np.asarray(state["parameters"][weight], dtype=np.float64)
    out = x.astype(np.float64) @ W.T
    if bias is not None:
        out = out + np.asarray(state["parameters"][bias], dtype=np.float64)
    return out                                                    # (B, L, K)


def ref_head_grid(token_logits):
    """(B, L, K) -> (B, K, g, g), token l at row l // g, column l % g."""
    B, L, K = token_logits.shape
    g = math.isqrt(L)
    grid = np.empty((B, K, g, g))
    for l in range(L):
        grid[:, :, l // g, l % g] = token_logits[:, l]
    return grid


def head_shape(worker, rng):
    """(B, L, D) -> (B, num_classes, g, g) float32, g = sqrt(L), for several L and B."""
    for k, (B, L, D, K) in enumerate(_head_cases(rng)):
        call = f"SegmentationHead({D}, {K})"
        name = _make_head(worker, D, K, f"sh{k}")
        x = rng.standard_normal((B, L, D)).astype(np.float32)
        g = math.isqrt(L)
        out = as_array(worker.call("", x, on=name, as_torch=True),
                       f"{call}(tokens of shape {x.shape})")
        if out.shape != (B, K, g, g):
            raise AssertionError(f"{call}(tokens of shape {x.shape}) has shape {out.shape}, "
                                 f"expected (B, num_classes, g, g) = {(B, K, g, g)}")
        if out.dtype != np.float32:
            raise AssertionError(f"{call}: float32 tokens gave {out.dtype} logits")
        other = worker.call("", x + 1, on=name, as_torch=True)
        if isinstance(other, np.ndarray) and np.array_equal(other, out):
            raise AssertionError(f"{call}: the logits do not depend on the tokens")


def head_structure(worker, rng):
    """One nn.Linear(embed_dim, num_classes) and no other parameters."""
    _, _, D, K = _head_cases(rng)[0]
    call = f"SegmentationHead({D}, {K})"
    state = worker.state(_make_head(worker, D, K, "st"))
    linears = _modules_of(state, "Linear")
    count = sum(int(np.size(p)) for p in state["parameters"].values())
    if len(linears) != 1 or count != K * D + K or \
            state["parameters"].get(f"{linears[0]}.weight", np.empty(0)).shape != (K, D):
        raise AssertionError(f"{call}: the head should be one nn.Linear(embed_dim, "
                             f"num_classes) with its bias and nothing else ({K * D + K} "
                             f"parameters; found {len(linears)} Linear layer(s), {count} "
                             f"parameters)")


def _placement(out, token_logits, tol=1e-4):
    """For each image and grid cell, the token whose logits it holds (or None)."""
    B, K, g, _ = out.shape
    cells = out.transpose(0, 2, 3, 1).reshape(B, g * g, K).astype(np.float64)
    found = []
    for b in range(B):
        distance = np.abs(cells[b][:, None, :] - token_logits[b][None, :, :]).max(-1)
        scale = tol * (1 + np.abs(token_logits[b]).max())
        best = distance.argmin(1)
        if not np.all(distance[np.arange(len(best)), best] <= scale):
            return None
        found.append(best)
    return np.array(found)


def head_per_token(worker, rng):
    """Every grid cell holds one token's logits, W x_l + b, each token once (the head's
    own parameters; placement aside)."""
    for k, (B, L, D, K) in enumerate(_head_cases(rng)[:3]):
        call = f"SegmentationHead({D}, {K})"
        name = _make_head(worker, D, K, f"pt{k}")
        state = worker.state(name)
        weight, bias = _head_linear(state, D, K, call)
        x = rng.standard_normal((B, L, D)).astype(np.float32)
        out, g = _head_out(worker, name, x, call)
        if out.shape != (B, K, g, g):
            raise AssertionError(f"{call}(tokens of shape {x.shape}) has shape {out.shape}, "
                                 f"expected {(B, K, g, g)}")
        tokens = ref_token_logits(state, weight, bias, x)
        where = _placement(out, tokens)
        if where is None:
            if np.allclose(out.reshape(B, L, K), tokens, rtol=1e-4, atol=1e-5):
                raise AssertionError(f"{call}: the class axis is not moved in front of the "
                                     f"grid: a plain reshape (or view) of the (B, L, K) "
                                     f"logits to (B, K, g, g) mixes classes and tokens")
            raise AssertionError(f"{call}: the logits at a grid cell are not one token's "
                                 f"Linear output W x_l + b: apply the Linear to every token "
                                 f"on its own")
        if any(len(set(row.tolist())) != L for row in where):
            raise AssertionError(f"{call}: some tokens appear at several cells and others at "
                                 f"none: every token has its own cell")


def head_row_major(worker, rng):
    """Token l at row l // g, column l % g (the ViT's row-major order of patches)."""
    for k, (B, L, D, K) in enumerate(_head_cases(rng)):
        if L == 1:
            L = 16
        call = f"SegmentationHead({D}, {K})"
        name = _make_head(worker, D, K, f"rm{k}")
        state = worker.state(name)
        weight, bias = _head_linear(state, D, K, call)
        x = rng.standard_normal((B, L, D)).astype(np.float32)
        out, g = _head_out(worker, name, x, call)
        tokens = ref_token_logits(state, weight, bias, x)
        expected = ref_head_grid(tokens)
        if close(out, expected, rtol=1e-4, atol=1e-5):
            continue
        if close(out, expected.transpose(0, 1, 3, 2), rtol=1e-4, atol=1e-5):
            raise AssertionError(f"{call}: the tokens are laid out column by column; token l "
                                 f"sits at row l // g, column l % g (row-major)")
        raise AssertionError(f"{call}(tokens of shape {x.shape}): logits[b, :, r, c] should "
                             f"be the Linear output of token l = r * g + c")


def head_gradient(worker, rng):
    """The logits are in the graph of the tokens (their gradient, by finite differences in
    float64) and of the Linear's parameters."""
    B, L, D, K = _ints(rng, 1, 3), 9, _ints(rng, 3, 8), _ints(rng, 2, 5)
    call = f"SegmentationHead({D}, {K})"
    name = _make_head(worker, D, K, "gh")
    x = rng.standard_normal((B, L, D))
    worker.call("double", on=name, keep="gh_d")
    put(worker, "gx", x, requires_grad=True)
    worker.call("", worker.ref("gx"), on=name, keep="gout")
    info = _kept(worker, "gout", f"{call}(tokens)")
    if not info["requires_grad"]:
        raise AssertionError(f"{call}: the logits are not in the graph of the tokens")
    weights = rng.standard_normal(info["shape"])
    _backward_weighted(worker, "gout", weights, "gh")
    grad = worker.get("gx", "grad")
    if not isinstance(grad, np.ndarray) or grad.shape != x.shape:
        raise AssertionError(f"{call}: no gradient reached the tokens")
    state = worker.state(name, grads=True)
    if not state["grads"] or not all(np.any(v) for v in state["grads"].values()):
        raise AssertionError(f"{call}: no gradient reached the Linear layer's parameters")
    v, eps = rng.standard_normal(x.shape), 1e-6
    plus = as_array(worker.call("", x + eps * v, on=name, as_torch=True), call)
    minus = as_array(worker.call("", x - eps * v, on=name, as_torch=True), call)
    if not math.isclose(float(((plus - minus) * weights).sum() / (2 * eps)),
                        float((grad * v).sum()), rel_tol=1e-5, abs_tol=1e-7):
        raise AssertionError(f"{call}: the gradient that reaches the tokens is not the "
                             f"gradient of the logits")


# ============================================================================ 4. upsampling


def _axis_weights(n_in: int, n_out: int, kind="bilinear") -> np.ndarray:
    """(n_out, n_in): row i holds the weights of output i along one axis."""
    M = np.zeros((n_out, n_in))
    for i in range(n_out):
        if kind == "bilinear":                       # align_corners=False
            src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        elif kind == "corners":                      # align_corners=True
            src = i * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        else:                                        # nearest
            M[i, min(int(math.floor(i * n_in / n_out)), n_in - 1)] = 1.0
            continue
        low = min(int(math.floor(src)), n_in - 1)
        high = min(low + 1, n_in - 1)
        frac = src - low
        M[i, low] += 1.0 - frac
        M[i, high] += frac
    return M


def ref_upsample(logits: np.ndarray, size: int, kind="bilinear") -> np.ndarray:
    rows = _axis_weights(logits.shape[2], size, kind)
    cols = _axis_weights(logits.shape[3], size, kind)
    return np.einsum("ri,bkij,cj->bkrc", rows, logits.astype(np.float64), cols)


def _softmax(x, axis):
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def _upsample(worker, logits, size, what):
    return as_array(worker.call("upsample_logits", logits, size, as_torch=True), what)


def upsample_values(worker, rng):
    """Bilinear with align_corners=False, on the logits (several grids and sizes)."""
    g = _ints(rng, 2, 6)
    cases = [(_ints(rng, 1, 2), _ints(rng, 2, 5), g, s) for g, s in
             [(2, 8), (_ints(rng, 3, 5), 16), (4, 14), (7, 32), (g, 11), (g, g)]]
    for B, K, g, size in cases:
        logits = (2 * rng.standard_normal((B, K, g, g))).astype(np.float32)
        what = f"upsample_logits(logits of shape {logits.shape}, {size})"
        got = _upsample(worker, logits, size, what)
        if got.shape != (B, K, size, size):
            raise AssertionError(f"{what} has shape {got.shape}, expected {(B, K, size, size)}")
        if close(got, ref_upsample(logits, size), rtol=1e-4, atol=1e-5):
            continue
        if g == size and not close(got, logits, rtol=1e-4, atol=1e-5):
            raise AssertionError(f"{what} should give the logits back: the grid already has "
                                 f"that size")
        known = [
            (ref_upsample(logits, size, "nearest"), "it is nearest-neighbour upsampling (blocks "
                                                    "of equal values): use bilinear"),
            (ref_upsample(logits, size, "corners"), "it interpolates with align_corners=True; "
                                                    "the text uses align_corners=False"),
            (ref_upsample(_softmax(logits, 1), size), "it interpolates the probabilities "
                                                      "(softmax first); interpolate the "
                                                      "logits themselves"),
            (_softmax(ref_upsample(logits, size), 1), "it returns probabilities (softmax "
                                                      "after); return the interpolated logits"),
        ]
        for other, words in known:
            if close(got, other, rtol=1e-4, atol=1e-5):
                raise AssertionError(f"{what} is wrong: {words}")
        raise AssertionError(f"{what} is not the bilinear interpolation of the logits with "
                             f"align_corners=False")


def upsample_shape_dtype(worker, rng):
    """(B, K, size, size) in the logits' dtype; a grid of one cell gives maps constant over
    the image."""
    B, K, g = _ints(rng, 1, 3), _ints(rng, 2, 5), _ints(rng, 2, 5)
    size = 4 * g
    logits = rng.standard_normal((B, K, g, g))
    put(worker, "ul", logits)
    worker.call("upsample_logits", worker.ref("ul"), size, keep="uo")
    info = _kept(worker, "uo", "upsample_logits")
    if info["shape"] != (B, K, size, size):
        raise AssertionError(f"upsample_logits(logits of shape {logits.shape}, {size}) has "
                             f"shape {info['shape']}, expected {(B, K, size, size)}")
    if info["dtype"] != "torch.float64":
        raise AssertionError(f"upsample_logits of float64 logits returned {info['dtype']}: "
                             f"keep the logits' dtype")
    one = rng.standard_normal((B, K, 1, 1)).astype(np.float32)
    got = _upsample(worker, one, 8, "upsample_logits(logits of a 1 x 1 grid, 8)")
    if got.shape != (B, K, 8, 8) or not np.all(np.isfinite(got)) or \
            not np.allclose(got, got[:, :, :1, :1], rtol=1e-6, atol=1e-6) or \
            np.array_equal(got, np.zeros_like(got)):
        raise AssertionError("upsample_logits of a 1 x 1 grid should give maps of the size "
                             "asked for, constant over the image")


def upsample_linear(worker, rng):
    """Logits in, logits out: linear in the logits (a sum in gives the sum of the outputs),
    in their graph, with the gradient of the map."""
    B, K, g, size = _ints(rng, 1, 2), _ints(rng, 2, 4), _ints(rng, 2, 4), _ints(rng, 6, 12)
    a = rng.standard_normal((B, K, g, g)).astype(np.float32)
    b = (3 * rng.standard_normal((B, K, g, g))).astype(np.float32)
    what = f"upsample_logits(logits of shape {a.shape}, {size})"
    fa, fb, fab = (_upsample(worker, v, size, what) for v in (a, b, a + b))
    if not close(fab, fa + fb, rtol=1e-5, atol=1e-5):
        raise AssertionError(f"{what} is not linear in the logits: interpolate the logits "
                             f"themselves (no softmax, sigmoid or argmax inside)")
    put(worker, "gl", a, requires_grad=True)
    worker.call("upsample_logits", worker.ref("gl"), size, keep="go")
    info = _kept(worker, "go", what)
    if not info["requires_grad"]:
        raise AssertionError(f"{what} is not in the graph of the logits")
    weights = rng.standard_normal(info["shape"])
    _backward_weighted(worker, "go", weights, "gu")
    grad = worker.get("gl", "grad")
    if not isinstance(grad, np.ndarray) or grad.shape != a.shape or \
            not math.isclose(float((grad * b).sum()), float((weights * fb).sum()),
                             rel_tol=1e-4, abs_tol=1e-4):
        raise AssertionError(f"{what}: the gradient that reaches the logits is not that of "
                             f"the upsampling")


# ============================================================================ 5. the loss


def _pixel_terms(logits, target):
    """Per pixel: -log softmax(logits)[target], and whether the pixel counts (float64)."""
    x = logits.astype(np.float64).transpose(0, 2, 3, 1)
    top = x.max(-1, keepdims=True)
    log_z = (top + np.log(np.exp(x - top).sum(-1, keepdims=True)))[..., 0]
    valid = target != IGNORE
    safe = np.where(valid, target, 0)
    picked = np.take_along_axis(x, safe[..., None], axis=-1)[..., 0]
    return np.where(valid, log_z - picked, 0.0), valid


def ref_segmentation_loss(logits, target) -> float:
    terms, valid = _pixel_terms(logits, target)
    return float(terms.sum() / valid.sum())


def ref_segmentation_grad(logits, target) -> np.ndarray:
    _, valid = _pixel_terms(logits, target)
    p = _softmax(logits.astype(np.float64), 1)
    onehot = np.zeros_like(p)
    safe = np.where(valid, target, 0)
    np.put_along_axis(onehot, safe[:, None], 1.0, axis=1)
    return (p - onehot) * valid[:, None] / valid.sum()


def _seg_case(rng, ignored=0.25, B=None):
    B = _ints(rng, 1, 3) if B is None else B
    K, H, W = _ints(rng, 2, 6), _ints(rng, 3, 7), _ints(rng, 3, 7)
    logits = (2 * rng.standard_normal((B, K, H, W))).astype(np.float32)
    target = rng.integers(0, K, size=(B, H, W)).astype(np.int64)
    target[rng.random((B, H, W)) < ignored] = IGNORE
    target.flat[int(rng.integers(target.size))] = int(rng.integers(K))      # one counts
    return logits, target


def _seg_loss(worker, logits, target, what):
    return _float(worker.call("segmentation_loss", logits, target, as_torch=True), what)


def segmentation_values(worker, rng):
    """The mean cross-entropy over the pixels that count (some ignored, in unequal numbers
    per image)."""
    cases = [_seg_case(rng, 0.0), _seg_case(rng, 0.3, B=_ints(rng, 2, 3)),
             _seg_case(rng, 0.6, B=_ints(rng, 2, 3))]
    _, target = cases[1]                                 # unequal counts per image
    counts = (target != IGNORE).reshape(len(target), -1).sum(1)
    if len(set(counts.tolist())) == 1:
        kept = np.flatnonzero(target[0] != IGNORE)
        target[0].flat[kept[0]] = IGNORE if len(kept) > 1 else target[0].flat[kept[0]]
        target[1].flat[np.flatnonzero(target[1] == IGNORE)[:1]] = 0
    _, target = cases[-1]
    target[0] = IGNORE                                   # an image that counts nothing
    target[-1, 0, 0] = 0
    for logits, target in cases:
        what = f"segmentation_loss(logits of shape {logits.shape}, target)"
        got = _seg_loss(worker, logits, target, what)
        expected = ref_segmentation_loss(logits, target)
        if math.isclose(got, expected, rel_tol=1e-4, abs_tol=1e-6):
            continue
        if not math.isfinite(got):
            raise AssertionError(f"{what} is not finite for a batch in which an image has no "
                                 f"pixel that counts (all IGNORE): the loss is the mean over "
                                 f"all the batch's pixels that count, not a mean of each "
                                 f"image's mean")
        terms, valid = _pixel_terms(logits, target)
        per_image = [terms[b].sum() / valid[b].sum() for b in range(len(terms))
                     if valid[b].any()]
        known = [
            (terms.sum() / terms.size, "the ignored pixels are counted in the mean: divide by "
                                       "the number of pixels that count"),
            (terms.sum(), "it is the sum over the pixels, not the mean"),
            (float(np.mean(per_image)), "it averages each image's mean; the text's loss is "
                                        "the mean over all the pixels that count"),
        ]
        for value, words in known:
            if math.isclose(got, value, rel_tol=1e-4, abs_tol=1e-6):
                raise AssertionError(f"{what} is wrong: {words}")
        raise AssertionError(f"{what} is not the mean over the pixels that count of the "
                             f"cross-entropy -log softmax(logits)[target]")


def segmentation_ignored(worker, rng):
    """Pixels whose target is IGNORE change nothing: any logits there give the same loss,
    and no gradient."""
    logits, target = _seg_case(rng, 0.4, B=2)
    what = f"segmentation_loss(logits of shape {logits.shape}, target with IGNORE pixels)"
    base = _seg_loss(worker, logits, target, what)
    noise = (50 * rng.standard_normal(logits.shape)).astype(np.float32)
    moved = logits + noise * (target == IGNORE)[:, None]
    if not math.isclose(_seg_loss(worker, moved, target, what), base, rel_tol=1e-5,
                        abs_tol=1e-6):
        raise AssertionError(f"{what}: changing the logits of ignored pixels changes the loss; "
                             f"pixels whose target is IGNORE = 255 count nothing")
    put(worker, "il", logits, requires_grad=True)
    worker.call("segmentation_loss", worker.ref("il"), target, as_torch=True, keep="iloss")
    _kept(worker, "iloss", what)
    worker.call("backward", on="iloss")
    grad = worker.get("il", "grad")
    if not isinstance(grad, np.ndarray) or grad.shape != logits.shape:
        raise AssertionError(f"{what}: no gradient reached the logits")
    if np.abs(grad * (target == IGNORE)[:, None]).max() > 0:
        raise AssertionError(f"{what}: ignored pixels get a gradient; they should count "
                             f"nothing")
    if not np.abs(grad * (target != IGNORE)[:, None]).max() > 0:
        raise AssertionError(f"{what}: the pixels that count get no gradient")


def segmentation_scalar(worker, rng):
    """A 0-dim float32 tensor in the graph of the logits; finite for large logits; its
    gradient that of its value (float64, finite differences)."""
    logits, target = _seg_case(rng, 0.2)
    put(worker, "sl", logits, requires_grad=True)
    worker.call("segmentation_loss", worker.ref("sl"), target, as_torch=True, keep="sloss")
    info = _kept(worker, "sloss", "segmentation_loss(...)")
    if info["shape"] != ():
        raise AssertionError(f"segmentation_loss should return a 0-dim tensor, got shape "
                             f"{info['shape']}")
    if info["dtype"] != "torch.float32":
        raise AssertionError(f"segmentation_loss of float32 logits returned {info['dtype']}")
    if not info["requires_grad"]:
        raise AssertionError("segmentation_loss is not in the graph of the logits: no "
                             ".item(), .detach() or .numpy() inside")
    big = (200 * rng.standard_normal(logits.shape)).astype(np.float32)
    value = _seg_loss(worker, big, target, "segmentation_loss of large logits")
    if not math.isfinite(value):
        raise AssertionError("segmentation_loss of logits of size about 200 is not finite: use "
                             "a stable log-softmax, not the log of a softmax")
    x = logits.astype(np.float64)
    put(worker, "dl", x, requires_grad=True)
    worker.call("segmentation_loss", worker.ref("dl"), target, as_torch=True, keep="dloss")
    worker.call("backward", on="dloss")
    grad = worker.get("dl", "grad")
    v, eps = rng.standard_normal(x.shape), 1e-6
    slope = (_seg_loss(worker, x + eps * v, target, "segmentation_loss")
             - _seg_loss(worker, x - eps * v, target, "segmentation_loss")) / (2 * eps)
    if not isinstance(grad, np.ndarray) or \
            not math.isclose(float((grad * v).sum()), slope, rel_tol=1e-4, abs_tol=1e-7):
        raise AssertionError("the gradient of segmentation_loss is not the gradient of its "
                             "value")


# ============================================================================ 6. points


def ref_positional(points, size, gaussian, half=0.5, centred=True, two_pi=True, order="sc",
                   xy=True, denominator=None):
    """[sin, cos] of 2 pi ((2 (p + 0.5) / size - 1) @ G), float64. The keywords give known
    mistakes, for the messages."""
    p = points.astype(np.float64)
    if not xy:
        p = p[..., ::-1]
    c = (p + half) / (size if denominator is None else denominator)
    if centred:
        c = 2 * c - 1
    proj = (c @ gaussian.astype(np.float64)) * (2 * np.pi if two_pi else 1.0)
    parts = [np.sin(proj), np.cos(proj)]
    return np.concatenate(parts if order == "sc" else parts[::-1], axis=-1)


def _point_case(rng, B=None, N=None, size=None):
    B = _ints(rng, 1, 3) if B is None else B
    N = _ints(rng, 1, 5) if N is None else N
    size = int(rng.choice([16, 37, 64, 1024])) if size is None else size
    half = int(rng.choice([2, 4, 8, 16]))
    points = (rng.random((B, N, 2)) * size).astype(np.float32)
    points[..., 0] = np.floor(points[..., 0])                 # pixels: whole x, any y
    labels = rng.integers(0, 2, size=(B, N)).astype(np.int64)
    gaussian = rng.standard_normal((2, half)).astype(np.float32)
    embedding = rng.standard_normal((2, 2 * half)).astype(np.float32)
    return points, labels, size, gaussian, embedding


def _encode(worker, points, labels, size, gaussian, embedding, what):
    return as_array(worker.call("encode_points", points, labels, size, gaussian, embedding,
                                as_torch=True), what)


def points_shape(worker, rng):
    """(B, N, D) float32, for one point, one image and several."""
    for B, N in [(1, 1), (_ints(rng, 2, 3), _ints(rng, 2, 6))]:
        points, labels, size, gaussian, embedding = _point_case(rng, B, N)
        D = embedding.shape[1]
        what = f"encode_points(points of shape {points.shape}, ..., label_embedding (2, {D}))"
        got = _encode(worker, points, labels, size, gaussian, embedding, what)
        if got.shape != (B, N, D):
            raise AssertionError(f"{what} has shape {got.shape}, expected (B, N, D) = "
                                 f"{(B, N, D)}")
        if got.dtype != np.float32 or not np.all(np.isfinite(got)):
            raise AssertionError(f"{what} should hold finite float32 numbers")
        other = _encode(worker, (points + 1) % size, labels, size, gaussian, embedding, what)
        if np.array_equal(other, got):
            raise AssertionError(f"{what} does not depend on the points")


def points_positional(worker, rng):
    """With a zero label embedding: [sin, cos] of 2 pi (2 (p + 0.5) / image_size - 1) @ G,
    points as (x, y)."""
    for _ in range(3):
        points, labels, size, gaussian, embedding = _point_case(rng)
        zero = np.zeros_like(embedding)
        what = f"encode_points(points, labels, {size}, gaussian_matrix, label_embedding)"
        got = _encode(worker, points, labels, size, gaussian, zero, what)
        expected = ref_positional(points, size, gaussian)
        if close(got, expected, rtol=1e-4, atol=1e-4):
            continue
        known = [
            (dict(half=0.0), "the pixel's centre is (points + 0.5) / image_size; the 0.5 is "
                             "missing"),
            (dict(centred=False), "the coordinates stay in [0, 1]; map them to [-1, 1] with "
                                  "2 * c - 1 before the projection"),
            (dict(two_pi=False), "the projection is not multiplied by 2 * pi"),
            (dict(order="cs"), "the cosines come before the sines; the encoding is "
                               "[sin(proj), cos(proj)]"),
            (dict(xy=False), "the coordinates are used as (y, x); points hold (x, y) = "
                             "(column, row), in that order"),
            (dict(denominator=size - 1), "the coordinates are divided by image_size - 1; "
                                         "divide by image_size"),
        ]
        for kwargs, words in known:
            if close(got, ref_positional(points, size, gaussian, **kwargs), rtol=1e-4,
                     atol=1e-4):
                raise AssertionError(f"{what} is wrong: {words}")
        raise AssertionError(f"{what} with a zero label_embedding is not [sin(proj), "
                             f"cos(proj)] with proj = 2 pi ((2 (points + 0.5) / image_size - 1)"
                             f" @ gaussian_matrix)")


def points_labels(worker, rng):
    """label_embedding[labels] is added: row 1 for a foreground click, row 0 background."""
    for B, N in [(_ints(rng, 1, 3), _ints(rng, 3, 6)), (1, 2)]:
        points, labels, size, gaussian, e1 = _point_case(rng, B, N)
        labels.flat[0], labels.flat[1] = 0, 1                       # both kinds
        e2 = rng.standard_normal(e1.shape).astype(np.float32)
        what = "encode_points(points, labels, ...)"
        a = _encode(worker, points, labels, size, gaussian, e1, what)
        b = _encode(worker, points, labels, size, gaussian, e2, what)
        if a.shape != b.shape or a.shape != (B, N, e1.shape[1]):
            raise AssertionError(f"{what} has shape {a.shape}, expected "
                                 f"{(B, N, e1.shape[1])}")
        diff, expected = a - b, e1[labels] - e2[labels]
        if close(diff, expected, rtol=1e-4, atol=1e-4):
            continue
        if close(diff, 0 * expected, atol=1e-6):
            raise AssertionError(f"{what}: the label embedding is not added; the encoding is "
                                 f"the positional part + label_embedding[labels]")
        if close(diff, e1[1 - labels] - e2[1 - labels], rtol=1e-4, atol=1e-4):
            raise AssertionError(f"{what}: the rows of label_embedding are swapped; row 0 is "
                                 f"for a background click (label 0), row 1 for a foreground "
                                 f"one (label 1)")
        raise AssertionError(f"{what}: each point should get label_embedding[its label] added "
                             f"to its positional encoding")


def points_gradient(worker, rng):
    """The gradient reaches label_embedding: each row collects the points of its label."""
    points, labels, size, gaussian, embedding = _point_case(rng, 2, 4)
    labels[0, 0], labels[1, 1] = 0, 1
    put(worker, "pe", embedding, requires_grad=True)
    worker.call("encode_points", points, labels, size, gaussian, worker.ref("pe"),
                as_torch=True, keep="penc")
    info = _kept(worker, "penc", "encode_points(...)")
    if not info["requires_grad"]:
        raise AssertionError("the encoding is not in the graph of label_embedding: add "
                             "label_embedding[labels] itself (no .detach(), no copy)")
    weights = rng.standard_normal(info["shape"]).astype(np.float32)
    _backward_weighted(worker, "penc", weights, "pg")
    grad = worker.get("pe", "grad")
    expected = np.zeros(embedding.shape)
    np.add.at(expected, labels.ravel(), weights.reshape(-1, embedding.shape[1]))
    if not isinstance(grad, np.ndarray) or not close(grad, expected, rtol=1e-4, atol=1e-5):
        raise AssertionError("the gradient of label_embedding should be, for each row, the sum "
                             "of the gradients of the points with that label")


def points_inputs_unchanged(worker, rng):
    """points, labels, gaussian_matrix and label_embedding are left as they were."""
    points, labels, size, gaussian, embedding = _point_case(rng)
    refs = [put(worker, n, v) for n, v in
            (("ip", points), ("il", labels), ("ig", gaussian), ("ie", embedding))]
    worker.call("encode_points", refs[0], refs[1], size, refs[2], refs[3], keep="ienc")
    encoding = worker.get("ienc", "")
    if not isinstance(encoding, np.ndarray) or not np.any(encoding):
        raise AssertionError("encode_points should return the encoding as a tensor")
    for name, value, words in (("ip", points, "points"), ("il", labels, "labels"),
                               ("ig", gaussian, "gaussian_matrix"),
                               ("ie", embedding, "label_embedding")):
        now = worker.get(name, "")
        if not isinstance(now, np.ndarray) or not np.array_equal(now, value):
            raise AssertionError(f"encode_points changed {words} in place (an in-place += or "
                                 f"*= on an input); compute new tensors instead")


# ============================================================================ 7. best of three


def _sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * x))


def ref_mask_losses(logits, target, dice_smooth=1.0, hard_dice=False) -> np.ndarray:
    """(B, 3) bce (mean over pixels) + dice, float64."""
    x = logits.astype(np.float64)
    t = np.broadcast_to(target.astype(np.float64)[:, None], x.shape)
    bce = (np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))).mean(axis=(2, 3))
    p = (x > 0).astype(np.float64) if hard_dice else _sigmoid(x)
    dice = 1 - (2 * (p * t).sum(axis=(2, 3)) + dice_smooth) / \
        (p.sum(axis=(2, 3)) + t.sum(axis=(2, 3)) + dice_smooth)
    return bce, dice


def ref_iou(logits, target, soft=False) -> np.ndarray:
    m = _sigmoid(logits.astype(np.float64)) if soft else (logits > 0).astype(np.float64)
    t = np.broadcast_to((target > 0.5).astype(np.float64)[:, None], m.shape)
    inter = (m * t).sum(axis=(2, 3))
    union = (m + t - m * t).sum(axis=(2, 3))
    return np.where(union > 0, inter / np.maximum(union, 1e-300), 0.0)


def ref_best_of_three(logits, iou_pred, target) -> float:
    bce, dice = ref_mask_losses(logits, target)
    return float((bce + dice).min(axis=1).mean()
                 + ((iou_pred.astype(np.float64) - ref_iou(logits, target)) ** 2).mean())


def _b3_case(rng, B=None, H=None, W=None):
    B = _ints(rng, 2, 4) if B is None else B
    H = _ints(rng, 4, 8) if H is None else H
    W = _ints(rng, 4, 8) if W is None else W
    target = (rng.random((B, H, W)) < rng.uniform(0.2, 0.6)).astype(np.float32)
    logits = rng.standard_normal((B, 3, H, W)) * rng.uniform(1, 3)
    logits = logits + 2 * (2 * target[:, None] - 1) * rng.random((B, 3, 1, 1))
    logits = (np.sign(logits) * (np.abs(logits) + 0.01)).astype(np.float32)   # not near 0
    return logits, target


def _b3(worker, x, q, t, what="best_of_three_loss(...)"):
    return _float(worker.call("best_of_three_loss", x, q, t, as_torch=True), what)


def _b3_terms(worker, rng, logits, target):
    """The answer's own mask term A and IoU targets u, if its loss is A + mean((iou_pred -
    u) ** 2) over all B * 3 candidates; None where it is not."""
    B = len(logits)
    put(worker, "bx", logits)
    put(worker, "bt", target)
    x, t = worker.ref("bx"), worker.ref("bt")
    zero = np.zeros((B, 3), np.float32)
    base = _b3(worker, x, zero, t)
    u = np.empty(3 * B)
    for j in range(3 * B):
        q = zero.copy()
        q.flat[j] = 1.0
        u[j] = (1 - 3 * B * (_b3(worker, x, q, t) - base)) / 2
    u = u.reshape(B, 3)
    A = base - float((u ** 2).mean())
    q = rng.random((B, 3)).astype(np.float32)
    check = _b3(worker, x, q, t)
    if not math.isclose(check, A + float(((q - u) ** 2).mean()), rel_tol=1e-4, abs_tol=1e-5):
        return None
    return A, u


def best_scalar(worker, rng):
    """A 0-dim float32 tensor in the graph of mask_logits and iou_pred; one image works."""
    for B, H, W in [(1, _ints(rng, 4, 6), _ints(rng, 7, 9)), (_ints(rng, 2, 3), 5, 5)]:
        logits, target = _b3_case(rng, B, H, W)
        put(worker, "sx", logits, requires_grad=True)
        put(worker, "sq", rng.random((B, 3)).astype(np.float32), requires_grad=True)
        worker.call("best_of_three_loss", worker.ref("sx"), worker.ref("sq"), target,
                    as_torch=True, keep="sl")
        info = _kept(worker, "sl", "best_of_three_loss(...)")
        if info["shape"] != ():
            raise AssertionError(f"best_of_three_loss should return a 0-dim tensor, got shape "
                                 f"{info['shape']}")
        if info["dtype"] != "torch.float32":
            raise AssertionError(f"best_of_three_loss of float32 inputs returned "
                                 f"{info['dtype']}")
        if not info["requires_grad"]:
            raise AssertionError("best_of_three_loss is not in the graph of its inputs: no "
                                 ".item(), .detach() or .numpy() inside")
        if not math.isfinite(_float(worker.get("sl", ""), "best_of_three_loss")):
            raise AssertionError(f"best_of_three_loss of {B} image(s) is not finite")


def best_mask_term(worker, rng):
    """The mask term: the mean over the images of the smallest bce + dice of the three
    candidates (the loss less its IoU term, found from the answer's own values)."""
    for B in (_ints(rng, 2, 3), _ints(rng, 3, 4)):
        logits, target = _b3_case(rng, B)
        what = f"best_of_three_loss (mask_logits of shape {logits.shape})"
        terms = _b3_terms(worker, rng, logits, target)
        if terms is None:               # an IoU term of another form: assume its target right
            iou = ref_iou(logits, target).astype(np.float32)
            A = _b3(worker, logits, iou, target)
        else:
            A = terms[0]
        bce, dice = ref_mask_losses(logits, target)
        losses = bce + dice
        if math.isclose(A, losses.min(1).mean(), rel_tol=1e-4, abs_tol=1e-5):
            continue
        known = [
            (losses.mean(), "it averages the three candidates; only the best candidate of "
                            "each image counts (the min over the candidates)"),
            (losses.min(), "it takes the best candidate over the whole batch; take the best "
                           "of each image, then the mean over the images"),
            (losses.max(1).mean(), "it takes the worst candidate (max); take the best (min)"),
            (losses.min(1).sum(), "it sums the images' best losses; take their mean"),
            (bce.min(1).mean(), "the dice loss is missing"),
            (dice.min(1).mean(), "the binary cross-entropy is missing"),
            (sum(ref_mask_losses(logits, target, dice_smooth=0.0)).min(1).mean(),
             "the dice has no +1 smoothing"),
            (sum(ref_mask_losses(logits, target, hard_dice=True)).min(1).mean(),
             "the dice uses the hard mask; it uses the probabilities sigmoid(mask_logits)"),
            ((bce * logits[0, 0].size + dice).min(1).mean(),
             "the binary cross-entropy is summed over the pixels; average it"),
        ]
        for value, words in known:
            if math.isclose(A, value, rel_tol=1e-4, abs_tol=1e-5):
                raise AssertionError(f"{what}: the mask term is wrong: {words}")
        raise AssertionError(f"{what}: the mask term is not the mean over the images of the "
                             f"min over the three candidates of bce + dice")


def best_iou_term(worker, rng):
    """The IoU term: the mean over all B * 3 candidates of (iou_pred - iou) ** 2, iou of
    the hard masks (logits > 0, target > 0.5), 0 for an empty union."""
    for empty in (False, True):
        logits, target = _b3_case(rng, _ints(rng, 2, 3))
        if empty:                       # an empty target and an empty candidate: iou 0
            target[0] = 0.0
            logits[0, 1] = -np.abs(logits[0, 1]) - 0.5
            logits[-1, 2] = np.where(target[-1] > 0.5, 3.0, -3.0)    # a perfect candidate
        what = f"best_of_three_loss (mask_logits of shape {logits.shape})"
        terms = _b3_terms(worker, rng, logits, target)
        if terms is None and empty and not math.isfinite(
                _b3(worker, logits, np.zeros((len(logits), 3), np.float32), target)):
            raise AssertionError(f"{what} is not finite when a candidate and the target are "
                                 f"both empty: the IoU is 0 where the union is empty")
        if terms is None:
            raise AssertionError(f"{what}: the loss is not the mask term plus the mean over "
                                 f"all B * 3 candidates of (iou_pred - iou) ** 2")
        u = terms[1]
        expected = ref_iou(logits, target)
        if close(u, expected, rtol=1e-3, atol=1e-3):
            continue
        if not np.all(np.isfinite(u)):
            raise AssertionError(f"{what}: the IoU target is not finite where a candidate and "
                                 f"the target are both empty; the IoU is 0 where the union is "
                                 f"empty")
        if close(u, ref_iou(logits, target, soft=True), rtol=1e-3, atol=1e-3):
            raise AssertionError(f"{what}: the IoU target is computed on probabilities; it is "
                                 f"the IoU of the hard mask (mask_logits > 0) with the target")
        if empty and close(u[1:], expected[1:], rtol=1e-3, atol=1e-3):
            raise AssertionError(f"{what}: the IoU of an empty candidate with an empty target "
                                 f"should be 0 (the union is empty)")
        raise AssertionError(f"{what}: the IoU target is not |M & T| / |M | T| of the hard "
                             f"mask M = mask_logits > 0 and T = target > 0.5")


def _clear_case(rng, B):
    """Inputs whose best candidate per image is clear under any reasonable mask loss."""
    H, W = _ints(rng, 5, 8), _ints(rng, 5, 8)
    target = (rng.random((B, H, W)) < 0.4).astype(np.float32)
    logits = 2 * rng.standard_normal((B, 3, H, W))
    best = rng.integers(0, 3, size=B)
    for b, c in enumerate(best):
        logits[b, c] = 3 * (2 * target[b] - 1) + 0.3 * rng.standard_normal((H, W))
    logits = (np.sign(logits) * (np.abs(logits) + 0.01)).astype(np.float32)
    return logits, target, best


def best_mask_gradient(worker, rng):
    """Only the best candidate of each image learns its mask: the others' logits get no
    gradient (not through the min, not through the IoU target)."""
    B = _ints(rng, 2, 4)
    logits, target, best = _clear_case(rng, B)
    put(worker, "mx", logits, requires_grad=True)
    worker.call("best_of_three_loss", worker.ref("mx"), rng.random((B, 3)).astype(np.float32),
                target, as_torch=True, keep="ml")
    _kept(worker, "ml", "best_of_three_loss(...)")
    worker.call("backward", on="ml")
    grad = worker.get("mx", "grad")
    if not isinstance(grad, np.ndarray) or grad.shape != logits.shape:
        raise AssertionError("no gradient reached mask_logits")
    got = np.abs(grad).reshape(B, 3, -1).max(-1) > 0
    missing = [b for b in range(B) if not got[b, best[b]]]
    if missing:
        raise AssertionError(f"the best candidate of image {missing[0]} gets no gradient: "
                             f"every image's best candidate learns its mask (the min over "
                             f"its three candidates, then the mean over the images)")
    others = [(b, c) for b in range(B) for c in range(3) if c != best[b] and got[b, c]]
    if others:
        b, c = others[0]
        raise AssertionError(f"candidate {c} of image {b} is not its best, yet its mask "
                             f"logits get a gradient: only the best candidate's bce + dice "
                             f"counts (a min over the candidates, not a mean), and the IoU "
                             f"target is a number without gradient, from the hard masks")


def best_iou_pred_gradient(worker, rng):
    """iou_pred gets the gradient of the mean squared error: 2 (iou_pred - iou) / (3 B),
    against the answer's own IoU targets."""
    B = _ints(rng, 2, 3)
    logits, target = _b3_case(rng, B)
    terms = _b3_terms(worker, rng, logits, target)
    u = ref_iou(logits, target) if terms is None else terms[1]
    q = rng.random((B, 3)).astype(np.float32)
    put(worker, "qq", q, requires_grad=True)
    worker.call("best_of_three_loss", logits, worker.ref("qq"), target, as_torch=True,
                keep="ql")
    info = _kept(worker, "ql", "best_of_three_loss(...)")
    if not info["requires_grad"]:
        raise AssertionError("best_of_three_loss is not in the graph of iou_pred")
    worker.call("backward", on="ql")
    grad = worker.get("qq", "grad")
    if not isinstance(grad, np.ndarray) or grad.shape != q.shape or not np.any(grad):
        raise AssertionError("no gradient reached iou_pred: the IoU head learns from "
                             "(iou_pred - iou) ** 2 (do not detach iou_pred)")
    if not close(grad, 2 * (q - u) / (3 * B), rtol=1e-3, atol=1e-5):
        raise AssertionError("the gradient of iou_pred is not that of the mean over all "
                             "B * 3 candidates of (iou_pred - iou) ** 2")


# ============================================================================ the points

PROPERTIES = {
    "test_rotate_batch": [
        Property("each copy is its image turned label x 90 degrees, the way torch.rot90 "
                 "turns (dims=(2, 3))", 1.0, rotate_turns),
        Property("four blocks of B in the batch's order, labels 0...0 1...1 2...2 3...3", 0.5,
                 rotate_blocks),
        Property("int64 labels of shape (4B,); the images' dtype kept; B = 1, one channel",
                 0.25, rotate_types),
        Property("differentiable: the gradient moves back to the pixels", 0.25,
                 rotate_gradient),
    ],
    "test_decoder": [
        Property("(B, feature_dim) -> (B, 3, image_size, image_size) float32, several sizes "
                 "and the defaults", 0.5, decoder_shapes),
        Property("a Linear to 4w (image_size/8)^2, three ConvTranspose2d(4, stride 2, "
                 "padding 1) 4w -> 2w -> w -> 3, BatchNorm2d on 2w and w", 0.5,
                 decoder_structure),
        Property("the forward pass, recomputed from the parameters, in training and eval mode",
                 0.5, decoder_forward),
        Property("no activation after the last layer: outputs of both signs, beyond [-1, 1]",
                 0.25, decoder_output_signs),
        Property("gradients reach h (those of the output) and every parameter", 0.25,
                 decoder_gradients),
    ],
    "test_segmentation_head": [
        Property("(B, L, D) -> (B, num_classes, g, g) float32 for several L", 0.375,
                 head_shape),
        Property("one nn.Linear(embed_dim, num_classes), nothing else", 0.25, head_structure),
        Property("every cell holds one token's Linear output, each token once", 0.5,
                 head_per_token),
        Property("token l at row l // g, column l % g (row-major)", 0.625, head_row_major),
        Property("gradients reach the tokens and the Linear", 0.25, head_gradient),
    ],
    "test_upsample_logits": [
        Property("bilinear with align_corners=False, on the logits", 0.5, upsample_values),
        Property("(B, K, size, size) in the logits' dtype; 1 x 1 grids; the same size", 0.25,
                 upsample_shape_dtype),
        Property("linear in the logits and differentiable", 0.25, upsample_linear),
    ],
    "test_segmentation_loss": [
        Property("the mean cross-entropy over the pixels that count", 0.5,
                 segmentation_values),
        Property("IGNORE pixels change nothing and get no gradient", 0.25,
                 segmentation_ignored),
        Property("a 0-dim float32 tensor in the graph, finite for large logits", 0.25,
                 segmentation_scalar),
    ],
    "test_encode_points": [
        Property("(B, N, D) float32", 0.25, points_shape),
        Property("[sin, cos] of 2 pi (2 (points + 0.5) / image_size - 1) @ gaussian_matrix, "
                 "points as (x, y)", 0.75, points_positional),
        Property("label_embedding[labels] added (row 1 foreground, row 0 background)", 0.5,
                 points_labels),
        Property("the gradient reaches label_embedding", 0.25, points_gradient),
        Property("the inputs are left unchanged", 0.25, points_inputs_unchanged),
    ],
    "test_best_of_three_loss": [
        Property("a 0-dim float32 tensor in the graph; one image works", 0.25, best_scalar),
        Property("the mask term: mean over images of the min over candidates of bce + dice",
                 1.0, best_mask_term),
        Property("the IoU term: mean squared error against the hard masks' IoU (0 for an "
                 "empty union)", 0.75, best_iou_term),
        Property("only each image's best candidate gets a mask gradient", 0.75,
                 best_mask_gradient),
        Property("iou_pred gets the gradient of the mean squared error", 0.25,
                 best_iou_pred_gradient),
    ],
}
