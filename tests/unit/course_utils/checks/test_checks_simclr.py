"""The visible checks of notebook 01 accept right answers and name the known mistakes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms as T

from check_data import by_name
from check_data.simclr import (CE_MISTAKES, COS_MISTAKES, ce_right, ce_rows, cos_right,
                               no_add_back, nt_xent, nt_xent_times_tau)
from course_utils.augment import CIFAR10_MEAN, CIFAR10_STD
from course_utils.checks import CheckFailure, diagnose, fixed_tensor
from course_utils.checks import simclr as checks
from helpers import fails_with

CE, COS = by_name(CE_MISTAKES), by_name(COS_MISTAKES)


def test_diagnose_names_the_matching_mistake():
    diagnose(1.0, 1.0, [(2.0, "doubled")], "x")
    with pytest.raises(CheckFailure, match="doubled"):
        diagnose(2.0, 1.0, [(2.0, "doubled")], "x")
    with pytest.raises(CheckFailure, match="expected 1"):
        diagnose(3.0, 1.0, [(2.0, "doubled")], "x")
    assert issubclass(CheckFailure, AssertionError)


def test_fixed_inputs_are_deterministic():
    assert torch.equal(fixed_tensor(3, 4, scale=2.0), fixed_tensor(3, 4, scale=2.0))
    assert not torch.equal(fixed_tensor(3, 4), fixed_tensor(3, 4, phase=1.0))


# ----------------------------------------------------------------------------- cross-entropy


def test_softmax_cross_entropy_accepts_right_answer(capsys):
    checks.check_softmax_cross_entropy(ce_right)
    checks.check_softmax_cross_entropy(lambda z, y: ce_rows(z, y).sum() / len(y))
    out = capsys.readouterr()
    assert "[ok] softmax_cross_entropy" in out.out and out.err == ""


@pytest.mark.parametrize("fn, words", [
    (lambda z, y: F.cross_entropy(z, y), ["calls cross_entropy", "max, exp, sum, log"]),
    (lambda z, y: torch.nn.CrossEntropyLoss()(z, y), ["cross_entropy"]),
    (lambda z, y: (torch.logsumexp(z, 1) - z.gather(1, y[:, None])[:, 0]).mean(),
     ["logsumexp"]),
    (lambda z, y: -F.log_softmax(z, dim=1).gather(1, y[:, None]).mean(), ["log_softmax"]),
    (lambda z, y: -z.log_softmax(1)[torch.arange(len(y)), y].mean(), ["log_softmax"]),
])
def test_softmax_cross_entropy_names_ready_made_losses(fn, words):
    """The text forbids the library's cross-entropy: the check sees the calls."""
    fails_with(checks.check_softmax_cross_entropy, fn, *words)


def unstable_ce(logits, targets):
    p = logits.exp() / logits.exp().sum(1, keepdim=True)
    return -p[torch.arange(len(targets)), targets].log().mean()


def one_hot_ce(logits, targets):
    logp = logits - torch.logsumexp(logits, 1, keepdim=True)
    return -(F.one_hot(targets, logits.shape[1]) * logp).sum(1).mean()


@pytest.mark.parametrize("fn, words", [
    (CE["sum"], ["summed"]),
    (lambda z, y: ce_rows(z, y), ["one loss per sample", ".mean()"]),
    (CE["sign"], ["sign"]),
    (CE["dim0"], ["wrong dimension"]),
    (no_add_back, ["add it back"]),
    (CE["index_block"], ["(b, b) block"]),
    (CE["mean_bc"], ["b*c entries"]),
    (unstable_ce, ["overflow", "maximum"]),
    (one_hot_ce, ["nan", "0 * (-inf)"]),
    (lambda z, y: ce_rows(z, y).mean().item(), ["torch.tensor", ".item()"]),
    (lambda z, y: ce_rows(z, y).mean().detach(), ["requires_grad"]),
])
def test_softmax_cross_entropy_names_mistakes(fn, words):
    fails_with(checks.check_softmax_cross_entropy, fn, *words)


# ----------------------------------------------------------------------------- cosine similarity


def test_cosine_similarity_matrix_accepts_right_answer(capsys):
    checks.check_cosine_similarity_matrix(cos_right)
    checks.check_cosine_similarity_matrix(lambda z: F.normalize(z, dim=1) @ F.normalize(z, dim=1).T)
    assert "[ok] cosine_similarity_matrix" in capsys.readouterr().out


