"""The course's losses against lightly's, side by side in one run: agreement and speed.

Our side is the master notebooks' own code (``notebook_code.run_cells``): ``nt_xent_loss``
(01), ``moco_step`` with ``KeyQueue`` (02), ``mae_loss`` (03), ``dino_loss`` +
``update_center`` (04). Lightly's side is ``lightly.loss.NTXentLoss`` (SimCLR; MoCo with
``memory_bank_size=(K, dim)``), ``lightly.loss.DINOLoss``, and for MAE what lightly's MAE
example does (it has no MAE loss class): ``nn.MSELoss`` between the predicted and the target
patches at the masked indices, with ``lightly.models.utils.patchify`` / ``get_at_index``.

For each method it prints, in one run:

1. agreement: both losses on identical float64 inputs (MoCo: the same queue contents, over
   several steps so that the queue wraps; DINO: the same center, over several steps with
   each side updating its own), the absolute difference of the losses and of the gradients;
2. loss-only speed: forward + backward milliseconds on embeddings, median of repeats taken
   alternately (ours, lightly), warm-up excluded;
3. training steps per second on the same model (encoder + head, identical initial
   weights, the same optimizer, the same fixed batches already on the device), ours and
   lightly alternating over several rounds; also both losses at the first step, which
   start from the same weights and must agree.

Sizes (temperature, queue size K, DINO's K and local crops, patch size, mask ratio) are the
notebooks' config, in fast mode on a CPU and full mode on CUDA (--sizes). Needs the
``bench`` extra: pip install -e '.[bench]'.

Usage: python benchmarks/losses_vs_lightly.py [--device cuda] [--encoder resnet18]
       [--batch-size 256] [--steps 20] [--rounds 3] [--out results.json]
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("COURSE_FAST", "1")
# Idle OpenMP threads sleep instead of spinning. With 2 threads on a 2-core machine that
# another job is using, spinning made every small op take ~60 ms here (against ~0.5 ms).
# Set before torch starts OpenMP; both sides run under it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from notebook_code import code_cells, run_cells  # noqa: E402

try:
    import lightly  # noqa: E402
    from lightly.loss import DINOLoss, NTXentLoss  # noqa: E402
    from lightly.models import utils as lightly_utils  # noqa: E402
except ImportError:  # pragma: no cover
    sys.exit("this benchmark needs lightly: pip install -e '.[bench]'")

from course_utils.models import build_encoder  # noqa: E402

IMAGE_SIZE = 32            # CIFAR-10 and shapes, the notebooks' datasets
METHODS = ("SimCLR", "MoCo", "DINO", "MAE")


# ----------------------------------------------------------------------------- helpers

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def load_notebook(assignment: str, names: tuple[str, ...], sizes: str) -> dict:
    """The master's namespace once ``names`` exist; its config cell re-run in ``sizes`` mode."""
    with contextlib.redirect_stdout(io.StringIO()):
        ns, _ = run_cells(assignment, skip_tests=True, verbose=False, until_defined=names)
        if ns["MODE"] != sizes:
            config = next(c["source"] for c in code_cells(assignment)
                          if c["nbgrader"].get("grade_id") == "config")
            old = os.environ.get("COURSE_MODE")
            os.environ["COURSE_MODE"] = sizes
            try:
                scope = dict(ns, MODE=sizes)
                exec(compile(config, f"<{assignment} config>", "exec"), scope)
            finally:
                if old is None:
                    os.environ.pop("COURSE_MODE", None)
                else:
                    os.environ["COURSE_MODE"] = old
            ns = scope       # the functions keep their own globals; only the sizes change
    return ns


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.detach().double() - b.detach().double()).abs().max().item()


def float32_errors(f32: tuple[float, float], reference: float) -> dict:
    """How far each side's float32 loss (ours, lightly) is from our float64 one."""
    return {"f32_err_ours": abs(f32[0] - reference), "f32_err_lightly": abs(f32[1] - reference)}


def loss_and_grad(fn, leaf: torch.Tensor):
    """fn(x) on a fresh copy x of leaf: (loss as float, d loss / d x)."""
    x = leaf.detach().clone().requires_grad_(True)
    loss = fn(x)
    (grad,) = torch.autograd.grad(loss, x)
    return loss.item(), grad


def time_pair(fn_ours, fn_lightly, repeats: int, device: torch.device, warmup: int = 2):
    """Median milliseconds of each function, called alternately; warm-up calls excluded."""
    times = {"ours": [], "lightly": []}
    for i in range(warmup + repeats):
        order = [("ours", fn_ours), ("lightly", fn_lightly)]
        if i % 2:
            order.reverse()
        for name, fn in order:
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            if i >= warmup:
                times[name].append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times["ours"]), statistics.median(times["lightly"])


