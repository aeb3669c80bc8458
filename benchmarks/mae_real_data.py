"""MAE with notebook 03's own code on real CIFAR-10 images: held-out reconstruction loss
against two blind guesses, kNN / linear probe / fine-tuning of the MAE encoder against a
random one and a contrastive ViT trained for the same number of epochs.

The whole master notebook runs (exercise solutions, MAE class, training, evaluation and
section 8's comparison), in fast mode with the data and sizes below swapped in, so the
figures are those of the notebook's code. Figures are saved next to the JSON. Usage (CPU,
about 20 minutes with the defaults):

    .venv/bin/python benchmarks/mae_real_data.py \
        --data ../shared/data/cifar10/cifar10_jpeg.tar.gz --epochs 20 --out /tmp/mae03/results.json
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main():
    from common import notebook_parser, run_line, run_notebook, write_results
    p = notebook_parser(__doc__.splitlines()[0], epochs=20, batch_size=128)
    p.add_argument("--finetune-epochs", type=int, default=5)
    p.add_argument("--mask-ratio", type=float, default=0.75)
    p.add_argument("--norm-pix-loss", action="store_true")
    p.add_argument("--no-comparison", action="store_true", help="MAE only")
    args = p.parse_args()

    ns, minutes = run_notebook("03_mae_masking", args, MASK_RATIO=args.mask_ratio,
                               NORM_PIX_LOSS=args.norm_pix_loss,
                               FINETUNE_EPOCHS=args.finetune_epochs,
                               RUN_COMPARISON=not args.no_comparison)

    print(run_line(args, ns) + f" | {args.epochs} epochs | mask {args.mask_ratio}"
          f" | norm_pix_loss {args.norm_pix_loss}")
    print(f"MAE pre-training: {ns['history'].steps} steps, {ns['history'].seconds / 60:.1f} min")
    if "contrastive_history" in ns:
        print(f"contrastive pre-training: {ns['contrastive_history'].seconds / 60:.1f} min")
    print("held-out loss on removed patches:")
    for name, value in ns["heldout"].items():
        print(f"  {name:<32}{value:8.4f}")
    metrics = ["kNN", "linear", "fine-tune"]
    print(f"{'encoder':<14}" + "".join(f"{m:>11}" for m in metrics))
    for name, accs in ns["results"].items():
        print(f"{name:<14}" + "".join(f"{100 * accs[m]:10.1f}%" if m in accs else f"{'-':>11}"
                                      for m in metrics))
    print(f"whole notebook: {minutes:.1f} min")
    write_results(args, heldout=ns["heldout"], results=ns["results"],
                  mae_minutes=ns["history"].seconds / 60, minutes=minutes,
                  loss=[ns["history"].loss[0], ns["history"].epoch_loss[-1]])


if __name__ == "__main__":
    main()
