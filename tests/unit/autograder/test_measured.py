"""The measured figures: records in benchmarks/results/ are the only source of the README's and
the notebooks' tables (autograder/measured.py), and the benchmark records aggregate seeds
faithfully (benchmarks/records.py)."""
from __future__ import annotations

import json
import shutil

import pytest

from autograder import measured
from autograder.course import COURSE_DIR

import records


def test_the_committed_tables_agree_with_the_records():
    assert measured.check(COURSE_DIR) == []
    tagged = measured.expected_texts(COURSE_DIR)
    assert {p.stem for p in tagged} >= {"README", "01_simclr_ntxent", "02_moco_queue",
                                         "03_mae_masking", "04_dino_self_distillation",
                                         "05_paradigms_and_segments"}


def test_every_record_has_its_provenance():
    for record in measured.load_records():
        for key in ("notebook", "mode", "hardware", "training_minutes", "knn", "linear",
                    "command", "commit", "date", "seeds"):
            assert key in record, (record["file"], key)
        assert "random init" in record["knn"], record["file"]
        assert not record["linear"] or "random init" in record["linear"], record["file"]


@pytest.fixture
def copy(tmp_path):
    """The masters, the README and the records in a scratch folder."""
    course = tmp_path / "course"
    shutil.copytree(COURSE_DIR / "source", course / "source")
    shutil.copy(measured.README, tmp_path / "README.md")
    shutil.copytree(measured.RESULTS_DIR, tmp_path / "results")
    return course, tmp_path / "README.md", tmp_path / "results"


def test_a_changed_figure_is_caught_and_rewritten(copy):
    course, readme, results = copy
    path = results / "cifar10_cpu_01_simclr.json"
    record = json.loads(path.read_text())
    record["knn"]["SimCLR"] = 0.777
    path.write_text(json.dumps(record))
    problems = measured.check(course, readme, results)
    assert any("README" in p for p in problems)
    assert any("01_simclr_ntxent" in p for p in problems)
    changed = measured.write(course, readme, results)
    assert {p.name for p in changed} == {"README.md", "01_simclr_ntxent.ipynb"}
    assert measured.check(course, readme, results) == []
    assert "77.7%" in readme.read_text()
    master = json.loads((course / "source/01_simclr_ntxent/01_simclr_ntxent.ipynb").read_text())
    cell = [c for c in master["cells"] if "measured" in c["metadata"].get("tags", [])]
    assert "77.7%" in "".join(cell[0]["source"])
    other = (course / "source/02_moco_queue/02_moco_queue.ipynb").read_text()
    assert other == (COURSE_DIR / "source/02_moco_queue/02_moco_queue.ipynb").read_text()


def test_a_hand_edit_of_a_table_is_caught(copy):
    course, readme, results = copy
    text = readme.read_text()
    readme.write_text(text.replace("41.2%", "44.2%", 1))
    assert any("README" in p for p in measured.check(course, readme, results))


def _run(seed, knn, seconds=60.0, loss=0.5):
    return {"notebook": "01_simclr_ntxent", "mode": "fast", "device": "cpu",
            "dataset": "shapes", "seed": seed, "seconds": seconds,
            "notebook_seconds": seconds + 30, "knn": {"random init": 0.2, "SimCLR": knn},
            "linear": {"random init": 0.3, "SimCLR": knn + 0.1},
            "held-out loss": {"MAE": loss}}


def test_seeds_aggregate_to_their_mean_and_range_and_render_so():
    runs = [_run(0, 0.40, 50, 0.3), _run(1, 0.44, 70, 0.5), _run(2, 0.48, 60, 0.4)]
    agg = records.aggregate(runs)
    assert agg["knn"] == {"random init": 0.2, "SimCLR": 0.44}
    assert agg["spread"]["knn"]["SimCLR"] == [0.40, 0.48]
    assert agg["held-out loss"]["MAE"] == pytest.approx(0.4)
    assert agg["training_minutes"] == 1.0 and agg["notebook_minutes"] == 1.5
    assert agg["runs"] == runs
    record = {"notebook": "01_simclr_ntxent", "mode": "fast", "hardware": "2 CPU cores",
              "dataset": "shapes", **agg, "command": "c", "commit": "abc", "date": "d",
              "seeds": [0, 1, 2]}
    table = measured.record_table(record)
    assert "| SimCLR | 44.0% (40.0%–48.0%) | 54.0% (50.0%–58.0%) |" in table
    assert "| MAE | 0.400 (0.300–0.500) |" in table            # a loss, not a percentage
    assert "3 seeds [0, 1, 2]" in table and "1.5 min the whole notebook" in table


def test_a_record_without_random_init_is_refused(tmp_path):
    with pytest.raises(ValueError, match="random init"):
        records.write_record(tmp_path / "x.json", {"knn": {"SimCLR": 0.5}, "linear": {}})


@pytest.mark.parametrize("notebook", ["01_simclr_ntxent", "02_moco_queue", "03_mae_masking",
                                      "04_dino_self_distillation", "05_paradigms_and_segments"])
def test_every_master_records_what_it_prints(notebook):
    """Each master hands its figures to course_utils.results once, under its own name
    (benchmarks/fast_mode.py reads nothing else)."""
    master = json.loads((COURSE_DIR / "source" / notebook / f"{notebook}.ipynb").read_text())
    code = ["".join(c["source"]) for c in master["cells"] if c["cell_type"] == "code"]
    saves = [i for i, src in enumerate(code) if f'save_results("{notebook}"' in src]
    assert len(saves) == 1, f"{notebook}: {len(saves)} save_results calls"
    assert "from course_utils.results import save as save_results" in "".join(code[:saves[0]])
