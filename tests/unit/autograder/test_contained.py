"""The worker without a sandbox (autograder/contained.py), where the grader is root: each
guarantee by a worker that tries to break it. The worker runs the system's Python here
(this environment's lies under /root, which another user cannot read)."""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from autograder import contained, sandbox

PYTHON = "/usr/bin/python3"
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists(PYTHON) or not contained.reachable_by_others(PYTHON),
    reason="the worker runs as a user of its own only where the grader is root")


@pytest.fixture
def world(tmp_path):
    """A folder any user may enter, with a file only root may read (the grader's) and a
    folder only root may write (the results)."""
    folder = Path(tempfile.mkdtemp(prefix="contained-test-"))
    folder.chmod(0o755)
    secret = folder / "grader.py"
    secret.write_text("ANSWER = 42\n")
    secret.chmod(0o600)
    results = folder / "results"
    results.mkdir(mode=0o755)
    yield folder
    subprocess.run(["rm", "-rf", str(folder)])


def run_worker(tmp_path, code: str, env: dict | None = None, wait: bool = True):
    script = tmp_path / "worker.py"
    script.write_text(code)
    started = contained.start(script, [], Path(tempfile.mkdtemp(prefix="cw-")),
                              sandbox.Limits(), env or {}, python=PYTHON,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if not wait:
        return started, ""
    out, err = started.process.communicate(timeout=60)
    assert started.process.returncode == 0, err.decode()
    return started, out.decode()


def test_the_worker_is_a_user_of_its_own_that_reads_and_writes_nothing_of_the_grader(
        tmp_path, world):
    code = f"""
import os
print("uid", os.getuid(), os.getgid(), os.getgroups())
for what, act in [("read", lambda: open({str(world / 'grader.py')!r}).read()),
                  ("write", lambda: open({str(world / 'results' / 'results.json')!r}, "w")),
                  ("signal", lambda: os.kill(1, 0))]:
    try:
        act()
        print(what, "allowed")
    except (PermissionError, ProcessLookupError):
        print(what, "refused")
"""
    _, out = run_worker(tmp_path, code)
    assert f"uid {contained.UID} {contained.GID} []" in out
    assert "read refused" in out and "write refused" in out and "signal refused" in out


def test_the_worker_gets_the_short_environment_and_a_home_of_its_own(tmp_path):
    code = "import os, json; print(json.dumps(dict(os.environ)))"
    started, out = run_worker(tmp_path, code, env={"SECRET_TOKEN": "x", "COURSE_FAST": "1"})
    import json
    env = json.loads(out)
    assert "SECRET_TOKEN" not in env and env["COURSE_FAST"] == "1"
    assert env["HOME"].startswith(tempfile.gettempdir()) and env["COURSE_OFFLINE"] == "1"
    assert Path(env["HOME"]).stat().st_uid == contained.UID


def test_a_process_that_left_its_session_is_killed_at_the_end(tmp_path):
    """The worker starts a child in a new session (out of its process group) and waits:
    cleanup leaves no process of the worker's user."""
    code = """
import os, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import os, time; os.setsid(); time.sleep(300)"],
                 start_new_session=True)
print("started", flush=True)
time.sleep(300)
"""
    started, _ = run_worker(tmp_path, code, wait=False)
    assert started.process.stdout.readline().decode().strip() == "started"
    deadline = time.monotonic() + 10
    while len(contained.user_pids(contained.UID)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(contained.user_pids(contained.UID)) >= 2
    notes = started.cleanup()
    started.process.wait(timeout=10)
    assert notes and not [p for p in contained.user_pids(contained.UID)
                          if Path(f"/proc/{p}/stat").exists()
                          and Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
                          not in ("Z", "X")]


def test_the_limits_hold(tmp_path):
    code = """
import resource
print(resource.getrlimit(resource.RLIMIT_AS)[0], resource.getrlimit(resource.RLIMIT_CORE)[0])
"""
    _, out = run_worker(tmp_path, code)
    assert out.split() == [str(sandbox.Limits().memory), "0"]
