"""Grader of notebook 02 (MoCo: momentum update, key queue, logits, training step).

Never released, never mounted in a sandbox. Every property draws its inputs from ``rng``
(a fresh seed each run), builds what it needs in the worker from importable names
(``torch.nn.Linear``, ``types.SimpleNamespace`` ...), calls the student's code there, reads
the results back as data and compares them with the grader's own computation, written
from the formulas of the notebook's text in NumPy (float64):

    momentum update   theta_target <- m theta_target + (1 - m) theta_online   (parameters)
    queue             a ring buffer: slot (ptr + i) % size gets row i; ptr += B (mod size)
    logits            [q_i . k_i, q_i . queue_j] / tau, labels 0
    step              InfoNCE of normalize(f_q(x_q)) against normalize(f_k(x_k)) and the
                      queue as it was, with f_k's parameters read back after the step

The training step gets a stand-in queue built in the worker from importable parts: a
``SimpleNamespace`` whose ``keys`` is a tensor and whose ``enqueue`` is either a list's
``append`` (it records what was enqueued) or ``functools.partial(setattr, queue, "keys")``
(enqueueing replaces the keys, so a step that enqueues before it reads the queue sees its
own keys as the negatives). A wrong momentum_update or moco_logits costs its own exercise:
the step's checks accept what the student's own helpers give on the grader's inputs.
"""
from __future__ import annotations

import numpy as np

from autograder.grader_tools import as_array, close, put
from autograder.scoring import Property

F32 = np.float32


# ================================================================ small helpers


def _unit(rng, n, dim):
    x = rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(F32)