@pytest.mark.parametrize("fn, words", [
    (COS["dot"], ["dot products"]),
    (COS["dim0"], ["dim=0"]),
    (COS["one_side"], ["one side"]),
    (COS["col_sq"], ["outer product"]),
    (COS["distance"], ["distance"]),
    (lambda z: F.cosine_similarity(z, z), ["every pair"]),
    (lambda z: F.normalize(z, dim=0).T @ F.normalize(z, dim=0), ["z.t @ z"]),
])
def test_cosine_similarity_matrix_names_mistakes(fn, words):
    fails_with(checks.check_cosine_similarity_matrix, fn, *words)


def cos_in_place(z):
    z /= z.norm(dim=1, keepdim=True)
    return z @ z.T


@pytest.mark.parametrize("fn, words", [
    (cos_in_place, ["in place"]),
    # right on the fixed rows (all longer than 1), wrong once a row is shorter
    (lambda z: (lambda u: u @ u.T)(z / z.norm(dim=1, keepdim=True).clamp(min=1.0)),
     ["rescaling", "lengths"]),
    # squeeze() turns the (1, 1) matrix of a single row into a number
    (lambda z: F.cosine_similarity(z[:, None], z[None], dim=-1).squeeze(), ["single row"]),
])
def test_cosine_similarity_matrix_edge_requirements(fn, words):
    fails_with(checks.check_cosine_similarity_matrix, fn, *words)


# ----------------------------------------------------------------------------- NT-Xent


def nt_xent_loops(z_i, z_j, tau):
    """The formula, term by term (a naive implementation)."""
    z = torch.cat([z_i, z_j])
    n2 = len(z)
    total = 0
    for i in range(n2):
        j = (i + n2 // 2) % n2
        sim = [F.cosine_similarity(z[i], z[k], dim=0) / tau for k in range(n2)]
        den = sum(torch.exp(sim[k]) for k in range(n2) if k != i)
        total = total - torch.log(torch.exp(sim[j]) / den)
    return total / n2


def test_nt_xent_accepts_right_answers(capsys):
    checks.check_nt_xent_loss(nt_xent)
    checks.check_nt_xent_loss_naive(nt_xent_loops)
    assert capsys.readouterr().out.count("[ok] nt_xent_loss") == 2


def nt_xent_unstable(z_i, z_j, tau):
    """Right formula, no log-sum-exp trick: exp(100) overflows float32 at tau = 0.01."""
    n = len(z_i)
    z = F.normalize(torch.cat([z_i, z_j]), dim=1)
    e = (z @ z.T / tau).exp() * (1 - torch.eye(2 * n))
    positive = e[torch.arange(2 * n), (torch.arange(2 * n) + n) % (2 * n)]
    return -(positive / e.sum(dim=1)).log().mean()


def nt_xent_mask_ones(z_i, z_j, tau):
    """Leaves out every similarity equal to 1 instead of the diagonal: right on distinct z."""
    n = len(z_i)
    z = F.normalize(torch.cat([z_i, z_j]), dim=1)
    sim = z @ z.T
    logits = (sim / tau).masked_fill(sim > 1 - 1e-6, float("-inf"))
    return F.cross_entropy(logits, (torch.arange(2 * n) + n) % (2 * n))


def test_nt_xent_smallest_temperature_and_large_z():
    fails_with(checks.check_nt_xent_loss, nt_xent_unstable, "tau = 0.01")
    checks.check_nt_xent_loss_naive(nt_xent_loops)      # the loops need not be stable


def test_nt_xent_collapsed_embeddings():
    fails_with(checks.check_nt_xent_loss, nt_xent_mask_ones, "ln(2n - 1)")


def test_nt_xent_loops_where_the_text_asks_for_them():
    fails_with(checks.check_nt_xent_loss_naive, nt_xent, "loops in python", "2n anchors")
    fails_with(checks.check_nt_xent_loss, nt_xent_loops, "python loop")


NT_MISTAKES = [
    (dict(self_in=True), ["k = i", "denominator"]),
    (dict(diag_value=0.0), ["exp(0) = 1", "-inf"]),
    (dict(temp=lambda s: s), ["temperature is missing"]),
    (dict(temp=lambda s: s * 0.5), None),   # only right for tau = 0.5: the second batch catches it
    (dict(cosine=False), ["dot products"]),
    (dict(reduce="first"), ["first view", "2n"]),
    (dict(reduce="over_n"), ["divided by n"]),
    (dict(reduce="sum"), ["sum of the 2n terms"]),
    (dict(reduce="none"), ["0-dim", ".mean()"]),
    (dict(cross_only=True), ["other view only"]),
    (dict(target_shift=0), ["masked entry", "i + n"]),
    (dict(diag_value=-1e9, target_shift=0), ["masked entry"]),
]


@pytest.mark.parametrize("kwargs, words", NT_MISTAKES)
def test_nt_xent_names_mistakes(kwargs, words):
    fails_with(checks.check_nt_xent_loss, lambda a, b, tau: nt_xent(a, b, tau, **kwargs),
               *(words or []))


def test_nt_xent_multiplied_by_tau_is_named():
    fails_with(checks.check_nt_xent_loss, nt_xent_times_tau, "multiplied by tau")


def test_nt_xent_detached_is_named():
    fails_with(checks.check_nt_xent_loss_naive,
               lambda a, b, tau: nt_xent(a, b, tau).detach(), "requires_grad")


# ----------------------------------------------------------------------------- transform


def transform(image_size=32, blur=False, *, crop_scale=(0.08, 1.0), flip=True, jitter_p=0.8,
              jitter=(0.4, 0.4, 0.4, 0.1), gray_p=0.2, mean=CIFAR10_MEAN, std=CIFAR10_STD,
              to_tensor=True, resize=True, blur_always=False):
    steps = [T.RandomResizedCrop(image_size, scale=crop_scale)] if resize else []
    if flip:
        steps.append(T.RandomHorizontalFlip())
    if jitter_p:
        steps.append(T.RandomApply([T.ColorJitter(*jitter)], p=jitter_p))
    if gray_p:
        steps.append(T.RandomGrayscale(gray_p))
    if blur or blur_always:
        steps.append(T.RandomApply([T.GaussianBlur(max(3, round(image_size / 10)) | 1,
                                                   sigma=(0.1, 2.0))], p=0.5))
    if to_tensor:
        steps.append(T.ToTensor())
        if mean is not None:
            steps.append(T.Normalize(mean, std))
    return T.Compose(steps)


def test_simclr_transform_accepts_right_answer(capsys):
    checks.check_simclr_transform(transform)
    out = capsys.readouterr()
    assert "[ok] simclr_transform" in out.out and out.err == ""


@pytest.mark.parametrize("kwargs, words", [
    (dict(to_tensor=False), ["pil image", "totensor"]),
    (dict(mean=None), ["not normalised"]),
    (dict(mean=(0.5,) * 3, std=(0.5,) * 3), ["mean 0.5"]),
    (dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)), ["imagenet"]),
    (dict(resize=False), ["randomresizedcrop", "image_size x image_size"]),
    (dict(crop_scale=(0.9, 1.0)), ["scale=(0.08, 1.0)"]),
    (dict(flip=False), ["mirrored", "randomhorizontalflip"]),
    (dict(gray_p=0.0), ["grayscale", "randomgrayscale(p=0.2)"]),
    (dict(gray_p=0.7), ["grayscale; p should be 0.2"]),
    (dict(jitter_p=0.0), ["colour jitter is missing"]),
    (dict(jitter_p=1.0), ["randomapply"]),
    (dict(jitter=(0.05, 0.05, 0.05, 0.01)), ["too weak"]),
    (dict(blur_always=True), ["blur=false"]),
])
def test_simclr_transform_names_mistakes(kwargs, words):
    fails_with(checks.check_simclr_transform,
               lambda image_size=32, blur=False: transform(image_size, blur, **kwargs), *words)