def lightly_mae_criterion(imgs, pred, idx_mask, patch_size):
    """What lightly's MAE example does: MSELoss on the masked patches only. (The example
    gathers at ``idx_mask - 1`` because its indices count a class token; ours do not.)"""
    target = lightly_utils.get_at_index(lightly_utils.patchify(imgs, patch_size), idx_mask)
    return nn.functional.mse_loss(lightly_utils.get_at_index(pred, idx_mask), target)


def mask_indices(mask: torch.Tensor) -> torch.Tensor:
    """(N, L) 0/1 mask with the same count per row -> (N, n_masked) indices of the ones."""
    return mask.bool().nonzero()[:, 1].view(len(mask), -1)


# ----------------------------------------------------------------------------- agreement

def agree_simclr(nb, cfg, device, batch):
    g = torch.Generator().manual_seed(0)
    dim, tau = cfg["PROJ_DIM"], cfg["TAU"]
    z_i = torch.randn(batch, dim, generator=g, dtype=torch.float64).to(device)
    z_j = (z_i.cpu() + 0.5 * torch.randn(batch, dim, generator=g, dtype=torch.float64)).to(device)
    crit = NTXentLoss(temperature=tau)
    ours, g_ours = loss_and_grad(lambda x: nb["nt_xent_loss"](x, z_j, tau), z_i)
    theirs, g_theirs = loss_and_grad(lambda x: crit(x, z_j), z_i)
    f32 = (nb["nt_xent_loss"](z_i.float(), z_j.float(), tau).item(),
           crit(z_i.float(), z_j.float()).item())
    return {"ours": ours, "lightly": theirs, "diff": abs(ours - theirs),
            "grad_diff": max_abs(g_ours, g_theirs), **float32_errors(f32, ours),
            "aligned": "nothing to align"}


def agree_moco(nb, cfg, device, batch, queue_size, steps=None):
    """Several steps of both on the same (q, k); our queue's initial keys copied into
    lightly's bank; each side then enqueues its own keys."""
    dim, tau = cfg["PROJ_DIM"], cfg["TAU"]
    steps = steps or math.ceil(2 * queue_size / batch) + 1       # the queue wraps twice
    g = torch.Generator().manual_seed(1)
    with default_dtype(torch.float64):                           # our queue, in float64
        queue = nb["KeyQueue"](dim, queue_size, device=device)
    crit = NTXentLoss(temperature=tau, memory_bank_size=(queue_size, dim)).to(device).double()
    with torch.no_grad():
        crit.memory_bank.bank.copy_(queue.keys)                  # same layout: (K, dim)
    queue32 = nb["KeyQueue"](dim, queue_size, device=device)      # float32 copies, first step
    queue32.enqueue(queue.keys.float())                          # all K slots, from slot 0
    crit32 = NTXentLoss(temperature=tau, memory_bank_size=(queue_size, dim)).to(device)
    with torch.no_grad():
        crit32.memory_bank.bank.copy_(queue.keys)
    identity = nn.Identity()   # moco_step on embeddings: identity encoders, no parameters
    diffs, grad_diffs, first = [], [], None
    for _ in range(steps):
        q = torch.randn(batch, dim, generator=g, dtype=torch.float64)
        k = (q + 0.5 * torch.randn(batch, dim, generator=g, dtype=torch.float64)).to(device)
        q = q.to(device)
        if first is None:
            q32 = q.float().requires_grad_(True)
            f32 = (nb["moco_step"](q32, k.float(), identity, identity, queue32, 0.0, tau).item(),
                   crit32(q32, k.float()).item())
        ours, g_ours = loss_and_grad(
            lambda x: nb["moco_step"](x, k, identity, identity, queue, 0.0, tau), q)
        theirs, g_theirs = loss_and_grad(lambda x: crit(x, k), q)   # x requires grad: enqueues
        first = first or (ours, theirs)
        diffs.append(abs(ours - theirs))
        grad_diffs.append(max_abs(g_ours, g_theirs))
    diverged = next((i + 1 for i, d in enumerate(diffs) if d > 1e-9), None)
    return {"ours": first[0], "lightly": first[1], "diff": max(diffs),
            "grad_diff": max(grad_diffs), **float32_errors(f32, first[0]),
            "steps": steps, "queue_size": queue_size,
            "first_step_over_1e-9": diverged,
            "queue_diff_end": max_abs(queue.keys, crit.memory_bank.bank),
            "aligned": f"our queue copied into lightly's bank; {steps} steps, each side "
                       "enqueueing its own keys"}


