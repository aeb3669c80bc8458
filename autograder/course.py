"""The course folder and nbgrader's API: paths, the config, the gradebook, the grading
settings, and the environment nbgrader and its kernels run in. Every other module of the
grader builds on this one."""
from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path


COURSE_DIR = Path(__file__).resolve().parent


REPO_DIR = COURSE_DIR.parent


NOTEBOOKS_DIR = REPO_DIR / "notebooks"


# what a copy of the course needs (the config imports the plugins, the plugins safe_files)


COURSE_FILES = ("nbgrader_config.py", "lms_collector.py", "bounded_execute.py", "safe_files.py")


class CourseError(RuntimeError):
    """A step failed; the message says which and why."""


def tool_env(base: dict | None = None) -> dict:
    """Environment for nbgrader and its kernels: this Python's tools and kernel come first.

    nbgrader's gradebook runs the `alembic` executable (found on PATH), and the kernel
    'python3' must be this environment's, even when a user-wide kernel of that name exists.
    """
    env = dict(os.environ if base is None else base)
    first = {"PATH": os.path.dirname(sys.executable),
             "JUPYTER_PATH": os.path.join(sys.prefix, "share", "jupyter")}
    for name, folder in first.items():
        rest = [p for p in env.get(name, "").split(os.pathsep) if p and p != folder]
        env[name] = os.pathsep.join([folder] + rest)
    env.setdefault("PYTHONIOENCODING", "utf-8")
    return env


# jsonschema (under nbformat) imports rfc3987_syntax, which takes ~1.7 s to build a grammar
# for the 'iri' string format that notebooks never use. Blocking that import halves the
# time to grade a small notebook; nbgrader itself runs unchanged.


SKIP_SLOW_IMPORTS = "import sys; sys.modules.setdefault('rfc3987_syntax', None); "


def nbgrader_command(*args: str) -> list[str]:
    """`nbgrader ARGS...` run by this Python (what `python -m nbgrader` does, faster)."""
    return [sys.executable, "-c",
            SKIP_SLOW_IMPORTS + "from nbgrader.apps.nbgraderapp import main; sys.exit(main())", *args]


# One thread per grading kernel: torch's default (one per core) is several times slower
# as soon as anything else runs on the machine (measured: 10 s against 45 s for notebook 01
# on 2 busy cores), and a fixed thread count keeps grades reproducible across graders.


GRADING_THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def grading_env() -> dict:
    env = tool_env()
    for name, value in GRADING_THREADS.items():
        env.setdefault(name, value)
    return env


def use_tool_env() -> None:
    os.environ.update(tool_env())


def load_config(course_dir: Path):
    """The course's nbgrader_config.py, loaded explicitly (the API does not read it)."""
    from traitlets.config.loader import PyFileConfigLoader
    config_file = Path(course_dir) / "nbgrader_config.py"
    if not config_file.exists():
        raise CourseError(f"no nbgrader_config.py in {course_dir}")
    return PyFileConfigLoader(config_file.name, path=str(config_file.parent)).load_config()


def nbgrader_api(course_dir: Path):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    use_tool_env()
    config = load_config(course_dir)
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def checked(result: dict, what: str) -> dict:
    """NbGraderAPI methods never raise: turn a failure into a loud error."""
    if not result.get("success"):
        raise CourseError(f"{what} failed:\n{result.get('log') or ''}\n{result.get('error') or ''}")
    return result


def gradebook(course_dir: Path):
    from nbgrader.api import Gradebook
    use_tool_env()
    return Gradebook(f"sqlite:///{Path(course_dir) / 'gradebook.db'}")


def source_assignments(course_dir: Path) -> list[str]:
    """Assignments with a master notebook in source/, sorted."""
    source = Path(course_dir) / "source"
    if not source.is_dir():
        return []
    return sorted(d.name for d in source.iterdir() if d.is_dir() and any(d.glob("*.ipynb")))


def master_notebooks(course_dir: Path, assignment: str) -> list[Path]:
    return sorted((Path(course_dir) / "source" / assignment).glob("*.ipynb"))


def all_masters(course_dir: Path) -> list[Path]:
    """Every master notebook of the course, sorted by path."""
    return sorted((Path(course_dir) / "source").glob("*/*.ipynb"))


def replace_between(text: str, begin: str, end: str, section: str) -> str:
    """``text`` with its part from marker ``begin`` to marker ``end`` (both included)
    replaced by ``section``; unchanged when either marker is missing."""
    if begin not in text or end not in text:
        return text
    return text[:text.index(begin)] + section + text[text.index(end) + len(end):]


