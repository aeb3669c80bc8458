"""Naive (loops over the formula) against vectorised NT-Xent, side by side in one run.

Both functions come from the master notebook of 01_simclr_ntxent. For each batch size N
(2N embeddings of dimension 128) it times forward + backward and prints milliseconds and
the ratio naive / vectorised. Usage: python benchmarks/nt_xent_speed.py [--device cuda]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("COURSE_FAST", "1")

import torch  # noqa: E402

from notebook_code import run_cells  # noqa: E402


def time_call(fn, z_i, z_j, tau, repeats: int) -> float:
    """Median milliseconds of forward + backward."""
    times = []
    for _ in range(repeats + 1):
        a, b = z_i.clone().requires_grad_(), z_j.clone().requires_grad_()
        if z_i.is_cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn(a, b, tau).backward()
        if z_i.is_cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times[1:])  # the first call warms up


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    ns, _ = run_cells("01_simclr_ntxent", until_last_solution=True, skip_tests=True,
                      verbose=False)
    naive, vectorised = ns["nt_xent_loss_naive"], ns["nt_xent_loss"]
    torch.set_num_threads(max(1, torch.get_num_threads()))
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"dim {args.dim}, forward+backward, median of {args.repeats}")
    print(f"{'N':>5} {'2N':>5} {'naive ms':>10} {'vectorised ms':>14} {'ratio':>8} {'|diff|':>9}")
    gen = torch.Generator().manual_seed(0)
    for n in args.sizes:
        z_i = torch.randn(n, args.dim, generator=gen).to(device)
        z_j = torch.randn(n, args.dim, generator=gen).to(device)
        diff = (naive(z_i, z_j, 0.5) - vectorised(z_i, z_j, 0.5)).abs().item()
        t_naive = time_call(naive, z_i, z_j, 0.5, args.repeats)
        t_vec = time_call(vectorised, z_i, z_j, 0.5, args.repeats)
        print(f"{n:5d} {2 * n:5d} {t_naive:10.2f} {t_vec:14.3f} {t_naive / t_vec:8.1f} "
              f"{diff:9.1e}")


if __name__ == "__main__":
    main()
