"""course_utils.train: fit, History, checkpoints and resume, quiet grading, schedules."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils.train import History, fit, steps_for, to_device, warmup_cosine

CPU = torch.device("cpu")
STEPS_PER_EPOCH = 8  # 256 samples, batches of 32


def regression_problem(seed=0):
    """y = x @ w + b with a little noise; a linear model learns it in a few epochs."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 4, generator=gen)
    y = x @ torch.tensor([[1.5], [-2.0], [0.5], [3.0]]) + 0.7 + 0.01 * torch.randn(256, 1, generator=gen)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, generator=gen)
    torch.manual_seed(seed)
    model = nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def step_fn(batch):
        inputs, targets = batch
        return F.mse_loss(model(inputs), targets)

    return model, optimizer, step_fn, loader


def test_fit_learns_and_records_a_history():
    model, optimizer, step_fn, loader = regression_problem()
    history = fit(step_fn, loader, optimizer, epochs=5, device=CPU, progress=False)
    assert isinstance(history, History)
    assert history.steps == len(history.loss) == len(history.lr) == 5 * STEPS_PER_EPOCH
    assert len(history.epoch_loss) == 5
    assert history.epoch_loss[-1] < 0.05 * history.epoch_loss[0]
    assert history.lr == [0.1] * history.steps
    assert torch.allclose(model.bias, torch.tensor([0.7]), atol=0.05)


def test_max_steps_stops_mid_epoch_and_after_step_sees_every_step():
    model, optimizer, step_fn, loader = regression_problem()
    seen = []
    history = fit(step_fn, loader, optimizer, epochs=10, max_steps=13, device=CPU,
                  progress=False, after_step=seen.append)
    assert history.steps == 13 and seen == list(range(13))
    assert len(history.epoch_loss) == 2  # one full epoch of 8 steps and one of 5


def test_scheduler_is_stepped_once_per_step():
    model, optimizer, step_fn, loader = regression_problem()
    scheduler = warmup_cosine(optimizer, total_steps=16, warmup_steps=4)
    history = fit(step_fn, loader, optimizer, epochs=2, scheduler=scheduler, device=CPU,
                  progress=False)
    peak = history.lr.index(max(history.lr))
    assert peak == 3 and history.lr[-1] == pytest.approx(0, abs=1e-6)


def test_grad_clip_limits_the_update():
    param = nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.SGD([param], lr=1.0)
    fit(lambda batch: 1000 * param.sum(), [0], optimizer, device=CPU, progress=False,
        grad_clip=0.01)
    assert param.norm().item() == pytest.approx(0.01, rel=1e-4)


def test_checkpoint_resumes_from_the_last_epoch(tmp_path):
    model, optimizer, step_fn, loader = regression_problem()
    first = fit(step_fn, loader, optimizer, epochs=2, device=CPU, progress=False,
                checkpoint_dir=tmp_path, modules={"model": model})
    assert (tmp_path / "last.pt").exists()
    trained = {k: v.clone() for k, v in model.state_dict().items()}

    # A new session: fresh model and optimiser, the same folder, nothing left to train.
    model, optimizer, step_fn, loader = regression_problem(seed=1)
    assert not torch.equal(model.weight, trained["weight"])
    same = fit(step_fn, loader, optimizer, epochs=2, device=CPU, progress=False,
               checkpoint_dir=tmp_path, modules={"model": model})
    assert torch.equal(model.weight, trained["weight"]) and torch.equal(model.bias, trained["bias"])
    assert same.epoch_loss == first.epoch_loss and same.loss == first.loss

    # Asking for more epochs continues where the checkpoint ended.
    seen = []
    more = fit(step_fn, loader, optimizer, epochs=4, device=CPU, progress=False,
               checkpoint_dir=tmp_path, modules={"model": model}, after_step=seen.append)
    assert len(more.epoch_loss) == 4 and more.epoch_loss[:2] == first.epoch_loss
    assert more.steps == 4 * STEPS_PER_EPOCH
    assert seen == list(range(2 * STEPS_PER_EPOCH, 4 * STEPS_PER_EPOCH))
    assert more.epoch_loss[3] < first.epoch_loss[1]


def test_checkpoint_needs_modules(tmp_path):
    model, optimizer, step_fn, loader = regression_problem()
    with pytest.raises(ValueError, match="modules"):
        fit(step_fn, loader, optimizer, device=CPU, progress=False, checkpoint_dir=tmp_path)


