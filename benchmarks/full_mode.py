"""Run a master notebook in full mode outside Jupyter and record what it reports.

For a GPU machine that has PyTorch but no Jupyter. A short throughput probe first sizes
the number of epochs to a time budget (``--train-minutes``), then every code cell of the
master runs in order with ``COURSE_MODE=full``. Writes the log, the figures and
``results.json`` (accuracies, epochs, minutes) to ``--out``. Example:

    python benchmarks/full_mode.py --dataset folder:.carry/cifar10_jpeg.tar.gz \
        --train-minutes 5 --out /tmp/full01
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def probe_seconds_per_epoch(dataset: str, batch_size: int, steps: int = 25) -> float:
    """Seconds per epoch of SimCLR-shaped work: two PIL-augmented views, ResNet-18 fwd+bwd."""
    import torch
    from torch.utils.data import DataLoader
    from torchvision import transforms as T

    from course_utils import data, models, runtime, train

    arrays = data.load_dataset(dataset, "train")
    views = T.Compose([T.RandomResizedCrop(32, scale=(0.08, 1.0)), T.RandomHorizontalFlip(),
                       T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                       T.RandomGrayscale(0.2), T.ToTensor()])
    workers = runtime.num_workers("full")
    loader = DataLoader(data.TwoViewDataset(arrays, views), batch_size=batch_size,
                        shuffle=True, drop_last=True, num_workers=workers, pin_memory=True)
    device = runtime.get_device()
    model = models.build_encoder("resnet18").to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(batch):
        (x_i, x_j), _ = batch
        return model(torch.cat([x_i, x_j])).float().pow(2).mean()

    train.fit(step, loader, opt, max_steps=5, device=device, progress=False)  # warm-up
    history = train.fit(step, loader, opt, max_steps=steps, device=device, progress=False)
    per_step = history.seconds / history.steps
    per_epoch = per_step * (len(arrays) // batch_size)
    print(f"probe: {workers} workers, {per_step * 1e3:.0f} ms/step, {per_epoch:.1f} s/epoch",
          flush=True)
    return per_epoch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--assignment", default="01_simclr_ntxent")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--train-minutes", type=float, default=5.0)
    p.add_argument("--epochs", type=int, default=None, help="skip the probe")
    p.add_argument("--out", default="build/full_mode")
    args = p.parse_args()

    os.environ["COURSE_MODE"] = "full"
    os.environ["COURSE_DATASET"] = args.dataset
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    epochs = args.epochs
    if epochs is None:
        per_epoch = probe_seconds_per_epoch(args.dataset, batch_size=512)
        epochs = max(1, int(args.train_minutes * 60 / per_epoch))
    print(f"running {args.assignment} in full mode for {epochs} epochs", flush=True)

    from notebook_code import run_cells

    ns, seconds = run_cells(args.assignment, figure_dir=out / "figures",
                            overrides={"EPOCHS": epochs})
    history = ns.get("history")
    report = {
        "assignment": args.assignment, "dataset": args.dataset, "epochs": epochs,
        "device": str(ns.get("DEVICE")),
        "train_minutes": history.seconds / 60 if history else None,
        "total_minutes": (time.perf_counter() - t0) / 60,
        "results": ns.get("results"),
        "label_fractions": {name: {str(k): v for k, v in t.items()}
                            for name, t in (ns.get("table") or {}).items()},
        "cell_seconds": seconds,
    }
    (out / "results.json").write_text(json.dumps(report, indent=1, default=str))
    print(json.dumps({k: v for k, v in report.items() if k != "cell_seconds"}, indent=1,
                     default=str))


if __name__ == "__main__":
    main()