def agree_dino(nb, cfg, device, batch, out_dim, n_local, steps=3):
    """Several steps on the same outputs; the same starting center, then each side updates
    its own (ours: update_center after the loss; lightly: inside forward)."""
    st, tt, cm = cfg["STUDENT_TEMP"], cfg["TEACHER_TEMP"], cfg["CENTER_MOMENTUM"]
    n_crops = 2 + n_local
    g = torch.Generator().manual_seed(2)
    center = (0.1 * torch.randn(1, out_dim, generator=g, dtype=torch.float64)).to(device)
    crit = {name: DINOLoss(output_dim=out_dim, warmup_teacher_temp=tt, teacher_temp=tt,
                           student_temp=st, center_momentum=cm).to(device).double()
            for name in ("as_is", "f64_temp")}
    for c in crit.values():
        c.center.copy_(center.view(1, 1, -1))                     # lightly's center: (1, 1, K)
    rows = []
    for _ in range(steps):
        # std 0.25: about what a fresh Linear head on the small encoder puts out
        t = 0.25 * torch.randn(2 * batch, out_dim, generator=g, dtype=torch.float64).to(device)
        s = 0.25 * torch.randn(n_crops * batch, out_dim, generator=g,
                               dtype=torch.float64).to(device)
        if not rows:                                                  # float32, first step
            crit32 = DINOLoss(output_dim=out_dim, warmup_teacher_temp=tt, teacher_temp=tt,
                              student_temp=st, center_momentum=cm).to(device)
            crit32.center.copy_(center.view(1, 1, -1))
            f32 = (nb["dino_loss"](s.float(), t.float(), center.float(), st, tt).item(),
                   crit32(list(t.float().chunk(2)), list(s.float().chunk(n_crops))).item())
        ours, g_ours = loss_and_grad(lambda x: nb["dino_loss"](x, t, center, st, tt), s)
        center = nb["update_center"](center, t, cm)
        as_is, _ = loss_and_grad(
            lambda x: crit["as_is"](list(t.chunk(2)), list(x.chunk(n_crops))), s)
        with default_dtype(torch.float64):   # lightly's torch.tensor(teacher_temp): float64
            theirs, g_theirs = loss_and_grad(
                lambda x: crit["f64_temp"](list(t.chunk(2)), list(x.chunk(n_crops))), s)
        rows.append((ours, theirs, abs(ours - theirs), max_abs(g_ours, g_theirs),
                     abs(ours - as_is), max_abs(center.view(-1), crit["f64_temp"].center.view(-1))))
    return {"ours": rows[0][0], "lightly": rows[0][1], "diff": max(r[2] for r in rows),
            "grad_diff": max(r[3] for r in rows), **float32_errors(f32, rows[0][0]),
            "steps": steps,
            "diff_float32_temperature": max(r[4] for r in rows),
            "center_diff": max(r[5] for r in rows),
            "aligned": f"same initial center copied into lightly's; {steps} steps; lightly's "
                       "forward under default dtype float64 (see notes)"}


def agree_mae(nb, cfg, device, batch):
    p, ratio = cfg["PATCH_SIZE"], cfg["MASK_RATIO"]
    g = torch.Generator().manual_seed(3)
    imgs = torch.randn(batch, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g, dtype=torch.float64)
    patches = nb["patchify"](imgs, p)
    _, mask, _ = nb["random_masking"](patches, ratio, generator=g)
    pred = patches + 0.3 * torch.randn(patches.shape, generator=g, dtype=torch.float64)
    imgs, mask, pred = imgs.to(device), mask.to(device, torch.float64), pred.to(device)
    idx_mask = mask_indices(mask)
    ours, g_ours = loss_and_grad(lambda x: nb["mae_loss"](imgs, x, mask, p), pred)
    theirs, g_theirs = loss_and_grad(lambda x: lightly_mae_criterion(imgs, x, idx_mask, p), pred)
    f32 = (nb["mae_loss"](imgs.float(), pred.float(), mask.float(), p).item(),
           lightly_mae_criterion(imgs.float(), pred.float(), idx_mask, p).item())
    return {"ours": ours, "lightly": theirs, "diff": abs(ours - theirs),
            "grad_diff": max_abs(g_ours, g_theirs), **float32_errors(f32, ours),
            "patchify_diff": max_abs(nb["patchify"](imgs, p), lightly_utils.patchify(imgs, p)),
            "aligned": "masked indices from our mask; no class-token shift"}


