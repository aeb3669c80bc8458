"""Trusted scoring of the fixture: properties checked outside the student's process."""
import json
import shutil

import pytest

from autograder import collect, course, demo, grading, release, reports
from helpers import FIXTURE, FIXTURE_SOURCE, cell, make_course, sandbox_ready

pytestmark = pytest.mark.notebook
FULL = {"test_add": 1.0, "test_mean_of": 2.0}


@pytest.fixture(scope="module")
def fixture_parts(tmp_path_factory):
    ok, why = sandbox_ready()
    if not ok:
        pytest.skip(f"no isolation here: {why}")
    from autograder import scoring
    course_dir = make_course(tmp_path_factory.mktemp("scoring") / "course", FIXTURE)
    release.generate(course_dir, FIXTURE, database=False)
    master = course.read_notebook(course.master_notebooks(course_dir, FIXTURE)[0])
    released = course.read_notebook(course_dir / "release" / FIXTURE / f"{FIXTURE}.ipynb")
    return master, released, scoring.load_grader(FIXTURE, FIXTURE_SOURCE / "graders")


def score(parts, edit=None, seed=None):
    from autograder import scoring
    master, released, grader = parts
    notebook = json.loads(json.dumps(master))
    if edit:
        edit(notebook["cells"])
    results = scoring.score_notebook(notebook, released, grader, timeout=10, seed=seed)
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
    from autograder import scoring
    _, released, grader = fixture_parts
    points = scoring.cell_points(scoring.score_notebook(released, released, grader, timeout=10))
    assert points == {"test_add": 0.0, "test_mean_of": 0.0}


def test_partial_credit_by_named_property(fixture_parts):
    points, results = score(fixture_parts, answer("add", "def add(a, b):\n    return float(a + b)\n"))
    assert points == {"test_add": 0.25, "test_mean_of": 2.0}
    failed = {r.name: r.message for r in results if not r.earned}
    assert set(failed) == {"adds two integers exactly", "a number and its opposite add to 0, and itself to its double"}
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


AST_WRAP = '''import ast
class _Wrap(ast.NodeTransformer):
    def visit_Module(self, node):
        handler = ast.ExceptHandler(type=ast.Name("BaseException", ast.Load()), name=None,
                                    body=[ast.Pass()])
        return ast.fix_missing_locations(ast.Module(
            body=[ast.Try(body=node.body or [ast.Pass()], handlers=[handler], orelse=[],
                          finalbody=[])], type_ignores=[]))
get_ipython().ast_transformers.append(_Wrap())
def add(a, b):
    return 0
'''


