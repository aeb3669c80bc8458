"""How good is a representation? Features, weighted kNN, linear probe, fine-tuning, label
fractions, and where attention falls.

The kNN classifier is the one of InstDisc (Wu et al. 2018) used by lightly's benchmarks:
cosine similarity to every training feature, the k = 200 nearest vote for their class with
weight exp(similarity / 0.1). On the fast mode's 2,000 training images the notebooks use
k = 20: the same share of a class (a tenth) as 200 of CIFAR-10's 5,000 per class.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from torchvision import transforms as T

from .augment import CIFAR10_MEAN, CIFAR10_STD, normalize
from .data import ImageArrays, ImageDataset, label_fraction
from .runtime import get_device
from .train import fit, steps_for, warmup_cosine


@torch.no_grad()
def extract_features(encoder: nn.Module, data: ImageArrays, transform=None,
                     batch_size: int = 512, device: torch.device | None = None,
                     num_workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """h for every image of ``data`` (eval mode, no augmentation): (N, D) and (N,) on the CPU.

    Without a ``transform`` the uint8 images are normalised batch by batch on ``device``
    (what ``eval_transform()`` does to each PIL image, without the PIL round trip).
    """
    device = device or get_device()
    was_training = encoder.training
    encoder.eval()
    feats = []
    if transform is None:
        mean = torch.tensor(CIFAR10_MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR10_STD, device=device).view(1, 3, 1, 1)
        for start in range(0, len(data), batch_size):
            images = torch.from_numpy(data.images[start:start + batch_size]).to(device)
            x = (images.permute(0, 3, 1, 2).float().div(255) - mean) / std
            feats.append(encoder(x).float().cpu())
        labels = torch.from_numpy(data.labels)
    else:
        loader = DataLoader(ImageDataset(data, transform), batch_size=batch_size,
                            shuffle=False, num_workers=num_workers)
        batch_labels = []
        for x, y in loader:
            feats.append(encoder(x.to(device)).float().cpu())
            batch_labels.append(y)
        labels = torch.cat(batch_labels)
    encoder.train(was_training)
    return torch.cat(feats), labels


@torch.no_grad()
def knn_predict(train_feats: torch.Tensor, train_labels: torch.Tensor,
                test_feats: torch.Tensor, num_classes: int, k: int = 200,
                temperature: float = 0.1, chunk_size: int = 1024) -> torch.Tensor:
    """Weighted kNN class predictions (N_test,) from cosine similarities."""
    bank = F.normalize(train_feats.float(), dim=1)
    k = min(k, len(bank))
    preds = []
    for start in range(0, len(test_feats), chunk_size):
        query = F.normalize(test_feats[start:start + chunk_size].float(), dim=1)
        sims, idx = (query @ bank.T).topk(k, dim=1)               # (n, k)
        weights = (sims / temperature).exp()                       # (n, k)
        votes = torch.zeros(len(query), num_classes)
        votes.scatter_add_(1, train_labels[idx].long(), weights)   # sum weights per class
        preds.append(votes.argmax(dim=1))
    return torch.cat(preds)


def knn_accuracy(train_feats, train_labels, test_feats, test_labels, k: int = 200,
                 temperature: float = 0.1, num_classes: int | None = None) -> float:
    """Top-1 accuracy (0..1) of the weighted kNN classifier."""
    num_classes = num_classes or int(max(train_labels.max(), test_labels.max())) + 1
    preds = knn_predict(train_feats, train_labels, test_feats, num_classes, k, temperature)
    return (preds == test_labels).float().mean().item()


def linear_probe(train_feats, train_labels, test_feats, test_labels, epochs: int = 100,
                 lr: float = 1e-2, weight_decay: float = 1e-4, batch_size: int = 1024,
                 num_classes: int | None = None, seed: int = 0,
                 device: torch.device | None = None) -> float:
    """Accuracy (0..1) of a linear classifier trained on frozen, standardised features."""
    device = device or get_device()
    num_classes = num_classes or int(max(train_labels.max(), test_labels.max())) + 1
    mean, std = train_feats.mean(0), train_feats.std(0) + 1e-6
    xtr = ((train_feats - mean) / std).to(device)
    xte = ((test_feats - mean) / std).to(device)
    ytr = train_labels.long().to(device)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):            # the probe's own start: ``seed``
        torch.manual_seed(seed)                        # decides it, not the global RNG
        clf = nn.Linear(xtr.shape[1], num_classes)
    clf = clf.to(device)
    opt = torch.optim.AdamW(clf.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, int(np.ceil(len(xtr) / batch_size)))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps_per_epoch)
    for _ in range(epochs):
        order = torch.randperm(len(xtr), generator=gen).to(device)
        for start in range(0, len(xtr), batch_size):
            idx = order[start:start + batch_size]
            loss = F.cross_entropy(clf(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        return (clf(xte).argmax(1).cpu() == test_labels).float().mean().item()


def finetune_transform(image_size: int) -> T.Compose:
    """The light supervised augmentation of fine-tuning: 4-pixel padded crop and flip."""
    return T.Compose([T.RandomCrop(image_size, padding=4), T.RandomHorizontalFlip(),
                      T.ToTensor(), normalize()])


def fine_tune(encoder: nn.Module, train: ImageArrays, test: ImageArrays, epochs: int = 10,
              lr: float = 1e-3, weight_decay: float = 0.05, batch_size: int = 128,
              max_steps: int | None = None, transform=None, num_workers: int = 0,
              seed: int = 0, device: torch.device | None = None,
              progress: bool | None = None) -> float:
    """Test accuracy (0..1) after training a copy of ``encoder`` and a linear head, end to end.

    Unlike the linear probe every weight moves, so this measures how good a *starting
    point* the representation is. ``encoder`` itself is left untouched.
    """
    device = device or get_device()
    generator = torch.Generator().manual_seed(seed)
    net = copy.deepcopy(encoder)
    head = nn.Linear(net.feature_dim, train.num_classes)
    model = nn.Sequential(net, head).to(device).train()
    transform = transform or finetune_transform(train.images.shape[1])
    loader = DataLoader(ImageDataset(train, transform), batch_size=batch_size, shuffle=True,
                        drop_last=len(train) >= batch_size, num_workers=num_workers,
                        generator=generator)
    total = steps_for(epochs, len(train), batch_size, drop_last=len(train) >= batch_size)
    total = min(total, max_steps) if max_steps is not None else total
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = warmup_cosine(optimizer, total, warmup_steps=max(1, total // 10))

    def step(batch):
        x, y = batch
        return F.cross_entropy(model(x), y)

    fit(step, loader, optimizer, epochs=epochs, max_steps=max_steps, scheduler=scheduler,
        device=device, progress=progress, desc="fine-tune")
    feats, labels = extract_features(model, test, device=device)   # logits, in eval mode
    return (feats.argmax(1) == labels).float().mean().item()


def label_fraction_table(train_feats, train_labels, test_feats, test_labels,
                         fractions=(0.01, 0.1, 1.0), seed: int = 0, **probe_kwargs) -> dict:
    """Linear-probe accuracy when only a fraction of the training labels is known."""
    table = {}
    for fraction in fractions:
        idx = torch.from_numpy(label_fraction(train_labels.numpy(), fraction, seed))
        table[fraction] = linear_probe(train_feats[idx], train_labels[idx], test_feats,
                                       test_labels, seed=seed, **probe_kwargs)
    return table


def evaluate_encoder(encoder: nn.Module, train: ImageArrays, test: ImageArrays,
                     linear: bool = True, device: torch.device | None = None, k: int = 200,
                     **probe_kwargs) -> dict:
    """kNN (``k`` votes, t=0.1) and, optionally, linear-probe accuracy of ``encoder``'s h."""
    device = device or get_device()
    ftr, ytr = extract_features(encoder, train, device=device)
    fte, yte = extract_features(encoder, test, device=device)
    result = {"knn": knn_accuracy(ftr, ytr, fte, yte, k=k, num_classes=train.num_classes)}
    if linear:
        result["linear"] = linear_probe(ftr, ytr, fte, yte, num_classes=train.num_classes,
                                        device=device, **probe_kwargs)
    return result


def attention_on_mask(attention: torch.Tensor, masks, patch_size: int) -> torch.Tensor:
    """The share of each image's attention mass that falls on the masked pixels.

    ``attention``: (B, heads, grid, grid) non-negative weights over the patches, averaged
    over the heads; ``masks``: (B, H, W) booleans with H = W = grid * patch_size. A patch
    counts by the fraction of its pixels inside the mask, so attention spread evenly over
    the patches scores the mask's area. Returns (B,) shares in [0, 1].
    """
    masks = torch.as_tensor(np.asarray(masks), dtype=torch.float32)
    inside = F.avg_pool2d(masks[:, None], patch_size)[:, 0]            # (B, grid, grid)
    weights = attention.float().mean(dim=1)                             # (B, grid, grid)
    if weights.shape != inside.shape:
        raise ValueError(f"attention grid {tuple(weights.shape[1:])} does not match masks "
                         f"{tuple(masks.shape[1:])} cut into {patch_size}-pixel patches")
    return (weights * inside).sum(dim=(1, 2)) / weights.sum(dim=(1, 2))
