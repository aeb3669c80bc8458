"""Grading throughput: N submissions of an assignment graded serially and with parallel
workers, side by side on this machine; seconds per submission and the ratio.

The submissions are copies of the master, the blank release and the wrong variants of
tests/submissions/ in turn, collected into a fresh course copy for each run. Usage:

    .venv/bin/python benchmarks/grading_throughput.py --assignment 01_simclr_ntxent -n 50 --workers 2
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "autograder"))
import course  # noqa: E402


def make_submissions(course_dir: Path, assignment: str, folder: Path, n: int) -> None:
    kinds = course.reference_submissions(course_dir, assignment, folder / "kinds",
                                         course.wrong_variants(assignment))
    paths = list(kinds.values())
    for i in range(n):
        shutil.copyfile(paths[i % len(paths)], folder / f"student{i:03d}.ipynb")
    shutil.rmtree(folder / "kinds")


def run(assignment: str, n: int, workers: int, work: Path) -> float:
    course_dir = course.copy_course(course.COURSE_DIR, work / f"course_w{workers}")
    course.generate(course_dir, assignment)
    folder = work / f"subs_w{workers}"
    folder.mkdir()
    make_submissions(course_dir, assignment, folder, n)
    course.collect(course_dir, folder, assignment)
    start = time.perf_counter()
    results = course.autograde(course_dir, assignment, workers=workers, echo=lambda *_: None)
    seconds = time.perf_counter() - start
    failed = [r.student for r in results if not r.ok]
    print(f"{assignment}: {n} submissions, {workers} worker(s): {seconds:.1f} s, "
          f"{seconds / n:.2f} s per submission, isolated: {all(r.isolated for r in results)}"
          + (f", failed: {failed}" if failed else ""), flush=True)
    return seconds


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--assignment", action="append", help="repeatable (default: every one)")
    p.add_argument("-n", type=int, default=50)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    for assignment in args.assignment or course.source_assignments(course.COURSE_DIR):
        with tempfile.TemporaryDirectory() as tmp:
            serial = run(assignment, args.n, 1, Path(tmp))
            parallel = run(assignment, args.n, args.workers, Path(tmp))
            print(f"{assignment}: serial / parallel = {serial / parallel:.2f}x", flush=True)


if __name__ == "__main__":
    main()
