"""The figures every notebook draws: augmentations, image grids, losses, embeddings, etc.

Each function draws with matplotlib and returns the :class:`~matplotlib.figure.Figure`.
Those that take ``ax=`` draw into an existing axes (and return its figure), so several
plots can share one figure. In a notebook, end the line with ``;`` (or assign the result)
so that Jupyter does not show the returned figure a second time.
"""
from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .augment import denormalize


# ---------------------------------------------------------------------------- helpers

def _numpy(x) -> np.ndarray:
    if torch.is_tensor(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _new_axes(ax, figsize):
    """(fig, ax): ``ax``'s figure, or a new figure with one axes."""
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def _as_hwc(image) -> np.ndarray:
    """One image (tensor CHW in [0, 1], array HWC uint8/float, or PIL) as HWC float in [0, 1]."""
    if torch.is_tensor(image):
        image = image.detach().cpu().float()
        if image.ndim == 3 and image.shape[0] in (1, 3):
            image = image.permute(1, 2, 0)
        return image.clamp(0, 1).numpy()
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255
    return np.clip(image.astype(np.float32), 0, 1)


def _show(ax, image, title: str | None = None, fontsize: int = 8):
    image = _as_hwc(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=fontsize)


def _view_for_display(view):
    """A transform's output ready for :func:`_show`: undo the normalisation of tensors."""
    if torch.is_tensor(view):
        return denormalize(view.detach().cpu().float())
    return view  # a PIL image (or an array) is shown as it is


def _indices_across_classes(arrays, n_images: int, seed: int) -> list[int]:
    """``n_images`` indices of ``arrays``: one per class first (classes in random order),
    then any others."""
    rng = np.random.default_rng(seed)
    first_of_class = [int(rng.choice(np.flatnonzero(arrays.labels == c)))
                      for c in rng.permutation(np.unique(arrays.labels))]
    chosen = set(first_of_class)
    rest = [int(i) for i in rng.permutation(len(arrays)) if i not in chosen]
    return (first_of_class + rest)[:min(n_images, len(arrays))]


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` values (fewer at the start); same length."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return values
    csum = np.cumsum(np.insert(values, 0, 0.0))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(0, ends - window)
    return (csum[ends] - csum[starts]) / (ends - starts)


# ---------------------------------------------------------------------------- images

def show_augmentations(arrays, transform, n_images: int = 6, n_views: int = 4, seed: int = 0):
    """One row per image: the original, then ``n_views`` outputs of ``transform``.

    ``arrays`` is an :class:`~course_utils.data.ImageArrays`; ``transform`` maps a PIL image
    to a normalised tensor (shown through :func:`~course_utils.augment.denormalize`) or to
    a PIL image (shown as it is). Images come from different classes where possible; the
    views are drawn under ``seed`` without disturbing the global random state.
    """
    indices = _indices_across_classes(arrays, n_images, seed)
    n_images = len(indices)
    cols = 1 + n_views
    fig, axes = plt.subplots(n_images, cols, figsize=(1.5 * cols, 1.5 * n_images + 0.3),
                             squeeze=False, layout="constrained")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for row, i in enumerate(indices):
            image = arrays.pil(i)
            _show(axes[row, 0], image)
            axes[row, 0].set_ylabel(arrays.classes[arrays.labels[i]], fontsize=9)
            for col in range(1, cols):
                _show(axes[row, col], _view_for_display(transform(image)))
    axes[0, 0].set_title("original", fontsize=9)
    for col in range(1, cols):
        axes[0, col].set_title(f"view {col}", fontsize=9)
    fig.suptitle(f"{n_views} random augmentations of each image", fontsize=10)
    return fig


def image_grid(images, nrow: int = 8, titles: Sequence[str] | None = None,
               title: str | None = None):
    """Images in a grid, ``nrow`` per row.

    ``images``: a uint8 array (N, H, W, 3) (e.g. ``ImageArrays.images``) or a float tensor
    (N, C, H, W) with values in [0, 1]. ``titles`` names each image.
    """
    if torch.is_tensor(images):
        if images.ndim != 4:
            raise ValueError(f"expected a tensor (N, C, H, W), got shape {tuple(images.shape)}")
    else:
        images = np.asarray(images)
        if images.ndim != 4:
            raise ValueError(f"expected an array (N, H, W, C), got shape {images.shape}")
    n = len(images)
    if titles is not None and len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} images")
    cols = max(1, min(nrow, n))
    rows = max(1, int(np.ceil(n / cols)))
    height = 1.2 * rows + (0.25 * rows if titles is not None else 0) + (0.3 if title else 0)
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, height), squeeze=False,
                             layout="constrained")
    for k, ax in enumerate(axes.flat):
        if k < n:
            _show(ax, images[k], titles[k] if titles is not None else None)
        else:
            fig.delaxes(ax)  # unused cells of the last row
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# ---------------------------------------------------------------------------- training

def _loss_values(history) -> list[float]:
    """Per-step losses of a History (anything with ``.loss``) or a sequence of numbers."""
    values = history.loss if hasattr(history, "loss") else history
    return [float(v) for v in values]


def plot_losses(histories, title: str | None = None, ax=None):
    """Loss per step: the raw curve, faint, and its moving average.

    ``histories``: a :class:`~course_utils.train.History`, a list of floats, or a dict
    ``name -> either`` to compare runs (one colour per run, named in the legend).
    """
    fig, ax = _new_axes(ax, (6, 3.5))
    runs = histories.items() if isinstance(histories, Mapping) else [(None, histories)]
    for k, (name, history) in enumerate(runs):
        loss = _loss_values(history)
        if not loss:
            continue
        steps = np.arange(1, len(loss) + 1)
        window = max(1, len(loss) // 20)
        colour = f"C{k % 10}"
        ax.plot(steps, loss, color=colour, alpha=0.25, linewidth=1)
        label = name if name is not None else f"moving average ({window} steps)"
        ax.plot(steps, moving_average(loss, window), color=colour, linewidth=2, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=9)
    if title:
        ax.set_title(title)
    return fig


# ---------------------------------------------------------------------------- representations

def _pca_2d(feats: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Projection on the two first principal components, and their share of the variance."""
    centred = feats - feats.mean(dim=0, keepdim=True)                 # (N, D)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)         # vh: (min(N, D), D)
    points = centred @ vh[:2].T                                       # (N, <=2)
    if points.shape[1] < 2:                                          # one feature: pad
        points = torch.cat([points, torch.zeros(len(points), 2 - points.shape[1])], dim=1)
    variance = s ** 2
    share = (variance[:2] / variance.sum().clamp_min(1e-12)).tolist() + [0.0, 0.0]
    return points.numpy(), np.array(share[:2])


def _tsne_2d(feats: torch.Tensor, seed: int = 0) -> np.ndarray:
    try:
        from sklearn.manifold import TSNE
    except ImportError as err:
        raise ImportError("method='tsne' needs scikit-learn (pip install scikit-learn); "
                          "use method='pca' instead, which needs nothing more.") from err
    perplexity = float(min(30, max(2, (len(feats) - 1) // 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca",
                random_state=seed).fit_transform(feats.numpy())


def plot_embedding_2d(feats, labels, classes: Sequence[str] | None = None,
                      method: str = "pca", title: str | None = None, ax=None):
    """Features (N, D) projected to 2-D (PCA, or t-SNE with scikit-learn), coloured by class."""
    feats = torch.as_tensor(_numpy(feats)).float().reshape(len(feats), -1)   # (N, D)
    labels = _numpy(labels).astype(np.int64).reshape(-1)                     # (N,)
    if len(labels) != len(feats):
        raise ValueError(f"{len(feats)} feature vectors but {len(labels)} labels")
    if method == "pca":
        points, share = _pca_2d(feats)
        axis_names = [f"PC {i + 1} ({100 * v:.0f}% of variance)" for i, v in enumerate(share)]
    elif method == "tsne":
        points = _tsne_2d(feats)
        axis_names = ["t-SNE 1", "t-SNE 2"]
    else:
        raise ValueError(f"method must be 'pca' or 'tsne', got {method!r}")

    fig, ax = _new_axes(ax, (6, 4.5))
    present = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(present) <= 10 else "tab20")
    size = 12 if len(labels) <= 2000 else 4
    for k, c in enumerate(present):
        name = classes[c] if classes is not None and c < len(classes) else str(c)
        at = labels == c
        ax.scatter(points[at, 0], points[at, 1], s=size, alpha=0.7, color=cmap(k % cmap.N),
                   label=name, linewidths=0)
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, markerscale=2,
              frameon=False)
    ax.set_title(title or f"{method.upper() if method == 'pca' else 't-SNE'} of the "
                          f"representation ({len(labels)} images)")
    return fig


def plot_similarity_matrix(sim, title: str | None = None, ax=None,
                           tick_labels: Sequence[str] | None = None):
    """A similarity matrix as a heatmap (red positive, blue negative, white 0).

    Cosine similarities use the fixed range [-1, 1]; larger values widen it symmetrically.
    Small matrices (up to 12 x 12) also print each value.
    """
    sim = _numpy(sim).astype(np.float64)
    if sim.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {sim.shape}")
    finite = sim[np.isfinite(sim)]
    largest = float(np.abs(finite).max()) if finite.size else 0.0
    limit = 1.0 if largest <= 1 + 1e-4 else largest   # cosine: [-1, 1] despite rounding
    fig, ax = _new_axes(ax, (5, 4.2))
    image = ax.imshow(sim, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("cosine similarity" if limit == 1.0 else "similarity")
    if tick_labels is not None:
        ax.set_xticks(range(sim.shape[1]), tick_labels[:sim.shape[1]], rotation=90, fontsize=8)
        ax.set_yticks(range(sim.shape[0]), tick_labels[:sim.shape[0]], fontsize=8)
    if max(sim.shape) <= 12:
        for (i, j), value in np.ndenumerate(sim):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if abs(value) > 0.6 * limit else "black")
    if title:
        ax.set_title(title)
    return fig


def plot_accuracy_bars(results: Mapping[str, float], title: str | None = None, ax=None,
                       chance: float | None = None):
    """Horizontal bars, one per entry of ``results`` (accuracies in 0..1), the value printed
    on each bar in percent; ``chance`` draws the chance level as a dashed line."""
    names = list(results)
    values = np.array([float(results[n]) for n in names])
    if np.any((values < 0) | (values > 1)) or not np.all(np.isfinite(values)):
        raise ValueError(f"accuracies must be in 0..1 (divide percentages by 100): {results}")
    fig, ax = _new_axes(ax, (6, 0.5 * len(names) + 1.2))
    bars = ax.barh(range(len(names)), 100 * values, color=[f"C{k % 10}" for k in range(len(names))])
    ax.bar_label(bars, labels=[f"{100 * v:.1f}%" for v in values], padding=3, fontsize=9)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()  # first entry on top
    ax.set_xlim(0, 110)
    ax.set_xlabel("accuracy (%)")
    if chance is not None:
        ax.axvline(100 * chance, color="gray", linestyle="--", linewidth=1)
        ax.text(100 * chance, 1.01, "chance", transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=8, color="gray")
    if title:
        ax.set_title(title, pad=14 if chance is not None else 6)
    return fig


# ---------------------------------------------------------------------------- masked autoencoders

def _as_nchw(images) -> torch.Tensor:
    """A batch of images (uint8 array N, H, W, C or float tensor N, C, H, W in [0, 1]) as a
    float tensor (N, C, H, W) in [0, 1]."""
    if torch.is_tensor(images) and images.dtype != torch.uint8:
        if images.ndim != 4:
            raise ValueError(f"expected a tensor (N, C, H, W), got shape {tuple(images.shape)}")
        return images.detach().cpu().float().clamp(0, 1)
    images = _numpy(images)
    if images.ndim != 4:
        raise ValueError(f"expected an array (N, H, W, C), got shape {images.shape}")
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    return torch.from_numpy(images.astype(np.float32) / scale).permute(0, 3, 1, 2).clamp(0, 1)


def _patch_grid_shape(height: int, width: int, patch_size: int) -> tuple[int, int]:
    """(rows, columns) of the grid of patch_size x patch_size patches."""
    if patch_size < 1 or height % patch_size or width % patch_size:
        raise ValueError(f"patch_size={patch_size} does not divide the {height}x{width} image")
    return height // patch_size, width // patch_size


def grey_out_patches(images, mask, patch_size: int, fill: float = 0.5) -> torch.Tensor:
    """The images with every removed patch (``mask`` 1) painted ``fill`` grey.

    ``images``: uint8 (N, H, W, C) or float tensor (N, C, H, W) in [0, 1]; ``mask``: (N, L),
    1 = removed, patches in row-major order of the (H/p) x (W/p) grid. Returns (N, C, H, W).
    """
    x = _as_nchw(images)                                                # (N, C, H, W)
    n, _, height, width = x.shape
    rows, cols = _patch_grid_shape(height, width, patch_size)
    mask = torch.as_tensor(mask).detach().cpu()
    if mask.shape != (n, rows * cols):
        raise ValueError(f"mask should have shape (N, L) = ({n}, {rows * cols}) for {n} "
                         f"{height}x{width} images in {patch_size}x{patch_size} patches, "
                         f"got {tuple(mask.shape)}")
    removed = mask.bool().reshape(n, rows, cols)                        # (N, H/p, W/p)
    removed = removed.repeat_interleave(patch_size, 1).repeat_interleave(patch_size, 2)
    return torch.where(removed[:, None], torch.full_like(x, fill), x)   # (N, C, H, W)


def patch_grid(image, patch_size: int = 4, ax=None, numbers: bool = True):
    """One image cut into ``patch_size`` x ``patch_size`` patches: the grid drawn over it and,
    with ``numbers``, each patch's index in row-major order (the order of ``patchify``).

    ``image``: uint8 (H, W, C) or float tensor (C, H, W) in [0, 1].
    """
    import matplotlib.patheffects as effects

    pixels = _as_hwc(image)
    height, width = pixels.shape[:2]
    rows, cols = _patch_grid_shape(height, width, patch_size)
    fig, ax = _new_axes(ax, (4.5, 4.5 * height / width + 0.4))
    _show(ax, pixels)
    edges_x = np.arange(cols + 1) * patch_size - 0.5  # pixel centres are at integers
    edges_y = np.arange(rows + 1) * patch_size - 0.5
    ax.vlines(edges_x, -0.5, height - 0.5, colors="white", linewidth=0.8, alpha=0.9)
    ax.hlines(edges_y, -0.5, width - 0.5, colors="white", linewidth=0.8, alpha=0.9)
    if numbers:
        outline = [effects.withStroke(linewidth=1.5, foreground="black")]
        fontsize = max(4, min(8, 200 / max(rows, cols) ** 1.2))
        for index in range(rows * cols):
            row, col = divmod(index, cols)
            ax.text(edges_x[col] + 0.25, edges_y[row] + 0.2, str(index), color="white",
                    fontsize=fontsize, ha="left", va="top", path_effects=outline)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_title(f"{rows} x {cols} = {rows * cols} patches of {patch_size}x{patch_size} pixels"
                 + (", numbered row by row" if numbers else ""), fontsize=9)
    return fig


def mae_reconstructions(rows: Mapping[str, object], n_images: int = 6, title: str | None = None):
    """One row of images per entry of ``rows`` (e.g. original, masked, reconstruction,
    reconstruction + visible), named on the left; the first ``n_images`` of each.

    Each entry: a float tensor (N, 3, H, W) in [0, 1] or a uint8 array (N, H, W, 3).
    """
    if not rows:
        raise ValueError("rows is empty: give a dict name -> images")
    batches = {name: _as_nchw(images) for name, images in rows.items()}
    n = min([n_images] + [len(images) for images in batches.values()])
    if n < 1:
        raise ValueError("no image to show")
    fig, axes = plt.subplots(len(batches), n, figsize=(1.25 * n + 0.9, 1.25 * len(batches)
                                                       + (0.35 if title else 0)),
                             squeeze=False, layout="constrained")
    for row_axes, (name, images) in zip(axes, batches.items()):
        for ax, img in zip(row_axes, images[:n]):
            _show(ax, img)
        row_axes[0].set_ylabel(textwrap.fill(name, 15), fontsize=9, rotation=0, ha="right",
                               va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# ---------------------------------------------------------------------------- DINO

def _multicrop_views(transform, image) -> list[np.ndarray]:
    """The crops ``transform`` makes of one PIL image, ready to show (HWC in [0, 1])."""
    views = transform(image)
    if not isinstance(views, (list, tuple)):
        raise TypeError(f"the transform should return a list of crops (the global ones first, "
                        f"then the local ones), got {type(views).__name__}")
    if not views:
        raise ValueError("the transform returned no crop")
    return [_as_hwc(_view_for_display(view)) for view in views]


def show_multicrop(arrays, transform, n_images: int = 4, seed: int = 0, n_global: int = 2):
    """One row per image: the original, then every crop of a DINO multi-crop ``transform``,
    each drawn at its real size relative to the others (a 16x16 local crop takes half the
    width of a 32x32 global crop).

    ``arrays`` is an :class:`~course_utils.data.ImageArrays`; ``transform`` maps a PIL image
    to a list of normalised tensors, the ``n_global`` global crops first, then the local ones
    (shown through :func:`~course_utils.augment.denormalize`). Images come from different
    classes where possible; the crops are drawn under ``seed`` without disturbing the global
    random state.
    """
    indices = _indices_across_classes(arrays, n_images, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        rows = [_multicrop_views(transform, arrays.pil(i)) for i in indices]  # [[HWC, ...]]
    n_crops = len(rows[0])
    if any(len(views) != n_crops for views in rows):
        raise ValueError(f"the transform returned {sorted({len(v) for v in rows})} crops for "
                         f"different images; it should always return the same number")
    n_global = min(n_global, n_crops)
    names = ([f"global {k + 1}" for k in range(n_global)]
             + [f"local {k + 1}" for k in range(n_crops - n_global)])

    sizes = [view.shape[:2] for view in rows[0]]                       # (h, w) of each crop
    reference = max(w for _, w in sizes[:max(n_global, 1)])            # a global crop's width
    widths = [reference] + [w for _, w in sizes]                       # the original: as wide
    inches_per_pixel = 1.5 / reference
    fig, axes = plt.subplots(len(rows), 1 + n_crops, squeeze=False, layout="constrained",
                             width_ratios=widths,
                             figsize=(inches_per_pixel * sum(widths) + 0.6,
                                      1.6 * len(rows) + 0.6))
    for row, (i, views) in enumerate(zip(indices, rows)):
        _show(axes[row, 0], arrays.pil(i))
        axes[row, 0].set_ylabel(arrays.classes[arrays.labels[i]], fontsize=9)
        for ax, view in zip(axes[row, 1:], views):
            _show(ax, view)
            ax.set_anchor("S")  # small crops stand on the same line as the large ones
    for ax, name in zip(axes[0], ["original"] + names):
        ax.set_title(name, fontsize=9)

    (gh, gw), n_local = sizes[0], n_crops - n_global
    text = f"DINO multi-crop: {n_global} global crops ({gh}x{gw}, teacher and student)"
    if n_local:
        lh, lw = sizes[n_global]
        text += f"\nand {n_local} local crops ({lh}x{lw}, student only), drawn to scale"
    fig.suptitle(text, fontsize=10)
    return fig


def _cls_attention_maps(attention, n_images: int) -> torch.Tensor:
    """``attention`` as a float tensor (B, heads, g, g); (B, heads, g * g) is reshaped."""
    attn = torch.as_tensor(_numpy(attention)).detach().cpu().float()
    if attn.ndim == 3:                                                 # (B, heads, L)
        length = attn.shape[-1]
        side = int(round(length ** 0.5))
        if side * side != length:
            hint = ""
            if int(round((length - 1) ** 0.5)) ** 2 == length - 1:
                hint = (" It looks like [CLS]'s attention to itself is still in column 0: "
                        "take attn[:, :, 0, 1:].")
            raise ValueError(f"attention (B, heads, L) needs a square number of patches L, "
                             f"got L = {length}.{hint}")
        attn = attn.reshape(*attn.shape[:2], side, side)
    if attn.ndim != 4 or attn.shape[-1] != attn.shape[-2] or attn.shape[0] != n_images:
        raise ValueError(f"attention should have shape (B, heads, g, g) with B = {n_images} "
                         f"images (the [CLS] row of the last layer, as a g x g grid per head), "
                         f"got {tuple(attn.shape)}")
    return attn


def _scale_each_map(maps: torch.Tensor) -> torch.Tensor:
    """Every map (..., H, W) scaled to its own range [0, 1] (a constant map becomes 0)."""
    low = maps.amin(dim=(-2, -1), keepdim=True)
    high = maps.amax(dim=(-2, -1), keepdim=True)
    return (maps - low) / (high - low).clamp_min(1e-12)


def attention_maps(images, attention, title: str | None = None, alpha: float = 0.6,
                   cmap: str = "inferno"):
    """One row per image: the image, the [CLS] token's attention of every head as a heat map
    over the greyed image, and the mean over the heads.

    ``images``: a float tensor (B, 3, H, W) in [0, 1] or a uint8 array (B, H, W, 3);
    ``attention``: (B, heads, g, g), the attention of [CLS] to each of the g x g patches
    (``vit.last_selfattention(x)[:, :, 0, 1:]`` reshaped; (B, heads, g * g) works too).
    Maps are upsampled to H x W (nearest, one block per patch) and each is scaled to its own
    min-max, so colours compare places within a map, not heads with each other.
    """
    x = _as_nchw(images)                                               # (B, 3, H, W)
    n, _, height, width = x.shape
    attn = _cls_attention_maps(attention, n)                           # (B, heads, g, g)
    heads = attn.shape[1]
    maps = torch.cat([attn, attn.mean(dim=1, keepdim=True)], dim=1)    # (B, heads + 1, g, g)
    maps = torch.nn.functional.interpolate(maps, size=(height, width), mode="nearest")
    maps = _scale_each_map(maps).numpy()                               # (B, heads + 1, H, W)
    grey = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1).numpy()  # (B, H, W)

    cols = heads + 2
    fig, axes = plt.subplots(n, cols, squeeze=False, layout="constrained",
                             figsize=(1.4 * cols, 1.4 * n + 0.5))
    for row in range(n):
        _show(axes[row, 0], x[row])
        for ax, heat in zip(axes[row, 1:], maps[row]):
            ax.imshow(grey[row], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.imshow(heat, cmap=cmap, vmin=0, vmax=1, alpha=alpha, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
    names = ["image"] + [f"head {h + 1}" for h in range(heads)] + ["mean"]
    for ax, name in zip(axes[0], names):
        ax.set_title(name, fontsize=9)
    fig.suptitle(title or "Attention of [CLS] to each patch (bright = most attended; "
                          "each map scaled to its own range)", fontsize=10)
    return fig


# ---------------------------------------------------------------------------- segments

def overlay_masks(images, masks, points=None, colour=(1.0, 0.2, 0.2), alpha: float = 0.5
                  ) -> torch.Tensor:
    """Images (N, 3, H, W) in [0, 1] with each mask (N, H, W) tinted in ``colour`` and, when
    given, each image's clicks ``points`` (N, P, 2) as (x, y) pixels drawn as white crosses:
    a tensor for :func:`image_grid`."""
    out = torch.as_tensor(images, dtype=torch.float32).clone()
    masks = torch.as_tensor(masks).bool()[:, None]                      # (N, 1, H, W)
    tint = torch.tensor(colour).view(1, 3, 1, 1)
    out = torch.where(masks, (1 - alpha) * out + alpha * tint, out)
    if points is not None:
        height, width = out.shape[-2:]
        for n, image_points in enumerate(torch.as_tensor(points).round().long()):
            for x, y in image_points.tolist():
                out[n, :, y, max(x - 1, 0):min(x + 2, width)] = 1.0
                out[n, :, max(y - 1, 0):min(y + 2, height), x] = 1.0
    return out
