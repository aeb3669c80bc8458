"""The scoring worker in the sandbox: answers with data, and fails one call at a time."""
import os
from pathlib import Path

import numpy as np
import pytest

from helpers import sandbox_ready

pytestmark = pytest.mark.notebook

ANSWERS = ["def add(a, b):\n    return a + b\n",
           "import torch\ndef scale(x, k):\n    return x * k\n",
           "print('noise on stdout')\ndef obj():\n    return object()\n"]


@pytest.fixture
def worker():
    ok, why = sandbox_ready()
    if not ok:
        pytest.skip(f"no isolation here: {why}")
    from autograder import worker_client
    with worker_client.Worker(timeout=30) as w:
        yield w
    import os
    assert w.started.process.poll() is not None
    assert not os.path.exists(f"/proc/{w.started.child_pid}/stat") or \
        open(f"/proc/{w.started.child_pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z", \
        "the worker outlived its close"


def test_calls_return_data(worker):
    assert worker.load(ANSWERS) == []
    assert worker.call("add", 1, 2) == 3
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = worker.call("scale", x, 2.0, as_torch=True)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and np.array_equal(out, 2 * x)


def test_a_failing_call_fails_alone(worker):
    from autograder import worker_client
    worker.load(ANSWERS + ["def broken():\n    raise ValueError('nope')\n", "1/0\n"])
    with pytest.raises(worker_client.WorkerError, match="nope"):
        worker.call("broken")
    with pytest.raises(worker_client.WorkerError, match="cannot be sent"):
        worker.call("obj")
    with pytest.raises(worker_client.WorkerError, match="not defined"):
        worker.call("missing")
    assert worker.call("add", 2, 2) == 4                      # the worker goes on


def test_load_reports_cell_errors(worker):
    errors = worker.load(["x = 1\n", "1/0\n", "def f():\n    return x\n"])
    assert len(errors) == 1 and "ZeroDivisionError" in errors[0] and "cell 1" in errors[0]
    assert worker.call("f") == 1


@pytest.mark.parametrize("code, words", [
    ("import os\ndef crash():\n    os._exit(3)\n", "ended"),
    ("def hang():\n    while True:\n        pass\n", "in time"),
    ("import os\ndef forge():\n    for fd in map(int, os.listdir('/proc/self/fd')):\n"
     "        try:\n            os.write(fd, b'\\xff' * 64)\n        except OSError:\n"
     "            pass\n    return 1\n", "header"),
])
def test_crash_hang_and_forged_bytes_end_the_worker(worker, code, words):
    from autograder import worker_client
    worker.load([code])
    name = code.split("def ")[1].split("(")[0]
    with pytest.raises(worker_client.WorkerError, match=words):
        worker.call(name, timeout=3)
    with pytest.raises(worker_client.WorkerError, match="stopped earlier"):
        worker.call(name)


OBJECTS = ["import torch\nfrom torch import nn\n"
           "class Head(nn.Module):\n    def __init__(self, d):\n        super().__init__()\n"
           "        self.fc = nn.Linear(d, 2)\n        self.register_buffer('count', torch.zeros(()))\n"
           "    def forward(self, x):\n        self.count += 1\n        return self.fc(x)\n",
           "from torchvision import transforms as T\n"
           "def make_t():\n    return T.Compose([T.RandomResizedCrop(8, scale=(0.2, 1.0)), T.ToTensor()])\n"]


def test_kept_objects_methods_state_and_description(worker):
    from autograder import worker_client
    assert worker.load(OBJECTS) == []
    assert worker.call("Head", 3, keep="head")["type"].endswith("Head")
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    out = worker.call("", x, on="head", as_torch=True)
    state = worker.state("head")
    w, b = state["parameters"]["fc.weight"], state["parameters"]["fc.bias"]
    assert np.allclose(out, x @ w.T + b, atol=1e-6)
    assert state["buffers"]["count"] == 1 and state["training"] is True
    assert ["fc", "torch.nn.modules.linear.Linear"] in state["modules"]
    worker.call("eval", on="head", keep="head")           # eval() returns the module
    assert worker.get("head", "training") is False
    assert worker.get("head", "fc.out_features") == 2
    # the grader builds its own inputs in the worker (an importable name)
    worker.call("torch.nn.Linear", 3, 2, keep="other")
    worker.call("load_state_dict", {"weight": np.zeros((2, 3), np.float32),
                                    "bias": np.ones(2, np.float32)}, on="other", as_torch=True)
    assert np.array_equal(worker.call("", x, on="other", as_torch=True), np.ones((4, 2)))

    # a transform's steps, read as data
    worker.call("make_t", keep="t")
    steps = worker.describe("t")["attributes"]["transforms"]
    assert steps[0]["type"].endswith("RandomResizedCrop")
    assert steps[0]["attributes"]["scale"] == [0.2, 1.0]
    image = worker.call("PIL.Image.fromarray", np.zeros((10, 12, 3), np.uint8), keep="img")
    assert image["type"].startswith("PIL.")
    assert worker.call("", worker.ref("img"), on="t").shape == (3, 8, 8)
    worker.drop("img")
    with pytest.raises(worker_client.WorkerError, match="nothing is kept"):
        worker.call("", worker.ref("img"), on="t")
    with pytest.raises(worker_client.WorkerError, match="not defined"):
        worker.call("no_such_module_here.f")


def test_a_cell_that_loops_is_interrupted_and_the_rest_loads(worker):
    errors = worker.load(["def add(a, b):\n    return a + b\nwhile True:\n    pass\n",
                          "def mul(a, b):\n    return a * b\n"], cell_seconds=1)
    assert errors == ["cell 0: interrupted after 1 s"]
    assert worker.call("add", 2, 3) == 5 and worker.call("mul", 2, 3) == 6


def test_the_process_cap_counts_threads(tmp_path):
    """RLIMIT_NPROC counts threads: a cap from processes alone left torch no room to start
    its threads on a busy machine (its import failed half way). Counted on a /proc of two
    processes of this user with three threads and one, beside what is not a process: the
    live /proc changes under a busy machine's other jobs while it is read."""
    from autograder import sandbox
    for pid, tids in (("12", ("12", "13", "14")), ("15", ("15",))):
        for tid in tids:
            (tmp_path / pid / "task" / tid).mkdir(parents=True)
    (tmp_path / "self").mkdir()
    (tmp_path / "uptime").write_text("1.0 2.0\n")
    assert sandbox.user_threads(tmp_path) == 4
    assert sandbox.user_threads() >= len(os.listdir("/proc/self/task"))


def test_a_students_variable_does_not_shadow_a_module(worker):
    worker.load(["torch = 'not the module'\nmath = None\ndef f():\n    return 1\n"])
    worker.call("torch.zeros", 2, keep="z")
    assert worker.get("z", "shape") == [2]
    assert worker.call("math.sqrt", 4.0) == 2.0
    assert worker.call("f") == 1


def test_an_allowlisted_folder_under_tmp_stays_visible(tmp_path_factory):
    """A checkout or environment under /tmp (a CI runner's clone) is shown read-only inside,
    above the sandbox's own /tmp; what else the host keeps in /tmp stays hidden."""
    import shutil
    import subprocess
    import tempfile
    from autograder import sandbox
    ok, why = sandbox_ready()
    if not ok:
        pytest.skip(f"no isolation here: {why}")
    host_tmp = Path(tempfile.mkdtemp(dir="/tmp"))
    shown, hidden = host_tmp / "venv", host_tmp / "other"
    shown.mkdir()
    hidden.mkdir()
    (shown / "marker").write_text("shown")
    (hidden / "marker").write_text("hidden")
    probe = (f"cat {shown}/marker; echo; ls {hidden} 2>/dev/null || echo absent; "
             f"touch {shown}/x 2>/dev/null || echo read-only; touch /tmp/own && echo writable")
    try:
        started = sandbox.start(["sh", "-c", probe], tmp_path_factory.mktemp("private"),
                                read_only=[str(shown)], stdout=subprocess.PIPE)
        out = started.process.communicate(timeout=30)[0].decode().split()
        sandbox.cleanup(started.record())
    finally:
        shutil.rmtree(host_tmp)
    assert out == ["shown", "absent", "read-only", "writable"], out
