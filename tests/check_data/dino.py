"""Notebook 04 (DINO): the reference solutions and known mistakes of the loss, the center and
the schedule, and the tables course_utils/checks/dino.py compares with.

Regenerate course_utils/checks/stored/dino.py: ``python -m tests.check_data dino``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from course_utils.checks import dino as checks
from course_utils.checks.dino import PAIRS

from . import Mistake, double, on_cases, table


# ----------------------------------------------------------------------------- the loss


def dino_loss(student_out, teacher_out, center, student_temp, teacher_temp):
    """The notebook's solution."""
    n_crops = len(student_out) // (len(teacher_out) // 2)
    student_logp = F.log_softmax(student_out / student_temp, dim=-1).chunk(n_crops)
    teacher_p = F.softmax((teacher_out - center) / teacher_temp, dim=-1).detach().chunk(2)
    total, n_terms = 0.0, 0
    for i, p_t in enumerate(teacher_p):
        for v, logp_s in enumerate(student_logp):
            if v == i:
                continue
            total = total + (-p_t * logp_s).sum(dim=-1).mean()
            n_terms += 1
    return total / n_terms


def make_loss(same_view=False, swap_temps=False, center_mode="sub", t_sharp=True,
              s_sharp=True, reduce="mean", divisor=None, t_dim=-1, s_dim=-1, pairs="right",
              layout="crop", roles="right", per_k="sum", kl=False, sign=1, detach=True,
              center_inplace=False):
    """dino_loss with one mistake switched on."""
    def loss_fn(student_out, teacher_out, center, student_temp, teacher_temp):
        if swap_temps:
            student_temp, teacher_temp = teacher_temp, student_temp
        B = len(teacher_out) // 2
        n = len(student_out) // B
        if center_inplace:
            teacher_centred = teacher_out - center.sub_(0.0).mul_(1.0).add_(0.1) + 0.1
        elif center_mode == "sub":
            teacher_centred = teacher_out - center
        elif center_mode == "add":
            teacher_centred = teacher_out + center
        else:
            teacher_centred = teacher_out
        p_t = F.softmax(teacher_centred / (teacher_temp if t_sharp else 1.0), dim=t_dim)
        if detach:
            p_t = p_t.detach()
        logp_s = F.log_softmax(student_out / (student_temp if s_sharp else 1.0), dim=s_dim)
        if layout == "crop":
            t_chunks, s_chunks = p_t.chunk(2), logp_s.chunk(n)
        else:
            t_chunks = p_t.reshape(B, 2, -1).unbind(1)
            s_chunks = logp_s.reshape(B, n, -1).unbind(1)
        terms = []
        for i in range(2):
            for v in range(n):
                if pairs == "right" and v == i and not same_view:
                    continue
                if pairs == "locals_only" and v < 2:
                    continue
                if pairs == "globals_only" and (v >= 2 or v == i):
                    continue
                if pairs == "same_only" and v != i:
                    continue
                if roles == "right":
                    ce = -(t_chunks[i] * s_chunks[v])
                else:
                    ce = -(s_chunks[v].exp() * t_chunks[i].log())
                if kl:
                    ce = ce + t_chunks[i] * t_chunks[i].log()
                terms.append(ce.sum(-1).mean() if per_k == "sum" else ce.mean())
        total = sign * torch.stack(terms).sum()
        if reduce == "sum":
            return total
        if reduce == "per_pair":
            return torch.stack(terms)
        if reduce == "item":
            return (total / len(terms)).item()
        return total / (len(terms) if divisor is None else divisor(n))
    return loss_fn


