"""``python -m autograder COMMAND``: the instructor's commands, each a thin call into its
module.

    python -m autograder release --all          # records -> measured figures; masters -> notebooks/
    python -m autograder check-release          # exit 1 when notebooks/ or the figures are out of date
    python -m autograder collect SUBMISSIONS.zip --assignment 01_simclr_ntxent
    python -m autograder autograde 01_simclr_ntxent [--workers 2] [--shard K/N]
    python -m autograder merge 01_simclr_ntxent SHARD_DIR...   # shards' gradings -> this course
    python -m autograder feedback 01_simclr_ntxent
    python -m autograder export --to grades.csv
    python -m autograder gradescope 01_simclr_ntxent build/gradescope_01.zip
    python -m autograder demo                   # grade the reference submissions (build/demo/)

nbgrader does the work (generate_assignment, zip_collect, autograde, generate_feedback,
export); the grader adds what it lacks. Run it from the repository root with the
project's Python (.venv/bin/python).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .collect import collect
from .course import (
    COURSE_DIR, CourseError, NOTEBOOKS_DIR, REPO_DIR, pick_assignments,
    submitted_students)
from .demo import demo
from .grading import autograde
from . import gradescope, links, measured, shards
from .publish import publish
from .release import check_release, release
from .reports import export, feedback, summary_table


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__.split("\n\n")[0])
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
    p.add_argument("--shard", metavar="K/N",
                   help="grade only the K-th of N stable slices of the students (a machine "
                        "of a pool; then `merge`)")

    p = commands.add_parser("merge", help="fold shards' gradings into this course")
    p.add_argument("assignment")
    p.add_argument("shard_dirs", nargs="+", type=Path, help="the shards' course folders")

    p = commands.add_parser("feedback", help="nbgrader generate_feedback (HTML in feedback/)")
    p.add_argument("assignment", nargs="?")

    p = commands.add_parser("export", help="grades CSV (nbgrader export)")
    p.add_argument("--to", type=Path, default=Path("grades.csv"))

    p = commands.add_parser("publish", help="write the student repository (no masters, graders or answers)")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--repo-url", default=None,
                   help="where students get it (default: pyproject.toml's [project.urls] Repository)")

    p = commands.add_parser("gradescope", help="write a Gradescope autograder zip")
    p.add_argument("assignment")
    p.add_argument("out_zip", type=Path)
    p.add_argument("--visibility", default="after_published",
                   help="of each test's result: hidden, after_due_date, after_published "
                        "(default) or visible")

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
            for path in measured.write(course):
                print(f"wrote the measured figures of {path}")
            url = links.repo_url()
            for path in links.write(course, url):
                print(f"pointed the Colab install line and links of {path} at {url}")
            for path in release(course, pick_assignments(course, None if args.all else args.assignment),
                                args.notebooks_dir):
                print(f"wrote {path}")
        elif args.command == "check-release":
            problems = (measured.check(course) + links.check(course)
                        + check_release(course, args.notebooks_dir))
            if problems:
                print("The student notebooks or the measured figures are out of date:\n  "
                      + "\n  ".join(problems)
                      + "\nRegenerate them with: python -m autograder release --all")
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
            shard = shards.parse_shard(args.shard) if args.shard else None
            if shard and not args.assignment:
                raise CourseError("--shard grades one assignment: name it")
            results = []
            for assignment in assignments:
                students = submitted_students(course, assignment)
                if args.student:  # named students; for a named assignment, even without submission
                    students = args.student if args.assignment else [s for s in args.student if s in students]
                if shard:
                    students = shards.students_of(students, *shard)
                    print(f"shard {args.shard}: {len(students)} students")
                    if not students:
                        shards.write_manifest(course, assignment, args.shard, [])
                if not students:
                    if args.assignment:
                        print(f"{assignment}: no submissions in {course / 'submitted'}")
                    continue
                print(f"{assignment}: autograding {len(students)} submissions")
                graded = autograde(course, assignment, students, timeout=args.timeout,
                                   workers=args.workers, regrade=not args.resume)
                if shard:
                    shards.write_manifest(course, assignment, args.shard, graded)
                results += graded
            if results:
                print(summary_table(results))
                print(f"per-student logs and autograde.csv: {course / 'reports'}")
            if args.strict and not all(r.ok for r in results):
                return 1
        elif args.command == "merge":
            [assignment] = pick_assignments(course, args.assignment)
            outcome = shards.merge(course, assignment, args.shard_dirs)
            print(f"merged {len(outcome)} students into {course}: {sum(outcome.values())} "
                  f"graded, {len(outcome) - sum(outcome.values())} failed (their reasons: "
                  f"{course / 'reports' / assignment / 'autograde.csv'})")
        elif args.command == "feedback":
            for assignment in pick_assignments(course, args.assignment):
                if submitted_students(course, assignment):
                    folder, refused = feedback(course, assignment)
                    for student, why in refused.items():
                        print(f"{assignment}: no feedback for {student}: {why}")
                    print(f"{assignment}: feedback in {folder}")
        elif args.command == "export":
            print(f"wrote {export(course, args.to)}")
        elif args.command == "publish":
            url = args.repo_url or links.repo_url()
            files = publish(course, args.out_dir, url)
            print(f"wrote {len(files)} files for students in {args.out_dir.resolve()} "
                  f"(pointed at {url}); no line of a solution or of the grader is among them")
        elif args.command == "gradescope":
            [assignment] = pick_assignments(course, args.assignment)
            path = gradescope.build(course, assignment, args.out_zip, args.visibility)
            print(f"wrote {path}: upload it as the autograder of {assignment} on Gradescope "
                  f"(Ubuntu base image)")
        elif args.command == "demo":
            return demo(course, args.work_dir)
    except CourseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