def pick_assignments(course_dir: Path, assignment: str | None) -> list[str]:
    known = source_assignments(course_dir)
    if assignment is None:
        return known
    if assignment not in known:
        raise CourseError(f"no assignment {assignment!r} in {course_dir / 'source'} (have: {known})")
    return [assignment]


@dataclass(frozen=True)
class GradingSettings:
    """The limits of one grading run, from nbgrader_config.py (``c.Grading``, ``c.Sandbox``)."""
    timeout: float                 # seconds for a whole submission
    intake: "object"               # intake.IntakeLimits: the notebook file
    limits: "object"               # sandbox.Limits: the kernel's memory, space, processes
    graders_dir: Path | None = None  # graders/<assignment>.py: trusted scoring (scoring.py)
    call_timeout: float = 60       # seconds for one call of the student's code when scoring


# Notebooks are read and written with nbformat, as nbgrader does: in memory a cell's source
# is one string; on disk keys are sorted and text is split in lines (what Jupyter writes, and
# what the committed notebooks hold). One exception: a submission is first read as plain
# JSON (intake.py) and mended as such (repair.py), because nbformat raises on, or quietly
# changes, what must be rejected with a reason or put back from the release. The two
# accessors below therefore take a plain JSON cell as well as nbformat's.


def _nbformat():
    """nbformat, imported without the grammar its validator never uses (SKIP_SLOW_IMPORTS)."""
    sys.modules.setdefault("rfc3987_syntax", None)
    import nbformat
    return nbformat


def notebook_from_text(text: str):
    """A notebook from its JSON text (nbformat's NotebookNode, version 4); ValueError when
    the text is not JSON or not a notebook nbformat can convert."""
    nbformat = _nbformat()
    try:
        with warnings.catch_warnings():      # a Colab notebook without cell ids is still read
            warnings.simplefilter("ignore", nbformat.warnings.MissingIDFieldWarning)
            return nbformat.reads(text, as_version=4)
    except nbformat.ValidationError as error:        # raised for a structure it cannot read
        raise ValueError(f"not a notebook: {error}") from error


def read_notebook(path: Path):
    """The notebook at ``path``, as notebook_from_text reads it."""
    return notebook_from_text(Path(path).read_text(encoding="utf-8"))



def notebook_text(notebook: dict) -> str:
    """``notebook`` (a NotebookNode or its plain JSON) as nbformat writes it, newline ended."""
    nbformat = _nbformat()
    return nbformat.writes(nbformat.from_dict(notebook)) + "\n"


def write_notebook(notebook: dict, path: Path) -> Path:
    """Write ``notebook`` to ``path`` (folders made) as notebook_text gives it; ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(notebook_text(notebook), encoding="utf-8")
    return path


def cell_source(cell: dict) -> str:
    """A cell's source as one string (plain JSON may hold a list of lines, or none)."""
    source = cell.get("source", "")
    return source if isinstance(source, str) else "".join(source)


def nbgrader_meta(cell: dict) -> dict:
    """A cell's nbgrader metadata ({} when a notebook lost it, or holds null)."""
    return (cell.get("metadata") or {}).get("nbgrader") or {}


def grading_settings(course_dir: Path) -> GradingSettings:
    from . import intake
    from . import sandbox
    config = load_config(course_dir)
    grading, box = config.get("Grading", {}), config.get("Sandbox", {})
    defaults = sandbox.Limits()
    limits = sandbox.Limits(**{name: int(box.get(name, getattr(defaults, name)))
                               for name in ("memory", "tmp", "shm", "scratch", "processes")})
    notebook = intake.IntakeLimits(
        max_bytes=int(grading.get("max_notebook_bytes", intake.IntakeLimits.max_bytes)),
        max_cells=int(grading.get("max_cells", intake.IntakeLimits.max_cells)))
    graders = grading.get("graders_dir", str(Path(course_dir) / "graders"))
    return GradingSettings(float(grading.get("submission_timeout", 900)), notebook, limits,
                           Path(graders), float(grading.get("call_timeout", 60)))


def submitted_students(course_dir: Path, assignment: str) -> list[str]:
    submitted = Path(course_dir) / "submitted"
    if not submitted.is_dir():
        return []
    return sorted(d.name for d in submitted.iterdir() if (d / assignment).is_dir())
