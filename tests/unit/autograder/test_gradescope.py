"""The Gradescope autograder (autograder/gradescope.py): the zip's layout and what it holds,
and ``run_autograder`` run as Gradescope runs it, in a temporary root, on the fixture (3
points, two exercises) and on notebook 02: a right notebook gets full marks, the blank
release 0, one wrong exercise loses only its points, and every broken or hostile upload gets
a results file with 0 and the reason."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autograder import course, gradescope
from helpers import FIXTURE, REPO, cell, make_course, sandbox_ready

pytestmark = pytest.mark.notebook       # each run starts a scoring worker (seconds)

@pytest.fixture(scope="module")
def unzipped(tmp_path_factory):
    """assignment -> (the zip, the folder it was unzipped into, as /autograder/source)."""
    out = {}
    for assignment in (FIXTURE, "02_moco_queue"):
        work = tmp_path_factory.mktemp(f"gs-{assignment}")
        course_dir = make_course(work / "course", assignment)
        archive = gradescope.build(course_dir, assignment, work / "autograder.zip",
                                   visibility="visible")
        source = work / "source"
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():           # as Gradescope unzips: modes kept
                path = Path(z.extract(info, source))
                path.chmod(info.external_attr >> 16 & 0o777)
        out[assignment] = (archive, source, course_dir)
    return out


def run_autograder(source: Path, root: Path, notebook=None, name="00_fixture.ipynb",
                   env=None) -> dict:
    """Put ``notebook`` (a dict, bytes, or None for nothing) in root/submission and run the
    zip's run_autograder as Gradescope would; its results.json."""
    submission = root / "submission"
    submission.mkdir(parents=True, exist_ok=True)
    if notebook is not None:
        data = notebook if isinstance(notebook, bytes) else json.dumps(notebook).encode()
        (submission / name).write_bytes(data)
    env = {**os.environ, "GRADESCOPE_ROOT": str(root), "COURSE_PYTHON": sys.executable,
           **(env or {})}
    run = subprocess.run(["bash", str(source / "run_autograder")], capture_output=True,
                         timeout=300, env=env)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    return json.loads((root / "results" / "results.json").read_text())


def master(course_dir: Path, assignment: str) -> dict:
    [path] = course.master_notebooks(course_dir, assignment)
    return json.loads(path.read_text())


def release_of(source: Path, assignment: str) -> dict:
    return json.loads((source / "kit" / "release" / f"{assignment}.ipynb").read_text())


def points_by_cell(results: dict) -> dict[str, float]:
    cells: dict[str, float] = {}
    for test in results["tests"]:
        grade_id = test["name"].split(":")[0]
        cells[grade_id] = cells.get(grade_id, 0) + test["score"]
    return cells


# ---------------------------------------------------------------------------- the zip


def test_the_zip_holds_setup_run_and_the_kit(unzipped):
    archive, source, _ = unzipped[FIXTURE]
    names = zipfile.ZipFile(archive).namelist()
    assert {"setup.sh", "run_autograder", "kit/config.json", "kit/release/00_fixture.ipynb",
            "kit/autograder/graders/00_fixture.py", "kit/autograder/gradescope.py",
            "kit/course/pyproject.toml", "kit/course/course_utils/__init__.py"} <= set(names)
    for script in ("setup.sh", "run_autograder"):
        assert (source / script).stat().st_mode & stat.S_IXUSR, f"{script} is not executable"
    setup = (source / "setup.sh").read_text()
    assert "bubblewrap" in setup and "chmod -R go-rwx kit" in setup
    config = json.loads((source / "kit" / "config.json").read_text())
    assert config["assignment"] == FIXTURE and config["visibility"] == "visible"


