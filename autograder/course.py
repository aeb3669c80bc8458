#!/usr/bin/env python
"""Instructor commands for the ssl-course-kit nbgrader course (this folder).

    python autograder/course.py release --all          # masters -> release/ -> notebooks/
    python autograder/course.py check-release          # exit 1 when notebooks/ is out of date
    python autograder/course.py collect SUBMISSIONS.zip --assignment 01_simclr_ntxent
    python autograder/course.py autograde 01_simclr_ntxent
    python autograder/course.py feedback 01_simclr_ntxent
    python autograder/course.py export --to grades.csv
    python autograder/course.py demo                   # grade the reference submissions (build/demo/)

nbgrader does the work (generate_assignment, zip_collect, autograde, generate_feedback,
export); this file adds what it lacks: copying the release into notebooks/, checking that
copy, collecting a plain folder, and grading student by student in a subprocess each, so
that one broken submission never stops the batch and every failure is listed with its
reason. Run it with the project's Python (.venv/bin/python): the notebooks are graded in
the 'python3' kernel of that same environment.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path

COURSE_DIR = Path(__file__).resolve().parent
REPO_DIR = COURSE_DIR.parent
NOTEBOOKS_DIR = REPO_DIR / "notebooks"
WRONG_VARIANTS_DIR = COURSE_DIR / "demo_submissions"
# what a copy of the course needs (the config imports the plugins, the plugins safe_files)
COURSE_FILES = ("nbgrader_config.py", "lms_collector.py", "bounded_execute.py", "safe_files.py")


class CourseError(RuntimeError):
    """A step failed; the message says which and why."""


# --------------------------------------------------------------------------------------
# environment and nbgrader's API
# --------------------------------------------------------------------------------------

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


def pick_assignments(course_dir: Path, assignment: str | None) -> list[str]:
    known = source_assignments(course_dir)
    if assignment is None:
        return known
    if assignment not in known:
        raise CourseError(f"no assignment {assignment!r} in {course_dir / 'source'} (have: {known})")
    return [assignment]


# --------------------------------------------------------------------------------------
# release and check-release
# --------------------------------------------------------------------------------------

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


def notebook_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def describe_difference(expected: dict, actual: dict) -> str:
    """The first difference between two notebooks, in words."""
    cells_e, cells_a = expected.get("cells", []), actual.get("cells", [])
    for i, (e, a) in enumerate(zip(cells_e, cells_a)):
        if e != a:
            what = [k for k in sorted(set(e) | set(a)) if e.get(k) != a.get(k)]
            head = "".join(e.get("source", ""))[:60].replace("\n", " ")
            return f"cell {i} ({e.get('cell_type')}: {head!r}) differs in {', '.join(what)}"
    if len(cells_e) != len(cells_a):
        return f"{len(cells_a)} cells, the master gives {len(cells_e)}"
    keys = [k for k in sorted(set(expected) | set(actual)) if expected.get(k) != actual.get(k)]
    return f"notebook {', '.join(keys)} differ"


def check_release(course_dir: Path, notebooks_dir: Path) -> list[str]:
    """Regenerate every student notebook in a temp copy and compare with notebooks_dir.

    nbgrader's output is byte-deterministic here, but the comparison is on the parsed
    JSON (cells, sources, metadata, outputs), so only whitespace and key order are ignored.
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
                if not committed.exists():
                    problems.append(f"{committed} is missing")
                    continue
                difference = (notebook_json(fresh) != notebook_json(committed)
                              and describe_difference(notebook_json(fresh), notebook_json(committed)))
                if difference:
                    problems.append(f"{committed} is out of date: {difference}")
    for stray in sorted(Path(notebooks_dir).glob("*.ipynb")):
        if stray.name not in expected_names:
            problems.append(f"{stray} has no master in {Path(course_dir) / 'source'}")
    return problems


# --------------------------------------------------------------------------------------
# collect
# --------------------------------------------------------------------------------------

def released_notebook_names(course_dir: Path, assignment: str) -> list[str]:
    folder = Path(course_dir) / "release" / assignment
    if not any(folder.glob("*.ipynb")):
        generate(course_dir, assignment)
    return sorted(p.name for p in folder.glob("*.ipynb"))


