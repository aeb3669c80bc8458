"""Gradescope (issue 19): the autograder zip, and the grading of one submission inside it.

    python -m autograder gradescope 01_simclr_ntxent build/gradescope_01.zip

writes what Gradescope's "Zip file upload" wants: ``setup.sh`` (run once, as root, when
the image is built), ``run_autograder`` (run once per submission, as root) and ``kit/``:
this package, the assignment's grader, its release and ``config.json``. ``setup.sh`` makes
``kit/`` root's alone, and the student's code runs in the sandbox or as a user of its own
(below), so no hidden property or grader is where it can read one; nothing of the kit goes
to a student.

In the container, ``run_autograder`` calls :func:`run`: the notebook in
``<root>/submission/`` is read and mended as ``autograde`` does (intake.py, repair.py),
scored by the same trusted scorer (scoring.py) in the bubblewrap sandbox where the container
allows one, else as a process of a user of its own (contained.py: the container is the
isolation, and the results say so), and ``<root>/results/results.json`` is written in
Gradescope's format: one test per named property. ``<root>`` is ``/autograder`` unless
``GRADESCOPE_ROOT`` says otherwise. Whatever the submission, a results file is written.
"""
from __future__ import annotations

import json
import os
import sys
import time
import zipfile
from dataclasses import asdict
from pathlib import Path

ROOT_ENV = "GRADESCOPE_ROOT"
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
MAX_FILES = 200                      # files looked at in the submission folder

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (Ubuntu).
set -euo pipefail
cd "$(dirname "$0")"
apt-get update -qq
apt-get install -y -qq python3 python3-pip bubblewrap >/dev/null
export PIP_BREAK_SYSTEM_PACKAGES=1     # Ubuntu 24.04's Python refuses pip otherwise (PEP 668)
PIP="python3 -m pip install --quiet"
# torch's CPU build (a grading container has no GPU), then the course's helpers
$PIP --index-url https://download.pytorch.org/whl/cpu torch torchvision
$PIP ./kit/course "nbformat>=5.9"
# the grader, the hidden properties and the release: root's alone (the student's code runs
# as a user of its own, or in the sandbox, and reads none of it)
chmod -R go-rwx kit
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this once per submission, as root. The grader writes
# $ROOT/results/results.json whatever the submission; should Python itself not start, the
# lines at the end write a 0 with the reason, so that no run ends without a result.
ROOT="${GRADESCOPE_ROOT:-/autograder}"
KIT="$(cd "$(dirname "$0")" && pwd)/kit"
chmod -R go-rwx "$KIT" 2>/dev/null
PYTHONPATH="$KIT" "${COURSE_PYTHON:-python3}" -m autograder.gradescope "$ROOT" "$KIT"
if [ ! -s "$ROOT/results/results.json" ]; then
    mkdir -p "$ROOT/results"
    echo '{"score": 0, "output": "The autograder did not run: nothing was graded. Tell your instructor."}' \\
        > "$ROOT/results/results.json"
