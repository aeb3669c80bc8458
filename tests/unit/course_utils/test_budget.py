"""course_utils.budget: the throughput probe and the epochs that fit a time budget."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import budget
from course_utils.budget import epochs_within, plan_epochs, seconds_per_step
from course_utils.train import fit

from test_train import CPU, STEPS_PER_EPOCH, regression_problem


def batch_norm_problem():
    """A model with running statistics and an Adam state: what a probe must not change."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    batches = [(torch.randn(16, 4) + 3, torch.randn(16, 1)) for _ in range(8)]

    def step_fn(batch):
        x, y = batch
        return F.mse_loss(model(x), y)

    fit(step_fn, batches, optimizer, max_steps=2, device=CPU, progress=False)   # an Adam state
    return model, optimizer, step_fn, batches


def test_the_probe_leaves_weights_statistics_and_optimizer_as_they_were():
    model, optimizer, step_fn, batches = batch_norm_problem()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    adam = {k: v.clone() for k, v in optimizer.state[model[0].weight].items()}
    lr = optimizer.param_groups[0]["lr"]
    seconds = seconds_per_step(step_fn, batches, optimizer, modules={"model": model},
                               device=CPU, steps=4, warmup=1)
    assert seconds > 0
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key]), key          # running_mean among them
    for key, value in optimizer.state[model[0].weight].items():
        assert torch.equal(value, adam[key]), key
    assert optimizer.param_groups[0]["lr"] == lr
    # and training afterwards is what it would have been without the probe
    fit(step_fn, batches, optimizer, max_steps=3, device=CPU, progress=False)


def test_the_probe_restores_even_when_a_step_fails():
    model, optimizer, step_fn, batches = batch_norm_problem()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []

    def failing_step(batch):
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError("out of memory")
        return step_fn(batch)

    with pytest.raises(RuntimeError, match="out of memory"):
        seconds_per_step(failing_step, batches, optimizer, modules={"model": model},
                         device=CPU, steps=4, warmup=1)
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key]), key


def test_the_probe_times_the_steps_not_the_warmup(monkeypatch):
    model, optimizer, step_fn, loader = regression_problem()
    seen = []
    seconds_per_step(lambda b: seen.append(1) or step_fn(b), loader, optimizer,
                     modules={"model": model}, device=CPU, steps=5, warmup=2)
    assert len(seen) == 2 + 5


@pytest.mark.parametrize("budget_min, per_epoch_s, max_epochs, expected", [
    (15, 60, 200, 15),        # a minute an epoch: 15 epochs
    (15, 59.9, 200, 15),      # never more than fits
    (15, 1, 200, 200),        # a fast GPU: the most the method's schedule uses
    (15, 3600, 200, 1),       # slower than the budget: one epoch, not zero
    (0.5, 10, 100, 3),
])
def test_the_most_whole_epochs_that_fit(budget_min, per_epoch_s, max_epochs, expected):
    assert epochs_within(budget_min, per_epoch_s, max_epochs) == expected


def test_the_plan_fits_the_budget_at_the_probed_speed():
    plan = plan_epochs(None, 2.0, steps_per_epoch=100, probe=lambda: 0.05, max_epochs=200)
    assert (plan.epochs, plan.source) == (24, "time budget")     # 5 s an epoch, 120 s
    assert plan.minutes == pytest.approx(2.0)
    text = str(plan)
    assert "24 epochs" in text and "time budget 2 min" in text and "ends about" in text
    assert plan.short.startswith("24 epochs, ends about ")


def test_epochs_set_by_hand_win_and_nothing_is_probed():
    def probe():
        raise AssertionError("EPOCHS was set: no probe")

    plan = plan_epochs(7, 15, steps_per_epoch=100, probe=probe, max_epochs=200)
    assert (plan.epochs, plan.source, plan.minutes) == (7, "EPOCHS", None)
    assert str(plan) == "7 epochs, as EPOCHS says"
    assert plan.short == "7 epochs"


def test_a_resumed_run_keeps_the_plan_it_started_with(tmp_path):
    model, optimizer, step_fn, loader = regression_problem()
    fit(step_fn, loader, optimizer, epochs=3, max_steps=STEPS_PER_EPOCH, device=CPU,
        progress=False, checkpoint_dir=tmp_path, modules={"model": model})
    assert budget.checkpoint_epochs(tmp_path) == 3

    def probe():
        raise AssertionError("a checkpoint holds the plan: no probe")

    plan = plan_epochs(None, 15, steps_per_epoch=STEPS_PER_EPOCH, probe=probe,
                       max_epochs=200, checkpoint_dir=tmp_path)
    assert (plan.epochs, plan.source) == (3, "checkpoint")
    # an empty checkpoint folder: the probe decides
    plan = plan_epochs(None, 1, steps_per_epoch=10, probe=lambda: 1.0, max_epochs=200,
                       checkpoint_dir=tmp_path / "new")
    assert (plan.epochs, plan.source) == (6, "time budget")


def test_the_probe_times_after_the_warmup_across_epochs(monkeypatch):
    """A fake clock: the first step (the warm-up) costs 5 s, every other 0.5 s; the loader
    holds 3 batches, so the timed steps run over several epochs."""
    model, optimizer, step_fn, _ = regression_problem()
    clock = [0.0]
    monkeypatch.setattr(budget.time, "perf_counter", lambda: clock[0])
    batches = [(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(3)]

    def slow_first(batch):
        clock[0] += 5.0 if clock[0] == 0.0 else 0.5
        return step_fn(batch)

    seconds = seconds_per_step(slow_first, batches, optimizer, modules={"model": model},
                               device=CPU, steps=7, warmup=1)
    assert seconds == pytest.approx(0.5)