class Collected(dict):
    """student -> collected notebook; ``skipped`` lists (what, why) for what was not taken."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.skipped: list[tuple[str, str]] = []


def folder_submissions(folder: Path) -> tuple[list[tuple[str, Path]], list[tuple[str, str]]]:
    """((student, notebook) pairs, skipped) of a folder: '<student>.ipynb' or
    '<student>/<any>.ipynb'. Links, special files, deeper paths, unusable ids and
    students with several notebooks are skipped with a reason."""
    from . import safe_files
    pairs, skipped = [], []
    for path in sorted(Path(folder).rglob("*.ipynb")):
        relative = path.relative_to(folder)
        if ".ipynb_checkpoints" in relative.parts:
            continue
        if any(os.path.islink(Path(folder).joinpath(*relative.parts[:i + 1]))
               for i in range(len(relative.parts))):
            skipped.append((str(relative), "a symbolic link (not followed)"))
            continue
        if len(relative.parts) > 2:
            skipped.append((str(relative), "expected <student>.ipynb or <student>/<notebook>.ipynb"))
            continue
        student = path.stem if len(relative.parts) == 1 else relative.parts[0]
        problem = safe_files.student_id_problem(student)
        if problem:
            skipped.append((str(relative), problem))
            continue
        pairs.append((student, path))
    students = [s for s, _ in pairs]
    for student in sorted({s for s in students if students.count(s) > 1}):
        skipped += [(str(p.relative_to(folder)), f"{student} has several notebooks")
                    for s, p in pairs if s == student]
        pairs = [(s, p) for s, p in pairs if s != student]
    return pairs, skipped


def store_submission(course_dir: Path, student: str, assignment: str, notebook: str,
                     data: bytes) -> Path:
    """Write one submitted notebook to submitted/<student>/<assignment>/<notebook>, through
    real folders only, replacing what was collected for that student before."""
    from . import safe_files
    submitted = Path(course_dir) / "submitted"
    folder = submitted / student / assignment
    problems = safe_files.tree_problems(submitted, Path(student))
    if problems:
        raise safe_files.UnsafePath("; ".join(problems))
    if folder.is_dir():
        shutil.rmtree(folder)
    target = folder / notebook
    with safe_files.open_for_writing(target, submitted, "wb") as f:
        f.write(data)
    return target


def collect_folder(course_dir: Path, folder: Path, assignment: str) -> Collected:
    """Copy a folder of submissions into submitted/<student>/<assignment>/<notebook>.ipynb
    (the originals are never modified); what cannot be taken is skipped and listed."""
    from . import safe_files
    notebooks = released_notebook_names(course_dir, assignment)
    if len(notebooks) != 1:
        raise CourseError(f"{assignment} has {len(notebooks)} notebooks: collect them with zip_collect")
    limit = grading_settings(course_dir).intake.max_bytes
    pairs, skipped = folder_submissions(folder)
    collected = Collected()
    collected.skipped = skipped
    for student, path in pairs:
        try:
            data = safe_files.read_regular(path, limit)
            collected[student] = store_submission(course_dir, student, assignment, notebooks[0], data)
        except (safe_files.UnsafePath, OSError) as error:
            collected.skipped.append((str(path.relative_to(folder)), str(error)))
    return collected


def check_archive(archive: Path, limits) -> None:
    """Refuse an archive that is not a zip, or that holds too many entries or would
    unpack to too much, before anything is extracted."""
    import zipfile
    if not zipfile.is_zipfile(archive):
        raise CourseError(f"{archive} is not a zip archive")
    with zipfile.ZipFile(archive) as z:
        entries = z.infolist()
    if len(entries) > limits.max_entries:
        raise CourseError(f"{archive} holds {len(entries):,} entries, over the limit of "
                          f"{limits.max_entries:,} (SafeExtractor.max_entries)")
    total = sum(e.file_size for e in entries)
    if total > limits.max_total_bytes:
        raise CourseError(f"{archive} would unpack to {total:,} bytes, over the limit of "
                          f"{limits.max_total_bytes:,} (SafeExtractor.max_total_bytes)")


def tree_links(folder: Path) -> list[str]:
    from . import safe_files
    return safe_files.tree_problems(folder.parent, folder.name) if folder.exists() else []


def collect_zip(course_dir: Path, archive: Path, assignment: str) -> Collected:
    """nbgrader zip_collect on an LMS download ('<student>_<anything>.ipynb' inside); the
    extraction (lms_collector.SafeExtractor) takes only notebooks within the limits and
    the collector only usable student ids: everything else is skipped and listed."""
    from . import lms_collector
    released_notebook_names(course_dir, assignment)  # the collector maps names onto these
    check_archive(archive, lms_collector.SafeExtractor(config=load_config(course_dir)))
    links = tree_links(Path(course_dir) / "submitted")
    if links:
        raise CourseError("nbgrader would write through links in submitted/: "
                          + "; ".join(links) + " (remove them first)")
    archive_dir = Path(course_dir) / "downloaded" / assignment / "archive"
    if archive_dir.exists():
        shutil.rmtree(archive_dir)
    archive_dir.mkdir(parents=True)
    shutil.copyfile(archive, archive_dir / Path(archive).name)
    run = subprocess.run(nbgrader_command("zip_collect", assignment, "--force"),
                         cwd=course_dir, env=tool_env(), capture_output=True, text=True)
    log = run.stdout + run.stderr
    if run.returncode != 0:
        raise CourseError(f"nbgrader zip_collect {assignment} failed:\n{log}")
    collected = Collected()
    for line in log.splitlines():
        found = re.search(r"Copying to: (.*)$", line)
        if found and "/submitted/" in found.group(1):
            target = Path(found.group(1).strip())
            collected[target.parent.parent.name] = target
        skipped = re.search(r"Skipped (.*?): (.*)$", line)
        if skipped:
            collected.skipped.append((skipped.group(1), skipped.group(2)))
        elif "did not match" in line:
            collected.skipped.append((line.strip(), "its name does not match <student>_<anything>.ipynb"))
    return collected


def guess_assignment(course_dir: Path, source: Path) -> str:
    known = source_assignments(course_dir)
    names = {nb.stem: a for a in known for nb in master_notebooks(course_dir, a)}
    hits = {a for stem, a in names.items() if stem in str(source)}
    if len(hits) == 1:
        return hits.pop()
    if len(known) == 1:
        return known[0]
    raise CourseError(f"which assignment is {source}? say it with --assignment (one of {known})")


def collect(course_dir: Path, source: Path, assignment: str | None = None) -> Collected:
    source = Path(source)
    if not source.exists():
        raise CourseError(f"{source} does not exist")
    assignment = assignment or guess_assignment(course_dir, source)
    pick_assignments(course_dir, assignment)
    if source.is_dir():
        return collect_folder(course_dir, source, assignment)
    if source.suffix in (".zip", ".gz"):
        return collect_zip(course_dir, source, assignment)
    raise CourseError(f"{source}: expected a folder of .ipynb files or a .zip")


# --------------------------------------------------------------------------------------
# autograde: student by student, each in its own process
# --------------------------------------------------------------------------------------

@dataclass
class GradeResult:
    assignment: str
    student: str
    ok: bool
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    score: float | None = None
    max_score: float | None = None
    lost: list[str] = field(default_factory=list)  # test cells below full points
    tests: int = 0
    log_file: Path | None = None
    suspicious: list[str] = field(default_factory=list)  # tamper.py findings in answer cells
    isolated: bool = False                                # graded in the bubblewrap sandbox
    cells: dict = field(default_factory=dict)             # grade_id -> auto score
    gradebook: str = ""                                   # changed there since grading
    log: str = field(default="", repr=False)              # the end of nbgrader's log
    properties: list = field(default_factory=list)        # scoring.PropertyResult, if scored


# (pattern in nbgrader's log, reason): the failures seen on real submissions.
KNOWN_FAILURES = [
    (r"Cell with id '([^']+)' exists multiple times", "graded cell {0} appears more than once"),
    (r"Kernel died", "the kernel died (os._exit, a crash or out of memory)"),
    (r"No student with ID", "student is not in the gradebook"),
    (r"Assignment .* does not exist|No assignment with ID", "assignment not in the gradebook: run release"),
]
KNOWN_NOTES = [
    (r"Missing grade cell (\S+) encountered", "test cell {0} was missing and was put back"),
    (r"Timeout waiting for execute reply \((\d+)s\)", "a cell ran past the {0} s limit and was interrupted"),
]


def failure_reason(log: str) -> str:
    for pattern, reason in KNOWN_FAILURES:
        found = re.search(pattern, log)
        if found:
            return reason.format(*found.groups())
    exceptions = re.findall(r"^\s*((?:\w+\.)*\w*(?:Error|Exception|Exit)\b.*)$", log, re.M)
    if exceptions:
        return exceptions[-1].strip()
    errors = [line for line in log.splitlines() if "ERROR" in line]
    return errors[-1].strip() if errors else "nbgrader autograde failed (see the log)"


def log_notes(log: str) -> list[str]:
    notes = []
    for pattern, note in KNOWN_NOTES:
        for found in re.finditer(pattern, log):
            text = note.format(*found.groups())
            if text not in notes:
                notes.append(text)
    return notes


def autograde_command(assignment: str, student: str) -> list[str]:
    """`nbgrader autograde ASSIGNMENT --student S --force --create` for one student
    (`sandboxed_command` adds the isolated kernel to it)."""
    return nbgrader_command("autograde", assignment, "--student", student, "--force", "--create")


def sandbox_mode() -> str:
    """COURSE_SANDBOX: 'auto' (isolate when bubblewrap works; default), 'off' or 'required'."""
    mode = os.environ.get("COURSE_SANDBOX", "auto").lower()
    if mode not in ("auto", "off", "required"):
        raise CourseError(f"COURSE_SANDBOX={mode!r}: use auto, off or required")
    return mode


def isolation(course_dir: Path) -> tuple[bool, str]:
    """(isolated, why not): whether grading kernels run under bubblewrap."""
    from . import sandbox
    mode = sandbox_mode()
    if mode == "off":
        return False, "COURSE_SANDBOX=off"
    ok, why = sandbox.available()
    if not ok and mode == "required":
        raise CourseError(f"COURSE_SANDBOX=required, but {why}")
    return ok, why


def sandboxed_command(command: list[str], env: dict, spec_root: Path,
                      limits=None) -> tuple[list[str], dict]:
    """The autograde command and environment that start the kernel in the sandbox.

    The kernel sees only the allowlist of sandbox.py (the interpreter, this environment,
    course_utils); it writes only into tmpfs folders of its own; its sockets are linked
    into ``spec_root/runtime``, a folder of the grader's that the kernel never sees.
    """
    from . import sandbox
    sandbox.write_kernelspec(spec_root)
    runtime = Path(spec_root) / "runtime"        # connection file, socket links, state
    runtime.mkdir(parents=True, exist_ok=True)
    env = dict(env, **sandbox.launcher_env(runtime, limits or sandbox.Limits()),
               JUPYTER_PATH=os.pathsep.join([str(spec_root), env.get("JUPYTER_PATH", "")]),
               JUPYTER_RUNTIME_DIR=str(runtime), TMPDIR=str(runtime))
    return command + [f"--Execute.kernel_name={sandbox.KERNEL_NAME}",
                      "--KernelManager.transport=ipc",
                      f"--KernelManager.ip={runtime / 'kernel-ipc'}"], env


def sandbox_cleanup(runtime: Path) -> list[str]:
    """Kill whatever a submission's sandboxes left running; what had to be done, in words."""
    from . import sandbox
    return sandbox.cleanup_all(runtime)


