"""Wrong variants for notebook 02: grade_id of a solution cell -> the whole cell, answered wrong.

Each is a mistake students make. tests/e2e/test_autograder.py grades the master with one of
these cells swapped in, once per entry, and expects exactly test_<grade_id> to lose its
points. Keep a few: each costs one grading.
"""

WRONG = {
    # The roles are swapped: the key encoder jumps most of the way to the query encoder.
    "momentum_update": '''\
@torch.no_grad()
def momentum_update(online, target, m):
    """In place: theta_target <- m * theta_target + (1 - m) * theta_online (parameters only)."""
    for p_online, p_target in zip(online.parameters(), target.parameters()):
        p_target.copy_(m * p_online + (1.0 - m) * p_target)
''',
    # No wrap-around: keys that do not fit before the end of the buffer are dropped.
    "key_queue": '''\
class KeyQueue:
    """A FIFO ring buffer of `size` L2-normalised keys of dimension `dim`."""

    def __init__(self, dim, size, device=None):
        self.size = size
        self.buffer = F.normalize(torch.randn(size, dim, device=device), dim=1)
        self.ptr = 0

    def enqueue(self, keys):
        keys = keys.detach()
        n = min(len(keys), self.size - self.ptr)
        self.buffer[self.ptr:self.ptr + n] = keys[:n]
        self.ptr = (self.ptr + n) % self.size

    @property
    def keys(self):
        return self.buffer.clone()
''',
    # The positive in the last column (labels still zero).
    "moco_logits": '''\
def moco_logits(q, k, queue_keys, tau):
    """q, k: (N, C) normalised; queue_keys: (K, C) -> logits (N, 1 + K), labels (N,) zeros."""
    l_pos = (q * k).sum(dim=1, keepdim=True)
    l_neg = q @ queue_keys.detach().T
    logits = torch.cat([l_neg, l_pos], dim=1) / tau
    labels = torch.zeros(len(q), dtype=torch.long, device=q.device)
    return logits, labels
''',
}

# Correct answers written differently from the master (another student's way): each earns
# full marks. tests/e2e/test_autograder.py grades one notebook with all of them in place.
CORRECT = {
    # All parameters at once with torch's foreach kernels, as a lerp:
    # target + (1 - m) (online - target) = m target + (1 - m) online.
    "momentum_update": '''\
@torch.no_grad()
def momentum_update(online, target, m):
    """In place: theta_target <- m * theta_target + (1 - m) * theta_online (parameters only)."""
    slow = list(target.parameters())
    fast = [p.detach() for p in online.parameters()]
    torch._foreach_lerp_(slow, fast, 1.0 - m)
''',
    # No pointer: a count of the keys seen so far gives the next slot; the batch is written
    # as two slices (up to the end, then from slot 0) instead of with an index tensor.
    "key_queue": '''\
class KeyQueue:
    """A FIFO ring buffer of `size` L2-normalised keys of dimension `dim`."""

    def __init__(self, dim, size, device=None):
        start = torch.randn(size, dim, device=device)
        self.store = start / start.norm(dim=1, keepdim=True)
        self.seen = 0                                   # keys enqueued so far

    def enqueue(self, keys):
        """Store keys (B, dim), B <= size, overwriting the oldest keys."""
        incoming = keys.detach()
        capacity = self.store.shape[0]
        if len(incoming) > capacity:
            raise ValueError(f"{len(incoming)} keys do not fit a queue of {capacity}")
        at = self.seen % capacity
        head = min(len(incoming), capacity - at)        # how many fit before the end
        self.store[at:at + head] = incoming[:head]
        self.store[:len(incoming) - head] = incoming[head:]   # the rest wraps to slot 0
        self.seen += len(incoming)

    @property
    def keys(self):
        """A detached copy of the stored keys, (size, dim): row i is slot i."""
        return self.store.detach().clone()
''',
    # einsum for both products, each divided by tau before hstack; labels by new_zeros.
    "moco_logits": '''\
def moco_logits(q, k, queue_keys, tau):
    """q, k: (N, C) normalised; queue_keys: (K, C) -> logits (N, 1 + K), labels (N,) zeros."""
    positive = torch.einsum("nc,nc->n", q, k).unsqueeze(-1) / tau       # (N, 1)
    negative = torch.einsum("nc,kc->nk", q, queue_keys.detach()) / tau  # (N, K)
    logits = torch.hstack([positive, negative])
    labels = q.new_zeros(q.shape[0], dtype=torch.long)
    return logits, labels
''',
    # The queries first (the momentum update does not touch the query encoder), then the
    # update and the keys; normalised by hand.
    "moco_step": '''\
def moco_step(x_q, x_k, query_encoder, key_encoder, queue, m, tau):
    """One MoCo step on two views (N, ...) -> the loss (a scalar; fit() calls backward)."""
    out_q = query_encoder(x_q)
    queries = out_q / out_q.norm(dim=1, keepdim=True).clamp_min(1e-12)
    momentum_update(query_encoder, key_encoder, m)
    with torch.no_grad():
        out_k = key_encoder(x_k)
        positives = out_k / out_k.norm(dim=1, keepdim=True).clamp_min(1e-12)
    negatives = queue.keys                              # the queue before this batch
    logits, labels = moco_logits(queries, positives, negatives, tau)
    loss = F.cross_entropy(logits, labels)
    queue.enqueue(positives)
    return loss
''',
}
