"""The visible checks of notebook 02 accept right answers and name the known mistakes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from check_data.moco import (logits_no_tau, logits_pos_last, logits_right, make_step,
                             momentum_right, momentum_swapped)
from course_utils.checks import moco as checks
from helpers import fails_with


# ----------------------------------------------------------------------------- momentum update


def test_momentum_update_accepts_right_answer(capsys):
    checks.check_momentum_update(momentum_right)
    out = capsys.readouterr()
    assert "[ok] momentum_update" in out.out and out.err == ""


@torch.no_grad()
def momentum_state_dict(online, target, m):
    so, st = online.state_dict(), target.state_dict()
    for name, value in st.items():
        if value.is_floating_point():
            value.copy_(m * value + (1 - m) * so[name])


def momentum_no_grad_missing(online, target, m):
    for po, pt in zip(online.parameters(), target.parameters()):
        pt.mul_(m).add_(po, alpha=1 - m)


@torch.no_grad()
def momentum_rebinds(online, target, m):
    for po, pt in zip(online.parameters(), target.parameters()):
        pt = m * pt + (1 - m) * po  # noqa: F841  (changes nothing)


def momentum_decorator_removed(online, target, m):
    """Passes a target that does not require grad; fails MoCo's step, whose may."""
    for po, pt in zip(online.parameters(), target.parameters()):
        pt.mul_(m).add_(po.detach(), alpha=1 - m)


@torch.no_grad()
def momentum_clamped(online, target, m):
    m = min(max(m, 0.5), 0.999)          # a "safe" momentum: breaks m = 0 and m = 1
    for po, pt in zip(online.parameters(), target.parameters()):
        pt.mul_(m).add_(po, alpha=1 - m)


@pytest.mark.parametrize("fn, words", [
    (momentum_swapped, ["swapped"]),
    (momentum_decorator_removed, ["require grad", "no_grad"]),
    (momentum_clamped, ["m = 0", "copy of the online network"]),
    (momentum_state_dict, ["buffers"]),
    (momentum_no_grad_missing, ["no_grad"]),
    (momentum_rebinds, ["unchanged"]),
])
def test_momentum_update_names_mistakes(fn, words):
    fails_with(checks.check_momentum_update, fn, *words)


# ----------------------------------------------------------------------------- key queue


class QueueRight:
    def __init__(self, dim, size, device=None):
        self.buffer = F.normalize(torch.randn(size, dim, device=device), dim=1)
        self.ptr = 0

    def enqueue(self, keys):
        for key in keys.detach():
            self.buffer[self.ptr] = key
            self.ptr = (self.ptr + 1) % len(self.buffer)

    @property
    def keys(self):
        return self.buffer.clone()


class QueueNoWrap(QueueRight):
    def enqueue(self, keys):
        n = min(len(keys), len(self.buffer) - self.ptr)
        self.buffer[self.ptr:self.ptr + n] = keys[:n].detach()
        self.ptr = (self.ptr + n) % len(self.buffer)


class QueueNewestFirst(QueueRight):
    def enqueue(self, keys):
        self.buffer = torch.cat([keys.detach(), self.buffer])[:len(self.buffer)]


class QueueView(QueueRight):
    @property
    def keys(self):
        return self.buffer


class QueueMoCoLayout(QueueRight):
    @property
    def keys(self):
        return self.buffer.T.clone()


class QueueNotNormalised(QueueRight):
    def __init__(self, dim, size, device=None):
        super().__init__(dim, size, device)
        self.buffer = torch.randn(size, dim) * 3


class QueueNoDevice(QueueRight):
    def __init__(self, dim, size):
        super().__init__(dim, size)


class QueueResetToZero(QueueRight):
    """MoCo's slice without its K % N == 0: a batch that does not fit starts again at 0."""

    def enqueue(self, keys):
        if self.ptr + len(keys) > len(self.buffer):
            self.ptr = 0
        self.buffer[self.ptr:self.ptr + len(keys)] = keys.detach()
        self.ptr = (self.ptr + len(keys)) % len(self.buffer)