def blur_transform(kernel=None, sigma=(0.1, 2.0), p=0.5):
    def fn(image_size=32, blur=False):
        steps = [T.RandomResizedCrop(image_size, scale=(0.08, 1.0)), T.RandomHorizontalFlip(),
                 T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                 T.RandomGrayscale(0.2)]
        if blur:
            size = kernel or (max(3, round(image_size / 10)) | 1)
            steps.append(T.RandomApply([T.GaussianBlur(size, sigma=sigma)], p=p))
        return T.Compose(steps + [T.ToTensor(), T.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    return fn


def test_simclr_transform_settings_read_from_the_steps(capsys):
    checks.check_simclr_transform(blur_transform())
    assert "[ok] simclr_transform" in capsys.readouterr().out
    fails_with(checks.check_simclr_transform, blur_transform(kernel=3), "blur kernel", "10%")
    fails_with(checks.check_simclr_transform, blur_transform(sigma=(1.0, 1.0)), "sigma")
    fails_with(checks.check_simclr_transform, blur_transform(p=1.0), "p=0.5")


@pytest.mark.parametrize("kwargs, words", [
    (dict(jitter=(0.5, 0.5, 0.5, 0.1)), ["brightness range", "strength s = 0.5"]),
    (dict(jitter=(0.4, 0.4, 0.4, 0.2)), ["hue range"]),
    (dict(gray_p=0.3), ["p=0.2"]),
])
def test_simclr_transform_settings_behaviour_cannot_tell(kwargs, words):
    """Settings close enough to pass the statistics, named from the steps themselves."""
    fails_with(checks.check_simclr_transform,
               lambda image_size=32, blur=False: transform(image_size, blur, **kwargs), *words)


def test_simclr_transform_crop_ratio_and_flip_p():
    def square_crops(image_size=32, blur=False):
        steps = transform(image_size, blur).transforms
        steps[0] = T.RandomResizedCrop(image_size, scale=(0.08, 1.0), ratio=(1.0, 1.0))
        return T.Compose(steps)

    def rare_flips(image_size=32, blur=False):
        steps = transform(image_size, blur).transforms
        steps[1] = T.RandomHorizontalFlip(p=0.4)
        return T.Compose(steps)
    fails_with(checks.check_simclr_transform, square_crops, "aspect ratios")
    fails_with(checks.check_simclr_transform, rare_flips, "p=0.5")


def test_simclr_transform_hard_coded_size_and_missing_blur():
    fails_with(checks.check_simclr_transform,
               lambda image_size=32, blur=False: transform(32, blur), "image_size")
    fails_with(checks.check_simclr_transform,
               lambda image_size=32, blur=False: transform(image_size, False), "gaussianblur")
    fails_with(checks.check_simclr_transform,
               lambda image_size=32, blur=False: T.Compose([T.Resize((image_size, image_size)),
                                                            T.ToTensor(),
                                                            T.Normalize(CIFAR10_MEAN, CIFAR10_STD)]),
               "random")


# ----------------------------------------------------------------------------- projection head


class HeadBN(nn.Module):
    def __init__(self, in_dim, hidden_dim, out_dim):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_dim, hidden_dim, bias=False),
                                    nn.BatchNorm1d(hidden_dim), nn.ReLU(),
                                    nn.Linear(hidden_dim, out_dim))

    def forward(self, h):
        return self.layers(h)


