"""Visible checks for notebook 02 (MoCo: momentum encoder, queue, logits, training step).

Each ``check_*`` runs your function (or class) on fixed inputs and compares the result with
stored numbers: the right one and those of known mistakes (see ``course_utils.checks``),
in ``stored/moco.py``; this module only compares. The queue checks compare *where* your
queue puts fixed keys, and the step check hands your step a small recording queue (below)
that notes in which order it is used.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import (as_array, close, diagnose, fail, fixed_tensor, known, passed, quiet,
               require_finite, require_grad, require_tensor, short)
from .stored.moco import TABLES

# ============================================================================ fixed inputs

MOMENTUM = 0.9


def _fill(module: nn.Module, phase: float) -> nn.Module:
    with torch.no_grad():
        for n, p in enumerate(module.parameters()):
            p.copy_(fixed_tensor(*p.shape, phase=phase + 0.37 * n))
    return module


def momentum_inputs():
    """online, target: Linear(3, 2) + BatchNorm1d(2) with fixed weights and BN statistics."""
    online = _fill(nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)), phase=0.0)
    target = _fill(nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)), phase=2.0)
    with torch.no_grad():
        online[1].running_mean.copy_(torch.tensor([0.5, -0.5]))
        online[1].running_var.copy_(torch.tensor([2.0, 3.0]))
        online[1].num_batches_tracked.fill_(7)
        target[1].running_mean.copy_(torch.tensor([0.1, 0.2]))
        target[1].running_var.copy_(torch.tensor([1.0, 1.5]))
        target[1].num_batches_tracked.fill_(3)
    for p in target.parameters():
        p.requires_grad_(False)       # as in MoCo: the key encoder is not trained by SGD
    for n, p in enumerate(online.parameters()):
        p.grad = fixed_tensor(*p.shape, phase=5.0 + n)   # a gradient from the last backward
    return online, target


def logits_inputs():
    """q (4, 3), k (4, 3), queue_keys (6, 3), all L2-normalised, and tau = 0.2."""
    q = F.normalize(fixed_tensor(4, 3), dim=1)
    k = F.normalize(q + 0.5 * fixed_tensor(4, 3, phase=2.0), dim=1)
    queue = F.normalize(fixed_tensor(6, 3, phase=4.0, step=1.3), dim=1)
    return q, k, queue, 0.2


def step_inputs():
    """x_q, x_k (5, 4), query and key encoders Linear(4, 3), queue keys (6, 3), m, tau."""
    x_q = fixed_tensor(5, 4, phase=0.3)
    x_k = fixed_tensor(5, 4, phase=1.7)
    query = _fill(nn.Linear(4, 3), phase=0.0)
    key = _fill(nn.Linear(4, 3), phase=3.0)    # requires_grad stays True: no_grad must hold
    queue = F.normalize(fixed_tensor(6, 3, phase=6.0, step=1.1), dim=1)
    return x_q, x_k, query, key, queue, MOMENTUM, 0.5


class RecordingQueue:
    """A stand-in for KeyQueue that notes the order in which a step reads and fills it."""

    def __init__(self, keys: torch.Tensor):
        self._keys = keys.clone()
        self.events: list[str] = []
        self.enqueued: list[torch.Tensor] = []

    @property
    def keys(self) -> torch.Tensor:
        self.events.append("keys")
        return self._keys.clone()

    def enqueue(self, keys: torch.Tensor) -> None:
        self.events.append("enqueue")
        self.enqueued.append(keys)
        self._keys = torch.cat([keys.detach(), self._keys])[:len(self._keys)]


# ============================================================================ momentum update


def _params(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().double().ravel() for p in module.parameters()])


def _buffers(module: nn.Module) -> list[torch.Tensor]:
    return [b.detach().clone() for b in module.buffers()]


def check_momentum_update(fn) -> None:
    """Check ``momentum_update(online, target, m)`` on two fixed Linear + BatchNorm modules."""
    what, stored = "momentum_update", TABLES["momentum"]
    online, target = momentum_inputs()
    online_before, target_before = _params(online), _params(target)
    target_tensors = [p for p in target.parameters()]
    grads_before = [p.grad.clone() for p in online.parameters()]
    online_buffers, target_buffers = _buffers(online), _buffers(target)
    with quiet():
        result = fn(online, target, MOMENTUM)
    if (isinstance(result, nn.Module) and result is not target
            and close(_params(result), stored["expected"])):
        fail(f"{what} returned a new module; update `target` in place (p.mul_(m).add_(...), "
             f"or p.copy_(...)) so that the key encoder the training loop holds changes.")
    if any(a is not b for a, b in zip(target.parameters(), target_tensors)):
        fail(f"{what} replaced the target's parameter tensors; change them in place instead "
             f"(the optimiser and other code keep references to the old ones).")
    if not torch.equal(_params(online), online_before):
        fail(f"{what} changed the online (query) network: only the target moves; the online "
             f"network is trained by the optimiser alone.")
    if torch.equal(_params(target), target_before):
        fail(f"{what} left the target unchanged: update its parameters in place "
             f"(p_target.mul_(m).add_(p_online, alpha=1 - m)); rebinding a loop variable "
             f"(p_target = ...) changes nothing.")
    for p in target.parameters():
        if p.requires_grad or p.grad_fn is not None:
            fail(f"{what} recorded the update in autograd (a target parameter now has "
                 f"requires_grad=True or a grad_fn): do it under torch.no_grad().")
    diagnose(_params(target), stored["expected"], known(stored), what,
             hint="theta_target <- m * theta_target + (1 - m) * theta_online, for every pair "
                  "of parameters.")
    for before, after in zip(target_buffers, target.buffers()):
        if not torch.equal(before, after):
            fail(f"{what} changed the target's buffers (BatchNorm running mean/var): MoCo "
                 f"averages parameters only (module.parameters(), not state_dict()).")
    if not all(torch.equal(b, a) for b, a in zip(online_buffers, online.buffers())):
        fail(f"{what} changed the online network's buffers.")
    if not all(torch.equal(g, p.grad) for g, p in zip(grads_before, online.parameters())):
        fail(f"{what} changed the online network's gradients; leave .grad alone.")
    _check_momentum_edges(fn, what)
    passed(what, f"target = {MOMENTUM} * target + {1 - MOMENTUM:.1f} * online, in place, "
                 f"parameters only; m = 0 and m = 1; a target that requires grad")


def _check_momentum_edges(fn, what: str) -> None:
    """m = 0 (a copy of the online network), m = 1 (no change), and a target whose
    parameters require grad (moco_step's key encoder may): compared with the inputs."""
    for m, becomes, words in ((0.0, "online", "a copy of the online network"),
                              (1.0, "target", "unchanged")):
        online, target = momentum_inputs()
        expected = _params(online if becomes == "online" else target)
        with quiet():
            fn(online, target, m)
        if not torch.allclose(_params(target), expected, atol=1e-6):
            fail(f"{what} with m = {m:g}: the target should be {words} (theta_target <- "
                 f"m * theta_target + (1 - m) * theta_online); use m exactly as given.")
    online, target = momentum_inputs()
    for p in target.parameters():
        p.requires_grad_(True)
    with quiet():
        try:
            fn(online, target, MOMENTUM)
        except RuntimeError as error:
            fail(f"{what} failed on a target whose parameters require grad ({error}): do the "
                 f"update under torch.no_grad() (keep the decorator).")
    if not close(_params(target), TABLES["momentum"]["expected"]):
        fail(f"{what} gives other values when the target's parameters require grad.")
    for p in target.parameters():
        if not p.requires_grad or p.grad_fn is not None or p.grad is not None:
            fail(f"{what} on a target whose parameters require grad: they should stay leaves "
                 f"that still require grad, with no .grad and no grad_fn (torch.no_grad()).")


# ============================================================================ the key queue


def _unit_rows(n: int, dim: int, phase: float) -> torch.Tensor:
    return F.normalize(fixed_tensor(n, dim, phase=phase, step=0.9), dim=1)


def _where(keys: torch.Tensor, rows: dict[str, torch.Tensor]) -> list[str]:
    """Name each row of ``keys`` after the fixed key it equals ('?' for none)."""
    names = []
    for row in keys:
        hit = [n for n, r in rows.items() if torch.allclose(row.double(), r.double(), atol=1e-6)]
        names.append(hit[0] if hit else "?")
    return names


def check_key_queue(cls) -> None:
    """Check ``KeyQueue(dim, size)``: shape, initial keys, FIFO order, wrap-around, copies."""
    what = "KeyQueue"
    dim, size = 3, 5
    with quiet():
        try:
            queue = cls(dim, size, device=None)
        except TypeError as error:
            fail(f"{what}({dim}, {size}, device=None) failed ({error}): accept an optional "
                 f"device=None for the buffer.")
        keys0 = queue.keys
    require_tensor(keys0, f"{what}(3, 5).keys")
    if tuple(keys0.shape) == (dim, size):
        fail(f"{what}.keys has shape ({dim}, {size}) = (dim, size), MoCo's layout; this "
             f"notebook stores one key per row: (size, dim) = ({size}, {dim}).")
    require_tensor(keys0, f"{what}(3, 5).keys", shape=(size, dim))
    require_finite(keys0, f"{what}(3, 5).keys")
    norms = as_array(keys0.norm(dim=1))
    if not close(norms, [1.0] * size, atol=1e-4):
        fail(f"the initial keys should be random unit vectors (as in MoCo, L2-normalised "
             f"along dim=1); their norms are {short(norms)}.")
    if keys0.requires_grad:
        fail(f"{what}.keys requires grad: the queue holds constants (detach them).")
    a = _unit_rows(3, dim, phase=0.0)           # a0 a1 a2
    b = _unit_rows(4, dim, phase=3.0)           # b0 b1 b2 b3
    names = {**{f"a{i}": r for i, r in enumerate(a)}, **{f"b{i}": r for i, r in enumerate(b)}}
    with quiet():
        queue.enqueue(a.clone().requires_grad_(True))
        after_a = queue.keys
    got = _where(after_a, names)
    if got[:3] != ["a0", "a1", "a2"]:
        fail(f"after enqueue(a0 a1 a2) on an empty queue of 5, slots 0-2 should hold "
             f"a0 a1 a2 (in order); your .keys rows are {got}.")
    if not torch.equal(after_a[3:], keys0[3:]):
        fail(f"enqueue(3 keys) changed slots 3 and 4 too: only as many slots as keys "
             f"change. Did the new keys go to the front, shifting the old ones (torch.cat)? "
             f"A ring buffer writes at a pointer that moves on; nothing else moves.")
    if after_a.requires_grad:
        fail(f"{what}.keys requires grad after enqueueing keys that do: store keys.detach().")
    with quiet():
        queue.enqueue(b.clone())
        after_b = queue.keys
    got = _where(after_b, names)
    expected = ["b2", "b3", "a2", "b0", "b1"]
    if got != expected:
        hint = ""
        if got == ["a0", "a1", "a2", "b0", "b1"]:
            hint = " b2 and b3 were dropped: keys that do not fit before the end wrap " \
                   "around to slot 0 (index with (ptr + arange(B)) % size)."
        elif got[:4] == ["b0", "b1", "b2", "b3"] and got[4] == "a0":
            hint = " The newest keys went to the front: a ring buffer writes at a pointer " \
                   "that moves on, so the oldest key is the next one overwritten."
        elif got[:4] == ["b0", "b1", "b2", "b3"]:
            hint = " The batch that did not fit was written from slot 0 (the pointer was " \
                   "reset): b0 b1 go to the last two slots, only b2 b3 wrap around."
        fail(f"then enqueue(b0 b1 b2 b3), 4 keys with 2 slots left: expected rows {expected} "
             f"(b2 and b3 wrap around and overwrite the oldest keys a0 a1); got {got}.{hint}")
    if _where(after_a, names)[:3] != ["a0", "a1", "a2"]:
        fail(f"the keys returned before the second enqueue changed afterwards: .keys must "
             f"return a copy (self.buffer.clone()); otherwise enqueueing after the loss breaks "
             f"backward (autograd saved the old queue).")
    with quiet():
        for n in range(size):                   # one key at a time, all the way round
            queue.enqueue(b[n % 4:n % 4 + 1].clone())
        full = _unit_rows(size, dim, phase=7.0)
        queue.enqueue(full)
    got = _where(queue.keys, {f"c{i}": r for i, r in enumerate(full)})
    if sorted(got) != [f"c{i}" for i in range(size)]:
        fail(f"after enqueueing one key at a time and then a batch of exactly `size` keys, "
             f"the queue should hold just that batch; got rows {got}.")
    _check_queue_end(cls, what)
    passed(what, "keys (size, dim), FIFO ring buffer with wrap-around, .keys is a detached "
                 "copy, keys stored as given")


def _check_queue_end(cls, what: str) -> None:
    """A batch that ends exactly at the last slot sends the next one to slot 0; keys that
    are not unit vectors are stored as they are."""
    dim, size = 2, 6
    a = _unit_rows(2, dim, phase=1.0)
    b = 2.0 * _unit_rows(4, dim, phase=4.0)          # not unit length: stored as given
    c = _unit_rows(1, dim, phase=8.0)
    names = {**{f"a{i}": r for i, r in enumerate(a)}, **{f"b{i}": r for i, r in enumerate(b)},
             "c0": c[0]}
    with quiet():
        queue = cls(dim, size)
        queue.enqueue(a.clone())
        queue.enqueue(b.clone())                     # slots 2-5: up to the end exactly
        after_b = queue.keys
        queue.enqueue(c.clone())                     # the pointer is back at slot 0
        after_c = queue.keys
    got = _where(after_b, names)
    if got[2:] != ["b0", "b1", "b2", "b3"]:
        hint = ""
        if got[2:] == ["?"] * 4 and close(after_b[2:].norm(dim=1), [1.0] * 4, atol=1e-4):
            hint = " They were normalised again: store the keys as they arrive."
        fail(f"{what}({dim}, {size}): after enqueue(a0 a1) and enqueue(b0 b1 b2 b3) (keys of "
             f"length 2) slots 2-5 should hold b0 b1 b2 b3 as given; got rows {got}.{hint}")
    got = _where(after_c, names)
    if got != ["c0", "a1", "b0", "b1", "b2", "b3"]:
        fail(f"{what}({dim}, {size}): the queue was filled exactly to its end, so the next key "
             f"c0 goes to slot 0 (over the oldest, a0); got rows {got}.")


# ============================================================================ logits


def check_moco_logits(fn) -> None:
    """Check ``moco_logits(q, k, queue_keys, tau)`` on fixed unit vectors."""
    what = "moco_logits"
    q, k, queue, tau = logits_inputs()
    N, K = len(q), len(queue)
    q_in = q.clone().requires_grad_(True)
    queue_in = queue.clone().requires_grad_(True)
    k_in = k.clone()
    with quiet():
        out = fn(q_in, k_in, queue_in, tau)
    if not (torch.equal(q_in.detach(), q) and torch.equal(k_in, k)
            and torch.equal(queue_in.detach(), queue)):
        fail(f"{what} changed its inputs in place (q, k or queue_keys): build new tensors "
             f"(a / tau, not a /= tau); the queue's keys are shared with the queue.")
    if not isinstance(out, tuple) or len(out) != 2:
        fail(f"{what} should return a tuple (logits, labels), got {type(out).__name__}.")
    logits, labels = out
    require_tensor(logits, f"{what}: logits")
    if tuple(logits.shape) == (N, N + K):
        fail(f"logits have shape ({N}, {N + K}): you compared each q with every k (q @ k.T). "
             f"MoCo's positive is one number per query, l_pos = (q * k).sum(dim=1): the "
             f"other keys of the batch are not negatives here, the queue is.")
    require_tensor(logits, f"{what}: logits", shape=(N, 1 + K),
                   hint="Column 0: l_pos (N, 1); columns 1..K: l_neg = q @ queue_keys.T.")
    require_finite(logits, f"{what}: logits")
    require_grad(logits, f"{what}: logits")
    if logits.dtype != torch.float32:
        fail(f"{what}: float32 inputs should give float32 logits, got {logits.dtype}.")
    diagnose(logits, TABLES["logits"]["expected"], known(TABLES["logits"]), f"{what}: logits",
             hint="logits = cat([l_pos, l_neg], dim=1) / tau.")
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.long:
        fail(f"labels should be a torch.long tensor (F.cross_entropy wants class indices), "
             f"got {getattr(labels, 'dtype', type(labels).__name__)}.")
    if tuple(labels.shape) != (N,) or labels.abs().sum().item() != 0:
        fail(f"labels should be {N} zeros (the positive is class 0 of every row), got "
             f"{labels.tolist()}.")
    with quiet():
        logits.sum().backward()
    if queue_in.grad is not None:
        fail(f"a gradient reached the queue: use queue_keys.detach(); the queue holds "
             f"constants from earlier batches.")
    if q_in.grad is None or q_in.grad.abs().sum().item() == 0:
        fail(f"no gradient reached q: the loss must train the query encoder.")
    passed(what, f"logits ({N}, 1 + {K}) with the positive in column 0, labels zeros, "
                 f"queue detached")


# ============================================================================ training step


def check_moco_step(fn) -> None:
    """Check ``moco_step(x_q, x_k, query_encoder, key_encoder, queue, m, tau)`` on fixed
    linear encoders and a recording queue (uses your momentum_update and moco_logits)."""
    what = "moco_step"
    x_q, x_k, query, key, queue_keys, m, tau = step_inputs()
    queue = RecordingQueue(queue_keys)
    query_before = _params(query)
    with quiet():
        loss = fn(x_q, x_k, query, key, queue, m, tau)
    require_tensor(loss, f"{what}(...)")
    if loss.dim() != 0:
        fail(f"{what} should return the scalar loss, got shape {tuple(loss.shape)}.")
    require_finite(loss, what)
    require_grad(loss, what)
    if not torch.equal(_params(query), query_before):
        fail(f"{what} changed the query encoder: call momentum_update(query_encoder, "
             f"key_encoder, m) (online first, target second).")
    if "enqueue" not in queue.events:
        fail(f"{what} never called queue.enqueue(k).")
    if "keys" not in queue.events:
        fail(f"{what} never read queue.keys: the negatives come from the queue.")
    if queue.events.count("enqueue") > 1:
        fail(f"{what} called queue.enqueue {queue.events.count('enqueue')} times: enqueue this "
             f"batch's keys once, after the loss.")
    if queue.events.index("enqueue") < queue.events.index("keys"):
        fail(f"{what} enqueued the new keys before reading the queue: the logits must use "
             f"the queue as it was before this batch (otherwise each key is its own "
             f"negative). Compute the logits and the loss, then enqueue.")
    keys = queue.enqueued[-1]
    if keys.requires_grad:
        fail(f"the enqueued keys carry a gradient: compute k under torch.no_grad().")
    diagnose(loss, TABLES["step"]["expected"], known(TABLES["step"]), f"{what}: loss",
             hint="Order: momentum update; q = normalize(query_encoder(x_q)); under no_grad "
                  "k = normalize(key_encoder(x_k)); logits against queue.keys; cross-entropy; "
                  "enqueue k. (Does check_moco_logits pass?)")
    diagnose(keys, TABLES["step_keys"]["expected"], known(TABLES["step_keys"]),
             f"{what}: the enqueued keys",
             hint="enqueue k = normalize(key_encoder(x_k)), one row per image.")
    if not close(key.weight, TABLES["step_key_weight"]["expected"]):
        fail(f"{what}: the key encoder's weights after the step are not m * key + (1 - m) * "
             f"query.")
    with quiet():
        loss.backward()
    if any(p.grad is not None for p in key.parameters()):
        fail(f"after loss.backward() the key encoder has gradients: compute the keys under "
             f"torch.no_grad(); the key encoder moves only by the momentum update.")
    if any(p.grad is None for p in query.parameters()):
        fail(f"after loss.backward() the query encoder has no gradient.")
    passed(what, f"loss {loss.item():.4f}; momentum update, keys without gradient, logits "
                 f"against the old queue, then enqueue")


__all__ = ["RecordingQueue", "check_key_queue", "check_moco_logits", "check_moco_step",
           "check_momentum_update", "logits_inputs", "momentum_inputs", "step_inputs"]
