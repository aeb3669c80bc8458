"""autograde: student by student, each in a child process with its kernel in the sandbox;
the trusted scorer (scoring.py) decides the points; one broken submission never stops
the batch, and every failure is recorded with its reason."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path

from .course import (
    CourseError, GradingSettings, cell_source, gradebook, grading_env, grading_settings,
    nbgrader_command, nbgrader_meta, notebook_text, read_notebook, submitted_students)
from .release import generate
from .reports import annotate_feedback, gradebook_changes, tamper_report, write_report


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
    trusted: bool = False                                 # points from the trusted scorer


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


def edited_cells(submission: dict, released: dict) -> list[str]:
    """grade_ids of the release's locked cells (tests, instructions) whose source the
    submission changed; nbgrader grades with the master's, but the instructor should know.
    Trailing whitespace is ignored (editors and Colab add or drop it)."""
    def locked(notebook):
        cells = {}
        for cell in notebook.get("cells", []):
            meta = nbgrader_meta(cell)
            if meta.get("grade_id") and (meta.get("locked") or (meta.get("grade") and not meta.get("solution"))):
                cells[meta["grade_id"]] = "\n".join(
                    line.rstrip() for line in cell_source(cell).strip().splitlines())
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
        released = read_notebook(release) if release.exists() else {}
        notebook, repaired = repair.restore_metadata(notebook, released)
        notes += done + repaired
        notes += [f"cell {grade_id} was edited; the release's was used"
                  for grade_id in edited_cells(notebook, released)]
        safe_files.write_text(path, notebook_text(notebook), course_dir)
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
    grader = trusted_grader(settings, assignment)
    if grader is None:                         # the kernel's run would decide: never
        return GradeResult(assignment, student, ok=False, isolated=isolated, notes=notes,
                           reason=f"no trusted grader {assignment}.py in {settings.graders_dir}: "
                                  "nothing may decide the points")
    with ThreadPoolExecutor(max_workers=1) as scorer:  # scored while nbgrader runs the notebook
        scoring = scorer.submit(trusted_scores, course_dir, assignment, student, grader,
                                settings)
        result = grade_student(course_dir, assignment, student, settings, isolated)
        if not result.ok and "database is locked" in result.log:
            result = grade_student(course_dir, assignment, student, settings, isolated)
        properties = scoring.result()
    result.notes = notes + result.notes
    result.suspicious = tamper_report(course_dir, assignment, student)
    if result.ok:
        result.properties, result.trusted = properties, True
        annotate_feedback(course_dir, assignment, student, result.properties)
        passed = sum(1 for p in result.properties if p.earned == p.points)
        result.notes.append(f"scored outside the kernel: {passed} of "
                            f"{len(result.properties)} properties")
    return result


def trusted_grader(settings: GradingSettings, assignment: str):
    """The assignment's grader module (graders/<assignment>.py), or None when it has none
    (its submissions then fail: the kernel's run of the test cells never decides)."""
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
    from . import sandbox
    from . import scoring
    [path] = sorted((Path(course_dir) / "submitted" / student / assignment).glob("*.ipynb"))[:1]
    release = read_notebook(Path(course_dir) / "release" / assignment / path.name)
    # in the sandbox wherever bubblewrap runs (COURSE_SANDBOX=off included); elsewhere a
    # process of its own (contained.py), as the kernel's run is then not isolated either
    results = scoring.score_notebook(read_notebook(path), release, grader, settings.limits,
                                     settings.call_timeout,
                                     contained=not sandbox.available()[0])
    lines = [f"{r.grade_id}: {r.name}: {r.earned:g}/{r.points:g}"
             + (f" ({r.message})" if r.message else "") for r in results]
    safe_files.write_text(Path(course_dir) / "reports" / assignment / f"{student}.properties.txt",
                          "\n".join(lines) + "\n", course_dir)
    return results


def apply_trusted_scores(course_dir: Path, results: list[GradeResult]) -> None:
    """Write the trusted scores into the gradebook: the auto score of each graded cell, 0
    where no property of the cell passed. What the kernel's run of the test cells gave
    (which the submission could forge) is overwritten for every cell."""
    from . import scoring
    with gradebook(course_dir) as gb:
        for result in results:
            if not (result.ok and result.trusted):
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
    for result in results:
        if not result.ok:      # no grade, never one the kernel's run wrote before it failed
            drop_grades(course_dir, assignment, result.student)
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