@dataclass(frozen=True)
class GradingSettings:
    """The limits of one grading run, from nbgrader_config.py (``c.Grading``, ``c.Sandbox``)."""
    timeout: float                 # seconds for a whole submission
    intake: "object"               # intake.IntakeLimits: the notebook file
    limits: "object"               # sandbox.Limits: the kernel's memory, space, processes
    graders_dir: Path | None = None  # graders/<assignment>.py: trusted scoring (scoring.py)
    call_timeout: float = 60       # seconds for one call of the student's code when scoring


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


def grade_student(course_dir: Path, assignment: str, student: str,
                  settings: GradingSettings, isolated: bool | None = None) -> GradeResult:
    """Autograde one submission in a child process; never raises for a bad submission."""
    from . import safe_files
    log_file = Path(course_dir) / "reports" / assignment / f"{student}.log"
    if isolated is None:
        isolated = isolation(course_dir)[0]
    command, env = autograde_command(assignment, student), grading_env()
    spec_root = Path(tempfile.mkdtemp(prefix="sandbox-kernel-"))
    if isolated:
        command, env = sandboxed_command(command, env, spec_root, settings.limits)
    start = time.perf_counter()
    with safe_files.open_for_writing(log_file, course_dir, "w", encoding="utf-8") as log_out:
        child = subprocess.Popen(command, cwd=course_dir,
                                 env=env, stdout=log_out, stderr=subprocess.STDOUT,
                                 start_new_session=True)  # its kernel shares the group
        try:
            returncode = child.wait(timeout=settings.timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            returncode, timed_out = None, True
    seconds = time.perf_counter() - start
    left = sandbox_cleanup(spec_root / "runtime") if isolated else []
    shutil.rmtree(spec_root, ignore_errors=True)
    log = safe_files.read_regular(log_file, 64 * 2**20).decode("utf-8", errors="replace")
    result = GradeResult(assignment, student, ok=False, seconds=seconds, log_file=log_file,
                         notes=log_notes(log) + left, isolated=isolated, log=log[-20000:])
    if timed_out:
        result.reason = f"grading took longer than {settings.timeout:.0f} s and was stopped"
    elif returncode != 0 or "There was an error processing assignment" in log:
        result.reason = failure_reason(log)
    else:
        result.ok = True
    return result


def submitted_students(course_dir: Path, assignment: str) -> list[str]:
    submitted = Path(course_dir) / "submitted"
    if not submitted.is_dir():
        return []
    return sorted(d.name for d in submitted.iterdir() if (d / assignment).is_dir())


def ensure_in_gradebook(course_dir: Path, assignment: str) -> None:
    """autograde needs the assignment's cells in the gradebook: generate it when missing."""
    from nbgrader.api import MissingEntry
    with gradebook(course_dir) as gb:
        try:
            if gb.find_assignment(assignment).notebooks:
                return
        except MissingEntry:
            pass
    generate(course_dir, assignment)


def add_scores(course_dir: Path, results: list[GradeResult]) -> None:
    from nbgrader.api import MissingEntry
    with gradebook(course_dir) as gb:
        for result in results:
            if not result.ok:
                continue
            try:
                submission = gb.find_submission(result.assignment, result.student)
                result.score, result.max_score = submission.score, submission.max_score
                grades = [g for notebook in submission.notebooks for g in notebook.grades]
                result.tests = len(grades)
                result.lost = [g.name for g in grades if (g.score or 0) < g.max_score]
                result.cells = {g.name: g.auto_score for g in grades}
            except MissingEntry:
                result.ok, result.reason = False, "graded, but no grade in the gradebook"


def drop_grades(course_dir: Path, assignment: str, student: str) -> None:
    """Remove a submission's grades (an earlier grading's) when it cannot be graded now:
    export then gives it 0, not the score of a notebook that is no longer the submission."""
    from nbgrader.api import MissingEntry
    with gradebook(course_dir) as gb:
        try:
            gb.remove_submission(assignment, student)
        except MissingEntry:
            pass


def exercise_scores(course_dir: Path, assignment: str, student: str) -> dict[str, tuple]:
    """grade_id of each graded cell -> (score, max_score) for one submission."""
    with gradebook(course_dir) as gb:
        submission = gb.find_submission(assignment, student)
        return {grade.name: (grade.score, grade.max_score)
                for notebook in submission.notebooks for grade in notebook.grades}


def gradebook_changes(course_dir: Path, assignment: str, state: dict) -> dict[str, str]:
    """student -> what the gradebook holds that no grading run of ours wrote: a manual
    score, or an automatic score other than the one recorded when it was graded."""
    from nbgrader.api import MissingEntry
    changes = {}
    with gradebook(course_dir) as gb:
        for student, entry in state.items():
            try:
                submission = gb.find_submission(assignment, student)
            except MissingEntry:
                changes[student] = "its grades were removed from the gradebook"
                continue
            graded, found = entry.get("cells", {}), []
            for grade in (g for nb in submission.notebooks for g in nb.grades):
                if grade.manual_score is not None:
                    found.append(f"manual score {grade.manual_score:g} on {grade.name} "
                                 f"(autograded {grade.auto_score or 0:g})")
                elif grade.name in graded and grade.auto_score != graded[grade.name]:
                    found.append(f"{grade.name} holds {grade.auto_score or 0:g}, "
                                 f"graded {graded[grade.name] or 0:g}")
            if not found and entry.get("score") is not None and submission.score != entry["score"]:
                found.append(f"score {submission.score:g}, graded {entry['score']:g}")
            if found:
                changes[student] = "; ".join(found)
    return changes


REPORT_COLUMNS = ["student", "status", "score", "max_score", "lost_points_on", "seconds",
                  "reason", "notes", "suspicious", "isolated", "gradebook", "log"]


def write_report(course_dir: Path, assignment: str, results: list[GradeResult],
                 changes: dict[str, str] | None = None) -> Path:
    """reports/<assignment>/autograde.csv: one row per student, updated by each run; the
    'gradebook' column says, for every row, what changed in the gradebook since grading."""
    from . import safe_files
    report = Path(course_dir) / "reports" / assignment / "autograde.csv"
    rows = {}
    try:
        text = safe_files.read_regular(report, 256 * 2**20).decode("utf-8", errors="replace")
        rows = {row["student"]: row for row in csv.DictReader(text.splitlines())
                if safe_files.student_id_problem(row.get("student") or "") is None}
    except (OSError, safe_files.UnsafePath):
        pass
    for r in results:
        rows[r.student] = dict(zip(REPORT_COLUMNS, [
            r.student, "ok" if r.ok else "failed", r.score, r.max_score, " ".join(r.lost),
            f"{r.seconds:.1f}", r.reason, "; ".join(r.notes), " | ".join(r.suspicious),
            "yes" if r.isolated else "NO", "", r.log_file]))
    for student, row in rows.items():
        row["gradebook"] = (changes or {}).get(student, "")
    return safe_files.write_csv(report, REPORT_COLUMNS, [
        {k: rows[s].get(k, "") for k in REPORT_COLUMNS} for s in sorted(rows)], course_dir)


def tamper_report(course_dir: Path, assignment: str, student: str) -> list[str]:
    """Suspicious patterns in the student's answer cells (tamper.py), also written to
    reports/<assignment>/<student>.tamper.txt; an empty list when there are none."""
    from . import safe_files
    from . import tamper
    masters = master_notebooks(course_dir, assignment)
    master = notebook_json(masters[0]) if masters else None
    findings = []
    for path in sorted((Path(course_dir) / "submitted" / student / assignment).glob("*.ipynb")):
        findings += [str(f) for f in tamper.scan_notebook(path, master)]
    out = Path(course_dir) / "reports" / assignment / f"{student}.tamper.txt"
    safe_files.write_text(out, "".join(line + "\n" for line in findings) or "nothing suspicious\n",
                          course_dir)
    return findings


def submission_digest(course_dir: Path, assignment: str, student: str) -> str:
    """sha256 over the student's submitted files: a regrade is needed when it changes."""
    digest = hashlib.sha256()
    folder = Path(course_dir) / "submitted" / student / assignment
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def state_file(course_dir: Path, assignment: str) -> Path:
    return Path(course_dir) / "reports" / assignment / "state.json"


def load_state(course_dir: Path, assignment: str) -> dict:
    """student -> {"digest", "score", "max_score", "cells"} of their last successful grading."""
    from . import safe_files
    try:
        state = json.loads(safe_files.read_regular(state_file(course_dir, assignment), 64 * 2**20))
    except (OSError, ValueError, safe_files.UnsafePath):
        return {}
    return {s: e for s, e in state.items() if isinstance(e, dict)} if isinstance(state, dict) else {}


def save_state(course_dir: Path, assignment: str, state: dict) -> None:
    from . import safe_files
    path = state_file(course_dir, assignment)
    tmp = path.with_suffix(".tmp")
    safe_files.write_text(tmp, json.dumps(state, indent=1, sort_keys=True), course_dir)
    tmp.replace(path)                                  # atomic: a crash never half-writes it


def already_graded(course_dir: Path, assignment: str, student: str, state: dict) -> bool:
    """True when this exact submission was graded successfully before."""
    entry = state.get(student)
    return bool(entry) and entry.get("digest") == submission_digest(
        course_dir, assignment, student) and (
        Path(course_dir) / "autograded" / student / assignment).is_dir()


def _joined(source) -> str:
    return source if isinstance(source, str) else "".join(source)


def edited_cells(submission: dict, released: dict) -> list[str]:
    """grade_ids of the release's locked cells (tests, instructions) whose source the
    submission changed; nbgrader grades with the master's, but the instructor should know.
    Trailing whitespace is ignored (editors and Colab add or drop it)."""
    def locked(notebook):
        cells = {}
        for cell in notebook.get("cells", []):
            meta = (cell.get("metadata") or {}).get("nbgrader") or {}
            if meta.get("grade_id") and (meta.get("locked") or (meta.get("grade") and not meta.get("solution"))):
                cells[meta["grade_id"]] = "\n".join(
                    line.rstrip() for line in _joined(cell.get("source", "")).strip().splitlines())
        return cells
    mine = locked(submission)
    return [grade_id for grade_id, source in locked(released).items()
            if grade_id in mine and mine[grade_id] != source]


def unsafe_places(course_dir: Path, assignment: str, student: str,
                  max_bytes: int) -> list[str]:
    """What nbgrader would write, chmod or copy through for this student: links, special
    files or too much data in submitted/, autograded/ or feedback/ (safe_files.py)."""
    from . import safe_files
    problems = []
    for top in ("submitted", "autograded", "feedback"):
        problems += safe_files.tree_problems(course_dir, Path(top) / student,
                                             max_bytes if top == "submitted" else None)
    problems += safe_files.tree_problems(course_dir, Path("reports") / assignment)
    return problems


def take_in(course_dir: Path, assignment: str, student: str,
            settings: GradingSettings) -> list[str]:
    """Check each submitted notebook (intake.py) and write it back normalised, with its
    lost metadata restored (repair.py); raises intake.Rejected with the reason. Returns
    what was done and which locked cells the student edited."""
    from . import intake
    from . import repair
    from . import safe_files
    notes = []
    folder = Path(course_dir) / "submitted" / student / assignment
    for path in sorted(folder.glob("*.ipynb")):
        notebook, done = intake.read_submission(path, settings.intake)
        release = Path(course_dir) / "release" / assignment / path.name
        released = notebook_json(release) if release.exists() else {}
        notebook, repaired = repair.restore_metadata(notebook, released)
        notes += done + repaired
        notes += [f"cell {grade_id} was edited; the release's was used"
                  for grade_id in edited_cells(notebook, released)]
        safe_files.write_text(path, json.dumps(notebook, indent=1, ensure_ascii=False) + "\n",
                              course_dir)
    return notes


def _grade_one(course_dir: Path, assignment: str, student: str, settings: GradingSettings,
               isolated: bool) -> GradeResult:
    from . import intake
    if not (Path(course_dir) / "submitted" / student / assignment).is_dir():
        return GradeResult(assignment, student, ok=False, reason="no submission collected")
    unsafe = unsafe_places(course_dir, assignment, student, 4 * settings.intake.max_bytes)
    if unsafe:
        return GradeResult(assignment, student, ok=False, isolated=isolated,
                           reason="refused to write through: " + "; ".join(unsafe))
    try:
        notes = take_in(course_dir, assignment, student, settings)
    except intake.Rejected as error:
        drop_grades(course_dir, assignment, student)
        for top in ("autograded", "feedback"):        # checked above: real folders only
            shutil.rmtree(Path(course_dir) / top / student / assignment, ignore_errors=True)
        return GradeResult(assignment, student, ok=False, isolated=isolated,
                           reason=f"not graded: {error}")
    result = grade_student(course_dir, assignment, student, settings, isolated)
    if not result.ok and "database is locked" in result.log:
        result = grade_student(course_dir, assignment, student, settings, isolated)  # again
    result.notes = notes + result.notes
    result.suspicious = tamper_report(course_dir, assignment, student)
    grader = trusted_grader(settings, assignment) if result.ok else None
    if grader is not None:
        result.properties = trusted_scores(course_dir, assignment, student, grader, settings)
        passed = sum(1 for p in result.properties if p.earned == p.points)
        result.notes.append(f"scored outside the kernel: {passed} of "
                            f"{len(result.properties)} properties")
    return result


def trusted_grader(settings: GradingSettings, assignment: str):
    """The assignment's grader module (graders/<assignment>.py), or None: then nbgrader's
    hidden tests in the kernel decide, as before."""
    from . import scoring
    folder = settings.graders_dir
    if folder is None or not (Path(folder) / f"{assignment}.py").is_file():
        return None
    return scoring.load_grader(assignment, folder)


def trusted_scores(course_dir: Path, assignment: str, student: str, grader,
                   settings: GradingSettings):
    """Properties of the submission's answers, checked by the grader outside the kernel
    (scoring.py); also written to reports/<assignment>/<student>.properties.txt."""
    from . import safe_files
    from . import scoring
    [path] = sorted((Path(course_dir) / "submitted" / student / assignment).glob("*.ipynb"))[:1]
    release = notebook_json(Path(course_dir) / "release" / assignment / path.name)
    results = scoring.score_notebook(notebook_json(path), release, grader, settings.limits,
                                     settings.call_timeout)
    lines = [f"{r.grade_id}: {r.name}: {r.earned:g}/{r.points:g}"
             + (f" ({r.message})" if r.message else "") for r in results]
    safe_files.write_text(Path(course_dir) / "reports" / assignment / f"{student}.properties.txt",
                          "\n".join(lines) + "\n", course_dir)
    return results


def apply_trusted_scores(course_dir: Path, results: list[GradeResult]) -> None:
    """Write the trusted scores into the gradebook: the auto score of each graded cell."""
    from . import scoring
    with gradebook(course_dir) as gb:
        for result in results:
            if not (result.ok and result.properties):
                continue
            submission = gb.find_submission(result.assignment, result.student)
            points = scoring.cell_points(result.properties)
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    grade.auto_score = points.get(grade.name, 0.0)
        gb.db.commit()


def grade_safely(course_dir: Path, assignment: str, student: str, settings: GradingSettings,
                 isolated: bool) -> GradeResult:
    """_grade_one, turning anything it raises into this submission's failure."""
    try:
        return _grade_one(course_dir, assignment, student, settings, isolated)
    except Exception as error:                         # noqa: BLE001 (the batch goes on)
        return GradeResult(assignment, student, ok=False, isolated=isolated,
                           reason=f"grading error: {type(error).__name__}: {error}"[:2000])


def autograde(course_dir: Path, assignment: str, students: list[str] | None = None,
              timeout: float | None = None, echo=print, workers: int = 1,
              regrade: bool = True) -> list[GradeResult]:
    """Grade each student's submission, ``workers`` at a time, each in its own process.

    Failures are recorded, never raised. With ``regrade=False`` a submission that was
    graded successfully before and has not changed since is skipped (resume after an
    interruption); its earlier score stays in the gradebook. ``timeout``: seconds per
    submission (default: c.Grading.submission_timeout).
    """
    from . import safe_files
    ensure_in_gradebook(course_dir, assignment)
    settings = grading_settings(course_dir)
    if timeout is not None:
        settings = replace(settings, timeout=timeout)
    students = students or submitted_students(course_dir, assignment)
    bad_ids = {s: safe_files.student_id_problem(s) for s in students}
    students = [s for s in students if not bad_ids[s]]
    for student, problem in bad_ids.items():
        if problem:
            echo(f"  skipped: {problem}")
    isolated, why = isolation(course_dir)
    if not isolated:
        echo(f"WARNING: grading is NOT isolated ({why}): submissions run with your rights, "
             f"can read the masters and the gradebook and reach the network.")
    state = load_state(course_dir, assignment)
    todo = [s for s in students if regrade or not already_graded(course_dir, assignment, s, state)]
    for student in (s for s in students if s not in todo):
        echo(f"  {student}: unchanged since its last grading, skipped")
    by_student = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(grade_safely, course_dir, assignment, s, settings, isolated): s
                   for s in todo}
        for future in as_completed(futures):
            result = future.result()
            by_student[result.student] = result
            echo(f"  {result.student}: {'ok' if result.ok else 'FAILED: ' + result.reason} "
                 f"({result.seconds:.1f} s)")
    results = [by_student[s] for s in todo]            # the order asked for, not of finishing
    apply_trusted_scores(course_dir, results)
    add_scores(course_dir, results)
    for result in results:
        if result.ok:
            state[result.student] = {"digest": submission_digest(course_dir, assignment,
                                                                 result.student),
                                     "score": result.score, "max_score": result.max_score,
                                     "cells": result.cells}
        else:
            state.pop(result.student, None)
    save_state(course_dir, assignment, state)
    changes = gradebook_changes(course_dir, assignment, state)
    for result in results:
        result.gradebook = changes.get(result.student, "")
    for student in (s for s in changes if s not in by_student):
        echo(f"  {student}: changed in the gradebook since its grading: {changes[student]}")
    write_report(course_dir, assignment, results, changes)
    return results


