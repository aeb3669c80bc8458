"""release and check-release: the masters become student notebooks (nbgrader
generate_assignment), copied into notebooks/ and checked to be in sync."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .course import (
    COURSE_FILES, CourseError, checked, nbgrader_api, read_notebook, source_assignments)


def generate(course_dir: Path, assignment: str, database: bool = True) -> list[Path]:
    """nbgrader generate_assignment (forced); returns the student notebooks in release/.

    database=False leaves the gradebook alone (a fresh one costs seconds to create).
    """
    api = nbgrader_api(course_dir)
    if not database:  # what `nbgrader generate_assignment --no-db` sets
        api.config.GenerateAssignment.no_database = True
        api.config.SaveCells.enabled = False
    checked(api.generate_assignment(assignment, force=True, create=True),
            f"nbgrader generate_assignment {assignment}")
    released = sorted((Path(course_dir) / "release" / assignment).glob("*.ipynb"))
    if not released:
        raise CourseError(f"generate_assignment {assignment} wrote no notebook")
    return released


def release(course_dir: Path, assignments: list[str], notebooks_dir: Path | None) -> list[Path]:
    """Generate the student versions and copy them into notebooks_dir (when given)."""
    copied = []
    for assignment in assignments:
        for notebook in generate(course_dir, assignment):
            if notebooks_dir is None:
                copied.append(notebook)
                continue
            Path(notebooks_dir).mkdir(parents=True, exist_ok=True)
            target = Path(notebooks_dir) / notebook.name
            shutil.copyfile(notebook, target)
            copied.append(target)
    return copied


def copy_course(course_dir: Path, target: Path, with_release: bool = False) -> Path:
    """A fresh copy of the course (config, collector, masters): nothing generated."""
    target = Path(target)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in COURSE_FILES:
        shutil.copy2(Path(course_dir) / name, target / name)
    shutil.copytree(Path(course_dir) / "source", target / "source",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    if (Path(course_dir) / "graders").is_dir():          # trusted scoring's modules
        shutil.copytree(Path(course_dir) / "graders", target / "graders",
                        ignore=shutil.ignore_patterns("__pycache__"))
    if with_release and (Path(course_dir) / "release").is_dir():
        shutil.copytree(Path(course_dir) / "release", target / "release")
    return target


def describe_difference(expected: dict, actual: dict) -> str:
    """The first difference between two notebooks, in words."""
    cells_e, cells_a = expected.get("cells", []), actual.get("cells", [])
    for i, (e, a) in enumerate(zip(cells_e, cells_a)):
        if e != a:
            what = [k for k in sorted(set(e) | set(a)) if e.get(k) != a.get(k)]
            head = e.get("source", "")[:60].replace("\n", " ")
            return f"cell {i} ({e.get('cell_type')}: {head!r}) differs in {', '.join(what)}"
    if len(cells_e) != len(cells_a):
        return f"{len(cells_a)} cells, the master gives {len(cells_e)}"
    keys = [k for k in sorted(set(expected) | set(actual)) if expected.get(k) != actual.get(k)]
    return f"notebook {', '.join(keys)} differ"


def staleness(fresh: Path, committed: Path) -> str:
    """How the committed student notebook falls short of the one just generated, in words
    ('is missing', 'is out of date: ...'); '' when they agree."""
    if not committed.exists():
        return "is missing"
    try:
        actual = read_notebook(committed)
    except ValueError as error:                          # not JSON, or not a notebook
        return f"is out of date: {error}"
    expected = read_notebook(fresh)
    return "" if expected == actual else f"is out of date: {describe_difference(expected, actual)}"


def check_release(course_dir: Path, notebooks_dir: Path) -> list[str]:
    """Regenerate every student notebook in a temp copy and compare with notebooks_dir.

    nbgrader's output is byte-deterministic here, but the comparison is on the notebooks
    as nbformat reads them (cells, sources, metadata, outputs), so only the file's layout is
    ignored: whitespace, key order, a source stored whole or in lines.
    Returns one line per problem; empty when notebooks_dir is up to date.
    """
    problems = []
    expected_names = set()
    with tempfile.TemporaryDirectory(prefix="check-release-") as tmp:
        copy = copy_course(course_dir, Path(tmp) / "course")
        for assignment in source_assignments(copy):
            for fresh in generate(copy, assignment, database=False):
                expected_names.add(fresh.name)
                committed = Path(notebooks_dir) / fresh.name
                problem = staleness(fresh, committed)
                if problem:
                    problems.append(f"{committed} {problem}")
    for stray in sorted(Path(notebooks_dir).glob("*.ipynb")):
        if stray.name not in expected_names:
            problems.append(f"{stray} has no master in {Path(course_dir) / 'source'}")
    return problems


def released_notebook_names(course_dir: Path, assignment: str) -> list[str]:
    folder = Path(course_dir) / "release" / assignment
    if not any(folder.glob("*.ipynb")):
        generate(course_dir, assignment)
    return sorted(p.name for p in folder.glob("*.ipynb"))