def test_non_finite_loss_raises():
    param = nn.Parameter(torch.ones(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    with pytest.raises(FloatingPointError, match="nan"):
        fit(lambda batch: param.sum() * float("nan"), [0, 1], optimizer, device=CPU,
            progress=False)


def test_losses_read_in_blocks_are_every_step_in_order():
    """Losses stay on the device for log_every steps; the history still has each one."""
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.0)
    values = iter(range(100))
    history = fit(lambda batch: param.sum() + next(values), list(range(7)), optimizer,
                  epochs=2, max_steps=11, device=CPU, progress=False, log_every=3)
    assert history.loss == [float(v) for v in range(11)]
    assert history.epoch_loss == [3.0, 8.5]


def test_non_finite_loss_names_its_step_when_read_late():
    param = nn.Parameter(torch.ones(1))
    optimizer = torch.optim.SGD([param], lr=0.0)
    losses = iter([1.0, 2.0, float("inf"), 4.0])
    with pytest.raises(FloatingPointError, match="inf at step 2"):
        fit(lambda batch: param.sum() * next(losses), [0, 1, 2, 3], optimizer, device=CPU,
            progress=False, log_every=4)


def test_progress_bar_goes_to_stderr_only_when_asked(capfd):
    model, optimizer, step_fn, loader = regression_problem()
    fit(step_fn, loader, optimizer, epochs=1, device=CPU, progress=False)
    assert capfd.readouterr().err == ""
    fit(step_fn, loader, optimizer, epochs=1, device=CPU, progress=True)
    assert "train" in capfd.readouterr().err  # the tqdm bar, so the check above means something


def test_grading_mode_writes_nothing_to_stderr(course_env, capfd, tmp_path):
    course_env.setenv("NBGRADER_EXECUTION", "autograde")
    model, optimizer, step_fn, loader = regression_problem()
    fit(step_fn, loader, optimizer, epochs=1, checkpoint_dir=tmp_path, modules={"m": model})
    fit(step_fn, loader, optimizer, epochs=2, checkpoint_dir=tmp_path, modules={"m": model})
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_to_device_moves_nested_tensors_and_keeps_containers():
    batch = {"views": (torch.ones(2), [torch.zeros(1), 3]), "name": "x"}
    moved = to_device(batch, torch.device("meta"))
    views = moved["views"]
    assert isinstance(views, tuple) and isinstance(views[1], list)
    assert views[0].device.type == "meta" and views[1][0].device.type == "meta"
    assert views[1][1] == 3 and moved["name"] == "x"


def _lrs(total, warmup):
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = warmup_cosine(optimizer, total, warmup)
    lrs = []
    for _ in range(total):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def test_warmup_cosine_rises_then_decays_to_zero():
    lrs = _lrs(total=40, warmup=8)
    peak = lrs.index(max(lrs))
    assert peak == 7 and max(lrs) == pytest.approx(1.0, abs=1e-6)
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1:peak + 1]))      # rises
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1:]))      # then falls
    assert lrs[-1] == pytest.approx(0, abs=1e-6)
    assert lrs[peak + 16] == pytest.approx(0.5, abs=0.05)               # halfway down the cosine


def test_warmup_cosine_without_warmup_only_decays():
    lrs = _lrs(total=10, warmup=0)
    assert all(a > b for a, b in zip(lrs, lrs[1:])) and lrs[-1] == pytest.approx(0, abs=1e-6)


def test_steps_for():
    assert steps_for(2, 100, 32) == 6
    assert steps_for(2, 100, 32, drop_last=False) == 8
    assert steps_for(1, 10, 32) == 1
    assert steps_for(2, 100, 32, max_steps=4) == 4 and steps_for(2, 100, 32, max_steps=9) == 6


def test_to_device_channels_last_changes_image_batches_only():
    images, labels = torch.rand(2, 3, 8, 8), torch.tensor([0, 1])
    (moved_images, moved_uint8), moved_labels = to_device(
        ((images, images.to(torch.uint8)), labels), CPU, channels_last=True)
    assert moved_images.is_contiguous(memory_format=torch.channels_last)
    assert not moved_images.is_contiguous()
    assert moved_uint8.is_contiguous() and moved_labels.is_contiguous()
    assert torch.equal(moved_images, images)


@pytest.mark.parametrize("capability,dtype,scaled", [
    ((7, 5), torch.float16, True),     # T4: bfloat16 only emulated
    ((7, 0), torch.float16, True),     # V100
    ((8, 0), torch.bfloat16, False),   # A100
    ((8, 9), torch.bfloat16, False),   # L4
    ((9, 0), torch.bfloat16, False),   # H100
])
def test_precision_follows_the_gpus_capability(monkeypatch, capability, dtype, scaled):
    """bfloat16 only where the GPU has it natively, whatever is_bf16_supported() says (it
    counts emulation, true on a T4); float16 with a gradient scaler below compute 8."""
    from course_utils.train import autocast_for
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    with warnings.catch_warnings():    # without CUDA, autocast and the scaler warn and disable
        warnings.simplefilter("ignore")
        autocast, scaler = autocast_for(torch.device("cuda"))
    assert autocast.fast_dtype == dtype
    assert (scaler is not None) == scaled
    if scaled:
        assert isinstance(scaler, torch.amp.GradScaler)


@pytest.mark.parametrize("device", ["cpu", "mps"])
def test_no_mixed_precision_off_cuda(device):
    from contextlib import nullcontext
    from course_utils.train import autocast_for
    autocast, scaler = autocast_for(torch.device(device))
    assert isinstance(autocast, nullcontext) and scaler is None
    autocast, scaler = autocast_for(torch.device("cuda"), enabled=False)
    assert isinstance(autocast, nullcontext) and scaler is None
