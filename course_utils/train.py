"""One training loop for every method of the course.

A method supplies ``step_fn(batch) -> loss``; :func:`fit` moves the batch to the device,
runs it under mixed precision on CUDA, steps the optimiser and scheduler, calls
``after_step`` (for momentum encoders and teachers), shows a ``tqdm.auto`` progress bar
(never while grading) and records a :class:`History`. Given a ``checkpoint_dir`` it saves
after every epoch (with the number of epochs planned) and resumes from the last save.

The loop never waits for the GPU at every step: losses stay on the device and are read
(and checked to be finite) every ``log_every`` steps, so the CPU can queue the next steps.
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


def to_device(batch, device: torch.device, channels_last: bool = False):
    """Move tensors (nested in tuples, lists and dicts) to ``device``; with
    ``channels_last``, image batches (4-D floating tensors) also change memory format."""
    if torch.is_tensor(batch):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.dim() == 4 and batch.is_floating_point():
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device, channels_last) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device, channels_last) for k, v in batch.items()}
    return batch


BF16_MIN_CAPABILITY = 8     # Ampere (A100, L4, RTX 30xx) and later run bfloat16 natively


def autocast_for(device: torch.device, enabled: bool = True):
    """The mixed precision that fits the device, as ``(autocast context, grad scaler)``.

    bfloat16 autocast on a GPU of compute capability 8 or more (no scaler needed);
    float16 with a gradient scaler below that (a T4 or V100: there
    ``torch.cuda.is_bf16_supported()`` counts emulation, and bfloat16 runs without tensor
    cores); float32 (no autocast, no scaler) on the CPU and on Apple's MPS.
    """
    if not enabled or device.type != "cuda":
        return nullcontext(), None
    major, _minor = torch.cuda.get_device_capability(device)
    if major >= BF16_MIN_CAPABILITY:
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


CHECKPOINT_NAME = "last.pt"


def _save(path: Path, modules: dict, optimizer, scheduler, epoch: int, epochs: int,
          history: History):
    state = {"epoch": epoch, "epochs": epochs, "history": history.state_dict(),
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
        grad_clip: float | None = None, desc: str = "train", channels_last: bool = False,
        log_every: int = 25) -> History:
    """Train for ``epochs`` passes over ``loader`` (or stop after ``max_steps`` steps).

    ``step_fn`` gets the batch already on ``device`` (image batches in channels-last
    memory format if asked: pair it with ``model.to(memory_format=torch.channels_last)``)
    and returns the scalar loss. ``modules`` names what a checkpoint holds (the optimiser
    is always saved). Losses are read from the device every ``log_every`` steps.
    """
    device = device or get_device()
    progress = (not is_grading()) if progress is None else progress
    history = History()
    start_epoch = 0
    ckpt = None
    if checkpoint_dir is not None:
        if not modules:
            raise ValueError("checkpoint_dir needs modules={'name': module, ...} to save")
        ckpt = Path(checkpoint_dir) / CHECKPOINT_NAME
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
        pending = []                                   # this epoch's losses not read yet

        def read_pending():
            values = torch.stack(pending).tolist()     # one wait for the device, not one per step
            for offset, value in enumerate(values):
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"loss is {value} at step {history.steps + offset}")
            epoch_losses.extend(values)
            history.loss.extend(values)
            bar.update(len(values))
            bar.set_postfix(epoch=epoch, loss=f"{values[-1]:.3f}")
            pending.clear()

        for batch in loader:
            batch = to_device(batch, device, channels_last)
            with autocast:
                loss = step_fn(batch)
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
            pending.append(loss.detach().float())
            history.lr.append(optimizer.param_groups[0]["lr"])
            steps_done = len(history.lr)
            if after_step is not None:
                after_step(steps_done - 1)
            if len(pending) >= log_every:
                read_pending()
            if max_steps is not None and steps_done >= max_steps:
                break
        if pending:
            read_pending()
        if epoch_losses:
            history.epoch_loss.append(sum(epoch_losses) / len(epoch_losses))
        history.seconds = time.perf_counter() - t0
        if ckpt is not None:
            _save(ckpt, modules, optimizer, scheduler, epoch, epochs, history)
        if max_steps is not None and history.steps >= max_steps:
            break
    bar.close()
    history.seconds = time.perf_counter() - t0
    return history


def steps_for(epochs: int, n_samples: int, batch_size: int, drop_last: bool = True,
              max_steps: int | None = None) -> int:
    """Optimiser steps in ``epochs`` passes over ``n_samples`` (at most ``max_steps``)."""
    per_epoch = n_samples // batch_size if drop_last else math.ceil(n_samples / batch_size)
    steps = epochs * max(1, per_epoch)
    return steps if max_steps is None else min(steps, max_steps)
