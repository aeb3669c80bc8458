"""The trusted grader of notebook 02 (autograder/graders/02_moco_queue.py).

The master earns every property; the demo's correct answers written differently earn full
marks; its wrong variants and the known mistakes below lose points in their own cell only,
partial mistakes some of the cell's points and faked answers all of them; the blank release
earns nothing. Each notebook below is scored once (one sandboxed worker each, two at a
time); a notebook carries one variant per exercise, so the step's cell also shows that a
wrong helper of exercises 1 or 3 is not counted again there. The grader's own reference
computations are checked against torch at the end (no sandbox needed).
"""
from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from autograder import demo, scoring
from helpers import GraderContract, lost, contract_submissions, score_all, with_answers

ASSIGNMENT = "02_moco_queue"
FULL = {"test_momentum_update": 3.0, "test_key_queue": 4.0, "test_moco_logits": 3.0,
        "test_moco_step": 3.0}
CELL = {"momentum_update": "test_momentum_update", "key_queue": "test_key_queue",
        "moco_logits": "test_moco_logits", "moco_step": "test_moco_step"}

grader = scoring.load_grader(ASSIGNMENT)

# ============================================================================ known mistakes
# Each: (source of the whole solution cell, the points its cell keeps, the properties lost).

MOMENTUM_HEAD = '@torch.no_grad()\ndef momentum_update(online, target, m):\n'
MOMENTUM = {
    "state_dict": (MOMENTUM_HEAD + '''\
    so, st = online.state_dict(), target.state_dict()
    for name, value in st.items():
        if value.is_floating_point():
            value.copy_(m * value + (1 - m) * so[name])
''', 2.5, {"parameters only"}),
    "no_decorator": ('''\
def momentum_update(online, target, m):
    for po, pt in zip(online.parameters(), target.parameters()):
        pt.mul_(m).add_(po, alpha=1 - m)
''', 2.5, {"without autograd"}),
    "new_parameters": (MOMENTUM_HEAD + '''\
    for (name, pt), po in zip(list(target.named_parameters()), online.parameters()):
        owner = target.get_submodule(name.rpartition(".")[0])
        setattr(owner, name.rpartition(".")[2], nn.Parameter(m * pt + (1 - m) * po))
''', 2.5, {"in place"}),
    "ignores_m": (MOMENTUM_HEAD + '''\
    for po, pt in zip(online.parameters(), target.parameters()):
        pt.copy_(po)
''', 1.75, {"the target becomes", "edge cases"}),
    "rebinds": (MOMENTUM_HEAD + '''\
    for po, pt in zip(online.parameters(), target.parameters()):
        pt = m * pt + (1 - m) * po
''', 0.0, None),
    "zeros": (MOMENTUM_HEAD + '''\
    for pt in target.parameters():
        pt.zero_()
''', 0.0, None),
    "returns_new": (MOMENTUM_HEAD + '''\
    new = copy.deepcopy(target)
    for po, pt in zip(online.parameters(), new.parameters()):
        pt.copy_(m * pt + (1 - m) * po)
    return new
''', 0.0, None),
}

QUEUE_BASE = '''\
class KeyQueue:
    def __init__(self, dim, size, device=None):
        self.size = size
        self.buffer = F.normalize(torch.randn(size, dim, device=device), dim=1)
        self.ptr = 0

    def enqueue(self, keys):
        keys = keys.detach()
        slots = (self.ptr + torch.arange(len(keys))) % self.size
        self.buffer[slots] = keys
        self.ptr = (self.ptr + len(keys)) % self.size

    @property
    def keys(self):
        return self.buffer.clone()
'''


def queue(old: str, new: str) -> str:
    assert old in QUEUE_BASE
    return QUEUE_BASE.replace(old, new)


