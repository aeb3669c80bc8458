"""A submitted notebook, read and checked before anything else touches it.

nbgrader and ``repair.py`` expect a well-formed notebook; a submission is whatever a
student (or Colab, or an attacker) made. ``read_submission`` takes a file and either
returns a notebook that the rest of the pipeline can handle, with notes on what was
normalised, or raises ``Rejected`` with a reason that goes into that submission's report
row. Nothing here raises anything else for a bad file, so one file never stops a batch.

Rejected: not a plain file, larger than the limit, not UTF-8 JSON, not an object with a
list of cells, an nbformat other than 4, more cells than the limit, a cell that is not an
object or has no valid type, a source that is not text.

Normalised, with a note: ``metadata`` that is null or not an object (the notebook's or a
cell's) becomes ``{}``; outputs and execution counts are cleared (grading runs the
notebook again; a huge saved output never reaches nbgrader).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import safe_files

CELL_TYPES = {"code", "markdown", "raw"}


@dataclass(frozen=True)
class IntakeLimits:
    max_bytes: int = 20 * 2**20      # the notebook file
    max_cells: int = 2000


class Rejected(ValueError):
    """The submission cannot be graded; the message says why, for the report."""


def _text(value) -> bool:
    return isinstance(value, str) or (isinstance(value, list)
                                       and all(isinstance(v, str) for v in value))


def parse(data: bytes) -> dict:
    """The submission as plain JSON, the one place the grader reads a notebook without
    nbformat: nbformat raises on, or quietly mends, what must be rejected here with a
    reason, normalised with a note, or put back from the release (repair.py)."""
    try:
        notebook = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise Rejected(f"the notebook is not UTF-8 text ({error.reason} at byte {error.start})")
    except ValueError as error:
        raise Rejected(f"the notebook is not valid JSON ({error})") from None
    except RecursionError:
        raise Rejected("the notebook is not valid JSON (nested too deeply)") from None
    return notebook


def check_structure(notebook, limits: IntakeLimits) -> None:
    if not isinstance(notebook, dict):
        raise Rejected(f"the notebook is a JSON {type(notebook).__name__}, not an object with cells")
    if notebook.get("nbformat") != 4 or type(notebook.get("nbformat")) is not int:
        raise Rejected(f"nbformat {notebook.get('nbformat')!r}: only version 4 notebooks are graded")
    if not isinstance(notebook.get("nbformat_minor", 0), int):
        raise Rejected("nbformat_minor is not a number")
    cells = notebook.get("cells")
    if not isinstance(cells, list):
        raise Rejected("the notebook has no list of cells")
    if len(cells) > limits.max_cells:
        raise Rejected(f"the notebook has {len(cells):,} cells, over the limit of {limits.max_cells:,}")
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict):
            raise Rejected(f"cell {index} is not an object")
        if cell.get("cell_type") not in CELL_TYPES:
            raise Rejected(f"cell {index} has cell_type {cell.get('cell_type')!r}")
        if not _text(cell.get("source", "")):
            raise Rejected(f"cell {index}'s source is not text")
        if "id" in cell and not isinstance(cell["id"], str):
            raise Rejected(f"cell {index}'s id is not text")


def normalise(notebook: dict) -> list[str]:
    """Null metadata made empty, outputs cleared; returns notes on what was changed."""
    notes = []
    if not isinstance(notebook.get("metadata"), dict):
        notebook["metadata"] = {}
        notes.append("the notebook's metadata was missing or not an object: emptied")
    nulls = 0
    for cell in notebook["cells"]:
        if not isinstance(cell.get("metadata"), dict):
            cell["metadata"] = {}
            nulls += 1
        nbgrader = cell["metadata"].get("nbgrader")
        if "nbgrader" in cell["metadata"] and not isinstance(nbgrader, dict):
            del cell["metadata"]["nbgrader"]
            nulls += 1
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        else:
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
    if nulls:
        notes.append(f"metadata of {nulls} cell(s) was null or not an object: emptied")
    return notes


def read_submission(path: Path, limits: IntakeLimits = IntakeLimits()) -> tuple[dict, list[str]]:
    """(notebook, notes) of a submitted file, or Rejected with the reason."""
    try:
        data = safe_files.read_regular(path, limits.max_bytes)
    except safe_files.UnsafePath as error:
        raise Rejected(str(error)) from None
    except OSError as error:
        raise Rejected(f"{path.name} cannot be read: {error.strerror}") from None
    notebook = parse(data)
    check_structure(notebook, limits)
    return notebook, normalise(notebook)
