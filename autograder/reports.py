"""What a grading run leaves for the instructor and the students: the per-assignment
report (autograde.csv), the tamper report, the summary table, the feedback with every
property's result, and the grades CSV."""
from __future__ import annotations

import csv
import html
from pathlib import Path

from .course import (
    checked, gradebook, grading_settings, load_config, master_notebooks, nbgrader_api,
    nbgrader_meta, notebook_from_text, notebook_text, read_notebook)


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


def report_rows(course_dir: Path, assignment: str) -> dict[str, dict]:
    """student -> row of reports/<assignment>/autograde.csv ({} when there is none yet);
    rows whose student id could not be one are left out."""
    from . import safe_files
    report = Path(course_dir) / "reports" / assignment / "autograde.csv"
    try:
        text = safe_files.read_regular(report, 256 * 2**20).decode("utf-8", errors="replace")
    except (OSError, safe_files.UnsafePath):
        return {}
    return {row["student"]: row for row in csv.DictReader(text.splitlines())
            if safe_files.student_id_problem(row.get("student") or "") is None}


def write_report(course_dir: Path, assignment: str, results: list[GradeResult],
                 changes: dict[str, str] | None = None) -> Path:
    """reports/<assignment>/autograde.csv: one row per student, updated by each run; the
    'gradebook' column says, for every row, what changed in the gradebook since grading."""
    from . import safe_files
    report = Path(course_dir) / "reports" / assignment / "autograde.csv"
    rows = report_rows(course_dir, assignment)
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
    master = read_notebook(masters[0]) if masters else None
    findings = []
    for path in sorted((Path(course_dir) / "submitted" / student / assignment).glob("*.ipynb")):
        findings += [str(f) for f in tamper.scan_notebook(path, master)]
    out = Path(course_dir) / "reports" / assignment / f"{student}.tamper.txt"
    safe_files.write_text(out, "".join(line + "\n" for line in findings) or "nothing suspicious\n",
                          course_dir)
    return findings


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
                 + (" (a failed submission has no grade in the gradebook, so the export "
                    "gives it 0, until it is regraded)" if failed else ""))
    return "\n".join(lines)


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


def property_lines(results) -> str:
    """One exercise's scored properties, in Markdown: what passed, what failed and why."""
    earned, points = sum(r.earned for r in results), sum(r.points for r in results)
    lines = [f"**Scored by the grader, outside your notebook: {earned:g} of {points:g} "
             f"points** (inputs drawn at grading time)", ""]
    for r in results:
        mark = "passed" if r.earned == r.points else "FAILED"
        # the message may quote the student's own error: never let it be markup
        why = f": {html.escape(r.message)}" if r.message and r.earned < r.points else ""
        lines.append(f"- {mark} ({r.earned:g}/{r.points:g}) {r.name}{why}")
    return "\n".join(lines) + "\n"


def annotate_feedback(course_dir: Path, assignment: str, student: str, results) -> None:
    """Append each exercise's property results to its test cell in the autograded notebook,
    so that nbgrader's feedback shows them under the cell the student ran."""
    from nbformat.v4 import new_output
    from . import safe_files
    by_cell: dict[str, list] = {}
    for r in results:
        by_cell.setdefault(r.grade_id, []).append(r)
    folder = Path(course_dir) / "autograded" / student / assignment
    for path in sorted(folder.glob("*.ipynb")):
        notebook = notebook_from_text(safe_files.read_regular(path, 256 * 2**20).decode("utf-8"))
        for cell in notebook.cells:
            grade_id = nbgrader_meta(cell).get("grade_id")
            if cell.cell_type == "code" and grade_id in by_cell:
                text = property_lines(by_cell[grade_id])
                cell.outputs.append(new_output("display_data", {"text/markdown": text,
                                                                "text/plain": text}))
        safe_files.write_text(path, notebook_text(notebook), course_dir)
