"""publish: the student repository holds what students need and nothing that grades them;
links: the repository URL is set in one place and every notebook points at it."""
import json
import re
import shutil
import subprocess
import sys

import pytest

from autograder import links
from autograder.course import COURSE_DIR, REPO_DIR, CourseError, cell_source
from autograder.publish import find_leaks, publish, solution_lines, visible_lines

URL = "https://github.com/example-university/ssl-notebooks"


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    out = tmp_path_factory.mktemp("student") / "repo"
    publish(COURSE_DIR, out, URL)
    return out


def tree_files(tree):
    return sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())


def test_the_tree_holds_what_students_need_and_no_grading(tree):
    files = tree_files(tree)
    masters = sorted(p.name for p in (COURSE_DIR / "source").glob("*/*.ipynb"))
    assert sorted(f for f in files if f.startswith("notebooks/")) == \
        [f"notebooks/{name}" for name in masters]
    for needed in ("README.md", "pyproject.toml", "data/README.md", "course_utils/__init__.py"):
        assert needed in files
    assert not [f for f in files if f.split("/")[0] not in
                {"notebooks", "course_utils", "data", "README.md", "pyproject.toml", ".gitignore"}]
    for path in files:
        text = (tree / path).read_text(encoding="utf-8", errors="replace")
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text, path


def independent_secrets():
    """Long lines of the masters' solutions and of every grader file (graders, reference
    submissions, the grader package), less what the student notebooks show anyway."""
    secrets = set()
    for master in (COURSE_DIR / "source").glob("*/*.ipynb"):
        for cell in json.loads(master.read_text())["cells"]:
            src = cell_source(cell)
            for block in re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", src, re.S):
                secrets.update(ln.strip() for ln in block.splitlines())
    for path in COURSE_DIR.rglob("*.py"):
        if "source" not in path.parts:
            secrets.update(ln.strip() for ln in path.read_text().splitlines())
    return {s for s in secrets if len(s) >= 40 and not s.startswith(("#", '"', "'"))}


def test_no_line_of_a_solution_or_of_the_grader_is_in_it(tree):
    shown = visible_lines(sorted((tree / "notebooks").glob("*.ipynb")))
    secrets = independent_secrets() - shown
    assert len(secrets) > 500                         # the check has something to find
    found = []
    for path in tree.rglob("*"):
        if path.is_file() and path.suffix != ".ipynb":
            found += [(path.name, ln.strip()) for ln in path.read_text().splitlines()
                      if ln.strip() in secrets]
    assert not found


def test_the_notebooks_point_at_the_repository_given(tree):
    for path in sorted((tree / "notebooks").glob("*.ipynb")):
        book = json.loads(path.read_text())
        install = next(c for c in book["cells"] if c.get("id") in links.INSTALL_CELL_IDS)
        assert f'git+{URL}"' in cell_source(install)
        intro = cell_source(book["cells"][0])
        assert intro.startswith("[![Open In Colab]") and \
            f"colab.research.google.com/github/example-university/ssl-notebooks/blob/main/" \
            f"notebooks/{path.name})" in intro
        assert "ssl-course-kit/ssl-course-kit" not in path.read_text()
    assert f'Repository = "{URL}"' in (tree / "pyproject.toml").read_text()
    assert URL in (tree / "README.md").read_text()


def test_the_tree_installs_offline_with_pip(tree, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(tree)],
                   check=True, cwd=tmp_path)
    assert (target / "course_utils" / "budget.py").exists()
    assert not (target / "autograder").exists() and not (target / "tests").exists()
    out = subprocess.run([sys.executable, "-c", "import course_utils, sys; "
                          "print(course_utils.__file__)"], check=True, capture_output=True,
                         text=True, cwd=tmp_path, env={"PYTHONPATH": str(target)}).stdout
    assert out.strip() == str(target / "course_utils" / "__init__.py")


def copy_of(tree, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tree, copy)
    return copy


@pytest.mark.parametrize("what", ["solution", "grader answer", "grader definition"])
def test_a_leak_is_found(tree, tmp_path, what):
    """Each kind of secret, slipped into course_utils, is caught (or find_leaks proves nothing)."""
    if what == "solution":
        line = max(solution_lines(COURSE_DIR), key=len)
    elif what == "grader answer":
        source = (COURSE_DIR / "graders" / "01_simclr_ntxent.py").read_text().splitlines()
        line = next(ln.strip() for ln in source if "log_softmax" in ln or "logsumexp" in ln)
    else:
        grader = (COURSE_DIR / "scoring.py").read_text()
        line = next(ln.strip() for ln in grader.splitlines() if ln.startswith("def "))
    copy = copy_of(tree, tmp_path)
    with open(copy / "course_utils" / "augment.py", "a") as f:
        f.write(f"\n    {line}\n")
    shown = visible_lines(sorted((copy / "notebooks").glob("*.ipynb")))
    leaks = find_leaks(copy, COURSE_DIR, shown)
    assert len(leaks) == 1 and leaks[0].startswith("course_utils/augment.py:"), leaks
    assert find_leaks(tree, COURSE_DIR, shown) == []


def test_publish_writes_a_new_tree_only(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(CourseError, match="not empty"):
        publish(COURSE_DIR, tmp_path, URL)
    assert (tmp_path / "keep.txt").read_text() == "mine"


# ---------------------------------------------------------------------------- links

def test_the_url_is_set_in_pyproject_and_the_masters_follow_it():
    url = links.repo_url()
    assert url == links.repo_url(REPO_DIR / "pyproject.toml") and url.startswith("https://")
    assert links.check(COURSE_DIR) == []


def test_check_release_catches_a_master_pointing_elsewhere(tmp_path):
    course = tmp_path / "course"
    shutil.copytree(COURSE_DIR / "source", course / "source")
    master = sorted((course / "source").glob("*/*.ipynb"))[0]
    master.write_text(master.read_text().replace(links.repo_url(), "https://github.com/old/place"))
    readme = tmp_path / "README.md"
    readme.write_text(links.README.read_text().replace(links.repo_url(), "https://x.org/old"))
    assert len(links.check(course, readme=readme)) == 2
    assert links.write(course, readme=readme) == [master, readme]
    assert links.check(course, readme=readme) == []
    assert f'git+{links.repo_url()}"' in readme.read_text()


def test_the_readme_links_every_notebook_to_colab():
    text = links.README.read_text()
    section = text[text.index(links.README_BEGIN):text.index(links.README_END)]
    for master in sorted((COURSE_DIR / "source").glob("*/*.ipynb")):
        assert links.colab_url(links.repo_url(), master.name) in section


def test_a_repository_colab_cannot_open_gets_no_badge():
    url = "https://gitlab.example.org/course/ssl"
    book = {"cells": [{"cell_type": "markdown", "source": "# Title\n"},
                      {"cell_type": "code", "id": "setup-colab",
                       "source": '%pip install -q "git+https://github.com/a/b"\n'}]}
    links.point_at(book, url, "01.ipynb")
    assert book["cells"][0]["source"] == ["# Title\n"]
    assert cell_source(book["cells"][1]) == f'%pip install -q "git+{url}"\n'
    assert links.github_path("https://github.com/a/b.git") == "a/b"


def test_a_notebook_without_an_install_cell_is_left_alone():
    book = {"cells": [{"cell_type": "markdown", "source": "# Fixture\n"},
                      {"cell_type": "code", "id": "add", "source": "def add(a, b): ...\n"}]}
    before = json.dumps(book)
    assert json.dumps(links.point_at(book, URL, "00.ipynb")) == before
