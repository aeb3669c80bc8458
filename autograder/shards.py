"""Sharded batches (issue 19): a pool of grading machines, each grading one slice.

    python -m autograder --course-dir shard-1 autograde 01_simclr_ntxent --shard 1/4
    ...                                                                  --shard 4/4
    python -m autograder merge 01_simclr_ntxent shard-1 shard-2 shard-3 shard-4

Each machine grades, in a copy of the course folder, the students whose slice is K: a
student's slice is a hash of their id, so it never depends on who else submitted. The
shard writes ``reports/<assignment>/shard.json``, the students it graded and how. ``merge``
folds each shard's gradings into the course: the trusted scores into the gradebook, the
autograded notebooks, the reports and the resume state. ``examples/grade_shard.sh`` runs a
shard as a Slurm array task or a CI matrix job.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from .course import CourseError, gradebook

MANIFEST = "shard.json"


def parse_shard(text: str) -> tuple[int, int]:
    """"K/N" -> (K, N) with 1 <= K <= N."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise CourseError(f"--shard {text!r}: write K/N, e.g. 2/4") from None
    if not 1 <= k <= n:
        raise CourseError(f"--shard {text!r}: K must be between 1 and N")
    return k, n


def slice_of(student: str, n: int) -> int:
    """The slice (1..n) of a student id: stable, whoever else submitted."""
    return int(hashlib.sha256(student.encode()).hexdigest(), 16) % n + 1


def students_of(students: list[str], k: int, n: int) -> list[str]:
    return [s for s in students if slice_of(s, n) == k]


def write_manifest(course_dir: Path, assignment: str, shard: str, results) -> Path:
    """reports/<assignment>/shard.json: which students this shard graded, and how."""
    from . import safe_files
    path = Path(course_dir) / "reports" / assignment / MANIFEST
    safe_files.write_text(path, json.dumps({
        "assignment": assignment, "shard": shard,
        "students": {r.student: {"ok": r.ok, "reason": r.reason} for r in results}},
        indent=1) + "\n", course_dir)
    return path


def read_manifest(shard_dir: Path, assignment: str) -> dict:
    from . import safe_files
    path = Path(shard_dir) / "reports" / assignment / MANIFEST
    try:
        manifest = json.loads(safe_files.read_regular(path, 64 * 2**20))
    except (OSError, ValueError, safe_files.UnsafePath) as error:
        raise CourseError(f"{shard_dir}: no shard of {assignment} ({path}: {error})") from None
    if not isinstance(manifest, dict) or manifest.get("assignment") != assignment \
            or not isinstance(manifest.get("students"), dict):
        raise CourseError(f"{path} is not a shard of {assignment}")
    students = manifest["students"]
    bad = [s for s in students if safe_files.student_id_problem(s)]
    if bad:
        raise CourseError(f"{path} names students that cannot be: {bad[:3]}")
    return manifest


def copy_tree(shard_dir: Path, course_dir: Path, relative: Path) -> None:
    """shard/relative -> course/relative, replaced; refused when it holds links or special
    files (safe_files.tree_problems)."""
    from . import safe_files
    source = Path(shard_dir) / relative
    if not source.exists():
        return
    problems = safe_files.tree_problems(shard_dir, relative)
    if problems:
        raise CourseError(f"{source}: " + "; ".join(problems))
    target = Path(course_dir) / relative
    try:
        safe_files.real_folders(course_dir, target)
    except safe_files.UnsafePath as error:
        raise CourseError(str(error)) from None
    if target.is_dir():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target)


def copy_student_reports(shard_dir: Path, course_dir: Path, assignment: str,
                         student: str) -> None:
    """The student's log, scored properties and tamper report (plain files only)."""
    from . import safe_files
    for suffix in (".log", ".properties.txt", ".tamper.txt"):
        name = Path("reports") / assignment / f"{student}{suffix}"
        try:
            data = safe_files.read_regular(Path(shard_dir) / name, 64 * 2**20)
        except (OSError, safe_files.UnsafePath):
            continue
        safe_files.write_text(Path(course_dir) / name, data.decode("utf-8", "replace"),
                              course_dir)


def copy_grades(shard_dir: Path, course_dir: Path, assignment: str, student: str) -> None:
    """The student's submission and auto scores, from the shard's gradebook to the course's."""
    from nbgrader.api import MissingEntry
    with gradebook(shard_dir) as gb:
        submission = gb.find_submission(assignment, student)
        scores = {(nb.name, g.name): g.auto_score for nb in submission.notebooks
                  for g in nb.grades}
        timestamp = submission.timestamp
    with gradebook(course_dir) as gb:
        gb.update_or_create_student(student)
        try:
            target = gb.find_submission(assignment, student)
        except MissingEntry:
            target = gb.add_submission(assignment, student)
        target.timestamp = timestamp
        for nb in target.notebooks:
            for grade in nb.grades:
                grade.auto_score = scores.get((nb.name, grade.name), 0.0)
        gb.db.commit()


def merge_reports(shard_dir: Path, course_dir: Path, assignment: str, students: set) -> None:
    """The shard's rows of autograde.csv replace the course's rows of the same students."""
    from . import reports, safe_files
    merged = reports.report_rows(course_dir, assignment)
    merged.update({s: r for s, r in reports.report_rows(shard_dir, assignment).items()
                   if s in students})
    safe_files.write_csv(Path(course_dir) / "reports" / assignment / "autograde.csv",
                         reports.REPORT_COLUMNS,
                         [{k: merged[s].get(k, "") for k in reports.REPORT_COLUMNS}
                          for s in sorted(merged)], course_dir)


def merge(course_dir: Path, assignment: str, shard_dirs: list[Path], echo=print) -> dict:
    """Fold the shards' gradings of ``assignment`` into ``course_dir``; student -> ok."""
    from . import grading
    manifests = [(Path(d), read_manifest(d, assignment)) for d in shard_dirs]
    seen: dict[str, Path] = {}
    for folder, manifest in manifests:
        for student in manifest["students"]:
            if student in seen:
                raise CourseError(f"{student} was graded by two shards, {seen[student]} and "
                                  f"{folder}: merge one of them")
            seen[student] = folder
    grading.ensure_in_gradebook(course_dir, assignment)
    state = grading.load_state(course_dir, assignment)
    outcome = {}
    for folder, manifest in manifests:
        shard_state = grading.load_state(folder, assignment)
        for student, how in sorted(manifest["students"].items()):
            ok = isinstance(how, dict) and how.get("ok") is True and student in shard_state
            if ok:
                for top in ("autograded", "feedback"):
                    copy_tree(folder, course_dir, Path(top) / student / assignment)
                copy_student_reports(folder, course_dir, assignment, student)
                copy_grades(folder, course_dir, assignment, student)
                state[student] = shard_state[student]
            else:
                grading.drop_grades(course_dir, assignment, student)
                state.pop(student, None)
            outcome[student] = ok
        merge_reports(folder, course_dir, assignment, set(manifest["students"]))
        echo(f"{folder}: {len(manifest['students'])} students of shard {manifest.get('shard')}")
    grading.save_state(course_dir, assignment, state)
    return outcome
