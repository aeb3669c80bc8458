"""Augmented views per second: PIL in DataLoader workers against the batched path
(course_utils.batch_augment) and kornia, side by side in one run.

The recipes are the masters' own: notebook 01's ``simclr_transform`` (two views per image)
and notebook 04's ``MultiCropTransform`` (2 global + 6 local crops). The PIL path is what
every notebook uses on a CPU: a DataLoader over the uint8 images with ``--workers`` worker
processes (Colab has 2 cores), batches copied to the device. The batched path keeps the
images on the device and runs the same recipe, read from the same transform by
``batch_augment.translate``. kornia runs the same parameters on the same device (its
ColorJiggle draws one jitter order per batch; ours draws one per image). Usage:

    .venv/bin/python benchmarks/augment_speed.py                 # CUDA if present, else CPU
    .venv/bin/python benchmarks/augment_speed.py --device cpu --threads 2 --batches 10
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("COURSE_FAST", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # idle threads must not spin on 2 cores

import torch  # noqa: E402

from common import DEFAULT_DATA  # noqa: E402
from course_utils import batch_augment, data  # noqa: E402
from notebook_code import run_cells  # noqa: E402


def recipes() -> dict:
    """name -> (transform, two_views), from the master notebooks."""
    simclr, _ = run_cells("01_simclr_ntxent", until_defined=("simclr_transform",), verbose=False)
    dino, _ = run_cells("04_dino_self_distillation", until_defined=("MultiCropTransform",),
                        verbose=False)
    return {"SimCLR 2 views": (simclr["simclr_transform"](32), True),
            "DINO 2+6 crops": (dino["MultiCropTransform"](32, 16, 6), False)}


def kornia_pipeline(augment: batch_augment.BatchAugment):
    """The same ops and parameters as kornia modules (float images in [0, 1])."""
    import kornia.augmentation as K
    from torch import nn

    ba = batch_augment
    modules = []
    for op in augment.ops:
        inner, p = (op.ops, op.p) if isinstance(op, ba.RandomApply) else ([op], 1.0)
        for o in inner:
            if isinstance(o, ba.RandomResizedCrop):
                modules.append(K.RandomResizedCrop(o.size, scale=o.scale, ratio=o.ratio))
            elif isinstance(o, ba.RandomHorizontalFlip):
                modules.append(K.RandomHorizontalFlip(p=o.p))
            elif isinstance(o, ba.ColorJitter):
                b, c, s, h = (r if r is not None else 0.0 for r in o.ranges)
                modules.append(K.ColorJiggle(b, c, s, h, p=p))
            elif isinstance(o, ba.RandomGrayscale):
                modules.append(K.RandomGrayscale(p=o.p))
            elif isinstance(o, ba.GaussianBlur):
                modules.append(K.RandomGaussianBlur(o.kernel_size, o.sigma, p=p))
            elif isinstance(o, ba.RandomSolarize):
                modules.append(K.RandomSolarize(thresholds=0.0, additions=0.0, p=o.p))
            elif isinstance(o, ba.Normalize):
                modules.append(K.Normalize(torch.tensor(o.mean), torch.tensor(o.std)))
            else:
                raise ValueError(f"no kornia equivalent for {o}")
    return nn.Sequential(*modules)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def views_per_second(batches, n_batches: int, device: torch.device) -> float:
    """Views per second over ``n_batches`` of an iterator of view lists (after one warm-up)."""
    it = iter(batches)
    next(it)                                  # worker start-up, first allocations
    sync(device)
    t0, views = time.perf_counter(), 0
    for _ in range(n_batches):
        out = next(it)
        views += sum(len(v) for v in out)
    sync(device)
    return views / (time.perf_counter() - t0)


def pil_batches(arrays, transform, two_views, batch_size, workers, device):
    loader = data.view_loader(arrays, transform, batch_size, two_views=two_views, gpu=False,
                              device=device, num_workers=workers)
    while True:
        for views, _labels in loader:
            yield [v.to(device, non_blocking=True) for v in views]


def batched_batches(arrays, transform, two_views, batch_size, device):
    loader = data.view_loader(arrays, transform, batch_size, two_views=two_views, gpu=True,
                              device=device)
    while True:
        for views, _labels in loader:
            yield views


def kornia_batches(arrays, transform, two_views, batch_size, device):
    gpu_loader = data.view_loader(arrays, transform, batch_size, two_views=two_views,
                                  gpu=True, device=device)
    pipelines = [kornia_pipeline(v).to(device) for v in gpu_loader.views]
    images = gpu_loader.images
    while True:
        idx = torch.randperm(len(images), device=device)[:batch_size]
        x = images[idx].float().div(255)
        yield [pipeline(x) for pipeline in pipelines]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DEFAULT_DATA), help="CIFAR-10 archive, or 'shapes'")
    p.add_argument("--limit", type=int, default=10000)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--workers", type=int, default=2, help="PIL DataLoader workers")
    p.add_argument("--threads", type=int, default=2, help="torch threads (CPU ops)")
    p.add_argument("--no-kornia", action="store_true")
    p.add_argument("--out", default=None)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = "shapes" if args.data == "shapes" else f"folder:{args.data}"
    arrays = data.load_dataset(name, "train", limit=args.limit)
    print(f"{arrays}, batch {args.batch_size}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
          + f", {args.workers} PIL workers, {args.threads} torch threads", flush=True)
    report = {"device": str(device), "batch_size": args.batch_size, "workers": args.workers,
              "threads": args.threads, "data": arrays.name, "results": {}}
    for recipe, (transform, two_views) in recipes().items():
        paths = {
            f"PIL, {args.workers} workers": pil_batches(arrays, transform, two_views,
                                                        args.batch_size, args.workers, device),
            "batched (ours)": batched_batches(arrays, transform, two_views, args.batch_size,
                                              device),
        }
        if not args.no_kornia:
            paths["kornia"] = kornia_batches(arrays, transform, two_views, args.batch_size, device)
        speeds = {path: views_per_second(batches, args.batches, device)
                  for path, batches in paths.items()}
        pil = speeds[f"PIL, {args.workers} workers"]
        for path, speed in speeds.items():
            print(f"{recipe:>15} | {path:>16}: {speed:9.0f} views/s  ({speed / pil:5.2f}x PIL)",
                  flush=True)
        report["results"][recipe] = speeds
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