def test_the_zip_holds_one_grader_and_no_answer(unzipped):
    """Only this assignment's grader (for the instructor's upload: root's alone in the
    container); no master, demo answer or line of a solution anywhere else."""
    import leaks
    archive, source, _ = unzipped["02_moco_queue"]
    names = zipfile.ZipFile(archive).namelist()
    grader = "kit/autograder/graders/02_moco_queue.py"
    assert [n for n in names if "/graders/" in n] == [grader]
    assert not [n for n in names if "/source/" in n or "demo_submissions" in n]
    answers = {line: where for line, where in leaks.secret_lines().items()
               if not where.startswith("graders/")}      # the masters' solutions and tests
    found = leaks.leaks([source / n for n in names], answers)
    assert not found, "\n".join(found[:20])


def test_a_visibility_gradescope_does_not_know_is_refused(tmp_path):
    course_dir = make_course(tmp_path / "course", FIXTURE)
    with pytest.raises(course.CourseError, match="visibility"):
        gradescope.build(course_dir, FIXTURE, tmp_path / "a.zip", visibility="public")


# ---------------------------------------------------------------------------- run_autograder


@pytest.fixture(scope="module")
def isolated():
    ok, why = sandbox_ready()
    return ok


def test_the_master_gets_full_marks_with_one_test_per_property(unzipped, tmp_path, isolated):
    _, source, course_dir = unzipped[FIXTURE]
    results = run_autograder(source, tmp_path, master(course_dir, FIXTURE))
    assert results["score"] == 3.0
    assert points_by_cell(results) == {"test_add": 1.0, "test_mean_of": 2.0}
    assert len(results["tests"]) == 6 and all(t["visibility"] == "visible"
                                              for t in results["tests"])
    assert [t["number"] for t in results["tests"]] == ["1.1", "1.2", "1.3", "2.1", "2.2", "2.3"]
    assert "sandbox" in results["output"] if isolated else "isolated" in results["output"]


def test_the_blank_release_gets_zero(unzipped, tmp_path):
    _, source, _ = unzipped[FIXTURE]
    results = run_autograder(source, tmp_path, release_of(source, FIXTURE))
    assert results["score"] == 0 and len(results["tests"]) == 6
    assert all(t["score"] == 0 and t["output"] for t in results["tests"])


def test_one_wrong_exercise_loses_only_its_points(unzipped, tmp_path):
    _, source, course_dir = unzipped["02_moco_queue"]
    notebook = master(course_dir, "02_moco_queue")
    answer = next(c for c in notebook["cells"]
                  if (c["metadata"].get("nbgrader") or {}).get("grade_id") == "moco_logits")
    answer["source"] = ("def moco_logits(q, k, queue_keys, tau):\n"
                        "    l_pos = (q * k).sum(dim=1, keepdim=True)\n"
                        "    logits = torch.cat([l_pos, q @ queue_keys.detach().T], dim=1)\n"
                        "    return logits, torch.zeros(len(q), dtype=torch.long)\n")  # no tau
    results = run_autograder(source, tmp_path, notebook, name="02_moco_queue.ipynb")
    cells = points_by_cell(results)
    assert cells == {"test_momentum_update": 3.0, "test_key_queue": 4.0,
                     "test_moco_logits": cells["test_moco_logits"], "test_moco_step": 3.0}
    assert 0 < cells["test_moco_logits"] < 3.0
    assert any("tau" in t["output"] for t in results["tests"] if t["score"] < t["max_score"])


def test_a_notebook_saved_by_colab_is_mended_and_graded(unzipped, tmp_path):
    _, source, course_dir = unzipped[FIXTURE]
    notebook = master(course_dir, FIXTURE)
    for c in notebook["cells"]:
        c["metadata"] = {}
        c.pop("id", None)
    notebook["nbformat_minor"] = 2
    results = run_autograder(source, tmp_path, notebook, name="Copy of 00_fixture.ipynb")
    assert results["score"] == 3.0
    assert "metadata was missing" in results["output"]


