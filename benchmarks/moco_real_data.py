"""MoCo with notebook 02's own code on real CIFAR-10 images: kNN of random init, MoCo and,
at the same (small) batch and budget, SimCLR with notebook 01's NT-Xent.

KeyQueue, moco_step (with momentum_update and moco_logits) and the augmentation are the
master notebook's; encoder, loop and evaluation are course_utils'. Prints one table and the
minutes taken. Usage (CPU, several minutes):

    .venv/bin/python benchmarks/moco_real_data.py \
        --data ../shared/data/cifar10/cifar10_jpeg.tar.gz --batch-size 64 --epochs 3 --workers 1
"""
from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("COURSE_FAST", "1")  # the notebook's own set-up cells stay small

import torch  # noqa: E402
from torch import nn  # noqa: E402

from course_utils.evaluate import evaluate_encoder  # noqa: E402
from course_utils.models import build_encoder  # noqa: E402
from course_utils.runtime import get_device, seed_everything  # noqa: E402
from course_utils.train import fit, steps_for, warmup_cosine  # noqa: E402
from common import load_real_data, real_data_parser, two_view_loader, write_results  # noqa: E402
from notebook_code import run_cells  # noqa: E402

def main():
    p = real_data_parser(__doc__.splitlines()[0], epochs=3, batch_size=64)
    p.add_argument("--queue-size", type=int, default=4096)
    p.add_argument("--momentum", type=float, default=0.99)
    p.add_argument("--lr", type=float, default=2e-3, help="AdamW (as in fast mode)")
    p.add_argument("--no-simclr", action="store_true", help="skip the SimCLR comparison")
    args = p.parse_args()

    device = get_device(args.device)
    # Up to the notebook's own augmentation, defined after the exercises.
    ns, _ = run_cells("02_moco_queue", skip_tests=True, verbose=False,
                      until_defined=("KeyQueue", "moco_step", "moco_transform"))
    KeyQueue, moco_step, moco_transform = ns["KeyQueue"], ns["moco_step"], ns["moco_transform"]
    train, test = load_real_data(args)
    print(f"device {device} | train {len(train)} | test {len(test)} | encoder {args.encoder} | "
          f"batch {args.batch_size} | K {args.queue_size} | m {args.momentum}")
    seed_everything(1)
    results = {"random init": evaluate_encoder(build_encoder(args.encoder).to(device), train,
                                               test, linear=False, device=device)}
    total = steps_for(args.epochs, len(train), args.batch_size)

    def train_model(name, make_step, params, encoder):
        loader = two_view_loader(train, moco_transform, args)
        optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-6)
        scheduler = warmup_cosine(optimizer, total, warmup_steps=max(1, total // 20))
        t0 = time.perf_counter()
        history = fit(make_step, loader, optimizer, epochs=args.epochs, scheduler=scheduler,
                      device=device, progress=False)
        minutes = (time.perf_counter() - t0) / 60
        results[name] = evaluate_encoder(encoder, train, test, linear=False, device=device)
        results[name].update(minutes=minutes, loss=[history.loss[0], history.epoch_loss[-1]])
        print(f"{name}: loss {history.loss[0]:.3f} -> {history.epoch_loss[-1]:.3f}, "
              f"{history.steps} steps, {minutes:.1f} min", flush=True)

    def mlp_on(encoder):
        d = encoder.feature_dim
        return nn.Sequential(encoder, nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 128)).to(device)

    seed_everything(0)
    encoder = build_encoder(args.encoder)
    query = mlp_on(encoder)
    key = copy.deepcopy(query).requires_grad_(False)
    queue = KeyQueue(128, args.queue_size, device=device)
    train_model("MoCo", lambda b: moco_step(b[0][0], b[0][1], query, key, queue, args.momentum,
                                            args.tau), query.parameters(), encoder)
    if not args.no_simclr:
        nt_xent_loss = run_cells("01_simclr_ntxent", until_last_solution=True, skip_tests=True,
                                 verbose=False)[0]["nt_xent_loss"]
        seed_everything(0)
        encoder = build_encoder(args.encoder)
        model = mlp_on(encoder)
        train_model("SimCLR", lambda b: nt_xent_loss(model(b[0][0]), model(b[0][1]), args.tau),
                    model.parameters(), encoder)
    print(f"{'encoder':<14}{'kNN':>8}")
    for name, r in results.items():
        print(f"{name:<14}{100 * r['knn']:7.1f}%")
    write_results(args, results=results)


if __name__ == "__main__":
    main()
