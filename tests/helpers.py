"""Helpers shared by the test modules (importable: pytest puts tests/ on sys.path)."""
import copy
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest


def fails_with(check, fn, *words):
    """Run ``check(fn)``; it must raise AssertionError mentioning every word."""
    with pytest.raises(AssertionError) as info:
        check(fn)
    message = str(info.value).lower()
    for word in words:
        assert word.lower() in message, f"{word!r} not in: {info.value}"
    return message


REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ a course to grade in

FIXTURE_SOURCE = REPO / "tests" / "fixtures"
FIXTURE = "00_fixture"        # a tiny assignment of three exercises, with its grader


def make_course(root: Path, assignment: str) -> Path:
    """A fresh course folder holding the config, one master and its grader."""
    from autograder import course
    source = FIXTURE_SOURCE if assignment == FIXTURE else course.COURSE_DIR / "source"
    root.mkdir(parents=True)
    for name in course.COURSE_FILES:
        shutil.copy2(course.COURSE_DIR / name, root / name)
    shutil.copytree(source / assignment, root / "source" / assignment)
    graders = FIXTURE_SOURCE / "graders" if assignment == FIXTURE else course.COURSE_DIR / "graders"
    grader = graders / f"{assignment}.py"                          # the trusted scorer's
    if grader.exists():
        (root / "graders").mkdir()
        shutil.copy2(grader, root / "graders" / grader.name)
    return root


def cell(cells, grade_id):
    """The cell of ``grade_id`` among ``cells``."""
    from autograder.course import nbgrader_meta
    return next(c for c in cells if nbgrader_meta(c).get("grade_id") == grade_id)


def appended_to_add(code):
    """An edit (for edited_master) that appends ``code`` to the answer cell of add."""
    def edit(cells):
        cell(cells, "add").source += "\n" + code + "\n"
    return edit


def sandbox_ready() -> tuple[bool, str]:
    """Whether the isolated kernel can run here, and why not; on CI it must."""
    from autograder import sandbox
    ok, why = sandbox.available()
    if not ok and os.environ.get("CI"):
        pytest.fail(f"CI must test the isolated kernel, but {why}")
    return ok, why


# ------------------------------------------------------------------ trusted-grader tests


def master_and_release(assignment: str) -> tuple[dict, dict]:
    """The master notebook (it holds the solutions) and the student release of notebooks/."""
    master = REPO / "autograder" / "source" / assignment / f"{assignment}.ipynb"
    release = REPO / "notebooks" / f"{assignment}.ipynb"
    return (json.loads(master.read_text(encoding="utf-8")),
            json.loads(release.read_text(encoding="utf-8")))


def graded_points(notebook: dict) -> dict[str, float]:
    """grade_id -> points of every graded test cell of a notebook."""
    from autograder.course import nbgrader_meta
    return {nbgrader_meta(c)["grade_id"]: nbgrader_meta(c)["points"]
            for c in notebook["cells"] if nbgrader_meta(c).get("grade")}


def with_answers(notebook: dict, answers: dict[str, str]) -> dict:
    """A copy of ``notebook`` with the answer cells of these grade_ids replaced."""
    from autograder import demo
    for grade_id, source in answers.items():
        notebook = demo.with_cell_replaced(notebook, grade_id, source)
    return copy.deepcopy(notebook)


def score_all(notebooks: dict[str, dict], release: dict, grader, timeout: float = 60) -> dict:
    """name -> PropertyResults: each notebook scored once by the trusted scorer, in a
    sandboxed worker of its own, two at a time (skipped where the sandbox cannot run)."""
    from autograder import scoring
    ok, why = sandbox_ready()
    if not ok:
        pytest.skip(f"no isolation here: {why}")
    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(scoring.score_notebook, notebook, release, grader,
                                     timeout=timeout)
                   for name, notebook in notebooks.items()}
        return {name: future.result() for name, future in futures.items()}


