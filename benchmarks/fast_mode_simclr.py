"""Fast mode's question for notebook 01 (issue 14): on the offline shapes, how far above the
random-init encoder does a short SimCLR run get, by the shapes' colours (any, a palette of
N, or the notebooks' one scheme with ``--one-scheme``), over seeds?

The loss, projection head and augmentation are the master notebook's own solutions; the
encoder, loader, loop and evaluation are course_utils'. Prints one JSON line per seed and a
mean and spread per metric. Usage (2 CPU cores, about 2 minutes a seed):

    .venv/bin/python benchmarks/fast_mode_simclr.py --palette 6 --steps 250 --seeds 0 1 2
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

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from course_utils import data, evaluate, models, runtime, train  # noqa: E402
from notebook_code import run_cells  # noqa: E402


def one_seed(args, ns, seed: int) -> dict:
    runtime.seed_everything(seed)
    colours = data.SHAPES_COLOURS if args.one_scheme else None
    train_data = data.make_shapes(args.train, seed=seed, palette=args.palette, colours=colours)
    test_data = data.make_shapes(args.test, seed=seed + 10_000, palette=args.palette,
                                 colours=colours)
    device = torch.device("cpu")
    loader = data.view_loader(train_data, ns["simclr_transform"](32, blur=False), args.batch,
                              two_views=True, device=device)
    encoder = models.SmallConvNet()
    model = nn.Sequential(encoder, ns["ProjectionHead"](encoder.feature_dim,
                                                        encoder.feature_dim, 128))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-6)
    scheduler = train.warmup_cosine(optimizer, args.steps, max(1, args.steps // 20))

    def step(batch):
        (x_i, x_j), _ = batch
        return ns["nt_xent_loss"](model(x_i).float(), model(x_j).float(), args.tau)

    start = time.perf_counter()
    epochs = -(-args.steps // (args.train // args.batch))
    history = train.fit(step, loader, optimizer, epochs=epochs, max_steps=args.steps,
                        scheduler=scheduler, device=device, progress=False)
    row = {"seed": seed, "steps": history.steps,
           "train_s": round(time.perf_counter() - start, 1)}
    runtime.seed_everything(seed + 100)
    for name, enc in (("random init", models.SmallConvNet()), ("SimCLR", encoder)):
        h_train, y_train = evaluate.extract_features(enc, train_data, device=device)
        h_test, y_test = evaluate.extract_features(enc, test_data, device=device)
        for k in args.k:
            row[f"{name} kNN k={k}"] = 100 * evaluate.knn_accuracy(
                h_train, y_train, h_test, y_test, k=k, num_classes=10)
        row[f"{name} linear"] = 100 * evaluate.linear_probe(
            h_train, y_train, h_test, y_test, num_classes=10, device=device)
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--palette", type=int, default=None, help="colours of the shapes (default: any)")
    p.add_argument("--one-scheme", action="store_true",
                   help="every image in data.SHAPES_COLOURS, as the notebooks' offline data")
    p.add_argument("--steps", type=int, default=250)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--train", type=int, default=2000)
    p.add_argument("--test", type=int, default=500)
    p.add_argument("--tau", type=float, default=0.2)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--k", type=int, nargs="+", default=[20, 200])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = p.parse_args()
    ns, _ = run_cells("01_simclr_ntxent", skip_tests=True, verbose=False,
                      until_defined=("nt_xent_loss", "ProjectionHead", "simclr_transform"))
    rows = []
    for seed in args.seeds:
        rows.append(one_seed(args, ns, seed))
        print(json.dumps({k: round(v, 1) if isinstance(v, float) else v
                          for k, v in rows[-1].items()}), flush=True)
    colours = "one scheme" if args.one_scheme else f"palette {args.palette}"
    print(f"{colours}, {args.steps} steps, {torch.get_num_threads()} threads, "
          f"{len(rows)} seeds: mean (spread)")
    for key in [k for k in rows[0] if k not in ("seed", "steps")]:
        values = np.array([r[key] for r in rows])
        print(f"  {key:>22}: {values.mean():6.1f} ({values.min():.1f}-{values.max():.1f})")


if __name__ == "__main__":
    main()
