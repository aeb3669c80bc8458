"""One training loop for every method of the course.

A method supplies ``step_fn(batch) -> loss``; :func:`fit` moves the batch to the device,
runs it under mixed precision on CUDA, steps the optimiser and scheduler, calls
``after_step`` (for momentum encoders and teachers), shows a ``tqdm.auto`` progress bar
(never while grading) and records a :class:`History`. Given a ``checkpoint_dir`` it saves
after every epoch and resumes from the last save.
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from .runtime import get_device, is_grading


@dataclass
class History:
    """Per-step losses and learning rates, per-epoch mean losses, wall-clock seconds."""

    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    epoch_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def steps(self) -> int:
        return len(self.loss)

    def state_dict(self) -> dict:
        return dict(loss=self.loss, lr=self.lr, epoch_loss=self.epoch_loss, seconds=self.seconds)


def to_device(batch, device: torch.device):
    """Move tensors (nested in tuples, lists and dicts) to ``device``."""
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def autocast_for(device: torch.device, enabled: bool = True):
    """bfloat16 autocast on CUDA (float16 where bf16 is missing); nothing elsewhere."""
    if not enabled or device.type != "cuda":
        return nullcontext(), None
    if torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16), None
    return torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int,
                  warmup_steps: int = 0) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up, then cosine decay to zero, stepped once per optimiser step."""
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(1, total_steps - warmup_steps))
    if warmup_steps <= 0:
        return cosine
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1e-3,
                                               total_iters=warmup_steps)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, cosine],
                                                 milestones=[warmup_steps])


def _save(path: Path, modules: dict, optimizer, scheduler, epoch: int, history: History):
    state = {"epoch": epoch, "history": history.state_dict(),
             "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict() if scheduler else None,
             "modules": {name: m.state_dict() for name, m in modules.items()}}
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # a disconnect mid-save never leaves a broken checkpoint


def _resume(path: Path, modules: dict, optimizer, scheduler, history: History) -> int:
    state = torch.load(path, map_location="cpu", weights_only=False)
    for name, m in modules.items():
        m.load_state_dict(state["modules"][name])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    for key, value in state["history"].items():
        setattr(history, key, value)
    return state["epoch"] + 1


def fit(step_fn: Callable[[object], torch.Tensor], loader: Iterable,
        optimizer: torch.optim.Optimizer, *, epochs: int = 1, max_steps: int | None = None,
        scheduler=None, device: torch.device | None = None, amp: bool = True,
        after_step: Callable[[int], None] | None = None, progress: bool | None = None,
        checkpoint_dir: str | Path | None = None, modules: dict[str, nn.Module] | None = None,
        grad_clip: float | None = None, desc: str = "train") -> History:
    """Train for ``epochs`` passes over ``loader`` (or stop after ``max_steps`` steps).

    ``step_fn`` gets the batch already on ``device`` and returns the scalar loss.
    ``modules`` names what a checkpoint holds (the optimiser is always saved).
    """
    device = device or get_device()
    progress = (not is_grading()) if progress is None else progress
    history = History()
    start_epoch = 0
    ckpt = None
    if checkpoint_dir is not None:
        if not modules:
            raise ValueError("checkpoint_dir needs modules={'name': module, ...} to save")
        ckpt = Path(checkpoint_dir) / "last.pt"
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        if ckpt.exists():
            start_epoch = _resume(ckpt, modules, optimizer, scheduler, history)
            if progress:
                print(f"resumed from {ckpt} at epoch {start_epoch}")
    autocast, scaler = autocast_for(device, amp)
    steps_per_epoch = len(loader) if hasattr(loader, "__len__") else None
    total = epochs * steps_per_epoch if steps_per_epoch else None
    if max_steps is not None:
        total = min(total, max_steps) if total else max_steps
    bar = tqdm(total=total, initial=history.steps, desc=desc, disable=not progress,
               dynamic_ncols=True)
    t0 = time.perf_counter() - history.seconds
    for epoch in range(start_epoch, epochs):
        epoch_losses = []
        for batch in loader:
            batch = to_device(batch, device)
            with autocast:
                loss = step_fn(batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {history.steps}")
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(
                    [p for g in optimizer.param_groups for p in g["params"]], grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if after_step is not None:
                after_step(history.steps)
            value = loss.item()
            epoch_losses.append(value)
            history.loss.append(value)
            history.lr.append(optimizer.param_groups[0]["lr"])
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{value:.3f}")
            if max_steps is not None and history.steps >= max_steps:
                break
        if epoch_losses:
            history.epoch_loss.append(sum(epoch_losses) / len(epoch_losses))
        history.seconds = time.perf_counter() - t0
        if ckpt is not None:
            _save(ckpt, modules, optimizer, scheduler, epoch, history)
        if max_steps is not None and history.steps >= max_steps:
            break
    bar.close()
    history.seconds = time.perf_counter() - t0
    return history


def steps_for(epochs: int, n_samples: int, batch_size: int, drop_last: bool = True) -> int:
    """Optimiser steps in ``epochs`` passes over ``n_samples``."""
    per_epoch = n_samples // batch_size if drop_last else math.ceil(n_samples / batch_size)
    return epochs * max(1, per_epoch)
