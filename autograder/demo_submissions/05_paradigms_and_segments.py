"""Wrong variants for notebook 05: grade_id of a solution cell -> the whole cell, answered wrong.

Each is a mistake students make. tests/e2e/test_autograder.py grades the master with these
cells swapped in and expects exactly their test_<grade_id> cells to lose points, some of
them and not all (tests/unit/autograder/graders/test_grader_segments.py checks which
properties each loses). Keep a few: each costs grading time.
"""

WRONG = {
    # The copies interleaved image by image (0, 1, 2, 3, 0, 1, ...) instead of four blocks:
    # every copy is turned as its label says, only the order is not the text's.
    "rotate_batch": '''\
def rotate_batch(images):
    """(B, C, H, W) -> (4B, C, H, W) rotated copies and their labels (4B,)."""
    turned = torch.stack([torch.rot90(images, k, dims=(2, 3)) for k in range(4)], dim=1)
    labels = torch.arange(4, device=images.device).repeat(len(images))
    return turned.flatten(0, 1), labels
''',
    # A tanh after the last layer, as for pixels in [-1, 1]: normalised pixels are not.
    "decoder": '''\
class Decoder(nn.Module):
    """h (B, feature_dim) -> an image (B, 3, image_size, image_size), in normalised pixels."""

    def __init__(self, feature_dim, width=32, image_size=32):
        super().__init__()
        self.width, self.side = width, image_size // 8
        self.fc = nn.Linear(feature_dim, 4 * width * self.side ** 2)
        self.up = nn.Sequential(
            nn.ConvTranspose2d(4 * width, 2 * width, 4, stride=2, padding=1),
            nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),
            nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, 3, 4, stride=2, padding=1), nn.Tanh())

    def forward(self, h):
        x = self.fc(h).view(len(h), 4 * self.width, self.side, self.side)
        return self.up(x)
''',
    # The grid filled column by column: the right logits, in the wrong cells.
    "segmentation_head": '''\
class SegmentationHead(nn.Module):
    """Patch tokens (B, L, D) -> class logits on the patch grid (B, num_classes, g, g)."""

    def __init__(self, embed_dim, num_classes):
        super().__init__()
        self.linear = nn.Linear(embed_dim, num_classes)

    def forward(self, patch_tokens):
        B, L, _ = patch_tokens.shape
        g = math.isqrt(L)
        logits = self.linear(patch_tokens).permute(0, 2, 1)
        return logits.reshape(B, -1, g, g).transpose(2, 3)
''',
    # align_corners=True: a bilinear upsampling, but not the text's.
    "upsample_logits": '''\
def upsample_logits(logits, size):
    """(B, K, g, g) logits -> (B, K, size, size), bilinear."""
    return F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=True)
''',
    # The ignored pixels count in the mean (as zeros): the loss shrinks with every outline.
    "segmentation_loss": '''\
def segmentation_loss(logits, target):
    """Pixel-wise cross-entropy, the mean over the pixels that count."""
    per_pixel = F.cross_entropy(logits, target, ignore_index=IGNORE, reduction="none")
    return per_pixel.mean()
''',
    # The pixel's corner instead of its centre: no + 0.5.
    "encode_points": '''\
def encode_points(points, labels, image_size, gaussian_matrix, label_embedding):
    """SAM's point encoding: (B, N, 2) pixel coordinates (x, y) -> (B, N, D)."""
    c = 2 * (points / image_size) - 1
    proj = 2 * math.pi * (c @ gaussian_matrix)
    return torch.cat([proj.sin(), proj.cos()], dim=-1) + label_embedding[labels]
''',
    # Every candidate learns its mask (a mean over the three), not only the best one.
    "best_of_three_loss": '''\
def best_of_three_loss(mask_logits, iou_pred, target):
    """Best candidate's bce + dice per image, plus the IoU head's mean squared error."""
    t = target[:, None].expand_as(mask_logits).to(mask_logits.dtype)
    p = mask_logits.sigmoid()
    bce = F.binary_cross_entropy_with_logits(mask_logits, t, reduction="none").mean(dim=(2, 3))
    dice = 1 - (2 * (p * t).sum(dim=(2, 3)) + 1) / (p.sum(dim=(2, 3)) + t.sum(dim=(2, 3)) + 1)
    with torch.no_grad():
        hard, truth = mask_logits > 0, t > 0.5
        inter = (hard & truth).sum(dim=(2, 3)).float()
        union = (hard | truth).sum(dim=(2, 3)).float()
        iou = torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(union))
    return (bce + dice).mean() + F.mse_loss(iou_pred, iou.to(iou_pred.dtype))
''',
}