@pytest.mark.parametrize("upload, words", [
    (b"\x00\xff not json", "UTF-8"),
    (b"{\"cells\": 3}", "nbformat"),
    (b"[]", "not an object"),
    (None, "no .ipynb file"),
], ids=["binary", "bad cells", "a list", "nothing"])
def test_a_broken_upload_gets_zero_and_the_reason(unzipped, tmp_path, upload, words):
    _, source, _ = unzipped[FIXTURE]
    results = run_autograder(source, tmp_path, upload)
    assert results["score"] == 0 and words in results["output"]
    assert len(results["tests"]) == 6 and all(words in t["output"] for t in results["tests"])


def test_a_link_to_the_grader_is_not_followed(unzipped, tmp_path):
    """The upload is a symbolic link to the kit's grader (root reads the submission): it is
    refused, and nothing of the grader reaches the results."""
    _, source, _ = unzipped[FIXTURE]
    (tmp_path / "submission").mkdir()
    grader = source / "kit" / "autograder" / "graders" / "00_fixture.py"
    (tmp_path / "submission" / "00_fixture.ipynb").symlink_to(grader)
    results = run_autograder(source, tmp_path)
    assert results["score"] == 0 and "link" in results["output"]
    assert "def add_integers" not in json.dumps(results)


def test_several_notebooks_pick_the_released_name(unzipped, tmp_path, isolated):
    _, source, course_dir = unzipped[FIXTURE]
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "scratch.ipynb").write_text(json.dumps(release_of(source, FIXTURE)))
    results = run_autograder(source, tmp_path, master(course_dir, FIXTURE))
    assert results["score"] == 3.0 and "Graded 00_fixture.ipynb" in results["output"]
    (submission / "00_fixture.ipynb").rename(submission / "mine.ipynb")
    results = run_autograder(source, tmp_path)
    assert results["score"] == 0 and "none named 00_fixture.ipynb" in results["output"]


def test_a_submission_that_attacks_the_results_changes_nothing(unzipped, tmp_path):
    """The answer writes a results file of full marks where Gradescope reads it, and kills
    its parent: the grader's own results replace it, and the attack scores 0."""
    _, source, course_dir = unzipped[FIXTURE]
    notebook = master(course_dir, FIXTURE)
    attack = ("import json, os, signal\n"
              f"root = {str(tmp_path)!r}\n"
              "try:\n"
              "    os.makedirs(root + '/results', exist_ok=True)\n"
              "    open(root + '/results/results.json', 'w').write(json.dumps({'score': 99}))\n"
              "except OSError:\n"
              "    pass\n"
              "try:\n"
              "    os.kill(os.getppid(), signal.SIGKILL)\n"
              "except OSError:\n"
              "    pass\n"
              "def add(a, b):\n"
              "    return 99\n")
    cell(notebook["cells"], "add")["source"] = attack
    results = run_autograder(source, tmp_path, notebook)
    assert results["score"] == 2.0                     # mean_of's points; add earns nothing
    assert points_by_cell(results) == {"test_add": 0.0, "test_mean_of": 2.0}


def test_without_the_sandbox_the_results_say_so(unzipped, tmp_path):
    """COURSE_SANDBOX=off: the container is the isolation; the worker runs as a user of
    its own when the grader is root and may, and the output says which."""
    _, source, course_dir = unzipped[FIXTURE]
    results = run_autograder(source, tmp_path, master(course_dir, FIXTURE),
                             env={"COURSE_SANDBOX": "off"})
    assert results["score"] == 3.0
    assert ("a user of its own" in results["output"]
            or "NOT isolated" in results["output"]), results["output"]


def test_python_that_cannot_start_still_writes_a_result(unzipped, tmp_path):
    _, source, course_dir = unzipped[FIXTURE]
    results = run_autograder(source, tmp_path, master(course_dir, FIXTURE),
                             env={"COURSE_PYTHON": str(tmp_path / "no-python")})
    assert results["score"] == 0 and "did not run" in results["output"]
