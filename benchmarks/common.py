"""What the real-data benchmarks share: their common options, the data they train on, the
run of a whole master notebook with their options swapped in, and where results go."""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from torch.utils.data import DataLoader

from course_utils.data import ImageArrays, TwoViewDataset, load_dataset
from notebook_code import run_cells

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/cifar10/cifar10_jpeg.tar.gz"


def real_data_parser(description: str, epochs: int, batch_size: int) -> argparse.ArgumentParser:
    """Options every real-data benchmark takes; a script adds its own."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="CIFAR-10 JPEG archive (ImageFolder)")
    p.add_argument("--encoder", default="small", choices=["small", "resnet18"])
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--train-limit", type=int, default=10000)
    p.add_argument("--test-limit", type=int, default=2000)
    p.add_argument("--tau", type=float, default=0.2)
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    return p


def load_real_data(args) -> tuple[ImageArrays, ImageArrays]:
    """Class-balanced train and test subsets of ``args.data``."""
    data = f"folder:{args.data}"
    return (load_dataset(data, "train", limit=args.train_limit),
            load_dataset(data, "test", limit=args.test_limit))


def two_view_loader(train: ImageArrays, transform, args) -> DataLoader:
    """Shuffled batches of two augmented views of each ``train`` image."""
    return DataLoader(TwoViewDataset(train, transform), batch_size=args.batch_size, shuffle=True,
                      drop_last=True, num_workers=args.workers,
                      persistent_workers=args.workers > 0)


# ---------------------------------------------------------------- a whole ViT notebook

def notebook_parser(description: str, epochs: int, batch_size: int) -> argparse.ArgumentParser:
    """real_data_parser, the ViT and the learning rate of a benchmark that runs a whole
    notebook; a script adds its own options."""
    p = real_data_parser(description, epochs, batch_size)
    p.add_argument("--vit", default="vit_micro", choices=["vit_micro", "vit_tiny"])
    p.add_argument("--lr", type=float, default=None, help="AdamW (default: the notebook's)")
    return p


def run_notebook(assignment: str, args, **own) -> tuple[dict, float]:
    """Run the whole master in fast mode on ``args.data``, its sizes (and the script's
    ``own`` settings) swapped in, figures saved next to ``args.out``: (its namespace,
    minutes)."""
    os.environ.setdefault("COURSE_FAST", "1")
    os.environ["COURSE_DATASET"] = f"folder:{args.data}"
    overrides = dict(TRAIN_LIMIT=args.train_limit, TEST_LIMIT=args.test_limit, VIT=args.vit,
                     EPOCHS=args.epochs, BATCH_SIZE=args.batch_size, **own)
    if args.lr is not None:
        overrides["LR"] = args.lr
    t0 = time.perf_counter()
    ns, _ = run_cells(assignment, skip_tests=True, verbose=False, overrides=overrides,
                      figure_dir=Path(args.out).parent if args.out else None)
    return ns, (time.perf_counter() - t0) / 60


def run_line(args, ns: dict) -> str:
    """The start of the first line a whole-notebook benchmark prints: data, sizes, ViT, batch."""
    return (f"data {args.data} | train {len(ns['train_data'])} | test {len(ns['test_data'])} | "
            f"{args.vit} | batch {args.batch_size}")


def write_results(args, **results) -> None:
    """The options and the results as JSON in ``args.out``, when it is given."""
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), **results}, indent=1))
