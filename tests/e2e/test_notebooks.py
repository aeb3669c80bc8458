"""Masters and student notebooks: in sync, no leaked solutions, no outputs, sound metadata.

Executing the masters is nbval's job (`pytest --nbval-lax autograder/source` in the test
command); these tests only read the notebooks (and regenerate the student versions).
"""
import json
import re
import shutil
from pathlib import Path

import pytest

from autograder import cli, course, demo, release
from helpers import REPO

FIXTURE_SOURCE = REPO / "tests" / "fixtures"
FIXTURE = "00_fixture"
MASTERS = [nb for a in course.source_assignments(course.COURSE_DIR)
           for nb in course.master_notebooks(course.COURSE_DIR, a)]
MASTERS_AND_FIXTURE = MASTERS + [FIXTURE_SOURCE / FIXTURE / f"{FIXTURE}.ipynb"]
STUDENT_NOTEBOOKS = sorted(course.NOTEBOOKS_DIR.glob("*.ipynb"))

# The exercise contract of DESIGN.md / issue 2: test cell -> points.
EXPECTED_POINTS = {
    "01_simclr_ntxent": {
        "test_softmax_cross_entropy": 2, "test_cosine_similarity_matrix": 2,
        "test_nt_xent_loss_naive": 3, "test_nt_xent_loss": 3,
        "test_simclr_transform": 2, "test_projection_head": 2,
    },
}
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
HIDDEN_MARKERS = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
STUB = re.compile(r"# YOUR CODE HERE\n\s*raise NotImplementedError\(\)")


def nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def source(cell) -> str:
    return "".join(cell["source"])


def name(path: Path) -> str:
    return path.parent.name


@pytest.fixture(scope="module")
def fixture_release(tmp_path_factory):
    """The fixture master, its course copy and its generated student notebook."""
    root = tmp_path_factory.mktemp("release") / "course"
    root.mkdir()
    for file in course.COURSE_FILES:
        shutil.copy2(course.COURSE_DIR / file, root / file)
    shutil.copytree(FIXTURE_SOURCE / FIXTURE, root / "source" / FIXTURE)
    [student] = release.generate(root, FIXTURE, database=False)
    return root, student


# --- the committed student notebooks --------------------------------------------------

def test_student_notebooks_are_in_sync_with_masters():
    problems = release.check_release(course.COURSE_DIR, course.NOTEBOOKS_DIR)
    assert not problems, ("\n".join(problems)
                          + "\nRegenerate with: .venv/bin/python -m autograder release --all")


def test_check_release_catches_a_stale_notebook(fixture_release, tmp_path, capsys):
    root, _ = fixture_release
    notebooks = tmp_path / "notebooks"
    release.release(root, [FIXTURE], notebooks)
    args = ["--course-dir", str(root), "check-release", "--notebooks-dir", str(notebooks)]
    assert cli.main(args) == 0

    stale = notebooks / f"{FIXTURE}.ipynb"
    notebook = json.loads(stale.read_text())
    notebook["cells"][3]["source"] = "def add(a, b):\n    return a + b  # edited by hand\n"
    stale.write_text(json.dumps(notebook))
    assert cli.main(args) == 1
    assert f"{stale} is out of date: cell 3 (code" in capsys.readouterr().out

    stale.unlink()
    (notebooks / "99_orphan.ipynb").write_text("{}")
    problems = release.check_release(root, notebooks)
    assert any("is missing" in p for p in problems)
    assert any("99_orphan.ipynb has no master" in p for p in problems)


@pytest.mark.parametrize("student", STUDENT_NOTEBOOKS + [FIXTURE], ids=lambda p: Path(p).name)
def test_student_notebook_has_stubs_and_no_solutions_or_outputs(fixture_release, student):
    path = fixture_release[1] if student == FIXTURE else student
    text = path.read_text(encoding="utf-8")
    for marker in SOLUTION_MARKERS + HIDDEN_MARKERS:
        assert marker not in text, f"{path} contains {marker!r}"
    cells = json.loads(text)["cells"]
    solutions = [c for c in cells if nbgrader(c).get("solution") and c["cell_type"] == "code"]
    assert solutions, f"{path} has no exercise"
    for cell in solutions:
        assert STUB.search(source(cell)), f"{path}: {nbgrader(cell)['grade_id']} has no stub"
    for cell in cells:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path} has outputs"


# --- the masters ------------------------------------------------------------------------

@pytest.mark.parametrize("master", MASTERS_AND_FIXTURE, ids=name)
def test_master_has_no_outputs(master):
    cells = course.read_notebook(master)["cells"]
    executed = [i for i, c in enumerate(cells)
                if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"] is not None)]
    assert not executed, f"{master}: cells {executed} have outputs (clear them before committing)"


# Solution cells without points of their own: written again where a later notebook needs
# them (graded where they were first written), so that no release ships another's answer.
UNGRADED_SOLUTIONS = {"04_dino_self_distillation": {"teacher_update"}}   # notebook 02's


@pytest.mark.parametrize("master", MASTERS_AND_FIXTURE, ids=name)
def test_master_nbgrader_metadata(master):
    notebook = course.read_notebook(master)
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    cells = [c for c in notebook["cells"] if nbgrader(c)]
    ids = [nbgrader(c).get("grade_id") for c in cells]
    assert all(ids), f"{master}: an nbgrader cell without grade_id"
    assert len(ids) == len(set(ids)), f"{master}: duplicated grade_id {sorted(i for i in ids if ids.count(i) > 1)}"

    tests = {nbgrader(c)["grade_id"]: c for c in cells if nbgrader(c).get("grade")}
    for grade_id, cell in tests.items():
        assert nbgrader(cell).get("points", 0) > 0, f"{master}: {grade_id} has no points"
        assert cell["cell_type"] == "code" and nbgrader(cell).get("locked"), f"{grade_id} must be a locked code cell"
    solutions = [c for c in cells if nbgrader(c).get("solution")]
    assert solutions
    for cell in solutions:
        grade_id = nbgrader(cell)["grade_id"]
        assert all(m in source(cell) for m in SOLUTION_MARKERS), f"{grade_id}: no solution markers"
        if grade_id in UNGRADED_SOLUTIONS.get(name(master), ()):
            assert f"test_{grade_id}" not in tests, f"{grade_id} is listed as ungraded"
            continue
        assert f"test_{grade_id}" in tests, f"{grade_id}: no test cell test_{grade_id}"
    if name(master) in EXPECTED_POINTS:
        points = {grade_id: nbgrader(c)["points"] for grade_id, c in tests.items()}
        assert points == EXPECTED_POINTS[name(master)]


@pytest.mark.parametrize("master", MASTERS_AND_FIXTURE, ids=name)
def test_every_assignment_has_wrong_variants(master):
    """autograder/demo_submissions/<assignment>.py: wrong code for solution cells of the master."""
    wrong = demo.wrong_variants(name(master))
    cells = {nbgrader(c).get("grade_id"): c for c in course.read_notebook(master)["cells"]
             if nbgrader(c).get("solution")}
    assert wrong
    for grade_id, wrong_source in wrong.items():
        assert grade_id in cells, f"{grade_id} is not a solution cell of {master}"
        assert wrong_source.strip() != source(cells[grade_id]).strip()