# ----------------------------------------------------------------------------- loss-only speed

def speed_losses(nbs, cfgs, device, batch, sizes, repeats):
    g = torch.Generator().manual_seed(4)

    def rand(*shape, grad=False):
        return torch.randn(*shape, generator=g).to(device).requires_grad_(grad)

    out = {}
    # SimCLR
    nb, cfg = nbs["SimCLR"], cfgs["SimCLR"]
    tau = cfg["TAU"]
    z_i, z_j = rand(batch, cfg["PROJ_DIM"], grad=True), rand(batch, cfg["PROJ_DIM"], grad=True)
    crit = NTXentLoss(temperature=tau)
    out["SimCLR"] = time_pair(lambda: nb["nt_xent_loss"](z_i, z_j, tau).backward(),
                              lambda: crit(z_i, z_j).backward(), repeats, device)
    # MoCo: the notebook's moco_step on embeddings (identity encoders), enqueue included
    nb, cfg = nbs["MoCo"], cfgs["MoCo"]
    dim, tau, K = cfg["PROJ_DIM"], cfg["TAU"], sizes["queue_size"]
    q, k = rand(batch, dim, grad=True), rand(batch, dim)
    queue = nb["KeyQueue"](dim, K, device=device)
    crit = NTXentLoss(temperature=tau, memory_bank_size=(K, dim)).to(device)
    identity = nn.Identity()
    out["MoCo"] = time_pair(
        lambda: nb["moco_step"](q, k, identity, identity, queue, 0.0, tau).backward(),
        lambda: crit(q, k).backward(), repeats, device)
    # DINO: loss + center update on both sides
    nb, cfg = nbs["DINO"], cfgs["DINO"]
    K, n_crops = sizes["out_dim"], 2 + sizes["n_local"]
    st, tt, cm = cfg["STUDENT_TEMP"], cfg["TEACHER_TEMP"], cfg["CENTER_MOMENTUM"]
    s, t = rand(n_crops * batch, K, grad=True), rand(2 * batch, K)
    state = {"center": torch.zeros(1, K, device=device)}
    crit = DINOLoss(output_dim=K, warmup_teacher_temp=tt, teacher_temp=tt, student_temp=st,
                    center_momentum=cm).to(device)

    def dino_ours():
        nb["dino_loss"](s, t, state["center"], st, tt).backward()
        state["center"] = nb["update_center"](state["center"], t, cm)

    out["DINO"] = time_pair(dino_ours,
                            lambda: crit(list(t.chunk(2)), list(s.chunk(n_crops))).backward(),
                            repeats, device)
    # MAE
    nb, cfg = nbs["MAE"], cfgs["MAE"]
    p = cfg["PATCH_SIZE"]
    imgs = rand(batch, 3, IMAGE_SIZE, IMAGE_SIZE)
    L = (IMAGE_SIZE // p) ** 2
    pred = rand(batch, L, 3 * p * p, grad=True)
    _, mask, _ = nb["random_masking"](torch.zeros(batch, L, 1), cfg["MASK_RATIO"], generator=g)
    mask = mask.to(device)
    idx_mask = mask_indices(mask)
    out["MAE"] = time_pair(lambda: nb["mae_loss"](imgs, pred, mask, p).backward(),
                           lambda: lightly_mae_criterion(imgs, pred, idx_mask, p).backward(),
                           repeats, device)
    return out


# ----------------------------------------------------------------------------- training

def optimizer_for(params):
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-6)   # the same for both sides


def images(g, n, size, device):
    return torch.randn(n, 3, size, size, generator=g).to(device)


def train_simclr(nb, cfg, encoder, device, batch, n_batches, g):
    tau = cfg["TAU"]
    enc = build_encoder(encoder)
    model0 = nn.Sequential(enc, nb["ProjectionHead"](enc.feature_dim, enc.feature_dim,
                                                     cfg["PROJ_DIM"])).to(device)
    batches = [(images(g, batch, IMAGE_SIZE, device), images(g, batch, IMAGE_SIZE, device))
               for _ in range(n_batches)]
    crit = NTXentLoss(temperature=tau)

    def make(side):
        model = copy.deepcopy(model0)
        opt = optimizer_for(model.parameters())

        def step(b):
            x_i, x_j = b
            z_i, z_j = model(x_i).float(), model(x_j).float()
            loss = nb["nt_xent_loss"](z_i, z_j, tau) if side == "ours" else crit(z_i, z_j)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss.detach()
        return step
    return make, batches, "encoder + notebook 01's ProjectionHead, two views"


