"""course_utils.results: a notebook's printed figures as a record, written only when asked."""
import json

import pytest

from course_utils import results

FIGURES = dict(mode="fast", device="cpu", dataset="shapes", seconds=12.34,
               knn={"random init": 0.2, "SimCLR": 0.456789},
               linear={"random init": 0.25, "SimCLR": 0.5})


def test_nothing_is_written_without_the_variable(monkeypatch, tmp_path):
    monkeypatch.delenv(results.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert results.save("01_simclr_ntxent", **FIGURES) is None
    assert list(tmp_path.iterdir()) == []


def test_the_record_is_written_where_the_variable_says(monkeypatch, tmp_path):
    monkeypatch.setenv(results.ENV, str(tmp_path / "out"))
    path = results.save("01_simclr_ntxent", miou={"random init": 0.1}, **FIGURES)
    assert path == tmp_path / "out" / "01_simclr_ntxent.json"
    entry = json.loads(path.read_text())
    assert entry["notebook"] == "01_simclr_ntxent" and entry["seconds"] == 12.3
    assert entry["knn"] == {"random init": 0.2, "SimCLR": 0.4568}
    assert entry["miou"] == {"random init": 0.1}


def test_a_record_without_the_random_init_baseline_is_refused():
    with pytest.raises(ValueError, match="random init"):
        results.record("01_simclr_ntxent", **dict(FIGURES, linear={"SimCLR": 0.5}))