class QueueRenormalises(QueueRight):
    def enqueue(self, keys):
        super().enqueue(F.normalize(keys, dim=1))


def test_key_queue_accepts_right_answer(capsys):
    checks.check_key_queue(QueueRight)
    out = capsys.readouterr()
    assert "[ok] KeyQueue" in out.out and out.err == ""


@pytest.mark.parametrize("cls, words", [
    (QueueNoWrap, ["wrap", "dropped"]),
    (QueueNewestFirst, ["front"]),
    (QueueView, ["copy"]),
    (QueueMoCoLayout, ["(size, dim)"]),
    (QueueNotNormalised, ["unit"]),
    (QueueNoDevice, ["device=None"]),
    (QueueResetToZero, ["written from slot 0", "b0 b1 go to the last two slots"]),
    (QueueRenormalises, ["as they arrive"]),
])
def test_key_queue_names_mistakes(cls, words):
    fails_with(checks.check_key_queue, cls, *words)


# ----------------------------------------------------------------------------- logits


def test_moco_logits_accepts_right_answer(capsys):
    checks.check_moco_logits(logits_right)
    out = capsys.readouterr()
    assert "[ok] moco_logits" in out.out and out.err == ""


def logits_matrix(q, k, queue_keys, tau):
    logits = torch.cat([q @ k.T, q @ queue_keys.detach().T], dim=1) / tau
    return logits, torch.arange(len(q))


def logits_attached(q, k, queue_keys, tau):
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue_keys.T], dim=1) / tau
    return logits, torch.zeros(len(q), dtype=torch.long)


def logits_float_labels(q, k, queue_keys, tau):
    logits, _ = logits_right(q, k, queue_keys, tau)
    return logits, torch.zeros(len(q))


def logits_divides_queue_in_place(q, k, queue_keys, tau):
    negatives = queue_keys.detach()
    negatives /= tau                       # the queue's own tensor, divided in place
    logits = torch.cat([(q * k).sum(1, keepdim=True) / tau, q @ negatives.T], dim=1)
    return logits, torch.zeros(len(q), dtype=torch.long)


def logits_float64(q, k, queue_keys, tau):
    logits, labels = logits_right(q.double(), k.double(), queue_keys.double(), tau)
    return logits, labels


@pytest.mark.parametrize("fn, words", [
    (logits_pos_last, ["column 0"]),
    (logits_divides_queue_in_place, ["in place"]),
    (logits_float64, ["float32"]),
    (logits_no_tau, ["temperature"]),
    (logits_matrix, ["q @ k.t"]),
    (logits_attached, ["detach"]),
    (logits_float_labels, ["long"]),
])
def test_moco_logits_names_mistakes(fn, words):
    fails_with(checks.check_moco_logits, fn, *words)


# ----------------------------------------------------------------------------- training step


def test_moco_step_accepts_right_answer(capsys):
    checks.check_moco_step(make_step())
    out = capsys.readouterr()
    assert "[ok] moco_step" in out.out and out.err == ""


@pytest.mark.parametrize("kwargs, words", [
    (dict(order="enqueue_first"), ["before reading the queue"]),
    (dict(momentum=False), ["not moved"]),
    (dict(normalise=False), ["normalise"]),
    (dict(no_grad=False), ["no_grad"]),
    (dict(key_from="query"), ["query encoder"]),
    (dict(order="momentum_after"), ["loss"]),
    (dict(enqueues=2), ["2 times", "once"]),
])
def test_moco_step_names_mistakes(kwargs, words):
    fails_with(checks.check_moco_step, make_step(**kwargs), *words)


def test_recording_queue_notes_the_order():
    queue = checks.RecordingQueue(torch.eye(3))
    _ = queue.keys
    queue.enqueue(torch.ones(1, 3))
    assert queue.events == ["keys", "enqueue"]
    assert torch.equal(queue.keys[0], torch.ones(3))