def _normalize(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _cross_entropy_0(logits):
    """Mean over rows of -log softmax(row)[0] (float64)."""
    top = logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
    return float(np.mean(lse - logits[:, 0]))


def _cross_entropy(logits, labels):
    top = logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
    return float(np.mean(lse - logits[np.arange(len(logits)), labels]))


# ================================================================ exercise 1: momentum_update


def _draw_modules(rng):
    """Parameters, buffers and gradients for two Linear-BatchNorm-ReLU-Linear networks."""
    a, b, c = (int(v) for v in rng.integers(2, 7, size=3))

    def params(scale):
        return {"0.weight": scale * rng.standard_normal((b, a)),
                "0.bias": scale * rng.standard_normal(b),
                "1.weight": 1 + 0.3 * rng.standard_normal(b),
                "1.bias": 0.3 * rng.standard_normal(b),
                "3.weight": scale * rng.standard_normal((c, b)),
                "3.bias": scale * rng.standard_normal(c)}

    def buffers():
        return {"1.running_mean": rng.standard_normal(b),
                "1.running_var": rng.uniform(0.5, 2.0, size=b),
                "1.num_batches_tracked": np.array(int(rng.integers(1, 1000)), dtype=np.int64)}

    cast = lambda d: {k: v.astype(F32) if v.dtype.kind == "f" else v for k, v in d.items()}
    online = {"params": cast(params(1.0)), "buffers": cast(buffers())}
    target = {"params": cast(params(1.0)), "buffers": cast(buffers())}
    online["grads"] = {k: rng.standard_normal(v.shape).astype(F32)
                       for k, v in online["params"].items()}
    return (a, b, c), online, target


def _build_network(worker, prefix, dims):
    a, b, c = dims
    worker.call("torch.nn.Linear", a, b, keep=f"{prefix}_0")
    worker.call("torch.nn.BatchNorm1d", b, keep=f"{prefix}_1")
    worker.call("torch.nn.ReLU", keep=f"{prefix}_2")
    worker.call("torch.nn.Linear", b, c, keep=f"{prefix}_3")
    worker.call("torch.nn.Sequential", *[worker.ref(f"{prefix}_{i}") for i in range(4)],
                keep=prefix)


def _parameter_handle(worker, prefix, name):
    """Keep the parameter tensor ``name`` ("0.weight") of network ``prefix`` itself."""
    index, attr = name.split(".")
    handle = f"{prefix}_{index}_{attr}"
    worker.call("builtins.getattr", worker.ref(f"{prefix}_{index}"), attr, keep=handle)
    return handle


class _Update:
    """One call of momentum_update on two networks the grader filled, and what came back."""

    def __init__(self, worker, rng, m, tag, target_requires_grad=False):
        self.m = m
        self.dims, self.online, self.target = _draw_modules(rng)
        on, tg = f"mu_{tag}_online", f"mu_{tag}_target"
        self.names = (on, tg)
        _build_network(worker, on, self.dims)
        _build_network(worker, tg, self.dims)
        for prefix, part in ((on, self.online), (tg, self.target)):
            worker.call("load_state_dict", {**part["params"], **part["buffers"]}, on=prefix,
                        as_torch=True)
        for name, grad in self.online["grads"].items():     # a gradient from the last backward
            handle = _parameter_handle(worker, on, name)
            worker.call("builtins.setattr", worker.ref(handle), "grad",
                        put(worker, f"{handle}_g", grad))
        self.handles = {name: _parameter_handle(worker, tg, name) for name in self.target["params"]}
        if not target_requires_grad:
            worker.call("requires_grad_", False, on=tg, keep=tg)
        self.target_requires_grad = target_requires_grad
        self.error = None
        try:
            worker.call("momentum_update", worker.ref(on), worker.ref(tg), m)
        except Exception as error:                        # noqa: BLE001 (reported by the checks)
            self.error = error
        self.worker = worker

    def raise_error(self):
        if self.error is not None:
            raise self.error

    def state(self, which):
        return self.worker.state(self.names[which == "target"], grads=True)

    def expected(self):
        return {k: self.m * self.target["params"][k].astype(np.float64)
                + (1 - self.m) * self.online["params"][k].astype(np.float64)
                for k in self.target["params"]}

    def target_params(self):
        self.raise_error()
        params = self.state("target")["parameters"]
        assert set(params) == set(self.target["params"]), \
            "the target's parameters changed names or number: update them in place"
        return params

    def require_moved(self):
        """The target moved towards the online network (some weight w in (0, 1]): the other
        properties are checked only on an update that does something."""
        got = self.target_params()
        t = np.concatenate([self.target["params"][k].ravel() for k in sorted(got)]).astype(float)
        o = np.concatenate([self.online["params"][k].ravel() for k in sorted(got)]).astype(float)
        g = np.concatenate([np.asarray(got[k], dtype=float).ravel() for k in sorted(got)])
        d = o - t
        w = float(np.dot(g - t, d) / np.dot(d, d))
        assert np.all(np.isfinite(g)) and 1e-3 < w < 1 + 1e-3 and \
            np.allclose(g, t + w * d, atol=1e-4), \
            "the target did not move towards the online network (theta_target <- m * " \
            "theta_target + (1 - m) * theta_online): this is checked first"
        return got


def momentum_values(worker, rng):
    for i, m in enumerate((float(rng.uniform(0.05, 0.95)), float(rng.uniform(0.95, 0.9999)))):
        update = _Update(worker, rng, m, f"values{i}")
        got = update.target_params()
        expected = update.expected()
        if all(close(got[k], expected[k], rtol=1e-5, atol=1e-5) for k in expected):
            continue
        t, o = update.target["params"], update.online["params"]
        swapped = {k: (1 - m) * t[k] + m * o[k] for k in t}
        if all(close(got[k], swapped[k]) for k in t):
            raise AssertionError("m and 1 - m are swapped: the target keeps the share m of its "
                                 "own parameters and moves by (1 - m) towards the online ones")
        if all(close(got[k], o[k]) for k in t):
            raise AssertionError("the target became a copy of the online network: m was ignored")
        if all(close(got[k], t[k]) for k in t):
            raise AssertionError("the target's parameters did not change: update them in place "
                                 "(rebinding a loop variable or returning a new module "
                                 "changes nothing)")
        raise AssertionError(f"with m = {m:.3f} the target's parameters are not "
                             f"m * theta_target + (1 - m) * theta_online")


def momentum_edges(worker, rng):
    update = _Update(worker, rng, 0.0, "m0")
    got, online = update.target_params(), update.online["params"]
    assert all(close(got[k], online[k], rtol=1e-6, atol=1e-6) for k in online), \
        "with m = 0 the target should become a copy of the online network"
    update = _Update(worker, rng, 1.0, "m1")
    got, target = update.target_params(), update.target["params"]
    assert all(close(got[k], target[k], rtol=1e-6, atol=1e-6) for k in target), \
        "with m = 1 the target should keep its parameters"


def momentum_in_place(worker, rng):
    update = _Update(worker, rng, float(rng.uniform(0.5, 0.99)), "inplace")
    got = update.require_moved()
    for name, handle in update.handles.items():
        held = worker.get(handle, "data")
        assert close(held, got[name], rtol=0, atol=0), \
            "the target's parameter tensors were replaced by new ones: change them in place " \
            "(p.mul_(m).add_(...), p.copy_(...)); the training loop keeps references to them"


def momentum_buffers(worker, rng):
    update = _Update(worker, rng, float(rng.uniform(0.3, 0.9)), "buffers")
    update.require_moved()
    buffers = update.state("target")["buffers"]
    for name, value in update.target["buffers"].items():
        assert name in buffers and np.array_equal(np.asarray(buffers[name]), value), \
            "the target's buffers (BatchNorm running mean, variance, count) changed: average " \
            "the parameters only (module.parameters(), not state_dict())"


def momentum_online_untouched(worker, rng):
    update = _Update(worker, rng, float(rng.uniform(0.3, 0.9)), "online")
    update.require_moved()
    state = update.state("online")
    for name, value in update.online["params"].items():
        assert np.array_equal(state["parameters"][name], value), \
            "the online network's parameters changed: only the target moves"
    for name, value in update.online["buffers"].items():
        assert np.array_equal(np.asarray(state["buffers"][name]), value), \
            "the online network's buffers changed"
    for name, value in update.online["grads"].items():
        assert name in state["grads"] and np.array_equal(state["grads"][name], value), \
            "the online network's gradients (.grad) changed: leave them alone"


def momentum_no_autograd(worker, rng):
    for requires_grad in (True, False):
        update = _Update(worker, rng, float(rng.uniform(0.3, 0.9)), f"grad{int(requires_grad)}",
                         target_requires_grad=requires_grad)
        if update.error is not None and ("leaf" in str(update.error) or
                                         "in-place" in str(update.error)):
            raise AssertionError(f"momentum_update failed on a target whose parameters have "
                                 f"requires_grad={requires_grad} ({str(update.error)[-160:]}): "
                                 f"do the update under torch.no_grad()")
        update.require_moved()
        for handle in update.handles.values():
            assert worker.get(handle, "is_leaf") is True, \
                "autograd recorded the update (a target parameter has a grad_fn): do it " \
                "under torch.no_grad()"
            assert worker.get(handle, "requires_grad") is requires_grad, \
                "the update changed requires_grad of the target's parameters"
            assert worker.get(handle, "grad") is None, "the target's parameters got a .grad"


# ================================================================ exercise 2: KeyQueue


class _Ring:
    """The reference ring buffer: the grader's own copy of where every key must be."""

    def __init__(self, start):
        self.slots, self.ptr = np.array(start, dtype=np.float64), 0

    def push(self, keys):
        size = len(self.slots)
        for row in keys:
            self.slots[self.ptr] = row
            self.ptr = (self.ptr + 1) % size


def _queue(worker, name, dim, size, strict=False, **kwargs):
    worker.call("KeyQueue", dim, size, keep=name, **kwargs)
    return _read_keys(worker, name, dim, size, strict)


def _read_keys(worker, name, dim, size, strict=False):
    """The queue's keys, (size, dim). MoCo's own layout (dim, size) costs the initial-keys
    property only (``strict``); the others read it transposed (dim != size there)."""
    keys = worker.get(name, "keys")
    keys = as_array(keys if strict else _rows(keys, dim, size), "KeyQueue.keys", (size, dim))
    assert np.all(np.isfinite(keys)), "KeyQueue.keys holds NaN or inf"
    return keys


def _rows(keys, dim, size):
    if isinstance(keys, np.ndarray) and keys.shape == (dim, size) != (size, dim):
        return keys.T
    return keys


def _push(worker, name, keys, requires_grad=False):
    handle = put(worker, f"{name}_in", keys, requires_grad=requires_grad)
    worker.call("enqueue", handle, on=name)


def _where_message(got, ring, before, batch, ptr_before):
    """Why the keys after an enqueue are not where the ring buffer has them."""
    size, B = len(ring.slots), len(batch)
    fit = min(B, size - ptr_before)

    def holds(rows, slots):
        return close(got[slots], rows, rtol=0, atol=1e-6)

    if B > fit:
        if holds(batch[:fit], slice(ptr_before, size)) and \
                holds(before[:B - fit], slice(0, B - fit)):
            return (f"a batch of {B} keys with {fit} slots left before the end: the keys that "
                    f"did not fit were dropped; they wrap around to slot 0")
        if holds(batch, slice(0, B)):
            return (f"a batch of {B} keys with {fit} slots left before the end was written "
                    f"from slot 0: the first {fit} keys go to the last slots, only the rest "
                    f"wraps around to slot 0")
    if holds(batch, slice(0, B)) and B < size and \
            holds(before[:size - B], slice(B, size)):
        return "the newest keys went to the front and the others moved back: a ring buffer " \
               "writes at a pointer that moves on by B (mod size); nothing else moves"
    return (f"after enqueueing {B} keys the queue's rows are not where a FIFO ring buffer puts "
            f"them (slot (ptr + i) % size for row i; the pointer moves on by B, mod size)")


def _enqueue_and_check(worker, name, ring, batch, dim, requires_grad=False):
    before, ptr = ring.slots.copy(), ring.ptr
    _push(worker, name, batch, requires_grad)
    ring.push(batch)
    got = _read_keys(worker, name, dim, len(ring.slots))
    if not close(got, ring.slots, rtol=0, atol=1e-6):
        raise AssertionError(_where_message(got, ring, before, batch, ptr))
    return got


def queue_init(worker, rng):
    dim, size = int(rng.integers(4, 17)), int(rng.integers(100, 301))
    worker.call("KeyQueue", dim, size, keep="kq_init")
    keys = worker.get("kq_init", "keys")
    if isinstance(keys, np.ndarray) and keys.shape == (dim, size):
        raise AssertionError(f"KeyQueue({dim}, {size}).keys has shape (dim, size), MoCo's "
                             f"layout; this notebook stores one key per row: (size, dim)")
    keys = _read_keys(worker, "kq_init", dim, size, strict=True)
    assert worker.get("kq_init", "keys.dtype") == "torch.float32", \
        "the queue's keys should be float32 (torch.randn's default)"
    assert worker.get("kq_init", "keys.requires_grad") is False, \
        "KeyQueue.keys requires grad: the queue holds constants"
    norms = np.linalg.norm(keys.astype(np.float64), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-4), \
        "the initial keys should have unit length (L2-normalise each row, dim=1)"
    distinct = len(np.unique(np.round(keys, 4), axis=0))
    negative = float(np.mean(keys < 0))
    assert distinct == size and 0.35 < negative < 0.65, \
        "the initial keys should be random directions (torch.randn, then normalised): " \
        + ("some rows repeat" if distinct < size else
           "their coordinates are not spread around 0 as randn's are")
    for device in (None, "cpu"):
        try:
            _queue(worker, "kq_device", dim, 8, device=device)
        except Exception as error:                       # noqa: BLE001
            raise AssertionError(f"KeyQueue({dim}, 8, device={device!r}) failed: accept an "
                                 f"optional device for the buffer ({str(error)[-120:]})")


def queue_fills_in_order(worker, rng):
    dim, size = int(rng.integers(2, 7)), int(rng.integers(9, 25))
    ring = _Ring(_queue(worker, "kq_fifo", dim, size))
    first = int(rng.integers(1, size // 2))
    second = int(rng.integers(1, size - first))
    for B in (first, second):                                # both before the end
        _enqueue_and_check(worker, "kq_fifo", ring, _unit(rng, B, dim), dim)


def queue_wraps(worker, rng):
    dim, size = int(rng.integers(2, 7)), int(rng.integers(7, 20))
    ring = _Ring(_queue(worker, "kq_wrap", dim, size))
    left = int(rng.integers(1, size // 2))                  # slots left before the end
    _enqueue_and_check(worker, "kq_wrap", ring, _unit(rng, size - left, dim), dim)
    crossing = int(rng.integers(left + 1, size + 1))       # crosses the end
    _enqueue_and_check(worker, "kq_wrap", ring, _unit(rng, crossing, dim), dim)
    _enqueue_and_check(worker, "kq_wrap", ring, _unit(rng, int(rng.integers(1, size)), dim), dim)
    # exactly to the end, then the next batch starts at slot 0
    ring2 = _Ring(_queue(worker, "kq_wrap2", dim, size))
    a = int(rng.integers(1, size))
    _enqueue_and_check(worker, "kq_wrap2", ring2, _unit(rng, a, dim), dim)
    _enqueue_and_check(worker, "kq_wrap2", ring2, _unit(rng, size - a, dim), dim)
    _enqueue_and_check(worker, "kq_wrap2", ring2, _unit(rng, int(rng.integers(1, size)), dim), dim)


def queue_any_batch_size(worker, rng):
    dim = int(rng.integers(2, 6))
    size = int(rng.choice([7, 11, 13, 17]))                  # no batch size divides it
    ring = _Ring(_queue(worker, "kq_any", dim, size))
    sizes = [int(b) for b in rng.integers(1, size, size=10)] + [size, 1, size]
    rng.shuffle(sizes)
    for B in sizes:
        _enqueue_and_check(worker, "kq_any", ring, _unit(rng, B, dim), dim)
    ring1 = _Ring(_queue(worker, "kq_one", dim, 1))          # a queue of one key
    for _ in range(2):
        _enqueue_and_check(worker, "kq_one", ring1, _unit(rng, 1, dim), dim)


def queue_stores_detached_as_given(worker, rng):
    dim, size = int(rng.integers(2, 7)), int(rng.integers(8, 20))
    ring = _Ring(_queue(worker, "kq_detach", dim, size))
    B = int(rng.integers(2, size // 2 + 1))
    batch = (_unit(rng, B, dim) * rng.uniform(0.5, 2.0, size=(B, 1))).astype(F32)  # not unit
    before, ptr = ring.slots.copy(), ring.ptr
    _push(worker, "kq_detach", batch, requires_grad=True)
    ring.push(batch)
    got = _read_keys(worker, "kq_detach", dim, size)
    if not close(got, ring.slots, rtol=0, atol=1e-6):
        if close(got[:B], _normalize(batch.astype(np.float64)), atol=1e-5):
            raise AssertionError("the queue changed the keys it was given (normalised them "
                                 "again?): store them as they arrive")
        raise AssertionError(_where_message(got, ring, before, batch, ptr))
    assert worker.get("kq_detach", "keys.requires_grad") is False, \
        "after enqueueing keys that require grad, KeyQueue.keys requires grad too: store " \
        "keys.detach()"


def queue_keys_is_copy(worker, rng):
    dim, size = int(rng.integers(2, 7)), int(rng.integers(8, 20))
    ring = _Ring(_queue(worker, "kq_copy", dim, size))
    _enqueue_and_check(worker, "kq_copy", ring, _unit(rng, int(rng.integers(1, size // 2)), dim),
                       dim)
    worker.call("builtins.getattr", worker.ref("kq_copy"), "keys", keep="kq_copy_k1")
    worker.call("zero_", on="kq_copy_k1", keep="kq_copy_k1")            # write into the copy
    got = _read_keys(worker, "kq_copy", dim, size)
    assert close(got, ring.slots, rtol=0, atol=1e-6), \
        "writing into the tensor that .keys returned changed the queue: return a copy " \
        "(.clone())"
    worker.call("builtins.getattr", worker.ref("kq_copy"), "keys", keep="kq_copy_k2")
    held = ring.slots.copy()
    _enqueue_and_check(worker, "kq_copy", ring, _unit(rng, int(rng.integers(1, size // 2)), dim),
                       dim)
    assert close(_rows(worker.get("kq_copy_k2", ""), dim, size), held, rtol=0, atol=1e-6), \
        "the tensor that .keys returned changed with the next enqueue: it is a view of the " \
        "buffer, not a copy (the step's backward would fail)"


# ================================================================ exercise 3: moco_logits


def _logit_inputs(rng, N=None, K=None, C=None):
    N = N or int(rng.integers(2, 13))
    K = K or int(rng.integers(3, 61))
    while K == N != 1:
        K = int(rng.integers(3, 61))
    C = C or int(rng.integers(3, 17))
    while True:       # logits that differ clearly, so a constant answer is told from a right one
        q = _unit(rng, N, C)
        k = _normalize(q + 0.6 * rng.standard_normal((N, C))).astype(F32)
        queue = _unit(rng, K, C)
        if np.ptp(_reference_logits(q, k, queue, 1.0)) > 0.1:
            return q, k, queue


def _reference_logits(q, k, queue, tau):
    q, k, queue = (x.astype(np.float64) for x in (q, k, queue))
    return np.concatenate([(q * k).sum(1, keepdims=True), q @ queue.T], axis=1) / tau


def _call_logits(worker, name, q, k, queue, tau, grad=False):
    """moco_logits on kept inputs; the output kept as ``name``; returns logits, labels."""
    refs = [put(worker, f"{name}_{part}", x, requires_grad=grad and part in "qQ")
            for part, x in (("q", q), ("k", k), ("Q", queue))]
    out = worker.call("moco_logits", *refs, tau, keep=name)
    assert out["type"] in ("builtins.tuple", "builtins.list") and \
        worker.call("builtins.len", worker.ref(name)) == 2, \
        "moco_logits should return a pair (logits, labels)"
    logits = worker.get(name, "0")
    labels = worker.get(name, "1")
    return logits, labels


def _require_logits(logits, N, K):
    """Shape (N, 1 + K), finite, not constant: the other properties need real logits."""
    logits = as_array(logits, "the logits")
    if logits.shape == (N, N + K) and N != 1:
        raise AssertionError(f"the logits have shape (N, N + K) = {logits.shape}: each query "
                             f"was compared with every key of the batch; MoCo's positive is "
                             f"one number per query, the queue gives the negatives")
    as_array(logits, "the logits", (N, 1 + K))
    assert np.all(np.isfinite(logits)), "the logits hold NaN or inf"
    assert np.ptp(logits) > 1e-3, "the logits are constant: they do not depend on q and the keys"
    return logits.astype(np.float64)


def logits_values(worker, rng):
    draws = [_logit_inputs(rng), _logit_inputs(rng), _logit_inputs(rng, N=1, K=1)]
    for i, (q, k, queue) in enumerate(draws):          # the last: one query, one queue key
        tau = float(np.exp(rng.uniform(np.log(0.05), np.log(1.0))))
        logits, _ = _call_logits(worker, f"lg_val{i}", q, k, queue, tau)
        got = _require_logits(logits, len(q), len(queue))
        expected = _reference_logits(q, k, queue, tau)
        if close(got, expected, rtol=1e-4, atol=1e-4):
            continue
        if close(np.roll(got, 1, axis=1), expected, rtol=1e-4, atol=1e-4):
            raise AssertionError("the positive is in the last column; MoCo puts it in column 0")
        if close(got, expected * tau, rtol=1e-4, atol=1e-4):
            raise AssertionError("the logits are not divided by the temperature tau")
        if close(got, expected * tau * tau, rtol=1e-4, atol=1e-4):
            raise AssertionError("the logits are multiplied by tau; divide by it")
        raise AssertionError(f"the logits for N = {len(q)} queries and K = {len(queue)} queue "
                             f"keys are not [q_i . k_i, q_i . queue_j] / tau")


def logits_positive_first(worker, rng):
    N, C = int(rng.integers(2, 7)), 16
    q = _unit(rng, N, C)
    queue = _unit(rng, int(rng.integers(5, 21)), C)
    while np.max(q.astype(np.float64) @ queue.T) > 0.9:     # no queue key close to a query
        queue = _unit(rng, len(queue), C)
    tau = float(rng.uniform(0.05, 0.5))
    logits, _ = _call_logits(worker, "lg_pos", q, q.copy(), queue, tau)   # k = q
    got = _require_logits(logits, N, len(queue))
    others = got[:, 1:].max(axis=1)
    margin = 0.05 * np.abs(got).max(axis=1)       # q . k = 1 against q . queue_j < 0.9
    if not np.all(got[:, 0] > others + margin):
        if np.all(got[:, -1] > got[:, :-1].max(axis=1) + margin):
            raise AssertionError("the positive is in the last column; MoCo puts it in column 0 "
                                 "so that the labels are all zero")
        raise AssertionError("with k = q the positive q . k = 1 is the largest logit of each "
                             "row, but column 0 does not hold it: put l_pos in column 0")


def logits_temperature(worker, rng):
    q, k, queue = _logit_inputs(rng)
    t1 = float(rng.uniform(0.05, 0.2))
    t2 = float(t1 * rng.uniform(3.0, 10.0))
    a = _require_logits(_call_logits(worker, "lg_t1", q, k, queue, t1)[0], len(q), len(queue))
    b = _require_logits(_call_logits(worker, "lg_t2", q, k, queue, t2)[0], len(q), len(queue))
    if close(a, b, rtol=1e-5, atol=1e-6):
        raise AssertionError("the logits do not change with tau: divide them by the "
                             "temperature")
    if not close(a * t1, b * t2, rtol=1e-4, atol=1e-5):
        if close(a / t1, b / t2, rtol=1e-4, atol=1e-5):
            raise AssertionError("the logits are multiplied by tau; divide by it")
        raise AssertionError("the logits do not scale as 1 / tau: divide the dot products by "
                             "the temperature (and only once)")


def logits_labels(worker, rng):
    q, k, queue = _logit_inputs(rng)
    N = len(q)
    logits, labels = _call_logits(worker, "lg_lab", q, k, queue, float(rng.uniform(0.05, 1.0)))
    _require_logits(logits, N, len(queue))
    labels = as_array(labels, "labels", (N,))
    assert worker.get("lg_lab", "1.dtype") == "torch.int64", \
        "labels should be a torch.long (int64) tensor: cross-entropy wants class indices"
    assert np.all(labels == 0), "labels should be all zeros: the positive is class 0 of each row"
    assert worker.get("lg_lab", "1.device.type") == "cpu", "labels should be on q's device"


def logits_gradients(worker, rng):
    q, k, queue = _logit_inputs(rng)
    logits, _ = _call_logits(worker, "lg_grad", q, k, queue, float(rng.uniform(0.1, 1.0)),
                             grad=True)
    _require_logits(logits, len(q), len(queue))
    worker.call("__getitem__", 0, on="lg_grad", keep="lg_grad_logits")
    worker.call("sum", on="lg_grad_logits", keep="lg_grad_sum")
    worker.call("backward", on="lg_grad_sum")
    assert worker.get("lg_grad_Q", "grad") is None, \
        "a gradient reached the queue's keys: use queue_keys.detach(), the queue holds constants"
    grad = worker.get("lg_grad_q", "grad")
    assert isinstance(grad, np.ndarray) and grad.shape == q.shape and \
        np.all(np.isfinite(grad)) and np.abs(grad).max() > 0, \
        "no (finite) gradient reached q: the loss must train the query encoder"


def logits_dtype_and_inputs(worker, rng):
    q, k, queue = _logit_inputs(rng)
    logits, _ = _call_logits(worker, "lg_dt", q, k, queue, float(rng.uniform(0.05, 1.0)))
    _require_logits(logits, len(q), len(queue))
    assert worker.get("lg_dt", "0.dtype") == "torch.float32", \
        "float32 inputs should give float32 logits"
    for part, x in (("q", q), ("k", k), ("Q", queue)):
        assert np.array_equal(worker.get(f"lg_dt_{part}", ""), x), \
            "moco_logits changed its inputs in place (q, k or queue_keys)"


# ================================================================ exercise 4: moco_step


def _draw_step(rng, m=None):
    D, H, C = int(rng.integers(4, 9)), int(rng.integers(4, 9)), int(rng.integers(3, 7))
    N = int(rng.integers(3, 9))
    K = int(rng.integers(5, 17))
    while K == N:
        K = int(rng.integers(5, 17))
    shapes = {"0.weight": (H, D), "0.bias": (H,), "2.weight": (C, H), "2.bias": (C,)}
    query = {n: (0.6 * rng.standard_normal(s)).astype(F32) for n, s in shapes.items()}
    key = {n: (v + 0.4 * rng.standard_normal(v.shape)).astype(F32) for n, v in query.items()}
    return {"dims": (D, H, C), "N": N, "K": K, "query": query, "key": key,
            "x_q": rng.standard_normal((N, D)).astype(F32),
            "x_k": rng.standard_normal((N, D)).astype(F32),
            "queue": _unit(rng, K, C),
            "m": float(rng.uniform(0.5, 0.99)) if m is None else m,
            "tau": float(rng.uniform(0.1, 0.5))}


def _forward(params, x):
    """Linear - ReLU - Linear in float64, from parameters the grader holds or read back."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    h = np.maximum(x.astype(np.float64) @ p["0.weight"].T + p["0.bias"], 0.0)
    return h @ p["2.weight"].T + p["2.bias"]


def _encoder(worker, name, draw, params):
    D, H, C = draw["dims"]
    worker.call("torch.nn.Linear", D, H, keep=f"{name}_0")
    worker.call("torch.nn.ReLU", keep=f"{name}_1")
    worker.call("torch.nn.Linear", H, C, keep=f"{name}_2")
    worker.call("torch.nn.Sequential", *[worker.ref(f"{name}_{i}") for i in range(3)], keep=name)
    worker.call("load_state_dict", params, on=name, as_torch=True)   # requires_grad stays True


def _stand_in_queue(worker, name, keys, replacing=False):
    """A queue from importable parts: ``keys`` a tensor; ``enqueue`` appends to the list
    ``<name>_log``, or (replacing) sets ``keys`` to what was enqueued."""
    worker.call("types.SimpleNamespace", keys=np.ascontiguousarray(keys), as_torch=True,
                keep=name)
    if replacing:
        worker.call("importlib.import_module", "builtins", keep=f"{name}_builtins")
        worker.call("builtins.getattr", worker.ref(f"{name}_builtins"), "setattr",
                    keep=f"{name}_setattr")
        worker.call("functools.partial", worker.ref(f"{name}_setattr"), worker.ref(name), "keys",
                    keep=f"{name}_enqueue")
    else:
        worker.call("builtins.list", keep=f"{name}_log")
        worker.call("builtins.getattr", worker.ref(f"{name}_log"), "append",
                    keep=f"{name}_enqueue")
    worker.call("builtins.setattr", worker.ref(name), "enqueue", worker.ref(f"{name}_enqueue"))


class _Step:
    """One moco_step on encoders and a stand-in queue that the grader built and filled."""

    def __init__(self, worker, draw, tag, queue=None, replacing=False, x_k=None,
                 key_requires_grad=False):
        self.worker, self.draw, self.name = worker, draw, f"st_{tag}"
        n = self.name
        _encoder(worker, f"{n}_q", draw, draw["query"])
        _encoder(worker, f"{n}_k", draw, draw["key"])
        if not key_requires_grad:                 # as in training: requires_grad_(False)
            worker.call("requires_grad_", False, on=f"{n}_k", keep=f"{n}_k")
        _stand_in_queue(worker, f"{n}_queue", draw["queue"] if queue is None else queue,
                        replacing)
        self.x_k = draw["x_k"] if x_k is None else x_k
        out = worker.call("moco_step", draw["x_q"], self.x_k, worker.ref(f"{n}_q"),
                          worker.ref(f"{n}_k"), worker.ref(f"{n}_queue"), draw["m"],
                          draw["tau"], as_torch=True, keep=f"{n}_loss")
        assert out["type"] == "torch.Tensor" and worker.get(f"{n}_loss", "shape") == [], \
            f"moco_step should return the loss as a 0-dim torch tensor, got {out['type']}"
        self.loss = worker.call("item", on=f"{n}_loss")
        assert isinstance(self.loss, float) and np.isfinite(self.loss), "the loss is not finite"

    def params(self, which):
        params = self.worker.state(f"{self.name}_{which}")["parameters"]
        assert set(params) == set(self.draw["query"]), \
            f"the {'query' if which == 'q' else 'key'} encoder's parameters changed names"
        return params

    def enqueued(self):
        return self.worker.call("builtins.len", self.worker.ref(f"{self.name}_queue_log"))

    def expected_loss(self, key_params):
        """InfoNCE, from the query encoder as drawn and the key encoder's parameters given."""
        d = self.draw
        q = _normalize(_forward(d["query"], d["x_q"]))
        k = _normalize(_forward(key_params, self.x_k))
        return _cross_entropy_0(_reference_logits(q, k, d["queue"], d["tau"]))


def _helper_loss(worker, draw, q, k, queue):
    """The loss the student's own moco_logits gives on the grader's q, k and queue, so that a
    wrong exercise 3 is not counted again here (None where it gives nothing usable)."""
    try:
        logits, labels = worker.call("moco_logits", q.astype(F32), k.astype(F32),
                                     queue.astype(F32), draw["tau"], as_torch=True)
        logits, labels = np.asarray(logits, np.float64), np.asarray(labels)
        if logits.ndim != 2 or labels.shape != (len(q),) or labels.dtype.kind not in "iu" or \
                labels.min() < 0 or labels.max() >= logits.shape[1]:
            return None
        return _cross_entropy(logits, labels)
    except Exception:                                        # noqa: BLE001
        return None


def _loss_close(a, b):
    """float32 against float64: a loss of a few units is good to ~1e-6."""
    return b is not None and abs(a - b) <= 2e-5 * max(1.0, abs(b))


def step_loss(worker, rng):
    for i in range(2):                 # two draws: a wrong loss close to the right one by chance
        _check_step_loss(worker, _draw_step(rng), f"loss{i}")     # fails at least one


def _check_step_loss(worker, draw, tag):
    step = _Step(worker, draw, tag)
    key_after = step.params("k")
    expected = step.expected_loss(key_after)
    if _loss_close(step.loss, expected):
        return
    q = _normalize(_forward(draw["query"], draw["x_q"]))
    k = _normalize(_forward(key_after, draw["x_k"]))
    if _loss_close(step.loss, _helper_loss(worker, draw, q, k, draw["queue"])):
        return                                    # right, given the student's moco_logits
    tau = draw["tau"]
    raw_q, raw_k = _forward(draw["query"], draw["x_q"]), _forward(key_after, draw["x_k"])
    k_query = _normalize(_forward(draw["query"], draw["x_k"]))
    k_before = _normalize(_forward(draw["key"], draw["x_k"]))
    mistakes = [
        (_reference_logits(raw_q, raw_k, draw["queue"], tau),
         "normalise q and k (F.normalize(..., dim=1)) before the logits"),
        (_reference_logits(q, k_before, draw["queue"], tau),
         "the keys came from the key encoder before its momentum update: update it first"),
        (_reference_logits(q, k_query, draw["queue"], tau),
         "the keys came from the query encoder; they come from the key (momentum) encoder"),
        (_reference_logits(q, k, draw["queue"], 1.0), "the logits were not divided by tau"),
        (_reference_logits(q, k, np.concatenate([k, draw["queue"]]), tau),
         "this batch's keys are among the negatives: use the queue as it was"),
    ]
    for logits, message in mistakes:
        if _loss_close(step.loss, _cross_entropy_0(logits)):
            raise AssertionError(f"the loss is not MoCo's InfoNCE: {message}")
    raise AssertionError("the loss is not the cross-entropy of [q . k, q . queue] / tau with "
                         "the positive as class 0 (q = normalize(query_encoder(x_q)), "
                         "k = normalize(key_encoder(x_k)) after the momentum update)")


def step_queue_before_enqueue(worker, rng):
    draw = _draw_step(rng)
    logged = _Step(worker, draw, "order_a")                     # enqueue only records
    assert logged.enqueued() >= 1, "moco_step never called queue.enqueue(k)"
    keys = as_array(worker.get("st_order_a_queue_log", "0"), "the enqueued keys")
    replacing = _Step(worker, draw, "order_b", replacing=True)  # enqueue replaces the keys
    assert worker.get("st_order_b_queue", "keys.shape") == [draw["N"], draw["dims"][2]], \
        "moco_step never enqueued this batch's keys (N, C)"
    own = _Step(worker, draw, "order_c", queue=keys)            # the batch's keys as the queue
    if abs(logged.loss - own.loss) <= 1e-5 * max(1.0, abs(own.loss)):
        raise AssertionError("the loss does not depend on the queue's keys: the negatives come "
                             "from queue.keys")
    if abs(replacing.loss - logged.loss) > 1e-5 * max(1.0, abs(logged.loss)):
        if abs(replacing.loss - own.loss) <= 1e-5 * max(1.0, abs(own.loss)):
            raise AssertionError("the logits used the queue after this batch's keys were "
                                 "enqueued: compute the logits and the loss first, then enqueue")
        raise AssertionError("the loss depends on when the queue is enqueued: read queue.keys "
                             "once, before queue.enqueue(k)")


def step_keys(worker, rng):
    draw = _draw_step(rng)
    step = _Step(worker, draw, "keys")
    count = step.enqueued()
    assert count == 1, f"moco_step called queue.enqueue {count} times; once per step"
    got = as_array(worker.get("st_keys_queue_log", "0"), "the enqueued keys",
                 (draw["N"], draw["dims"][2]))
    key_after = step.params("k")
    expected = _normalize(_forward(key_after, draw["x_k"]))
    if close(got, expected, rtol=1e-4, atol=1e-5):
        return
    for params, x, message in [
            (draw["key"], draw["x_k"], "were computed before the key encoder's momentum update"),
            (draw["query"], draw["x_k"], "came from the query encoder, not the key encoder"),
            (key_after, draw["x_q"], "were computed from x_q; the keys encode x_k")]:
        if close(got, _normalize(_forward(params, x)), rtol=1e-4, atol=1e-5):
            raise AssertionError(f"the enqueued keys {message}")
    if close(got, _forward(key_after, draw["x_k"]), rtol=1e-4, atol=1e-5):
        raise AssertionError("the enqueued keys are not L2-normalised")
    raise AssertionError("the enqueued keys are not normalize(key_encoder(x_k)), computed after "
                         "the momentum update")


def step_gradients(worker, rng):
    draw = _draw_step(rng)
    step = _Step(worker, draw, "grad", key_requires_grad=True)
    # a loss that trains the query encoder but has no keys to enqueue is no MoCo step
    assert step.enqueued() >= 1, "moco_step never called queue.enqueue(k)"
    assert worker.get("st_grad_queue_log", "0.requires_grad") is False, \
        "the enqueued keys carry a gradient (the key encoder's parameters require grad " \
        "here): compute k under torch.no_grad()"
    worker.call("backward", on="st_grad_loss")
    query = worker.state("st_grad_q", grads=True)["grads"]
    key = worker.state("st_grad_k", grads=True)["grads"]
    assert not key, "after loss.backward() the key encoder has gradients (its parameters " \
                    "require grad): compute the keys under torch.no_grad()"
    assert set(query) == set(draw["query"]) and \
        all(np.all(np.isfinite(g)) for g in query.values()) and \
        max(np.abs(g).max() for g in query.values()) > 0, \
        "after loss.backward() the query encoder has no gradient: q must keep its graph"


def step_momentum(worker, rng):
    # Whether the student's own momentum_update moves a key encoder at all: a step cannot
    # show that it calls a helper that does nothing, so a no-op earns nothing here either.
    probe = _draw_step(rng, m=float(rng.uniform(0.5, 0.99)))
    own = _own_update(worker, probe, "mom_probe")
    helper_moves = own is not None and \
        not all(np.array_equal(own[n], v) for n, v in probe["key"].items())
    for i, m in enumerate((0.0, probe["m"])):                     # m = 0: a copy each step
        _check_step_momentum(worker, _draw_step(rng, m=m), f"mom{i}", helper_moves)


def _own_update(worker, draw, tag):
    """The key encoder's parameters after the student's own momentum_update on fresh copies
    of the encoders (None where it fails)."""
    try:
        _encoder(worker, f"st_{tag}_q2", draw, draw["query"])
        _encoder(worker, f"st_{tag}_k2", draw, draw["key"])
        worker.call("requires_grad_", False, on=f"st_{tag}_k2", keep=f"st_{tag}_k2")
        worker.call("momentum_update", worker.ref(f"st_{tag}_q2"), worker.ref(f"st_{tag}_k2"),
                    draw["m"])
        own = worker.state(f"st_{tag}_k2")["parameters"]
    except Exception:                                        # noqa: BLE001
        return None
    return own if set(own) == set(draw["key"]) else None


def _check_step_momentum(worker, draw, tag, helper_moves):
    step = _Step(worker, draw, tag)
    query_after, key_after = step.params("q"), step.params("k")
    assert all(np.array_equal(query_after[n], v) for n, v in draw["query"].items()), \
        "moco_step changed the query encoder's parameters (only the optimiser does, after " \
        "backward): call momentum_update(query_encoder, key_encoder, m), online first"
    m = draw["m"]
    expected = {n: m * draw["key"][n].astype(np.float64) + (1 - m) * draw["query"][n]
                for n in draw["key"]}
    if all(close(key_after[n], expected[n], rtol=1e-5, atol=1e-5) for n in expected):
        return
    # what the student's own momentum_update gives: a wrong exercise 1 costs in its cell only
    own = _own_update(worker, draw, tag) if helper_moves else None
    if own is not None and all(close(key_after[n], own[n], rtol=1e-6, atol=1e-6)
                               for n in expected):
        return
    if all(np.array_equal(key_after[n], v) for n, v in draw["key"].items()):
        raise AssertionError("the key encoder was not moved: call momentum_update(query_encoder, "
                             "key_encoder, m) at the start of the step")
    raise AssertionError("the key encoder's parameters after the step are not one momentum "
                         "update of them (m * key + (1 - m) * query)")


PROPERTIES = {
    "test_momentum_update": [
        Property("the target becomes m * target + (1 - m) * online", 0.75, momentum_values),
        Property("edge cases: m = 0 copies the online network, m = 1 changes nothing", 0.5,
                 momentum_edges),
        Property("in place: the target's own parameter tensors change", 0.5, momentum_in_place),
        Property("parameters only: the target's BatchNorm buffers stay as they were", 0.5,
                 momentum_buffers),
        Property("the online network, its buffers and gradients are left alone", 0.25,
                 momentum_online_untouched),
        Property("without autograd: target parameters stay leaves, requires_grad kept", 0.5,
                 momentum_no_autograd),
    ],
    "test_key_queue": [
        Property("initial keys: (size, dim) float32 random unit rows; device accepted", 0.75,
                 queue_init),
        Property("the first batches fill slots 0, 1, 2, ... in order", 0.75,
                 queue_fills_in_order),
        Property("a batch that crosses the end wraps around to slot 0", 1.0, queue_wraps),
        Property("any batch size: sizes that do not divide the queue, B = 1, B = size", 0.5,
                 queue_any_batch_size),
        Property("stores the keys detached and as they are", 0.5,
                 queue_stores_detached_as_given),
        Property(".keys is a copy: writing into it or enqueueing later leaves the other alone",
                 0.5, queue_keys_is_copy),
    ],
    "test_moco_logits": [
        Property("logits [q . k, q . queue] / tau on random inputs", 0.75, logits_values),
        Property("the positive is in column 0", 0.5, logits_positive_first),
        Property("divided by the temperature tau", 0.5, logits_temperature),
        Property("labels: N zeros of dtype torch.long", 0.5, logits_labels),
        Property("the queue gets no gradient, q does", 0.5, logits_gradients),
        Property("float32 stays float32; the inputs are left unchanged", 0.25,
                 logits_dtype_and_inputs),
    ],
    "test_moco_step": [
        Property("the loss: InfoNCE against the queue, a 0-dim tensor", 1.0, step_loss),
        Property("the logits use the queue before this batch is enqueued", 0.5,
                 step_queue_before_enqueue),
        Property("enqueues normalize(key_encoder(x_k)) once, after the update", 0.5,
                 step_keys),
        Property("gradients: none to the key encoder or the enqueued keys (even with "
                 "requires_grad=True), the query encoder gets them", 0.5, step_gradients),
        Property("the key encoder moves by one momentum update; the query encoder does not",
                 0.5, step_momentum),
    ],
}