def test_autograde_scores_outside_the_kernel(tmp_path):
    """With a grader module, the properties decide the gradebook's points: a kernel-level
    trick that makes nbgrader's hidden tests pass earns nothing, partial answers earn their
    properties, and the report lists each property."""
    ok, why = sandbox_ready()
    if not ok:
        pytest.skip(f"no isolation here: {why}")
    course_dir = make_course(tmp_path / "course", FIXTURE)
    with open(course_dir / "nbgrader_config.py", "a") as f:
        f.write(f"c.Grading.graders_dir = {str(FIXTURE_SOURCE / 'graders')!r}\n")
    release.generate(course_dir, FIXTURE)
    master = course.read_notebook(course.master_notebooks(course_dir, FIXTURE)[0])
    released = course.read_notebook(course_dir / "release" / FIXTURE / f"{FIXTURE}.ipynb")
    submissions = {"t_master": master, "t_blank": released,
                   "t_float": demo.with_cell_replaced(master, "add",
                                                        "def add(a, b):\n    return float(a + b)\n"),
                   "t_ast_wrap": demo.with_cell_replaced(master, "add", AST_WRAP)}
    for student, notebook in submissions.items():
        course.write_notebook(notebook, tmp_path / "in" / f"{student}.ipynb")
    collect.collect(course_dir, tmp_path / "in", FIXTURE)
    results = {r.student: r for r in grading.autograde(course_dir, FIXTURE, list(submissions),
                                                      workers=2, echo=lambda *_: None)}
    assert all(r.ok for r in results.values()), {s: r.reason for s, r in results.items()}
    expected = {"t_master": 3, "t_blank": 0, "t_float": 2.25, "t_ast_wrap": 2}
    assert {s: r.score for s, r in results.items()} == expected
    with course.gradebook(course_dir) as gb:
        assert gb.find_grade("test_add", FIXTURE, FIXTURE, "t_ast_wrap").auto_score == 0
    report = (course_dir / "reports" / FIXTURE / "t_float.properties.txt").read_text()
    assert "test_add: adds two integers exactly: 0/0.5 (add(" in report
    assert any("scored outside the kernel: 4 of 6" in n for n in results["t_float"].notes)
    # the feedback shows each property under the test cell the student ran, and escapes
    # whatever of the student's own text a message quotes
    graded = course.read_notebook(course_dir / "autograded" / "t_float" / FIXTURE / f"{FIXTURE}.ipynb")
    [test_add] = [c for c in graded["cells"]
                  if c["metadata"].get("nbgrader", {}).get("grade_id") == "test_add"]
    shown = test_add["outputs"][-1]["data"]["text/markdown"]
    assert "2.25" not in shown and "0.25 of 1 points" in shown, shown
    assert "FAILED (0/0.5) adds two integers exactly" in shown
    assert "passed (0.25/0.25) adds two floats" in shown
    folder, refused = reports.feedback(course_dir, FIXTURE)
    assert not refused
    page = (folder / "t_float" / FIXTURE / f"{FIXTURE}.html").read_text()
    assert "FAILED (0/0.5) adds two integers exactly" in page


def test_feedback_lines_escape_markup():
    from autograder import reports, scoring
    results = [scoring.PropertyResult("test_x", "finite", 1.0, 0.0, "<script>alert(1)</script>")]
    text = reports.property_lines(results)
    assert "<script>" not in text and "&lt;script&gt;" in text


def test_without_a_grader_module_nothing_is_graded(tmp_path):
    """The kernel's run of the test cells never decides: an assignment without its
    grader module fails every submission, with the reason, and writes no grade."""
    course_dir = make_course(tmp_path / "course", FIXTURE)
    shutil.rmtree(course_dir / "graders")
    release.generate(course_dir, FIXTURE)
    master = course.read_notebook(course.master_notebooks(course_dir, FIXTURE)[0])
    course.write_notebook(master, tmp_path / "in" / "alice.ipynb")
    collect.collect(course_dir, tmp_path / "in", FIXTURE)
    [result] = grading.autograde(course_dir, FIXTURE, ["alice"], echo=lambda *_: None)
    assert not result.ok and "no trusted grader" in result.reason
    with course.gradebook(course_dir) as gb:
        assert not [s for s in gb.find_assignment(FIXTURE).submissions
                    if s.student_id == "alice" and s.score]


def test_a_failing_setup_cell_is_the_graders_failure_not_a_zero():
    """A set-up cell of the release that fails before any answer ran (the environment,
    not the student) stops the scoring with the reason; one after an answer is the
    student's doing and costs only points."""
    from autograder import scoring

    def code(source, tags=(), **nbgrader):
        return {"cell_type": "code", "source": source,
                "metadata": {"tags": list(tags), "nbgrader": nbgrader} if nbgrader or tags else {}}
    release_nb = {"cells": [code("import os", ["scorer-setup"]),
                            code("x = 1", ["scorer-setup"]),
                            code("def f(): pass", solution=True, grade_id="f"),
                            code("y = 2", ["scorer-setup"])]}
    assert scoring.setup_before_answers(release_nb) == 2
    scoring.check_setup(["cell 2: NameError", "cell 3: ImportError"], 2)
    with pytest.raises(scoring.ScoringError, match="set-up cell"):
        scoring.check_setup(["cell 1: ImportError: no torch"], 2)
