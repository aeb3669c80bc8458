"""Give a submission back the nbgrader metadata it lost (Colab may drop it), before grading.

nbgrader finds answers and tests by each cell's ``metadata.nbgrader`` (``grade_id``,
``solution``, ``grade``...). A notebook that comes back without it cannot be graded at all
(``KeyError`` in OverwriteCells). This module lines the submission's cells up with the
released notebook's:

* every released cell that is not an answer (instructions, set-up, visible tests) is found
  again by its source, in order; these are the anchors;
* each released answer cell is the submission's code cell between the same two anchors
  (where a student added cells, the one that defines the same function or class);
* what is matched gets the released cell's metadata; missing tests are left for nbgrader
  to put back (``OverwriteCells.add_missing_cells``).

It also normalises Colab's format: cell ids added where missing (nbformat 4.5).
A notebook that still carries nbgrader metadata is returned unchanged.

It mends the plain JSON that intake.py read, before nbformat sees the notebook: nbformat's
reader fails on a cell whose metadata is missing or null and replaces missing or duplicated
cell ids without a word, where this puts back only what was lost, and says so.
"""
from __future__ import annotations

import copy
import re
import uuid

from .course import cell_source, nbgrader_meta

DEFINES = re.compile(r"^\s*(?:def|class)\s+([A-Za-z_]\w*)", re.M)


def has_nbgrader_metadata(notebook: dict) -> bool:
    return any(nbgrader_meta(c).get("grade_id") for c in notebook.get("cells", []))


def _pick_answer(candidates: list[int], cells: list[dict], released: dict) -> int | None:
    """The submission cell (index) that answers a released solution cell."""
    if not candidates:
        return None
    wanted = set(DEFINES.findall(cell_source(released)))
    for index in candidates:
        if wanted and wanted & set(DEFINES.findall(cell_source(cells[index]))):
            return index
    return candidates[0]


def restore_metadata(submission: dict, release: dict) -> tuple[dict, list[str]]:
    """(repaired copy, notes): nbgrader metadata put back from the released notebook."""
    notebook = copy.deepcopy(submission)
    notes = []
    cells = notebook.get("cells", [])
    if not has_nbgrader_metadata(notebook):
        matched: dict[int, dict] = {}                    # submission index -> released cell
        pending: list[dict] = []                         # released answers since the last anchor
        start = 0
        for released in release.get("cells", []):
            meta = nbgrader_meta(released)
            if meta.get("solution"):
                pending.append(released)
                continue
            source = cell_source(released).strip()
            found = next((i for i in range(start, len(cells))
                          if cells[i].get("cell_type") == released.get("cell_type")
                          and cell_source(cells[i]).strip() == source and source), None)
            if found is None:
                continue                                  # deleted or edited: skip it
            gap = [i for i in range(start, found) if cells[i].get("cell_type") == "code"]
            for answer in pending:
                index = _pick_answer([i for i in gap if i not in matched], cells, answer)
                if index is not None:
                    matched[index] = answer
            pending = []
            if meta:
                matched[found] = released
            start = found + 1
        tail = [i for i in range(start, len(cells)) if cells[i].get("cell_type") == "code"]
        for answer in pending:
            index = _pick_answer([i for i in tail if i not in matched], cells, answer)
            if index is not None:
                matched[index] = answer
        for index, released in matched.items():
            metadata = cells[index].setdefault("metadata", {})
            metadata["nbgrader"] = copy.deepcopy(nbgrader_meta(released))
        if matched:
            notes.append(f"nbgrader metadata was missing: restored on {len(matched)} cells "
                         f"from the release")
    if notebook.get("nbformat", 4) == 4 and (notebook.get("nbformat_minor", 0) < 5
                                            or any("id" not in c for c in cells)):
        seen = set()
        for cell in cells:
            if not cell.get("id") or cell["id"] in seen:
                cell["id"] = uuid.uuid4().hex[:12]
            seen.add(cell["id"])
        notebook["nbformat_minor"] = max(5, notebook.get("nbformat_minor", 0))
        notes.append("cell ids added (notebook saved in an older format, e.g. by Colab)")
    for cell in cells:                                   # Colab leaves these on code cells
        if cell.get("cell_type") == "code":
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
    return notebook, notes
