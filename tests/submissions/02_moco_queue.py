"""Wrong variants for notebook 02: grade_id of a solution cell -> the whole cell, answered wrong.

Each is a mistake students make. tests/test_autograder.py grades the master with one of
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
