"""Grader of notebook 01 (SimCLR: transform, cross-entropy, cosine matrix, NT-Xent, head).

Never released, never mounted in a sandbox. Every property draws its inputs from ``rng``
(a fresh seed each run), builds them in the worker, calls the student's code there, reads
the results back as data and compares them with the grader's own computation, written
from the notebook's formulas in NumPy (float64):

    cross-entropy   mean_b [ m_b + log sum_k exp(z_bk - m_b) - z_b,y_b ],   m_b = max_k z_bk
    cosine matrix   S = U U^T with u_m = z_m / |z_m|
    NT-Xent         rows of cat(z_i, z_j): anchor a has the positive (a + N) mod 2N, the
                    denominator over every k != a, logits S / tau, the mean of the 2N terms
    head            z = W2 ReLU(BN(W1 h + b1)) + b2 (BN optional), from the parameters the
                    grader loads and reads back; BatchNorm on the batch in train mode and
                    on its running statistics in eval mode
    transform       its steps and settings read from the composition, and its behaviour on
                    images the grader makes: shapes, normalisation, crops, flips, colours

Each property checks one requirement. An answer that is wrong in another respect still
passes it when it is a known mistake of that other respect: the grader computes each
exercise's family of known mistakes (the self-similarity left in NT-Xent's denominator,
the sum for the mean, dot products for cosines, ...) and a property asks that the answer
be one and the same member on its inputs and on fresh ones, with its own requirement
right. So a mistake costs the properties it breaks, and a constant or zeros match nothing.

The two NT-Xent exercises are called through a copy of the student's function whose
``softmax_cross_entropy`` and ``cosine_similarity_matrix`` are torch's (built in the worker
from importable names), so a wrong exercise 2 or 3 costs only its own points. How many
torch operations a loss runs (torch's profiler, in the worker) tells a loop over the batch
from a vectorised computation; no property measures time.
"""
from __future__ import annotations

import math
import weakref

import numpy as np

from autograder.grader_tools import close, put
from autograder.scoring import Property
from autograder.worker_client import WorkerError

F32 = np.float32
MEAN = np.array([0.4914, 0.4822, 0.4465])          # CIFAR-10, as the exercise text gives them
STD = np.array([0.2470, 0.2435, 0.2616])
FORBIDDEN_OPS = {"aten::cross_entropy_loss": "F.cross_entropy",
                 "aten::log_softmax": "a log_softmax", "aten::_log_softmax": "a log_softmax",
                 "aten::logsumexp": "torch.logsumexp", "aten::special_logsumexp": "a logsumexp"}


def _ref(name):
    return {"$handle": name}


# ================================================================ small helpers


def _seed(worker, rng):
    """The worker's torch generator, seeded from this run's rng (transforms draw from it)."""
    worker.call("torch.manual_seed", int(rng.integers(1, 2**31 - 1)), keep="_generator")


def _tensor_out(worker, call, *args, on=None, what="the result", shape=None, **kwargs):
    """Call, keep the answer, require a torch.Tensor; returns (array, dtype name)."""
    kept = worker.call(call, *args, on=on, keep="_out", **kwargs)
    kind = kept.get("type") if isinstance(kept, dict) else None
    assert kind == "torch.Tensor", f"{what} should be a torch.Tensor, got {kind}"
    value = worker.get("_out", "")
    dtype = worker.get("_out", "dtype")
    assert isinstance(value, np.ndarray), f"{what} could not be read back as an array"
    if shape is not None:
        assert value.shape == tuple(shape), \
            f"{what} has shape {tuple(value.shape)}, expected {tuple(shape)}"
    return value, dtype


def _scalar(worker, call, *args, on=None, what="the loss", **kwargs) -> float:
    value, _ = _tensor_out(worker, call, *args, on=on, what=what, **kwargs)
    assert value.ndim == 0, f"{what} should be a 0-dim tensor (one number), got shape " \
                            f"{tuple(value.shape)}"
    return float(value)


def _op_counts(worker, call, *args, on=None) -> dict[str, int]:
    """The aten operations one call runs, by name, as torch's profiler records them."""
    worker.call("torch.autograd.profiler.profile", keep="_prof")
    worker.call("__enter__", on="_prof", keep="_prof")
    try:
        worker.call(call, *args, on=on, keep="_profiled")
    finally:
        worker.call("__exit__", None, None, None, on="_prof")
    worker.call("key_averages", on="_prof", keep="_prof_keys")
    counts = {}
    for i in range(int(worker.call("builtins.len", _ref("_prof_keys")))):
        key = worker.get("_prof_keys", f"{i}.key")
        counts[str(key)] = counts.get(str(key), 0) + int(worker.get("_prof_keys", f"{i}.count"))
    return counts


# ================================================================ references (float64)


def _lse(z):
    top = z.max(axis=1, keepdims=True)
    return top[:, 0] + np.log(np.exp(z - top).sum(axis=1))


def ce_reference(logits, targets) -> float:
    z = np.asarray(logits, dtype=np.float64)
    return float(np.mean(_lse(z) - z[np.arange(len(z)), targets]))


def ce_gradient(logits, targets):
    """d mean_b loss_b / d logits = (softmax - one_hot) / B."""
    z = np.asarray(logits, dtype=np.float64)
    p = np.exp(z - _lse(z)[:, None])
    p[np.arange(len(z)), targets] -= 1.0
    return p / len(z)


def _unit_rows(z):
    z = np.asarray(z, dtype=np.float64)
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    return z / norms, norms


def cosine_reference(z):
    u, _ = _unit_rows(z)
    return u @ u.T


def cosine_gradient(z, upstream):
    """d sum(upstream * S) / dz for S = U U^T: through U, then through u = z / |z|."""
    u, norms = _unit_rows(z)
    g_u = (upstream + upstream.T) @ u
    return (g_u - u * (u * g_u).sum(axis=1, keepdims=True)) / norms


def nt_xent_reference(z_i, z_j, tau):
    """The loss and its gradients with respect to z_i and z_j."""
    n = len(z_i)
    u, norms = _unit_rows(np.concatenate([z_i, z_j]))
    logits = u @ u.T / tau
    np.fill_diagonal(logits, -np.inf)
    positive = (np.arange(2 * n) + n) % (2 * n)
    lse = _lse(logits)
    loss = float(np.mean(lse - logits[np.arange(2 * n), positive]))
    d_logits = np.exp(logits - lse[:, None])
    d_logits[np.arange(2 * n), positive] -= 1.0
    d_sim = d_logits / (2 * n * tau)
    g_u = (d_sim + d_sim.T) @ u
    g_z = (g_u - u * (u * g_u).sum(axis=1, keepdims=True)) / norms
    return loss, g_z[:n], g_z[n:]


# ---------------------------------------------------------------- the known mistakes
# A property checks one requirement. Where an answer is wrong in another respect, a
# property still passes when the answer is one of the known mistakes of that other respect:
# each family below maps the mistake's settings to its value (the right answer included).

CE_MISTAKES = {("reduce", "sum"): "the per-row losses are summed; the loss is their mean",
               ("reduce", "all"): "the mean runs over all B * C entries; average over the B rows",
               ("sign", "-"): "the sign is flipped: the loss is -log p(target), never negative",
               ("shift", "lost"): "the row maximum m subtracted inside exp is not added back: "
                                  "log sum exp(z) = m + log sum exp(z - m)"}
CE_RIGHT = {"reduce": "mean", "sign": "+", "shift": "kept"}


def ce_family(logits, targets) -> dict:
    z = np.asarray(logits, dtype=np.float64)
    b, c = z.shape
    top = z.max(axis=1)
    rest = np.log(np.exp(z - top[:, None]).sum(axis=1))
    picked = z[np.arange(b), targets]
    family = {}
    for shift, lse in (("kept", top + rest), ("lost", rest)):
        terms = lse - picked
        for reduce, value in (("mean", terms.mean()), ("sum", terms.sum()),
                              ("all", terms.sum() / (b * c))):
            for sign in ("+", "-"):
                family[(("reduce", reduce), ("sign", sign), ("shift", shift))] = \
                    float(value if sign == "+" else -value)
    return family


COS_MISTAKES = {"dot": "these are dot products: divide by |z_m| |z_k| (or normalise the rows)",
                "columns": "normalised along dim 0 (each feature over the batch); normalise "
                           "each row (dim 1)",
                "one side": "only one side is normalised: normalise both rows",
                "squared rows": "divided by |z_m|^2 instead of |z_m| |z_k| (norms of shape (M,) "
                                "broadcast along one axis; use their outer product)",
                "squared columns": "divided by |z_k|^2 instead of |z_m| |z_k| (norms of shape "
                                   "(M,) broadcast along one axis; use their outer product)",
                "distance": "this is 1 - cosine (a distance); return the similarity"}


def cos_family(z) -> dict:
    z = np.asarray(z, dtype=np.float64)
    u, norms = _unit_rows(z)
    dots = z @ z.T
    cols = z / np.linalg.norm(z, axis=0, keepdims=True)
    return {"right": u @ u.T, "dot": dots, "columns": cols @ cols.T, "one side": u @ z.T,
            "squared rows": dots / norms ** 2, "squared columns": dots / norms.T ** 2,
            "distance": 1 - u @ u.T}


