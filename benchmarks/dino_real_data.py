"""DINO with notebook 04's own code on real CIFAR-10 images: kNN of the random, student
and teacher ViTs, and the collapse study (teacher entropy and KL without centering or
without sharpening) in numbers.

The whole master notebook runs (exercise solutions, training, kNN, collapse study,
attention maps), in fast mode with the data and sizes below swapped in, so the figures are
those of the notebook's code. Figures (attention maps included) are saved next to the JSON.
Usage (CPU, about 20 minutes with the defaults):

    .venv/bin/python benchmarks/dino_real_data.py \
        --data ../shared/data/cifar10/cifar10_jpeg.tar.gz --epochs 10 --out /tmp/dino04/results.json
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main():
    from common import notebook_parser, run_line, run_notebook, write_results
    p = notebook_parser(__doc__.splitlines()[0], epochs=10, batch_size=64)
    p.add_argument("--n-local", type=int, default=4)
    p.add_argument("--out-dim", type=int, default=1024, help="K")
    p.add_argument("--study-steps", type=int, default=150, help="per collapse-study run (0: skip)")
    args = p.parse_args()

    ns, minutes = run_notebook("04_dino_self_distillation", args, N_LOCAL=args.n_local,
                               OUT_DIM=args.out_dim, STUDY_STEPS=args.study_steps,
                               RUN_COLLAPSE_STUDY=args.study_steps > 0)

    history, dino = ns["history"], ns["dino"]
    print(run_line(args, ns) + f" x {2 + args.n_local} crops | K {args.out_dim} | "
          f"{args.epochs} epochs")
    print(f"DINO: {history.steps} steps, {history.seconds / 60:.1f} min; loss "
          f"{history.loss[0]:.3f} -> {np.mean(history.loss[-10:]):.3f}; teacher entropy "
          f"{np.mean(dino.health.entropy[-10:]):.2f} (ln K {math.log(args.out_dim):.2f}), "
          f"KL {np.mean(dino.health.kl[-10:]):.3f}")
    for name, accs in ns["results"].items():
        print(f"  {name:<14} kNN {100 * accs['knn']:5.1f}%  linear {100 * accs['linear']:5.1f}%")
    study = {}
    for name, (trainer, hist) in ns.get("study", {}).items():
        study[name] = dict(entropy=float(np.mean(trainer.health.entropy[-10:])),
                           kl=float(np.mean(trainer.health.kl[-10:])),
                           loss=float(np.mean(hist.loss[-10:])))
        print(f"  collapse study, {name:<14} entropy {study[name]['entropy']:5.2f}  "
              f"KL {study[name]['kl']:.4f}  loss {study[name]['loss']:.3f}")
    print(f"whole notebook: {minutes:.1f} min")
    write_results(args, results=ns["results"], study=study, minutes=minutes,
                  train_minutes=history.seconds / 60,
                  final={"entropy": float(np.mean(dino.health.entropy[-10:])),
                         "kl": float(np.mean(dino.health.kl[-10:]))})


if __name__ == "__main__":
    main()
