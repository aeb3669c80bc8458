"""Each notebook's fast mode as a student runs it, over seeds: the figures it prints and its
time, written as a record in benchmarks/results/.

Every seed runs the master notebook (its own solutions) top to bottom in a fresh process,
with ``COURSE_FAST=1``, ``SEED`` set in its configuration and ``COURSE_RESULTS_DIR`` pointing
at a scratch folder; the notebook writes the figures it printed there
(``course_utils.results``). This script reads them back, never the output text, and writes
``benchmarks/results/fast_<notebook>.json``: each seed's record, the mean and the range of
every figure, the whole notebook's wall time, the command, the commit, the date and the
hardware. Notebook 05 compares the encoders notebooks 01-04 hand on: for each seed those
four run first, with the same seed, into a scratch ``COURSE_ENCODER_DIR``. Usage, on a
quiet machine:

    .venv/bin/python benchmarks/fast_mode.py 01_simclr_ntxent --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from records import aggregate, hardware, provenance, write_record  # noqa: E402

NOTEBOOKS = ("01_simclr_ntxent", "02_moco_queue", "03_mae_masking", "04_dino_self_distillation",
             "05_paradigms_and_segments")
# the notebooks whose saved encoders a notebook loads (course_utils.handoff)
NEEDS = {"05_paradigms_and_segments": NOTEBOOKS[:4]}


def run_one(notebook: str, seed: int, results_dir: Path) -> dict:
    """One fresh process runs the whole notebook for ``seed`` (after the notebooks it needs,
    with the same seed); its record, with its own wall time."""
    encoder_dir = results_dir / f"encoders_seed{seed}"
    for needed in NEEDS.get(notebook, ()):
        if not (encoder_dir / "done" / needed).exists():
            run_one(needed, seed, results_dir)
            (encoder_dir / "done").mkdir(parents=True, exist_ok=True)
            (encoder_dir / "done" / needed).touch()
    env = dict(os.environ, COURSE_FAST="1", COURSE_RESULTS_DIR=str(results_dir),
               COURSE_ENCODER_DIR=str(encoder_dir), MPLBACKEND="Agg")
    code = ("import sys; sys.path.insert(0, 'benchmarks'); from notebook_code import run_cells; "
            f"run_cells({notebook!r}, verbose=False, overrides={{'SEED': {seed}}})")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True,
                   cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    entry = json.loads((results_dir / f"{notebook}.json").read_text())
    entry.update(seed=seed, notebook_seconds=round(seconds, 1))
    return entry


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="*", default=list(NOTEBOOKS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = p.parse_args()
    for notebook in args.notebooks:
        runs = []
        with tempfile.TemporaryDirectory() as scratch:
            for seed in args.seeds:
                runs.append(run_one(notebook, seed, Path(scratch)))
                print(json.dumps(runs[-1]), flush=True)
        record = {"notebook": notebook, "mode": "fast", "hardware": hardware(),
                  "dataset": runs[0]["dataset"], **aggregate(runs),
                  **provenance(" ".join(["benchmarks/fast_mode.py", notebook, "--seeds",
                                         *map(str, args.seeds)]), args.seeds)}
        path = write_record(Path(args.out) / f"fast_{notebook}.json", record)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
