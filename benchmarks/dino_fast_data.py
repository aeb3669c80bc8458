"""Why the offline shapes have one colour scheme: notebook 04 (DINO) in fast mode on the
shapes drawn in colours from a palette of N, over seeds.

Each seed runs the master notebook (its own solutions, its fast-mode settings, the collapse
study off) in a fresh process, with ``data.load_dataset("shapes", ...)`` drawing every
image's two colours from ``--palette`` fixed colours instead of the one scheme of
``data.SHAPES_COLOURS``. It records what the notebook measures (kNN, linear probe, the
share of [CLS] attention on the object) and one figure more: how well a kNN on each
encoder's features tells an image's colour pair, which is what DINO, having no negatives,
learns first when two crops of an image share their colours and other images do not.
Compare with the notebook's own record, ``fast_04_dino_self_distillation.json``. Usage, on
a quiet machine (about 1.5 minutes a seed):

    .venv/bin/python benchmarks/dino_fast_data.py --palette 6 --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from records import aggregate, hardware, provenance, write_record  # noqa: E402

NOTEBOOK = "04_dino_self_distillation"
ROOT = Path(__file__).resolve().parent.parent
COLOUR_FIGURE = "colour pair told by kNN"


def colour_pairs(arrays, palette: int):
    """Each image's (foreground, background) palette indices as one label: the nearest
    palette colour to the mean of the object's pixels and of the others."""
    import numpy as np
    import torch
    colours = np.random.default_rng(12345).uniform(0, 255, size=(palette, 3))  # make_shapes'
    inside = arrays.masks[..., None]
    fg = (arrays.images * inside).sum((1, 2)) / inside.sum((1, 2)).clip(1)
    bg = (arrays.images * ~inside).sum((1, 2)) / (~inside).sum((1, 2)).clip(1)
    nearest = lambda c: np.abs(c[:, None] - colours[None]).sum(-1).argmin(1)   # noqa: E731
    return torch.from_numpy(nearest(fg) * palette + nearest(bg))


def one_seed(seed: int, palette: int, results_dir: Path) -> dict:
    """In this process: the notebook on palette shapes; its record plus the colour figure."""
    import torch
    from course_utils import data, evaluate
    from notebook_code import run_cells

    load = data.load_dataset

    def load_palette_shapes(name, split="train", limit=None, **kwargs):
        if name != "shapes":
            return load(name, split, limit=limit, **kwargs)
        n = limit or (5000 if split == "train" else 1000)
        return data.make_shapes(n, seed=(0 if split == "train" else 10_000), palette=palette)

    data.load_dataset = load_palette_shapes
    ns, _ = run_cells(NOTEBOOK, verbose=False,
                      overrides={"SEED": seed, "RUN_COLLAPSE_STUDY": False})
    record = json.loads((results_dir / f"{NOTEBOOK}.json").read_text())
    train, test = ns["train_data"], ns["test_data"]
    y_train, y_test = colour_pairs(train, palette), colour_pairs(test, palette)
    told = {}
    for name, encoder in ns["encoders"].items():
        f_train, _ = evaluate.extract_features(encoder, train, device=ns["DEVICE"])
        f_test, _ = evaluate.extract_features(encoder, test, device=ns["DEVICE"])
        told[name] = round(evaluate.knn_accuracy(f_train, y_train, f_test, y_test,
                                                 k=ns["KNN_K"], num_classes=palette ** 2), 4)
    record[COLOUR_FIGURE] = told
    record.update(seed=seed)
    return record


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--palette", type=int, default=6)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one is not None:                       # the child process of one seed
        record = one_seed(args.one, args.palette, Path(os.environ["COURSE_RESULTS_DIR"]))
        print(json.dumps(record))
        return
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ, COURSE_FAST="1", COURSE_RESULTS_DIR=scratch, MPLBACKEND="Agg")
        for seed in args.seeds:
            out = subprocess.run([sys.executable, __file__, "--palette", str(args.palette),
                                  "--one", str(seed)], env=env, cwd=ROOT, check=True,
                                 capture_output=True, text=True).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(runs[-1]), flush=True)
    command = " ".join(["benchmarks/dino_fast_data.py", "--palette", str(args.palette),
                        "--seeds", *map(str, args.seeds)])
    record = {"notebook": NOTEBOOK, "mode": "fast", "hardware": hardware(),
              "dataset": f"shapes, {args.palette} colours",
              "title": (f"04 DINO, fast mode on shapes whose two colours come from a palette "
                        f"of {args.palette} (the one-scheme data's comparison)"),
              "note": ("the notebook's own fast-mode settings, the collapse study off; "
                       f"'{COLOUR_FIGURE}': a kNN on the features predicting the image's "
                       f"colour pair, of {args.palette ** 2}"),
              **aggregate(runs), **provenance(command, args.seeds)}
    path = write_record(Path(args.out) / f"dino_fast_palette{args.palette}.json", record)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
