"""course_utils.grading_guard: a patched comparison is noticed, an honest run is not."""
import builtins

import pytest
import torch

from course_utils import grading_guard


def test_nothing_is_tampered_in_an_honest_run():
    assert grading_guard.tampered() == []
    grading_guard.assert_untampered()


@pytest.mark.parametrize("owner, name, fake", [
    (torch, "allclose", lambda *a, **k: True),
    (builtins, "abs", lambda x: 0),
    (builtins, "isinstance", lambda *a: True),
    (torch.Tensor, "__eq__", lambda self, other: True),
])
def test_a_replaced_function_is_named(owner, name, fake):
    original = getattr(owner, name)
    setattr(owner, name, fake)          # restored before anything else runs (pytest needs it)
    try:
        changed = grading_guard.tampered()
        try:
            grading_guard.assert_untampered()
            message = None
        except AssertionError as error:
            message = str(error)
    finally:
        setattr(owner, name, original)
    assert any(entry.endswith("." + name) for entry in changed), changed
    assert message is not None and name in message
    assert grading_guard.tampered() == []
