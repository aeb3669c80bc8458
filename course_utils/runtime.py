"""Where a notebook runs: device, seeding, run mode, Colab detection and the banner.

Run modes
---------
full     real data set and budget; the default where a CUDA GPU is present.
fast     tiny data and few steps, every cell still runs; the default on a CPU,
         forced with ``COURSE_FAST=1``.
grading  set while nbgrader executes a submission (``NBGRADER_EXECUTION``):
         training runs at the smallest scale so a submission grades in seconds.

``COURSE_MODE=full|fast|grading`` overrides the choice (grading always wins).
"""
from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import numpy as np
import torch

MODES = ("full", "fast", "grading")


def is_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def is_grading() -> bool:
    """True while nbgrader executes the notebook (autograde or validate)."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def flag(name: str, default: bool | None = False) -> bool | None:
    """An on/off environment variable, read the same way everywhere: ``1``, ``true``,
    ``yes`` or ``on`` (any case) is True, ``0``, ``false``, ``no`` or ``off`` is False,
    unset or empty is ``default``; anything else raises (a typo is not silently off)."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in TRUE | FALSE:
        return value in TRUE
    raise ValueError(f"{name}={os.environ[name]!r}: use one of {sorted(TRUE)} to turn it on "
                     f"or one of {sorted(FALSE)} to turn it off")


def run_mode() -> str:
    """The run mode: 'grading', 'fast' or 'full' (see the module docstring)."""
    if is_grading():
        return "grading"
    forced = os.environ.get("COURSE_MODE", "").strip().lower()
    if forced:
        if forced not in MODES:
            raise ValueError(f"COURSE_MODE={forced!r}: expected one of {MODES}")
        return forced
    if flag("COURSE_FAST"):
        return "fast"
    return "full" if torch.cuda.is_available() else "fast"


def pick(full, fast, grading=None, mode: str | None = None):
    """Return the value for the current run mode (``grading`` falls back to ``fast``)."""
    mode = mode or run_mode()
    if mode == "full":
        return full
    if mode == "grading" and grading is not None:
        return grading
    return fast


def picker(mode: str):
    """``pick`` bound to ``mode``, read once: a notebook's configuration cell picks every
    value for the same mode, whatever the environment says later."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {MODES}")

    def pick_for_mode(full, fast, grading=None):
        return pick(full, fast, grading, mode=mode)
    return pick_for_mode


def shared_settings(mode: str | None = None) -> tuple[str, int | None, int | None, int,
                                                     int | None]:
    """The settings every notebook shares, for ``mode``: ``(DATASET, TRAIN_LIMIT, TEST_LIMIT,
    KNN_K, MAX_STEPS)``.

    full: CIFAR-10 (or ``COURSE_DATASET``), every image, kNN among k = 200 neighbours;
    fast: the offline shapes (or ``COURSE_DATASET``), 2,000 training and 500 test images,
    k = 20 (the same tenth of a class as 200 of CIFAR-10's 5,000 per class);
    grading: 200 + 100 shapes, k = 20, and training stops after 2 steps.
    """
    mode = mode or run_mode()
    chosen = os.environ.get("COURSE_DATASET")
    return pick(full=(chosen or "cifar10", None, None, 200, None),
                fast=(chosen or "shapes", 2000, 500, 20, None),
                grading=("shapes", 200, 100, 20, 2), mode=mode)


def get_device(prefer: str | None = None) -> torch.device:
    """The best available device: CUDA, then Apple MPS, then CPU.

    ``prefer`` (or the variable ``COURSE_DEVICE``) names one explicitly, e.g. 'cpu'.
    While grading, the CPU is used so that grades do not depend on the grader's GPU.
    """
    prefer = prefer or os.environ.get("COURSE_DEVICE")
    if prefer:
        return torch.device(prefer)
    if is_grading():
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0, deterministic: bool = False) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a seeded CPU generator."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


def num_workers(mode: str | None = None) -> int:
    """DataLoader workers: none while grading or in fast mode, else the CPU count (at most 16)."""
    if (mode or run_mode()) != "full":
        return 0
    return min(16, os.cpu_count() or 1)


def project_root() -> Path | None:
    """The repository folder when course_utils is used from a checkout, else None."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").exists() and (root / "autograder").exists() else None


def banner(dataset: str, mode: str | None = None, device: torch.device | None = None) -> str:
    """The one line every notebook prints at its top."""
    mode = mode or run_mode()
    device = device or get_device()
    where = "Colab" if is_colab() else "local"
    name = str(device)
    if device.type == "cuda":
        name += f" ({torch.cuda.get_device_name(device)})"
    return (f"mode: {mode} | device: {name} | data: {dataset} | {where}, "
            f"torch {torch.__version__}")