NT_MISTAKES = {("self", "included"): "the anchor itself (k = i) is still in the denominator; "
                                     "the sum runs over k != i",
               ("self", "zero"): "the diagonal is set to 0, but exp(0) = 1 still lands in the "
                                 "denominator: mask it with -inf",
               ("negatives", "other view"): "the negatives come from the other view only; "
                                            "every other view of the 2N is a negative",
               ("reduce", "first view"): "only the N anchors of the first view are averaged; "
                                         "every one of the 2N views is an anchor",
               ("reduce", "sum"): "the 2N terms are summed; the loss is their mean",
               ("reduce", "over N"): "the sum of the 2N terms is divided by N, not 2N",
               ("temperature", "missing"): "the temperature is missing: divide the "
                                           "similarities by tau",
               ("temperature", "multiplied"): "the similarities are multiplied by tau; divide "
                                              "them by tau",
               ("similarity", "dot"): "dot products instead of cosine similarities: "
                                      "normalise z"}
NT_RIGHT = {"self": "masked", "negatives": "all", "reduce": "mean", "temperature": "divided",
            "similarity": "cosine"}


def nt_family(z_i, z_j, tau) -> dict:
    """{settings: value} over the known mistakes (tau should be far from 1)."""
    n = len(z_i)
    z = np.concatenate([z_i, z_j]).astype(np.float64)
    u, _ = _unit_rows(z)
    positive = (np.arange(2 * n) + n) % (2 * n)
    family = {}
    for similarity, base in (("cosine", u @ u.T), ("dot", z @ z.T)):
        for temperature, s in (("divided", base / tau), ("missing", base),
                               ("multiplied", base * tau)):
            pos = s[np.arange(2 * n), positive]
            rows = {}
            for self_kind, fill in (("masked", -np.inf), ("included", None), ("zero", 0.0)):
                logits = s.copy()
                if fill is not None:
                    np.fill_diagonal(logits, fill)
                rows[("all", self_kind)] = _lse(logits) - pos
            rows[("other view", "masked")] = np.concatenate([_lse(s[:n, n:]) - pos[:n],
                                                             _lse(s[n:, :n]) - pos[n:]])
            for (negatives, self_kind), terms in rows.items():
                for reduce, value in (("mean", terms.mean()), ("first view", terms[:n].mean()),
                                      ("sum", terms.sum()), ("over N", terms.sum() / n)):
                    key = (("self", self_kind), ("negatives", negatives), ("reduce", reduce),
                           ("temperature", temperature), ("similarity", similarity))
                    family[key] = float(value)
    return family


def _same(key, right) -> bool:
    return key == right or (isinstance(key, tuple) and isinstance(right, dict) and
                            dict(key) == right)


def _matches(got, family: dict, right=None, rtol=2e-4, atol=2e-4) -> list:
    """The members ``got`` equals; a mistake whose value is about 0 matches nothing (an
    answer that returns zeros is no mistake of the family)."""
    return [key for key, value in family.items()
            if np.shape(value) == np.shape(got) and
            bool(np.all(np.isfinite(got))) and
            (_same(key, right) or np.abs(value).max() > 2 * atol + 1e-6) and
            bool(np.allclose(got, value, rtol=rtol, atol=atol))]


def _require(observations, mistakes, right, what, need=(), rtol=2e-4, atol=2e-4,
             fallback="") -> None:
    """Every observation (an answer and its family) matches one and the same member whose
    settings named in ``need`` are right; otherwise say which mistake the answers match.
    One member for several inputs: a constant does not pass by a chance coincidence."""
    common = None
    for got, family in observations:
        found = set(_matches(got, family, right, rtol, atol))
        common = found if common is None else common & found
    good = [key for key in common if all(dict(key).get(part) == right[part] for part in need)]
    if good:
        return
    if common:
        key = sorted(common)[0]
        wrong = [part for part in key if part[0] in need and right[part[0]] != part[1]]
        raise AssertionError(f"{what}: " + "; ".join(mistakes[part] for part in wrong))
    raise AssertionError(f"{what}: {fallback}".rstrip(": "))


def _pairs(rng, n, d, scale=1.0, noise=0.5, dtype=F32):
    """Two views: z_j a noisy copy of z_i (unrelated for noise=None), rows of different
    lengths."""
    lengths = rng.uniform(0.3, 3.0, size=(n, 1)) * scale
    z_i = rng.standard_normal((n, d)) * lengths
    if noise is None:
        z_j = rng.standard_normal((n, d)) * lengths
    else:
        z_j = z_i + noise * rng.standard_normal((n, d)) * lengths
    z_j = z_j * rng.uniform(0.3, 3.0, (n, 1))
    return z_i.astype(dtype), z_j.astype(dtype)


def _tau(rng, low=0.2, high=0.8):
    return float(rng.uniform(low, high))


def _directional(evaluate, arrays, grads, rng, eps=1e-3):
    """The gradient against a central difference of the loss along a random direction
    (loose enough for an answer that computes in float32)."""
    directions = [rng.standard_normal(a.shape) for a in arrays]
    plus = evaluate([a + eps * v for a, v in zip(arrays, directions)])
    minus = evaluate([a - eps * v for a, v in zip(arrays, directions)])
    numeric = (plus - minus) / (2 * eps)
    analytic = sum(float(np.sum(np.asarray(g, np.float64) * v)) for g, v in zip(grads, directions))
    scale = sum(float(np.linalg.norm(g) * np.linalg.norm(v)) for g, v in zip(grads, directions))
    return abs(numeric - analytic) <= 2e-3 * scale + 1e-5


# ================================================================ exercise 2: cross-entropy


def _logits(rng, b, c, scale, dtype=F32):
    return (rng.standard_normal((b, c)) * scale).astype(dtype), rng.integers(0, c, size=b)


def _ce(worker, logits, targets, what="softmax_cross_entropy(logits, targets)", grad=False):
    put(worker, "_logits", logits, requires_grad=grad)
    put(worker, "_targets", targets.astype(np.int64))
    return _scalar(worker, "softmax_cross_entropy", _ref("_logits"), _ref("_targets"), what=what)


def _ce_like(worker, rng, got, logits, targets, what, need=()):
    """``got`` for these logits, and the answer for fresh ones, are one member of the
    cross-entropy's family (right where ``need`` says)."""
    observations = [(got, ce_family(logits, targets))]
    fresh, labels = _logits(rng, int(rng.integers(3, 9)), int(rng.integers(3, 9)), 2.0)
    observations.append((_ce(worker, fresh, labels), ce_family(fresh, labels)))
    _require(observations, CE_MISTAKES, CE_RIGHT, what, need=need, rtol=1e-4, atol=1e-5,
             fallback="not a softmax cross-entropy of the logits")


def ce_values(worker, rng):
    for b, c, scale in [(int(rng.integers(2, 17)), int(rng.integers(2, 13)), 1.0),
                        (int(rng.integers(2, 9)), int(rng.integers(5, 40)), _tau(rng, 3, 12)),
                        (1, int(rng.integers(2, 6)), 1.0),
                        (int(rng.integers(3, 9)), 3, 1e-3)]:
        logits, targets = _logits(rng, b, c, scale)
        got = _ce(worker, logits, targets)
        if not math.isclose(got, ce_reference(logits, targets), rel_tol=1e-4, abs_tol=1e-5):
            _ce_like(worker, rng, got, logits, targets, f"for logits of shape ({b}, {c}) the "
                     f"loss is {got:.6g}", need=tuple(CE_RIGHT))
            raise AssertionError(f"for logits of shape ({b}, {c}) the loss is {got:.6g}, not "
                                 f"the mean of -z[b, y_b] + log sum_k exp(z[b, k])")


def ce_large_logits(worker, rng):
    b, c = int(rng.integers(3, 12)), int(rng.integers(3, 12))
    logits, targets = _logits(rng, b, c, _tau(rng, 1e3, 5e3))
    got = _ce(worker, logits, targets)
    assert math.isfinite(got), \
        "logits in the thousands give a non-finite loss: subtract each row's maximum " \
        "before exp and add it back after the log (the log-sum-exp trick)"
    _ce_like(worker, rng, got, logits, targets, f"logits in the thousands give {got:.6g}")


def ce_masked_logits(worker, rng):
    b, c = int(rng.integers(3, 10)), int(rng.integers(4, 10))
    logits, targets = _logits(rng, b, c, 2.0)
    for row in range(b):
        others = [k for k in range(c) if k != targets[row]]
        # row 0 keeps only its target (its loss is 0); every other row keeps at least one
        # other class, so the loss is never 0 and a summed loss stays a summed loss
        size = len(others) if row == 0 else int(rng.integers(1, len(others)))
        masked = rng.choice(others, size=size, replace=False)
        logits[row, masked] = -np.inf
    got = _ce(worker, logits, targets, what="softmax_cross_entropy with -inf logits")
    assert math.isfinite(got), \
        "-inf logits (classes of probability 0) give a non-finite loss: pick the target " \
        "logit by indexing rather than multiplying log-probabilities by a one-hot"
    _ce_like(worker, rng, got, logits, targets, f"with -inf logits the loss is {got:.6g}")


def ce_gradient_property(worker, rng):
    b, c = int(rng.integers(2, 10)), int(rng.integers(2, 9))
    logits, targets = _logits(rng, b, c, 2.0, dtype=np.float64)
    got = _ce(worker, logits, targets, grad=True)
    worker.call("backward", on="_out")
    grad = worker.get("_logits", "grad")
    assert grad is not None, "no gradient reaches the logits (avoid .item(), .detach(), numpy)"
    assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0, \
        "the gradient with respect to the logits is zero or not finite"
    if math.isclose(got, ce_reference(logits, targets), rel_tol=1e-9, abs_tol=1e-9):
        assert close(grad, ce_gradient(logits, targets), rtol=1e-5, atol=1e-8), \
            "the gradient with respect to the logits is not (softmax - one_hot) / B"
    evaluate = lambda arrays: _ce(worker, arrays[0], targets)  # noqa: E731
    assert _directional(evaluate, [logits], [grad], rng), \
        "the gradient does not match the loss (is a part of it cut off from autograd?)"
    _ce_like(worker, rng, got, logits, targets, f"the loss is {got:.6g}")


