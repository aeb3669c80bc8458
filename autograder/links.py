"""Where students get the course: the repository URL, set once, and the notebook cells that
point at it.

The one place is ``[project.urls] Repository`` in ``pyproject.toml``. A master's Colab
install cell (``%pip install "git+URL"``) and the *Open in Colab* badge at the top of its
introduction are written from it: ``release`` writes them with that URL, ``check-release``
fails when they differ, and ``publish --repo-url`` writes a student repository's notebooks
with the URL given there.
"""
from __future__ import annotations

import re
from pathlib import Path

from .course import (
    COURSE_DIR, REPO_DIR, all_masters, cell_source, notebook_text, read_notebook,
    replace_between)

PYPROJECT = REPO_DIR / "pyproject.toml"
README = REPO_DIR / "README.md"
README_BEGIN = ("<!-- Colab links: generated from pyproject.toml's [project.urls] Repository by "
                "`python -m autograder release` -->")
README_END = "<!-- end of the Colab links -->"
INSTALL_CELL_IDS = ("setup-colab", "setup_colab")
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
_PIP_URL = re.compile(r'git\+[^"\'\s]+')
_BADGE_LINE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\n\n", re.M)
_COLAB_LINK = re.compile(r"https://colab\.research\.google\.com/github/[^\s`)]+?/notebooks/"
                         r"(?P<name>[\w.-]+\.ipynb)")


def repo_url(pyproject: Path = PYPROJECT) -> str:
    """``[project.urls] Repository`` of pyproject.toml."""
    in_urls = False
    for line in Path(pyproject).read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            in_urls = stripped == "[project.urls]"
        elif in_urls and stripped.startswith("Repository"):
            return stripped.split("=", 1)[1].strip().strip('"\'')
    raise ValueError(f"{pyproject} has no [project.urls] Repository")


def github_path(url: str) -> str | None:
    """'owner/name' of a GitHub URL (Colab opens notebooks from GitHub only), else None."""
    match = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?", url)
    return f"{match.group(1)}/{match.group(2)}" if match else None


def colab_url(url: str, notebook: str, branch: str = "main") -> str | None:
    """The Colab address of ``notebooks/<notebook>`` in the repository at ``url``."""
    path = github_path(url)
    if path is None:
        return None
    return f"https://colab.research.google.com/github/{path}/blob/{branch}/notebooks/{notebook}"


def badge(url: str, notebook: str) -> str:
    """The *Open in Colab* badge line (markdown), or '' when Colab cannot open ``url``."""
    link = colab_url(url, notebook)
    return f"[![Open In Colab]({BADGE_IMAGE})]({link})\n\n" if link else ""


def _set_source(cell: dict, text: str) -> None:
    cell["source"] = text.splitlines(keepends=True)


def point_at(book: dict, url: str, notebook: str) -> dict:
    """``book`` (a notebook, changed in place and returned) with its install cell, its
    badge and its Colab links pointing at the repository ``url``; a notebook without a
    Colab install cell is not meant for Colab and is left as it is."""
    if not any(cell.get("id") in INSTALL_CELL_IDS for cell in book["cells"]):
        return book
    for cell in book["cells"]:
        text = cell_source(cell)
        if cell.get("id") in INSTALL_CELL_IDS:
            _set_source(cell, _PIP_URL.sub(lambda _: f"git+{url}", text))
        elif cell["cell_type"] == "markdown" and github_path(url):
            _set_source(cell, _COLAB_LINK.sub(lambda m: colab_url(url, m["name"]), text))
    intro = next(c for c in book["cells"] if c["cell_type"] == "markdown")
    _set_source(intro, badge(url, notebook) + _BADGE_LINE.sub("", cell_source(intro), count=1))
    return book


def badge_rows(url: str, notebooks: list[str]) -> str:
    """Markdown table rows: each notebook and its badge ('-' where Colab cannot open it)."""
    return "\n".join(f"| `notebooks/{name}` | {badge(url, name).strip() or '-'} |"
                      for name in notebooks)


def readme_section(url: str, notebooks: list[str]) -> str:
    """The README's badges, one per notebook, and the install line, for ``url``."""
    rows = badge_rows(url, notebooks)
    return (f"{README_BEGIN}\n| notebook | open it on Colab |\n| --- | --- |\n{rows}\n\n"
            f"The first code cell of every notebook installs `course_utils` on Colab (and "
            f"only there):\n\n```python\n%pip install -q \"git+{url}\"\n```\n{README_END}")


def _readme_texts(url: str, readme: Path) -> tuple[str, str]:
    """The README lists this repository's notebooks, whichever course is being released."""
    text = readme.read_text(encoding="utf-8")
    section = readme_section(url, [p.name for p in all_masters(COURSE_DIR)])
    return text, replace_between(text, README_BEGIN, README_END, section)


def _pointed(path: Path, url: str) -> tuple[str, str]:
    """(the notebook now, the notebook pointed at ``url``), each as nbformat writes it: one
    that points there already is the same twice, whatever its file's layout."""
    book = read_notebook(path)
    now = notebook_text(book)
    return now, notebook_text(point_at(book, url, path.name))


def _texts(course_dir: Path, url: str, readme: Path | None) -> dict[Path, tuple[str, str]]:
    """path -> (text now, text pointed at ``url``) for every master and the README."""
    out = {path: _pointed(path, url) for path in all_masters(course_dir)}
    if readme is not None and readme.exists():
        out[readme] = _readme_texts(url, readme)
    return out


def write(course_dir: Path, url: str | None = None, readme: Path | None = README) -> list[Path]:
    """Point every master and the README at ``url`` (pyproject's by default); the paths
    that changed."""
    changed = []
    for path, (now, pointed) in _texts(course_dir, url or repo_url(), readme).items():
        if now != pointed:
            path.write_text(pointed, encoding="utf-8")
            changed.append(path)
    return changed


def check(course_dir: Path, url: str | None = None, readme: Path | None = README) -> list[str]:
    """The files whose install line or Colab links do not point at ``url``, one line each."""
    url = url or repo_url()
    return [f"{path.name}: the install cell or the Colab links do not point at {url} "
            f"(pyproject.toml's [project.urls] Repository)"
            for path, (now, pointed) in _texts(course_dir, url, readme).items()
            if now != pointed]