def lost(results, grade_id: str) -> dict[str, str]:
    """The properties of one graded cell that earned nothing: name -> message."""
    return {r.name: r.message for r in results if r.grade_id == grade_id and r.earned < r.points}


def message_leaks(scored: dict) -> list[str]:
    """Lines of the grader modules or of a master's solutions that a property's message
    (shown in the student's feedback) repeats, with the submission and property."""
    import leaks
    secret = leaks.secret_lines()
    return [f"{name}, {r.name}: {line} (from {secret[line]})"
            for name, results in scored.items() for r in results
            for line in map(leaks.significant, r.message.splitlines()) if line in secret]


def unearned(results) -> list[tuple[str, str, str]]:
    """(grade_id, property, message) of every property that earned nothing: what a failed
    full-marks assertion shows."""
    return [(r.grade_id, r.name, r.message) for r in results if r.earned < r.points]


class GraderContract:
    """What every trusted grader owes every submission, as tests. A test module of a grader
    subclasses it (``class TestContract(GraderContract)``) with its ASSIGNMENT, GRADER and
    FULL (test cell -> points), and defines a module fixture ``scored``: name -> results,
    holding at least "master", "correct" (the demo's answers written differently) and "blank"
    (the release as it is)."""
    ASSIGNMENT: str
    GRADER: object
    FULL: dict[str, float]

    def test_properties_split_each_cells_points(self):
        master, _ = master_and_release(self.ASSIGNMENT)
        assert graded_points(master) == self.FULL
        assert set(self.GRADER.PROPERTIES) == set(self.FULL)
        for grade_id, properties in self.GRADER.PROPERTIES.items():
            assert abs(sum(p.points for p in properties) - self.FULL[grade_id]) < 1e-9, grade_id
            assert len({p.name for p in properties}) == len(properties), grade_id
            assert all(p.points > 0 for p in properties), grade_id

    def test_messages_leak_nothing(self, scored):
        """Every message the students' feedback shows, of every submission scored here (its
        wrong answers' included): no line of a grader module or of a master's solutions."""
        assert not message_leaks(scored), message_leaks(scored)[:10]

    def test_the_master_earns_every_property(self, scored):
        assert all(r.earned == r.points for r in scored["master"]), unearned(scored["master"])

    def test_answers_written_differently_earn_every_property(self, scored):
        assert all(r.earned == r.points for r in scored["correct"]), unearned(scored["correct"])

    def test_the_blank_release_earns_nothing(self, scored):
        from autograder import scoring
        assert scoring.cell_points(scored["blank"]) == {grade_id: 0 for grade_id in self.FULL}


def contract_submissions(assignment: str) -> tuple[dict, dict, dict]:
    """The master, the release, and the three submissions GraderContract scores: "master",
    "blank" (the release as it is) and "correct" (the demo's answers written differently)."""
    from autograder import demo
    master, release = master_and_release(assignment)
    return master, release, {"master": master, "blank": release,
                             "correct": with_answers(master, demo.written_differently(assignment))}


def assert_mistake_costs(results, grade_id: str, must: set, may: set, full: float,
                         check_of: dict[str, str]) -> None:
    """A known mistake in the cell of ``grade_id`` fails the checks ``must`` (names of the
    grader's check functions; ``check_of``: property name -> its check's name), perhaps
    ``may``, and no other; it earns nothing when it fails all of them (a fake), else some but
    not all of the cell's ``full`` points; every failed property explains itself in a
    message, never a traceback."""
    from autograder import scoring
    mine = [r for r in results if r.grade_id == grade_id]
    failed = {check_of[r.name] for r in mine if not r.earned}
    assert must <= failed <= must | may, (sorted(failed), unearned(results))
    points = scoring.cell_points(results)[grade_id]
    if must == {check_of[r.name] for r in mine}:
        assert points == 0, points                           # a fake earns nothing
    else:
        assert 0 < points < full, points                     # a partial mistake, partly right
    assert all(r.message and "Traceback" not in r.message for r in mine if not r.earned)