fi
"""


# ---------------------------------------------------------------------------- the zip


def kit_files(grader: Path, release: Path) -> dict[str, Path]:
    """zip name -> file: the grader package (its modules, one assignment's grader), the
    release, and what installs course_utils."""
    package = Path(__file__).resolve().parent
    repo = package.parent
    files = {f"kit/autograder/{p.name}": p for p in sorted(package.glob("*.py"))}
    files[f"kit/autograder/graders/{grader.name}"] = grader
    files[f"kit/release/{release.name}"] = release
    files["kit/course/pyproject.toml"] = repo / "pyproject.toml"
    files["kit/course/README.md"] = repo / "README.md"
    for path in sorted((repo / "course_utils").rglob("*.py")):
        files[f"kit/course/{path.relative_to(repo).as_posix()}"] = path
    return files


def _add_text(archive: zipfile.ZipFile, name: str, text: str, executable: bool = False):
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = (0o100755 if executable else 0o100644) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, text)


def build(course_dir: Path, assignment: str, out_zip: Path,
          visibility: str = "after_published") -> Path:
    """Write the Gradescope autograder of ``assignment`` to ``out_zip``."""
    from .course import CourseError, grading_settings
    from .release import generate
    if visibility not in VISIBILITIES:
        raise CourseError(f"visibility {visibility!r}: use one of {', '.join(VISIBILITIES)}")
    course_dir = Path(course_dir)
    settings = grading_settings(course_dir)
    grader = Path(settings.graders_dir or course_dir / "graders") / f"{assignment}.py"
    if not grader.is_file():
        raise CourseError(f"no trusted grader {grader}: nothing could decide the points")
    [release] = generate(course_dir, assignment, database=False)
    config = {"assignment": assignment, "notebook": release.name, "visibility": visibility,
              "call_timeout": settings.call_timeout, "limits": asdict(settings.limits),
              "max_bytes": settings.intake.max_bytes, "max_cells": settings.intake.max_cells}
    out_zip = Path(out_zip)
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out_zip, "w") as archive:
        _add_text(archive, "setup.sh", SETUP_SH, executable=True)
        _add_text(archive, "run_autograder", RUN_AUTOGRADER, executable=True)
        _add_text(archive, "kit/config.json", json.dumps(config, indent=1) + "\n")
        for name, path in kit_files(grader, release).items():
            _add_text(archive, name, path.read_text(encoding="utf-8"))
    return out_zip


# ---------------------------------------------------------------------------- one submission


class NotGraded(Exception):
    """The submission cannot be graded; the message says why, for the student."""


def find_notebook(folder: Path, expected: str) -> Path:
    """The submitted notebook: the one named as the release, else the only one. Links and
    hidden folders are not followed."""
    found = []
    for top, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__MACOSX")))
        found += [Path(top) / f for f in sorted(files) if f.endswith(".ipynb")
                  and not f.startswith(".")]
        if len(found) > MAX_FILES:
            break
    if not found:
        raise NotGraded("no .ipynb file in the submission: upload the notebook "
                        f"{expected}")
    named = [p for p in found if p.name == expected]
    if named:
        return named[0]
    if len(found) == 1:
        return found[0]
    raise NotGraded(f"{len(found)} notebooks in the submission and none named {expected}: "
                    f"upload that one alone")


def read_submission(path: Path, release: dict, config: dict) -> tuple[dict, list[str]]:
    """The submission as the trusted scorer takes it, mended from the release; notes."""
    from . import intake, repair
    limits = intake.IntakeLimits(int(config["max_bytes"]), int(config["max_cells"]))
    try:
        notebook, notes = intake.read_submission(path, limits)
    except intake.Rejected as error:
        raise NotGraded(str(error)) from None
    notebook, repaired = repair.restore_metadata(notebook, release)
    return notebook, notes + repaired


def isolation() -> tuple[bool, str]:
    """(contained, what the results say): the sandbox where bubblewrap runs, else a process
    of its own user (contained.py); COURSE_SANDBOX=required refuses the latter."""
    from . import contained, sandbox
    from .grading import sandbox_mode
    mode = sandbox_mode()
    ok, why = sandbox.available()
    if ok and mode != "off":
        return False, "Your code ran in the grader's sandbox."
    if mode == "required":
        raise RuntimeError(f"COURSE_SANDBOX=required, but {why}")
    dropped, not_dropped = contained.can_drop()
    if dropped:
        return True, ("Your code ran in this container as a user of its own (the sandbox "
                      "cannot run here: the container is the isolation).")
    return True, f"Your code was NOT isolated from the grader: {not_dropped}."


def test_entries(results, visibility: str) -> list[dict]:
    """Gradescope tests: one per named property, numbered by exercise."""
    entries, numbers = [], {}
    for r in results:
        cell = numbers.setdefault(r.grade_id, [len(numbers) + 1, 0])
        cell[1] += 1
        entries.append({"name": f"{r.grade_id}: {r.name}", "number": f"{cell[0]}.{cell[1]}",
                        "score": r.earned, "max_score": r.points, "output": r.message,
                        "visibility": visibility})
    return entries


def not_graded_entries(grader, reason: str, visibility: str) -> list[dict]:
    """Every property at 0, with the reason: the student sees what was not graded."""
    from .scoring import PropertyResult
    results = [PropertyResult(grade_id, p.name, p.points, 0.0, f"not graded: {reason}")
               for grade_id, properties in grader.PROPERTIES.items() for p in properties]
    return test_entries(results, visibility)


def grade(root: Path, kit: Path, config: dict) -> dict:
    """results.json's content for the submission in ``root/submission``."""
    from . import scoring
    visibility = config.get("visibility", "after_published")
    grader = scoring.load_grader(config["assignment"], kit / "autograder" / "graders")
    release = json.loads((kit / "release" / config["notebook"]).read_text(encoding="utf-8"))
    start = time.monotonic()
    try:
        path = find_notebook(root / "submission", config["notebook"])
        notebook, notes = read_submission(path, release, config)
        contained, where = isolation()
        from .sandbox import Limits
        properties = scoring.score_notebook(notebook, release, grader,
                                            Limits(**config["limits"]),
                                            float(config["call_timeout"]), contained=contained)
    except NotGraded as why:
        return {"score": 0.0, "output": f"Not graded: {why}", "visibility": visibility,
                "execution_time": round(time.monotonic() - start),
                "tests": not_graded_entries(grader, str(why), visibility)}
    output = [f"Graded {path.name}. {where}"] + [f"Note: {n}." for n in notes]
    return {"score": sum(r.earned for r in properties),
            "execution_time": round(time.monotonic() - start),
            "output": "\n".join(output), "visibility": visibility,
            "stdout_visibility": "hidden", "tests": test_entries(properties, visibility)}


def write_results(root: Path, results: dict) -> Path:
    """results.json, written whole or not at all."""
    path = root / "results" / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("results.json.tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def run(root: Path, kit: Path) -> Path:
    """Grade ``root/submission`` and write ``root/results/results.json``; never raises for a
    submission, and writes a 0 with the reason when the grading itself fails."""
    try:
        config = json.loads((kit / "config.json").read_text(encoding="utf-8"))
        results = grade(root, kit, config)
    except Exception as error:                        # noqa: BLE001: a result, always
        results = {"score": 0.0, "output": f"The autograder failed: {type(error).__name__}: "
                                           f"{error}"[:2000] + " (tell your instructor)"}
    return write_results(root, results)


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else os.environ.get(ROOT_ENV, "/autograder"))
    kit = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1]
    run(root, kit)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
