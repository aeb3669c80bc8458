"""The nbgrader pipeline end to end, in a temporary copy of the course.

For every assignment in autograder/source/ (and the tiny fixture assignment in
tests/fixtures/), one batch grades: the master as a submission (full marks), the
unmodified release (0 on every exercise), the release filled with the demo's correct
answers written differently and saved by Colab (full marks), its wrong variants of
autograder/demo_submissions/<assignment>.py in one notebook (only those exercises lose
points); the fixture's batch also grades one with a duplicated graded cell (fails, and the
batch goes on) and the kernel routes, notebook 01's a patched comparison. Then feedback
and the grades CSV are checked. Each wrong variant alone, and many more mistakes, are
scored property by property in tests/unit/autograder/graders/test_grader_*.py.
"""
import copy
import csv
import sys
import zipfile
from pathlib import Path

import pytest

from autograder import cli, collect, course, demo, grading, release, reports
from helpers import REPO, FIXTURE, appended_to_add, cell, make_course, sandbox_ready

COURSE_ASSIGNMENTS = course.source_assignments(course.COURSE_DIR)
EXPECTED_TOTAL = {"01_simclr_ntxent": 14, "02_moco_queue": 13, "03_mae_masking": 13,
                  "04_dino_self_distillation": 13, "05_paradigms_and_segments": 13,
                  FIXTURE: 3}

pytestmark = pytest.mark.notebook


def master_cells(course_dir: Path, assignment: str) -> list:
    [master] = course.master_notebooks(course_dir, assignment)
    return course.read_notebook(master).cells


def graded_points(course_dir: Path, assignment: str) -> dict[str, float]:
    """grade_id -> points of every autograded test cell of the master."""
    return {course.nbgrader_meta(c)["grade_id"]: course.nbgrader_meta(c)["points"]
            for c in master_cells(course_dir, assignment) if course.nbgrader_meta(c).get("grade")}


def filled_release(course_dir: Path, assignment: str, answers: dict | None = None):
    """The student notebook with every answer cell filled in: ``answers`` (grade_id ->
    source), else the master's."""
    [release] = (course_dir / "release" / assignment).glob("*.ipynb")
    notebook = course.read_notebook(release)
    answers = answers or {course.nbgrader_meta(c)["grade_id"]: c.source
                          for c in master_cells(course_dir, assignment)
                          if course.nbgrader_meta(c).get("solution")}
    for c in notebook.cells:
        grade_id = course.nbgrader_meta(c).get("grade_id")
        if grade_id in answers:
            c.source = answers[grade_id]
    return notebook


def first_answer(notebook):
    """The first solution cell of a notebook."""
    return next(c for c in notebook.cells if course.nbgrader_meta(c).get("solution"))


def as_saved_by_colab(notebook) -> dict:
    """What Colab's download may look like: no nbgrader metadata, no cell ids, format 4.0,
    Colab's own metadata on the notebook and on each cell."""
    notebook = copy.deepcopy(notebook)
    notebook["nbformat_minor"] = 0
    notebook["metadata"] = {"colab": {"provenance": [], "gpuType": "T4"},
                            "kernelspec": {"name": "python3", "display_name": "Python 3"},
                            "language_info": {"name": "python"}, "accelerator": "GPU"}
    for i, saved in enumerate(notebook["cells"]):
        saved.pop("id", None)
        saved["metadata"] = {"id": f"colab{i:04d}"}
        if saved["cell_type"] == "code":
            saved["metadata"]["colab"] = {"base_uri": "https://localhost:8080/"}
            saved["metadata"]["outputId"] = f"out{i}"
    return notebook


PATCHED_ASSIGNMENT = "01_simclr_ntxent"   # one real notebook is enough (10 s a grading)


def with_patched_allclose(notebook):
    """The master's answers, with torch.allclose made always true in the first answer."""
    notebook = copy.deepcopy(notebook)
    first = first_answer(notebook)
    first.source = "import torch\ntorch.allclose = lambda *args, **kwargs: True\n" + first.source
    return notebook


