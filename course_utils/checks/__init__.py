"""Visible checks: run right after an exercise, they say what is wrong and why.

How a check works, and why reading it gives no answer away: it feeds *fixed* inputs (built
from a formula such as ``sin(arange)``, never from a random generator) to your function and
compares the output with numbers stored in the check: the right output, and the outputs of
the mistakes people often make. When your output matches a known mistake, the check names
it. Nothing in this package computes the answer to an exercise.

The stored numbers are in ``checks/stored/<notebook>.py``, one table per exercise: the right
output, then each known mistake's output beside the message that names it. Those files are
generated (their docstrings say by which command); only the comparisons are written here.

A check prints one line when everything matches and raises ``AssertionError`` otherwise. It
writes nothing to stderr (the autograder scores a cell 0 when it does).

The helpers below are shared by the checks of every notebook (``checks.simclr``, ...).
"""
from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from typing import NoReturn, Sequence

import numpy as np
import torch

from ..augment import CIFAR10_MEAN, CIFAR10_STD

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class CheckFailure(AssertionError):
    """A visible check found a problem; the message says which and how to fix it."""


GRADING_NOTE = "visible check only: grading tests more, on inputs drawn when it runs"


def passed(what: str, detail: str = "") -> None:
    """Print the one success line of a check, and that it is not the grade."""
    print(f"[ok] {what}" + (f": {detail}" if detail else "") + f" ({GRADING_NOTE})")


def fail(message: str) -> NoReturn:
    raise CheckFailure(message)


@contextmanager
def quiet():
    """Silence warnings (they go to stderr, which costs a graded cell its points)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def fixed_tensor(*shape: int, scale: float = 1.0, phase: float = 0.0,
                 step: float = 0.7) -> torch.Tensor:
    """A deterministic float32 tensor: ``scale * sin(phase + 1 + step * arange(n))``."""
    n = math.prod(shape)
    values = (torch.arange(n, dtype=torch.float64) * step + 1.0 + phase).sin() * scale
    return values.reshape(shape).float()


def as_array(x) -> np.ndarray:
    """A float64 NumPy copy of a tensor, array or number (detached, on the CPU)."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def short(x, digits: int = 5, max_items: int = 6) -> str:
    """A compact printout of a value for messages."""
    a = np.atleast_1d(as_array(x)).ravel()
    items = ", ".join(f"{v:.{digits}g}" for v in a[:max_items])
    if a.size > max_items:
        items += f", ... ({a.size} values)"
    return items if np.ndim(as_array(x)) == 0 else f"[{items}]"


def close(value, stored, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """True when ``value`` has the stored shape and is close to it everywhere."""
    a, b = as_array(value), np.asarray(stored, dtype=np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol))


def normalized_black(mean: Sequence[float], std: Sequence[float]) -> tuple[float, ...]:
    """What ``Normalize(mean, std)`` makes of a black pixel: -mean / std per channel, to 5
    decimals (as the messages print it)."""
    return tuple(round(-m / s, 5) for m, s in zip(mean, std))


CIFAR_BLACK = normalized_black(CIFAR10_MEAN, CIFAR10_STD)
IMAGENET_BLACK = normalized_black(IMAGENET_MEAN, IMAGENET_STD)


def require_tensor(x, what: str, shape: Sequence[int] | None = None,
                   hint: str = "") -> torch.Tensor:
    """Fail unless ``x`` is a floating-point ``torch.Tensor`` (of ``shape``, if given)."""
    if not isinstance(x, torch.Tensor):
        extra = ""
        if isinstance(x, (float, int)):
            extra = " (a Python number: did you call .item() or use math instead of torch?)"
        elif isinstance(x, np.ndarray):
            extra = " (a NumPy array: stay in torch so that gradients can flow)"
        fail(f"{what} should be a torch.Tensor, got {type(x).__name__}{extra}. {hint}".strip())
    if not x.is_floating_point():
        fail(f"{what} should be a floating-point tensor, got dtype {x.dtype}. {hint}".strip())
    if shape is not None and tuple(x.shape) != tuple(shape):
        fail(f"{what} has shape {tuple(x.shape)}, expected {tuple(shape)}. {hint}".strip())
    return x


def require_finite(x: torch.Tensor, what: str, hint: str = "") -> None:
    a = as_array(x)
    if np.isnan(a).any():
        fail(f"{what} contains NaN. {hint}".strip())
    if np.isinf(a).any():
        fail(f"{what} contains inf. {hint}".strip())


def require_grad(x: torch.Tensor, what: str) -> None:
    """Fail when ``x`` was cut off from the autograd graph of its inputs."""
    if not x.requires_grad:
        fail(f"{what} does not depend on the input in autograd's eyes (requires_grad is "
             f"False): avoid .item(), .detach(), .numpy(), torch.no_grad() and building new "
             f"tensors from Python numbers inside the function.")


def diagnose(value, expected, mistakes: Sequence[tuple[object, str]], what: str,
             rtol: float = 1e-4, atol: float = 1e-5, hint: str = "") -> None:
    """Pass when ``value`` is close to ``expected``; otherwise raise with a diagnosis.

    ``mistakes`` pairs the stored output of a known mistake with the message that explains
    it; the first one ``value`` matches is reported.
    """
    if close(value, expected, rtol, atol):
        return
    for stored, message in mistakes:
        if close(value, stored, rtol, atol):
            fail(f"{what}: {message}")
    fail(f"{what}: got {short(value)}, expected {short(expected)}. {hint}".strip())


def known(table: dict, case: int | None = None) -> list[tuple[object, str]]:
    """(stored output, message) of each known mistake of a stored table, in order: for
    ``diagnose``. With ``case``, for that case of the fixed inputs (a mistake not defined
    there, stored as None, is left out)."""
    pairs = [(m["values"] if case is None else m["values"][case], m["message"])
             for m in table["mistakes"]]
    return [(values, message) for values, message in pairs if values is not None]


__all__ = ["CIFAR_BLACK", "CheckFailure", "IMAGENET_BLACK", "as_array", "close", "diagnose",
           "fail", "fixed_tensor", "known", "normalized_black", "passed", "quiet",
           "require_finite", "require_grad", "require_tensor", "short"]
