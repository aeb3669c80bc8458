"""The scoring worker in the sandbox: answers with data, and fails one call at a time."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "autograder"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_autograder import sandbox_ready  # noqa: E402

pytestmark = pytest.mark.notebook

ANSWERS = ["def add(a, b):\n    return a + b\n",
           "import torch\ndef scale(x, k):\n    return x * k\n",
           "print('noise on stdout')\ndef obj():\n    return object()\n"]


@pytest.fixture
def worker():
    ok, why = sandbox_ready()
    if not ok:
        pytest.skip(f"no isolation here: {why}")
    import worker_client
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
    import worker_client
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
    import worker_client
    worker.load([code])
    name = code.split("def ")[1].split("(")[0]
    with pytest.raises(worker_client.WorkerError, match=words):
        worker.call(name, timeout=3)
    with pytest.raises(worker_client.WorkerError, match="stopped earlier"):
        worker.call(name)