QUEUE = {
    "newest_first": (queue('''        slots = (self.ptr + torch.arange(len(keys))) % self.size
        self.buffer[slots] = keys
''', '''        self.buffer = torch.cat([keys, self.buffer])[:self.size]
'''), 0.75,
     {"the first batches", "crosses the end", "any batch size", "detached", ".keys is a copy"}),
    "view": (queue("return self.buffer.clone()", "return self.buffer"), 3.5, {".keys is a copy"}),
    "moco_layout": (queue("return self.buffer.clone()", "return self.buffer.T.clone()"), 3.25,
                    {"initial keys"}),
    "not_normalised": (queue("F.normalize(torch.randn(size, dim, device=device), dim=1)",
                             "torch.randn(size, dim, device=device)"), 3.25, {"initial keys"}),
    "no_detach": (queue("keys = keys.detach()", "pass"), 3.5, {"detached"}),
    "reset_to_zero": (queue('''        slots = (self.ptr + torch.arange(len(keys))) % self.size
''', '''        if self.ptr + len(keys) > self.size:
            self.ptr = 0
        slots = self.ptr + torch.arange(len(keys))
'''), 2.5, {"crosses the end", "any batch size"}),
    "renormalises": (queue("keys = keys.detach()", "keys = F.normalize(keys.detach(), dim=1)"),
                     3.5, {"detached"}),
    "no_device": (queue("def __init__(self, dim, size, device=None):",
                        "def __init__(self, dim, size):").replace("device=device", ""),
                  3.25, {"initial keys"}),
    "constant": ('''\
class KeyQueue:
    def __init__(self, dim, size, device=None):
        self.store = torch.eye(size, dim)

    def enqueue(self, keys):
        pass

    @property
    def keys(self):
        return self.store.clone()
''', 0.0, None),
}

LOGITS_HEAD = "def moco_logits(q, k, queue_keys, tau):\n"
LOGITS_POS = "    l_pos = (q * k).sum(dim=1, keepdim=True)\n"
LABELS = "    return logits, torch.zeros(len(q), dtype=torch.long)\n"
LOGITS = {
    "no_tau": (LOGITS_HEAD + LOGITS_POS
               + "    logits = torch.cat([l_pos, q @ queue_keys.detach().T], dim=1)\n" + LABELS,
               1.75, {"logits [q", "divided by"}),
    "in_batch": (LOGITS_HEAD + '''\
    logits = torch.cat([q @ k.T, q @ queue_keys.detach().T], dim=1) / tau
    return logits, torch.arange(len(q))
''', 0.0, None),
    "attached_queue": (LOGITS_HEAD + LOGITS_POS
                       + "    logits = torch.cat([l_pos, q @ queue_keys.T], dim=1) / tau\n"
                       + LABELS, 2.5, {"no gradient"}),
    "float_labels": (LOGITS_HEAD + LOGITS_POS
                     + "    logits = torch.cat([l_pos, q @ queue_keys.detach().T], dim=1) / tau\n"
                     + "    return logits, torch.zeros(len(q))\n", 2.5, {"labels"}),
    "times_tau": (LOGITS_HEAD + LOGITS_POS
                  + "    logits = torch.cat([l_pos, q @ queue_keys.detach().T], dim=1) * tau\n"
                  + LABELS, 1.75, {"logits [q", "divided by"}),
    "damages_queue": (LOGITS_HEAD + '''\
    negatives = queue_keys.detach()
    negatives /= tau
    logits = torch.cat([(q * k).sum(dim=1, keepdim=True) / tau, q @ negatives.T], dim=1)
''' + LABELS, 2.75, {"inputs are left"}),
    "zeros": (LOGITS_HEAD + '''\
    return torch.zeros(len(q), 1 + len(queue_keys)), torch.zeros(len(q), dtype=torch.long)
''', 0.0, None),
}


