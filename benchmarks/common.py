"""What the real-data benchmarks share: their common options and the data they train on."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from course_utils.data import ImageArrays, load_dataset

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
