"""Grader of notebook 04 (DINO): the named properties of each exercise, checked outside the
student's process (never released, never mounted in a sandbox).

Every input is drawn here from ``rng`` (a fresh seed each run) and every expected value is
computed here, in float64, from the formulas of the exercise text: the multi-crop transform
is read back as data (its steps and settings) and run on images built here, whose crops are
measured (area on a checkerboard, flips, jitter, grayscale, solarisation, normalisation) over
many draws with generous bounds; the head's parameters are set and read back and its forward
pass and gradients recomputed from them; the loss, the center and the schedule are compared
with independent computations and with invariances the text implies.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from autograder.grader_tools import close, put
from autograder.scoring import Property

CIFAR10_MEAN = np.array([0.4914, 0.4822, 0.4465])      # augment.normalize(), as the text says
CIFAR10_STD = np.array([0.2470, 0.2435, 0.2616])
TEACHER_TEMP, STUDENT_TEMP = 0.04, 0.1                  # the temperatures the text names


# =========================================================================== helpers


def _ints(rng, low, high, n=None):
    """Python ints in [low, high] (inclusive)."""
    if n is None:
        return int(rng.integers(low, high + 1))
    return [int(v) for v in rng.integers(low, high + 1, size=n)]


def _seed_worker(worker, rng) -> None:
    """Fresh random states in the worker, so that its draws differ from run to run."""
    seed = _ints(rng, 0, 2 ** 31 - 1)
    worker.call("torch.manual_seed", seed, keep="_seed")
    worker.call("random.seed", seed)


def _class_of(worker, name: str) -> str:
    return f"{worker.get(name, '__class__.__module__')}.{worker.get(name, '__class__.__name__')}"


def _is_tensor(worker, name: str) -> bool:
    return _class_of(worker, name) == "torch.Tensor"


def _close(a, b, rtol=1e-5, atol=1e-6) -> bool:
    """grader_tools.close at this notebook's tolerance."""
    return close(a, b, rtol=rtol, atol=atol)


def _array(value, what: str) -> np.ndarray:
    if isinstance(value, bool) or not isinstance(value, (np.ndarray, float, int)):
        raise AssertionError(f"{what} returned {type(value).__name__}, not a tensor")
    return np.asarray(value, dtype=np.float64)


# =========================================================================== 1. multi-crop

RRC = "torchvision.transforms.transforms.RandomResizedCrop"
EXPANDABLE = ("torchvision.", "builtins.list", "builtins.tuple", "builtins.dict", "__main__.",
              "torch.nn.modules.container.")


def _make_multicrop(worker, g, l, n, gs, ls, name="mc"):
    worker.call("MultiCropTransform", global_size=g, local_size=l, n_local=n,
                global_scale=list(gs), local_scale=list(ls), keep=name)
    return name


