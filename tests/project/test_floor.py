"""The floors of pyproject.toml are what `make test-floor` tests: .ci/floor.txt pins each
run-time dependency at its lower bound, and that environment has exactly those releases."""
import os
import re
from importlib.metadata import version

import pytest
from helpers import REPO



def floors() -> dict[str, str]:
    """name -> lower bound of every run-time dependency in pyproject.toml."""
    text = (REPO / "pyproject.toml").read_text()
    block = text[text.index("dependencies = ["):]
    block = block[:block.index("]")]
    pairs = re.findall(r'"([A-Za-z0-9_.-]+)>=([0-9][^",;\s]*)"', block)
    return {name.lower(): bound for name, bound in pairs}


def pins() -> dict[str, str]:
    lines = (REPO / ".ci" / "floor.txt").read_text().splitlines()
    pairs = [ln.split("==") for ln in lines if ln.strip() and not ln.startswith("#")]
    return {name.strip().lower(): pin.strip() for name, pin in pairs}


def test_every_dependency_has_a_floor_and_the_floor_file_pins_it():
    assert set(floors()) == {"torch", "torchvision", "numpy", "pillow", "matplotlib", "tqdm",
                             "ipywidgets"}
    assert pins() == floors()


@pytest.mark.skipif(os.environ.get("COURSE_FLOOR_ENV") != "1",
                    reason="only in `make test-floor`'s environment")
def test_this_environment_is_the_floor():
    installed = {name: version(name).split("+")[0] for name in pins()}
    assert installed == pins()
