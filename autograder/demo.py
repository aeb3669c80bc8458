"""The demo: the reference submissions of demo_submissions/ (the master, the blank
release, a wrong answer per exercise, answers written differently) graded in a
throw-away copy of the course."""
from __future__ import annotations

import copy
import runpy
import shutil
from pathlib import Path

from .collect import collect
from .course import (
    COURSE_DIR, CourseError, master_notebooks, nbgrader_meta, read_notebook,
    source_assignments, write_notebook)
from .grading import autograde
from .release import copy_course, generate
from .reports import export, feedback, summary_table


WRONG_VARIANTS_DIR = COURSE_DIR / "demo_submissions"


def wrong_variants(assignment: str, folder: Path = WRONG_VARIANTS_DIR) -> dict[str, str]:
    """grade_id of a solution cell -> wrong source, from autograder/demo_submissions/<assignment>.py."""
    path = Path(folder) / f"{assignment}.py"
    if not path.exists():
        raise CourseError(f"{path} is missing: every assignment needs its wrong variants")
    return runpy.run_path(str(path))["WRONG"]


def written_differently(assignment: str, folder: Path = WRONG_VARIANTS_DIR) -> dict[str, str]:
    """grade_id -> a correct answer written differently from the master (its own algorithm
    and names), from the ``CORRECT`` dict of autograder/demo_submissions/<assignment>.py."""
    return runpy.run_path(str(Path(folder) / f"{assignment}.py")).get("CORRECT", {})


def with_cell_replaced(notebook: dict, grade_id: str, source: str) -> dict:
    """A copy of a notebook (nbformat's or plain JSON) whose solution cell `grade_id` has the
    given source."""
    notebook = copy.deepcopy(notebook)
    cells = [c for c in notebook["cells"] if nbgrader_meta(c).get("grade_id") == grade_id]
    if len(cells) != 1 or not nbgrader_meta(cells[0]).get("solution"):
        raise CourseError(f"no single solution cell with grade_id {grade_id!r}")
    cells[0]["source"] = source
    return notebook


def reference_submissions(course_dir: Path, assignment: str, folder: Path,
                          wrong: dict[str, str] | None = None,
                          correct: dict[str, str] | None = None) -> dict[str, Path]:
    """Write <student>.ipynb files: the master, the blank release, one per wrong variant and,
    given ``correct`` answers written differently, one notebook with all of them."""
    [master] = master_notebooks(course_dir, assignment)
    [blank] = (Path(course_dir) / "release" / assignment).glob("*.ipynb")
    files = {"reference_solution": write_notebook(read_notebook(master), folder / "reference_solution.ipynb"),
             "blank_release": write_notebook(read_notebook(blank), folder / "blank_release.ipynb")}
    if correct:
        notebook = read_notebook(master)
        for grade_id, source in correct.items():
            notebook = with_cell_replaced(notebook, grade_id, source)
        files["written_differently"] = write_notebook(notebook, folder / "written_differently.ipynb")
    for grade_id, source in (wrong or {}).items():
        student = f"wrong_{grade_id}"
        files[student] = write_notebook(with_cell_replaced(read_notebook(master), grade_id, source),
                                        folder / f"{student}.ipynb")
    return files


def demo(course_dir: Path, work_dir: Path, echo=print) -> int:
    """Grade the reference submissions of every assignment in a throw-away course copy."""
    course = copy_course(course_dir, Path(work_dir) / "course")
    all_results = []
    for assignment in source_assignments(course):
        echo(f"{assignment}: generating the release")
        generate(course, assignment)
        variants = wrong_variants(assignment)
        first_wrong = dict(list(variants.items())[:1])
        folder = Path(work_dir) / "submissions" / assignment
        if folder.exists():
            shutil.rmtree(folder)
        reference_submissions(course, assignment, folder, first_wrong)
        collect(course, folder, assignment)
        echo(f"{assignment}: autograding {len(list(folder.glob('*.ipynb')))} submissions")
        all_results += autograde(course, assignment, echo=echo)
        for student, why in feedback(course, assignment)[1].items():
            echo(f"  {student}: no feedback, {why}")
    grades = export(course, course / "grades.csv")
    echo("")
    echo(summary_table(all_results))
    echo("")
    echo(f"grades CSV:      {grades}")
    echo(f"feedback (HTML): {course / 'feedback'}")
    echo(f"graded notebooks and logs: {course / 'autograded'}, {course / 'reports'}")
    return 0 if all(r.ok for r in all_results) else 1