# The routes by which a blank notebook earned full marks while the tests ran in the
# student's kernel (issue 13), and the faked imports that handed hidden tests stand-ins:
# each is put in the first answer cell of the blank release, and must earn nothing.
ROUTES = {
    "route_input_transformer":       # every later cell becomes `pass`
        'get_ipython().input_transformers_cleanup.append(lambda lines: ["pass\\n"])\n',
    "route_ast_wrap": """\
import ast
class _Swallow(ast.NodeTransformer):
    def visit_Module(self, node):
        handler = ast.ExceptHandler(type=ast.Name("BaseException", ast.Load()), name=None,
                                    body=[ast.Pass()])
        wrapped = ast.Try(body=node.body or [ast.Pass()], handlers=[handler], orelse=[],
                          finalbody=[])
        return ast.fix_missing_locations(ast.Module(body=[wrapped], type_ignores=[]))
get_ipython().ast_transformers.append(_Swallow())
""",
    "route_pre_run_result": """\
_ip = get_ipython()
_ip.events.register("pre_run_cell", lambda info: _ip.displayhook("full marks"))
""",
    "route_interactivity": """\
get_ipython().ast_node_interactivity = "all"
class _Points:
    def __getattr__(self, name):
        return lambda *args, **kwargs: 3
checks = _Points()
""",
    "route_drop_errors": """\
_kernel = get_ipython().kernel
_send = _kernel.session.send
def _quiet_send(stream, msg_or_type, content=None, *args, **kwargs):
    if msg_or_type == "error":
        return None
    if isinstance(content, dict) and content.get("status") == "error":
        content = {"status": "ok", "execution_count": content.get("execution_count"),
                   "user_expressions": {}, "payload": []}
    return _send(stream, msg_or_type, content, *args, **kwargs)
_kernel.session.send = _quiet_send
""",
    "route_import_hook": """\
import builtins, types
_real_import = builtins.__import__
class _Anything(types.ModuleType):
    def __getattr__(self, name):
        return lambda *args, **kwargs: True
def _import(name, *args, **kwargs):
    if name.split(".")[0] in ("numpy", "math") or "grading_guard" in name:
        return _Anything(name)
    return _real_import(name, *args, **kwargs)
builtins.__import__ = _import
""",
    "route_fake_modules": """\
import sys, types
for _name in ("course_utils.grading_guard", "channel", "scoring"):
    _fake = types.ModuleType(_name)
    _fake.assert_untampered = lambda: None
    _fake.PRISTINE = {}
    sys.modules[_name] = _fake
import torch
torch.allclose = lambda *args, **kwargs: True
torch.isclose = lambda a, b, *args, **kwargs: torch.ones_like(torch.as_tensor(a), dtype=torch.bool)
""",
}


def with_route(course_dir: Path, assignment: str, source: str):
    """The blank release, its first answer cell replaced by ``source``."""
    [release_file] = (course_dir / "release" / assignment).glob("*.ipynb")
    notebook = course.read_notebook(release_file)
    first_answer(notebook).source = source
    return notebook


def with_wrong_answers(master: dict, assignment: str) -> dict:
    """The master with every wrong variant of autograder/demo_submissions/ in its cell."""
    for grade_id, source in demo.wrong_variants(assignment).items():
        master = demo.with_cell_replaced(master, grade_id, source)
    return master


def with_duplicated_test_cell(notebook):
    notebook = copy.deepcopy(notebook)
    index = next(i for i, c in enumerate(notebook.cells) if course.nbgrader_meta(c).get("grade"))
    duplicate = copy.deepcopy(notebook.cells[index])
    duplicate.id = "duplicated-cell"
    notebook.cells.insert(index + 1, duplicate)
    return notebook


class Batch:
    """One graded batch: the course folder, the results and each student's cell scores."""

    def __init__(self, assignment, course_dir, results, submissions):
        self.assignment = assignment
        self.course_dir = course_dir
        self.results = {r.student: r for r in results}
        self.order = [r.student for r in results]
        self.submissions = submissions
        self.points = graded_points(course_dir, assignment)

    def scores(self, student):
        return {grade_id: score for grade_id, (score, _) in
                reports.exercise_scores(self.course_dir, self.assignment, student).items()}


