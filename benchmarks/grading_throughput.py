"""Grading throughput: N submissions of an assignment graded serially and with parallel
workers, side by side on this machine; seconds per submission and the ratio.

The submissions are copies of the master, the blank release and the wrong variants of
autograder/demo_submissions/ in turn, collected into a fresh course copy for each run. Usage:

    .venv/bin/python benchmarks/grading_throughput.py --assignment 01_simclr_ntxent -n 50 --workers 2

With ``--compare REV`` the same batches are also graded by the kit as it was at commit REV
(checked out with ``git worktree`` into a temporary folder), each run in a process of its
own, before and after in turn: what a change (the grading sandbox) costs, side by side.

    .venv/bin/python benchmarks/grading_throughput.py --assignment 01_simclr_ntxent -n 10 --compare f81e313
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]


def load_kit():
    """The grader of the checkout a ``--one`` run was started for (on its PYTHONPATH): the
    package layout (``python -m autograder``) or the older single ``course.py``."""
    try:
        from autograder import collect, course, demo, grading, release
    except ImportError:
        import course
        return course
    return SimpleNamespace(COURSE_DIR=course.COURSE_DIR, copy_course=release.copy_course,
                           generate=release.generate, collect=collect.collect,
                           autograde=grading.autograde, wrong_variants=demo.wrong_variants,
                           reference_submissions=demo.reference_submissions)


def make_submissions(course, course_dir: Path, assignment: str, folder: Path, n: int) -> None:
    kinds = course.reference_submissions(course_dir, assignment, folder / "kinds",
                                         course.wrong_variants(assignment))
    paths = list(kinds.values())
    for i in range(n):
        shutil.copyfile(paths[i % len(paths)], folder / f"student{i:03d}.ipynb")
    shutil.rmtree(folder / "kinds")


def run(assignment: str, n: int, workers: int, work: Path) -> float:
    course = load_kit()
    course_dir = course.copy_course(course.COURSE_DIR, work / f"course_w{workers}")
    course.generate(course_dir, assignment)
    folder = work / f"subs_w{workers}"
    folder.mkdir()
    make_submissions(course, course_dir, assignment, folder, n)
    course.collect(course_dir, folder, assignment)
    start = time.perf_counter()
    results = course.autograde(course_dir, assignment, workers=workers, echo=lambda *_: None)
    seconds = time.perf_counter() - start
    failed = [r.student for r in results if not r.ok]
    print(f"{assignment}: {n} submissions, {workers} worker(s): {seconds:.1f} s, "
          f"{seconds / n:.2f} s per submission, isolated: {all(r.isolated for r in results)}"
          + (f", failed: {failed}" if failed else ""), flush=True)
    master = next(r for r in results if r.student == "student000")   # the master's copy
    if not master.ok or master.score != master.max_score:
        raise SystemExit(f"the master scored {master.score} of {master.max_score} "
                         f"({master.reason or 'graded'}): these times are not of grading")
    return seconds


def own_course_utils(tree: Path, command: list[str]) -> list[str]:
    """``command`` run where ``tree``'s course_utils stands at this checkout's path.

    The environment's editable install maps ``import course_utils`` to this checkout, and
    the grading sandbox passes no PYTHONPATH, so the kernels of an older tree would import
    this checkout's course_utils (which the sandbox does not mount) and fail every cell.
    A private mount namespace (root and util-linux's unshare) binds the tree's copy there."""
    if tree.resolve() == ROOT.resolve():
        return command
    if os.geteuid() != 0 or not shutil.which("unshare"):
        raise SystemExit("--compare needs root and unshare(1): an older tree's grading kernels "
                         "must import its own course_utils")
    bind = f"mount --bind {tree / 'course_utils'} {ROOT / 'course_utils'}"
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            f'{bind} && exec "$@"', "sh", *command]


def one_run(tree: Path, assignment: str, n: int, workers: int) -> dict:
    """run() in a fresh process that grades with the kit of ``tree``."""
    command = own_course_utils(tree, [
        sys.executable, __file__, "--tree", str(tree), "--one", "--assignment", assignment,
        "-n", str(n), "--workers", str(workers)])
    with tempfile.TemporaryDirectory() as links:
        # the tree's grader package (or its older single course.py), never its course_utils:
        # that one is imported at this checkout's path, as the sandbox's kernels import it
        (Path(links) / "autograder").symlink_to(tree / "autograder")
        paths = [links, str(tree / "autograder")]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
        out = subprocess.run(command, capture_output=True, text=True, check=True, env=env,
                             cwd=tree).stdout
    return json.loads(out.strip().splitlines()[-1])


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def compare(assignment: str, n: int, workers: int, revision: str) -> None:
    """Before (``revision``) and after (this checkout), serial and parallel, in turn."""
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        git("worktree", "add", "--detach", str(before), revision)
        try:
            times = {}
            for w in (1, workers):
                for label, tree in (("before", before), ("after", ROOT)):
                    times[label, w] = one_run(tree, assignment, n, w)["seconds"]
        finally:
            git("worktree", "remove", "--force", str(before))
    print(f"\n{assignment}, {n} submissions, commit {git('rev-parse', '--short', revision)} "
          f"(before) against {git('rev-parse', '--short', 'HEAD')}"
          f"{' with uncommitted changes' if git('status', '--porcelain', '--untracked-files=no') else ''}"
          f" (after), {platform.machine()}, {os.cpu_count()} cores:")
    print(f"| workers | before s/submission | after s/submission | after / before |")
    print(f"|---|---|---|---|")
    for w in (1, workers):
        b, a = times["before", w] / n, times["after", w] / n
        print(f"| {w} | {b:.2f} | {a:.2f} | {a / b:.2f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--assignment", action="append", help="repeatable (default: every one)")
    p.add_argument("-n", type=int, default=50)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--compare", metavar="REV", help="also grade with the kit at commit REV")
    p.add_argument("--tree", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    assignments = args.assignment or sorted(
        d.name for d in (ROOT / "autograder" / "source").iterdir() if any(d.glob("*.ipynb")))
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            seconds = run(assignments[0], args.n, args.workers, Path(tmp))
        print(json.dumps({"seconds": seconds}))
        return
    for assignment in assignments:
        if args.compare:
            compare(assignment, args.n, args.workers, args.compare)
            continue
        serial = one_run(ROOT, assignment, args.n, 1)["seconds"]
        parallel = one_run(ROOT, assignment, args.n, args.workers)["seconds"]
        print(f"{assignment}: serial / parallel = {serial / parallel:.2f}x", flush=True)


if __name__ == "__main__":
    main()
