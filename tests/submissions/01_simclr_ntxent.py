"""Wrong variants for notebook 01: grade_id of a solution cell -> the whole cell, answered wrong.

Each is a mistake students make. tests/test_autograder.py grades the master with one of
these cells swapped in, once per entry, and expects exactly test_<grade_id> to lose its
points; `course.py demo` grades the first entry. Keep a few: each costs one grading.
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
