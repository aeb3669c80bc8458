"""Trusted scoring (issue 13, part): a submission's points decided outside its process.

For each graded cell, the assignment's grader module (``graders/<assignment>.py``, never
released, never mounted in a sandbox) lists named properties, each worth some of the
cell's points. The grader draws the inputs (a fresh seed each run), asks the sandboxed
worker (worker_client.py) to call the student's code, and checks the answers against its
own computation; a property that raises, or whose call fails in any way, scores 0 alone.

    results = score_notebook(submission, release, grader_module)
    points = cell_points(results)              # grade_id -> points
"""
from __future__ import annotations

import importlib.util
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import worker_client
from .course import cell_source, nbgrader_meta

GRADERS_DIR = Path(__file__).resolve().parent / "graders"


@dataclass(frozen=True)
class Property:
    """One named requirement of an exercise: ``check(worker, rng)`` raises AssertionError
    (or WorkerError) with a message for the student when the answer breaks it."""
    name: str
    points: float
    check: Callable


@dataclass
class PropertyResult:
    grade_id: str
    name: str
    points: float
    earned: float
    message: str = ""


def load_grader(assignment: str, folder: Path = GRADERS_DIR):
    """The grader module of an assignment: ``PROPERTIES`` maps grade_id -> [Property]."""
    path = Path(folder) / f"{assignment}.py"
    spec = importlib.util.spec_from_file_location(f"graders_{assignment}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SETUP_TAG = "scorer-setup"


def scored_cells(submission: dict, release: dict) -> list[str]:
    """The code the worker runs, in the release's order: the release's code cells tagged
    ``scorer-setup`` (imports and settings; never the student's copy of them, never a
    training cell) and the submission's answer cells, matched by grade_id."""
    answers = {nbgrader_meta(c)["grade_id"]: cell_source(c) for c in submission.get("cells", [])
               if nbgrader_meta(c).get("solution") and nbgrader_meta(c).get("grade_id")}
    sources = []
    for cell in release.get("cells", []):
        meta, tags = nbgrader_meta(cell), (cell.get("metadata") or {}).get("tags", [])
        if cell.get("cell_type") != "code" or meta.get("grade"):
            continue
        if meta.get("solution"):
            sources.append(answers.get(meta.get("grade_id"), ""))
        elif SETUP_TAG in tags:
            sources.append(cell_source(cell))
    return sources


def setup_before_answers(release: dict) -> int:
    """How many of the scored cells are set-up cells that run before any answer: no
    student code can have broken those, so their failure is the grader's, not a 0."""
    count = 0
    for cell in release.get("cells", []):
        meta, tags = nbgrader_meta(cell), (cell.get("metadata") or {}).get("tags", [])
        if cell.get("cell_type") != "code" or meta.get("grade"):
            continue
        if meta.get("solution"):
            break
        count += SETUP_TAG in tags
    return count


class ScoringError(RuntimeError):
    """Scoring could not be done (the grader's own set-up failed): the submission is not
    graded, rather than scored 0 for what it did not do."""


def check_setup(errors: list[str], setup: int) -> None:
    for error in errors:
        index = error.split(":", 1)[0].removeprefix("cell ")
        if index.isdigit() and int(index) < setup:
            raise ScoringError(f"the release's set-up cell failed in the scoring worker: {error}")


def run_property(prop: Property, grade_id: str, worker, seed: int) -> PropertyResult:
    rng = np.random.default_rng(seed)
    try:
        prop.check(worker, rng)
    except (AssertionError, worker_client.WorkerError) as failure:
        return PropertyResult(grade_id, prop.name, prop.points, 0.0, str(failure)[:500])
    except Exception as error:                        # noqa: BLE001: a bad answer, not ours
        return PropertyResult(grade_id, prop.name, prop.points, 0.0,
                              f"{type(error).__name__}: {error}"[:500])
    return PropertyResult(grade_id, prop.name, prop.points, prop.points)


def score_notebook(submission: dict, release: dict, grader, limits=None,
                   timeout: float = 60, seed: int | None = None,
                   contained: bool = False) -> list[PropertyResult]:
    """Every property of every graded cell, for one submission, in a worker of its own
    (sandboxed; ``contained``: a process of its own user, where no sandbox can be made).
    A worker that died is started again for the next graded cell."""
    from . import sandbox
    seed = secrets.randbits(32) if seed is None else seed
    sources = scored_cells(submission, release)
    setup = setup_before_answers(release)
    results, worker = [], None
    try:
        for index, (grade_id, properties) in enumerate(grader.PROPERTIES.items()):
            if worker is None or worker.dead:
                if worker is not None:
                    worker.close()
                worker = worker_client.Worker(limits or sandbox.Limits(), timeout,
                                              contained=contained)
                try:
                    check_setup(worker.load(sources), setup)
                except worker_client.WorkerError as error:
                    results += [PropertyResult(grade_id, p.name, p.points, 0.0,
                                               f"the answers could not be loaded: {error}")
                                for p in properties]
                    continue
            results += [run_property(p, grade_id, worker, seed + 7919 * index + j)
                        for j, p in enumerate(properties)]
    finally:
        if worker is not None:
            worker.close()
    return results


def cell_points(results: list[PropertyResult]) -> dict[str, float]:
    points: dict[str, float] = {}
    for r in results:
        points[r.grade_id] = points.get(r.grade_id, 0.0) + r.earned
    return points
