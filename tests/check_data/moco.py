"""Notebook 02 (MoCo): the reference solutions and known mistakes of the momentum update, the
logits and the training step, and the tables course_utils/checks/moco.py compares with.

Regenerate course_utils/checks/stored/moco.py: ``python -m tests.check_data moco``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from course_utils.checks import moco as checks

from . import Mistake, double, table


# ----------------------------------------------------------------------------- momentum update


@torch.no_grad()
def momentum_right(online, target, m):
    for po, pt in zip(online.parameters(), target.parameters()):
        pt.copy_(m * pt + (1 - m) * po)


@torch.no_grad()
def momentum_swapped(online, target, m):
    for po, pt in zip(online.parameters(), target.parameters()):
        pt.copy_((1 - m) * pt + m * po)


def momentum_copy(online, target, m):
    momentum_right(online, target, 0.0)


MOMENTUM_MISTAKES = [
    Mistake("swapped", momentum_swapped,
            "the roles are swapped: the *target* keeps the share m and moves by (1 - m) "
            "towards the online network: theta_target <- m * theta_target + "
            "(1 - m) * theta_online."),
    Mistake("copy", momentum_copy,
            "the target became a copy of the online network: m was ignored (that is m = 0)."),
]


def _momentum(fn):
    """The target's parameters after ``fn`` on the fixed modules, in float64."""
    online, target = (module.double() for module in checks.momentum_inputs())
    fn(online, target, checks.MOMENTUM)
    return checks._params(target)


# ----------------------------------------------------------------------------- logits


def logits_right(q, k, queue_keys, tau):
    logits = torch.cat([torch.einsum("nc,nc->n", q, k)[:, None],
                        torch.einsum("nc,kc->nk", q, queue_keys.detach())], dim=1) / tau
    return logits, torch.zeros(len(q), dtype=torch.long)


def logits_pos_last(q, k, queue_keys, tau):
    logits, labels = logits_right(q, k, queue_keys, tau)
    return logits.roll(-1, dims=1), labels


def logits_no_tau(q, k, queue_keys, tau):
    logits, labels = logits_right(q, k, queue_keys, tau)
    return logits * tau, labels


def logits_times_tau(q, k, queue_keys, tau):
    logits, labels = logits_right(q, k, queue_keys, tau)
    return logits * tau ** 2, labels


LOGITS_MISTAKES = [
    Mistake("pos_last", logits_pos_last,
            "the positive is in the last column; MoCo puts it in column 0, so that the labels "
            "are all zero."),
    Mistake("no_tau", logits_no_tau, "divide the logits by the temperature tau."),
    Mistake("times_tau", logits_times_tau, "you multiplied by tau; divide by it."),
]


# ----------------------------------------------------------------------------- training step


def make_step(order="right", normalise=True, momentum=True, no_grad=True, key_from="key",
              enqueues=1):
    def step(x_q, x_k, query_encoder, key_encoder, queue, m, tau):
        if momentum and order != "momentum_after":
            momentum_right(query_encoder, key_encoder, m)
        norm = (lambda z: F.normalize(z, dim=1)) if normalise else (lambda z: z)
        q = norm(query_encoder(x_q))
        encoder = key_encoder if key_from == "key" else query_encoder
        if no_grad:
            with torch.no_grad():
                k = norm(encoder(x_k))
        else:
            k = norm(encoder(x_k))
        if order == "enqueue_first":
            queue.enqueue(k)
        logits, labels = logits_right(q, k, queue.keys, tau)
        loss = F.cross_entropy(logits, labels)
        if order != "enqueue_first":
            for _ in range(enqueues):
                queue.enqueue(k)
        if order == "momentum_after":
            momentum_right(query_encoder, key_encoder, m)
        return loss
    return step


STEP_MISTAKES = [
    Mistake("no_momentum", make_step(momentum=False),
            "the key encoder was not moved: call momentum_update(query_encoder, key_encoder, "
            "m) first, before the keys."),
    Mistake("no_normalize", make_step(normalise=False),
            "normalise q and k (F.normalize(..., dim=1)) before the logits."),
    Mistake("key_from_query", make_step(key_from="query"),
            "the keys come from the query encoder; they come from the key (momentum) "
            "encoder."),
]


def _step(fn) -> tuple:
    """The loss, the keys enqueued and the key encoder's weight after ``fn`` (float64)."""
    x_q, x_k, query, key, queue_keys, m, tau = double(checks.step_inputs())
    queue = checks.RecordingQueue(queue_keys)
    loss = fn(x_q, x_k, query.double(), key.double(), queue, m, tau)
    return loss, queue.enqueued[-1], key.weight


# ----------------------------------------------------------------------------- the tables


def tables() -> dict:
    return {"momentum": table(_momentum, momentum_right, MOMENTUM_MISTAKES),
            "logits": table(lambda fn: fn(*double(checks.logits_inputs()))[0], logits_right,
                            LOGITS_MISTAKES),
            "step": table(lambda fn: _step(fn)[0], make_step(), STEP_MISTAKES),
            "step_keys": table(lambda fn: _step(fn)[1], make_step()),
            "step_key_weight": table(lambda fn: _step(fn)[2], make_step())}
