"""publish: the repository students get, apart from this one.

This repository holds the masters (solutions), the trusted graders and the reference
submissions, so it must stay private. ``publish DIR --repo-url URL`` writes what students
may see: the student notebooks (generated from the masters as ``release`` does, pointed at
URL: the Colab install cell and the *Open in Colab* badge), the ``course_utils`` package, a
student README, ``data/README.md`` and a ``pyproject.toml`` that installs ``course_utils``.
Before it returns, :func:`find_leaks` reads every file written and refuses the tree if any
line of a master's solutions or of the grader's code is in it.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from . import links
from .course import (
    REPO_DIR, CourseError, all_masters, notebook_from_text, read_notebook, source_assignments)
from .release import copy_course, generate

PACKAGE = "course_utils"
SOLUTION = ("### BEGIN SOLUTION", "### END SOLUTION")
HIDDEN = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
MARKERS = SOLUTION[:1] + HIDDEN[:1]
MIN_LINE = 20          # shorter lines ('return loss', 'else:') are no one's secret


# ---------------------------------------------------------------------------- the secrets

def _between(text: str, begin: str, end: str) -> list[str]:
    lines, inside = [], False
    for line in text.splitlines():
        if line.strip().startswith(begin):
            inside = True
        elif line.strip().startswith(end):
            inside = False
        elif inside:
            lines.append(line)
    return lines


def solution_lines(course_dir: Path) -> set[str]:
    """Every line of the masters' solutions and hidden tests (stripped)."""
    lines = set()
    for master in all_masters(course_dir):
        for cell in read_notebook(master).cells:
            for begin, end in (SOLUTION, HIDDEN):
                lines.update(ln.strip() for ln in _between(cell.source, begin, end))
    return lines


def answer_lines(course_dir: Path) -> set[str]:
    """Every line of the trusted graders (their reference answers) and of the reference
    submissions."""
    lines = set()
    for folder in ("graders", "demo_submissions"):
        for path in sorted((Path(course_dir) / folder).rglob("*.py")):
            lines.update(ln.strip() for ln in path.read_text(encoding="utf-8").splitlines())
    return lines


def grader_definitions(course_dir: Path) -> set[str]:
    """The ``def`` and ``class`` lines of the grader package: none of its code may travel."""
    lines = set()
    for path in sorted(Path(course_dir).glob("*.py")):
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line.startswith(("def ", "class ", "async def ")) and "__" not in line.split("(")[0]:
                lines.add(line)
    return lines


def _distinctive(line: str) -> bool:
    """Long enough to be someone's work: not a comment, an import, a decorator or a block
    header ('for i, x in enumerate(xs):', 'except ValueError:'), which anyone writes."""
    return (len(line) >= MIN_LINE and not line.startswith(("#", "@", "import ", "from "))
            and not line.endswith(":"))


def secret_lines(course_dir: Path, visible: set[str]) -> set[str]:
    """What students must not get: the distinctive lines of the solutions, the graders and
    the reference submissions, and the grader's definitions, less ``visible`` (what the
    student notebooks show anyway)."""
    answers = solution_lines(course_dir) | answer_lines(course_dir)
    return {ln for ln in answers if _distinctive(ln) and ln not in visible} | \
        {ln for ln in grader_definitions(course_dir) if ln not in visible}


def _text_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return []
    if path.suffix == ".ipynb":
        text = "\n".join(cell.source for cell in notebook_from_text(text).cells)
    return [ln.strip() for ln in text.splitlines()]


def find_leaks(tree: Path, course_dir: Path, visible: set[str]) -> list[str]:
    """'file:line: what' for each line of ``tree`` that is a secret or a solution marker."""
    secrets = secret_lines(course_dir, visible)
    leaks = []
    for path in sorted(p for p in Path(tree).rglob("*") if p.is_file()):
        for number, line in enumerate(_text_lines(path), 1):
            if line in secrets or line.startswith(MARKERS):
                leaks.append(f"{path.relative_to(tree)}:{number}: {line[:80]}")
    return leaks


# ---------------------------------------------------------------------------- the tree

def student_notebooks(course_dir: Path, url: str, target: Path) -> list[Path]:
    """The student version of every master, pointed at ``url``, in ``target`` (generated
    from masters pointed at ``url``, so that nbgrader's cell checksums are theirs)."""
    written = []
    with tempfile.TemporaryDirectory(prefix="publish-") as tmp:
        copy = copy_course(course_dir, Path(tmp) / "course")
        links.write(copy, url, readme=None)
        for assignment in source_assignments(copy):
            for notebook in generate(copy, assignment, database=False):
                written.append(Path(shutil.copyfile(notebook, target / notebook.name)))
    return written


def visible_lines(notebooks: list[Path]) -> set[str]:
    return {ln for path in notebooks for ln in _text_lines(path)}


def _toml_list(items: list[str]) -> str:
    return "[\n" + "".join(f"    {json.dumps(item)},\n" for item in items) + "]"


def student_pyproject(url: str, pyproject: Path = links.PYPROJECT) -> str:
    """This project's metadata and run-time dependencies; no development extras."""
    import tomllib
    project = tomllib.loads(Path(pyproject).read_text(encoding="utf-8"))["project"]
    extras = project.get("optional-dependencies", {})
    notebook = f"\n[project.optional-dependencies]\nnotebook = {_toml_list(extras['notebook'])}\n" \
        if "notebook" in extras else ""
    return f"""[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = {json.dumps(project["name"])}
version = {json.dumps(project["version"])}
description = {json.dumps(project["description"])}
readme = "README.md"
requires-python = {json.dumps(project["requires-python"])}
license = {json.dumps(project["license"])}
dependencies = {_toml_list(project["dependencies"])}
{notebook}
[project.urls]
Repository = {json.dumps(url)}

[tool.setuptools.packages.find]
include = ["{PACKAGE}*"]
"""


STUDENT_README = Path(__file__).with_name("student_README.md")   # {url}, {rows}


def student_readme(url: str, notebooks: list[Path]) -> str:
    rows = links.badge_rows(url, [p.name for p in notebooks])
    return STUDENT_README.read_text(encoding="utf-8").format(url=url, rows=rows)


def _copy_package(target: Path) -> None:
    shutil.copytree(REPO_DIR / PACKAGE, target / PACKAGE,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def publish(course_dir: Path, out_dir: Path, url: str) -> list[Path]:
    """Write the student repository into ``out_dir`` (new or empty); its files."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise CourseError(f"{out_dir} is not empty: publish writes a new tree")
    if links.github_path(url) is None:
        print(f"note: {url} is not a GitHub repository, so the notebooks get no Colab badge")
    (out_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    notebooks = student_notebooks(course_dir, url, out_dir / "notebooks")
    _copy_package(out_dir)
    (out_dir / "data").mkdir()
    shutil.copyfile(REPO_DIR / "data" / "README.md", out_dir / "data" / "README.md")
    (out_dir / "README.md").write_text(student_readme(url, notebooks), encoding="utf-8")
    (out_dir / "pyproject.toml").write_text(student_pyproject(url), encoding="utf-8")
    (out_dir / ".gitignore").write_text("__pycache__/\n*.egg-info/\n.ipynb_checkpoints/\n"
                                        "/data/*\n!/data/README.md\n", encoding="utf-8")
    leaks = find_leaks(out_dir, course_dir, visible_lines(notebooks))
    if leaks:
        shutil.rmtree(out_dir)
        raise CourseError("the student tree would hold solutions or grader code (removed):\n  "
                          + "\n  ".join(leaks[:20]))
    return sorted(p for p in out_dir.rglob("*") if p.is_file())
