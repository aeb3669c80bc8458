"""Wrong variants for notebook 04: grade_id of a solution cell -> the whole cell, answered wrong.

Each is a mistake students make. tests/test_autograder.py grades the master with one of
these cells swapped in, once per entry, and expects exactly test_<grade_id> to lose its
points. Keep a few: each costs one grading.
"""

WRONG = {
    # The same-view pairs are not skipped: the student is also asked to predict a crop
    # from itself.
    "dino_loss": '''\
def dino_loss(student_out, teacher_out, center, student_temp, teacher_temp):
    """student_out (n_crops*B, K), teacher_out (2*B, K), center (1, K) -> scalar loss."""
    n_crops = len(student_out) // (len(teacher_out) // 2)
    student_logp = F.log_softmax(student_out / student_temp, dim=-1).chunk(n_crops)
    teacher_p = F.softmax((teacher_out - center) / teacher_temp, dim=-1).detach().chunk(2)
    total, n_terms = 0.0, 0
    for p_t in teacher_p:
        for logp_s in student_logp:
            total = total + (-p_t * logp_s).sum(dim=-1).mean()
            n_terms += 1
    return total / n_terms
''',
    # The momentum roles are swapped: the center jumps to the batch mean.
    "update_center": '''\
@torch.no_grad()
def update_center(center, teacher_out, momentum):
    """EMA of the teacher's raw outputs: center * m + batch mean * (1 - m), shape (1, K)."""
    batch_center = teacher_out.mean(dim=0, keepdim=True)
    return center * (1 - momentum) + batch_center * momentum
''',
    # A linear ramp instead of the cosine.
    "cosine_schedule": '''\
def cosine_schedule(base, final, step, total_steps):
    """Cosine from base (step 0) to final (step total_steps and after), as a float."""
    if step >= total_steps:
        return float(final)
    return float(base + (final - base) * step / total_steps)
''',
}