def step(order="right", normalise=True, momentum=True, no_grad=True, key_from="key_encoder",
         enqueues=1):
    norm = "F.normalize({}, dim=1)" if normalise else "{}"
    lines = ["def moco_step(x_q, x_k, query_encoder, key_encoder, queue, m, tau):"]
    if momentum and order != "momentum_after":
        lines.append("    momentum_update(query_encoder, key_encoder, m)")
    lines.append("    q = " + norm.format("query_encoder(x_q)"))
    keys = "k = " + norm.format(f"{key_from}(x_k)")
    lines += ["    with torch.no_grad():", "        " + keys] if no_grad else ["    " + keys]
    if order == "enqueue_first":
        lines.append("    queue.enqueue(k)")
    lines += ["    logits, labels = moco_logits(q, k, queue.keys, tau)",
              "    loss = F.cross_entropy(logits, labels)"]
    if order != "enqueue_first":
        lines += ["    queue.enqueue(k)"] * enqueues
    if order == "momentum_after":
        lines.append("    momentum_update(query_encoder, key_encoder, m)")
    return "\n".join(lines + ["    return loss", ""])


STEP = {
    "enqueue_first": (step(order="enqueue_first"), 2.5, {"before this batch"}),
    "no_momentum": (step(momentum=False), 2.5, {"one momentum update"}),
    "not_normalised": (step(normalise=False), 1.5, {"the loss", "enqueues"}),
    "keys_with_grad": (step(no_grad=False), 2.5, {"gradients"}),
    "keys_from_query": (step(key_from="query_encoder"), 1.5, {"the loss", "enqueues"}),
    "momentum_after": (step(order="momentum_after"), 1.5, {"the loss", "enqueues"}),
    "constant": ('''\
def moco_step(x_q, x_k, query_encoder, key_encoder, queue, m, tau):
    return torch.tensor(2.0, requires_grad=True)
''', 0.0, None),
    "enqueues_twice": (step(enqueues=2), 2.5, {"enqueues"}),
    "query_only": ('''\
def moco_step(x_q, x_k, query_encoder, key_encoder, queue, m, tau):
    return query_encoder(x_q).square().mean()
''', 0.0, None),
}


# Which variants share a notebook (one per exercise). The step's checks accept what the
# student's own helpers give, but a helper that breaks the step itself (zero logits, float
# labels), raises in it (no torch.no_grad() on a key encoder that requires grad) or does
# nothing (a step cannot show it calls a no-op) shares its notebook with a step that loses
# those properties on its own anyway.
ROWS = [
    ("ignores_m", "newest_first", "no_tau", "enqueue_first"),
    ("rebinds", "view", "in_batch", "no_momentum"),
    ("new_parameters", "moco_layout", "attached_queue", "not_normalised"),
    ("state_dict", "not_normalised", "times_tau", "keys_with_grad"),
    ("zeros", "no_detach", "damages_queue", "keys_from_query"),
    (None, "reset_to_zero", None, "momentum_after"),
    ("returns_new", "renormalises", "zeros", "constant"),
    ("no_decorator", "no_device", "float_labels", "query_only"),
    (None, "constant", None, "enqueues_twice"),
]
VARIANTS = {"momentum_update": MOMENTUM, "key_queue": QUEUE, "moco_logits": LOGITS,
            "moco_step": STEP}


def variant_notebooks():
    """Per notebook: grade_id -> (variant name, (source, points kept, properties lost))."""
    rows = [{g: (n, VARIANTS[g][n]) for g, n in zip(VARIANTS, row) if n is not None}
            for row in ROWS]
    for grade_id, variants in VARIANTS.items():
        used = [row[grade_id][0] for row in rows if grade_id in row]
        assert sorted(used) == sorted(variants), grade_id
    return rows


# ============================================================================ scoring


class TestContract(GraderContract):
    ASSIGNMENT, GRADER, FULL = ASSIGNMENT, grader, FULL


@pytest.fixture(scope="module")
def scored():
    master, release, notebooks = contract_submissions(ASSIGNMENT)
    notebooks["wrong"] = with_answers(master, demo.wrong_variants(ASSIGNMENT))
    for i, row in enumerate(variant_notebooks()):
        notebooks[f"variants_{i}"] = with_answers(
            master, {g: source for g, (_, (source, _, _)) in row.items()})
    return score_all(notebooks, release, grader)