def _image(worker, pixels: np.ndarray, name="img"):
    """A PIL RGB image in the worker from (H, W, 3) or (H, W) uint8 pixels."""
    pixels = np.asarray(pixels, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    worker.call("PIL.Image.fromarray", np.ascontiguousarray(pixels), keep=name)
    return worker.ref(name)


def _crops(worker, transform: str, image, count: int | None = None) -> list[np.ndarray]:
    crops = worker.call("", image, on=transform)
    if isinstance(crops, np.ndarray):
        raise AssertionError(f"MultiCropTransform returned one array of shape {crops.shape}; "
                             f"it should return a list of crops")
    if not isinstance(crops, list):
        raise AssertionError(f"MultiCropTransform returned {type(crops).__name__}, not a list "
                             f"of crops")
    if not all(isinstance(c, np.ndarray) and c.ndim == 3 and c.shape[0] == 3 for c in crops):
        raise AssertionError("every crop should be a tensor of shape (3, size, size)")
    if count is not None and len(crops) != count:
        raise AssertionError(f"MultiCropTransform returned {len(crops)} crops, expected "
                             f"2 + n_local = {count}")
    return [c.astype(np.float64) for c in crops]


def _scales(rng):
    gs = (round(float(rng.uniform(0.3, 0.5)), 2), round(float(rng.uniform(0.9, 1.0)), 2))
    ls = (round(float(rng.uniform(0.03, 0.1)), 2), round(float(rng.uniform(0.25, 0.4)), 2))
    return gs, ls


def multicrop_shapes(worker, rng):
    """2 global crops of global_size, then n_local crops of local_size, float32 tensors."""
    _seed_worker(worker, rng)
    cases = [(32, 16, 6, (0.4, 1.0), (0.05, 0.4))]
    for n in rng.permutation([0, 1, 2, 3, 5])[:3]:
        g = _ints(rng, 12, 40)
        cases.append((g, _ints(rng, 6, g - 4), int(n), *_scales(rng)))
    image = _image(worker, rng.integers(0, 256, size=(_ints(rng, 36, 60), _ints(rng, 36, 60), 3)))
    for k, (g, l, n, gs, ls) in enumerate(cases):
        _make_multicrop(worker, g, l, n, gs, ls, name=f"mc{k}")
        crops = worker.call("", image, on=f"mc{k}")
        call = f"MultiCropTransform(global_size={g}, local_size={l}, n_local={n}, ...)(image)"
        assert isinstance(crops, list), f"{call} should return a list of crops"
        assert len(crops) == 2 + n, f"{call} returned {len(crops)} crops, expected {2 + n}"
        for i, crop in enumerate(crops):
            size = g if i < 2 else l
            kind = "global" if i < 2 else "local"
            assert isinstance(crop, np.ndarray), f"{call}: crop {i} is not a tensor"
            assert crop.shape == (3, size, size), \
                f"{call}: crop {i} ({kind}) has shape {crop.shape}, expected (3, {size}, {size})"
            assert crop.dtype == np.float32, f"{call}: crop {i} is {crop.dtype}, not float32"
            assert np.ptp(crop) > 1e-3, f"{call}: crop {i} of a random image is constant"


# -- the transform read back as data (worker.describe) ---------------------------------


def _keep_path(worker, root: str, path: tuple, counter: list) -> str:
    current = root
    for kind, key in path:
        counter[0] += 1
        name = f"_sub{counter[0]}"
        if kind == "attr":
            worker.call("builtins.getattr", worker.ref(current), key, keep=name)
        else:
            worker.call("operator.getitem", worker.ref(current), key, keep=name)
        current = name
    return current


def _truncated(node) -> bool:
    return (isinstance(node, dict) and set(node) == {"type"} and isinstance(node["type"], str)
            and node["type"].startswith(EXPANDABLE))


def _wanted(key: str) -> bool:
    """Attributes worth reading: public ones, and a module's submodules."""
    return not key.startswith("_") or key == "_modules"


def _expand(worker, root: str, node, path: tuple, budget: list, counter: list):
    """The described tree with every part cut off by describe's depth limit described
    again from its nearest object (at most ``budget`` times)."""
    if isinstance(node, list):
        return [_expand(worker, root, v, path + (("item", i),), budget, counter)
                for i, v in enumerate(node)]
    if not isinstance(node, dict):
        return node
    if "type" in node and "attributes" in node and isinstance(node["attributes"], dict):
        cut = any(_truncated(v) or (isinstance(v, list) and any(_truncated(x) for x in v))
                  for k, v in node["attributes"].items() if _wanted(k))
        if cut and path and budget[0] > 0:
            budget[0] -= 1
            sub = _keep_path(worker, root, path, counter)
            return _expand(worker, sub, worker.describe(sub), (), budget, counter)
        return {"type": node["type"],
                "attributes": {k: _expand(worker, root, v, path + (("attr", k),), budget,
                                          counter)
                               for k, v in node["attributes"].items() if _wanted(k)}}
    if _truncated(node) and path and budget[0] > 0:
        budget[0] -= 1
        sub = _keep_path(worker, root, path, counter)
        return _expand(worker, sub, worker.describe(sub), (), budget, counter)
    return {k: _expand(worker, root, v, path + (("item", k),), budget, counter)
            for k, v in node.items()}


def _described(worker, name: str):
    return _expand(worker, name, worker.describe(name), (), [64], [0])


def _objects(tree):
    """Every object node ({"type", "attributes"}) of a described tree."""
    if isinstance(tree, list):
        for v in tree:
            yield from _objects(v)
    elif isinstance(tree, dict):
        if "type" in tree and isinstance(tree.get("attributes"), dict):
            yield tree
            yield from _objects(tree["attributes"])
        else:
            for v in tree.values():
                yield from _objects(v)


def _lists(tree):
    if isinstance(tree, list):
        yield tree
        for v in tree:
            yield from _lists(v)
    elif isinstance(tree, dict):
        for v in (tree["attributes"].values() if isinstance(tree.get("attributes"), dict)
                  else tree.values()):
            yield from _lists(v)


def _tail(node) -> str:
    return str(node.get("type", "")).rsplit(".", 1)[-1]


def _attr(node, key):
    return (node.get("attributes") or {}).get(key)


def _floats(value) -> tuple | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (float(value),)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
        return tuple(float(v) for v in value)
    return None


def _same(value, expected, tol=1e-6) -> bool:
    got = _floats(value)
    return got is not None and len(got) == len(expected) and \
        all(abs(a - b) <= tol for a, b in zip(got, expected))


def _pipelines(tree):
    """The crop pipelines: lists of steps (a Compose's transforms) holding a
    RandomResizedCrop; each with its crop node."""
    found = []
    for steps in _lists(tree):
        crops = [s for s in steps if isinstance(s, dict) and _tail(s) == "RandomResizedCrop"]
        if crops:
            found.append((steps, crops[0]))
    return found


def _size_of(node) -> tuple | None:
    size = _floats(_attr(node, "size"))
    if size is None:
        return None
    return tuple(int(s) for s in (size * 2 if len(size) == 1 else size))


def _described_multicrop(worker, rng, n_local=2):
    g = _ints(rng, 20, 36)
    l = _ints(rng, 8, g - 6)
    gs, ls = _scales(rng)
    _make_multicrop(worker, g, l, n_local, gs, ls)
    return (g, l, n_local, gs, ls), _described(worker, "mc")


def multicrop_crop_settings(worker, rng):
    """Each crop is cut by T.RandomResizedCrop(size, scale=...) with the global or local
    size and scale given."""
    (g, l, n, gs, ls), tree = _described_multicrop(worker, rng)
    crops = [o for o in _objects(tree) if _tail(o) == "RandomResizedCrop"]
    assert crops, ("no T.RandomResizedCrop found in the transform: build every crop with "
                   "torchvision.transforms.RandomResizedCrop(size, scale=...)")
    wrong_class = sorted({o["type"] for o in crops if o["type"] != RRC})
    assert not wrong_class, (f"the crops use {wrong_class}; the text asks for exactly "
                             f"torchvision.transforms.RandomResizedCrop (T.RandomResizedCrop)")
    kinds = set()
    for crop in crops:
        size, scale = _size_of(crop), _floats(_attr(crop, "scale"))
        if size == (g, g) and scale is not None and _same(scale, gs):
            kinds.add("global")
        elif size == (l, l) and scale is not None and _same(scale, ls):
            kinds.add("local")
        elif size == (g, g):
            raise AssertionError(f"a global crop (size {g}) uses scale {scale}; it should use "
                                 f"the argument global_scale")
        elif size == (l, l):
            raise AssertionError(f"a local crop (size {l}) uses scale {scale}; it should use "
                                 f"the argument local_scale")
        else:
            raise AssertionError(f"a RandomResizedCrop has size {size}: the sizes are "
                                 f"global_size and local_size")
    assert kinds == {"global", "local"}, (
        f"found only {sorted(kinds)} crops among the RandomResizedCrops; there should be "
        f"global ones (global_size, global_scale) and local ones (local_size, local_scale)")


def _jitter_ok(node) -> bool:
    expected = {"brightness": (0.6, 1.4), "contrast": (0.6, 1.4), "saturation": (0.8, 1.2),
                "hue": (-0.1, 0.1)}
    return all(_same(_attr(node, k), v) for k, v in expected.items())


def _steps_within(steps):
    """The steps of a pipeline, with those inside RandomApply: (step, its RandomApply or
    None)."""
    out = []
    for step in steps:
        if not isinstance(step, dict):
            continue
        out.append((step, None))
        if _tail(step) == "RandomApply":
            inner = _attr(step, "transforms")
            for sub in inner if isinstance(inner, list) else []:
                if isinstance(sub, dict):
                    out.append((sub, step))
    return out


def multicrop_colour_settings(worker, rng):
    """Every crop: RandomHorizontalFlip, RandomApply([ColorJitter(0.4, 0.4, 0.2, 0.1)],
    p=0.8), RandomGrayscale(p=0.2)."""
    _, tree = _described_multicrop(worker, rng)
    pipelines = _pipelines(tree)
    assert pipelines, ("could not find the crop pipelines (a T.Compose([...]) per kind of "
                       "crop, starting with T.RandomResizedCrop) in the transform")
    for steps, crop in pipelines:
        kind = f"the pipeline of the crops of size {_size_of(crop)}"
        within = _steps_within(steps)
        flips = [s for s, _ in within if _tail(s) == "RandomHorizontalFlip"]
        assert flips, f"{kind} has no T.RandomHorizontalFlip()"
        assert all(_same(_attr(s, "p"), (0.5,)) for s in flips), \
            f"{kind}: RandomHorizontalFlip should keep its default p = 0.5"
        jitters = [(s, wrap) for s, wrap in within if _tail(s) == "ColorJitter"]
        assert jitters, f"{kind} has no T.ColorJitter"
        for jitter, wrap in jitters:
            assert _jitter_ok(jitter), (f"{kind}: ColorJitter should be ColorJitter(0.4, 0.4, "
                                        f"0.2, 0.1) (brightness, contrast, saturation, hue)")
            assert wrap is not None and _same(_attr(wrap, "p"), (0.8,)), \
                f"{kind}: the ColorJitter should be applied with probability 0.8 " \
                f"(T.RandomApply([...], p=0.8))"
        grays = [s for s, _ in within if _tail(s) == "RandomGrayscale"]
        assert grays and all(_same(_attr(s, "p"), (0.2,)) for s in grays), \
            f"{kind} should have T.RandomGrayscale(p=0.2)"


def multicrop_solarize_settings(worker, rng):
    """T.RandomSolarize(threshold=128, p=0.2) on the second global crop only (settings, and
    on a white image: only crop 1 is ever solarised, about a fifth of the time)."""
    (g, l, _, _, _), tree = _described_multicrop(worker, rng)
    pipelines = _pipelines(tree)
    assert pipelines, "could not find the crop pipelines in the transform"
    solarized = {"global": 0, "local": 0}
    plain_global = 0
    for steps, crop in pipelines:
        kind = "global" if _size_of(crop) == (g, g) else "local"
        sol = [s for s, _ in _steps_within(steps) if _tail(s) == "RandomSolarize"]
        for s in sol:
            assert _same(_attr(s, "threshold"), (128.0,)) and _same(_attr(s, "p"), (0.2,)), \
                "RandomSolarize should be T.RandomSolarize(threshold=128, p=0.2)"
        solarized[kind] += bool(sol)
        plain_global += kind == "global" and not sol
    assert solarized["local"] == 0, "the local crops are solarised too; only the second " \
                                    "global crop gets T.RandomSolarize"
    assert solarized["global"] >= 1, "no T.RandomSolarize(threshold=128, p=0.2) for the " \
                                     "second global crop"
    assert plain_global >= 1, "both global crops get RandomSolarize; only the second does"

    # behaviour: a white image stays white (>= 153 after brightness jitter) unless solarised
    _seed_worker(worker, rng)
    _make_multicrop(worker, 16, 8, 2, (0.5, 1.0), (0.2, 0.5), name="mc_white")
    white = _image(worker, np.full((24, 24), 255), name="white")
    black = _image(worker, np.zeros((24, 24)), name="black")
    zero = np.array([c.mean(axis=(1, 2)) for c in _crops(worker, "mc_white", black, 4)])
    calls = 80
    counts = np.zeros(4)
    values = []
    for _ in range(calls):
        values.append([c.mean(axis=(1, 2)) for c in _crops(worker, "mc_white", white, 4)])
    values = np.array(values)                                  # (calls, 4, 3)
    top = values[:, [0, 2, 3], :].max(axis=(0, 1))             # jitter only darkens white
    span = top - zero
    assert np.all(np.abs(span) > 1e-3), "white and black images give the same crops"
    level = ((values - zero) / span).mean(axis=-1)             # 0 black ... 1 white
    counts = (level < 0.47).sum(axis=0)
    assert counts[0] == 0 and counts[2:].sum() == 0, (
        "a crop other than the second global one was solarised (a white image came out "
        "dark); only crop 1 gets RandomSolarize")
    assert 3 <= counts[1] <= 0.4 * calls, (
        f"the second global crop of a white image was solarised in {int(counts[1])} of "
        f"{calls} calls; with p=0.2 it should be about a fifth of them")


def _board(size, square, ox, oy, lo, hi):
    y, x = np.mgrid[0:size, 0:size]
    return np.where(((x + ox) // square + (y + oy) // square) % 2 == 1, hi, lo)


def _board_area(crop: np.ndarray, square: int, size: int) -> float:
    """The part of the image a crop of a checkerboard shows: square edges crossed along
    the rows and the columns, times the square's side, over the image's area."""
    a = crop.mean(axis=0)
    rows = a - a.mean(axis=1, keepdims=True)
    cols = a - a.mean(axis=0, keepdims=True)
    across = (np.diff(np.sign(rows), axis=1) != 0).sum(axis=1).mean()
    down = (np.diff(np.sign(cols), axis=0) != 0).sum(axis=0).mean()
    return float(across * square * down * square / size ** 2)


def multicrop_crop_areas(worker, rng):
    """Global crops show global_scale of the image, local crops local_scale (measured on
    checkerboards over many draws)."""
    _seed_worker(worker, rng)
    size = 192
    gs = (0.85, 1.0)
    ls = (0.04, 0.07)
    _make_multicrop(worker, 48, 24, 6, gs, ls, name="mc_area")
    global_areas, local_areas = [], []
    for k in range(8):
        lo, hi = _ints(rng, 40, 80), _ints(rng, 160, 220)
        board = _board(size, 16, _ints(rng, 0, 15), _ints(rng, 0, 15), lo, hi)
        crops = _crops(worker, "mc_area", _image(worker, board, name="board"), 8)
        global_areas += [_board_area(c, 16, size) for c in crops[:2]]
        board = _board(size, 6, _ints(rng, 0, 5), _ints(rng, 0, 5), lo, hi)
        crops = _crops(worker, "mc_area", _image(worker, board, name="board"), 8)
        local_areas += [_board_area(c, 6, size) for c in crops[2:]]
    g, l = float(np.median(global_areas)), float(np.median(local_areas))
    assert 0.65 <= g <= 1.1, (
        f"with global_scale={gs} the global crops show about {g:.2f} of the image; they "
        f"should show between {gs[0]} and {gs[1]} of it (RandomResizedCrop(global_size, "
        f"scale=global_scale))")
    assert 0.025 <= l <= 0.09, (
        f"with local_scale={ls} the local crops show about {l:.3f} of the image; they should "
        f"show between {ls[0]} and {ls[1]} of it (RandomResizedCrop(local_size, "
        f"scale=local_scale))")


def multicrop_colour_behaviour(worker, rng):
    """On plain images: about half the crops are flipped, about 80% jittered (brightness up
    to +-40%), about 20% gray."""
    _seed_worker(worker, rng)
    _make_multicrop(worker, 16, 12, 3, (0.9, 1.0), (0.9, 1.0), name="mc_colour")
    count = 5
    black = _image(worker, np.zeros((32, 32)), name="black")
    zero = np.array([c.mean(axis=(1, 2)) for c in _crops(worker, "mc_colour", black, count)])
    zero = zero.mean(axis=0)
    white = _image(worker, np.full((32, 32), 255), name="white")
    tops = [c.mean(axis=(1, 2)) for _ in range(6)
            for c in _crops(worker, "mc_colour", white, count)]
    top = np.max(np.array(tops), axis=0)                       # jitter only darkens white
    span = top - zero
    assert np.all(np.abs(span) > 1e-3), "white and black images give the same crops"

    def pixels(crop):                      # back to 0..255 whatever the normalisation
        return (crop - zero[:, None, None]) / span[:, None, None] * 255.0

    calls = 40
    gray_level = _ints(rng, 90, 110)
    gray = _image(worker, np.full((32, 32), gray_level), name="gray")
    colour = rng.integers(40, 120, size=3)
    colour[rng.integers(0, 3)] += 100
    coloured = _image(worker, np.broadcast_to(colour, (32, 32, 3)), name="coloured")
    dark, bright = _ints(rng, 25, 45), _ints(rng, 85, 105)
    halves = np.where(np.arange(32)[None, :] < 16, dark, bright) * np.ones((32, 1))
    halves = _image(worker, halves, name="halves")
    deviations, grays, flips = [], [], []
    for _ in range(calls):
        crops = [pixels(c) for c in _crops(worker, "mc_colour", gray, count)]
        deviations += [float(c.mean()) - gray_level for i, c in enumerate(crops) if i != 1]
        crops = [pixels(c) for c in _crops(worker, "mc_colour", coloured, count)]
        grays += [float(np.ptp(c.mean(axis=(1, 2)))) < 0.6 for c in crops]
        crops = [pixels(c) for c in _crops(worker, "mc_colour", halves, count)]
        for i, c in enumerate(crops):
            if i != 1:
                w = c.shape[-1] // 4
                flips.append(c[:, :, :w].mean() > c[:, :, -w:].mean())
    deviations = np.abs(np.array(deviations))
    jittered = float((deviations > 0.6).mean())
    assert 0.6 <= jittered <= 0.94, (
        f"{jittered:.0%} of the crops of a gray image had their brightness changed; with "
        f"RandomApply([ColorJitter(0.4, ...)], p=0.8) it should be about 80%")
    assert 0.25 * gray_level <= deviations.max() <= 0.43 * gray_level, (
        f"the brightness of a gray image changed by up to {deviations.max() / gray_level:.0%}; "
        f"ColorJitter(brightness=0.4) changes it by up to 40%")
    gray_share = float(np.mean(grays))
    assert 0.08 <= gray_share <= 0.36, (
        f"{gray_share:.0%} of the crops of a coloured image came out gray; with "
        f"RandomGrayscale(p=0.2) it should be about 20%")
    flip_share = float(np.mean(flips))
    assert 0.3 <= flip_share <= 0.7, (
        f"{flip_share:.0%} of the crops were flipped left to right; RandomHorizontalFlip() "
        f"flips half of them")


def multicrop_normalised(worker, rng):
    """T.ToTensor() then augment.normalize(): a black image gives -mean/std per channel and
    an unchanged white one (1 - mean)/std (CIFAR-10's statistics)."""
    _seed_worker(worker, rng)
    _make_multicrop(worker, 16, 8, 2, (0.4, 1.0), (0.05, 0.4), name="mc_norm")
    black = _image(worker, np.zeros((_ints(rng, 20, 40), _ints(rng, 20, 40))), name="black")
    expected = -CIFAR10_MEAN / CIFAR10_STD
    imagenet = -np.array([0.485, 0.456, 0.406]) / np.array([0.229, 0.224, 0.225])
    for _ in range(3):
        for i, crop in enumerate(_crops(worker, "mc_norm", black, 4)):
            means = crop.mean(axis=(1, 2))
            if _close(means, expected, rtol=1e-3, atol=1e-3):
                continue
            assert not _close(means, np.zeros(3), atol=1e-4), (
                f"crop {i} of a black image is 0: the crops are not normalised (end with "
                f"T.ToTensor() and augment.normalize())")
            assert not _close(means, imagenet, rtol=1e-3, atol=1e-3), (
                "the crops are normalised with ImageNet's statistics; use augment.normalize() "
                "(CIFAR-10's)")
            raise AssertionError(f"crop {i} of a black image is not -mean/std of CIFAR-10 per "
                                 f"channel: end each crop with T.ToTensor() and "
                                 f"augment.normalize()")
    white = _image(worker, np.full((24, 24), 255), name="white")
    tops = np.array([c.mean(axis=(1, 2)) for _ in range(8)
                     for i, c in enumerate(_crops(worker, "mc_norm", white, 4)) if i != 1])
    top = np.max(tops, axis=0)                                 # jitter only darkens white
    assert _close(top, (1 - CIFAR10_MEAN) / CIFAR10_STD, rtol=1e-3, atol=1e-3), (
        "a white image (unchanged by the jitter) does not come out as (1 - mean)/std: "
        "T.ToTensor() (values in [0, 1]) then augment.normalize()")


def multicrop_independent(worker, rng):
    """Every crop is drawn independently, and each call draws new crops."""
    _seed_worker(worker, rng)
    _make_multicrop(worker, 24, 12, 4, (0.4, 1.0), (0.05, 0.4), name="mc_ind")
    image = _image(worker, rng.integers(0, 256, size=(40, 44, 3)))
    first = _crops(worker, "mc_ind", image, 6)
    assert not np.array_equal(first[0], first[1]), \
        "the two global crops are equal: draw each crop separately"
    local = first[2:]
    assert all(not np.array_equal(a, b) for i, a in enumerate(local) for b in local[i + 1:]), \
        "some local crops are equal: draw each local crop separately"
    again = _crops(worker, "mc_ind", image, 6)
    assert not any(np.array_equal(a, b) for a, b in zip(first, again)), \
        "a second call gave some of the same crops: every call draws new crops"


# =========================================================================== 2. the head


def _make_head(worker, in_dim, out_dim, hidden, bottleneck, nlayers, norm_last, name="head"):
    worker.call("DINOHead", in_dim, out_dim, norm_last_layer=norm_last, nlayers=nlayers,
                hidden_dim=hidden, bottleneck_dim=bottleneck, keep=name)
    return name


def _mlp_linears(state) -> list[str]:
    return [n for n, t in state["modules"]
            if t.rsplit(".", 1)[-1] == "Linear" and (n == "mlp" or n.startswith("mlp."))]


def _last_parts(state, out_dim, bottleneck):
    """The last layer's direction v (out_dim, bottleneck), gain g (out_dim, 1) or None,
    bias or None, by shape; with their parameter names."""
    params = {n: p for n, p in state["parameters"].items() if n.startswith("last_layer.")}
    v = [n for n, p in params.items() if p.shape == (out_dim, bottleneck)]
    g = [n for n, p in params.items() if p.shape == (out_dim, 1)]
    b = [n for n, p in params.items() if p.shape == (out_dim,)]
    return (v[0] if len(v) == 1 else None, g[0] if len(g) == 1 else None,
            b[0] if len(b) == 1 else None)


def _head_structure(state, in_dim, out_dim, hidden, bottleneck, nlayers, call):
    names = [n for n, _ in state["modules"]]
    assert "mlp" in names and "last_layer" in names, \
        f"{call}: store the MLP as self.mlp and the last layer as self.last_layer"
    linears = _mlp_linears(state)
    assert len(linears) == nlayers, \
        f"{call}: self.mlp has {len(linears)} nn.Linear layers, expected nlayers = {nlayers}"
    dims = [state["parameters"][f"{n}.weight"].shape[::-1] for n in linears]
    widths = [in_dim] + [hidden] * (nlayers - 1) + [bottleneck]
    expected = list(zip(widths[:-1], widths[1:]))
    assert dims == expected, (f"{call}: the MLP's linear layers map {dims}, expected "
                              f"in_dim -> hidden_dim -> ... -> bottleneck_dim = {expected}")
    v, _, _ = _last_parts(state, out_dim, bottleneck)
    assert v is not None, (f"{call}: the last layer should map bottleneck_dim to out_dim (a "
                           f"weight of shape ({out_dim}, {bottleneck}))")
    return linears


def _head_parts(state, out_dim, bottleneck, call):
    """The MLP's Linear layers and the last layer's parts, for recomputing the forward
    pass of the head as it is built (its structure is a property of its own)."""
    linears = _mlp_linears(state)
    assert linears, f"{call}: self.mlp holds no nn.Linear layer"
    v, g, b = _last_parts(state, out_dim, bottleneck)
    assert v is not None, (f"{call}: self.last_layer has no weight of shape ({out_dim}, "
                           f"{bottleneck}) (bottleneck_dim -> out_dim)")
    return linears, v, g, b


def _head_cases(rng, n=4):
    cases = []
    for nlayers in rng.permutation([1, 2, 3, 4])[:n]:
        cases.append((_ints(rng, 5, 16), _ints(rng, 6, 40), _ints(rng, 6, 24),
                      _ints(rng, 3, 10), int(nlayers), bool(rng.integers(0, 2))))
    return cases


def _gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _unit(x):
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _reference_head(params: dict, linears, v, g, b, h, activation=_gelu, last_too=False,
                    normalise="before"):
    """float64: MLP (activation between its layers) -> x / ||x|| -> x @ (g v / ||v||)^T
    (+ b), from the parameters read back (a dict of float64 tensors). The keywords give
    known mistakes, for the messages."""
    x = h
    for k, name in enumerate(linears):
        x = x @ params[f"{name}.weight"].T
        if f"{name}.bias" in params:
            x = x + params[f"{name}.bias"]
        if k < len(linears) - 1 or last_too:
            x = activation(x)
    if normalise == "before":
        x = _unit(x)
    weight = params[v]
    if g is not None:
        weight = params[g] * weight / weight.norm(dim=1, keepdim=True)
    out = x @ weight.T
    if b is not None:
        out = out + params[b]
    return _unit(out) if normalise == "after" else out


def _random_parameters(rng, state, linears, v, g, norm_last):
    """New values for the MLP, v and (when trainable) g, large enough that the GELU and
    the normalisations matter."""
    new = {}
    for name in linears:
        w = state["parameters"][f"{name}.weight"]
        new[f"{name}.weight"] = (rng.standard_normal(w.shape) * 1.5 / math.sqrt(w.shape[1])
                                 ).astype(np.float32)
        if f"{name}.bias" in state["parameters"]:
            new[f"{name}.bias"] = (0.5 * rng.standard_normal(w.shape[0])).astype(np.float32)
    new[v] = (rng.standard_normal(state["parameters"][v].shape) *
              rng.uniform(0.2, 3.0)).astype(np.float32)
    if g is not None and not norm_last:
        new[g] = rng.uniform(0.5, 2.0, size=state["parameters"][g].shape).astype(np.float32)
    return new


def _load(worker, name, values: dict) -> dict:
    """Set parameters in the worker's module and read its state back; the values must be
    the ones set."""
    worker.call("load_state_dict", values, on=name, as_torch=True, strict=False)
    state = worker.state(name)
    for key, value in values.items():
        got = state["parameters"].get(key)
        assert got is not None and np.array_equal(got, value), (
            f"the parameter {key} did not take the value load_state_dict gave it: keep the "
            f"head's weights as its registered parameters")
    return state


def _as_torch(params: dict) -> dict:
    return {k: torch.tensor(np.asarray(p, dtype=np.float64)) for k, p in params.items()}


def head_structure(worker, rng):
    """self.mlp: nlayers Linear layers in_dim -> hidden_dim -> ... -> bottleneck_dim;
    self.last_layer to out_dim; the output (B, out_dim), float32."""
    for k, (i, o, hd, bn, nl, norm) in enumerate(_head_cases(rng)):
        call = f"DINOHead({i}, {o}, nlayers={nl}, hidden_dim={hd}, bottleneck_dim={bn})"
        name = _make_head(worker, i, o, hd, bn, nl, norm, name=f"head{k}")
        _head_structure(worker.state(name), i, o, hd, bn, nl, call)
        B = _ints(rng, 2, 6)
        out = worker.call("", rng.standard_normal((B, i)).astype(np.float32), on=name,
                          as_torch=True)
        assert isinstance(out, np.ndarray) and out.shape == (B, o), \
            f"{call}(h of shape ({B}, {i})) should have shape ({B}, {o})"
        assert out.dtype == np.float32, f"{call}: float32 input gave a {out.dtype} output"


def _diagnose_head(got, params, linears, v, g, b, h, call):
    """Name the mistake the output matches, if a known one."""
    variants = [
        (dict(activation=lambda x: x.clamp_min(0)), "the MLP's activation should be GELU"),
        (dict(activation=lambda x: x), "there is no GELU between the MLP's layers"),
        (dict(last_too=True), "there is an activation after the last MLP layer; GELU goes "
                              "after every layer but the last"),
        (dict(normalise="none"), "the bottleneck is not L2-normalised before the last layer"),
        (dict(normalise="after"), "the output is normalised after the last layer; normalise "
                                  "its input, the bottleneck"),
    ]
    for kwargs, message in variants:
        try:
            other = _reference_head(params, linears, v, g, b, h, **kwargs).numpy()
        except RuntimeError:
            continue
        if _close(got, other, rtol=1e-3, atol=1e-5):
            raise AssertionError(f"{call}: {message}")
    raise AssertionError(f"{call}: the output is not self.last_layer(F.normalize(self.mlp(h), "
                         f"dim=-1)) with a GELU MLP, recomputed from your head's parameters")


def head_forward(worker, rng):
    """forward = weight-normalised last layer of the L2-normalised output of a GELU MLP,
    recomputed from the head's parameters (set to new values and read back)."""
    for k, (i, o, hd, bn, nl, norm) in enumerate(_head_cases(rng)):
        call = f"DINOHead({i}, {o}, nlayers={nl}, norm_last_layer={norm})"
        name = _make_head(worker, i, o, hd, bn, nl, norm, name=f"head{k}")
        state = worker.state(name)
        linears, v, g, b = _head_parts(state, o, bn, call)
        state = _load(worker, name, _random_parameters(rng, state, linears, v, g, norm))
        params = _as_torch(state["parameters"])
        h = rng.standard_normal((_ints(rng, 2, 7), i)).astype(np.float32)
        got = worker.call("", h, on=name, as_torch=True)
        got = _array(got, call)
        expected = _reference_head(params, linears, v, g, b, torch.tensor(h, dtype=torch.float64))
        if not _close(got, expected.numpy(), rtol=1e-4, atol=1e-5):
            _diagnose_head(got, params, linears, v, g, b, torch.tensor(h, dtype=torch.float64),
                           call)


def head_bottleneck_normalised(worker, rng):
    """The bottleneck vector of each sample is L2-normalised: scaling a sample's bottleneck
    (nlayers=1, no bias: its input) or the MLP's last layer leaves the output unchanged."""
    i, o, bn = _ints(rng, 5, 12), _ints(rng, 6, 30), _ints(rng, 3, 8)
    call = f"DINOHead({i}, {o}, nlayers=1, bottleneck_dim={bn})"
    name = _make_head(worker, i, o, 16, bn, 1, True)
    state = worker.state(name)
    linears = _mlp_linears(state)
    assert len(linears) == 1, f"{call}: self.mlp should be one nn.Linear(in_dim, bottleneck_dim)"
    values = {f"{linears[0]}.weight": rng.standard_normal((bn, i)).astype(np.float32)}
    if f"{linears[0]}.bias" in state["parameters"]:
        values[f"{linears[0]}.bias"] = np.zeros(bn, dtype=np.float32)
    _load(worker, name, values)
    B = _ints(rng, 3, 6)
    h = rng.standard_normal((B, i)).astype(np.float32)
    scale = rng.uniform(0.2, 8.0, size=(B, 1)).astype(np.float32)
    plain = _array(worker.call("", h, on=name, as_torch=True), call)
    assert plain.shape == (B, o) and np.ptp(plain) > 1e-4, \
        f"{call}: the output does not depend on the input"
    scaled = _array(worker.call("", h * scale, on=name, as_torch=True), call)
    assert _close(scaled, plain, rtol=1e-4, atol=1e-5), (
        f"{call}: scaling one sample's bottleneck vector changed its output; normalise each "
        f"sample's vector (F.normalize(x, dim=-1)) before the last layer")
    values[f"{linears[0]}.weight"] = values[f"{linears[0]}.weight"] * np.float32(5.0)
    _load(worker, name, values)
    bigger = _array(worker.call("", h, on=name, as_torch=True), call)
    assert _close(bigger, plain, rtol=1e-4, atol=1e-5), (
        f"{call}: a larger MLP output changed the head's output; the bottleneck is "
        f"L2-normalised before the last layer")
    norms = np.linalg.norm(plain, axis=1)
    assert not np.allclose(norms, 1.0, atol=1e-4), (
        f"{call}: every output has norm 1: the output is normalised after the last layer; "
        f"normalise its input, the bottleneck")


def head_weight_norm(worker, rng):
    """The last layer is weight-normalised without bias: a direction v (out_dim,
    bottleneck_dim) and a gain g (out_dim, 1), weight row k = g_k v_k / ||v_k||."""
    i, o, hd, bn = _ints(rng, 5, 12), _ints(rng, 6, 30), _ints(rng, 6, 16), _ints(rng, 3, 8)
    call = f"DINOHead({i}, {o}, hidden_dim={hd}, bottleneck_dim={bn}, norm_last_layer=False)"
    name = _make_head(worker, i, o, hd, bn, 2, False)
    state = worker.state(name)
    v, g, b = _last_parts(state, o, bn)
    assert b is None, f"{call}: the last layer has a bias; DINO's has none (bias=False)"
    assert v is not None and g is not None, (
        f"{call}: the last layer should hold a direction v ({o}, {bn}) and a gain g ({o}, 1): "
        f"torch.nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck_dim, out_dim, "
        f"bias=False))")
    h = rng.standard_normal((_ints(rng, 3, 6), i)).astype(np.float32)
    direction = (rng.standard_normal((o, bn)) * rng.uniform(0.3, 3.0)).astype(np.float32)
    gain = rng.uniform(0.5, 2.0, size=(o, 1)).astype(np.float32)
    _load(worker, name, {v: direction, g: gain})
    base = _array(worker.call("", h, on=name, as_torch=True), call)
    rows = rng.uniform(0.2, 5.0, size=(o, 1)).astype(np.float32)
    _load(worker, name, {v: direction * rows, g: gain})
    rescaled = _array(worker.call("", h, on=name, as_torch=True), call)
    assert _close(rescaled, base, rtol=1e-4, atol=1e-5), (
        f"{call}: scaling the rows of v changed the output; each output unit's weight is "
        f"g_k v_k / ||v_k|| (weight_norm with its default dim=0)")
    _load(worker, name, {v: direction, g: gain * 2})
    doubled = _array(worker.call("", h, on=name, as_torch=True), call)
    assert _close(doubled, 2 * base, rtol=1e-4, atol=1e-5), \
        f"{call}: doubling the gain g should double the output (weight g * v / ||v||)"


def head_gain(worker, rng):
    """The gains g start at 1; frozen (requires_grad False) with norm_last_layer=True,
    trainable with norm_last_layer=False; v is always trained."""
    for norm in (True, False):
        i, o, bn = _ints(rng, 5, 12), _ints(rng, 6, 30), _ints(rng, 3, 8)
        call = f"DINOHead({i}, {o}, bottleneck_dim={bn}, norm_last_layer={norm})"
        name = _make_head(worker, i, o, 12, bn, 3, norm, name=f"head_{norm}")
        state = worker.state(name)
        v, g, _ = _last_parts(state, o, bn)
        assert g is not None, f"{call}: the last layer has no gain g of shape ({o}, 1)"
        assert np.array_equal(state["parameters"][g], np.ones((o, 1), dtype=np.float32)), \
            f"{call}: the gains g should start at 1 (fill_(1.0) under torch.no_grad())"
        trainable = worker.get(name, f"{g}.requires_grad")
        assert trainable is (not norm), (
            f"{call}: the gain is {'trainable' if trainable else 'frozen'}; it should be "
            f"frozen (requires_grad_(False)) exactly when norm_last_layer=True")
        assert worker.get(name, f"{v}.requires_grad") is True, \
            f"{call}: the direction v of the last layer must stay trainable"


def head_init(worker, rng):
    """The MLP's linear layers start as DINO's: trunc_normal_(std=0.02), bias 0."""
    i, hd, bn = _ints(rng, 40, 64), _ints(rng, 200, 300), _ints(rng, 48, 64)
    name = _make_head(worker, i, 16, hd, bn, 3, True)
    state = worker.state(name)
    linears = _mlp_linears(state)
    assert linears, "self.mlp has no nn.Linear layers"
    for layer in linears:
        w = state["parameters"][f"{layer}.weight"].astype(np.float64)
        assert 0.016 <= w.std() <= 0.024 and abs(w.mean()) < 0.004, (
            f"the weights of {layer} have standard deviation {w.std():.3f}; initialise them "
            f"with nn.init.trunc_normal_(weight, std=0.02)")
        bias = state["parameters"].get(f"{layer}.bias")
        assert bias is None or not np.any(bias), f"the bias of {layer} should start at 0"


def head_gradients(worker, rng):
    """Gradients reach the MLP and v as autograd of the recomputed forward says; none
    reaches a frozen gain."""
    for norm in (False, True):
        i, o, hd, bn = _ints(rng, 5, 12), _ints(rng, 6, 30), _ints(rng, 6, 16), _ints(rng, 3, 8)
        call = f"DINOHead({i}, {o}, nlayers=3, norm_last_layer={norm})"
        name = _make_head(worker, i, o, hd, bn, 3, norm, name=f"head_grad_{norm}")
        state = worker.state(name)
        linears, v, g, b = _head_parts(state, o, bn, call)
        state = _load(worker, name, _random_parameters(rng, state, linears, v, g, norm))
        B = _ints(rng, 2, 6)
        h = rng.standard_normal((B, i)).astype(np.float32)
        weights = rng.standard_normal((B, o)).astype(np.float32)
        worker.call("", h, on=name, as_torch=True, keep="out")
        worker.call("mul", weights, on="out", as_torch=True, keep="weighted")
        worker.call("sum", on="weighted", keep="total")
        worker.call("backward", on="total")
        grads = worker.state(name, grads=True)["grads"]
        params = {k: p.requires_grad_(True) for k, p in _as_torch(state["parameters"]).items()}
        out = _reference_head(params, linears, v, g, b, torch.tensor(h, dtype=torch.float64))
        (out * torch.tensor(weights, dtype=torch.float64)).sum().backward()
        checked = [f"{n}.weight" for n in linears] + [v]
        for key in checked:
            assert key in grads, f"{call}: no gradient reaches {key}"
            expected = params[key].grad.numpy()
            scale = max(1.0, float(np.abs(expected).max()))
            assert _close(grads[key], expected, rtol=2e-3, atol=1e-5 * scale), \
                f"{call}: the gradient of {key} is not that of the head's forward pass"
        if g is not None and norm:
            got = grads.get(g)
            assert got is None or not np.any(got), f"{call}: a gradient reaches the frozen gain"
        elif g is not None:
            assert g in grads and _close(grads[g], params[g].grad.numpy(), rtol=2e-3, atol=1e-5), \
                f"{call}: the gradient of the trainable gain is not that of the forward pass"


# =========================================================================== 3. the loss


def _log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def reference_loss(s, t, c, ts, tt) -> float:
    """DINO's loss in float64: mean over the pairs (teacher crop i, student crop v != i) of
    the batch mean of -sum_k P_t log P_s."""
    s, t, c = (np.asarray(a, dtype=np.float64) for a in (s, t, c))
    B = len(t) // 2
    n = len(s) // B
    p = np.exp(_log_softmax((t - c) / tt))
    log_q = _log_softmax(s / ts)
    terms = [-(p[i * B:(i + 1) * B] * log_q[v * B:(v + 1) * B]).sum(axis=1).mean()
             for i in range(2) for v in range(n) if v != i]
    return float(np.mean(terms))


def reference_loss_grad(s, t, c, ts, tt) -> np.ndarray:
    """d loss / d student_out: per pair (softmax(s_v / ts) - P_t_i) / ts / (B * pairs)."""
    s, t, c = (np.asarray(a, dtype=np.float64) for a in (s, t, c))
    B = len(t) // 2
    n = len(s) // B
    p = np.exp(_log_softmax((t - c) / tt))
    q = np.exp(_log_softmax(s / ts))
    grad = np.zeros_like(s)
    pairs = 2 * n - 2
    for v in range(n):
        for i in range(2):
            if i != v:
                grad[v * B:(v + 1) * B] += (q[v * B:(v + 1) * B] - p[i * B:(i + 1) * B]) / ts
    return grad / (B * pairs)


def _loss_inputs(rng, B, K, n_crops, spread=1.0):
    """Outputs like the head's (cosine similarities in [-1, 1]) and a center near them."""
    s = rng.uniform(-spread, spread, size=(n_crops * B, K)).astype(np.float32)
    t = rng.uniform(-spread, spread, size=(2 * B, K)).astype(np.float32)
    c = (0.3 * spread * rng.standard_normal((1, K))).astype(np.float32)
    return s, t, c


def _loss(worker, s, t, c, ts, tt, what="dino_loss") -> float:
    value = worker.call("dino_loss", s, t, c, ts, tt, as_torch=True)
    value = _array(value, what)
    assert value.shape == (), f"{what} should return one number (a 0-dim tensor), got shape " \
                              f"{value.shape}"
    return float(value)


def _temperatures(rng):
    ts = float(rng.uniform(0.05, 0.5))
    return ts, float(rng.uniform(0.02, ts))


def loss_scalar(worker, rng):
    """dino_loss returns a 0-dim float tensor that keeps the student's graph."""
    s, t, c = _loss_inputs(rng, _ints(rng, 2, 5), _ints(rng, 4, 20), _ints(rng, 3, 6))
    worker.call("dino_loss", put(worker, "s", s, requires_grad=True), t, c,
                STUDENT_TEMP, TEACHER_TEMP, as_torch=True, keep="loss")
    assert _is_tensor(worker, "loss"), "dino_loss should return a torch.Tensor"
    assert worker.get("loss", "shape") == [], "dino_loss should return a 0-dim tensor"
    assert worker.get("loss", "dtype") == "torch.float32", \
        "float32 outputs should give a float32 loss"
    assert worker.get("loss", "requires_grad") is True, \
        "the loss does not depend on student_out in autograd's eyes"
    worker.call("backward", on="loss")
    grad = worker.get("s", "grad")
    assert grad is not None and np.any(grad), "no gradient reaches student_out"


def loss_values(worker, rng):
    """The value (and the student's gradient) on random outputs with local crops, at DINO's
    temperatures (0.1, 0.04) and others."""
    temps = [(STUDENT_TEMP, TEACHER_TEMP), (STUDENT_TEMP, TEACHER_TEMP), _temperatures(rng)]
    for k, (ts, tt) in enumerate(temps):
        B, K, n = _ints(rng, 1, 6), _ints(rng, 4, 40), _ints(rng, 3, 8)
        s, t, c = _loss_inputs(rng, B, K, n)
        got = _loss(worker, s, t, c, ts, tt)
        expected = reference_loss(s, t, c, ts, tt)
        assert math.isclose(got, expected, rel_tol=1e-4, abs_tol=1e-5), (
            f"dino_loss with B={B}, K={K}, {n} crops, student_temp={ts:.3g}, "
            f"teacher_temp={tt:.3g} is not the mean over the 2 * n_crops - 2 pairs of the "
            f"batch-mean cross-entropy")
        if k == 0:
            grad = _student_grad(worker, s, t, c, ts, tt)
            right = reference_loss_grad(s, t, c, ts, tt)
            assert _close(grad, right, rtol=2e-3, atol=1e-6 * max(1.0, np.abs(right).max())), \
                "the gradient with respect to student_out is not that of the DINO loss"


def loss_two_crops(worker, rng):
    """With only the two global crops (n_crops = 2) the loss is the mean of the two
    cross-view terms."""
    for _ in range(2):
        B, K = _ints(rng, 1, 6), _ints(rng, 4, 30)
        ts, tt = _temperatures(rng)
        s, t, c = _loss_inputs(rng, B, K, 2)
        got = _loss(worker, s, t, c, ts, tt)
        expected = reference_loss(s, t, c, ts, tt)
        assert math.isclose(got, expected, rel_tol=1e-4, abs_tol=1e-5), (
            f"dino_loss with two crops only (B={B}, K={K}): the two pairs are (teacher 0, "
            f"student 1) and (teacher 1, student 0)")


def loss_centering(worker, rng):
    """The teacher is centred: moving its outputs and the center by the same vector changes
    nothing, and the center is used."""
    lowered = None
    while lowered is None:                      # inputs where the center can matter
        B, K, n = _ints(rng, 2, 5), _ints(rng, 5, 30), _ints(rng, 3, 6)
        s, t, c = _loss_inputs(rng, B, K, n)
        lowered = _center_that_matters(s, t, c)
    shift = rng.uniform(-2, 2, size=(1, K)).astype(np.float32)
    base = _loss(worker, s, t, c, STUDENT_TEMP, TEACHER_TEMP)
    moved = _loss(worker, s, t + shift, c + shift, STUDENT_TEMP, TEACHER_TEMP)
    assert math.isclose(base, moved, rel_tol=2e-4, abs_tol=2e-4), (
        "adding the same vector to teacher_out and center changed the loss: P_t = "
        "softmax((teacher_out - center) / teacher_temp)")
    other = _loss(worker, s, t, lowered, STUDENT_TEMP, TEACHER_TEMP)
    assert not math.isclose(base, other, rel_tol=1e-3, abs_tol=1e-4), \
        "the center does not change the loss; subtract it from the teacher's outputs"


def _center_that_matters(s, t, c):
    """A center that moves one teacher image's sharpest class, chosen so that the DINO loss
    changes by at least 1%: at teacher_temp = 0.04 a small random move can leave every target
    one-hot on the same class, and a move that shifts a target can land on a class the student
    scores alike. Only a loss that ignores the center stays put. None if no such move."""
    base = reference_loss(s, t, c, STUDENT_TEMP, TEACHER_TEMP)
    best, best_change = None, -1.0
    for row in t - c:
        lowered = c.copy()
        lowered[0, int(np.argmax(row))] += 4.0
        change = abs(reference_loss(s, t, lowered, STUDENT_TEMP, TEACHER_TEMP) - base)
        if change > best_change:
            best, best_change = lowered, change
    return best if best_change > 0.01 * abs(base) else None


def loss_temperatures(worker, rng):
    """student_out / student_temp and (teacher_out - center) / teacher_temp: scaling an
    output and its temperature together changes nothing; swapping the temperatures does."""
    B, K, n = _ints(rng, 2, 5), _ints(rng, 5, 30), _ints(rng, 3, 6)
    s, t, c = _loss_inputs(rng, B, K, n)
    ts, tt = STUDENT_TEMP, TEACHER_TEMP
    base = _loss(worker, s, t, c, ts, tt)
    a = float(rng.uniform(2, 4))
    student = _loss(worker, (s * a).astype(np.float32), t, c, ts * a, tt)
    assert math.isclose(base, student, rel_tol=2e-4, abs_tol=2e-4), (
        "scaling student_out and student_temp together changed the loss: the student's "
        "log-probabilities are log_softmax(student_out / student_temp)")
    teacher = _loss(worker, s, (t * a).astype(np.float32), (c * a).astype(np.float32), ts, tt * a)
    assert math.isclose(base, teacher, rel_tol=2e-4, abs_tol=2e-4), (
        "scaling teacher_out, center and teacher_temp together changed the loss: the "
        "teacher's probabilities are softmax((teacher_out - center) / teacher_temp)")
    swapped = _loss(worker, s, t, c, tt, ts)
    assert not math.isclose(base, swapped, rel_tol=1e-3), \
        "swapping the two temperatures does not change the loss"


def _student_grad(worker, s, t, c, ts, tt) -> np.ndarray:
    worker.call("dino_loss", put(worker, "s", s, requires_grad=True), t, c, ts, tt,
                as_torch=True, keep="loss")
    worker.call("backward", on="loss")
    grad = worker.get("s", "grad")
    assert grad is not None, "no gradient reaches student_out"
    return np.asarray(grad, dtype=np.float64)


def loss_same_view_skipped(worker, rng):
    """Student crop i is never compared with teacher crop i: the gradient of global crop 0
    does not depend on teacher crop 0 (nor crop 1's on teacher crop 1), and does depend on
    the other teacher crop."""
    B, K, n = _ints(rng, 2, 4), _ints(rng, 5, 20), _ints(rng, 3, 6)
    s, t, c = _loss_inputs(rng, B, K, n)
    base = _student_grad(worker, s, t, c, STUDENT_TEMP, TEACHER_TEMP)
    for i in (0, 1):
        other = t.copy()
        other[i * B:(i + 1) * B] = rng.uniform(-1, 1, size=(B, K))
        grad = _student_grad(worker, s, other, c, STUDENT_TEMP, TEACHER_TEMP)
        same = slice(i * B, (i + 1) * B)
        cross = slice((1 - i) * B, (2 - i) * B)
        assert _close(grad[same], base[same], rtol=1e-4, atol=1e-7), (
            f"changing teacher crop {i} changed the gradient of student crop {i}: the pairs "
            f"of the same view are included; skip them (v != i)")
        assert not _close(grad[cross], base[cross], rtol=1e-3, atol=1e-6), (
            f"changing teacher crop {i} did not change the gradient of student crop {1 - i}: "
            f"every student crop v != i is compared with teacher crop i")


def loss_mean_over_pairs(worker, rng):
    """The mean over the pairs and over the batch: when every crop is the same, every pair
    gives the same cross-entropy, so the loss is the same for any number of crops and any
    batch size (compared with the answer's own value for two crops)."""
    B, K = _ints(rng, 2, 5), _ints(rng, 5, 30)
    s0, t0, c = _loss_inputs(rng, B, K, 1)
    t0 = t0[:B]
    values = []
    for n_crops, copies in [(2, 1), (_ints(rng, 3, 5), 1), (_ints(rng, 6, 8), 1), (3, 2)]:
        s = np.concatenate([np.tile(s0, (copies, 1))] * n_crops)
        t = np.concatenate([np.tile(t0, (copies, 1))] * 2)
        values.append(_loss(worker, s, t, c, STUDENT_TEMP, TEACHER_TEMP))
        assert math.isclose(values[-1], values[0], rel_tol=1e-4, abs_tol=1e-5), (
            f"with every crop equal, {n_crops} crops and the batch repeated {copies} "
            f"time(s) give another loss than 2 crops: every pair gives the same "
            f"cross-entropy, so their mean should not change; average over the batch and "
            f"over the 2 * n_crops - 2 pairs")
    other = _loss(worker, np.concatenate([s0[::-1].copy()] * 2), np.concatenate([t0] * 2), c,
                  STUDENT_TEMP, TEACHER_TEMP)
    assert other != values[0], "dino_loss gives the same value for different student outputs"


def loss_gradients(worker, rng):
    """No gradient flows into the teacher; one reaches every student crop."""
    B, K, n = _ints(rng, 2, 5), _ints(rng, 5, 25), _ints(rng, 3, 6)
    s, t, c = _loss_inputs(rng, B, K, n)
    worker.call("dino_loss", put(worker, "s", s, requires_grad=True),
                put(worker, "t", t, requires_grad=True), c, STUDENT_TEMP, TEACHER_TEMP,
                as_torch=True, keep="loss")
    worker.call("backward", on="loss")
    teacher = worker.get("t", "grad")
    assert teacher is None or not np.any(teacher), (
        "a gradient flows into teacher_out: the teacher's probabilities are targets, "
        ".detach() them")
    student = worker.get("s", "grad")
    assert student is not None, "no gradient reaches student_out"
    student = np.asarray(student).reshape(n, B, K)
    assert np.all(np.isfinite(student)) and all(np.any(crop) for crop in student), \
        "some student crops get no gradient: every crop of the student is compared with " \
        "a teacher crop"


def loss_leaves_inputs(worker, rng):
    """dino_loss changes neither the center nor the outputs it is given."""
    B, K, n = _ints(rng, 2, 5), _ints(rng, 5, 25), _ints(rng, 3, 6)
    s, t, c = _loss_inputs(rng, B, K, n)
    worker.call("dino_loss", put(worker, "s", s), put(worker, "t", t),
                put(worker, "c", c), STUDENT_TEMP, TEACHER_TEMP, keep="loss")
    assert np.array_equal(worker.get("c", "data"), c), (
        "dino_loss changed the center in place; leave it: update_center updates it, after "
        "the loss")
    assert np.array_equal(worker.get("s", "data"), s) and \
        np.array_equal(worker.get("t", "data"), t), \
        "dino_loss changed student_out or teacher_out in place"
    first = float(np.asarray(worker.call("detach", on="loss")))
    other = _loss(worker, s[::-1].copy(), t, c, STUDENT_TEMP, TEACHER_TEMP)
    assert first != other, "dino_loss gives the same value for different student outputs"


def loss_finite(worker, rng):
    """Finite, float32 and right at teacher_temp 0.04, student_temp 0.1 with large outputs;
    uniform outputs give ln K."""
    B, K, n = _ints(rng, 2, 4), _ints(rng, 10, 40), _ints(rng, 3, 6)
    s = (20 * rng.standard_normal((n * B, K))).astype(np.float32)
    t = (10 * rng.standard_normal((2 * B, K))).astype(np.float32)
    c = (5 * rng.standard_normal((1, K))).astype(np.float32)
    got = _loss(worker, s, t, c, STUDENT_TEMP, TEACHER_TEMP)
    assert math.isfinite(got), (
        f"dino_loss is not finite at teacher_temp={TEACHER_TEMP}, student_temp={STUDENT_TEMP} "
        f"with outputs of size about 10-20: use F.softmax / F.log_softmax (stable), not "
        f"exp and log of your own")
    K = _ints(rng, 5, 200)
    value = rng.uniform(-1, 1)
    uniform = _loss(worker, np.zeros((3 * 2, K), np.float32), np.full((4, K), value, np.float32),
                    np.zeros((1, K), np.float32), STUDENT_TEMP, TEACHER_TEMP)
    assert math.isclose(uniform, math.log(K), rel_tol=1e-5, abs_tol=1e-5), \
        f"uniform outputs (K = {K}) should give ln K"


# =========================================================================== 4. the center


def _center_inputs(rng, dtype=np.float64):
    B, K = _ints(rng, 1, 8), _ints(rng, 2, 30)
    center = rng.standard_normal((1, K)).astype(dtype)
    out = (rng.standard_normal((2 * B, K)) * rng.uniform(0.5, 3) + rng.standard_normal(K)
           ).astype(dtype)
    return center, out


def _new_center(worker, center, out, m, what="update_center") -> np.ndarray:
    got = worker.call("update_center", put(worker, "center", center),
                      put(worker, "teacher_out", out, requires_grad=True), m, keep="new")
    assert _is_tensor(worker, "new"), \
        f"{what} should return the new center as a tensor (got {got.get('type')})"
    value = np.asarray(worker.get("new", "data"), dtype=np.float64)
    assert value.shape == (1, out.shape[1]), \
        f"{what} returned shape {value.shape}, expected (1, K) = (1, {out.shape[1]})"
    return value


def _moves(worker, rng, center, out, m):
    """The new center depends on teacher_out (else nothing here is worth points)."""
    a = _new_center(worker, center, out, m)
    b = _new_center(worker, center, out + rng.standard_normal(out.shape).astype(out.dtype), m)
    assert not np.array_equal(a, b), "the new center does not depend on teacher_out"


def center_shape_dtype(worker, rng):
    """Returns the new center: a tensor of shape (1, K) in the dtype of its inputs."""
    for dtype, name in ((np.float32, "torch.float32"), (np.float64, "torch.float64")):
        center, out = _center_inputs(rng, dtype)
        _moves(worker, rng, center, out, 0.9)
        _new_center(worker, center, out, 0.9)
        assert worker.get("new", "dtype") == name, \
            f"{name} inputs gave a {worker.get('new', 'dtype')} center"


def center_values(worker, rng):
    """m * center + (1 - m) * the batch mean of the teacher's raw outputs."""
    for m in (0.9, float(rng.uniform(0.3, 0.99)), float(rng.uniform(0.01, 0.5))):
        center, out = _center_inputs(rng)
        got = _new_center(worker, center, out, m)
        expected = m * center + (1 - m) * out.sum(axis=0, keepdims=True) / len(out)
        assert _close(got, expected, rtol=1e-6, atol=1e-7), (
            f"update_center with momentum {m:.3g} is not momentum * center + (1 - momentum) * "
            f"teacher_out.mean(dim=0, keepdim=True)")


def center_edge_momenta(worker, rng):
    """momentum 0: the batch mean; momentum 1: the old center."""
    center, out = _center_inputs(rng)
    got = _new_center(worker, center, out, 0.0)
    assert _close(got, out.mean(axis=0, keepdims=True), rtol=1e-6, atol=1e-7), \
        "with momentum 0 the new center should be the batch mean"
    center, out = _center_inputs(rng)
    got = _new_center(worker, center, out, 1.0)
    assert _close(got, center, rtol=1e-7, atol=1e-7), \
        "with momentum 1 the center should not move"


def center_raw_outputs(worker, rng):
    """The center follows the raw outputs: adding a to every output moves it by (1 - m) a."""
    center, out = _center_inputs(rng)
    m = float(rng.uniform(0.5, 0.95))
    shift = rng.uniform(-5, 5, size=(1, out.shape[1]))
    a = _new_center(worker, center, out, m)
    b = _new_center(worker, center, out + shift, m)
    assert _close(b - a, (1 - m) * shift, rtol=1e-5, atol=1e-6), (
        "adding a vector to every teacher output should move the center by (1 - momentum) "
        "times it: average the raw outputs (no softmax, no centering first)")


def center_detached(worker, rng):
    """The new center is detached (no graph) and teacher_out is left unchanged."""
    center, out = _center_inputs(rng, np.float32)
    m = float(rng.uniform(0.5, 0.95))
    _moves(worker, rng, center, out, m)
    _new_center(worker, center, out, m)
    assert worker.get("new", "requires_grad") is False, (
        "the new center requires grad; compute it under torch.no_grad() or from "
        "teacher_out.detach()")
    assert np.array_equal(worker.get("teacher_out", "data"), out), \
        "update_center changed teacher_out in place"


# =========================================================================== 5. the schedule


TOL = 2e-6      # a float32 computation is off by ~1e-7; the type is a property of its own


def _cosine(base, final, step, total):
    if step >= total:
        return final
    return final + (base - final) * (1 + math.cos(math.pi * step / total)) / 2


def _schedule(worker, base, final, step, total, check_type=False):
    worker.call("cosine_schedule", base, final, step, total, keep="m")
    value = worker.describe("m")
    call = f"cosine_schedule({base:.4g}, {final:.4g}, {step}, {total})"
    if check_type:
        assert isinstance(value, float), f"{call} should return a Python float"
    number = isinstance(value, (float, int)) and not isinstance(value, bool)
    assert number or (isinstance(value, np.ndarray) and value.size == 1), \
        f"{call} did not return a number"
    return float(np.asarray(value, dtype=np.float64)), call


def _schedule_case(rng):
    base, final = float(rng.uniform(-1, 2)), float(rng.uniform(-1, 2))
    return base, final, _ints(rng, 5, 500)


def schedule_float(worker, rng):
    """Returns a Python float."""
    base, final, total = _schedule_case(rng)
    values = [_schedule(worker, base, final, step, total, check_type=True)[0]
              for step in (0, _ints(rng, 1, total - 1), total)]
    assert values[0] != values[-1], \
        "cosine_schedule gives the same value at the start and at the end"


def schedule_end_points(worker, rng):
    """base at step 0, final at step total_steps."""
    for base, final, total in [(0.996, 1.0, _ints(rng, 10, 1000)), _schedule_case(rng)]:
        got, call = _schedule(worker, base, final, 0, total)
        assert abs(got - base) < TOL, f"{call} should be base"
        got, call = _schedule(worker, base, final, total, total)
        assert abs(got - final) < TOL, f"{call} should be final"


def schedule_values(worker, rng):
    """m(t) = final + (base - final) (1 + cos(pi t / T)) / 2 along the way."""
    for base, final, total in [(0.996, 1.0, _ints(rng, 50, 1000)), _schedule_case(rng),
                               _schedule_case(rng)]:
        for step in _ints(rng, 1, total - 1, n=6):
            got, call = _schedule(worker, base, final, step, total)
            assert abs(got - _cosine(base, final, step, total)) < TOL, \
                f"{call} is not on the cosine from base to final"


def schedule_after_end(worker, rng):
    """final for any step after total_steps."""
    base, final, total = _schedule_case(rng)
    got, call = _schedule(worker, base, final, 0, total)
    assert abs(got - base) < TOL, f"{call} should be base"
    for step in (total + 1, total + _ints(rng, 2, total), 3 * total):
        got, call = _schedule(worker, base, final, step, total)
        assert abs(got - final) < TOL, f"{call} should stay at final after the end"


def schedule_shape(worker, rng):
    """Monotone from base to final (rising or falling), half way at T/2."""
    for base, final in [(0.2, 0.9), (0.9, 0.2)]:
        total = 2 * _ints(rng, 3, 40)
        values = [_schedule(worker, base, final, t, total)[0] for t in range(total + 1)]
        sign = 1 if final >= base else -1
        assert all(sign * (b - a) >= -1e-12 for a, b in zip(values, values[1:])), \
            f"cosine_schedule({base}, {final}, t, {total}) is not monotone in t"
        assert abs(values[total // 2] - (base + final) / 2) < TOL, \
            f"cosine_schedule({base}, {final}, {total // 2}, {total}) should be half way"


def schedule_short_and_flat(worker, rng):
    """Short schedules (total_steps 1 and 2) and a flat one (base == final)."""
    base, final = float(rng.uniform(0, 1)), float(rng.uniform(0, 1))
    for total in (1, 2):
        for step in range(total + 1):
            got, call = _schedule(worker, base, final, step, total)
            assert abs(got - _cosine(base, final, step, total)) < TOL, f"{call} is wrong"
    value = float(rng.uniform(0, 1))
    total = _ints(rng, 3, 30)
    for step in (0, total // 2, total):
        got, call = _schedule(worker, value, value, step, total)
        assert abs(got - value) < TOL, f"{call} should be {value:.4g}: base == final"


PROPERTIES = {
    "test_multicrop_transform": [
        Property("2 global crops of global_size then n_local local ones of local_size, "
                 "float32 tensors", 0.375, multicrop_shapes),
        Property("each crop by T.RandomResizedCrop with its kind's size and scale", 0.25,
                 multicrop_crop_settings),
        Property("global crops show global_scale of the image, local crops local_scale", 0.25,
                 multicrop_crop_areas),
        Property("flip, ColorJitter(0.4, 0.4, 0.2, 0.1) with p=0.8 and RandomGrayscale(p=0.2) "
                 "in every crop", 0.25, multicrop_colour_settings),
        Property("on plain images: half flipped, 80% jittered, 20% gray", 0.25,
                 multicrop_colour_behaviour),
        Property("RandomSolarize(threshold=128, p=0.2) on the second global crop only", 0.25,
                 multicrop_solarize_settings),
        Property("normalised: T.ToTensor() then augment.normalize()", 0.25, multicrop_normalised),
        Property("every crop drawn independently, new crops on every call", 0.125,
                 multicrop_independent),
    ],
    "test_dino_head": [
        Property("self.mlp of nlayers Linear layers to bottleneck_dim, self.last_layer to "
                 "out_dim, output (B, out_dim)", 0.5, head_structure),
        Property("forward: GELU MLP, L2-normalised bottleneck, last layer (recomputed from "
                 "the parameters)", 0.75, head_forward),
        Property("each sample's bottleneck vector is L2-normalised", 0.375,
                 head_bottleneck_normalised),
        Property("weight-normalised last layer without bias: g * v / ||v|| by row", 0.375,
                 head_weight_norm),
        Property("gains start at 1, frozen exactly when norm_last_layer=True", 0.375, head_gain),
        Property("MLP initialised with trunc_normal_(std=0.02), bias 0", 0.25, head_init),
        Property("gradients reach the MLP and v as the forward pass says, none the frozen "
                 "gain", 0.375, head_gradients),
    ],
    "test_dino_loss": [
        Property("a 0-dim float32 tensor in the student's graph", 0.25, loss_scalar),
        Property("value and gradient with local crops, at DINO's and other temperatures",
                 0.625, loss_values),
        Property("value with the two global crops only", 0.375, loss_two_crops),
        Property("teacher centred: teacher_out - center", 0.375, loss_centering),
        Property("teacher sharpened by teacher_temp, student at student_temp", 0.375,
                 loss_temperatures),
        Property("the pairs of the same view are skipped", 0.5, loss_same_view_skipped),
        Property("the mean over the pairs and the batch", 0.375, loss_mean_over_pairs),
        Property("no gradient into the teacher; one into every student crop", 0.5,
                 loss_gradients),
        Property("the center and the outputs are left unchanged", 0.25, loss_leaves_inputs),
        Property("finite at teacher_temp 0.04 with large outputs; ln K for uniform ones", 0.375,
                 loss_finite),
    ],
    "test_update_center": [
        Property("returns the new center, (1, K), in the inputs' dtype", 0.25,
                 center_shape_dtype),
        Property("momentum * center + (1 - momentum) * batch mean", 0.875, center_values),
        Property("momentum 0 gives the batch mean, 1 the old center", 0.375, center_edge_momenta),
        Property("the mean of the raw outputs", 0.25, center_raw_outputs),
        Property("detached, teacher_out unchanged", 0.25, center_detached),
    ],
    "test_cosine_schedule": [
        Property("returns a Python float", 0.25, schedule_float),
        Property("base at step 0, final at total_steps", 0.25, schedule_end_points),
        Property("the cosine in between", 0.625, schedule_values),
        Property("final after total_steps", 0.25, schedule_after_end),
        Property("monotone, half way at T/2", 0.375, schedule_shape),
        Property("total_steps 1 and 2, base == final", 0.25, schedule_short_and_flat),
    ],
}