@pytest.fixture(scope="module", params=COURSE_ASSIGNMENTS + [FIXTURE])
def batch(request, tmp_path_factory):
    assignment = request.param
    work = tmp_path_factory.mktemp(f"grade-{assignment}")
    course_dir = make_course(work / "course", assignment)
    release.generate(course_dir, assignment)

    folder = work / "submissions"
    # four submissions a course assignment (about 19 s each): the written-differently
    # answers go in the Colab-saved one, and a duplicated cell, which fails the same way
    # whatever the assignment, is graded on the fixture alone
    submissions = demo.reference_submissions(course_dir, assignment, folder)
    master = course.read_notebook(course.master_notebooks(course_dir, assignment)[0])
    submissions["wrong_answers"] = course.write_notebook(
        with_wrong_answers(master, assignment), folder / "wrong_answers.ipynb")
    submissions["colab_saved"] = course.write_notebook(
        as_saved_by_colab(filled_release(course_dir, assignment,
                                         demo.written_differently(assignment))),
        folder / "colab_saved.ipynb")
    if assignment == PATCHED_ASSIGNMENT:
        submissions["patched_allclose"] = course.write_notebook(
            with_patched_allclose(master), folder / "patched_allclose.ipynb")
    if assignment == FIXTURE:
        submissions["duplicated_cell"] = course.write_notebook(
            with_duplicated_test_cell(master), folder / "duplicated_cell.ipynb")
        for name, source in ROUTES.items():
            submissions[name] = course.write_notebook(
                with_route(course_dir, assignment, source), folder / f"{name}.ipynb")
    originals = {path: path.read_bytes() for path in submissions.values()}

    collected = collect.collect(course_dir, folder, assignment)
    assert sorted(collected) == sorted(submissions)
    # two at a time, as an instructor on a 2-core machine would (halves the suite's time)
    results = grading.autograde(course_dir, assignment, echo=lambda *_: None, workers=2)
    assert all(path.read_bytes() == data for path, data in originals.items()), "originals changed"
    return Batch(assignment, course_dir, results, submissions)


def test_every_submission_is_graded_in_one_batch(batch):
    assert batch.order == sorted(batch.submissions)
    failed = {s: r.reason for s, r in batch.results.items() if not r.ok}
    if batch.assignment != FIXTURE:
        assert not failed
        return
    assert list(failed) == ["duplicated_cell"], failed
    assert "appears more than once" in failed["duplicated_cell"]
    # students after the broken one in the batch were graded too
    after = batch.order[batch.order.index("duplicated_cell") + 1:]
    assert after and all(batch.results[s].ok for s in after)


def test_master_gets_full_marks(batch):
    result = batch.results["reference_solution"]
    assert result.suspicious == [], "the tamper report flags the master's own answers"
    assert batch.scores("reference_solution") == batch.points
    assert result.score == result.max_score == sum(batch.points.values())
    if batch.assignment in EXPECTED_TOTAL:
        assert result.max_score == EXPECTED_TOTAL[batch.assignment]


def test_correct_answers_written_differently_get_full_marks(batch):
    """Every exercise answered correctly in another way than the master's, in a notebook
    saved by Colab: the hidden tests check behaviour, not the master's way of getting
    there."""
    correct = demo.written_differently(batch.assignment)
    solutions = {course.nbgrader_meta(c)["grade_id"]
                 for c in master_cells(batch.course_dir, batch.assignment)
                 if course.nbgrader_meta(c).get("solution")}
    assert set(correct) == solutions, f"autograder/demo_submissions/{batch.assignment}.py: CORRECT " \
        f"lacks {sorted(solutions - set(correct))}"
    result = batch.results["colab_saved"]
    assert result.ok, result.reason
    assert batch.scores("colab_saved") == batch.points


def test_a_notebook_saved_by_colab_is_repaired(batch):
    """Metadata stripped and Colab's format: restored from the release (and then graded in
    full, above)."""
    assert any("metadata was missing" in note for note in batch.results["colab_saved"].notes)


def test_blank_release_gets_zero_everywhere(batch):
    assert batch.scores("blank_release") == {grade_id: 0 for grade_id in batch.points}