def ce_dtypes(worker, rng):
    b, c = int(rng.integers(2, 10)), int(rng.integers(2, 9))
    for dtype, name in ((F32, "torch.float32"), (np.float64, "torch.float64")):
        logits, targets = _logits(rng, b, c, 3.0, dtype=dtype)
        put(worker, "_logits", logits)
        put(worker, "_targets", targets)
        value, got = _tensor_out(worker, "softmax_cross_entropy", _ref("_logits"),
                                 _ref("_targets"))
        assert got == name, f"{name.split('.')[1]} logits give a {got} loss; keep their dtype"
        assert value.ndim == 0, f"the loss should be a 0-dim tensor, got shape {value.shape}"
        _ce_like(worker, rng, float(value), logits, targets, f"the loss is {float(value):.6g}")
        if dtype == np.float64 and math.isclose(float(value), ce_reference(logits, targets),
                                                rel_tol=1e-4):
            assert math.isclose(float(value), ce_reference(logits, targets), rel_tol=1e-10,
                                abs_tol=1e-12), \
                "float64 logits lose precision: compute in the logits' own dtype"


def ce_own_computation(worker, rng):
    b, c = int(rng.integers(3, 9)), int(rng.integers(3, 9))
    logits, targets = _logits(rng, b, c, 2.0)
    put(worker, "_logits", logits)
    put(worker, "_targets", targets)
    ops = _op_counts(worker, "softmax_cross_entropy", _ref("_logits"), _ref("_targets"))
    used = sorted({name for op, name in FORBIDDEN_OPS.items() if op in ops})
    assert not used, f"it calls {', '.join(used)}: build the loss from max, exp, sum, log " \
                     f"and indexing (that is the exercise)"
    got = np.asarray(worker.get("_profiled", ""), dtype=np.float64)
    assert got.ndim == 0, f"the loss should be a 0-dim tensor, got shape {got.shape}"
    _ce_like(worker, rng, float(got), logits, targets, f"the loss is {float(got):.6g}")


# ================================================================ exercise 3: cosine matrix


def _cos(worker, z, what="cosine_similarity_matrix(z)", grad=False):
    put(worker, "_z", z, requires_grad=grad)
    return _tensor_out(worker, "cosine_similarity_matrix", _ref("_z"), what=what,
                       shape=(len(z), len(z)))


def _cos_like(got, z, what, need_right=False):
    found = _matches(got, cos_family(z), "right", rtol=1e-4, atol=3e-5)
    if "right" in found or (found and not need_right):
        return
    if found:
        raise AssertionError(f"{what}: {COS_MISTAKES[found[0]]}")
    raise AssertionError(f"{what}: entry (m, k) is not z_m . z_k / (|z_m| |z_k|)")


def _rows(rng, m, d, low=0.2, high=5.0, dtype=F32):
    return (rng.standard_normal((m, d)) * rng.uniform(low, high, size=(m, 1))).astype(dtype)


def cos_values(worker, rng):
    for m, d in [(int(rng.integers(3, 12)), int(rng.integers(2, 9))), (1, int(rng.integers(2, 6))),
                 (int(rng.integers(2, 6)), int(rng.integers(100, 200)))]:
        z = _rows(rng, m, d, 0.1, 10.0)
        got, _ = _cos(worker, z)
        _cos_like(got, z, f"for z of shape ({m}, {d})", need_right=True)
        assert np.array_equal(worker.get("_z", ""), z), "the input z was changed in place"


def cos_diagonal_symmetric(worker, rng):
    m, d = int(rng.integers(4, 12)), int(rng.integers(3, 9))
    z = _rows(rng, m, d)
    got, _ = _cos(worker, z)
    assert close(np.diag(got), np.ones(m), atol=1e-5), \
        "the diagonal should be 1 (every row is perfectly similar to itself)"
    assert close(got, got.T, atol=1e-6), \
        "the matrix is not symmetric: normalise both sides by |z_m| |z_k|"
    _cos_like(got, z, "the values")


def cos_length_invariance(worker, rng):
    m, d = int(rng.integers(3, 10)), int(rng.integers(3, 9))
    z = rng.standard_normal((m, d)).astype(F32)
    scaled = (z * np.exp(rng.uniform(-4, 4, size=(m, 1)))).astype(F32)
    first, _ = _cos(worker, z)
    second, _ = _cos(worker, scaled)
    assert close(first, second, rtol=1e-4, atol=3e-5), \
        "rescaling rows of z by positive numbers changes the result: the cosine similarity " \
        "ignores the lengths (normalise every row)"
    _cos_like(second, scaled, "the values")


def cos_gradient(worker, rng):
    m, d = int(rng.integers(3, 9)), int(rng.integers(2, 8))
    z = _rows(rng, m, d, 0.5, 3.0, dtype=np.float64)
    upstream = rng.standard_normal((m, m))
    got, _ = _cos(worker, z, grad=True)
    _cos_like(got, z, "the values")
    worker.call("backward", upstream, on="_out", as_torch=True)
    grad = worker.get("_z", "grad")
    assert grad is not None, "no gradient reaches z (stay in torch: no .item(), .detach())"
    assert np.all(np.isfinite(grad)), "the gradient with respect to z is not finite"
    if close(got, cosine_reference(z), rtol=1e-9, atol=1e-9):
        assert close(grad, cosine_gradient(z, upstream), rtol=1e-5, atol=1e-8), \
            "the gradient with respect to z is not that of U U^T with u = z / |z|"
    evaluate = lambda arrays: float(np.sum(upstream * _cos(worker, arrays[0])[0]))  # noqa
    assert _directional(evaluate, [z], [grad], rng), \
        "the gradient does not match the values (is a part cut off from autograd?)"


def cos_dtype(worker, rng):
    m, d = int(rng.integers(3, 9)), int(rng.integers(2, 8))
    z = _rows(rng, m, d)
    got, dtype = _cos(worker, z)
    assert dtype == "torch.float32", f"float32 z gives a {dtype} matrix; keep float32"
    _cos_like(got, z, "the values")


# ================================================================ exercises 4 and 5: NT-Xent

_ISOLATED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _build_isolated(worker, name):
    """A copy of ``name`` in the worker whose helpers are torch's: F.cross_entropy for
    softmax_cross_entropy and F.normalize(z) @ F.normalize(z).T for the cosine matrix."""
    worker.call("importlib.import_module", "torch.nn.functional", keep="_F")
    worker.call("builtins.getattr", _ref("_F"), "cross_entropy", keep="_ref_ce")
    worker.call("builtins.eval", "lambda z: (lambda u: u @ u.T)(F.normalize(z, dim=1))",
                {"F": _ref("_F")}, keep="_ref_cos")
    scope, original = f"_scope_{name}", f"_original_{name}"
    worker.call(f"{name}.__globals__.copy", keep=scope)
    worker.call("update", {"softmax_cross_entropy": _ref("_ref_ce"),
                           "cosine_similarity_matrix": _ref("_ref_cos")}, on=scope)
    worker.call(f"{name}.__globals__.get", name, keep=original)
    parts = []
    for attr in ("__code__", "__defaults__", "__closure__", "__kwdefaults__"):
        worker.call("builtins.getattr", _ref(original), attr, keep=f"_{attr}{name}")
        parts.append(_ref(f"_{attr}{name}"))
    code, defaults, closure, kwdefaults = parts
    worker.call("types.FunctionType", code, _ref(scope), name, defaults, closure,
                keep=f"_isolated_{name}")
    worker.call("builtins.setattr", _ref(f"_isolated_{name}"), "__kwdefaults__", kwdefaults)


def _loss_call(worker, name):
    """(call, on): the isolated copy where one could be made, else the answer itself."""
    made = _ISOLATED.setdefault(worker, {})
    if name not in made:
        try:
            _build_isolated(worker, name)
            made[name] = ("", f"_isolated_{name}")
        except WorkerError:
            if getattr(worker, "dead", False):
                raise
            made[name] = (name, None)
    return made[name]


def _loss(worker, name, z_i, z_j, tau, requires_grad=False, what=None):
    call, on = _loss_call(worker, name)
    put(worker, "_zi", z_i, requires_grad)
    put(worker, "_zj", z_j, requires_grad)
    what = what or f"{name} (N={len(z_i)}, tau={tau:.3g})"
    return _scalar(worker, call, _ref("_zi"), _ref("_zj"), float(tau), on=on, what=what)


def _nt_like(worker, name, rng, got, z_i, z_j, tau, what, need=(), rtol=2e-4, atol=2e-4):
    """``got`` for these z, and the answer for fresh ones, are one member of NT-Xent's
    family of known mistakes (right where ``need`` says)."""
    assert math.isfinite(got), f"{what} is not finite"
    fresh_i, fresh_j = _pairs(rng, int(rng.integers(3, 7)), int(rng.integers(3, 9)))
    fresh_tau = _tau(rng)
    observations = [(got, nt_family(z_i, z_j, tau)),
                    (_loss(worker, name, fresh_i, fresh_j, fresh_tau),
                     nt_family(fresh_i, fresh_j, fresh_tau))]
    _require(observations, NT_MISTAKES, NT_RIGHT, f"{what} is {got:.6g}",
             need=need, rtol=rtol, atol=atol,
             fallback="not the NT-Xent of the lecture's formula, nor a known mistake of it")


