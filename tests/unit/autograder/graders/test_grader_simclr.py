"""The trusted grader of notebook 01 (autograder/graders/01_simclr_ntxent.py).

First its references, against torch and against the numbers the visible checks store; then
whole submissions scored in the sandbox (each notebook in one score_notebook call, two at a
time): the master and the demo's correct answers earn every property on fresh inputs, the
blank release earns nothing, the demo's wrong answers and the known mistakes below lose
some of their own exercise's points and none elsewhere (a wrong exercise 2 or 3 does not
cost the NT-Xent exercises that call it), and answers that fake a result (constants,
zeros, a Compose that only carries the recipe's steps) earn nothing.
"""
from __future__ import annotations

import json
import math
import runpy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms as T

from autograder import scoring
from course_utils.checks import simclr as visible
from helpers import REPO, GraderContract, graded_points, lost, score_all, with_answers

pytestmark = pytest.mark.notebook

ASSIGNMENT = "01_simclr_ntxent"
MASTER = REPO / "autograder" / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
RELEASE = REPO / "notebooks" / f"{ASSIGNMENT}.ipynb"
DEMO = runpy.run_path(str(REPO / "autograder" / "demo_submissions" / f"{ASSIGNMENT}.py"))
grader = scoring.load_grader(ASSIGNMENT)


MASTER_JSON = json.loads(MASTER.read_text())
FULL = graded_points(MASTER_JSON)


def test_the_master_keeps_no_hidden_tests_and_tags_its_set_up():
    text = MASTER.read_text()
    assert "BEGIN HIDDEN TESTS" not in text and "_guard" not in text
    tagged = [c["id"] for c in MASTER_JSON["cells"]
              if "scorer-setup" in c.get("metadata", {}).get("tags", [])]
    assert tagged == ["setup_imports", "config"]


# ================================================================ the references


def test_cross_entropy_reference_is_torchs():
    rng = np.random.default_rng(0)
    for b, c, scale in [(5, 4, 1.0), (1, 2, 3.0), (9, 7, 2e3)]:
        logits = rng.standard_normal((b, c)) * scale
        logits[0, [k for k in range(c) if k != 0][:1]] = -np.inf
        targets = np.zeros(b, dtype=np.int64) if b == 1 else rng.integers(0, c, size=b)
        targets[0] = 0
        z = torch.tensor(logits, requires_grad=True)
        loss = F.cross_entropy(z, torch.tensor(targets))
        loss.backward()
        assert math.isclose(grader.ce_reference(logits, targets), loss.item(), rel_tol=1e-12)
        assert np.allclose(grader.ce_gradient(logits, targets), z.grad.numpy(), atol=1e-12)


def test_cosine_reference_is_torchs():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((6, 4)) * rng.uniform(0.1, 9, size=(6, 1))
    upstream = rng.standard_normal((6, 6))
    t = torch.tensor(z, requires_grad=True)
    sim = F.cosine_similarity(t[:, None], t[None], dim=-1)
    (sim * torch.tensor(upstream)).sum().backward()
    assert np.allclose(grader.cosine_reference(z), sim.detach().numpy(), atol=1e-12)
    assert np.allclose(grader.cosine_gradient(z, upstream), t.grad.numpy(), atol=1e-10)


