"""The visible checks of notebook 01 accept right answers and name the known mistakes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms as T

from course_utils.augment import CIFAR10_MEAN, CIFAR10_STD
from course_utils.checks import CheckFailure, diagnose, fixed_tensor
from course_utils.checks import simclr as checks
from helpers import fails_with


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


def ce_right(logits, targets):
    return F.cross_entropy(logits, targets)


def ce_rows(logits, targets):
    """Per-row -z_y + logsumexp(z), written with torch.logsumexp."""
    picked = logits.gather(1, targets[:, None]).squeeze(1)
    return torch.logsumexp(logits, dim=1) - picked


def test_softmax_cross_entropy_accepts_right_answer(capsys):
    checks.check_softmax_cross_entropy(ce_right)
    checks.check_softmax_cross_entropy(lambda z, y: ce_rows(z, y).mean())
    out = capsys.readouterr()
    assert "[ok] softmax_cross_entropy" in out.out and out.err == ""


def unstable_ce(logits, targets):
    p = logits.exp() / logits.exp().sum(1, keepdim=True)
    return -p[torch.arange(len(targets)), targets].log().mean()


def one_hot_ce(logits, targets):
    logp = logits - torch.logsumexp(logits, 1, keepdim=True)
    return -(F.one_hot(targets, logits.shape[1]) * logp).sum(1).mean()


def no_add_back(logits, targets):
    m = logits.max(1, keepdim=True).values
    lse = (logits - m).exp().sum(1).log()
    return (lse - logits[torch.arange(len(targets)), targets]).mean()


@pytest.mark.parametrize("fn, words", [
    (lambda z, y: ce_rows(z, y).sum(), ["summed"]),
    (lambda z, y: ce_rows(z, y), ["one loss per sample", ".mean()"]),
    (lambda z, y: -ce_rows(z, y).mean(), ["sign"]),
    (lambda z, y: (torch.logsumexp(z, 0).mean() - z[torch.arange(len(y)), y].mean()),
     ["wrong dimension"]),
    (no_add_back, ["add it back"]),
    (lambda z, y: (torch.logsumexp(z, 1)[:, None] - z[:, y]).mean(), ["(b, b) block"]),
    (lambda z, y: ce_rows(z, y).mean() / z.shape[1], ["b*c entries"]),
    (unstable_ce, ["overflow", "maximum"]),
    (one_hot_ce, ["nan", "0 * (-inf)"]),
    (lambda z, y: ce_rows(z, y).mean().item(), ["torch.tensor", ".item()"]),
    (lambda z, y: ce_rows(z, y).mean().detach(), ["requires_grad"]),
])
def test_softmax_cross_entropy_names_mistakes(fn, words):
    fails_with(checks.check_softmax_cross_entropy, fn, *words)


# ----------------------------------------------------------------------------- cosine similarity


def cos_right(z):
    return F.cosine_similarity(z[:, None, :], z[None, :, :], dim=-1)


def test_cosine_similarity_matrix_accepts_right_answer(capsys):
    checks.check_cosine_similarity_matrix(cos_right)
    checks.check_cosine_similarity_matrix(lambda z: F.normalize(z, dim=1) @ F.normalize(z, dim=1).T)
    assert "[ok] cosine_similarity_matrix" in capsys.readouterr().out


@pytest.mark.parametrize("fn, words", [
    (lambda z: z @ z.T, ["dot products"]),
    (lambda z: F.normalize(z, dim=0) @ F.normalize(z, dim=0).T, ["dim=0"]),
    (lambda z: F.normalize(z, dim=1) @ z.T, ["one side"]),
    (lambda z: (z @ z.T) / (z.norm(dim=1) * z.norm(dim=1)), ["outer product"]),
    (lambda z: 1 - cos_right(z), ["distance"]),
    (lambda z: F.cosine_similarity(z, z), ["every pair"]),
    (lambda z: F.normalize(z, dim=0).T @ F.normalize(z, dim=0), ["z.t @ z"]),
])
def test_cosine_similarity_matrix_names_mistakes(fn, words):
    fails_with(checks.check_cosine_similarity_matrix, fn, *words)


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


CHECKS_NT = [checks.check_nt_xent_loss, checks.check_nt_xent_loss_naive]


@pytest.mark.parametrize("check", CHECKS_NT)
def test_nt_xent_accepts_right_answer(check, capsys):
    check(nt_xent)
    check(nt_xent_loops)
    assert capsys.readouterr().out.count("[ok] nt_xent_loss") == 2


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
    fails_with(checks.check_nt_xent_loss,
               lambda a, b, tau: nt_xent(a, b, tau, temp=lambda s: s * tau), "multiplied by tau")


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
        steps.append(T.RandomApply([T.GaussianBlur(3, sigma=(0.1, 2.0))], p=0.5))
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


def test_projection_head_hard_coded_sizes():
    class Fixed(HeadV1):
        def __init__(self, in_dim, hidden_dim, out_dim):
            super().__init__(12, 20, 6)
    fails_with(checks.check_projection_head, Fixed, "constructor")