# Correct answers written differently from the master: tests/e2e/test_autograder.py grades the
# master with all of them in place and expects full marks, so the grader must check what the
# text asks for, not the master's way of doing it.
CORRECT = {
    # A quarter turn as a transpose then a flip of the rows, applied again and again.
    "rotate_batch": '''\
def rotate_batch(images):
    """(B, C, H, W) -> (4B, C, H, W) rotated copies and their labels (4B,)."""
    copies, current = [], images
    for _ in range(4):
        copies.append(current)
        current = current.transpose(2, 3).flip(2)      # one more turn, as torch.rot90(., 1)
    labels = torch.cat([torch.full((len(images),), k, dtype=torch.long, device=images.device)
                        for k in range(4)])
    return torch.cat(copies, dim=0), labels
''',
    # nn.Unflatten after the Linear, the two hidden blocks built in a loop, the last layer
    # kept apart; ReLU in place.
    "decoder": '''\
class Decoder(nn.Module):
    """h (B, feature_dim) -> an image (B, 3, image_size, image_size), in normalised pixels."""

    def __init__(self, feature_dim, width=32, image_size=32):
        super().__init__()
        side = image_size // 8
        self.project = nn.Sequential(nn.Linear(feature_dim, 4 * width * side * side),
                                     nn.Unflatten(1, (4 * width, side, side)))
        channels = [4 * width, 2 * width, width]
        blocks = []
        for c_in, c_out in zip(channels, channels[1:]):
            blocks += [nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        self.blocks = nn.Sequential(*blocks)
        self.to_pixels = nn.ConvTranspose2d(width, 3, kernel_size=4, stride=2, padding=1)

    def forward(self, h):
        return self.to_pixels(self.blocks(self.project(h)))
''',
    # The tokens unflattened to their (g, g) grid first, the Linear on the last axis, the
    # class axis moved to the front.
    "segmentation_head": '''\
class SegmentationHead(nn.Module):
    """Patch tokens (B, L, D) -> class logits on the patch grid (B, num_classes, g, g)."""

    def __init__(self, embed_dim, num_classes):
        super().__init__()
        self.classify = nn.Linear(embed_dim, num_classes)

    def forward(self, patch_tokens):
        side = int(round(patch_tokens.shape[1] ** 0.5))
        grid = patch_tokens.unflatten(1, (side, side))          # (B, g, g, D), row-major
        return self.classify(grid).permute(0, 3, 1, 2)
''',
    # Bilinear interpolation by hand: one weight matrix per axis (source coordinate
    # (i + 0.5) * g / size - 0.5, clamped at 0), applied on both sides.
    "upsample_logits": '''\
def upsample_logits(logits, size):
    """(B, K, g, g) logits -> (B, K, size, size), bilinear, align_corners=False."""
    def weights(n_in):
        position = (torch.arange(size, dtype=torch.float64) + 0.5) * n_in / size - 0.5
        position = position.clamp(min=0)
        low = position.floor().long().clamp(max=n_in - 1)
        high = (low + 1).clamp(max=n_in - 1)
        frac = (position - low).unsqueeze(1)
        matrix = F.one_hot(low, n_in) * (1 - frac) + F.one_hot(high, n_in) * frac
        return matrix.to(logits.dtype).to(logits.device)
    rows, cols = weights(logits.shape[-2]), weights(logits.shape[-1])
    return torch.einsum("ri,bkij,cj->bkrc", rows, logits, cols)
''',
    # log_softmax, the target's entry gathered, a mask of the pixels that count.
    "segmentation_loss": '''\
def segmentation_loss(logits, target):
    """Pixel-wise cross-entropy, the mean over the pixels that count."""
    counts = target != IGNORE
    log_probs = F.log_softmax(logits, dim=1)
    safe = torch.where(counts, target, torch.zeros_like(target))
    picked = log_probs.gather(1, safe.unsqueeze(1)).squeeze(1)
    return -(picked * counts).sum() / counts.sum()
''',
    # The x and y columns taken apart, each meeting its row of the matrix; the label's row
    # chosen with torch.where.
    "encode_points": '''\
def encode_points(points, labels, image_size, gaussian_matrix, label_embedding):
    """SAM's point encoding: (B, N, 2) pixel coordinates (x, y) -> (B, N, D)."""
    x = (2 * points[..., 0] + 1) / image_size - 1
    y = (2 * points[..., 1] + 1) / image_size - 1
    angle = 2 * math.pi * (x.unsqueeze(-1) * gaussian_matrix[0]
                           + y.unsqueeze(-1) * gaussian_matrix[1])
    chosen = torch.where(labels.unsqueeze(-1) == 1, label_embedding[1], label_embedding[0])
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1) + chosen
''',
    # Loops over the images and candidates; bce from log-sigmoids; the IoU as Python
    # numbers.
    "best_of_three_loss": '''\
def best_of_three_loss(mask_logits, iou_pred, target):
    """Best candidate's bce + dice per image, plus the IoU head's mean squared error."""
    n_images, n_candidates = mask_logits.shape[:2]
    best, errors = [], []
    for b in range(n_images):
        truth = target[b].to(mask_logits.dtype)
        losses = []
        for c in range(n_candidates):
            logits = mask_logits[b, c]
            bce = -(truth * F.logsigmoid(logits) + (1 - truth) * F.logsigmoid(-logits)).mean()
            prob = torch.sigmoid(logits)
            dice = 1 - (2 * (prob * truth).sum() + 1) / (prob.sum() + truth.sum() + 1)
            losses.append(bce + dice)
            hard, solid = (logits > 0).tolist(), (truth > 0.5).tolist()
            pairs = [(m, t) for row_m, row_t in zip(hard, solid) for m, t in zip(row_m, row_t)]
            union = sum(m or t for m, t in pairs)
            iou = sum(m and t for m, t in pairs) / union if union else 0.0
            errors.append((iou_pred[b, c] - iou) ** 2)
        best.append(min(losses))
    return torch.stack(best).mean() + torch.stack(errors).mean()
''',
}