def test_wrong_answers_lose_points_only_there(batch):
    """The demo's wrong variants, all in one notebook: each wrong exercise loses some of its
    points (the properties it breaks), the others keep all of theirs. (That no wrong answer
    costs another exercise is checked property by property in tests/test_grader_*.py.)"""
    wrong = {f"test_{grade_id}" for grade_id in demo.wrong_variants(batch.assignment)}
    assert wrong, f"autograder/demo_submissions/{batch.assignment}.py has no wrong variants"
    scores = batch.scores("wrong_answers")
    assert {k: v for k, v in scores.items() if k not in wrong} == \
        {k: v for k, v in batch.points.items() if k not in wrong}
    kept = [test_id for test_id in wrong if scores[test_id] >= batch.points[test_id]]
    assert not kept, f"wrong answers kept their points: {kept}"
    assert batch.results["wrong_answers"].trusted


@pytest.mark.parametrize("batch", [FIXTURE], indirect=True)
def test_kernel_tricks_earn_nothing(batch):
    """The routes that earned full marks while tests ran in the student's kernel (found on
    notebook 01; they act on the kernel, whatever the notebook, so they are graded here on
    the fixture, 4 s a submission instead of 12): the trusted scorer decides, so each blank
    answer earns 0."""
    for name in ROUTES:
        result = batch.results[name]
        assert result.ok and result.trusted, (name, result.reason)
        assert batch.scores(name) == {grade_id: 0 for grade_id in batch.points}, name


@pytest.mark.parametrize("batch", [PATCHED_ASSIGNMENT], indirect=True)
def test_a_patched_comparison_changes_nothing(batch):
    """torch.allclose made always true in the student's process: the master's answers keep
    their points (nothing there decides them), and the tamper report shows the patch."""
    assert batch.scores("patched_allclose") == batch.points
    assert any("torch.allclose = ..." in line
               for line in batch.results["patched_allclose"].suspicious)


def test_feedback_leaks_nothing(batch):
    """Each student's feedback page holds their own code and outputs, the checks' messages
    and the scored properties: no line of a grader, a hidden test or a solution that was
    not the student's own."""
    import leaks
    folder, refused = reports.feedback(batch.course_dir, batch.assignment)
    assert set(refused) <= {"duplicated_cell"}, refused
    secret = leaks.secret_lines()
    pages = 0
    for student, submitted in batch.submissions.items():
        pages_of = sorted((folder / student / batch.assignment).glob("*.html"))
        own = {leaks.significant(line) for line in leaks.text_lines(submitted)} - {None}
        found = leaks.leaks(pages_of, secret, own)
        assert not found, f"{student}'s feedback leaks:\n" + "\n".join(found[:20])
        pages += len(pages_of)
    assert pages >= len(batch.submissions) - 1
    blank = (folder / "blank_release" / batch.assignment)
    assert "Scored by the grader" in next(blank.glob("*.html")).read_text()


def test_grades_csv(batch, tmp_path):
    grades = reports.export(batch.course_dir, tmp_path / "grades.csv")
    rows = {row["student_id"]: row for row in csv.DictReader(grades.open())}
    total = sum(batch.points.values())
    assert set(rows) == set(batch.submissions)
    assert all(row["assignment"] == batch.assignment for row in rows.values())
    assert float(rows["reference_solution"]["score"]) == total
    assert float(rows["reference_solution"]["max_score"]) == total
    assert float(rows["blank_release"]["score"]) == 0
    scored = sum(batch.scores("wrong_answers").values())
    assert 0 < scored < total and float(rows["wrong_answers"]["score"]) == scored


def test_report_time_per_submission(batch, capsys):
    times = {s: r.seconds for s, r in batch.results.items() if r.ok}
    with capsys.disabled():
        print(f"\n[grading time] {batch.assignment}: "
              + ", ".join(f"{s} {t:.1f} s" for s, t in times.items())
              + f" (mean {sum(times.values()) / len(times):.1f} s per submission)")


# --------------------------------------------------------------------------------------
# the broken submissions of issue 2, an LMS zip and the kernel, on the fast fixture
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fixture_course(tmp_path_factory):
    course_dir = make_course(tmp_path_factory.mktemp("fixture") / "course", FIXTURE)
    release.generate(course_dir, FIXTURE)
    return course_dir