def nt_xent_term_by_term(z_i, z_j, tau):
    """The lecture's formula, one anchor and one k at a time (float64 torch)."""
    z = torch.cat([z_i, z_j])
    n2 = len(z)
    total = 0.0
    for i in range(n2):
        sims = [F.cosine_similarity(z[i], z[k], dim=0) / tau for k in range(n2)]
        denominator = sum(torch.exp(sims[k]) for k in range(n2) if k != i)
        total = total - torch.log(torch.exp(sims[(i + n2 // 2) % n2]) / denominator)
    return total / n2


def test_nt_xent_reference_is_the_formula_with_its_gradients():
    rng = np.random.default_rng(2)
    for n, d, tau in [(1, 3, 0.5), (3, 5, 0.2), (6, 4, 0.7)]:
        z_i, z_j = (rng.standard_normal((n, d)) * rng.uniform(0.2, 4, (n, 1)) for _ in range(2))
        a, b = torch.tensor(z_i, requires_grad=True), torch.tensor(z_j, requires_grad=True)
        loss = nt_xent_term_by_term(a, b, tau)
        loss.backward()
        value, g_i, g_j = grader.nt_xent_reference(z_i, z_j, tau)
        assert math.isclose(value, loss.item(), rel_tol=1e-10, abs_tol=1e-12)
        assert np.allclose(g_i, a.grad.numpy(), atol=1e-10)
        assert np.allclose(g_j, b.grad.numpy(), atol=1e-10)
    same = np.ones((4, 3))
    assert math.isclose(grader.nt_xent_reference(same, same, 0.5)[0], math.log(7))


def test_the_families_hold_the_mistakes_the_visible_checks_store():
    """The grader's families of known mistakes (written from the text) give the numbers
    the visible checks store for the same mistakes (computed offline, elsewhere)."""
    as_np = lambda t: t.double().numpy()  # noqa: E731
    named = {"self": {"self": "included"}, "diag_zero": {"self": "zero"},
             "no_tau": {"temperature": "missing"}, "times_tau": {"temperature": "multiplied"},
             "dot": {"similarity": "dot"}, "one_direction": {"reduce": "first view"},
             "over_n": {"reduce": "over N"}, "sum": {"reduce": "sum"},
             "cross_only": {"negatives": "other view"}}
    for (z_i, z_j, tau), stored in zip(visible.nt_xent_inputs(), visible.NT):
        family = grader.nt_family(as_np(z_i), as_np(z_j), tau)
        assert math.isclose(family[tuple(grader.NT_RIGHT.items())], stored["expected"],
                            rel_tol=1e-5)
        for mistake, settings in named.items():
            key = tuple({**grader.NT_RIGHT, **settings}.items())
            assert math.isclose(family[key], stored["mistakes"][mistake], rel_tol=1e-5), mistake
    logits, targets, _, _ = visible.ce_inputs()
    family = grader.ce_family(as_np(logits), targets.numpy())
    named = {"sum": {"reduce": "sum"}, "sign": {"sign": "-"}, "no_add_back": {"shift": "lost"},
             "mean_bc": {"reduce": "all"}}
    assert math.isclose(family[tuple(grader.CE_RIGHT.items())], visible.CE, rel_tol=1e-5)
    for mistake, settings in named.items():
        key = tuple({**grader.CE_RIGHT, **settings}.items())
        assert math.isclose(family[key], visible.CE_MISTAKES[mistake], rel_tol=1e-5), mistake
    family = grader.cos_family(as_np(visible.cos_inputs()))
    named = {"dot": "dot", "dim0": "columns", "one_side": "one side", "col_sq": "squared columns",
             "row_sq": "squared rows", "distance": "distance"}
    assert np.allclose(family["right"], visible.COS, atol=1e-5)
    for mistake, key in named.items():
        assert np.allclose(family[key], visible.COS_MISTAKES[mistake], rtol=1e-5, atol=1e-5)


def test_crop_simulation_is_torchvisions_sampling():
    """The share of crops on one side of an edge, by the grader's simulation and by
    torchvision's RandomResizedCrop.get_params."""
    rng = np.random.default_rng(3)
    torch.manual_seed(0)
    for width, height, edge in [(48, 40, 16), (60, 34, 27)]:
        image = torch.zeros(3, height, width)
        inside = 0
        for _ in range(4000):
            _, left, _, w = T.RandomResizedCrop.get_params(image, (0.08, 1.0), (3 / 4, 4 / 3))
            inside += left + w <= edge or left >= edge
        simulated = grader._crop_fraction_inside(rng, width, height, edge, n=4000)
        assert abs(simulated - inside / 4000) < 0.04, (width, height, edge)


class LocalHead:
    """What the grader reads from a worker, read from a module here."""

    def __init__(self, module):
        self.module = module

    def get(self, on, path):
        value = self.module
        for part in path.split("."):
            value = value[int(part)] if part.isdigit() else getattr(value, part)
        return value


def local_state(module):
    return {"parameters": {k: v.detach().numpy().copy() for k, v in module.named_parameters()},
            "buffers": {k: v.detach().numpy().copy() for k, v in module.named_buffers()},
            "modules": [[k, f"{type(m).__module__}.{type(m).__qualname__}"]
                        for k, m in module.named_modules()]}


@pytest.mark.parametrize("norm", [True, False])
def test_head_reference_is_torchs(norm):
    rng = np.random.default_rng(4)
    torch.manual_seed(0)
    dims = (7, 11, 5)
    layers = [nn.Linear(7, 11, bias=not norm)] + ([nn.BatchNorm1d(11)] if norm else []) + \
        [nn.ReLU(), nn.Linear(11, 5)]
    head = nn.Sequential(*layers)
    state = local_state(head)
    reference = grader._Layers(LocalHead(head), "head", state, dims)
    values = reference.draw(rng, state, dims)
    head.load_state_dict({k: torch.tensor(v) for k, v in values.items()})
    h = rng.standard_normal((9, 7)).astype(np.float32)
    for train in (True, False):
        head.load_state_dict({k: torch.tensor(v) for k, v in values.items()})
        head.train(train)
        x = torch.tensor(h, requires_grad=True)
        z = head(x)
        expected, _, _ = reference.forward(values, h, train=train)
        assert np.allclose(z.detach().numpy(), expected, atol=1e-5)
        if not train:
            upstream = rng.standard_normal((9, 5)).astype(np.float32)
            z.backward(torch.tensor(upstream))
            assert np.allclose(x.grad.numpy(), reference.backward_h(values, h, upstream),
                               atol=1e-5)


# ================================================================ whole submissions

# ---------------------------------------------------------------- known wrong answers

CE_SUM = '''\
def softmax_cross_entropy(logits, targets):
    m = logits.max(dim=1, keepdim=True).values
    rows = m.squeeze(1) + (logits - m).exp().sum(dim=1).log()
    return (rows - logits[torch.arange(len(logits)), targets]).sum()
'''

CE_UNSTABLE = '''\
def softmax_cross_entropy(logits, targets):
    p = logits.exp() / logits.exp().sum(dim=1, keepdim=True)
    return -p[torch.arange(len(logits)), targets].log().mean()
'''

CE_ONE_HOT = '''\
def softmax_cross_entropy(logits, targets):
    m = logits.max(dim=1, keepdim=True).values
    log_p = logits - m - (logits - m).exp().sum(dim=1, keepdim=True).log()
    return -(F.one_hot(targets, logits.shape[1]) * log_p).sum(dim=1).mean()
'''

CE_LIBRARY = '''\
def softmax_cross_entropy(logits, targets):
    return F.cross_entropy(logits, targets)
'''

CE_CONSTANT = '''\
def softmax_cross_entropy(logits, targets):
    return torch.tensor(1.0)
'''

COS_DOT = '''\
def cosine_similarity_matrix(z):
    return z @ z.T
'''

COS_DISTANCE = '''\
def cosine_similarity_matrix(z):
    u = F.normalize(z, dim=1)
    return 1 - u @ u.T
'''

COS_IN_PLACE = '''\
def cosine_similarity_matrix(z):
    z /= z.norm(dim=1, keepdim=True)
    return z @ z.T
'''

COS_ROW_SQUARED = '''\
def cosine_similarity_matrix(z):
    return (z @ z.T) / (z.norm(dim=1) ** 2)[:, None]
'''

COS_ZEROS = '''\
def cosine_similarity_matrix(z):
    return torch.zeros(len(z), len(z))
'''

NAIVE_VECTORISED = '''\
def nt_xent_loss_naive(z_i, z_j, tau):
    z = F.normalize(torch.cat([z_i, z_j]), dim=1)
    n = len(z_i)
    logits = (z @ z.T / tau).masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    return F.cross_entropy(logits, (torch.arange(2 * n) + n) % (2 * n))
'''

NAIVE_ONE_DIRECTION = '''\
def nt_xent_loss_naive(z_i, z_j, tau):
    z = torch.cat([z_i, z_j])
    two_n = len(z)
    sim = cosine_similarity_matrix(z)
    total = 0.0
    for i in range(two_n // 2):
        j = i + two_n // 2
        denominator = sum(torch.exp(sim[i, k] / tau) for k in range(two_n) if k != i)
        total = total - torch.log(torch.exp(sim[i, j] / tau) / denominator)
    return total / (two_n // 2)
'''

NAIVE_NO_TAU = '''\
def nt_xent_loss_naive(z_i, z_j, tau):
    z = torch.cat([z_i, z_j])
    two_n = len(z)
    sim = cosine_similarity_matrix(z)
    total = 0.0
    for i in range(two_n):
        j = (i + two_n // 2) % two_n
        denominator = sum(torch.exp(sim[i, k]) for k in range(two_n) if k != i)
        total = total - torch.log(torch.exp(sim[i, j]) / denominator)
    return total / two_n
'''

NAIVE_CONSTANT = '''\
def nt_xent_loss_naive(z_i, z_j, tau):
    return torch.tensor(2.0, requires_grad=True)
'''

VEC_LOOPS = '''\
def nt_xent_loss(z_i, z_j, tau):
    n = len(z_i)
    logits = cosine_similarity_matrix(torch.cat([z_i, z_j])) / tau
    terms = []
    for a in range(2 * n):
        row = torch.cat([logits[a, :a], logits[a, a + 1:]])
        positive = (a + n) % (2 * n)
        terms.append(torch.logsumexp(row, 0) - logits[a, positive])
    return torch.stack(terms).mean()
'''

VEC_UNSTABLE = '''\
def nt_xent_loss(z_i, z_j, tau):
    n = len(z_i)
    e = (cosine_similarity_matrix(torch.cat([z_i, z_j])) / tau).exp()
    e = e * (1 - torch.eye(2 * n))
    positive = e[torch.arange(2 * n), (torch.arange(2 * n) + n) % (2 * n)]
    return -(positive / e.sum(dim=1)).log().mean()
'''

VEC_CROSS_ONLY = '''\
def nt_xent_loss(z_i, z_j, tau):
    n = len(z_i)
    logits = cosine_similarity_matrix(torch.cat([z_i, z_j]))[:n, n:] / tau
    labels = torch.arange(n)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
'''

VEC_MINUS_1E9 = '''\
def nt_xent_loss(z_i, z_j, tau):
    n = len(z_i)
    logits = cosine_similarity_matrix(torch.cat([z_i, z_j])) / tau
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool), -1e9)
    return softmax_cross_entropy(logits, (torch.arange(2 * n) + n) % (2 * n))
'''
VEC_ZEROS = '''\
def nt_xent_loss(z_i, z_j, tau):
    return torch.zeros(())
'''

HEAD_LINEAR = '''\
class ProjectionHead(nn.Module):
    def __init__(self, in_dim, hidden_dim, out_dim):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.Linear(hidden_dim, out_dim))

    def forward(self, h):
        return self.layers(h)
'''

HEAD_BATCH_STATS = '''\
class ProjectionHead(nn.Module):
    def __init__(self, in_dim, hidden_dim, out_dim):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(in_dim, hidden_dim), nn.Linear(hidden_dim, out_dim)

    def forward(self, h):
        a = self.fc1(h)
        a = (a - a.mean(0)) / (a.std(0) + 1e-5)
        return self.fc2(F.relu(a))
'''

HEAD_RELU_BEFORE_BN = '''\
class ProjectionHead(nn.Module):
    def __init__(self, in_dim, hidden_dim, out_dim):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(),
                                    nn.BatchNorm1d(hidden_dim), nn.Linear(hidden_dim, out_dim))

    def forward(self, h):
        return self.layers(h)
'''

HEAD_ZEROS = '''\
class ProjectionHead(nn.Module):
    def __init__(self, in_dim, hidden_dim, out_dim):
        super().__init__()
        self.out_dim = out_dim

    def forward(self, h):
        return torch.zeros(len(h), self.out_dim)
'''

TRANSFORM_JITTER_ALWAYS = '''\
def simclr_transform(image_size=32, blur=False):
    steps = [T.RandomResizedCrop(image_size, scale=(0.08, 1.0)), T.RandomHorizontalFlip(),
             T.ColorJitter(0.4, 0.4, 0.4, 0.1), T.RandomGrayscale(p=0.2)]
    if blur:
        steps.append(T.RandomApply([T.GaussianBlur(augment.CIFAR_RECIPE.blur_kernel(image_size),
                                                   sigma=(0.1, 2.0))], p=0.5))
    return T.Compose(steps + [T.ToTensor(), T.Normalize(augment.CIFAR10_MEAN, augment.CIFAR10_STD)])
'''

TRANSFORM_IMAGENET = '''\
def simclr_transform(image_size=32, blur=False):
    steps = [T.RandomResizedCrop(image_size, scale=(0.08, 1.0)), T.RandomHorizontalFlip(),
             T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(p=0.2)]
    if blur:
        steps.append(T.RandomApply([T.GaussianBlur(augment.CIFAR_RECIPE.blur_kernel(image_size),
                                                   sigma=(0.1, 2.0))], p=0.5))
    return T.Compose(steps + [T.ToTensor(),
                              T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
'''

TRANSFORM_GENTLE_CROP = '''\
def simclr_transform(image_size=32, blur=False):
    steps = [T.RandomResizedCrop(image_size, scale=(0.6, 1.0)), T.RandomHorizontalFlip(),
             T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(p=0.2)]
    if blur:
        steps.append(T.RandomApply([T.GaussianBlur(augment.CIFAR_RECIPE.blur_kernel(image_size),
                                                   sigma=(0.1, 2.0))], p=0.5))
    return T.Compose(steps + [T.ToTensor(), T.Normalize(augment.CIFAR10_MEAN, augment.CIFAR10_STD)])
'''

TRANSFORM_ZEROS = '''\
def simclr_transform(image_size=32, blur=False):
    return T.Compose([T.Lambda(lambda image: torch.zeros(3, image_size, image_size))])
'''

TRANSFORM_FORGED = '''\
class Compose:
    """The recipe's steps as attributes, and nothing behind them."""

    def __init__(self, transforms, size):
        self.transforms, self.size = transforms, size

    def __call__(self, image):
        return torch.zeros(3, self.size, self.size)


Compose.__module__ = "torchvision.transforms.transforms"


def simclr_transform(image_size=32, blur=False):
    steps = [T.RandomResizedCrop(image_size, scale=(0.08, 1.0)), T.RandomHorizontalFlip(),
             T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(p=0.2)]
    if blur:
        steps.append(T.RandomApply([T.GaussianBlur(augment.CIFAR_RECIPE.blur_kernel(image_size),
                                                   sigma=(0.1, 2.0))], p=0.5))
    steps += [T.ToTensor(), T.Normalize(augment.CIFAR10_MEAN, augment.CIFAR10_STD)]
    return Compose(steps, image_size)
'''
HEAD_DETACHED = '''\
class ProjectionHead(nn.Module):
    def __init__(self, in_dim, hidden_dim, out_dim):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_dim, hidden_dim, bias=False),
                                    nn.BatchNorm1d(hidden_dim), nn.ReLU(),
                                    nn.Linear(hidden_dim, out_dim))

    def forward(self, h):
        return self.layers(h.detach())
'''

# Which exercise each mistake is in, grouped so that one notebook holds one mistake per
# exercise; where a property's failing depends on the drawn inputs it is only allowed.
PARTIAL = {
    "partial_a": {  # exercises 2 and 3 wrong: the NT-Xent answers that call them lose nothing
                    # for it
        "simclr_transform": (TRANSFORM_JITTER_ALWAYS, ["the steps and settings", "colour:"], []),
        "softmax_cross_entropy": (CE_SUM, ["equals the mean cross-entropy"], []),
        "cosine_similarity_matrix": (COS_DOT, ["of random rows", "ones on the diagonal",
                                               "ignores the lengths"], []),
        # -1e9 does not fit in float16; the answer calls this notebook's wrong helpers
        "nt_xent_loss": (VEC_MINUS_1E9, ["mixed precision"], []),
        "projection_head": (HEAD_LINEAR, ["train mode", "eval mode", "non-linear",
                                          "gradients reach h"], []),
    },
    "partial_b": {
        "simclr_transform": (TRANSFORM_IMAGENET, ["the steps and settings", "normalised"], []),
        "softmax_cross_entropy": (CE_UNSTABLE, ["in the thousands"], []),
        "cosine_similarity_matrix": (COS_DISTANCE, ["of random rows", "ones on the diagonal"],
                                     []),
        "nt_xent_loss_naive": (NAIVE_VECTORISED, ["Python loops"], []),
        "nt_xent_loss": (VEC_LOOPS, ["no Python loop"], []),
        "projection_head": (HEAD_BATCH_STATS, ["train mode", "eval mode", "gradients reach h"],
                            []),
    },
    "partial_c": {
        "simclr_transform": (TRANSFORM_GENTLE_CROP, ["the steps and settings"], ["random crops"]),
        "softmax_cross_entropy": (CE_LIBRARY, ["built from max"], []),
        "cosine_similarity_matrix": (COS_IN_PLACE, ["of random rows", "gradient with respect"],
                                     []),
        "nt_xent_loss_naive": (NAIVE_ONE_DIRECTION, ["the lecture's formula", "swapping",
                                                     "the mean of the 2N"], []),
        "nt_xent_loss": (VEC_UNSTABLE, ["tau = 0.01", "large and tiny z"], []),
        "projection_head": (HEAD_RELU_BEFORE_BN, ["train mode", "eval mode",
                                                  "gradients reach h"], []),
    },
    "partial_d": {  # the forged Compose earns nothing (checked below), the rest some
        "simclr_transform": (TRANSFORM_FORGED, [], []),
        "softmax_cross_entropy": (CE_ONE_HOT, ["-inf logits"], []),
        "cosine_similarity_matrix": (COS_ROW_SQUARED, ["of random rows", "ones on the diagonal",
                                                       "ignores the lengths"], []),
        "nt_xent_loss_naive": (NAIVE_NO_TAU, ["the lecture's formula", "temperature divides"],
                               []),
        "nt_xent_loss": (VEC_CROSS_ONLY, ["the lecture's formula", "the denominator"], []),
        "projection_head": (HEAD_DETACHED, ["gradients reach h"], []),
    },
}
FAKES = {"simclr_transform": TRANSFORM_ZEROS, "softmax_cross_entropy": CE_CONSTANT,
         "cosine_similarity_matrix": COS_ZEROS, "nt_xent_loss_naive": NAIVE_CONSTANT,
         "nt_xent_loss": VEC_ZEROS, "projection_head": HEAD_ZEROS}


def submissions() -> dict[str, dict]:
    master, release = MASTER_JSON, json.loads(RELEASE.read_text())
    subs = {"master": master, "correct": with_answers(master, DEMO["CORRECT"]),
            "demo_wrong": with_answers(master, DEMO["WRONG"]), "blank": release,
            "fakes": with_answers(master, FAKES)}
    for name, cells in PARTIAL.items():
        subs[name] = with_answers(master, {grade_id: source
                                           for grade_id, (source, _, _) in cells.items()})
    return subs


class TestContract(GraderContract):
    ASSIGNMENT, GRADER, FULL = ASSIGNMENT, grader, FULL


@pytest.fixture(scope="module")
def scored():
    return score_all(submissions(), json.loads(RELEASE.read_text()), grader, timeout=60)


def test_each_demo_wrong_answer_loses_points_only_in_its_cell(scored):
    points = scoring.cell_points(scored["demo_wrong"])
    wrong = {f"test_{grade_id}" for grade_id in DEMO["WRONG"]}
    assert wrong
    for grade_id, full in FULL.items():
        if grade_id in wrong:
            assert points[grade_id] < full, grade_id
        else:
            assert points[grade_id] == full, (grade_id, lost(scored["demo_wrong"], grade_id))


def matching(names, fragment):
    found = [name for name in names if fragment in name]
    assert len(found) == 1, (fragment, found)
    return found[0]


@pytest.mark.parametrize("notebook", sorted(PARTIAL))
def test_known_mistakes_lose_their_properties_and_nothing_else(scored, notebook):
    results = scored[notebook]
    points = scoring.cell_points(results)
    for grade_id, full in FULL.items():
        answer = grade_id.removeprefix("test_")
        missed = lost(results, grade_id)
        if answer not in PARTIAL[notebook]:
            assert not missed, (notebook, grade_id, missed)
            continue
        source, must, may = PARTIAL[notebook][answer]
        if source is TRANSFORM_FORGED:
            continue                                   # earns nothing: see below
        names = [p.name for p in grader.PROPERTIES[grade_id]]
        must = {matching(names, fragment) for fragment in must}
        may = {matching(names, fragment) for fragment in may}
        assert must <= set(missed) <= must | may, (notebook, answer, missed)
        assert 0 < points[grade_id] < full, (notebook, answer)
        assert all(message for message in missed.values()), missed


def test_faked_answers_earn_nothing(scored):
    """Constants, zeros of the right shape, and a Compose that carries the recipe's steps
    as attributes but returns zeros (its settings are right: behaviour decides)."""
    assert scoring.cell_points(scored["fakes"]) == {grade_id: 0 for grade_id in FULL}
    assert scoring.cell_points(scored["partial_d"])["test_simclr_transform"] == 0
    steps = matching([p.name for p in grader.PROPERTIES["test_simclr_transform"]], "steps and")
    assert "not that of its steps" in lost(scored["partial_d"], "test_simclr_transform")[steps]


def test_messages_name_the_mistake(scored):
    messages = " | ".join(r.message for name in PARTIAL for r in scored[name])
    for words in ("summed", "dot products", "other view only",
                  "one-hot", "F.cross_entropy", "changed in place", "only the N anchors",
                  "temperature is missing", "Python loops over the 2N anchors",
                  "a Python loop over the batch", "the log-sum-exp trick"):
        assert words in messages, words
    demo_messages = " | ".join(r.message for r in scored["demo_wrong"])
    assert "the anchor itself (k = i) is still in the denominator" in demo_messages
    assert "no RandomHorizontalFlip()" in demo_messages
