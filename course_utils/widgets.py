"""Interactive figures for the notebooks.

:func:`temperature_explorer` shows what the temperature tau does to a softmax over one
anchor's similarities to its candidates: one positive and many negatives.
:func:`mask_ratio_explorer` shows what MAE's random masking leaves of a few images.

Each returns an ipywidgets slider above an image in a notebook, and a static matplotlib
figure elsewhere (or with ``interactive=False``).
"""
from __future__ import annotations

import io
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .plots import _as_nchw, _patch_grid_shape, _show, grey_out_patches

# One anchor's cosine similarity to 12 candidates: the positive (index 0), two hard
# negatives close to it, and easier ones spread down to -0.4. Fixed, for illustration.
EXAMPLE_SIMILARITIES = (0.80, 0.70, 0.62, 0.45, 0.30, 0.18, 0.05, -0.05, -0.15, -0.25,
                        -0.32, -0.40)
STATIC_TAUS = (0.05, 0.2, 1.0, 5.0)
TAU_MIN, TAU_MAX = 0.01, 10.0


def example_similarities() -> torch.Tensor:
    """The default similarities of :func:`temperature_explorer` (the positive first)."""
    return torch.tensor(EXAMPLE_SIMILARITIES)


def _softmax_summary(similarities: torch.Tensor, positive: int, tau: float) -> dict:
    """softmax(s / tau) over the candidates, p(positive), entropy and -log p(positive)."""
    probs = torch.softmax(similarities.double() / tau, dim=0)
    p_pos = float(probs[positive])
    entropy = float(-(probs * probs.clamp_min(1e-300).log()).sum())
    neg_log_p = -math.log(p_pos) if p_pos > 0 else math.inf
    return dict(probs=probs.float(), p_positive=p_pos, entropy=entropy,
                neg_log_p_positive=neg_log_p)


def _check_inputs(similarities, positive: int, tau: float) -> torch.Tensor:
    sims = example_similarities() if similarities is None else torch.as_tensor(similarities)
    sims = sims.detach().float().cpu()
    if sims.ndim != 1 or len(sims) < 2:
        raise ValueError(f"similarities must be a 1-D vector of 2 or more candidates, "
                         f"got shape {tuple(sims.shape)}")
    if not 0 <= positive < len(sims):
        raise ValueError(f"positive={positive} is not an index of the {len(sims)} candidates")
    if not tau > 0:
        raise ValueError(f"tau must be positive, got {tau}")
    return sims


def _candidate_names(sims: torch.Tensor, positive: int) -> list[str]:
    return [f"{'pos' if k == positive else 'neg'}\n{s:+.2f}" for k, s in enumerate(sims.tolist())]


def _draw_panel(ax, sims: torch.Tensor, positive: int, tau: float, compact: bool = False):
    """Bars of softmax(s / tau), the positive highlighted; returns the summary."""
    summary = _softmax_summary(sims, positive, tau)
    colours = ["tab:orange" if k == positive else "tab:blue" for k in range(len(sims))]
    ax.bar(range(len(sims)), summary["probs"].numpy(), color=colours)
    ax.axhline(1 / len(sims), color="gray", linestyle=":", linewidth=1)  # uniform
    ax.set_ylim(0, 1)
    ax.set_xticks(range(len(sims)), _candidate_names(sims, positive), fontsize=7)
    ax.set_xlabel("candidate and its similarity to the anchor", fontsize=8)
    ax.set_ylabel("softmax probability", fontsize=8)
    sep = "\n" if compact else ",  "
    ax.set_title(f"tau = {tau:.3g}{sep}p(positive) = {summary['p_positive']:.3f}{sep}"
                 f"entropy = {summary['entropy']:.2f} nats (max {math.log(len(sims)):.2f})"
                 f"{sep}-log p(positive) = {summary['neg_log_p_positive']:.3f}", fontsize=9)
    return summary


def _static_figure(sims: torch.Tensor, positive: int, taus=STATIC_TAUS):
    """Panels for a few temperatures, side by side (the fallback without widgets)."""
    cols = min(2, len(taus))
    rows = math.ceil(len(taus) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols, 3.9 * rows), squeeze=False,
                             layout="constrained")
    for ax, tau in zip(axes.flat, taus):
        _draw_panel(ax, sims, positive, tau, compact=True)
    for ax in list(axes.flat)[len(taus):]:
        fig.delaxes(ax)
    fig.suptitle("softmax(similarity / tau) over one anchor's candidates\n"
                 "(orange: the positive, dotted line: uniform)", fontsize=10)
    return fig


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, Notebook, Colab, VS Code)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _ipywidgets_or_none(interactive: bool | None):
    """The ipywidgets module when a widget should be returned, else None (draw a figure)."""
    if interactive is None:
        interactive = _in_notebook()
    try:
        import ipywidgets
    except ImportError:
        ipywidgets = None
    return ipywidgets if interactive else None