LOSS_MISTAKES = [
    Mistake("same_view", make_loss(same_view=True),
            "the pairs of the same view (student crop v == teacher crop i) are included; "
            "skip them: predicting a crop from itself is trivial."),
    Mistake("temps_swapped", make_loss(swap_temps=True),
            "the temperatures are swapped: divide the teacher's (centred) logits by "
            "teacher_temp and the student's by student_temp."),
    Mistake("no_centering", make_loss(center_mode="none"),
            "the teacher's outputs are not centred: P_t = softmax((teacher_out - center) / "
            "teacher_temp)."),
    Mistake("center_added", make_loss(center_mode="add"),
            "the center is added to the teacher's outputs; subtract it: "
            "(teacher_out - center) / teacher_temp."),
    Mistake("sum_pairs", make_loss(reduce="sum"),
            f"the loss is the sum over the pairs; take the mean over {PAIRS}."),
    Mistake("divided_2n", make_loss(divisor=lambda n: 2 * n),
            f"the sum is divided by 2 * n_crops; there are 2 * n_crops - 2 pairs ({PAIRS})."),
    Mistake("divided_n", make_loss(divisor=lambda n: n),
            f"the sum is divided by n_crops; divide by the number of pairs, "
            f"2 * n_crops - 2 ({PAIRS})."),
    Mistake("divided_n_minus_1", make_loss(divisor=lambda n: n - 1),
            f"the sum is divided by n_crops - 1 (a mean per teacher crop, then a sum over the "
            f"two); divide by 2 * n_crops - 2 ({PAIRS})."),
    Mistake("divided_2", make_loss(divisor=lambda n: 2),
            f"the sum is divided by 2 (the teacher crops); divide by the number of pairs, "
            f"2 * n_crops - 2 ({PAIRS})."),
    Mistake("softmax_batch_teacher", make_loss(t_dim=0),
            "the teacher's softmax runs over the batch (dim=0); take it over the K outputs of "
            "each row (dim=-1)."),
    Mistake("softmax_batch_student", make_loss(s_dim=0),
            "the student's log_softmax runs over the batch (dim=0); take it over the K outputs "
            "of each row (dim=-1)."),
    Mistake("softmax_batch_both", make_loss(t_dim=0, s_dim=0),
            "the softmaxes run over the batch (dim=0); take them over the K outputs of each "
            "row (dim=-1)."),
    Mistake("no_sharpening", make_loss(t_sharp=False),
            "the teacher's probabilities are not sharpened: teacher_temp is ignored. "
            "P_t = softmax((teacher_out - center) / teacher_temp)."),
    Mistake("no_student_temp", make_loss(s_sharp=False),
            "student_temp is ignored: log P_s = log_softmax(student_out / student_temp)."),
    Mistake("locals_only", make_loss(pairs="locals_only"),
            "the teacher is compared with the local crops only; the student's other global "
            "crop counts too (every v != i)."),
    Mistake("globals_only", make_loss(pairs="globals_only"),
            "the student's local crops are left out; the teacher is compared with every "
            "student crop v != i, local crops included."),
    Mistake("same_only", make_loss(pairs="same_only"),
            "only the pairs of the same view are used; DINO uses every pair of *different* "
            "crops (v != i) and skips the same view."),
    Mistake("interleaved", make_loss(layout="sample"),
            "the rows are read sample by sample; they are stacked crop by crop: rows [0, B) "
            "are crop 0 of every image, [B, 2B) crop 1, ... Use .chunk(n, dim=0)."),
    Mistake("roles_swapped", make_loss(roles="swapped"),
            "teacher and student are swapped in the cross-entropy; it is "
            "-sum_k P_t[k] * log P_s[k]: the teacher's probabilities weight the student's "
            "log-probabilities."),
    Mistake("mean_over_k", make_loss(per_k="mean"),
            "the cross-entropy is averaged over the K outputs; sum over them (dim=-1), then "
            "average over the batch."),
    Mistake("kl", make_loss(kl=True),
            "this is the KL divergence; DINO's loss is the cross-entropy "
            "-sum_k P_t[k] * log P_s[k] (same gradient, different value)."),
    Mistake("negative", make_loss(sign=-1),
            "the sign is wrong: the cross-entropy is -sum_k P_t[k] * log P_s[k] >= 0."),
]


# ----------------------------------------------------------------------------- the center


@torch.no_grad()
def update_center(center, teacher_out, momentum):
    """The notebook's solution."""
    batch_center = teacher_out.detach().mean(dim=0, keepdim=True)
    return center * momentum + batch_center * (1 - momentum)


def make_center(mistake):
    def update(center, teacher_out, momentum):
        t = teacher_out.detach()
        m = 0.9 if mistake == "hardcoded" else momentum
        if mistake == "swapped":
            return center * (1 - m) + t.mean(0, keepdim=True) * m
        if mistake == "softmax":
            return center * m + t.softmax(-1).mean(0, keepdim=True) * (1 - m)
        if mistake == "centered":
            return center * m + (t - center).mean(0, keepdim=True) * (1 - m)
        if mistake == "sum":
            return center * m + t.sum(0, keepdim=True) * (1 - m)
        if mistake == "no_keepdim":
            return (center * m + t.mean(0, keepdim=True) * (1 - m)).squeeze(0)
        if mistake == "wrong_axis":
            return center * m + t.mean(1, keepdim=True) * (1 - m)
        if mistake == "grad":
            return center * m + teacher_out.mean(0, keepdim=True) * (1 - m)
        if mistake == "none":
            center.mul_(m).add_(t.mean(0, keepdim=True) * (1 - m))
            return None
        return center * m + t.mean(0, keepdim=True) * (1 - m)
    return update


