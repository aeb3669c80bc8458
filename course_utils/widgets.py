"""Interactive figures for the notebooks.

:func:`temperature_explorer` shows what the temperature tau does to a softmax over one
anchor's similarities to its candidates: one positive and many negatives.
"""
from __future__ import annotations

import io
import math

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

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
    if interactive is None:
        interactive = _in_notebook()
    try:
        import ipywidgets
    except ImportError:
        ipywidgets = None
    if not interactive or ipywidgets is None:
        return _static_figure(sims, positive)

    # A figure outside pyplot, sent to the browser as a PNG: Jupyter never shows it twice.
    fig = Figure(figsize=(8, 3.8), layout="constrained")
    image = ipywidgets.Image(format="png")
    slider = ipywidgets.FloatLogSlider(
        value=min(max(tau, TAU_MIN), TAU_MAX), base=10, min=math.log10(TAU_MIN),
        max=math.log10(TAU_MAX), step=0.02, description="tau", readout_format=".3f",
        continuous_update=True, layout=ipywidgets.Layout(width="600px"))

    def redraw(tau_now: float):
        fig.clear()
        _draw_panel(fig.add_subplot(), sims, positive, tau_now)
        image.value = _png(fig)

    slider.observe(lambda change: redraw(change["new"]), names="value")
    redraw(slider.value)
    box = ipywidgets.VBox([slider, image])
    box.figure = fig  # the figure behind the image, redrawn on every change of tau
    return box
