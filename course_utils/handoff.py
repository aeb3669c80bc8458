"""Trained encoders handed on from notebook to notebook.

Notebooks 01-04 end by saving the encoder they trained (:func:`save_encoder`); notebook 05
loads every one that is there (:func:`load_encoders`) and compares them. A saved encoder is its weights
and how to build it (``models.build_encoder``'s name and, for a ViT, its patch size and
pooling), with the data set and run mode it was trained in: never code, so loading reads
tensors only (``torch.load(weights_only=True)``).

The folder is ``COURSE_ENCODER_DIR`` if set, else ``encoders/`` beside the data cache
(``data.data_dir()``). On Colab, point it at Google Drive to keep the encoders across
sessions: ``os.environ["COURSE_ENCODER_DIR"] = "/content/drive/MyDrive/ssl-course/encoders"``.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .data import data_dir
from .models import build_encoder
from .vit import VisionTransformer

ENV = "COURSE_ENCODER_DIR"
# the encoders notebooks 01-04 hand on: name -> the notebook that trains and saves it
NOTEBOOKS = {"SimCLR": "01_simclr_ntxent", "MoCo": "02_moco_queue", "MAE": "03_mae_masking",
             "DINO": "04_dino_self_distillation"}


def encoder_dir() -> Path:
    """Where encoders are saved and looked for (see the module docstring)."""
    folder = os.environ.get(ENV, "").strip()
    return Path(folder).expanduser() if folder else data_dir().parent / "encoders"


def _file(name: str, folder: Path | None) -> Path:
    return Path(folder or encoder_dir()) / f"{name.lower()}.pt"


def build_spec(encoder: nn.Module, name: str) -> dict:
    """How to build ``encoder`` again: the ``models.build_encoder`` name it was built with,
    and for a ViT its patch size, image size and pooling."""
    spec = {"name": name}
    if isinstance(encoder, VisionTransformer):
        spec.update(patch_size=encoder.patch_size, img_size=encoder.img_size, pool=encoder.pool)
    return spec


def save_encoder(name: str, encoder: nn.Module, built_as: str, *, dataset: str, mode: str,
         folder: Path | None = None) -> Path:
    """Save ``encoder`` (built by ``models.build_encoder(built_as)``) as ``name``; the file."""
    path = _file(name, folder)
    os.makedirs(path.parent, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    torch.save({"spec": build_spec(encoder, built_as), "state_dict": state,
                "dataset": dataset, "mode": mode}, path)
    return path


def load_encoder(name: str, folder: Path | None = None, device: torch.device | str = "cpu"
         ) -> tuple[nn.Module, dict] | None:
    """The encoder saved as ``name`` (in eval mode, on ``device``) and what was saved with it
    (dataset, mode, spec); None when there is none."""
    path = _file(name, folder)
    if not path.exists():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=True)
    spec = dict(saved["spec"])
    encoder = build_encoder(spec.pop("name"), **spec)
    encoder.load_state_dict(saved["state_dict"])
    info = {k: saved[k] for k in ("dataset", "mode")} | {"spec": saved["spec"], "path": path}
    return encoder.to(device).eval(), info


def load_encoders(dataset: str, names=tuple(NOTEBOOKS), folder: Path | None = None,
             device: torch.device | str = "cpu") -> tuple[dict[str, nn.Module], list[str]]:
    """Every encoder of ``names`` saved after training on ``dataset``: (name -> encoder, a
    line for each one missing or trained on other data, saying how to make it)."""
    found, notes = {}, []
    for name in names:
        loaded = load_encoder(name, folder, device)
        run = f"run notebook {NOTEBOOKS[name]} with the same data" if name in NOTEBOOKS else ""
        if loaded is None:
            notes.append(f"{name}: not in {encoder_dir() if folder is None else folder}; {run}")
        elif loaded[1]["dataset"] != dataset:
            notes.append(f"{name}: trained on {loaded[1]['dataset']!r}, not {dataset!r}; {run}")
        else:
            found[name] = loaded[0]
    return found, notes
