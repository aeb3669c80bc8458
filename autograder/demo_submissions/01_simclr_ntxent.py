"""Wrong variants for notebook 01: grade_id of a solution cell -> the whole cell, answered wrong.

Each is a mistake students make. tests/e2e/test_autograder.py grades the master with one of
these cells swapped in, once per entry, and expects exactly test_<grade_id> to lose its
points; `python -m autograder demo` grades the first entry. Keep a few: each costs one grading.
"""

WRONG = {
    # The similarity of each anchor with itself stays in the denominator (k = i not skipped).
    "nt_xent_loss_naive": '''\
def nt_xent_loss_naive(z_i, z_j, tau):
    """NT-Xent with loops over the 2N anchors; z_i, z_j: (N, D) -> scalar."""
    z = torch.cat([z_i, z_j])
    two_n = len(z)
    sim = cosine_similarity_matrix(z)
    total = 0.0
    for i in range(two_n):
        j = (i + two_n // 2) % two_n
        denominator = sum(torch.exp(sim[i, k] / tau) for k in range(two_n))
        total = total - torch.log(torch.exp(sim[i, j] / tau) / denominator)
    return total / two_n
''',
    # A final ReLU: z can no longer be negative.
    "projection_head": '''\
class ProjectionHead(nn.Module):
    """g: h (B, in_dim) -> z (B, out_dim), one hidden layer of size hidden_dim."""

    def __init__(self, in_dim, hidden_dim, out_dim):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(),
                                    nn.Linear(hidden_dim, out_dim), nn.ReLU())

    def forward(self, h):
        return self.layers(h)
''',
    # No random horizontal flip.
    "simclr_transform": '''\
from torchvision import transforms as T


def simclr_transform(image_size=32, blur=False):
    """SimCLR's augmentation: PIL image -> normalised tensor (3, image_size, image_size)."""
    steps = [
        T.RandomResizedCrop(image_size, scale=(0.08, 1.0)),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
    ]
    if blur:
        steps.append(T.RandomApply([T.GaussianBlur(3, sigma=(0.1, 2.0))], p=0.5))
    steps += [T.ToTensor(), T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))]
    return T.Compose(steps)
''',
}

# Correct answers written differently from the master (another student's way): each earns
# full marks. tests/e2e/test_autograder.py grades one notebook with all of them in place.
CORRECT = {
    # torchvision.transforms.v2; the flip before the crop (the crop's position is uniform,
    # so mirroring first gives the same distribution); the colour steps on the uint8
    # tensor after PILToTensor; the numbers written out; the kernel rounded by hand.
    "simclr_transform": '''\
import torch
from torchvision.transforms import v2


def simclr_transform(image_size=32, blur=False):
    """SimCLR's augmentation: PIL image -> normalised tensor (3, image_size, image_size)."""
    pipeline = [
        v2.RandomHorizontalFlip(p=0.5),
        v2.RandomResizedCrop((image_size, image_size), scale=(0.08, 1.0),
                             ratio=(3.0 / 4.0, 4.0 / 3.0), antialias=True),
        v2.PILToTensor(),                                   # uint8 (3, H, W), a plain tensor
        v2.RandomApply([v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4,
                                       hue=0.1)], p=0.8),
        v2.RandomGrayscale(p=0.2),
    ]
    if blur:
        side = max(3, round(image_size / 10))
        side += 1 - side % 2                                # odd
        pipeline.append(v2.RandomApply([v2.GaussianBlur(side, sigma=(0.1, 2.0))], p=0.5))
    pipeline.append(v2.ToDtype(torch.float32, scale=True))  # [0, 255] -> [0, 1]
    pipeline.append(v2.Normalize(mean=list(augment.CIFAR10_MEAN), std=list(augment.CIFAR10_STD)))
    return v2.Compose(pipeline)
''',
    # The target's log-probability picked with gather; the row maximum detached (the
    # log-sum-exp does not depend on the shift, so the gradient is unchanged).
    "softmax_cross_entropy": '''\
def softmax_cross_entropy(logits, targets):
    """Mean of -log softmax(logits)[b, targets[b]] over the batch; logits (B, C), targets (B,)."""
    shift = logits.detach().amax(dim=1, keepdim=True)
    centred = logits - shift                                  # every entry <= 0
    log_normaliser = torch.log(torch.sum(torch.exp(centred), dim=1))
    picked = centred.gather(1, targets.long().unsqueeze(1)).squeeze(1)
    nll = log_normaliser - picked
    return nll.sum() / nll.numel()
''',
    # Dot products divided by the outer product of the norms.
    "cosine_similarity_matrix": '''\
def cosine_similarity_matrix(z):
    """All pairwise cosine similarities of the rows of z: (M, D) -> (M, M)."""
    dots = z @ z.transpose(0, 1)                               # (M, M)
    lengths = torch.linalg.vector_norm(z, dim=1)               # (M,)
    return dots / torch.outer(lengths, lengths).clamp_min(1e-12)
''',
    # Pair by pair with F.cosine_similarity (not the matrix), the positive and the
    # negatives as separate terms: -log(e^pos / (e^pos + sum of e^neg)).
    "nt_xent_loss_naive": '''\
def nt_xent_loss_naive(z_i, z_j, tau):
    """NT-Xent with loops over the 2N anchors; z_i, z_j: (N, D) -> scalar."""
    n_images = z_i.shape[0]
    views = list(z_i) + list(z_j)              # 2N vectors; view a and a + N share an image
    losses = []
    for a in range(2 * n_images):
        b = a + n_images if a < n_images else a - n_images
        positive = torch.exp(F.cosine_similarity(views[a], views[b], dim=0) / tau)
        negatives = 0.0
        for c in range(2 * n_images):
            if c == a or c == b:
                continue
            negatives = negatives + torch.exp(F.cosine_similarity(views[a], views[c], dim=0) / tau)
        losses.append(-torch.log(positive / (positive + negatives)))
    return torch.stack(losses).mean()
''',
    # The diagonal removed (not masked): a (2N, 2N - 1) matrix; the positives read off the
    # two off-diagonal blocks; torch.logsumexp for the denominator.
    "nt_xent_loss": '''\
def nt_xent_loss(z_i, z_j, tau):
    """NT-Xent (SimCLR) for two batches of projections z_i, z_j: (N, D) -> scalar."""
    n = z_i.shape[0]
    unit = F.normalize(torch.cat((z_i, z_j), dim=0), dim=1)
    sim = unit @ unit.T / tau                                    # (2N, 2N)
    positives = torch.cat((torch.diagonal(sim, offset=n),        # sim[k, k + N]
                           torch.diagonal(sim, offset=-n)))      # sim[k + N, k]
    off_diagonal = ~torch.eye(2 * n, dtype=torch.bool, device=sim.device)
    others = sim[off_diagonal].reshape(2 * n, 2 * n - 1)         # row a without sim[a, a]
    return (torch.logsumexp(others, dim=1) - positives).mean()
''',
    # SimCLR v1's head (the lecture allows it): a biased hidden layer, ReLU, a linear output;
    # named layers and a functional ReLU instead of a Sequential.
    "projection_head": '''\
class ProjectionHead(nn.Module):
    """g: h (B, in_dim) -> z (B, out_dim), one hidden layer of size hidden_dim."""

    def __init__(self, in_dim, hidden_dim, out_dim):
        super().__init__()
        self.hidden = nn.Linear(in_dim, hidden_dim)
        self.output = nn.Linear(hidden_dim, out_dim)

    def forward(self, h):
        return self.output(F.relu(self.hidden(h)))
''',
}