class HeadV1(nn.Module):
    def __init__(self, in_dim, hidden_dim, out_dim):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(in_dim, hidden_dim), nn.Linear(hidden_dim, out_dim)

    def forward(self, h):
        return self.fc2(F.relu(self.fc1(h)))


def make_head(*layers):
    class Head(nn.Module):
        def __init__(self, in_dim, hidden_dim, out_dim):
            super().__init__()
            self.layers = nn.Sequential(*[f(in_dim, hidden_dim, out_dim) for f in layers])

        def forward(self, h):
            return self.layers(h)
    return Head


class BatchStatsHead(HeadV1):
    def forward(self, h):
        a = self.fc1(h)
        a = (a - a.mean(0)) / (a.std(0) + 1e-5)
        return self.fc2(F.relu(a))


class NotAModule:
    def __init__(self, in_dim, hidden_dim, out_dim):
        self.w = torch.randn(in_dim, out_dim)

    def __call__(self, h):
        return h @ self.w


def test_projection_head_accepts_both_variants(capsys):
    checks.check_projection_head(HeadBN)
    checks.check_projection_head(HeadV1)
    assert capsys.readouterr().out.count("[ok] ProjectionHead") == 2


@pytest.mark.parametrize("cls, words", [
    (make_head(lambda i, h, o: nn.Linear(i, h), lambda i, h, o: nn.Linear(h, o)), ["linear", "relu"]),
    (make_head(lambda i, h, o: nn.Linear(i, h), lambda i, h, o: nn.ReLU()), ["hidden_dim"]),
    (make_head(lambda i, h, o: nn.Linear(i, h), lambda i, h, o: nn.ReLU(),
               lambda i, h, o: nn.Linear(h, o), lambda i, h, o: nn.ReLU()), ["relu at the end"]),
    (make_head(lambda i, h, o: nn.Linear(i, h), lambda i, h, o: nn.ReLU(),
               lambda i, h, o: nn.Linear(h, h), lambda i, h, o: nn.ReLU(),
               lambda i, h, o: nn.Linear(h, o)), ["add layers"]),
    (BatchStatsHead, ["eval mode", "running statistics"]),
    (NotAModule, ["nn.module"]),
])
def test_projection_head_names_mistakes(cls, words):
    fails_with(checks.check_projection_head, cls, *words)


def test_projection_head_gradient_reaches_h():
    class Detached(HeadBN):
        def forward(self, h):
            return self.layers(h.detach())
    fails_with(checks.check_projection_head, Detached, "no gradient reaches h")


def test_projection_head_hard_coded_sizes():
    class Fixed(HeadV1):
        def __init__(self, in_dim, hidden_dim, out_dim):
            super().__init__(12, 20, 6)
    fails_with(checks.check_projection_head, Fixed, "constructor")