def _slider_above_figure(ipywidgets, slider, fig: Figure, draw):
    """VBox([slider, image]): ``draw(fig, value)`` on every move of the slider, sent as a PNG.

    The figure lives outside pyplot, so Jupyter never shows it twice; it is kept as
    ``box.figure``.
    """
    image = ipywidgets.Image(format="png")

    def redraw(value):
        fig.clear()
        draw(fig, value)
        image.value = _png(fig)

    slider.observe(lambda change: redraw(change["new"]), names="value")
    redraw(slider.value)
    box = ipywidgets.VBox([slider, image])
    box.figure = fig
    return box


def temperature_explorer(similarities=None, positive: int = 0, tau: float = 0.5,
                         interactive: bool | None = None):
    """How the temperature tau reshapes softmax(s / tau) over one anchor's candidates.

    ``similarities``: cosine similarities (1-D) of one anchor to its candidates, the one at
    index ``positive`` being the positive (default: a fixed example of 12). In a notebook
    with ipywidgets this returns a widget (``ipywidgets.VBox``) with a log slider for tau
    from 0.01 to 10; otherwise (or with ``interactive=False``) a matplotlib figure with
    panels for tau = 0.05, 0.2, 1 and 5.
    """
    sims = _check_inputs(similarities, positive, tau)
    ipywidgets = _ipywidgets_or_none(interactive)
    if ipywidgets is None:
        return _static_figure(sims, positive)

    slider = ipywidgets.FloatLogSlider(
        value=min(max(tau, TAU_MIN), TAU_MAX), base=10, min=math.log10(TAU_MIN),
        max=math.log10(TAU_MAX), step=0.02, description="tau", readout_format=".3f",
        continuous_update=True, layout=ipywidgets.Layout(width="600px"))

    def draw(fig: Figure, tau_now: float):
        _draw_panel(fig.add_subplot(), sims, positive, tau_now)

    fig = Figure(figsize=(8, 3.8), layout="constrained")  # redrawn on every change of tau
    return _slider_above_figure(ipywidgets, slider, fig, draw)


# ---------------------------------------------------------------------------- MAE masking

STATIC_MASK_RATIOS = (0.25, 0.5, 0.75, 0.9)
MASK_RATIO_MAX = 0.95


def _masks(masking_fn, n_images: int, n_patches: int, mask_ratio: float, seed: int):
    """The mask (N, L) that ``masking_fn`` draws for ``mask_ratio`` under ``seed``.

    ``masking_fn`` gets dummy tokens (N, L, 1) and a seeded generator (the global seed is
    set too, inside a fork of the random state), so the same seed gives the same noise
    whatever the ratio: the masks stay put while the slider moves.
    """
    dummy_tokens = torch.zeros(n_images, n_patches, 1)                 # (N, L, D=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        try:
            output = masking_fn(dummy_tokens, mask_ratio, generator=generator)
        except NotImplementedError as err:
            raise NotImplementedError(
                "the masking function is not written yet: finish the random_masking exercise "
                "first, then run this cell again") from err
    if not isinstance(output, (tuple, list)) or len(output) != 3:
        raise ValueError("masking_fn should return (x_kept, mask, ids_restore)")
    mask = torch.as_tensor(output[1]).detach().cpu().float()
    if mask.shape != (n_images, n_patches):
        raise ValueError(f"the mask returned by masking_fn should have shape (N, L) = "
                         f"({n_images}, {n_patches}), got {tuple(mask.shape)}")
    return mask


def _kept_text(mask: torch.Tensor) -> str:
    """'kept k of L patches' (k of the first image; every image keeps as many)."""
    n_patches = mask.shape[1]
    kept = int((mask[0] == 0).sum())
    return f"kept {kept} of {n_patches} patches"


def _draw_masked_rows(axes_rows, images: torch.Tensor, masks_by_ratio, patch_size: int):
    """First row: the images; then one row per (ratio, mask), the removed patches grey."""
    for ax, image in zip(axes_rows[0], images):
        _show(ax, image)
    axes_rows[0][0].set_ylabel("original", fontsize=9)
    for row_axes, (ratio, mask) in zip(axes_rows[1:], masks_by_ratio):
        for ax, image in zip(row_axes, grey_out_patches(images, mask, patch_size)):
            _show(ax, image)
        kept = int((mask[0] == 0).sum())
        row_axes[0].set_ylabel(f"ratio {ratio:.2f}\nkept {kept}/{mask.shape[1]}", fontsize=8)


def _figure_axes(fig: Figure, n_rows: int, n_cols: int):
    """A grid of axes in ``fig``, as a list of rows."""
    return [list(row) for row in fig.subplots(n_rows, n_cols, squeeze=False)]


