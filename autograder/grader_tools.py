"""What the grader modules (graders/<assignment>.py) share: tensors made in the worker from
the grader's arrays, answers read back as arrays, and one way to compare them.

Grader-only, like the modules that use it: never released, never mounted in a sandbox.
"""
from __future__ import annotations

import numpy as np


def close(a, b, rtol=1e-4, atol=1e-5) -> bool:
    """``a`` (an answer) is finite and equals ``b`` within tolerance, shape included; False
    for anything that is not numbers."""
    try:
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return a.shape == b.shape and bool(np.all(np.isfinite(a))) and \
        bool(np.allclose(a, b, rtol=rtol, atol=atol))


def put(worker, name: str, array, requires_grad: bool = False, cast: str | None = None) -> dict:
    """A tensor made in the worker from a copy of the grader's ``array``, kept as ``name``
    (``cast``: a Tensor method such as "bfloat16" or "double"); its reference."""
    worker.call("torch.tensor", np.ascontiguousarray(array), keep=name)
    if cast:
        worker.call(cast, on=name, keep=name)
    if requires_grad:
        worker.call("requires_grad_", True, on=name, keep=name)
    return worker.ref(name)


def as_array(value, what: str, shape=None) -> np.ndarray:
    """An answer that must have come back as a tensor (an array), of ``shape`` if given."""
    assert isinstance(value, np.ndarray), f"{what} should be a tensor, got {type(value).__name__}"
    if shape is not None:
        assert value.shape == tuple(shape), \
            f"{what} has shape {tuple(value.shape)}, expected {tuple(shape)}"
    return value


def draw_seed(rng) -> int:
    """A seed for the worker's torch generators, drawn from this run's rng."""
    return int(rng.integers(1, 2**31 - 1))


def generator(worker, name: str, seed: int) -> dict:
    """A ``torch.Generator`` seeded with ``seed``, kept in the worker as ``name``."""
    worker.call("torch.Generator", keep=name)
    worker.call("manual_seed", seed, on=name, keep=name)
    return worker.ref(name)


def bf16(a: np.ndarray) -> np.ndarray:
    """float32 -> the nearest bfloat16 (round half to even), as float32."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return rounded.astype(np.uint32).view(np.float32)
