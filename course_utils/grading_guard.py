"""The functions hidden tests compare with, as they were when the grading kernel started.

The autograder starts every grading kernel with ``import course_utils.grading_guard``
(``nbgrader_config.py``: ``Execute.extra_arguments``), before any cell of a submission
runs. Hidden tests then call :func:`assert_untampered` first: when a submission has
replaced ``torch.allclose``, a builtin such as ``abs`` or ``float``, or a method the tests
use, the test fails instead of trusting the patched function. Hidden tests also check exact
types (``type(x) is torch.Tensor``, ``type(v) is float``), so an object whose ``__eq__``
is always true is not taken for a result.

Nothing here computes an exercise's answer. Outside grading (a student's own run, CI's
nbval) the first import happens in the notebook itself and the check still runs.
"""
from __future__ import annotations

import builtins
import math

import numpy
import torch

BUILTINS = ("abs", "all", "any", "bool", "callable", "dict", "float", "getattr", "hasattr",
            "int", "isinstance", "issubclass", "len", "list", "max", "min", "range", "repr",
            "round", "set", "sorted", "str", "sum", "tuple", "type", "zip")


def _named() -> dict[str, object]:
    """Every guarded name and what it refers to now."""
    objects = {f"builtins.{name}": getattr(builtins, name) for name in BUILTINS}
    objects.update({
        "math.isclose": math.isclose, "math.isfinite": math.isfinite, "math.log": math.log,
        "numpy.allclose": numpy.allclose, "numpy.isclose": numpy.isclose,
        "numpy.array_equal": numpy.array_equal,
        "torch.allclose": torch.allclose, "torch.equal": torch.equal,
        "torch.isclose": torch.isclose, "torch.testing.assert_close": torch.testing.assert_close,
        "torch.Tensor": torch.Tensor, "torch.Tensor.__eq__": torch.Tensor.__eq__,
        "torch.Tensor.__sub__": torch.Tensor.__sub__, "torch.Tensor.abs": torch.Tensor.abs,
        "torch.Tensor.item": torch.Tensor.item, "torch.Tensor.tolist": torch.Tensor.tolist,
        "torch.Tensor.double": torch.Tensor.double, "torch.Tensor.detach": torch.Tensor.detach,
        "torch.Tensor.max": torch.Tensor.max, "torch.Tensor.sum": torch.Tensor.sum,
        "torch.Tensor.__bool__": torch.Tensor.__bool__,
    })
    return objects


PRISTINE = _named()     # taken once, at the first import


def tampered() -> list[str]:
    """The guarded names that no longer refer to their original objects."""
    now = _named()
    return sorted(name for name, obj in PRISTINE.items() if now[name] is not obj)


def assert_untampered() -> None:
    """Fail when the submission replaced a function the hidden tests rely on."""
    changed = tampered()
    if changed:
        raise AssertionError("the submission replaced functions the tests rely on: "
                             + ", ".join(changed) + " (no points for a patched comparison)")
