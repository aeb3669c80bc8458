"""The figures a notebook printed, as a record that benchmarks and checks read.

When ``COURSE_RESULTS_DIR`` is set, :func:`save` writes ``$COURSE_RESULTS_DIR/<notebook>.json``:

    {"notebook": "01_simclr_ntxent", "mode": "fast", "device": "cpu", "dataset": "shapes",
     "seconds": 131.2, "knn": {"random init": 0.21, "SimCLR": 0.45},
     "linear": {"random init": 0.25, "SimCLR": 0.52}, ...}

Accuracies are fractions (0..1), keyed by encoder name; the random-init encoder is named
``random init``. Other figures a notebook measures (``miou``, a loss) go in as extra dicts.
Unset, nothing is written: the notebook runs exactly as without it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

RANDOM_INIT = "random init"
ENV = "COURSE_RESULTS_DIR"


def results_dir() -> Path | None:
    folder = os.environ.get(ENV, "").strip()
    return Path(folder).expanduser() if folder else None


def record(notebook: str, *, mode: str, device, dataset: str, seconds: float,
           knn: dict[str, float], linear: dict[str, float], **extra) -> dict:
    """One run's figures in the record format (accuracies as fractions, by encoder)."""
    for name, table in (("knn", knn), ("linear", linear)):
        if RANDOM_INIT not in table:
            raise ValueError(f"{name} has no {RANDOM_INIT!r} entry: {sorted(table)}")
    return {"notebook": notebook, "mode": mode, "device": str(device), "dataset": dataset,
            "seconds": round(float(seconds), 1),
            "knn": {k: round(float(v), 4) for k, v in knn.items()},
            "linear": {k: round(float(v), 4) for k, v in linear.items()},
            **{name: _rounded(value) for name, value in extra.items()}}


def _rounded(value):
    """Numbers rounded to 4 places, inside dicts too (a figure by encoder or setting)."""
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return round(float(value), 4) if number else value


def save(notebook: str, **figures) -> Path | None:
    """Write the record to ``$COURSE_RESULTS_DIR/<notebook>.json`` when that is set; the
    path written, or None."""
    entry = record(notebook, **figures)
    folder = results_dir()
    if folder is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{notebook}.json"
    path.write_text(json.dumps(entry, indent=1) + "\n", encoding="utf-8")
    return path