def edited_master(course_dir, edit):
    notebook = course.read_notebook(course.master_notebooks(course_dir, FIXTURE)[0])
    edit(notebook.cells)
    return notebook


def grade_edited(course_dir, folder, edits, workers=1):
    """One submission per student, an edit of the fixture master, collected and graded:
    student -> GradeResult."""
    for student, edit in edits.items():
        course.write_notebook(edited_master(course_dir, edit), folder / f"{student}.ipynb")
    collect.collect(course_dir, folder, FIXTURE)
    return {r.student: r for r in grading.autograde(course_dir, FIXTURE, list(edits),
                                                   workers=workers, echo=lambda *_: None)}


def fixture_scores(course_dir, student):
    """test cell -> points of one graded submission of the fixture."""
    return {g: s for g, (s, _) in reports.exercise_scores(course_dir, FIXTURE, student).items()}


def test_broken_submissions_never_stop_the_batch(fixture_course, tmp_path):
    def syntax_error(cells):
        cell(cells, "add").source = "def add(a, b)\n    return a + b\n"

    def kernel_dies(cells):
        cell(cells, "add").source += "\nimport os\nos._exit(1)\n"

    def noisy(cells):
        cell(cells, "add").source += ("\nimport warnings\nwarnings.warn('this is deprecated')\n"
                                         "import sys\nfrom tqdm import tqdm\n"
                                         "for _ in tqdm(range(3), file=sys.stderr): pass\n")

    def test_cell_deleted(cells):
        cells.remove(cell(cells, "test_mean_of"))

    def always_equal(cells):
        cell(cells, "add").source = ("class AlwaysEqual:\n"
                                        "    def __eq__(self, other):\n        return True\n"
                                        "def add(a, b):\n    return AlwaysEqual()\n")

    def patched(name):
        def edit(cells):
            cell(cells, "add").source = ("import builtins\n"
                                            f"builtins.{name} = lambda *args, **kwargs: 0\n"
                                            "def add(a, b):\n    return a + b\n")
        return edit

    def patched_allclose(cells):
        cell(cells, "add").source = ("import torch\n"
                                        "torch.allclose = lambda *args, **kwargs: True\n"
                                        "def add(a, b):\n    return a + b\n")

    def float_override(cells):
        cell(cells, "add").source = ("class Number:\n"
                                        "    def __init__(self, value):\n        self.value = value\n"
                                        "    def __float__(self):\n        return float(self.value)\n"
                                        "    def __eq__(self, other):\n"
                                        "        return float(self) == float(other)\n"
                                        "def add(a, b):\n    return Number(a + b)\n")

    edits = {"a_syntax_error": syntax_error, "b_kernel_dies": kernel_dies,
             "c_noisy_stderr": noisy, "d_test_cell_deleted": test_cell_deleted,
             "e_always_equal": always_equal, "f_patched_abs": patched("abs"),
             "g_patched_allclose": patched_allclose, "h_patched_float": patched("float"),
             "i_float_override": float_override}
    results = grade_edited(fixture_course, tmp_path / "broken", edits, workers=2)

    def scores(student):
        return fixture_scores(fixture_course, student)

    assert results["a_syntax_error"].ok
    assert scores("a_syntax_error") == {"test_add": 0, "test_mean_of": 2}
    assert not results["b_kernel_dies"].ok
    assert "kernel died" in results["b_kernel_dies"].reason
    assert results["c_noisy_stderr"].ok
    assert scores("c_noisy_stderr") == {"test_add": 1, "test_mean_of": 2}, "stderr noise cost points"
    assert results["d_test_cell_deleted"].ok
    assert any("test_mean_of was missing" in note for note in results["d_test_cell_deleted"].notes)
    assert scores("d_test_cell_deleted") == {"test_add": 1, "test_mean_of": 2}
    assert (fixture_course / "reports" / FIXTURE / "autograde.csv").exists()

    # tampering decides nothing: the grader computes every answer itself, outside the
    # student's process. An always-equal object is not the int asked for; a patched builtin
    # or comparison changes only the student's own process, so right answers keep their
    # points (and the tamper report shows the patch)
    assert scores("e_always_equal") == {"test_add": 0, "test_mean_of": 2}
    assert scores("f_patched_abs") == {"test_add": 1, "test_mean_of": 2}
    assert scores("g_patched_allclose") == {"test_add": 1, "test_mean_of": 2}
    assert results["h_patched_float"].ok     # it broke only its own process's float()
    # a number-like object with __float__ and __eq__ is not the int the test asks for
    assert scores("i_float_override") == {"test_add": 0, "test_mean_of": 2}
    assert any("builtins.float = ..." in line for line in results["h_patched_float"].suspicious)
    assert any("def __float__" in line for line in results["i_float_override"].suspicious)

    # the tamper report names the __eq__ override, and nothing in the honest submissions
    assert results["e_always_equal"].suspicious == [
        "add, line 2: def __eq__ (can make any value compare or convert as wished): "
        "def __eq__(self, other):"]
    assert results["c_noisy_stderr"].suspicious == []
    report = (fixture_course / "reports" / FIXTURE / "e_always_equal.tamper.txt").read_text()
    assert "def __eq__" in report
    with open(fixture_course / "reports" / FIXTURE / "autograde.csv", newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    assert "def __eq__" in rows["e_always_equal"]["suspicious"]

    # the grading kernel is this environment's python3 (the fixture prints its sys.prefix)
    graded = course.read_notebook(
        fixture_course / "autograded" / "c_noisy_stderr" / FIXTURE / f"{FIXTURE}.ipynb")
    printed = "".join(o.get("text", "") for c in graded.cells for o in c.get("outputs", []))
    assert f"kernel prefix: {sys.prefix}" in printed


def test_collect_lms_zip(fixture_course, tmp_path):
    blank = (fixture_course / "release" / FIXTURE / f"{FIXTURE}.ipynb").read_bytes()
    names = {"alice": f"alice_{FIXTURE}.ipynb",
             "doejohn": f"doejohn_12345_67890_Copy of {FIXTURE}.ipynb",
             "bob": "bob_renamed.ipynb"}
    archive = tmp_path / "lms_download.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name in names.values():
            z.writestr(name, blank)
        z.writestr("readme.txt", "not a submission")
    collected = collect.collect(fixture_course, archive, FIXTURE)
    assert sorted(collected) == sorted(names)
    for student in names:
        target = fixture_course / "submitted" / student / FIXTURE / f"{FIXTURE}.ipynb"
        assert target.read_bytes() == blank


def test_collect_folder_layouts(fixture_course, tmp_path):
    blank = (fixture_course / "release" / FIXTURE / f"{FIXTURE}.ipynb").read_bytes()
    (tmp_path / "subs" / "carol").mkdir(parents=True)
    (tmp_path / "subs" / "dave.ipynb").write_bytes(blank)
    (tmp_path / "subs" / "carol" / "my notebook.ipynb").write_bytes(blank)
    collected = collect.collect(fixture_course, tmp_path / "subs", FIXTURE)
    assert sorted(collected) == ["carol", "dave"]
    assert collected["carol"] == fixture_course / "submitted" / "carol" / FIXTURE / f"{FIXTURE}.ipynb"
    # what cannot be taken is listed and skipped; the others are collected
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("..x", "=1+2", "with space", "erin"):
        (bad / f"{name}.ipynb").write_bytes(blank)
    (bad / "mallory.ipynb").symlink_to(fixture_course / "source" / FIXTURE / f"{FIXTURE}.ipynb")
    (bad / "frank").mkdir()
    (bad / "frank" / "one.ipynb").write_bytes(blank)
    (bad / "frank" / "two.ipynb").write_bytes(blank)
    collected = collect.collect(fixture_course, bad, FIXTURE)
    assert sorted(collected) == ["erin"]
    skipped = dict(collected.skipped)
    assert sorted(skipped) == sorted(["..x.ipynb", "=1+2.ipynb", "with space.ipynb", "mallory.ipynb",
                                      "frank/one.ipynb", "frank/two.ipynb"]), skipped
    assert "link" in skipped["mallory.ipynb"] and "several" in skipped["frank/one.ipynb"]
    assert all("student id" in skipped[n] for n in ("..x.ipynb", "=1+2.ipynb", "with space.ipynb"))
    assert not (fixture_course / "submitted" / "mallory").exists()


def test_autograde_cli_exit_codes(fixture_course, tmp_path, capsys):
    course.write_notebook(edited_master(fixture_course, lambda c: c.insert(4, dict(cell(c, "test_add"), id="x"))),
                          tmp_path / "dup" / "dup.ipynb")
    collect.collect(fixture_course, tmp_path / "dup", FIXTURE)
    args = ["--course-dir", str(fixture_course), "autograde", FIXTURE, "--student", "dup"]
    assert cli.main(args) == 0
    assert "FAILED: graded cell test_add appears more than once" in capsys.readouterr().out
    assert cli.main(args + ["--strict"]) == 1


def test_parallel_workers_and_resume(fixture_course, tmp_path):
    """Two workers grade a batch like one would; a resumed run skips what it graded, a
    changed submission is graded again, and no earlier grade is lost."""
    master = course.read_notebook(course.master_notebooks(fixture_course, FIXTURE)[0])
    folder = tmp_path / "par"
    wrong = demo.with_cell_replaced(master, "mean_of", "def mean_of(xs):\n    return 0\n")
    students = {"p1": master, "p2": wrong, "p3": master, "p4": wrong}
    for student, nb in students.items():
        course.write_notebook(nb, folder / f"{student}.ipynb")
    collect.collect(fixture_course, folder, FIXTURE)
    results = grading.autograde(fixture_course, FIXTURE, list(students), workers=2,
                               echo=lambda *_: None)
    assert [r.student for r in results] == list(students) and all(r.ok for r in results)
    assert {r.student: r.score for r in results} == {"p1": 3, "p2": 1, "p3": 3, "p4": 1}

    lines = []
    again = grading.autograde(fixture_course, FIXTURE, list(students), workers=2,
                             regrade=False, echo=lines.append)
    assert again == [] and all("skipped" in line for line in lines) and len(lines) == 4

    course.write_notebook(master, folder / "p2.ipynb")           # p2 fixes the exercise
    collect.collect(fixture_course, folder, FIXTURE)
    third = grading.autograde(fixture_course, FIXTURE, list(students), workers=2,
                             regrade=False, echo=lambda *_: None)
    assert [(r.student, r.score) for r in third] == [("p2", 3)]
    with course.gradebook(fixture_course) as gb:
        scores = {s: gb.find_submission(FIXTURE, s).score for s in students}
    assert scores == {"p1": 3, "p2": 3, "p3": 3, "p4": 1}


def test_isolated_kernel_contains_hostile_submissions(fixture_course, tmp_path):
    """Under bubblewrap a submission cannot read the masters, the repository's wrong
    variants or other students, cannot write to the gradebook, has no network and hits
    a memory limit; each still gets the points its correct answers earn."""
    ok, why = sandbox_ready()
    if not ok:
        pytest.skip(f"no isolation here: {why}")
    course_dir = fixture_course.resolve()
    master_path = course.master_notebooks(course_dir, FIXTURE)[0]
    gradebook_file = course_dir / "gradebook.db"

    probes = {
        "h_reader": f"print(open({str(master_path)!r}).read()[:40])",
        "h_repo": f"print(open({str(REPO / 'tests' / 'submissions' / '01_simclr_ntxent.py')!r}).read()[:40])",
        "h_other": f"import os\nprint(os.listdir({str(course_dir / 'submitted')!r}))",
        "h_writer": f"open({str(gradebook_file)!r}, 'w').write('gone')",
        "h_network": "import socket\ns = socket.create_connection(('pypi.org', 443), timeout=5)",
        "h_memory": "hog = bytearray(40 * 2**30)",
    }
    gradebook_before = gradebook_file.stat().st_size
    results = grade_edited(course_dir, tmp_path / "hostile",
                           {student: appended_to_add(code) for student, code in probes.items()},
                           workers=2)
    assert gradebook_file.stat().st_size >= gradebook_before and \
        gradebook_file.read_bytes()[:15] == b"SQLite format 3"
    for student in probes:
        result = results[student]
        assert result.ok and result.isolated, (student, result.reason)
        assert fixture_scores(course_dir, student) == {"test_add": 1, "test_mean_of": 2}, student
        graded = course.read_notebook(course_dir / "autograded" / student / FIXTURE / f"{FIXTURE}.ipynb")
        errors = [o.get("ename") for c in graded.cells for o in c.get("outputs", [])
                  if o.output_type == "error"]
        expected = {"h_reader": "FileNotFoundError", "h_repo": "FileNotFoundError",
                    "h_other": "FileNotFoundError", "h_writer": None,
                    "h_network": "gaierror", "h_memory": "MemoryError"}[student]
        if expected:
            assert expected in errors, (student, errors)
    # the writer wrote into the sandbox's empty course folder, not the real gradebook
    with course.gradebook(course_dir) as gb:
        assert gb.find_submission(FIXTURE, "h_writer").score == 3


def test_grading_without_isolation_says_so(fixture_course, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_SANDBOX", "off")
    master = course.read_notebook(course.master_notebooks(fixture_course, FIXTURE)[0])
    course.write_notebook(master, tmp_path / "plain" / "n_plain.ipynb")
    collect.collect(fixture_course, tmp_path / "plain", FIXTURE)
    lines = []
    [result] = grading.autograde(fixture_course, FIXTURE, ["n_plain"], echo=lines.append)
    assert result.ok and not result.isolated and result.score == 3
    assert any(line.startswith("WARNING: grading is NOT isolated") for line in lines)
    with open(fixture_course / "reports" / FIXTURE / "autograde.csv", newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    assert rows["n_plain"]["isolated"] == "NO"
    monkeypatch.setenv("COURSE_SANDBOX", "sometimes")
    with pytest.raises(course.CourseError, match="COURSE_SANDBOX"):
        grading.isolation(fixture_course)


def test_grading_where_bubblewrap_cannot_run_still_scores(fixture_course, tmp_path,
                                                           monkeypatch):
    """No bubblewrap (a laptop, a container): the kernel runs unisolated, with the warning,
    and the trusted scorer's worker as a process of its own (contained.py)."""
    from autograder import sandbox
    monkeypatch.setattr(sandbox, "bwrap", lambda: None)          # as if not installed
    master = course.read_notebook(course.master_notebooks(fixture_course, FIXTURE)[0])
    course.write_notebook(master, tmp_path / "nobwrap" / "n_nobwrap.ipynb")
    collect.collect(fixture_course, tmp_path / "nobwrap", FIXTURE)
    [result] = grading.autograde(fixture_course, FIXTURE, ["n_nobwrap"], echo=lambda *_: None)
    assert result.ok and result.trusted and not result.isolated and result.score == 3


def test_loops_floods_and_edited_tests(fixture_course, tmp_path, monkeypatch):
    """An endless loop is interrupted after the cell timeout, a flood of output is cut, an
    edited test cell is replaced by the master's: each gets what its answers earn."""
    monkeypatch.setenv("COURSE_CELL_TIMEOUT", "5")

    def test_edited(cells):
        cell(cells, "add").source = "def add(a, b):\n    return 0\n"
        cell(cells, "test_add").source = "assert True\n"

    edits = {"l_endless_loop": appended_to_add("while True:\n    pass"),
             "l_flood": appended_to_add("for i in range(200_000):\n    print('spam' * 20)"),
             "l_huge_line": appended_to_add("print('x' * 20_000_000)"),
             "l_test_edited": test_edited}
    results = grade_edited(fixture_course, tmp_path / "loops", edits, workers=2)
    expected = {"l_endless_loop": 3, "l_flood": 3, "l_huge_line": 3, "l_test_edited": 2}
    for student, score in expected.items():
        assert results[student].ok, (student, results[student].reason)
        assert results[student].score == score, (student, results[student].score)
    assert any("past the 5 s limit" in n for n in results["l_endless_loop"].notes)
    assert any("edited" in n for n in results["l_test_edited"].notes)
    graded = fixture_course / "autograded" / "l_flood" / FIXTURE / f"{FIXTURE}.ipynb"
    assert graded.stat().st_size < 2_000_000, "the flood was kept whole in the graded notebook"
