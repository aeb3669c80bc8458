"""The stored tables of the visible checks are what their generator gives now (issue 17):
run ``python -m tests.check_data`` after changing a mistake, a message or a fixed input."""
from __future__ import annotations

import importlib
import math

import pytest

import check_data

REL, ABS = 2e-5, 1e-9       # a last digit that rounds the other way elsewhere is no change


def differences(new, old, where: str = "") -> list[str]:
    """Where two tables differ: their structure, names and messages exactly, their numbers
    within (REL, ABS)."""
    if isinstance(new, dict) and isinstance(old, dict):
        if list(new) != list(old):
            return [f"{where}: keys {list(new)} != {list(old)}"]
        return [d for key in new for d in differences(new[key], old[key], f"{where}[{key!r}]")]
    if isinstance(new, list) and isinstance(old, list):
        if len(new) != len(old):
            return [f"{where}: {len(new)} entries != {len(old)}"]
        return [d for i, (a, b) in enumerate(zip(new, old))
                for d in differences(a, b, f"{where}[{i}]")]
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (new, old))
    if (numbers and math.isclose(new, old, rel_tol=REL, abs_tol=ABS)) or new == old:
        return []
    return [f"{where}: {new!r} != {old!r}"]


@pytest.mark.parametrize("notebook", list(check_data.NOTEBOOKS))
def test_the_stored_tables_are_what_the_generator_gives(notebook):
    stored = importlib.import_module(f"course_utils.checks.stored.{notebook}")
    found = differences(check_data.tables(notebook), stored.TABLES)
    assert not found, (f"course_utils/checks/stored/{notebook}.py is out of date; run "
                       f"`python -m tests.check_data {notebook}`:\n" + "\n".join(found[:20]))
    assert f"python -m tests.check_data {notebook}" in stored.__doc__


def test_differences_tolerate_float_noise_only():
    table = {"expected": [1.23457, None], "mistakes": [{"name": "a", "values": 2.0,
                                                        "message": "m"}]}
    assert differences(table, {**table, "expected": [1.23458, None]}) == []
    assert differences(table, {**table, "expected": [1.2346, None]})
    assert differences(table, {**table, "expected": [1.23457, 0.0]})
    assert differences(table, {**table, "mistakes": [{"name": "a", "values": 2.0,
                                                      "message": "n"}]})