def train_moco(nb, cfg, encoder, device, batch, n_batches, g, queue_size):
    dim, tau, m = cfg["PROJ_DIM"], cfg["TAU"], cfg["MOMENTUM"]
    enc = build_encoder(encoder)
    d = enc.feature_dim
    query0 = nn.Sequential(enc, nn.Linear(d, d), nn.ReLU(), nn.Linear(d, dim)).to(device)
    queue0 = nb["KeyQueue"](dim, queue_size, device=device)
    batches = [(images(g, batch, IMAGE_SIZE, device), images(g, batch, IMAGE_SIZE, device))
               for _ in range(n_batches)]

    def make(side):
        query = copy.deepcopy(query0)
        key = copy.deepcopy(query0).requires_grad_(False)
        opt = optimizer_for(query.parameters())
        queue = copy.deepcopy(queue0)
        crit = NTXentLoss(temperature=tau, memory_bank_size=(queue_size, dim)).to(device)
        with torch.no_grad():
            crit.memory_bank.bank.copy_(queue0.keys)      # the same starting negatives

        def step(b):
            x_q, x_k = b
            if side == "ours":
                loss = nb["moco_step"](x_q, x_k, query, key, queue, m, tau)
            else:
                nb["momentum_update"](query, key, m)
                q = query(x_q)
                with torch.no_grad():
                    k = key(x_k)
                loss = crit(q, k)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss.detach()
        return step
    return make, batches, f"encoder + notebook 02's MLP head, key encoder (m={m}), K={queue_size}"


def train_dino(nb, cfg, encoder, device, batch, n_batches, g, out_dim, n_local):
    st, tt, cm, tm = (cfg["STUDENT_TEMP"], cfg["TEACHER_TEMP"], cfg["CENTER_MOMENTUM"],
                      cfg["TEACHER_MOMENTUM"])
    n_crops = 2 + n_local
    enc = build_encoder(encoder)
    student0 = nn.Sequential(enc, nn.Linear(enc.feature_dim, out_dim)).to(device)
    batches = [[images(g, batch, cfg["GLOBAL_SIZE"], device) for _ in range(2)]
               + [images(g, batch, cfg["LOCAL_SIZE"], device) for _ in range(n_local)]
               for _ in range(n_batches)]

    def make(side):
        student = copy.deepcopy(student0)
        teacher = copy.deepcopy(student0).requires_grad_(False)
        opt = optimizer_for(student.parameters())
        state = {"center": torch.zeros(1, out_dim, device=device)}
        crit = DINOLoss(output_dim=out_dim, warmup_teacher_temp=tt, teacher_temp=tt,
                        student_temp=st, center_momentum=cm).to(device)

        def step(crops):
            global_crops = torch.cat(crops[:2])
            with torch.no_grad():
                t = teacher(global_crops).float()                              # (2B, K)
            s = torch.cat([student(global_crops), student(torch.cat(crops[2:]))]).float()
            if side == "ours":
                loss = nb["dino_loss"](s, t, state["center"], st, tt)
                state["center"] = nb["update_center"](state["center"], t, cm)
            else:
                loss = crit(list(t.chunk(2)), list(s.chunk(n_crops)))      # updates its center
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            nb["ema_update"](student, teacher, tm)
            return loss.detach()
        return step
    return make, batches, (f"encoder + Linear(h, K={out_dim}) head, EMA teacher (m={tm}), "
                           f"2 x {cfg['GLOBAL_SIZE']}px + {n_local} x {cfg['LOCAL_SIZE']}px crops")