def mask_ratio_explorer(images, masking_fn, patch_size: int = 4, mask_ratio: float = 0.75,
                        interactive: bool | None = None, seed: int = 0):
    """What MAE's random masking leaves of a few images, as the mask ratio changes.

    ``images``: a few images, uint8 (N, H, W, C) or float tensor (N, C, H, W) in [0, 1].
    ``masking_fn(x, mask_ratio, generator=...)``: your ``random_masking``, x (N, L, D) ->
    (x_kept, mask, ids_restore), mask (N, L) 1 = removed; only its mask is used (drawn for
    dummy tokens under ``seed``, so the masks stay stable as the ratio moves). In a notebook
    with ipywidgets this returns a widget with a slider for the ratio from 0 to 0.95;
    otherwise (or with ``interactive=False``) a figure with rows for 0.25, 0.5, 0.75, 0.9.
    """
    x = _as_nchw(images)                                              # (N, C, H, W)
    n_images, _, height, width = x.shape
    rows, cols = _patch_grid_shape(height, width, patch_size)
    n_patches = rows * cols
    if not 0 <= mask_ratio < 1:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    _masks(masking_fn, n_images, n_patches, mask_ratio, seed)  # an unwritten exercise fails here

    ipywidgets = _ipywidgets_or_none(interactive)
    if ipywidgets is None:
        masks = [(r, _masks(masking_fn, n_images, n_patches, r, seed)) for r in STATIC_MASK_RATIOS]
        fig = plt.figure(figsize=(1.2 * n_images + 1.1, 1.2 * (1 + len(masks)) + 0.5),
                         layout="constrained")
        _draw_masked_rows(_figure_axes(fig, 1 + len(masks), n_images), x, masks, patch_size)
        fig.suptitle(f"random masking of {n_patches} patches of {patch_size}x{patch_size} "
                     f"pixels (grey: removed)", fontsize=10)
        return fig

    slider = ipywidgets.FloatSlider(
        value=min(mask_ratio, MASK_RATIO_MAX), min=0.0, max=MASK_RATIO_MAX,
        step=0.05, description="mask ratio", readout_format=".2f", continuous_update=True,
        style={"description_width": "initial"}, layout=ipywidgets.Layout(width="600px"))

    def draw(fig: Figure, ratio: float):
        ratio = round(ratio, 4)  # the slider sends 0.15000000000000002, not 0.15
        mask = _masks(masking_fn, n_images, n_patches, ratio, seed)
        _draw_masked_rows(_figure_axes(fig, 2, n_images), x, [(ratio, mask)], patch_size)
        fig.suptitle(f"mask ratio {ratio:.2f}: {_kept_text(mask)} (grey: removed)", fontsize=10)

    figure = Figure(figsize=(1.3 * n_images + 1.1, 3.3), layout="constrained")
    return _slider_above_figure(ipywidgets, slider, figure, draw)


# ---------------------------------------------------------------------------- a click to segment

def _draw_candidates(fig: Figure, image: np.ndarray, masks, ious, x: int, y: int):
    """The image with the click, then each candidate mask over it with its predicted IoU."""
    axes = fig.subplots(1, 1 + len(masks))
    axes[0].imshow(image)
    axes[0].set_title("click", fontsize=9)
    for ax, mask, iou in zip(axes[1:], masks, ious):
        ax.imshow(image)
        ax.imshow(np.ma.masked_where(~mask, mask), cmap="autumn", alpha=0.55, vmin=0, vmax=1)
        ax.set_title(f"predicted IoU {iou:.2f}", fontsize=9)
    for ax in axes:
        ax.plot([x], [y], marker="+", color="white", markersize=12, mew=2)
        ax.axis("off")


def click_explorer(arrays, three_masks, n_images: int = 20, interactive: bool | None = None):
    """Click a point of an image (sliders for the image and the click's x and y) and see the
    candidate masks a promptable decoder returns, with the IoU it predicts for each.

    ``three_masks(index, x, y)`` -> (masks (C, H, W) booleans, predicted IoUs (C,)) for a
    foreground click at pixel (x, y) of ``arrays``' image ``index``. Without ipywidgets (or
    with ``interactive=False``) a figure for a click at the centre of the first image.
    """
    height, width = arrays.images.shape[1:3]

    def draw(fig: Figure, index: int, x: int, y: int):
        masks, ious = three_masks(index, x, y)
        _draw_candidates(fig, arrays.images[index], np.asarray(torch.as_tensor(masks).cpu()),
                         torch.as_tensor(ious).tolist(), x, y)

    ipywidgets = _ipywidgets_or_none(interactive)
    fig = Figure(figsize=(9, 2.6), layout="constrained")
    if ipywidgets is None:
        draw(fig, 0, width // 2, height // 2)
        return fig
    sliders = {"index": ipywidgets.IntSlider(0, 0, min(n_images, len(arrays)) - 1,
                                             description="image"),
               "x": ipywidgets.IntSlider(width // 2, 0, width - 1, description="x"),
               "y": ipywidgets.IntSlider(height // 2, 0, height - 1, description="y")}
    image = ipywidgets.Image(format="png")

    def redraw(_change=None):
        fig.clear()
        draw(fig, *(s.value for s in sliders.values()))
        image.value = _png(fig)

    for slider in sliders.values():
        slider.observe(redraw, names="value")
    redraw()
    box = ipywidgets.VBox([ipywidgets.HBox(list(sliders.values())), image])
    box.figure = fig
    return box