def summary_table(results: list[GradeResult]) -> str:
    width = max([len(r.student) for r in results] + [7])
    lines = [f"{'student':<{width}}  {'assignment':<26} {'score':>11} {'time':>7}  status"]
    for r in results:
        score = f"{r.score:g}/{r.max_score:g}" if r.ok and r.score is not None else "-"
        status = "ok" if r.ok else f"FAILED: {r.reason}"
        if r.ok and r.lost:
            status += (f", lost points on {', '.join(r.lost)}" if len(r.lost) <= 3
                       else f", lost points on {len(r.lost)} of {r.tests} tests")
        if r.notes:
            status += f" ({'; '.join(r.notes)})"
        if r.suspicious:
            status += f" [tamper report: {len(r.suspicious)} suspicious line(s)]"
        if r.gradebook:
            status += f" [gradebook: {r.gradebook}]"
        lines.append(f"{r.student:<{width}}  {r.assignment:<26} {score:>11} {r.seconds:6.1f}s  {status}")
    failed = [r for r in results if not r.ok]
    lines.append(f"{len(results)} submissions, {len(results) - len(failed)} graded, {len(failed)} failed"
                 + (" (a failed submission has no grade in the gradebook, or nbgrader's 0, "
                    "until it is regraded)" if failed else ""))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# feedback and export