def train_mae(nb, cfg, encoder, device, batch, n_batches, g):
    p, ratio = cfg["PATCH_SIZE"], cfg["MASK_RATIO"]
    L, P = (IMAGE_SIZE // p) ** 2, 3 * p * p
    enc = build_encoder(encoder)
    model0 = nn.Sequential(enc, nn.Linear(enc.feature_dim, L * P),
                           nn.Unflatten(1, (L, P))).to(device)
    batches = []
    for _ in range(n_batches):
        imgs = torch.randn(batch, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g)
        patches = nb["patchify"](imgs, p)
        _, mask, _ = nb["random_masking"](patches, ratio, generator=g)
        visible = nb["unpatchify"](patches * (1 - mask).unsqueeze(-1), p)  # removed: zeros
        batches.append((imgs.to(device), visible.to(device), mask.to(device),
                        mask_indices(mask).to(device)))

    def make(side):
        model = copy.deepcopy(model0)
        opt = optimizer_for(model.parameters())

        def step(b):
            imgs, visible, mask, idx_mask = b
            pred = model(visible).float()                                 # (N, L, p*p*3)
            if side == "ours":
                loss = nb["mae_loss"](imgs, pred, mask, p)
            else:
                loss = lightly_mae_criterion(imgs, pred, idx_mask, p)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss.detach()
        return step
    return make, batches, (f"encoder on the image with {ratio:.0%} of its {p}px patches zeroed "
                           f"+ Linear(h, {L} x {P}) decoder to per-patch pixels")


def time_training(make, batches, device, steps, rounds):
    """Steps/s of each side: one warm-up step each (its loss: the first-step agreement),
    then ``rounds`` rounds of ``steps`` steps, alternating which side goes first."""
    sides = {name: make(name) for name in ("ours", "lightly")}
    first = {name: step(batches[0]).item() for name, step in sides.items()}
    seconds, last = {"ours": 0.0, "lightly": 0.0}, {}
    for r in range(rounds):
        for name in (("ours", "lightly") if r % 2 == 0 else ("lightly", "ours")):
            step = sides[name]
            sync(device)
            t0 = time.perf_counter()
            for i in range(steps):
                loss = step(batches[(i + 1) % len(batches)])
            sync(device)
            seconds[name] += time.perf_counter() - t0
            last[name] = loss.item()
    n = steps * rounds
    return {"ours_steps_per_s": n / seconds["ours"], "lightly_steps_per_s": n / seconds["lightly"],
            "first_loss_ours": first["ours"], "first_loss_lightly": first["lightly"],
            "first_loss_diff": abs(first["ours"] - first["lightly"]),
            "last_loss_ours": last["ours"], "last_loss_lightly": last["lightly"]}


# ----------------------------------------------------------------------------- main

NOTES = [
    "SimCLR: lightly orders each row's logits [view-to-other-view (N), view-to-same-view "
    "(N-1)] with label i; ours has 2N columns with self at -inf and target (i+N) mod 2N. "
    "The same logits per row, so the same cross-entropy: nothing aligned.",
    "MoCo: lightly's NTXentLoss(out0, out1) with a bank: out0 is the query, out1 the key; "
    "both normalised inside; the negatives are the bank as it was (a copy), then the "
    "normalised keys are enqueued, but only when out0 requires grad (ours enqueues "
    "whenever moco_step runs). Its bank starts as its own normalised randn draw, stored "
    "(K, dim) like ours and handed out transposed: we copy our queue's keys into it.",
    "MoCo, K not a multiple of N: lightly's bank does not wrap. When a batch crosses the "
    "end it writes only the keys that fit and drops the rest, pointer back to 0; our "
    "KeyQueue wraps them round to the start. The two queues then hold different keys, "
    "and the losses differ from the step after.",
    "DINO: lightly takes lists (teacher views, student views), so every view must have the "
    "same batch size; it excludes the same-index pairs as ours and averages over the same "
    "2(n_crops-1) pairs. Its center is a (1, 1, K) buffer, zeros at start, updated inside "
    "every forward after the loss, including in eval and no_grad calls. Ours is a (1, K) "
    "tensor that the caller updates. It builds the teacher temperature with "
    "torch.tensor(float), which is float32 under the default dtype, so a float64 comparison "
    "sees 0.04 rounded to float32. We run its forward under default dtype float64; "
    "'|diff| with its float32 temperature' shows the size of that effect.",
    "float32: lightly's DINOLoss sums each (teacher view, student view) cross-entropy over "
    "batch x K in one einsum; in float32 on a CPU that sum drifts (measured: ~5e-6 relative at "
    "B=32, K=1024; ~1e-4 at B=256, K=4096), where ours (per-row sums, then means) stays "
    "near 1e-7. The 'f32 err' column and DINO's step-1 |diff| in table 3 are that, not a "
    "difference of formula; the float64 agreement and the gradients are exact.",
    "MAE: lightly has no MAE loss class; its examples use nn.MSELoss on the masked patches "
    "(a mean over masked patches x pixels). That equals ours (the per-patch mean, averaged "
    "over masked patches) because every patch has the same number of pixels. Its examples "
    "gather at idx_mask - 1 (their token indices count a class token); ours take the "
    "indices straight from our mask. Its examples also decode only the masked tokens. Here "
    "both sides share one decoder that predicts every patch. lightly has no norm_pix_loss "
    "option (the notebook's default is off).",
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--encoder", default=None, choices=["small", "resnet18"],
                        help="default: resnet18 on CUDA, small on a CPU")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="N images per step (default 256 on CUDA, 32 on a CPU)")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps per round and side (default 20 on CUDA, 12 on a CPU)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="alternating rounds (default 3 on CUDA, 4 on a CPU)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="loss-only timings per side (default 50 on CUDA, 30 on a CPU)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default 2 on a CPU)")
    parser.add_argument("--sizes", choices=["fast", "full"], default=None,
                        help="the notebooks' config mode for K, temperatures, crops "
                             "(default full on CUDA, fast on a CPU)")
    parser.add_argument("--queue-size", type=int, default=None, help="MoCo K (default: config)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    encoder = args.encoder or ("resnet18" if cuda else "small")
    batch = args.batch_size or (256 if cuda else 32)
    steps = args.steps or (20 if cuda else 12)
    rounds = args.rounds or (3 if cuda else 4)
    repeats = args.repeats or (50 if cuda else 30)
    sizes_mode = args.sizes or ("full" if cuda else "fast")
    threads = args.threads or (None if cuda else 2)
    if threads:
        torch.set_num_threads(threads)

    t_start = time.perf_counter()
    nbs = {
        "SimCLR": load_notebook("01_simclr_ntxent", ("nt_xent_loss", "ProjectionHead"), sizes_mode),
        "MoCo": load_notebook("02_moco_queue", ("KeyQueue", "moco_step", "momentum_update"),
                              sizes_mode),
        "MAE": load_notebook("03_mae_masking", ("mae_loss", "patchify", "unpatchify",
                                                "random_masking"), sizes_mode),
        "DINO": load_notebook("04_dino_self_distillation", ("dino_loss", "update_center",
                                                            "ema_update"), sizes_mode),
    }
    cfgs = nbs   # the config values live in the same namespaces
    sizes = {"queue_size": args.queue_size or nbs["MoCo"]["QUEUE_SIZE"],
             "out_dim": nbs["DINO"]["OUT_DIM"], "n_local": nbs["DINO"]["N_LOCAL"]}
    if sizes["queue_size"] < batch:
        sys.exit(f"MoCo: queue size {sizes['queue_size']} < batch {batch} (KeyQueue refuses)")
    config = {"device": str(device), "torch": torch.__version__, "lightly": lightly.__version__,
              "threads": torch.get_num_threads(), "encoder": encoder, "batch_size": batch,
              "steps": steps, "rounds": rounds, "repeats": repeats, "sizes": sizes_mode,
              "simclr_tau": nbs["SimCLR"]["TAU"], "moco_tau": nbs["MoCo"]["TAU"],
              "moco_queue_size": sizes["queue_size"], "moco_momentum": nbs["MoCo"]["MOMENTUM"],
              "dino_out_dim": sizes["out_dim"], "dino_n_local": sizes["n_local"],
              "dino_temps": [nbs["DINO"]["STUDENT_TEMP"], nbs["DINO"]["TEACHER_TEMP"]],
              "mae_patch_size": nbs["MAE"]["PATCH_SIZE"],
              "mae_mask_ratio": nbs["MAE"]["MASK_RATIO"],
              "optimizer": "AdamW(lr=1e-3, weight_decay=1e-6), both sides",
              "load_average_at_start": os.getloadavg()[0], "cpus": os.cpu_count(),
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    print(f"losses vs lightly | device {device}, torch {torch.__version__}, lightly "
          f"{lightly.__version__}, threads {torch.get_num_threads()}, encoder {encoder}, "
          f"batch {batch}, notebook sizes: {sizes_mode}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs at start, OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY')}")
    print(f"  SimCLR tau {config['simclr_tau']}; MoCo tau {config['moco_tau']}, K "
          f"{sizes['queue_size']}; DINO K {sizes['out_dim']}, {sizes['n_local']} local crops, "
          f"temps {config['dino_temps']}; MAE patch {config['mae_patch_size']}, mask ratio "
          f"{config['mae_mask_ratio']}", flush=True)
    methods = args.methods
    results = {"config": config, "agreement": {}, "loss_ms": {}, "train": {}, "notes": NOTES}

    # 1. agreement, float64
    agree = results["agreement"]
    if "SimCLR" in methods:
        agree["SimCLR"] = agree_simclr(nbs["SimCLR"], cfgs["SimCLR"], device, batch)
    if "MoCo" in methods:
        K = sizes["queue_size"]
        agree["MoCo"] = agree_moco(nbs["MoCo"], cfgs["MoCo"], device, batch, K)
        if K % batch == 0:    # show the wrap-around difference, never hide it
            agree["MoCo, K % N != 0"] = agree_moco(nbs["MoCo"], cfgs["MoCo"], device, batch,
                                                   K + batch // 2)
    if "DINO" in methods:
        agree["DINO"] = agree_dino(nbs["DINO"], cfgs["DINO"], device, batch,
                                   sizes["out_dim"], sizes["n_local"])
    if "MAE" in methods:
        agree["MAE"] = agree_mae(nbs["MAE"], cfgs["MAE"], device, batch)
    print(f"\n1. agreement, float64, batch {batch} (MoCo, DINO: first step's losses, max "
          "|diff| over the steps); f32 err: each side's float32 loss against our float64 one")
    print(f"{'method':<17} {'ours':>19} {'lightly':>19} {'|diff|':>9} {'grad |diff|':>11} "
          f"{'f32 err ours':>12} {'lightly':>8}  extra")
    for name, a in agree.items():
        extra = []
        if "queue_diff_end" in a:
            extra.append(f"K={a['queue_size']}, {a['steps']} steps, queues differ by "
                         f"{a['queue_diff_end']:.1e} at the end"
                         + (f", losses from step {a['first_step_over_1e-9']}"
                            if a["first_step_over_1e-9"] else ""))
        if "center_diff" in a:
            extra.append(f"{a['steps']} steps, centers differ by {a['center_diff']:.1e}; "
                         f"|diff| with its float32 temperature {a['diff_float32_temperature']:.1e}")
        if "patchify_diff" in a:
            extra.append(f"patchify layouts differ by {a['patchify_diff']:.1e}")
        print(f"{name:<17} {a['ours']:19.15f} {a['lightly']:19.15f} {a['diff']:9.1e} "
              f"{a['grad_diff']:11.1e} {a['f32_err_ours']:12.1e} {a['f32_err_lightly']:8.1e}  "
              f"{'; '.join(extra)}", flush=True)

    # 2. loss-only speed
    ms = speed_losses(nbs, cfgs, device, batch, sizes, repeats)
    print(f"\n2. loss only, forward + backward on embeddings, float32, median of {repeats} "
          "(alternating)")
    print(f"{'method':<8} {'ours ms':>9} {'lightly ms':>11} {'ours/lightly':>13}")
    for name in methods:
        o, li = ms[name]
        results["loss_ms"][name] = {"ours": o, "lightly": li, "ratio_ours_over_lightly": o / li}
        print(f"{name:<8} {o:9.3f} {li:11.3f} {o / li:13.2f}", flush=True)

    # 3. training steps per second
    print(f"\n3. training, {encoder} encoder, batch {batch}, {rounds} rounds x {steps} "
          "steps per side (alternating), 1 warm-up step each")
    print(f"{'method':<8} {'ours it/s':>10} {'lightly it/s':>13} {'time ours/lightly':>18} "
          f"{'step-1 loss ours':>17} {'lightly':>10} {'|diff|':>8} {'last: ours':>11} "
          f"{'lightly':>8}")
    builders = {
        "SimCLR": lambda g: train_simclr(nbs["SimCLR"], cfgs["SimCLR"], encoder, device,
                                         batch, 2, g),
        "MoCo": lambda g: train_moco(nbs["MoCo"], cfgs["MoCo"], encoder, device, batch, 2, g,
                                     sizes["queue_size"]),
        "DINO": lambda g: train_dino(nbs["DINO"], cfgs["DINO"], encoder, device, batch, 2, g,
                                     sizes["out_dim"], sizes["n_local"]),
        "MAE": lambda g: train_mae(nbs["MAE"], cfgs["MAE"], encoder, device, batch, 2, g),
    }
    for name in methods:
        torch.manual_seed(0)
        make, batches, setup = builders[name](torch.Generator().manual_seed(5))
        r = time_training(make, batches, device, steps, rounds)
        r["setup"] = setup
        results["train"][name] = r
        ratio = r["lightly_steps_per_s"] / r["ours_steps_per_s"]
        r["time_ratio_ours_over_lightly"] = ratio
        print(f"{name:<8} {r['ours_steps_per_s']:10.2f} {r['lightly_steps_per_s']:13.2f} "
              f"{ratio:18.3f} {r['first_loss_ours']:17.6f} {r['first_loss_lightly']:10.6f} "
              f"{r['first_loss_diff']:8.1e} {r['last_loss_ours']:11.4f} "
              f"{r['last_loss_lightly']:8.4f}", flush=True)
    for name in methods:
        print(f"  {name}: {results['train'][name]['setup']}")

    print("\nnotes:")
    for note in NOTES:
        print("  - " + note)
    results["seconds"] = time.perf_counter() - t_start
    print(f"\n{results['seconds']:.0f} s in all")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
        print("results written to", args.out)


if __name__ == "__main__":
    main()
