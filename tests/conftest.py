"""Shared fixtures: a headless matplotlib and a clean course environment."""
import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

COURSE_VARIABLES = ("NBGRADER_EXECUTION", "COURSE_MODE", "COURSE_FAST", "COURSE_DEVICE",
                    "COURSE_OFFLINE", "COURSE_DATA_DIR", "COURSE_DATASET", "COLAB_RELEASE_TAG")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def course_env(monkeypatch, tmp_path):
    """No course variable set, except COURSE_DATA_DIR pointing at an empty temporary folder."""
    for name in COURSE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    return monkeypatch