# --------------------------------------------------------------------------------------

def feedback_refusals(course_dir: Path, assignment: str) -> tuple[list[str], dict[str, str]]:
    """(students whose feedback can be made, student -> why not): generate_feedback copies
    autograded/<student>/ into feedback/<student>/, so both must hold only plain files of
    a bounded size, inside real folders."""
    from . import safe_files
    max_bytes = 4 * grading_settings(course_dir).intake.max_bytes
    graded = Path(course_dir) / "autograded"
    if graded.is_symlink():
        return [], {"*": f"{graded} is a link"}
    students = sorted(d.name for d in graded.iterdir()
                      if (d / assignment).is_dir()) if graded.is_dir() else []
    ready, refused = [], {}
    for student in students:
        problems = ([safe_files.student_id_problem(student)] if safe_files.student_id_problem(student)
                    else safe_files.tree_problems(course_dir, Path("autograded") / student, max_bytes)
                    + safe_files.tree_problems(course_dir, Path("feedback") / student))
        if problems:
            refused[student] = "; ".join(problems)
        else:
            ready.append(student)
    return ready, refused


def feedback(course_dir: Path, assignment: str) -> tuple[Path, dict[str, str]]:
    """nbgrader generate_feedback for every student whose folders are safe to copy through;
    returns (the feedback folder, student -> why they were left without)."""
    ready, refused = feedback_refusals(course_dir, assignment)
    api = nbgrader_api(course_dir)
    if not refused:
        checked(api.generate_feedback(assignment, force=True),
                f"nbgrader generate_feedback {assignment}")
    else:
        for student in ready:
            checked(api.generate_feedback(assignment, student_id=student, force=True),
                    f"nbgrader generate_feedback {assignment} for {student}")
    return Path(course_dir) / "feedback", refused


