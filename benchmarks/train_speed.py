"""Training steps per second of notebook 01's SimCLR step under the speed options, side by
side in one run: float32, bfloat16 autocast (AMP), AMP + channels-last, and AMP +
channels-last + ``torch.compile``.

The step is the notebook's own: its ``ProjectionHead`` and ``nt_xent_loss`` (from the
master) on the full-mode encoder, run by ``course_utils.train.fit`` on fixed batches
already on the device, so only the model's arithmetic is compared (augmentation has its
own benchmark, ``augment_speed.py``). Usage:

    .venv/bin/python benchmarks/train_speed.py                       # CUDA: resnet18, N = 512
    .venv/bin/python benchmarks/train_speed.py --device cpu --encoder small --batch-size 64 --steps 5
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

import torch  # noqa: E402
from torch import nn  # noqa: E402

from course_utils import models, train  # noqa: E402
from notebook_code import run_cells  # noqa: E402

VARIANTS = {                       # name -> (amp, channels_last, compile)
    "float32": (False, False, False),
    "AMP (bf16)": (True, False, False),
    "AMP + channels-last": (True, True, False),
    "AMP + channels-last + compile": (True, True, True),
}


def steps_per_second(namespace, variant, args, device) -> float:
    amp, channels_last, compile_model = VARIANTS[variant]
    torch.manual_seed(0)
    encoder = models.build_encoder(args.encoder)
    head = namespace["ProjectionHead"](encoder.feature_dim, encoder.feature_dim, 128)
    model = nn.Sequential(encoder, head).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile_model:
        model = torch.compile(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    nt_xent_loss = namespace["nt_xent_loss"]
    views = torch.rand(2, args.batch_size, 3, 32, 32, device=device)
    batches = [((views[0], views[1]), None)] * (args.warmup + args.steps)

    def step(batch):
        (x_i, x_j), _ = batch
        return nt_xent_loss(model(x_i).float(), model(x_j).float(), 0.5)

    kwargs = dict(device=device, amp=amp, channels_last=channels_last, progress=False)
    train.fit(step, batches[:args.warmup], optimizer, **kwargs)      # compile, cuDNN autotune
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    train.fit(step, batches[:args.steps], optimizer, **kwargs)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return args.steps / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--encoder", default=None, help="default: resnet18 on CUDA, small on CPU")
    p.add_argument("--batch-size", type=int, default=None, help="default: 512 CUDA, 64 CPU")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--variants", nargs="*", default=list(VARIANTS))
    p.add_argument("--out", default=None)
    args = p.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    args.encoder = args.encoder or ("resnet18" if cuda else "small")
    args.batch_size = args.batch_size or (512 if cuda else 64)
    if cuda:
        torch.backends.cudnn.benchmark = True

    namespace, _ = run_cells("01_simclr_ntxent", until_defined=("ProjectionHead", "nt_xent_loss"),
                             verbose=False)
    print(f"SimCLR step, {args.encoder}, N = {args.batch_size} ({2 * args.batch_size} views), "
          f"{device}" + (f" ({torch.cuda.get_device_name(device)})" if cuda else ""), flush=True)
    if not cuda:
        print("(on a CPU train.fit runs no autocast: the AMP rows are float32 there)")
    results = {}
    for variant in args.variants:
        results[variant] = steps_per_second(namespace, variant, args, device)
        views = results[variant] * 2 * args.batch_size
        print(f"{variant:>30}: {results[variant]:7.2f} steps/s, {views:8.0f} views/s, "
              f"{results[variant] / results[args.variants[0]]:5.2f}x {args.variants[0]}",
              flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"device": str(device), "encoder": args.encoder,
                                              "batch_size": args.batch_size,
                                              "steps_per_second": results}, indent=1))


if __name__ == "__main__":
    main()