CENTER_MISTAKES = [
    Mistake("swapped", make_center("swapped"),
            "the momentum roles are swapped: the old center keeps the share m, "
            "center * momentum + batch_mean * (1 - momentum)."),
    Mistake("softmax", make_center("softmax"),
            "the center is an average of the teacher's *raw* outputs; do not apply a softmax "
            "before taking the mean."),
    Mistake("centered", make_center("centered"),
            "the center is an average of the teacher's *raw* outputs; do not subtract the "
            "center from them first."),
    Mistake("sum", make_center("sum"),
            "the batch is summed; take its mean, teacher_out.mean(dim=0, keepdim=True)."),
    Mistake("momentum_0.9", make_center("hardcoded"),
            "the momentum is hard-coded to 0.9; use the argument momentum."),
]


# ----------------------------------------------------------------------------- the schedule


def cosine_schedule(base, final, step, total_steps):
    """The notebook's solution."""
    if total_steps <= 0 or step >= total_steps:
        return float(final)
    return float(final + 0.5 * (base - final) * (1 + math.cos(math.pi * step / total_steps)))


def make_schedule(mistake):
    def schedule(base, final, step, total_steps):
        if mistake == "swapped":
            base, final = final, base
        if step >= total_steps and mistake != "unclamped":
            return float(final)
        t = step / total_steps
        if mistake == "linear":
            return base + (final - base) * t
        if mistake == "cos_only":
            return final + (base - final) * math.cos(math.pi * t)
        if mistake == "no_half":
            return final + (base - final) * (1 + math.cos(math.pi * t))
        if mistake == "integer_division":
            t = step // total_steps
        value = final + 0.5 * (base - final) * (1 + math.cos(math.pi * t))
        if mistake == "tensor":
            return torch.tensor(value)
        if mistake == "float32":
            return np.float32(value)
        if mistake == "off":
            return value + (1e-3 if step == 3 else 0.0)
        return value
    return schedule


SCHEDULE_MISTAKES = [
    Mistake("swapped", make_schedule("swapped"),
            "base and final are swapped: the schedule starts at base (step 0) and ends at "
            "final (step total_steps)."),
    Mistake("linear", make_schedule("linear"),
            "this is a linear schedule; DINO's follows a cosine: final + 0.5 * (base - final) "
            "* (1 + cos(pi * step / total_steps))."),
    Mistake("cos_only", make_schedule("cos_only"),
            "the cosine goes from 1 to -1, so final + (base - final) * cos(...) overshoots; "
            "use the factor 0.5 * (1 + cos(pi * step / total_steps)), which goes from 1 to 0."),
    Mistake("no_half", make_schedule("no_half"),
            "the factor (1 + cos(...)) goes from 2 to 0; halve it: 0.5 * (1 + cos(pi * step / "
            "total_steps)), so that step 0 gives base."),
    Mistake("unclamped", make_schedule("unclamped"),
            "after total_steps the value goes back up (the cosine continues); return final "
            "for step >= total_steps."),
    Mistake("integer_division", make_schedule("integer_division"),
            "step // total_steps is an integer division (0 until the end); use "
            "step / total_steps."),
]


def _schedules(fn) -> list[list[float]]:
    return [[fn(base, final, step, total) for step in steps]
            for base, final, total, steps in checks.SCHEDULE_CASES]


# ----------------------------------------------------------------------------- the tables


def tables() -> dict:
    return {"loss": table(on_cases(checks.loss_inputs()), dino_loss, LOSS_MISTAKES),
            "loss_large": table(lambda fn: fn(*double(checks.large_loss_inputs())), dino_loss),
            "center": table(on_cases(checks.center_inputs()), update_center, CENTER_MISTAKES),
            "schedule": table(_schedules, cosine_schedule, SCHEDULE_MISTAKES, digits=12)}