def _nt_values(name):
    def check(worker, rng):
        for n, d in [(int(rng.integers(2, 6)), int(rng.integers(2, 9))),
                     (int(rng.integers(5, 9)), int(rng.integers(8, 33)))]:
            tau = _tau(rng)
            z_i, z_j = _pairs(rng, n, d)
            got = _loss(worker, name, z_i, z_j, tau)
            what = f"{name} (N={n}, D={d}, tau={tau:.2f})"
            if not math.isclose(got, nt_xent_reference(z_i, z_j, tau)[0], rel_tol=2e-4,
                                abs_tol=2e-4):
                _nt_like(worker, name, rng, got, z_i, z_j, tau, what, need=tuple(NT_RIGHT))
                raise AssertionError(f"{what} is {got:.6g}, not the NT-Xent of the formula")
    return check


def _nt_temperature(name, taus):
    def check(worker, rng):
        for tau in taus(rng):
            n, d = int(rng.integers(3, 8)), int(rng.integers(4, 17))
            z_i, z_j = _pairs(rng, n, d, noise=None)      # no loss of about 0 at a small tau
            got = _loss(worker, name, z_i, z_j, tau)
            assert math.isfinite(got), \
                f"at tau={tau:g} the loss is not finite (logits up to {1 / tau:g}): " \
                f"compute it with a stable cross-entropy"
            _nt_like(worker, name, rng, got, z_i, z_j, tau, f"{name} at tau={tau:g}",
                     need=("temperature",),
                     rtol=1e-3, atol=1e-3)
    return check


def _nt_invariance(name, change, broken):
    """A property: the loss stays the same when ``change(rng, z_i, z_j)`` alters the views in
    a way NT-Xent does not see (``broken``: what a changed loss means)."""
    def check(worker, rng):
        n, d = int(rng.integers(3, 8)), int(rng.integers(3, 12))
        tau = _tau(rng)
        z_i, z_j = _pairs(rng, n, d)
        plain = _loss(worker, name, z_i, z_j, tau)
        changed = _loss(worker, name, *change(rng, z_i, z_j), tau)
        assert math.isclose(plain, changed, rel_tol=2e-4, abs_tol=2e-4), broken
        _nt_like(worker, name, rng, plain, z_i, z_j, tau, name)
    return check


def _swapped(rng, z_i, z_j):
    return z_j, z_i


def _rescaled(rng, z_i, z_j):
    """Each row of both views multiplied by its own positive factor."""
    scale = lambda z: (z * np.exp(rng.uniform(-3, 3, size=(len(z), 1)))).astype(F32)  # noqa: E731
    return scale(z_i), scale(z_j)


def _nt_swap(name):
    return _nt_invariance(name, _swapped,
                          "swapping z_i and z_j changes the loss: both l(i, j) and l(j, i) are "
                          "terms, every one of the 2N views is an anchor once")


def _nt_scale(name):
    return _nt_invariance(name, _rescaled,
                          "rescaling rows of z changes the loss: NT-Xent compares cosine "
                          "similarities (normalised z), not dot products")


def _nt_denominator(name):
    def check(worker, rng):
        z_i, z_j = _pairs(rng, int(rng.integers(3, 8)), int(rng.integers(3, 12)))
        tau = _tau(rng)
        _nt_like(worker, name, rng, _loss(worker, name, z_i, z_j, tau), z_i, z_j, tau, name,
                 need=("self", "negatives"))
        for n in (int(rng.integers(2, 4)), int(rng.integers(4, 9))):
            same = np.tile(rng.standard_normal((1, int(rng.integers(2, 9)))), (n, 1)).astype(F32)
            got = _loss(worker, name, same, same.copy(), 0.5,
                        what=f"{name} of {n} collapsed pairs (every z the same)")
            expected = math.log(2 * n - 1)
            assert any(math.isclose(got, k * expected, rel_tol=1e-4, abs_tol=1e-4)
                       for k in (1, 2, 2 * n)), \
                f"when every z is the same, each anchor sees 2N - 1 equally similar views and " \
                f"its term is ln(2N - 1) = {expected:.4f}; got a loss of {got:.4f}"
        z_i, z_j = _pairs(rng, 1, int(rng.integers(2, 9)))
        got = _loss(worker, name, z_i, z_j, _tau(rng, 0.1, 0.9),
                    what=f"{name} of one image (N = 1)")
        assert abs(got) < 1e-5, \
            f"for one image (N = 1) each anchor's only other view is its positive, so the " \
            f"loss is 0; got {got:.4g}: the denominator runs over k != i"
    return check


def _nt_mean(name):
    def check(worker, rng):
        z_i, z_j = _pairs(rng, int(rng.integers(3, 8)), int(rng.integers(3, 12)))
        tau = _tau(rng)
        got = _loss(worker, name, z_i, z_j, tau)
        _nt_like(worker, name, rng, got, z_i, z_j, tau, name, need=("reduce",))
    return check


def _nt_gradient(name):
    def check(worker, rng):
        n, d = int(rng.integers(3, 7)), int(rng.integers(3, 10))
        tau = _tau(rng)
        z_i, z_j = _pairs(rng, n, d, dtype=np.float64)
        got = _loss(worker, name, z_i, z_j, tau, requires_grad=True)
        worker.call("backward", on="_out")
        grads = []
        for view, label in (("_zi", "z_i"), ("_zj", "z_j")):
            grad = worker.get(view, "grad")
            assert grad is not None, f"no gradient reaches {label} (stay in torch: no .item(), " \
                                     f".detach(), numpy or new tensors from numbers)"
            assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0, \
                f"the gradient of {label} is zero or not finite"
            grads.append(grad)
        loss, g_i, g_j = nt_xent_reference(z_i, z_j, tau)
        if math.isclose(got, loss, rel_tol=1e-8, abs_tol=1e-8):
            assert close(grads[0], g_i, rtol=1e-4, atol=1e-8) and \
                close(grads[1], g_j, rtol=1e-4, atol=1e-8), "the gradients are not the loss's"
        evaluate = lambda arrays: _loss(worker, name, arrays[0], arrays[1], tau)  # noqa: E731
        assert _directional(evaluate, [z_i, z_j], grads, rng), \
            "the gradients do not match the loss (is a part of it cut off from autograd?)"
        _nt_like(worker, name, rng, got, z_i, z_j, tau, name)
    return check


def _nt_float32(name):
    def check(worker, rng):
        n, d = int(rng.integers(2, 7)), int(rng.integers(2, 10))
        tau = _tau(rng)
        z_i, z_j = _pairs(rng, n, d)
        call, on = _loss_call(worker, name)
        put(worker, "_zi", z_i)
        put(worker, "_zj", z_j)
        value, dtype = _tensor_out(worker, call, _ref("_zi"), _ref("_zj"), tau, on=on)
        assert value.ndim == 0, f"the loss should be a 0-dim tensor, got shape {value.shape}"
        assert dtype == "torch.float32", f"float32 z gives a {dtype} loss; keep float32"
        _nt_like(worker, name, rng, float(value), z_i, z_j, tau, name)
    return check


def _total_ops(worker, name, rng, n, d, tau):
    call, on = _loss_call(worker, name)
    z_i, z_j = _pairs(rng, n, d)
    put(worker, "_zi", z_i)
    put(worker, "_zj", z_j)
    total = sum(_op_counts(worker, call, _ref("_zi"), _ref("_zj"), tau, on=on).values())
    got = np.asarray(worker.get("_profiled", ""), dtype=np.float64)
    assert got.ndim == 0, f"the loss should be a 0-dim tensor, got shape {got.shape}"
    _nt_like(worker, name, rng, float(got), z_i, z_j, tau, f"{name} (N={n})")
    return total


def naive_loops(worker, rng):
    d, tau = int(rng.integers(3, 8)), _tau(rng)
    small, large = int(rng.integers(2, 4)), int(rng.integers(5, 8))
    few, many = (_total_ops(worker, "nt_xent_loss_naive", rng, n, d, tau) for n in (small, large))
    assert many - few >= 2 * (large - small), \
        f"the number of torch operations barely grows with N ({few} for N={small}, {many} " \
        f"for N={large}): write this version with Python loops over the 2N anchors"


def vectorised_no_loops(worker, rng):
    d, tau = int(rng.integers(3, 8)), _tau(rng)
    small, large = int(rng.integers(2, 5)), int(rng.integers(14, 25))
    few, many = (_total_ops(worker, "nt_xent_loss", rng, n, d, tau) for n in (small, large))
    assert many - few <= 3, \
        f"the number of torch operations grows with N ({few} for N={small}, {many} for " \
        f"N={large}): a Python loop over the batch is left; compute all anchors at once"


def vectorised_large_z(worker, rng):
    for tau, scale in ((0.01, 1.0), (_tau(rng, 0.02, 0.06), _tau(rng, 1e3, 1e4)),
                       (_tau(rng, 0.3, 0.8), _tau(rng, 1e-4, 1e-3))):
        n, d = int(rng.integers(4, 10)), int(rng.integers(8, 17))
        z_i, z_j = _pairs(rng, n, d, scale=scale, noise=None)
        got = _loss(worker, "nt_xent_loss", z_i, z_j, tau, requires_grad=True)
        assert math.isfinite(got), \
            f"at tau={tau:g} with |z| about {scale:g} the loss is not finite: normalise z " \
            f"and use the stable cross-entropy (-inf on the diagonal, not exp of large logits)"
        worker.call("backward", on="_out")
        for view in ("_zi", "_zj"):
            grad = worker.get(view, "grad")
            assert grad is not None and np.all(np.isfinite(grad)), \
                f"at tau={tau:g} with |z| about {scale:g} the gradient is missing or not finite"
        _nt_like(worker, "nt_xent_loss", rng, got, z_i, z_j, tau,
                 f"nt_xent_loss at tau={tau:g}, |z| ~ {scale:g}",
                 rtol=1e-3, atol=1e-3)


