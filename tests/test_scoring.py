"""Trusted scoring of the fixture: properties checked outside the student's process."""
import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "autograder"))
sys.path.insert(0, str(HERE))
import course  # noqa: E402
from test_autograder import FIXTURE, cell, make_course, sandbox_ready  # noqa: E402

pytestmark = pytest.mark.notebook
FULL = {"test_add": 1.0, "test_mean_of": 2.0}


@pytest.fixture(scope="module")
def fixture_parts(tmp_path_factory):
    ok, why = sandbox_ready()
    if not ok:
        pytest.skip(f"no isolation here: {why}")
    import scoring
    course_dir = make_course(tmp_path_factory.mktemp("scoring") / "course", FIXTURE)
    course.generate(course_dir, FIXTURE, database=False)
    master = course.notebook_json(course.master_notebooks(course_dir, FIXTURE)[0])
    release = course.notebook_json(course_dir / "release" / FIXTURE / f"{FIXTURE}.ipynb")
    return master, release, scoring.load_grader(FIXTURE, HERE / "fixtures" / "graders")


def score(parts, edit=None, seed=None):
    import scoring
    master, release, grader = parts
    notebook = json.loads(json.dumps(master))
    if edit:
        edit(notebook["cells"])
    results = scoring.score_notebook(notebook, release, grader, timeout=10, seed=seed)
    return scoring.cell_points(results), results


def answer(grade_id, source):
    def edit(cells):
        cell(cells, grade_id)["source"] = source
    return edit


def test_the_master_earns_every_property_on_fresh_inputs(fixture_parts):
    for seed in (None, None, 12345):
        points, results = score(fixture_parts, seed=seed)
        assert points == FULL, [(r.name, r.message) for r in results if not r.earned]


def test_the_blank_release_earns_nothing(fixture_parts):
    import scoring
    _, release, grader = fixture_parts
    points = scoring.cell_points(scoring.score_notebook(release, release, grader, timeout=10))
    assert points == {"test_add": 0.0, "test_mean_of": 0.0}


def test_partial_credit_by_named_property(fixture_parts):
    points, results = score(fixture_parts, answer("add", "def add(a, b):\n    return float(a + b)\n"))
    assert points == {"test_add": 0.25, "test_mean_of": 2.0}
    failed = {r.name: r.message for r in results if not r.earned}
    assert set(failed) == {"adds two integers exactly", "a number and its opposite add to 0"}
    assert "should return an int" in failed["adds two integers exactly"]
    points, _ = score(fixture_parts, answer("mean_of", "def mean_of(xs):\n    return sum(xs) // len(xs)\n"))
    assert points["test_mean_of"] < 2.0 and points["test_add"] == 1.0


@pytest.mark.parametrize("source", [
    # the blank-notebook routes of same-process grading do nothing here: no kernel, no tests
    "get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])\n",
    "import builtins\nbuiltins.AssertionError = type('Never', (Exception,), {})\n",
    "import sys\nsys.modules['math'] = None\n",
    "def add(a, b):\n    if (a, b) == (1, 2):\n        return 3\n    raise NotImplementedError\n",
])
def test_tricks_earn_nothing_of_add(fixture_parts, source):
    points, _ = score(fixture_parts, answer("add", source))
    assert points["test_add"] == 0.0
    assert points["test_mean_of"] == 2.0                 # the other exercise is untouched


def test_a_crash_costs_only_its_exercise(fixture_parts):
    points, results = score(fixture_parts, answer("add", "import os\ndef add(a, b):\n    os._exit(1)\n"))
    assert points == {"test_add": 0.0, "test_mean_of": 2.0}
    points, _ = score(fixture_parts, answer("add", "def add(a, b):\n    while True:\n        pass\n"))
    assert points == {"test_add": 0.0, "test_mean_of": 2.0}
