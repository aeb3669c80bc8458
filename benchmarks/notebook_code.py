"""Run a master notebook's code outside Jupyter (benchmarks and GPU runs only).

Benchmarks must measure the notebook's own code, not a copy of it, and the GPU machine
has PyTorch but no Jupyter. This module executes a master notebook's code cells in order
in one namespace: IPython magics and shell lines are dropped, figures are saved instead of
shown, and each cell's wall-clock time is recorded.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "autograder" / "source"


def master_path(assignment: str) -> Path:
    return SOURCE / assignment / f"{assignment}.ipynb"


def master_cells(assignment: str) -> list[dict]:
    """The master's cells as plain JSON (a source is one string or a list of lines). The GPU
    machines have PyTorch but no Jupyter: nbformat, autograder.course's reader, is not there."""
    return json.loads(master_path(assignment).read_text(encoding="utf-8"))["cells"]


def code_cells(assignment: str) -> list[dict]:
    """The master's code cells, each with its source and nbgrader metadata."""
    cells = []
    for cell in master_cells(assignment):
        if cell["cell_type"] != "code":
            continue
        # IPython-only lines (%magic, !shell) have no meaning here.
        lines = [ln for ln in "".join(cell["source"]).splitlines()
                 if not ln.lstrip().startswith(("%", "!"))]
        cells.append({"source": "\n".join(lines), "nbgrader": cell["metadata"].get("nbgrader", {})})
    return cells


def run_cells(assignment: str, until_last_solution: bool = False, skip_tests: bool = False,
              figure_dir: Path | None = None, verbose: bool = True,
              overrides: dict | None = None,
              until_defined: tuple[str, ...] = ()) -> tuple[dict, list[float]]:
    """Execute the master's code cells; return the namespace and per-cell seconds.

    ``until_defined`` stops after the first cell by which all of those names exist
    (it replaces ``until_last_solution``).

    ``overrides`` (e.g. ``{"EPOCHS": 20}``) are set right after the first cell that
    defines all of their names, so later cells use them.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = code_cells(assignment)
    if until_last_solution and not until_defined:
        last = max(i for i, c in enumerate(cells) if c["nbgrader"].get("solution"))
        cells = cells[:last + 1]
    saved = [0]

    def save_figures(*_, **__):
        for num in plt.get_fignums():
            if figure_dir is not None:
                figure_dir.mkdir(parents=True, exist_ok=True)
                plt.figure(num).savefig(figure_dir / f"fig{saved[0]:02d}.png", dpi=80)
                saved[0] += 1
            plt.close(num)

    plt.show = save_figures
    namespace = {"__name__": "__main__", "display": print}
    seconds = []
    for i, cell in enumerate(cells):
        if skip_tests and cell["nbgrader"].get("grade"):
            seconds.append(0.0)
            continue
        t0 = time.perf_counter()
        exec(compile(cell["source"], f"<{assignment} cell {i}>", "exec"), namespace)
        save_figures()
        if overrides and all(k in namespace for k in overrides):
            namespace.update(overrides)
            if verbose:
                print(f"[cell {i:2d}] overrides: {overrides}", flush=True)
            overrides = None
        seconds.append(time.perf_counter() - t0)
        if verbose:
            print(f"[cell {i:2d}] {seconds[-1]:7.2f} s", flush=True)
        if until_defined and all(k in namespace for k in until_defined):
            break
    return namespace, seconds
