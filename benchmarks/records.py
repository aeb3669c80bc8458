"""Measured figures as records: benchmarks/results/<name>.json, one file a run.

A record holds the notebook, the mode, the hardware, the training minutes, the figures (a
``knn`` and a ``linear`` dict keyed by encoder name, ``random init`` among them, and any
other figure the notebook measured, in the same shape), and where they come from: the
command, the commit, the date and the seeds. Over several seeds each figure is the mean,
``spread`` holds its [min, max], and ``runs`` every seed's own record. The README's and the
notebooks' tables are generated from these files (``python -m autograder release``, by
autograder/measured.py).
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from pathlib import Path

from course_utils.results import RANDOM_INIT

ROOT = Path(__file__).resolve().parent.parent
SKIP = {"notebook", "mode", "device", "dataset", "seed"}


def _mean(values):
    return round(sum(values) / len(values), 4)


def aggregate(runs: list[dict]) -> dict:
    """Mean and [min, max] over the runs of every figure (a dict of numbers, by encoder or
    setting), and the mean training and notebook minutes."""
    out, spread = {}, {}
    for key, value in runs[0].items():
        if key in SKIP or not isinstance(value, dict):
            continue
        out[key] = {name: _mean([r[key][name] for r in runs]) for name in value}
        spread[key] = {name: [min(r[key][name] for r in runs), max(r[key][name] for r in runs)]
                       for name in value}
    out["training_minutes"] = round(_mean([r["seconds"] for r in runs]) / 60, 2)
    if all("notebook_seconds" in r for r in runs):
        out["notebook_minutes"] = round(_mean([r["notebook_seconds"] for r in runs]) / 60, 2)
        spread["notebook_minutes"] = [round(min(r["notebook_seconds"] for r in runs) / 60, 2),
                                      round(max(r["notebook_seconds"] for r in runs) / 60, 2)]
    return {**out, "spread": spread, "runs": runs}


def hardware() -> str:
    """This machine in words: the GPU if torch sees one, else the CPU cores and threads."""
    import torch
    if torch.cuda.is_available():
        return f"1 {torch.cuda.get_device_name(0)}, {os.cpu_count()} CPU cores"
    return (f"{os.cpu_count()} CPU cores ({platform.machine()}), {torch.get_num_threads()} "
            f"torch threads, no GPU")


def commit() -> str:
    """HEAD, marked ``-dirty`` when tracked files differ from it (what ran was not HEAD)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout
    head = git("rev-parse", "--short=12", "HEAD").strip() or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no").strip()
    return head + ("-dirty" if dirty else "")


def provenance(command: str, seeds) -> dict:
    return {"command": command, "commit": commit(),
            "date": datetime.date.today().isoformat(), "seeds": list(seeds)}


def write_record(path: Path, record: dict) -> Path:
    """Write ``record``; refused without a random-init kNN figure (and a random-init linear
    probe when the run has one), the baseline every table compares against."""
    if RANDOM_INIT not in record.get("knn", {}):
        raise ValueError(f"{path.name}: knn has no {RANDOM_INIT!r} entry")
    if record.get("linear") and RANDOM_INIT not in record["linear"]:
        raise ValueError(f"{path.name}: linear has no {RANDOM_INIT!r} entry")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return path
