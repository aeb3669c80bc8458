"""Notebook 01 (SimCLR): the reference solutions and known mistakes of the cross-entropy, the
cosine similarity matrix and NT-Xent, and the tables course_utils/checks/simclr.py compares
with.

Regenerate course_utils/checks/stored/simclr.py: ``python -m tests.check_data simclr``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from course_utils.checks import simclr as checks

from . import Mistake, double, on_cases, table


# ----------------------------------------------------------------------------- cross-entropy


def ce_rows(logits, targets):
    """Per-row -z_y + log sum exp(z), from max, exp, sum, log and gather."""
    top = logits.max(dim=1, keepdim=True).values
    lse = top.squeeze(1) + (logits - top).exp().sum(dim=1).log()
    return lse - logits.gather(1, targets[:, None]).squeeze(1)


def ce_right(logits, targets):
    return ce_rows(logits, targets).mean()


def ce_dim0(logits, targets):
    return torch.logsumexp(logits, 0).mean() - logits[torch.arange(len(targets)), targets].mean()


def no_add_back(logits, targets):
    m = logits.max(1, keepdim=True).values
    lse = (logits - m).exp().sum(1).log()
    return (lse - logits[torch.arange(len(targets)), targets]).mean()


def ce_index_block(logits, targets):
    return (torch.logsumexp(logits, 1)[:, None] - logits[:, targets]).mean()


def target_probability(logits, targets):
    """p(target) of each row."""
    return logits.softmax(1).gather(1, targets[:, None]).squeeze(1)


CE_MISTAKES = [
    Mistake("sum", lambda z, y: ce_rows(z, y).sum(),
            "you summed the per-sample losses; the loss is their mean over the batch."),
    Mistake("sign", lambda z, y: -ce_rows(z, y).mean(),
            "the sign is flipped: the loss is -log p(target), which is never negative."),
    Mistake("dim0", ce_dim0,
            "the log-sum-exp runs over the wrong dimension: sum over the classes (dim=1) of "
            "each row, not over the batch."),
    Mistake("no_add_back", no_add_back,
            "after subtracting the row maximum m inside exp, add it back: "
            "logsumexp(z) = m + log(sum(exp(z - m)))."),
    Mistake("index_block", ce_index_block,
            "logits[:, targets] picks a (B, B) block; you need one logit per row: "
            "logits[torch.arange(B), targets] (or logits.gather(1, targets[:, None]))."),
    Mistake("mean_bc", lambda z, y: ce_rows(z, y).mean() / z.shape[1],
            "you averaged over all B*C entries (e.g. of a one-hot product); average over the "
            "B samples only."),
    Mistake("no_log", lambda z, y: (1 / target_probability(z, y)).mean(),
            "the logarithm is missing: the loss is -log p(target)."),
    Mistake("prob", lambda z, y: -target_probability(z, y).mean(),
            "you returned -p(target); the loss is -log p(target)."),
]


# ----------------------------------------------------------------------------- cosine similarity


def cos_right(z):
    return F.cosine_similarity(z[:, None, :], z[None, :, :], dim=-1)


def cos_dim0(z):
    return F.normalize(z, dim=0) @ F.normalize(z, dim=0).T


COS_MISTAKES = [
    Mistake("dot", lambda z: z @ z.T,
            "these are plain dot products z_i . z_k: divide by the norms |z_i| |z_k| (or "
            "L2-normalise each row first). The diagonal should be 1."),
    Mistake("dim0", cos_dim0,
            "you normalised along dim=0 (each feature over the batch); normalise each row "
            "(each sample, dim=1) to unit length."),
    Mistake("one_side", lambda z: F.normalize(z, dim=1) @ z.T,
            "only one side is normalised: normalise both z_i and z_k (zn @ zn.T)."),
    Mistake("col_sq", lambda z: (z @ z.T) / (z.norm(dim=1) * z.norm(dim=1)),
            "the denominator must be |z_i| |z_k|: dividing by norms of shape (M,) broadcasts "
            "along the columns; use the outer product norms[:, None] * norms[None, :] (or "
            "normalise the rows first)."),
    Mistake("row_sq", lambda z: (z @ z.T) / (z.norm(dim=1) * z.norm(dim=1))[:, None],
            "the denominator must be |z_i| |z_k|, not |z_i|^2: use the outer product of the "
            "norms (or normalise the rows first)."),
    Mistake("distance", lambda z: 1 - cos_right(z),
            "you returned 1 - cosine (a distance); return the similarity itself."),
]


# ----------------------------------------------------------------------------- NT-Xent


def nt_xent(z_i, z_j, tau, *, self_in=False, diag_value=None, temp=None, cosine=True,
            target_shift=None, reduce="mean", cross_only=False):
    """NT-Xent with switches that reproduce the known mistakes (F.cross_entropy based)."""
    n = len(z_i)
    z = torch.cat([z_i, z_j])
    if cosine:
        z = F.normalize(z, dim=1)
    logits = z @ z.T
    logits = logits / tau if temp is None else temp(logits)
    eye = torch.eye(2 * n, dtype=torch.bool)
    if diag_value is not None:
        logits = logits.masked_fill(eye, diag_value)
    elif not self_in:
        logits = logits.masked_fill(eye, float("-inf"))
    shift = n if target_shift is None else target_shift
    targets = (torch.arange(2 * n) + shift) % (2 * n)
    if cross_only:  # negatives from the other view only (as in CLIP): two N x N problems
        cross = logits[:n, n:]
        logits = torch.cat([cross, cross.T])
        targets = torch.cat([torch.arange(n), torch.arange(n)])
    terms = F.cross_entropy(logits, targets, reduction="none")
    if reduce == "mean":
        return terms.mean()
    if reduce == "first":
        return terms[:n].mean()
    if reduce == "over_n":
        return terms.sum() / n
    if reduce == "sum":
        return terms.sum()
    return terms


def nt_xent_with(**mistake):
    return lambda z_i, z_j, tau: nt_xent(z_i, z_j, tau, **mistake)


def nt_xent_times_tau(z_i, z_j, tau):
    return nt_xent(z_i, z_j, tau, temp=lambda s: s * tau)


NT_MISTAKES = [
    Mistake("self", nt_xent_with(self_in=True),
            "the similarity of each sample with itself (k = i) is still in the denominator; "
            "the sum runs over k != i."),
    Mistake("diag_zero", nt_xent_with(diag_value=0.0),
            "you set the diagonal to 0 before exp, but exp(0) = 1 still lands in the "
            "denominator: mask it with -inf (exp(-inf) = 0) or leave k = i out."),
    Mistake("no_tau", nt_xent_with(temp=lambda s: s),
            "the temperature is missing: divide the similarities by tau."),
    Mistake("times_tau", nt_xent_times_tau,
            "the similarities are multiplied by tau; divide them by tau."),
    Mistake("dot", nt_xent_with(cosine=False),
            "these look like dot products: NT-Xent uses the cosine similarity (normalised z)."),
    Mistake("one_direction", nt_xent_with(reduce="first"),
            "only the N anchors of the first view are averaged: every one of the 2N samples is "
            "an anchor once, so average the 2N terms l(i, j) and l(j, i)."),
    Mistake("over_n", nt_xent_with(reduce="over_n"),
            "the sum of the 2N terms is divided by N; divide by 2N (the mean of the 2N terms)."),
    Mistake("sum", nt_xent_with(reduce="sum"),
            "you returned the sum of the 2N terms; the loss is their mean."),
    Mistake("cross_only", nt_xent_with(cross_only=True),
            "the negatives come from the other view only; in NT-Xent every other sample of the "
            "2N batch (both views) is a negative."),
]


# ----------------------------------------------------------------------------- the tables


def tables() -> dict:
    logits, targets, big, masked = double(checks.ce_inputs())
    (z_i, z_j, _), (w_i, w_j, _) = (double(case) for case in checks.nt_xent_inputs())
    return {
        "ce": table(lambda fn: fn(logits, targets), ce_right, CE_MISTAKES),
        "ce_big": table(lambda fn: fn(big, targets), ce_right),
        "ce_masked": table(lambda fn: fn(masked, targets), ce_right),
        "cos": table(lambda fn: fn(checks.cos_inputs().double()), cos_right, COS_MISTAKES),
        "nt": table(on_cases(checks.nt_xent_inputs()), nt_xent, NT_MISTAKES),
        "nt_smallest_tau": table(lambda fn: fn(z_i, z_j, checks.NT_TAU_SMALLEST), nt_xent),
        "nt_large_z": table(lambda fn: fn(w_i * 1000, w_j * 1000, 0.05), nt_xent),
    }