def test_the_demo_wrong_variants_lose_only_in_their_cells(scored):
    wrong = demo.wrong_variants(ASSIGNMENT)
    points = scoring.cell_points(scored["wrong"])
    for grade_id, test_id in CELL.items():
        if grade_id in wrong:
            assert points[test_id] < FULL[test_id], f"wrong {grade_id} kept all its points"
            assert points[test_id] > 0, f"wrong {grade_id}: a partial mistake lost everything"
        else:
            assert points[test_id] == FULL[test_id], lost(scored["wrong"], test_id)
    assert points == {"test_momentum_update": 1.75, "test_key_queue": 2.5,
                      "test_moco_logits": 1.75, "test_moco_step": 3.0}
    messages = lost(scored["wrong"], "test_key_queue")
    assert any("dropped" in m and "wrap around" in m for m in messages.values()), messages
    assert "last column" in lost(scored["wrong"], "test_moco_logits")["the positive is in column 0"]
    assert "swapped" in lost(scored["wrong"], "test_momentum_update")[
        "the target becomes m * target + (1 - m) * online"]


def test_each_known_mistake_loses_its_properties(scored):
    """Partial mistakes lose the properties they break and keep the others (a helper of the
    step that is wrong costs its own cell, not the step's); faked answers earn nothing."""
    problems = []
    for i, row in enumerate(variant_notebooks()):
        results = scored[f"variants_{i}"]
        points = scoring.cell_points(results)
        for grade_id, test_id in CELL.items():
            if grade_id not in row:
                if points[test_id] != FULL[test_id]:
                    problems.append((i, grade_id, "master answer", lost(results, test_id)))
                continue
            name, (_, keeps, broken) = row[grade_id]
            failed = lost(results, test_id)
            if points[test_id] != keeps:
                problems.append((i, grade_id, name, points[test_id], keeps, failed))
            elif broken is not None and {p for p in failed
                                         if not any(p.startswith(b) or b in p for b in broken)}:
                problems.append((i, grade_id, name, "lost the wrong properties", failed))
    assert not problems, "\n".join(map(repr, problems))


def test_messages_name_the_mistake(scored):
    """A few of the diagnoses, as the student reads them in the feedback."""
    by_variant = {}
    for i, row in enumerate(variant_notebooks()):
        for grade_id, (name, _) in row.items():
            by_variant[(grade_id, name)] = lost(scored[f"variants_{i}"], CELL[grade_id])
    assert "buffers" in by_variant[("momentum_update", "state_dict")][
        "parameters only: the target's BatchNorm buffers stay as they were"]
    assert "torch.no_grad" in " ".join(by_variant[("momentum_update", "no_decorator")].values())
    assert "replaced" in " ".join(by_variant[("momentum_update", "new_parameters")].values())
    assert "copy" in " ".join(by_variant[("momentum_update", "ignores_m")].values())
    assert "copy" in " ".join(by_variant[("key_queue", "view")].values())
    assert "(dim, size)" in " ".join(by_variant[("key_queue", "moco_layout")].values())
    assert "unit length" in " ".join(by_variant[("key_queue", "not_normalised")].values())
    assert "detach" in " ".join(by_variant[("key_queue", "no_detach")].values())
    assert "written from slot 0" in " ".join(by_variant[("key_queue", "reset_to_zero")].values())
    assert "as they arrive" in " ".join(by_variant[("key_queue", "renormalises")].values())
    assert "device" in " ".join(by_variant[("key_queue", "no_device")].values())
    assert "temperature" in " ".join(by_variant[("moco_logits", "no_tau")].values())
    assert "every key of the batch" in " ".join(by_variant[("moco_logits", "in_batch")].values())
    assert "detach" in " ".join(by_variant[("moco_logits", "attached_queue")].values())
    assert "torch.long" in " ".join(by_variant[("moco_logits", "float_labels")].values())
    assert "multiplied by tau" in " ".join(by_variant[("moco_logits", "times_tau")].values())
    assert "in place" in " ".join(by_variant[("moco_logits", "damages_queue")].values())
    assert "after this batch's keys were enqueued" in " ".join(
        by_variant[("moco_step", "enqueue_first")].values())
    assert "not moved" in " ".join(by_variant[("moco_step", "no_momentum")].values())
    assert "normalise" in " ".join(by_variant[("moco_step", "not_normalised")].values())
    assert "torch.no_grad" in " ".join(by_variant[("moco_step", "keys_with_grad")].values())
    assert "query encoder" in " ".join(by_variant[("moco_step", "keys_from_query")].values())
    assert "before its momentum update" in " ".join(
        by_variant[("moco_step", "momentum_after")].values())
    assert "2 times" in " ".join(by_variant[("moco_step", "enqueues_twice")].values())
    for results in scored.values():                       # no expected numbers in messages
        for r in results:
            assert len(r.message) < 500