def vectorised_low_precision(worker, rng):
    """Mixed precision: bfloat16 (and float16, where -1e9 for the diagonal overflows)."""
    n, d = int(rng.integers(4, 12)), int(rng.integers(8, 33))
    tau = _tau(rng, 0.3, 0.7)
    z_i, z_j = _pairs(rng, n, d)
    call, on = _loss_call(worker, "nt_xent_loss")
    put(worker, "_zi32", z_i)
    put(worker, "_zj32", z_j)
    full = _scalar(worker, call, _ref("_zi32"), _ref("_zj32"), tau, on=on)
    for dtype in ("bfloat16", "half"):
        label = "float16" if dtype == "half" else dtype
        for view in ("_zi", "_zj"):
            worker.call(dtype, on=f"{view}32", keep=view)
        low = _scalar(worker, call, _ref("_zi"), _ref("_zj"), tau, on=on,
                      what=f"nt_xent_loss of {label} z")
        assert math.isfinite(low), f"{label} z (mixed precision) gives a non-finite loss"
        assert abs(low - full) < 0.05 + 0.02 * abs(full), \
            f"{label} z gives {low:.4g}, far from the loss of the same z in float32 ({full:.4g})"
    _nt_like(worker, "nt_xent_loss", rng, full, z_i, z_j, tau, "nt_xent_loss")


# ================================================================ exercise 1: the transform

CONVERSIONS = {"ToTensor", "PILToTensor", "ToImage", "ToImageTensor", "ToDtype",
               "ConvertImageDtype", "ToPureTensor"}
KNOWN = {"RandomResizedCrop", "RandomHorizontalFlip", "ColorJitter", "RandomGrayscale",
         "GaussianBlur", "Normalize"} | CONVERSIONS


def _image(worker, name, array):
    worker.call("PIL.Image.fromarray", np.ascontiguousarray(array, dtype=np.uint8), keep=name)
    return _ref(name)


def _make_transform(worker, size, blur, name="_t"):
    kept = worker.call("simclr_transform", image_size=size, blur=blur, keep=name)
    kind = kept.get("type", "") if isinstance(kept, dict) else ""
    assert kind.startswith("torchvision.transforms") and kind.endswith(".Compose"), \
        f"simclr_transform(image_size={size}, blur={blur}) should return a " \
        f"torchvision.transforms.Compose, got {kind or 'something else'}"
    return name


def _views(worker, transform, image, n):
    """n outputs of the transform on one image, as one array (n, 3, S, S)."""
    worker.call("builtins.map", _ref(transform), [_ref(image)] * n, keep="_map")
    worker.call("builtins.list", _ref("_map"), keep="_list")
    worker.call("torch.stack", _ref("_list"), keep="_stack")
    views = worker.get("_stack", "")
    assert isinstance(views, np.ndarray) and views.ndim == 4, "the outputs are not tensors"
    return views.astype(np.float64)


def _denormalised(views, stats=(MEAN, STD)):
    mean, std = stats
    return views * std[None, :, None, None] + mean[None, :, None, None]


def _own_stats(worker, transform):
    """The mean and std of the transform's last Normalize where it has one (so that a wrong
    normalisation costs only the property that checks it), else CIFAR-10's."""
    try:
        kind, path, _ = _leaves(worker, transform)[-1]
        if kind == "Normalize":
            mean = _numbers(_setting(worker, transform, path, "mean"))
            std = _numbers(_setting(worker, transform, path, "std"))
            if mean and std and len(mean) == len(std) == 3 and min(std) > 0:
                return np.array(mean), np.array(std)
    except (AssertionError, WorkerError):
        pass
    return MEAN, STD


def _leaves(worker, transform):
    """[(type short name, attribute path, p of an enclosing RandomApply or None)]."""
    described = worker.describe(transform)
    steps = (described.get("attributes") or {}).get("transforms") if isinstance(described, dict) \
        else None
    assert isinstance(steps, list) and steps, \
        "the Compose has no list of steps (transforms) to read"
    leaves = []
    for i, step in enumerate(steps):
        kind = str((step or {}).get("type", "")).rsplit(".", 1)[-1] if isinstance(step, dict) \
            else type(step).__name__
        inner = ((step.get("attributes") or {}).get("transforms")
                 if isinstance(step, dict) else None)
        if kind in ("RandomApply", "Compose") and isinstance(inner, list):
            p = worker.get(transform, f"transforms.{i}.p") if kind == "RandomApply" else None
            for j, leaf in enumerate(inner):
                leaf_kind = str((leaf or {}).get("type", "")).rsplit(".", 1)[-1] \
                    if isinstance(leaf, dict) else type(leaf).__name__
                leaves.append((leaf_kind, f"transforms.{i}.transforms.{j}", p))
        else:
            leaves.append((kind, f"transforms.{i}", None))
    return leaves


def _setting(worker, transform, path, attribute):
    try:
        return worker.get(transform, f"{path}.{attribute}")
    except WorkerError:
        return None


