"""Run a master notebook in full mode outside Jupyter and record what it reports.

For a GPU machine that has PyTorch but no Jupyter. Every code cell of the master runs in
order with ``COURSE_MODE=full`` (the batched GPU data path included), ``--epochs``
overriding the notebook's ``EPOCHS`` (``benchmarks/train_speed.py`` and
``augment_speed.py`` tell how many fit a budget; without it the notebook's time budget
decides). Writes the log, the figures and ``results.json`` (accuracies, epochs, minutes) to
``--out``, and there also ``record_<notebook>.json``: the figures the notebook saved, as a
record for ``benchmarks/results/`` (format in ``records.py``), with the epochs, the
hardware, the command and the commit; copied into ``benchmarks/results/``, ``release`` puts
it in the README's tables and the budget by GPU. Example:

    python benchmarks/full_mode.py --assignment 02_moco_queue --epochs 100 \
        --set RUN_EXPERIMENTS=False --dataset folder:.carry/cifar10_jpeg.tar.gz --out /tmp/full02
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--assignment", default="01_simclr_ntxent")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--epochs", type=int, default=None, help="default: the notebook's EPOCHS")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a config name, e.g. --set RUN_EXPERIMENTS=False (repeatable)")
    p.add_argument("--out", default="build/full_mode")
    args = p.parse_args()
    overrides = {name: ast.literal_eval(value)
                 for name, value in (item.split("=", 1) for item in args.set)}
    if args.epochs:
        overrides["EPOCHS"] = args.epochs

    os.environ["COURSE_MODE"] = "full"
    os.environ["COURSE_DATASET"] = args.dataset
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ["COURSE_RESULTS_DIR"] = str(out / "saved")
    t0 = time.perf_counter()
    print(f"running {args.assignment} in full mode, overrides {overrides}", flush=True)

    from notebook_code import run_cells

    ns, seconds = run_cells(args.assignment, figure_dir=out / "figures",
                            overrides=overrides or None)
    history = ns.get("history")
    report = {
        "assignment": args.assignment, "dataset": args.dataset, "epochs": ns.get("EPOCHS"),
        "device": str(ns.get("DEVICE")),
        "train_minutes": history.seconds / 60 if history else None,
        "total_minutes": (time.perf_counter() - t0) / 60,
        "results": ns.get("results"),
        "label_fractions": {name: {str(k): v for k, v in t.items()}
                            for name, t in (ns.get("table") or {}).items()},
        "cell_seconds": seconds,
    }
    (out / "results.json").write_text(json.dumps(report, indent=1, default=str))
    write_full_record(args, ns, out)
    print(json.dumps({k: v for k, v in report.items() if k != "cell_seconds"}, indent=1,
                     default=str))


def write_full_record(args, ns: dict, out: Path) -> None:
    """The notebook's saved figures as a record, with the epochs it trained."""
    from records import aggregate, hardware, provenance, write_record
    saved = out / "saved" / f"{args.assignment}.json"
    if not saved.exists():
        print(f"{saved} is missing: the notebook saved no figures, so no record")
        return
    run = json.loads(saved.read_text())
    command = " ".join(["benchmarks/full_mode.py", *sys.argv[1:]])
    record = {"notebook": args.assignment, "mode": "full", "hardware": hardware(),
              "dataset": run["dataset"], "epochs": ns.get("EPOCHS"), **aggregate([run]),
              **provenance(command, [ns.get("SEED", 0)])}
    print(f"wrote {write_record(out / f'record_{args.assignment}.json', record)}")


if __name__ == "__main__":
    main()
