"""Wrong variants for notebook 04: grade_id of a solution cell -> the whole cell, answered wrong.

Each is a mistake students make. tests/e2e/test_autograder.py grades the master with one of
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

# Correct answers written differently from the master: tests/e2e/test_autograder.py grades the
# master with all of them in place and expects full marks, so the hidden tests must check
# what the lecture asks for, not the master's way of doing it.
CORRECT = {
    # The pipelines kept in one list, one Compose per crop (n_local separate local ones),
    # built by a method rather than a closure; __call__ maps the list.
    "multicrop_transform": '''\
class MultiCropTransform:
    """PIL image -> [global 1, global 2, local 1, ..., local n] normalised tensors."""

    def __init__(self, global_size=32, local_size=16, n_local=6, global_scale=(0.4, 1.0),
                 local_scale=(0.05, 0.4)):
        self.pipelines = [self._pipeline(global_size, global_scale),
                          self._pipeline(global_size, global_scale, solarize=True)]
        for _ in range(n_local):
            self.pipelines.append(self._pipeline(local_size, local_scale))

    @staticmethod
    def _pipeline(size, scale, solarize=False):
        colour = [T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
                  T.RandomGrayscale(p=0.2)]
        if solarize:
            colour = colour + [T.RandomSolarize(threshold=128, p=0.2)]
        return T.Compose([T.RandomResizedCrop(size, scale=scale), T.RandomHorizontalFlip(),
                          *colour, T.ToTensor(), augment.normalize()])

    def __call__(self, image):
        return [pipeline(image) for pipeline in self.pipelines]
''',
    # Weight normalisation written by hand: a module holding the direction v (out_dim,
    # bottleneck_dim) and the gain g (out_dim, 1), weight g * v / ||v|| by row, instead of
    # torch's parametrization; the MLP built from a list of widths; the bottleneck divided
    # by its norm rather than F.normalize.
    "dino_head": '''\
class _NormedLinear(nn.Module):
    """y = x W^T with W = g * v / ||v|| row by row, no bias."""

    def __init__(self, in_features, out_features):
        super().__init__()
        self.v = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.v, a=math.sqrt(5))
        self.g = nn.Parameter(torch.ones(out_features, 1))

    def forward(self, x):
        return F.linear(x, self.g * self.v / self.v.norm(dim=1, keepdim=True))


class DINOHead(nn.Module):
    """MLP -> L2-normalised bottleneck -> weight-normalised linear layer to out_dim."""

    def __init__(self, in_dim, out_dim, use_bn=False, norm_last_layer=True, nlayers=3,
                 hidden_dim=2048, bottleneck_dim=256):
        super().__init__()
        widths = [in_dim] + [hidden_dim] * (max(nlayers, 1) - 1) + [bottleneck_dim]
        modules = []
        for k, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            linear = nn.Linear(a, b)
            nn.init.trunc_normal_(linear.weight, std=0.02)
            nn.init.constant_(linear.bias, 0.0)
            modules.append(linear)
            if k < len(widths) - 2:                     # not after the last one
                if use_bn:
                    modules.append(nn.BatchNorm1d(b))
                modules.append(nn.GELU())
        self.mlp = nn.Sequential(*modules)
        self.last_layer = _NormedLinear(bottleneck_dim, out_dim)
        self.last_layer.g.requires_grad_(not norm_last_layer)

    def forward(self, h):
        z = self.mlp(h)
        z = z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return self.last_layer(z)
''',
    # Vectorised: every (teacher crop, student crop) cross-entropy at once as a (2, n_crops)
    # matrix by einsum, the same-view pairs removed with a mask; the teacher under no_grad.
    "dino_loss": '''\
def dino_loss(student_out, teacher_out, center, student_temp, teacher_temp):
    """student_out (n_crops*B, K), teacher_out (2*B, K), center (1, K) -> scalar loss."""
    B, K = teacher_out.shape[0] // 2, teacher_out.shape[1]
    n_crops = student_out.shape[0] // B
    with torch.no_grad():
        targets = torch.softmax((teacher_out - center) / teacher_temp, dim=1).reshape(2, B, K)
    log_probs = torch.log_softmax(student_out / student_temp, dim=1).reshape(n_crops, B, K)
    cross = -torch.einsum("ibk,vbk->iv", targets, log_probs) / B     # (2, n_crops)
    different = ~torch.eye(2, n_crops, dtype=torch.bool, device=cross.device)
    return cross[different].mean()
''',
    # torch.lerp towards the batch mean, with weight 1 - momentum.
    "update_center": '''\
@torch.no_grad()
def update_center(center, teacher_out, momentum):
    """EMA of the teacher's raw outputs: center * m + batch mean * (1 - m), shape (1, K)."""
    batch_mean = teacher_out.sum(dim=0, keepdim=True) / teacher_out.shape[0]
    return torch.lerp(center, batch_mean, 1.0 - momentum)
''',
    # 0.5 * (1 + cos(pi t / T)) = cos^2(pi t / 2T), so m(t) = base + (final - base) sin^2(pi t / 2T).
    "cosine_schedule": '''\
def cosine_schedule(base, final, step, total_steps):
    """Cosine from base (step 0) to final (step total_steps and after), as a float."""
    if step >= total_steps:
        return float(final)
    progress = math.sin(0.5 * math.pi * step / total_steps) ** 2
    return float(base + (final - base) * progress)
''',
    # The teacher's update (ungraded here, graded in notebook 02), as a lerp towards the
    # student.
    "teacher_update": '''\
@torch.no_grad()
def ema_update(student, teacher, m):
    """In place: theta_teacher <- m * theta_teacher + (1 - m) * theta_student (parameters only)."""
    for theta_student, theta_teacher in zip(student.parameters(), teacher.parameters()):
        theta_teacher.lerp_(theta_student, 1.0 - m)
''',
}