# ============================================================================ the references


def test_reference_logits_and_loss_match_torch():
    rng = np.random.default_rng(0)
    for _ in range(5):
        q, k, queue = grader._logit_inputs(rng)
        tau = float(rng.uniform(0.05, 1.0))
        logits = grader._reference_logits(q, k, queue, tau)
        tq, tk, tQ = (torch.from_numpy(x).double() for x in (q, k, queue))
        torch_logits = torch.cat([torch.einsum("nc,nc->n", tq, tk)[:, None],
                                  torch.einsum("nc,kc->nk", tq, tQ)], dim=1) / tau
        assert np.allclose(logits, torch_logits.numpy(), atol=1e-12)
        labels = torch.zeros(len(q), dtype=torch.long)
        assert np.isclose(grader._cross_entropy_0(logits),
                          F.cross_entropy(torch_logits, labels).item(), rtol=1e-12)
        shuffled = rng.integers(0, logits.shape[1], size=len(q))
        assert np.isclose(grader._cross_entropy(logits, shuffled),
                          F.cross_entropy(torch_logits, torch.from_numpy(shuffled)).item(),
                          rtol=1e-12)


def test_reference_forward_matches_torch():
    rng = np.random.default_rng(1)
    draw = grader._draw_step(rng)
    D, H, C = draw["dims"]
    net = torch.nn.Sequential(torch.nn.Linear(D, H), torch.nn.ReLU(), torch.nn.Linear(H, C))
    net.load_state_dict({n: torch.from_numpy(v) for n, v in draw["query"].items()})
    with torch.no_grad():
        out = net(torch.from_numpy(draw["x_q"])).double().numpy()
    assert np.allclose(grader._forward(draw["query"], draw["x_q"]), out, atol=1e-5)


def test_reference_ring_buffer_is_a_fifo():
    """The grader's ring buffer, against a plain FIFO of the last `size` keys."""
    rng = np.random.default_rng(2)
    for size in (1, 5, 7, 12):
        ring, history = grader._Ring(np.zeros((size, 2))), []
        for _ in range(20):
            batch = rng.standard_normal((int(rng.integers(1, size + 1)), 2))
            ring.push(batch)
            history += list(batch)
            newest = history[-size:]
            ptr = len(history) % size               # slot of the oldest key still there
            order = np.concatenate([ring.slots[ptr:], ring.slots[:ptr]])
            if len(history) >= size:
                assert np.array_equal(order, np.array(newest))
            assert ring.ptr == ptr


def test_drawn_logits_are_never_near_constant():
    """A right answer must not read as "constant logits" by the luck of the draw: one query
    and one queue key (2 logits) once gave q . k within 1e-3 tau of q . queue (CI, seed
    unknown). Every draw's logits now spread by more than 0.1 before dividing by tau."""
    rng = np.random.default_rng(0)
    for _ in range(3000):
        q, k, queue = grader._logit_inputs(rng, N=1, K=1)
        assert np.ptp(grader._reference_logits(q, k, queue, 1.0)) > 0.1