def _numbers(value):
    try:
        return [float(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    except (TypeError, ValueError):
        return None


def _is(value, expected, tol=1e-4) -> bool:
    got = _numbers(value)
    return got is not None and len(got) == len(expected) and \
        all(abs(a - b) <= tol for a, b in zip(got, expected))


def _runs_its_steps(worker, rng, transform, size):
    """The composition's output is its steps applied in order (same seed, same draws), so
    the steps read are the ones that run."""
    picture = rng.integers(0, 256, size=(size + int(rng.integers(3, 20)), size + 7, 3))
    _image(worker, "_img", picture)
    seed = int(rng.integers(1, 2**31 - 1))
    worker.call("torch.manual_seed", seed, keep="_generator")
    whole, _ = _tensor_out(worker, "", _ref("_img"), on=transform, what="the output")
    worker.call("builtins.getattr", _ref(transform), "transforms", keep="_steps")
    worker.call("torch.manual_seed", seed, keep="_generator")
    current = "_img"
    for i in range(int(worker.call("builtins.len", _ref("_steps")))):
        worker.call("operator.getitem", _ref("_steps"), i, keep="_step")
        worker.call("", _ref(current), on="_step", keep="_stepped")
        current = "_stepped"
    stepped = worker.get(current, "")
    assert isinstance(stepped, np.ndarray) and stepped.shape == whole.shape and \
        np.allclose(stepped, whole, atol=1e-5), \
        "the transform's output is not that of its steps applied in order"


def _step_problems(worker, transform, size) -> list[str]:
    leaves = _leaves(worker, transform)
    kinds = [kind for kind, _, _ in leaves]
    problems = []

    def find(kind):
        where = [k for k, (name, _, _) in enumerate(leaves) if name == kind]
        return (where[0], *leaves[where[0]][1:]) if where else None

    crop, flip = find("RandomResizedCrop"), find("RandomHorizontalFlip")
    jitter, gray, normalize = find("ColorJitter"), find("RandomGrayscale"), find("Normalize")
    if crop is None:
        problems.append("no RandomResizedCrop(image_size, scale=(0.08, 1.0))")
    else:
        size_set = _numbers(_setting(worker, transform, crop[1], "size"))
        if size_set not in ([float(size)], [float(size)] * 2):
            problems.append(f"the crop's size is {size_set}, not image_size = {size}")
        if not _is(_setting(worker, transform, crop[1], "scale"), (0.08, 1.0)):
            problems.append("the crop's scale should be (0.08, 1.0): 8% to 100% of the area")
        if not _is(_setting(worker, transform, crop[1], "ratio"), (3 / 4, 4 / 3), tol=1e-3):
            problems.append("the crop's aspect ratio should range over (3/4, 4/3)")
        if crop[2] is not None:
            problems.append("the crop is inside a RandomApply: every view is cropped")
    if flip is None:
        problems.append("no RandomHorizontalFlip()")
    elif not _is(_setting(worker, transform, flip[1], "p"), (0.5,)) or flip[2] is not None:
        problems.append("the horizontal flip should mirror half of the views (p = 0.5)")
    if jitter is None:
        problems.append("no ColorJitter(0.4, 0.4, 0.4, 0.1)")
    else:
        for attribute, expected in (("brightness", (0.6, 1.4)), ("contrast", (0.6, 1.4)),
                                    ("saturation", (0.6, 1.4)), ("hue", (-0.1, 0.1))):
            if not _is(_setting(worker, transform, jitter[1], attribute), expected, tol=1e-3):
                problems.append(f"the jitter's {attribute} is not that of ColorJitter(0.4, "
                                f"0.4, 0.4, 0.1)")
        if jitter[2] is None or not _is(jitter[2], (0.8,)):
            problems.append("the colour jitter should be applied with probability 0.8 "
                            "(RandomApply([ColorJitter(...)], p=0.8))")
    if gray is None:
        problems.append("no RandomGrayscale(p=0.2)")
    elif not _is(_setting(worker, transform, gray[1], "p"), (0.2,)) or gray[2] is not None:
        problems.append("the grayscale step should turn 20% of the views gray (p = 0.2)")
    if normalize is None:
        problems.append("no Normalize(CIFAR10_MEAN, CIFAR10_STD)")
    else:
        if not (_is(_setting(worker, transform, normalize[1], "mean"), MEAN) and
                _is(_setting(worker, transform, normalize[1], "std"), STD)):
            problems.append("Normalize should use the CIFAR-10 mean and std "
                            "(augment.CIFAR10_MEAN, augment.CIFAR10_STD)")
        if normalize[0] != len(leaves) - 1:
            problems.append("Normalize should be the last step")
    conversions = [k for k, kind in enumerate(kinds) if kind in CONVERSIONS]
    if not conversions:
        problems.append("no ToTensor() before Normalize")
    for k in conversions:
        if kinds[k] in ("ToDtype", "ConvertImageDtype"):
            dtype = _setting(worker, transform, leaves[k][1], "dtype")
            scaled = _setting(worker, transform, leaves[k][1], "scale")
            if "float32" not in str(dtype) or (kinds[k] == "ToDtype" and scaled is not True):
                problems.append("the conversion should give float32 values in [0, 1]")
    if crop and flip and jitter and gray:
        if jitter[0] < crop[0] or jitter[0] < flip[0]:
            problems.append("crop and flip come before the colour distortion")
        if gray[0] < jitter[0]:
            problems.append("the colour jitter comes before the grayscale step")
    extra = sorted({kind for kind in kinds if kind not in KNOWN})
    if extra:
        problems.append(f"steps the recipe does not have: {', '.join(extra)}")
    return problems


def transform_outputs(worker, rng):
    _seed(worker, rng)
    for size, blur in ((int(rng.integers(20, 49)), False), (int(rng.integers(24, 65)), True),
                       (None, None)):
        if size is None:
            kept = worker.call("simclr_transform", keep="_t")
            assert str(kept.get("type", "")).endswith(".Compose"), \
                "simclr_transform() should return a torchvision.transforms.Compose"
            size, name = 32, "_t"
        else:
            name = _make_transform(worker, size, blur)
        h, w = int(rng.integers(30, 70)), int(rng.integers(30, 70))
        noise = rng.integers(0, 256, size=(h, w, 3))
        _image(worker, "_img", noise)
        out, dtype = _tensor_out(worker, "", _ref("_img"), on=name,
                                 what=f"the transform's output for a {w}x{h} image")
        assert out.shape == (3, size, size), \
            f"a {w}x{h} image gives shape {tuple(out.shape)}; expected (3, {size}, {size}) " \
            f"for image_size={size}"
        assert dtype == "torch.float32", f"the output is {dtype}; expected float32"
        _image(worker, "_black", np.zeros((h, w, 3)))
        black, _ = _tensor_out(worker, "", _ref("_black"), on=name)
        assert not np.allclose(black, out, atol=1e-3), "the output does not depend on the image"


def transform_steps(worker, rng):
    size = int(rng.choice([24, 32, 40, 48, 64, 96]))
    name = _make_transform(worker, size, False)
    problems = _step_problems(worker, name, size)
    assert not problems, "the transformation set differs from the recipe: " + "; ".join(problems)
    _runs_its_steps(worker, rng, name, size)


def transform_blur(worker, rng):
    size = int(rng.integers(20, 80))
    leaves = _leaves(worker, _make_transform(worker, size, False))
    assert "GaussianBlur" not in [kind for kind, _, _ in leaves], \
        f"simclr_transform(image_size={size}, blur=False) blurs: blur only when blur=True"
    for size in rng.choice([32, 48, 64, 96, 128, 160, 224], size=2, replace=False):
        size = int(size)
        name = _make_transform(worker, size, True)
        blurs = [(k, leaf) for k, leaf in enumerate(_leaves(worker, name))
                 if leaf[0] == "GaussianBlur"]
        assert len(blurs) == 1, \
            f"simclr_transform(image_size={size}, blur=True) should have one GaussianBlur"
        _, (_, path, p) = blurs[0]
        kernel = _numbers(_setting(worker, name, path, "kernel_size"))
        assert kernel and len(set(kernel)) == 1 and kernel[0] % 2 == 1 and \
            abs(kernel[0] - 0.1 * size) <= 2, \
            f"for image_size={size} the blur's kernel is {kernel}: it should be odd and " \
            f"about 10% of the image side"
        assert _is(_setting(worker, name, path, "sigma"), (0.1, 2.0)), \
            "the blur's sigma should be drawn from (0.1, 2.0)"
        assert p is not None and _is(p, (0.5,)), \
            "the blur should be applied to half of the views (RandomApply([...], p=0.5))"
        _image(worker, "_img", rng.integers(0, 256, size=(size + 5, size + 9, 3)))
        out, _ = _tensor_out(worker, "", _ref("_img"), on=name, shape=(3, size, size),
                             what=f"the output with blur=True for image_size={size}")
        _runs_its_steps(worker, rng, name, size)


def transform_normalised(worker, rng):
    _seed(worker, rng)
    size = int(rng.integers(16, 48))
    name = _make_transform(worker, size, bool(rng.integers(0, 2)))
    _image(worker, "_black", np.zeros((int(rng.integers(20, 60)), int(rng.integers(20, 60)), 3)))
    black = _views(worker, name, "_black", 16)
    expected = (-MEAN / STD)[None, :, None, None]
    if not np.allclose(black, expected, atol=2e-3):
        got = black.mean(axis=(0, 2, 3))
        if np.allclose(got, 0, atol=1e-3):
            raise AssertionError("a black image stays 0: the output is not normalised "
                                 "(Normalize with the CIFAR-10 statistics after ToTensor)")
        raise AssertionError(f"a black image becomes {np.round(got, 3).tolist()} per channel, "
                             f"not -mean / std of the CIFAR-10 statistics")
    level = int(rng.integers(60, 200))                # a gray image stays gray in every view
    _image(worker, "_gray", np.full((int(rng.integers(20, 60)), int(rng.integers(20, 60)), 3),
                                    level))
    channels = _denormalised(_views(worker, name, "_gray", 30)).mean(axis=(2, 3))
    assert np.all(channels.max(axis=1) - channels.min(axis=1) < 2 / 255), \
        "views of a gray image do not come back gray with the CIFAR-10 mean and std: " \
        "normalise each channel with its own CIFAR-10 mean and std"
    assert np.all((channels > -2 / 255) & (channels < 1 + 2 / 255)), \
        "the values before Normalize should lie in [0, 1] (ToTensor scales 0..255 to 0..1)"


def _crop_fraction_inside(rng, width, height, edge, n=20000):
    """The share of RandomResizedCrop(scale=(0.08, 1), ratio=(3/4, 4/3)) boxes that lie on
    one side of column ``edge``, by the sampling torchvision documents (10 tries, then a
    central crop)."""
    area, inside = width * height, 0
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    for _ in range(n):
        for _ in range(10):
            target = area * rng.uniform(0.08, 1.0)
            aspect = math.exp(rng.uniform(*log_ratio))
            w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                left = int(rng.integers(0, width - w + 1))
                break
        else:
            ratio = width / height
            w = width if ratio <= 4 / 3 else int(round(height * 4 / 3))
            left = (width - w) // 2
        inside += left + w <= edge or left >= edge
    return inside / n


def transform_crop_flip(worker, rng):
    _seed(worker, rng)
    size, n = 32, 300
    name = _make_transform(worker, size, False)
    width, height = int(rng.integers(40, 64)), int(rng.integers(32, 56))
    edge = int(round(width * rng.uniform(0.3, 0.45)))
    dark, light = int(rng.integers(40, 80)), int(rng.integers(140, 165))
    picture = np.full((height, width, 3), light)
    picture[:, :edge] = dark
    dark_left = bool(rng.integers(0, 2))
    if not dark_left:
        picture, edge = picture[:, ::-1], width - edge
    _image(worker, "_halves", picture)
    views = _denormalised(_views(worker, name, "_halves", n),
                          _own_stats(worker, name)).mean(axis=1)
    assert max(np.abs(v - views[0]).max() for v in views[1:20]) > 1e-3, \
        "twenty views of one image are all the same: the augmentations must be random"
    uniform = (views.max(axis=(1, 2)) - views.min(axis=(1, 2))) < 0.02
    expected = _crop_fraction_inside(rng, width, height, edge, n=4000)
    spread = 3.5 * math.sqrt(expected * (1 - expected) / n) + 0.03
    assert abs(uniform.mean() - expected) <= spread, \
        f"{uniform.mean():.0%} of the crops of a two-part image fall inside one part, " \
        f"where crops of 8-100% of the area (aspect 3/4-4/3) give about {expected:.0%}: " \
        f"RandomResizedCrop(image_size, scale=(0.08, 1.0))"
    mixed = views[~uniform]
    half = size // 2
    dark_on_left = mixed[:, :, :half].mean(axis=(1, 2)) < mixed[:, :, half:].mean(axis=(1, 2))
    mirrored = float(np.mean(dark_on_left != dark_left))
    spread = 3.5 * math.sqrt(0.25 / max(len(mixed), 1)) + 0.03
    assert abs(mirrored - 0.5) <= spread, \
        f"{mirrored:.0%} of the views are mirrored; a horizontal flip mirrors half of them"


def transform_colour(worker, rng):
    _seed(worker, rng)
    n = 360
    name = _make_transform(worker, int(rng.integers(16, 40)), False)
    while True:
        colour = rng.integers(40, 216, size=3)
        if colour.max() - colour.min() >= 60:
            break
    _image(worker, "_colour", np.tile(colour, (int(rng.integers(20, 40)),
                                               int(rng.integers(20, 40)), 1)))
    means = _denormalised(_views(worker, name, "_colour", n),
                          _own_stats(worker, name)).mean(axis=(2, 3))
    original = colour / 255
    gray = (means.max(axis=1) - means.min(axis=1)) < 2 / 255
    kept = np.abs(means - original).max(axis=1) < 2 / 255
    spread = lambda p: 3.5 * math.sqrt(p * (1 - p) / n) + 0.02   # noqa: E731
    assert abs(gray.mean() - 0.2) <= spread(0.2), \
        f"{gray.mean():.0%} of the views are grayscale; RandomGrayscale(p=0.2) makes 20%"
    assert abs(kept.mean() - 0.16) <= spread(0.16), \
        f"{kept.mean():.0%} of the views keep their colour, where jitter with p = 0.8 and " \
        f"grayscale with p = 0.2 leave 16%: RandomApply([ColorJitter(...)], p=0.8)"
    jittered = means[~(gray | kept)]
    change = float(np.mean(np.abs(jittered.mean(axis=1) / original.mean() - 1)))
    assert 0.14 <= change <= 0.29, \
        f"the jittered views change the brightness by {change:.0%} on average, not what " \
        f"ColorJitter(0.4, 0.4, 0.4, 0.1) does (strength s = 0.5)"


# ================================================================ exercise 6: the head

LINEAR, BATCHNORM = "torch.nn.modules.linear.Linear", "torch.nn.modules.batchnorm.BatchNorm1d"


def _dims(rng):
    """in, hidden, out: all different, so the layers are told apart by their shapes."""
    while True:
        dims = [int(v) for v in rng.integers(3, 40, size=3)]
        if len(set(dims)) == 3:
            return dims


def _make_head(worker, dims, name="_head", keywords=False):
    if keywords:
        kept = worker.call("ProjectionHead", in_dim=dims[0], hidden_dim=dims[1],
                           out_dim=dims[2], keep=name)
    else:
        kept = worker.call("ProjectionHead", *dims, keep=name)
    try:
        state = worker.state(name)
    except WorkerError:
        if getattr(worker, "dead", False):
            raise
        state = {}
    assert state.get("modules"), \
        f"ProjectionHead should be an nn.Module (got {kept.get('type')}): class " \
        f"ProjectionHead(nn.Module) calling super().__init__() first"
    return state


class _Layers:
    """Where the head keeps W1, b1, the BatchNorm and W2, b2, found by type and shape."""

    def __init__(self, worker, name, state, dims):
        i, hidden, o = dims
        params = state["parameters"]
        linear = [m for m, kind in state["modules"] if kind == LINEAR]
        norms = [m for m, kind in state["modules"] if kind == BATCHNORM]
        shape = lambda m: tuple(np.shape(params.get(f"{m}.weight" if m else "weight")))  # noqa
        first = [m for m in linear if shape(m) == (hidden, i)]
        second = [m for m in linear if shape(m) == (o, hidden)]
        assert len(linear) == 2 and len(first) == 1 and len(second) == 1, \
            f"expected two nn.Linear layers, in_dim -> hidden_dim and hidden_dim -> out_dim; " \
            f"found {len(linear)} Linear layers"
        assert len(norms) <= 1, "expected at most one BatchNorm1d"
        self.first, self.second = first[0], second[0]
        self.norm = norms[0] if norms else None
        if self.norm is not None:
            assert int(worker.get(name, f"{self.norm}.num_features")) == hidden, \
                "the BatchNorm1d should normalise the hidden_dim features"
            self.eps = float(worker.get(name, f"{self.norm}.eps"))
            self.momentum = worker.get(name, f"{self.norm}.momentum")

    def key(self, module, what):
        return f"{module}.{what}" if module else what

    def draw(self, rng, state, dims):
        """New values for every parameter and BatchNorm buffer, to load into the head."""
        i, hidden, o = dims
        values = {}
        for key, old in {**state["parameters"], **state["buffers"]}.items():
            old = np.asarray(old)
            if key.endswith("num_batches_tracked") or old.dtype.kind not in "f":
                values[key] = old
            elif key.endswith("running_var"):
                values[key] = rng.uniform(0.5, 2.0, size=old.shape).astype(F32)
            elif self.norm is not None and key == self.key(self.norm, "weight"):
                values[key] = rng.uniform(0.5, 1.5, size=old.shape).astype(F32)
            elif key.endswith("weight") and old.ndim == 2:
                values[key] = (rng.standard_normal(old.shape) / math.sqrt(old.shape[1])).astype(F32)
            else:
                values[key] = (0.5 * rng.standard_normal(old.shape)).astype(F32)
        return values

    def forward(self, values, h, train, final_relu=False):
        """z from the loaded values, and the batch statistics in train mode (a final ReLU,
        the mistake of another property, on request)."""
        h = np.asarray(h, dtype=np.float64)
        get = lambda m, w: values.get(self.key(m, w))  # noqa: E731
        a = h @ get(self.first, "weight").T.astype(np.float64)
        if get(self.first, "bias") is not None:
            a = a + get(self.first, "bias")
        stats = None
        if self.norm is not None:
            if train:
                mean, var = a.mean(axis=0), a.var(axis=0)
                stats = (mean, a.var(axis=0, ddof=1))
            else:
                mean = get(self.norm, "running_mean").astype(np.float64)
                var = get(self.norm, "running_var").astype(np.float64)
            a = (a - mean) / np.sqrt(var + self.eps)
            if get(self.norm, "weight") is not None:
                a = a * get(self.norm, "weight") + get(self.norm, "bias")
        r = np.maximum(a, 0)
        z = r @ get(self.second, "weight").T.astype(np.float64)
        if get(self.second, "bias") is not None:
            z = z + get(self.second, "bias")
        return (np.maximum(z, 0) if final_relu else z), stats, r

    def backward_h(self, values, h, upstream, final_relu=False):
        """d sum(upstream * z) / dh in eval mode."""
        get = lambda m, w: values.get(self.key(m, w))  # noqa: E731
        z, _, r = self.forward(values, h, train=False)
        if final_relu:
            upstream = upstream * (z > 0)
        g = (upstream @ get(self.second, "weight").astype(np.float64)) * (r > 0)
        if self.norm is not None:
            g = g / np.sqrt(get(self.norm, "running_var").astype(np.float64) + self.eps)
            if get(self.norm, "weight") is not None:
                g = g * get(self.norm, "weight")
        return g @ get(self.first, "weight").astype(np.float64)


def _loaded_head(worker, rng, name="_head"):
    dims = _dims(rng)
    state = _make_head(worker, dims, name)
    layers = _Layers(worker, name, state, dims)
    worker.call("load_state_dict", layers.draw(rng, state, dims), on=name, as_torch=True)
    loaded = worker.state(name)                # what the head holds now, read back
    values = {k: np.asarray(v) for k, v in {**loaded["parameters"], **loaded["buffers"]}.items()}
    return dims, layers, values


def head_shapes(worker, rng):
    for keywords in (False, True):
        dims = [int(v) for v in rng.integers(2, 40, size=3)]
        if keywords:
            dims[1] = dims[0]                        # in_dim == hidden_dim, as in training
        _make_head(worker, dims, keywords=keywords)
        b = int(rng.integers(2, 10))
        h = rng.standard_normal((b, dims[0])).astype(F32)
        z, dtype = _tensor_out(worker, "", h, on="_head", as_torch=True, shape=(b, dims[2]),
                               what=f"ProjectionHead{tuple(dims)} of h with shape {h.shape}")
        assert dtype == "torch.float32", f"z is {dtype}; float32 h should give float32 z"
        assert np.all(np.isfinite(z)), "z is not finite"
        other, _ = _tensor_out(worker, "", 2 * h + 1, on="_head", as_torch=True)
        assert not np.allclose(z, other, atol=1e-6), "z does not depend on h"


def head_train_forward(worker, rng):
    dims, layers, values = _loaded_head(worker, rng)
    worker.call("train", on="_head", keep="_head")
    b = int(rng.integers(8, 24))
    h = (rng.standard_normal((b, dims[0])) * 2 + rng.standard_normal(dims[0])).astype(F32)
    z, _ = _tensor_out(worker, "", h, on="_head", as_torch=True, shape=(b, dims[2]))
    expected, stats, _ = layers.forward(values, h, train=True)
    relu_end = layers.forward(values, h, train=True, final_relu=True)[0]
    assert close(z, expected, rtol=1e-3, atol=1e-4) or close(z, relu_end, rtol=1e-3, atol=1e-4), \
        "in train mode z is not W2 ReLU(BN(W1 h)) computed from the head's own parameters" + \
        (" with BatchNorm on the batch's statistics" if layers.norm else
         " (Linear -> ReLU -> Linear, no activation at the end)")
    if layers.norm is not None:
        buffers = worker.state("_head")["buffers"]
        tracked = int(np.asarray(buffers[layers.key(layers.norm, "num_batches_tracked")]))
        m = 1.0 / tracked if layers.momentum is None else float(layers.momentum)
        for what, stat in (("running_mean", stats[0]), ("running_var", stats[1])):
            old = values[layers.key(layers.norm, what)].astype(np.float64)
            assert close(buffers[layers.key(layers.norm, what)], (1 - m) * old + m * stat,
                          rtol=1e-3, atol=1e-4), \
                f"the BatchNorm's {what} did not follow the batch in train mode"


def head_eval_forward(worker, rng):
    dims, layers, values = _loaded_head(worker, rng)
    worker.call("eval", on="_head", keep="_head")
    b = int(rng.integers(4, 16))
    h = (rng.standard_normal((b, dims[0])) * 2).astype(F32)
    z, _ = _tensor_out(worker, "", h, on="_head", as_torch=True, shape=(b, dims[2]))
    expected, _, _ = layers.forward(values, h, train=False)
    relu_end = layers.forward(values, h, train=False, final_relu=True)[0]
    assert close(z, expected, rtol=1e-3, atol=1e-4) or close(z, relu_end, rtol=1e-3, atol=1e-4), \
        "in eval mode z is not W2 ReLU(BN(W1 h)) computed from the head's own parameters" + \
        (" with BatchNorm's running statistics" if layers.norm else "")
    alone, _ = _tensor_out(worker, "", h[:1], on="_head", as_torch=True)
    assert close(alone, z[:1], rtol=1e-4, atol=1e-5), \
        "in eval mode a sample's z depends on the rest of the batch"


def head_no_final_relu(worker, rng):
    dims = _dims(rng)
    _make_head(worker, dims)
    b = 32
    h = rng.standard_normal((b, dims[0])).astype(F32) * 2
    z_train, _ = _tensor_out(worker, "", h, on="_head", as_torch=True, shape=(b, dims[2]))
    worker.call("eval", on="_head", keep="_head")
    z_eval, _ = _tensor_out(worker, "", h, on="_head", as_torch=True, shape=(b, dims[2]))
    for z in (z_train, z_eval):
        assert (z < 0).any() and (z > 0).any(), \
            "z is never negative (or never positive): no activation after the last layer"


def head_nonlinear(worker, rng):
    dims = _dims(rng)
    _make_head(worker, dims)
    _tensor_out(worker, "", rng.standard_normal((16, dims[0])).astype(F32), on="_head",
                as_torch=True)
    worker.call("eval", on="_head", keep="_head")
    a = (rng.standard_normal((8, dims[0])) * 3).astype(F32)
    b = (rng.standard_normal((8, dims[0])) * 3).astype(F32)
    outs = [_tensor_out(worker, "", x, on="_head", as_torch=True, shape=(8, dims[2]))[0]
            for x in (a, b, (a + b) / 2)]
    assert np.all(np.isfinite(outs[2])) and np.abs(outs[2]).max() > 1e-6, "z is all zeros"
    assert np.abs(outs[2] - (outs[0] + outs[1]) / 2).max() > 1e-4, \
        "the head is affine (the midpoint's z is the midpoint of the z's): a ReLU belongs " \
        "between the two Linear layers"


def head_parameter_count(worker, rng):
    dims = _dims(rng)
    i, hidden, o = dims
    state = _make_head(worker, dims)
    count = sum(int(np.size(p)) for p in state["parameters"].values())
    weights = i * hidden + hidden * o
    assert weights <= count <= weights + 3 * hidden + 3 * o, \
        f"{count} parameters for ProjectionHead({i}, {hidden}, {o}): Linear(in_dim, " \
        f"hidden_dim), an optional BatchNorm1d and Linear(hidden_dim, out_dim) have " \
        f"{weights} weights plus at most {3 * hidden + 3 * o} biases, scales and shifts"
    b = int(rng.integers(4, 12))
    z, _ = _tensor_out(worker, "", rng.standard_normal((b, i)).astype(F32), on="_head",
                       as_torch=True, shape=(b, o))
    assert np.abs(z).max() > 1e-6, "z is all zeros"


def head_gradients(worker, rng):
    dims, layers, values = _loaded_head(worker, rng)
    b = int(rng.integers(6, 16))
    h = (rng.standard_normal((b, dims[0])) * 2).astype(F32)
    upstream = rng.standard_normal((b, dims[2])).astype(F32)
    worker.call("train", on="_head", keep="_head")
    put(worker, "_h", h, requires_grad=True)
    _tensor_out(worker, "", _ref("_h"), on="_head", shape=(b, dims[2]))
    worker.call("backward", upstream, on="_out", as_torch=True)
    state = worker.state("_head", grads=True)
    for key in state["parameters"]:
        grad = state["grads"].get(key)
        assert grad is not None and np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0, \
            f"the parameter {key} gets no gradient"
    worker.call("eval", on="_head", keep="_head")
    worker.call("load_state_dict", values, on="_head", as_torch=True)
    put(worker, "_h", h, requires_grad=True)
    _tensor_out(worker, "", _ref("_h"), on="_head", shape=(b, dims[2]))
    worker.call("backward", upstream, on="_out", as_torch=True)
    grad = worker.get("_h", "grad")
    assert grad is not None and np.abs(grad).sum() > 0, "no gradient reaches h"
    assert any(close(grad, layers.backward_h(values, h, upstream, final), rtol=1e-3, atol=1e-5)
               for final in (False, True)), \
        "the gradient that reaches h is not that of W2 ReLU(BN(W1 h))"


# ================================================================ the properties


def _tiny(rng):
    return [0.01, float(rng.uniform(0.02, 0.08))]


PROPERTIES = {
    "test_simclr_transform": [
        Property("returns a Compose: PIL image -> float32 tensor (3, image_size, image_size)",
                 0.3, transform_outputs),
        Property("the steps and settings: crop (0.08, 1), flip, jitter (0.4, 0.4, 0.4, 0.1) "
                 "with p 0.8, grayscale p 0.2, ToTensor, CIFAR-10 Normalize", 0.4,
                 transform_steps),
        Property("blur only with blur=True: p 0.5, odd kernel of about 10% of the size, "
                 "sigma (0.1, 2)", 0.3, transform_blur),
        Property("normalised with the CIFAR-10 statistics (a black image gives -mean / std)",
                 0.3, transform_normalised),
        Property("random crops of 8-100% of the area and flips of half the views", 0.35,
                 transform_crop_flip),
        Property("colour: 20% gray views, jitter on 80%, of the recipe's strength", 0.35,
                 transform_colour),
    ],
    "test_softmax_cross_entropy": [
        Property("equals the mean cross-entropy on random logits, as a 0-dim tensor", 0.5,
                 ce_values),
        Property("finite and right for logits in the thousands", 0.3, ce_large_logits),
        Property("-inf logits count as probability 0", 0.3, ce_masked_logits),
        Property("gradient (softmax - one_hot) / B", 0.3, ce_gradient_property),
        Property("float32 stays float32, float64 stays float64", 0.2, ce_dtypes),
        Property("built from max, exp, sum, log: no F.cross_entropy, log_softmax or logsumexp",
                 0.4, ce_own_computation),
    ],
    "test_cosine_similarity_matrix": [
        Property("the cosine similarities of random rows, (M, M); the input left unchanged",
                 0.7, cos_values),
        Property("ones on the diagonal, symmetric", 0.3, cos_diagonal_symmetric),
        Property("ignores the lengths of the rows", 0.3, cos_length_invariance),
        Property("gradient with respect to z", 0.4, cos_gradient),
        Property("float32 stays float32", 0.3, cos_dtype),
    ],
    "test_nt_xent_loss_naive": [
        Property("the lecture's formula on random batches (0-dim tensor)", 0.7,
                 _nt_values("nt_xent_loss_naive")),
        Property("the temperature divides the similarities", 0.3,
                 _nt_temperature("nt_xent_loss_naive",
                                 lambda rng: [0.1, _tau(rng, 1.5, 4.0)])),
        Property("every view is an anchor: swapping the views keeps the loss", 0.2,
                 _nt_swap("nt_xent_loss_naive")),
        Property("cosine similarity: rescaled z gives the same loss", 0.3,
                 _nt_scale("nt_xent_loss_naive")),
        Property("the denominator runs over the 2N - 1 others: ln(2N - 1) for collapsed z, "
                 "0 for one image", 0.4, _nt_denominator("nt_xent_loss_naive")),
        Property("the mean of the 2N anchors' terms", 0.2, _nt_mean("nt_xent_loss_naive")),
        Property("gradients reach both views and are the loss's", 0.4,
                 _nt_gradient("nt_xent_loss_naive")),
        Property("float32 z gives a float32 loss", 0.2, _nt_float32("nt_xent_loss_naive")),
        Property("Python loops over the 2N anchors", 0.3, naive_loops),
    ],
    "test_nt_xent_loss": [
        Property("the lecture's formula on random batches (0-dim tensor)", 0.5,
                 _nt_values("nt_xent_loss")),
        Property("finite and right at tau = 0.01 and other small tau", 0.3,
                 _nt_temperature("nt_xent_loss", _tiny)),
        Property("finite, with finite gradients, for large and tiny z", 0.3,
                 vectorised_large_z),
        Property("every view is an anchor: swapping the views keeps the loss", 0.2,
                 _nt_swap("nt_xent_loss")),
        Property("cosine similarity: rescaled z gives the same loss", 0.2,
                 _nt_scale("nt_xent_loss")),
        Property("the denominator runs over the 2N - 1 others: ln(2N - 1) for collapsed z, "
                 "0 for one image", 0.3, _nt_denominator("nt_xent_loss")),
        Property("the mean of the 2N anchors' terms", 0.2, _nt_mean("nt_xent_loss")),
        Property("gradients reach both views and are the loss's", 0.3,
                 _nt_gradient("nt_xent_loss")),
        Property("float32 z gives a float32 loss", 0.1, _nt_float32("nt_xent_loss")),
        Property("bfloat16 and float16 z (mixed precision): finite, close to float32's", 0.2,
                 vectorised_low_precision),
        Property("no Python loop over the batch", 0.4, vectorised_no_loops),
    ],
    "test_projection_head": [
        Property("an nn.Module giving float32 z of shape (B, out_dim) that depends on h", 0.2,
                 head_shapes),
        Property("train mode: Linear -> BatchNorm (batch statistics) -> ReLU -> Linear from "
                 "its own parameters", 0.4, head_train_forward),
        Property("eval mode: BatchNorm on its running statistics", 0.4, head_eval_forward),
        Property("no activation after the last layer: z takes both signs", 0.3,
                 head_no_final_relu),
        Property("the hidden layer is non-linear", 0.2, head_nonlinear),
        Property("the parameters of two Linear layers (and a BatchNorm)", 0.2,
                 head_parameter_count),
        Property("gradients reach h (the chain rule) and every parameter", 0.3, head_gradients),
    ],
}
