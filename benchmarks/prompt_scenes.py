"""Does DINO's encoder help notebook 05's promptable decoder, and on which scenes?

Notebook 05 trains its mask decoder on DINO's frozen patch tokens and, the same way, on the
tokens of an untrained ViT. On the offline shapes both find the clicked shape: every shape
is blue on brown, and colour is enough. This benchmark asks whether a scene made of the
same shapes, where colour is not enough, makes the decoder need DINO's tokens:

* ``one shape``: the notebook's own images (the control);
* ``four shapes``: four shapes of different classes, same colour, apart; the clicked one;
* ``two overlapping``: two shapes of one colour, one in front; the clicked one's visible
  pixels (where the back one is hidden, only its shape says where it ends);
* ``shape on texture``: a solid shape on a backdrop of stripes, checks or dots in the same
  two colours; the shape;
* ``two textures``: a shape filled with one texture on a backdrop of another; the clicked
  region;
* ``like this one``: four shapes of two classes, two each; both of the clicked class.

Per seed, in a fresh process: notebook 04 trains DINO (its own code, fast mode, the
collapse study off, ``--dino-epochs`` epochs); then for each scene notebook 05's own
``train_mask_decoder`` and ``segment_clicks`` (with its ``MaskDecoder``, ``encode_points``
and ``best_of_three_loss``) train and test the decoder on DINO's teacher and on a copy of
it with its weights drawn afresh, as the notebook does. A scene with several objects is
one training example per object, so that the notebook's clicks (uniform over one mask)
pick the object. Figures: the mean IoU of the chosen mask on new scenes, one click each,
beside the 04 run's kNN and linear probe. Usage, on a quiet machine (about 4 minutes a
seed plus the DINO run: 1 minute at 13 epochs, 10 at 100):

    .venv/bin/python benchmarks/prompt_scenes.py --dino-epochs 13 --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from records import aggregate, hardware, provenance, write_record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DINO_NOTEBOOK, NOTEBOOK = "04_dino_self_distillation", "05_paradigms_and_segments"
SIZE, NOISE = 32, 12                      # make_shapes' image side and pixel noise
TRAIN_SCENES, TEST_SCENES = 2000, 500     # as fast mode's TRAIN_LIMIT and TEST_LIMIT
DECODER_NAMES = ("encode_points", "MaskDecoder", "two_way_attention", "best_of_three_loss",
                 "train_mask_decoder", "segment_clicks")

# ---------------------------------------------------------------------------- the scenes


def _grid():
    coords = (np.arange(SIZE) + 0.5) / SIZE * 2 - 1
    return np.meshgrid(coords, coords, indexing="ij")      # yy, xx in [-1, 1]


def shape_mask(rng, label: int, centre, radius: float) -> np.ndarray:
    """One shape of ``label`` (make_shapes' classes), turned at random, as (SIZE, SIZE)."""
    from course_utils.data import _shape_mask
    yy, xx = _grid()
    theta = rng.uniform(0, 2 * np.pi)
    x, y = xx - centre[0], yy - centre[1]
    u, v = np.cos(theta) * x + np.sin(theta) * y, -np.sin(theta) * x + np.cos(theta) * y
    return _shape_mask(int(label), u, v, radius, rng)


def paint(foreground: np.ndarray, rng) -> np.ndarray:
    """The offline colours: foreground pixels blue, the rest brown, with pixel noise."""
    from course_utils.data import SHAPES_COLOURS
    fg, bg = (np.asarray(c, dtype=float) for c in SHAPES_COLOURS)
    image = np.where(foreground[..., None], fg, bg) + rng.normal(0, NOISE, (SIZE, SIZE, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def apart(rng, labels, radius=(0.22, 0.35)) -> list[np.ndarray] | None:
    """Shapes of ``labels``, each a pixel of backdrop away from the others; None when one
    found no room in 50 tries."""
    from course_utils.segments import outline
    import torch
    masks, taken = [], np.zeros((SIZE, SIZE), bool)
    for label in labels:
        for _ in range(50):
            mask = shape_mask(rng, label, rng.uniform(-0.7, 0.7, 2), rng.uniform(*radius))
            grown = mask | outline(torch.as_tensor(mask[None]), 1)[0].numpy()
            if mask.sum() > 8 and not (grown & taken).any():
                break
        else:
            return None
        taken |= grown
        masks.append(mask)
    return masks


def placed(rng, labels) -> list[np.ndarray]:
    """:func:`apart`, drawn again until every shape has its room."""
    while (masks := apart(rng, labels)) is None:
        pass
    return masks


def one_scene(kind: str, rng) -> tuple[np.ndarray, list[np.ndarray]]:
    """An image (SIZE, SIZE, 3) uint8 and its objects' masks: what a click on each means."""
    from course_utils.data import OBJECT_CLASSES
    textures = (5, 6, 7)                                   # stripes, checker, dots
    if kind == "four shapes":
        masks = placed(rng, rng.choice(OBJECT_CLASSES, 4, replace=False))
        return paint(np.any(masks, axis=0), rng), masks
    if kind == "like this one":
        a, b = rng.choice(OBJECT_CLASSES, 2, replace=False)
        masks = placed(rng, [a, a, b, b])
        return paint(np.any(masks, axis=0), rng), [masks[0] | masks[1], masks[2] | masks[3]]
    label = rng.choice(OBJECT_CLASSES)
    if kind == "two overlapping":
        back, front = (shape_mask(rng, lab, rng.uniform(-0.4, 0.4, 2), rng.uniform(0.35, 0.5))
                       for lab in rng.choice(OBJECT_CLASSES, 2, replace=False))
        visible = [m for m in (back & ~front, front) if m.sum() > 4]
        return paint(back | front, rng), visible
    if kind == "shape on texture":
        shape = shape_mask(rng, label, rng.uniform(-0.3, 0.3, 2), rng.uniform(0.45, 0.7))
        texture = shape_mask(rng, rng.choice(textures), (0, 0), 1.0)
        return paint(shape | texture, rng), [shape]
    if kind == "two textures":
        region = shape_mask(rng, label, rng.uniform(-0.3, 0.3, 2), rng.uniform(0.55, 0.8))
        inside, outside = (shape_mask(rng, t, (0, 0), 1.0)
                           for t in rng.choice(textures, 2, replace=False))
        return paint((region & inside) | (~region & outside), rng), [region, ~region]
    raise ValueError(f"unknown scene {kind!r}")


SCENES = ("one shape", "four shapes", "two overlapping", "shape on texture", "two textures",
          "like this one")


def make_scenes(kind: str, n: int, seed: int):
    """(n, SIZE, SIZE, 3) images, and for each object of each: (image index, its mask)."""
    from course_utils import data
    if kind == "one shape":                                # the notebook's own images
        shapes = data.make_shapes(n, SIZE, seed=seed, colours=data.SHAPES_COLOURS)
        return shapes.images, np.arange(n), shapes.masks
    rng = np.random.default_rng(seed)
    images, owner, masks = [], [], []
    for i in range(n):
        image, objects = one_scene(kind, rng)
        images.append(image)
        owner += [i] * len(objects)
        masks += objects
    return np.stack(images), np.asarray(owner), np.stack(masks)


# ---------------------------------------------------------------------------- one seed

def decoder_code(namespace: dict) -> dict:
    """Notebook 05's settings and decoder definitions, without its training cells."""
    from notebook_code import code_cells, run_cells
    ns, _ = run_cells(NOTEBOOK, verbose=False, until_defined=("DECODER_STEPS",))
    ns.update(namespace, IMAGE_SIZE=SIZE, HAS_MASKS=False)   # False: its training is skipped
    for i, cell in enumerate(code_cells(NOTEBOOK)):
        tree = ast.parse(cell["source"])
        defined = {node.name for node in tree.body
                   if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
        if defined & set(DECODER_NAMES):
            exec(compile(tree, f"<{NOTEBOOK} cell {i}>", "exec"), ns)
    return ns


def scene_iou(nb: dict, encoders: dict, kind: str, seed: int) -> dict:
    """The decoder's mean IoU on new scenes of ``kind``, by encoder."""
    import torch
    from PIL import Image
    from course_utils import augment, segments
    to_input = augment.to_model_input()
    train_images, train_owner, train_masks = make_scenes(kind, TRAIN_SCENES, 1000 * seed)
    test_images, test_owner, test_masks = make_scenes(kind, TEST_SCENES, 1000 * seed + 1)

    @torch.no_grad()
    def tokens(encoder, images):                           # as the notebook's patch_tokens
        x = torch.stack([to_input(Image.fromarray(a)) for a in images])
        return torch.cat([encoder.forward_tokens(x[i:i + 250])[:, 1:]
                          for i in range(0, len(x), 250)])

    nb["train_data"] = SimpleNamespace(masks=train_masks)   # one example per object
    test_objects = torch.as_tensor(test_masks)
    points, labels = segments.sample_clicks(test_objects, torch.Generator().manual_seed(1))
    iou = {}
    for name, encoder in encoders.items():
        decoder = nb["train_mask_decoder"](tokens(encoder, train_images)[train_owner], seed=seed)
        found = nb["segment_clicks"](decoder, tokens(encoder, test_images)[test_owner],
                                     points, labels)
        iou[name] = round(segments.mask_iou(found, test_objects).mean().item(), 4)
    return iou


def one_seed(seed: int, epochs: int, scenes, results_dir: Path) -> dict:
    """In this process: notebook 04 trains DINO, then the decoder learns each scene."""
    from notebook_code import run_cells
    from course_utils import runtime
    ns, _ = run_cells(DINO_NOTEBOOK, verbose=False, skip_tests=True,
                      overrides={"SEED": seed, "RUN_COLLAPSE_STUDY": False, "EPOCHS": epochs})
    record = json.loads((results_dir / f"{DINO_NOTEBOOK}.json").read_text())
    teacher = ns["dino"].teacher[0].eval()
    runtime.seed_everything(seed + 3)
    fresh = copy.deepcopy(teacher)
    fresh.init_weights()                                   # as notebook 05's random_vit
    encoders = {"DINO teacher": teacher, "random init": fresh.eval()}
    nb = decoder_code({"SEED": seed})
    for kind in scenes:
        record[f"decoder IoU, {kind}"] = scene_iou(nb, encoders, kind, seed)
        print(kind, record[f"decoder IoU, {kind}"], file=sys.stderr, flush=True)
    return {key: record[key] for key in ("seconds", "knn", "linear", *(
        f"decoder IoU, {k}" for k in scenes))} | {"seed": seed}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dino-epochs", type=int, default=13, help="notebook 04's fast mode: 13")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--scenes", nargs="+", default=list(SCENES), choices=SCENES)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one is not None:                               # the child process of one seed
        record = one_seed(args.one, args.dino_epochs, args.scenes,
                          Path(os.environ["COURSE_RESULTS_DIR"]))
        print(json.dumps(record))
        return
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ, COURSE_FAST="1", COURSE_RESULTS_DIR=scratch, MPLBACKEND="Agg",
                   COURSE_ENCODER_DIR=scratch)
        for seed in args.seeds:
            out = subprocess.run([sys.executable, __file__, "--dino-epochs", str(args.dino_epochs),
                                  "--scenes", *args.scenes, "--one", str(seed)],
                                 env=env, cwd=ROOT, check=True, stdout=subprocess.PIPE,
                                 text=True).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(runs[-1]), flush=True)
    scenes = [] if args.scenes == list(SCENES) else ["--scenes", *(repr(s) for s in args.scenes)]
    command = " ".join(["benchmarks/prompt_scenes.py", "--dino-epochs", str(args.dino_epochs),
                        "--seeds", *map(str, args.seeds), *scenes])
    record = {"notebook": NOTEBOOK, "mode": "fast", "hardware": hardware(),
              "dataset": "scenes of the offline shapes",
              "title": (f"05's promptable decoder on scenes of the offline shapes, DINO trained "
                        f"{args.dino_epochs} epochs by notebook 04 (fast mode: 13)"),
              "note": ("the kNN and linear-probe columns are notebook 04's own figures of that "
                       "run; "
                       "'decoder IoU, <scene>': notebook 05's decoder on the frozen tokens of "
                       "DINO's teacher and of the same ViT re-initialised, mean IoU of the mask "
                       "it rates best, one click per object on new scenes "
                       "(benchmarks/prompt_scenes.py says what each scene is); training "
                       "minutes: DINO's"),
              **aggregate(runs), **provenance(command, args.seeds)}
    path = write_record(Path(args.out) / f"prompt_scenes_dino{args.dino_epochs}.json", record)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
