"""SimCLR with notebook 01's own code on real CIFAR-10 images: kNN before and after.

The loss, projection head and augmentation are the master notebook's solutions; the
encoder, loop and evaluation are course_utils'. Prints one table, random init against
SimCLR, and the minutes taken. Usage (CPU, a few minutes):

    .venv/bin/python benchmarks/simclr_real_data.py \
        --data ../shared/data/cifar10/cifar10_jpeg.tar.gz --encoder small --epochs 5 --workers 1
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("COURSE_FAST", "1")  # the notebook's own set-up cells stay small

import torch  # noqa: E402

from course_utils.evaluate import evaluate_encoder  # noqa: E402
from course_utils.models import build_encoder  # noqa: E402
from course_utils.runtime import get_device, seed_everything  # noqa: E402
from course_utils.train import fit, steps_for, warmup_cosine  # noqa: E402
from common import load_real_data, real_data_parser, two_view_loader, write_results  # noqa: E402
from notebook_code import run_cells  # noqa: E402

def main():
    p = real_data_parser(__doc__.splitlines()[0], epochs=5, batch_size=256)
    p.add_argument("--optimizer", default="adamw", choices=["sgd", "adamw"])
    p.add_argument("--lr", type=float, default=None,
                   help="default: SGD 0.06 * batch / 128 (lightly), AdamW 2e-3 (fast mode)")
    args = p.parse_args()

    seed_everything(0)
    device = get_device(args.device)
    ns, _ = run_cells("01_simclr_ntxent", until_last_solution=True, skip_tests=True,
                      verbose=False)
    nt_xent_loss, ProjectionHead = ns["nt_xent_loss"], ns["ProjectionHead"]
    simclr_transform = ns["simclr_transform"]

    train, test = load_real_data(args)
    print(f"device {device} | train {len(train)} | test {len(test)} | encoder {args.encoder}")

    random_encoder = build_encoder(args.encoder).to(device)
    before = evaluate_encoder(random_encoder, train, test, device=device)

    encoder = build_encoder(args.encoder)
    head = ProjectionHead(encoder.feature_dim, 512, 128)
    model = torch.nn.Sequential(encoder, head).to(device)
    loader = two_view_loader(train, simclr_transform(32), args)
    if args.optimizer == "sgd":
        lr = args.lr or 0.06 * args.batch_size / 128
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr or 2e-3, weight_decay=1e-6)
    total = steps_for(args.epochs, len(train), args.batch_size)
    scheduler = warmup_cosine(optimizer, total, warmup_steps=total // 20)

    def step(batch):
        (x_i, x_j), _ = batch
        return nt_xent_loss(model(x_i), model(x_j), args.tau)

    t0 = time.perf_counter()
    history = fit(step, loader, optimizer, epochs=args.epochs, scheduler=scheduler,
                  device=device, progress=False)
    minutes = (time.perf_counter() - t0) / 60
    after = evaluate_encoder(encoder, train, test, device=device)

    print(f"loss {history.loss[0]:.3f} -> {history.epoch_loss[-1]:.3f} over {history.steps} steps,"
          f" {minutes:.1f} min training")
    print(f"{'encoder':<14}{'kNN':>8}{'linear':>9}")
    for name, r in [("random init", before), ("SimCLR", after)]:
        print(f"{name:<14}{100 * r['knn']:7.1f}%{100 * r['linear']:8.1f}%")
    write_results(args, minutes=minutes, random_init=before, simclr=after,
                  epoch_loss=history.epoch_loss)


if __name__ == "__main__":
    main()
