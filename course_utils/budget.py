"""How many epochs fit in a training time budget (full mode).

A method's schedules (the learning rate's warm-up and cosine decay, a momentum or teacher
schedule) are laid out over the whole run, so the number of epochs must be known before
training starts. :func:`plan_epochs` times a few training steps of the real model on this
device (a throughput probe) and picks the most epochs that fit ``budget_min`` minutes, at
most ``max_epochs``. ``EPOCHS`` set by hand wins, and a run resumed from a checkpoint keeps
the plan it started with, so that its schedules still end where they were meant to.
"""
from __future__ import annotations

import copy
import datetime as dt
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .train import CHECKPOINT_NAME, fit


@dataclass(frozen=True)
class EpochPlan:
    """The epochs of one training run and where that number came from."""

    epochs: int
    source: str                          # 'EPOCHS', 'time budget' or 'checkpoint'
    seconds_per_epoch: float | None = None
    budget_min: float | None = None
    max_epochs: int | None = None
    planned_at: float = 0.0              # time.time() when the plan was made

    @property
    def minutes(self) -> float | None:
        """The estimated training time, or None where nothing was timed."""
        if self.seconds_per_epoch is None:
            return None
        return self.epochs * self.seconds_per_epoch / 60

    def ends_at(self) -> dt.datetime | None:
        """When training should end (this machine's clock), or None."""
        if self.minutes is None:
            return None
        return dt.datetime.fromtimestamp(self.planned_at + 60 * self.minutes)

    @property
    def short(self) -> str:
        """For the progress bar: '74 epochs, ends about 14:32'."""
        end = self.ends_at()
        return f"{self.epochs} epochs" + (f", ends about {end:%H:%M}" if end else "")

    def __str__(self) -> str:
        if self.source == "time budget":
            capped = " (the most this run uses)" if self.epochs == self.max_epochs else ""
            return (f"time budget {self.budget_min:g} min: {self.seconds_per_epoch:.1f} s per "
                    f"epoch measured on this device -> {self.epochs} epochs{capped}, about "
                    f"{self.minutes:.1f} min; training ends about {self.ends_at():%H:%M}")
        if self.source == "checkpoint":
            return f"{self.epochs} epochs: the plan of the run this checkpoint belongs to"
        return f"{self.epochs} epochs, as EPOCHS says"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_step(step_fn: Callable, loader, optimizer: torch.optim.Optimizer, *,
                     modules: dict[str, nn.Module], device: torch.device, steps: int = 10,
                     warmup: int = 3, after_step: Callable[[int], None] | None = None,
                     **fit_kwargs) -> float:
    """Seconds per training step of ``step_fn`` on ``device``: the ``steps`` steps after
    ``warmup`` (the first batches, the data workers' start, the GPU's autotuning), timed in
    one pass over ``loader`` with the device synchronised at both ends.

    The probe runs real steps at a learning rate of 0 (the same work, no step that could
    diverge); ``modules`` (everything the steps change: batch-norm statistics, a teacher)
    and the optimiser's state are put back as they were afterwards, so the run that
    follows starts from the same weights. ``fit_kwargs`` go to
    :func:`course_utils.train.fit`.
    """
    warmup = max(1, warmup)
    last = warmup + steps - 1
    marks: dict[int, float] = {}

    def timed(step: int) -> None:
        if after_step is not None:
            after_step(step)
        if step in (warmup - 1, last):
            _sync(device)
            marks[step] = time.perf_counter()

    saved_modules = {name: copy.deepcopy(m.state_dict()) for name, m in modules.items()}
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    for group in optimizer.param_groups:
        group["lr"] = 0.0        # the same work per step; no step that could diverge
    try:
        fit(step_fn, loader, optimizer, epochs=last + 1, max_steps=last + 1, device=device,
            progress=False, after_step=timed, **fit_kwargs)
    finally:
        for name, m in modules.items():
            m.load_state_dict(saved_modules[name])
        optimizer.load_state_dict(saved_optimizer)
    if last not in marks:
        raise ValueError("the loader gave no batch to time")
    return (marks[last] - marks[warmup - 1]) / steps


def epochs_within(budget_min: float, seconds_per_epoch: float, max_epochs: int) -> int:
    """The most whole epochs in ``budget_min`` minutes: at least 1, at most ``max_epochs``."""
    fit_in = math.floor(60 * budget_min / max(seconds_per_epoch, 1e-9))
    return int(min(max_epochs, max(1, fit_in)))


def checkpoint_epochs(checkpoint_dir: str | Path | None) -> int | None:
    """The epochs planned by the run that wrote ``checkpoint_dir``'s checkpoint, if any."""
    if checkpoint_dir is None:
        return None
    path = Path(checkpoint_dir) / CHECKPOINT_NAME
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    return state.get("epochs")


def plan_epochs(epochs: int | None, budget_min: float, *, steps_per_epoch: int,
                probe: Callable[[], float], max_epochs: int,
                checkpoint_dir: str | Path | None = None) -> EpochPlan:
    """The epochs to train: ``epochs`` if given; else those of the checkpoint being resumed;
    else as many as ``budget_min`` allows at the speed ``probe()`` measures (seconds per
    step), at most ``max_epochs``."""
    if epochs is not None:
        return EpochPlan(int(epochs), "EPOCHS")
    resumed = checkpoint_epochs(checkpoint_dir)
    if resumed is not None:
        return EpochPlan(int(resumed), "checkpoint")
    per_epoch = probe() * steps_per_epoch
    return EpochPlan(epochs_within(budget_min, per_epoch, max_epochs), "time budget",
                     seconds_per_epoch=per_epoch, budget_min=budget_min,
                     max_epochs=max_epochs, planned_at=time.time())