def export(course_dir: Path, to: Path) -> Path:
    """nbgrader's CSV export: one row per student and assignment, every cell that a
    spreadsheet would run as a formula written as text."""
    from . import safe_files
    from nbgrader.plugins import CsvExportPlugin
    config = load_config(course_dir)
    plugin = CsvExportPlugin(config=config)
    plugin.to = str(Path(to).resolve())
    with gradebook(course_dir) as gb:
        plugin.export(gb)
    return safe_files.make_csv_safe(Path(plugin.to), Path(plugin.to).parent)


# --------------------------------------------------------------------------------------
# reference submissions and the demo
# --------------------------------------------------------------------------------------

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
    """A copy of a notebook whose solution cell `grade_id` has the given source."""
    notebook = json.loads(json.dumps(notebook))
    cells = [c for c in notebook["cells"]
             if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id]
    if len(cells) != 1 or not cells[0]["metadata"]["nbgrader"].get("solution"):
        raise CourseError(f"no single solution cell with grade_id {grade_id!r}")
    cells[0]["source"] = source
    return notebook


def write_notebook(notebook: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def reference_submissions(course_dir: Path, assignment: str, folder: Path,
                          wrong: dict[str, str] | None = None,
                          correct: dict[str, str] | None = None) -> dict[str, Path]:
    """Write <student>.ipynb files: the master, the blank release, one per wrong variant and,
    given ``correct`` answers written differently, one notebook with all of them."""
    [master] = master_notebooks(course_dir, assignment)
    [blank] = (Path(course_dir) / "release" / assignment).glob("*.ipynb")
    files = {"reference_solution": write_notebook(notebook_json(master), folder / "reference_solution.ipynb"),
             "blank_release": write_notebook(notebook_json(blank), folder / "blank_release.ipynb")}
    if correct:
        notebook = notebook_json(master)
        for grade_id, source in correct.items():
            notebook = with_cell_replaced(notebook, grade_id, source)
        files["written_differently"] = write_notebook(notebook, folder / "written_differently.ipynb")
    for grade_id, source in (wrong or {}).items():
        student = f"wrong_{grade_id}"
        files[student] = write_notebook(with_cell_replaced(notebook_json(master), grade_id, source),
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


# --------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="course.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--course-dir", type=Path, default=COURSE_DIR,
                        help="the nbgrader course folder (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("release", help="generate student versions and copy them to notebooks/")
    p.add_argument("assignment", nargs="?")
    p.add_argument("--all", action="store_true", help="every assignment in source/")
    p.add_argument("--notebooks-dir", type=Path, default=NOTEBOOKS_DIR)

    p = commands.add_parser("check-release", help="exit 1 when notebooks/ is out of date")
    p.add_argument("--notebooks-dir", type=Path, default=NOTEBOOKS_DIR)

    p = commands.add_parser("collect", help="copy submissions (folder or LMS zip) into submitted/")
    p.add_argument("source", type=Path)
    p.add_argument("--assignment")

    p = commands.add_parser("autograde", help="grade student by student, each in its own process")
    p.add_argument("assignment", nargs="?", help="default: every assignment with submissions")
    p.add_argument("--student", action="append", help="only this student (repeatable)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per submission (default: c.Grading.submission_timeout)")
    p.add_argument("--strict", action="store_true", help="exit 1 when any submission failed")
    p.add_argument("--workers", type=int, default=1,
                   help="submissions graded at the same time (default 1; on a 2-core machine 2)")
    p.add_argument("--resume", action="store_true",
                   help="skip submissions graded successfully before and unchanged since")

    p = commands.add_parser("feedback", help="nbgrader generate_feedback (HTML in feedback/)")
    p.add_argument("assignment", nargs="?")

    p = commands.add_parser("export", help="grades CSV (nbgrader export)")
    p.add_argument("--to", type=Path, default=Path("grades.csv"))

    p = commands.add_parser("demo", help="grade the reference submissions in build/demo/")
    p.add_argument("--work-dir", type=Path, default=REPO_DIR / "build" / "demo")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    course = args.course_dir.resolve()
    try:
        if args.command == "release":
            if not args.all and not args.assignment:
                raise CourseError("name an assignment or pass --all")
            for path in release(course, pick_assignments(course, None if args.all else args.assignment),
                                args.notebooks_dir):
                print(f"wrote {path}")
        elif args.command == "check-release":
            problems = check_release(course, args.notebooks_dir)
            if problems:
                print("The student notebooks are out of date with their masters:\n  "
                      + "\n  ".join(problems)
                      + "\nRegenerate them with: python autograder/course.py release --all")
                return 1
            print(f"{args.notebooks_dir} is in sync with {course / 'source'}")
        elif args.command == "collect":
            collected = collect(course, args.source, args.assignment)
            for student, path in sorted(collected.items()):
                print(f"{student}: {path}")
            for what, why in collected.skipped:
                print(f"skipped {what}: {why}")
            print(f"collected {len(collected)} submissions"
                  + (f", skipped {len(collected.skipped)} (listed above)" if collected.skipped else ""))
        elif args.command == "autograde":
            assignments = pick_assignments(course, args.assignment)
            results = []
            for assignment in assignments:
                students = submitted_students(course, assignment)
                if args.student:  # named students; for a named assignment, even without submission
                    students = args.student if args.assignment else [s for s in args.student if s in students]
                if not students:
                    if args.assignment:
                        print(f"{assignment}: no submissions in {course / 'submitted'}")
                    continue
                print(f"{assignment}: autograding {len(students)} submissions")
                results += autograde(course, assignment, students, timeout=args.timeout,
                                     workers=args.workers, regrade=not args.resume)
            if results:
                print(summary_table(results))
                print(f"per-student logs and autograde.csv: {course / 'reports'}")
            if args.strict and not all(r.ok for r in results):
                return 1
        elif args.command == "feedback":
            for assignment in pick_assignments(course, args.assignment):
                if submitted_students(course, assignment):
                    folder, refused = feedback(course, assignment)
                    for student, why in refused.items():
                        print(f"{assignment}: no feedback for {student}: {why}")
                    print(f"{assignment}: feedback in {folder}")
        elif args.command == "export":
            print(f"wrote {export(course, args.to)}")
        elif args.command == "demo":
            return demo(course, args.work_dir)
    except CourseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.modules.setdefault("rfc3987_syntax", None)  # see SKIP_SLOW_IMPORTS
    sys.exit(main())
