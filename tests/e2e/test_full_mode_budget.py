"""Full mode's time budget, in each master's own training cell: the throughput probe sizes
the run, and the schedules the run was planned with end with it.

Full mode normally means CIFAR-10 on a GPU; here COURSE_MODE=full runs it on the CPU with
the offline shapes and small sizes swapped in, so that the notebook code that decides the
epochs is what runs.
"""

import pytest

from notebook_code import run_cells

SMALL = dict(TRAIN_LIMIT=256, TEST_LIMIT=64, BATCH_SIZE=32, MAX_EPOCHS=2)
STEPS_PER_EPOCH = 256 // 32
OVERRIDES = {
    "01_simclr_ntxent": dict(ENCODER="small"),
    "02_moco_queue": dict(ENCODER="small", QUEUE_SIZE=64, RUN_EXPERIMENTS=False),
    "03_mae_masking": dict(VIT="vit_micro", RUN_COMPARISON=False),
    "04_dino_self_distillation": dict(VIT="vit_micro", OUT_DIM=256, N_LOCAL=2,
                                      RUN_COLLAPSE_STUDY=False),
}


def train_in_full_mode(monkeypatch, assignment, **overrides):
    monkeypatch.setenv("COURSE_MODE", "full")
    monkeypatch.setenv("COURSE_DATASET", "shapes")
    monkeypatch.delenv("COURSE_FAST", raising=False)
    ns, _ = run_cells(assignment, skip_tests=True, verbose=False,
                      overrides={**SMALL, **OVERRIDES[assignment], **overrides},
                      until_defined=("history",))
    return ns


@pytest.mark.notebook
@pytest.mark.parametrize("assignment", sorted(OVERRIDES))
def test_the_probe_sizes_the_run_and_its_schedules_finish(monkeypatch, assignment):
    ns = train_in_full_mode(monkeypatch, assignment, TIME_BUDGET_MIN=30)
    plan, history = ns["plan"], ns["history"]
    assert ns["MODE"] == "full" and ns["EPOCHS"] == plan.epochs
    assert plan.source == "time budget" and plan.seconds_per_epoch > 0
    assert plan.epochs == 2                          # 30 minutes hold more than MAX_EPOCHS
    assert history.steps == 2 * STEPS_PER_EPOCH == ns["total_steps"]
    assert history.lr[-1] < 1e-3 * max(history.lr)  # the cosine ended with the run
    if "dino" in ns:
        assert ns["dino"].momentum[-1] == pytest.approx(1.0, abs=1e-3)   # and the teacher's
