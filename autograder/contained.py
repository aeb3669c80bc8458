"""Where bubblewrap cannot run (a Docker container such as Gradescope's, which forbids user
namespaces), the scoring worker runs as a plain child process: the container is the
isolation. What this module still does, step by step:

* the worker runs as ``UID``, a user of its own that no file of the machine belongs to,
  when the grader is root: it cannot read what only root may (the grader's files, made
  root's alone by the Gradescope set-up), write the results or signal the grader;
* in a session of its own, with the sandbox's resource limits (address space, no core
  dumps, a process count of that user), killed when the grader dies;
* in an empty working folder of its own, with the sandbox's short environment;
* at the end, every process of that user is killed (a worker that started a new session
  escapes its group, not its user).

Without root, nothing stops the worker from doing what the grader's user may do: the
results then say that the grading was not isolated.
"""
from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import sandbox

UID = GID = 64123           # no name, no file: the processes of this user are the worker's


def reachable_by_others(path: str | Path) -> bool:
    """Whether a user who owns nothing can read ``path`` (and search every folder to it)."""
    path = Path(os.path.realpath(path))
    folders_ok = all(os.stat(p).st_mode & stat.S_IXOTH for p in path.parents)
    mode = os.stat(path).st_mode
    return folders_ok and bool(mode & stat.S_IROTH) and \
        (not stat.S_ISDIR(mode) or bool(mode & stat.S_IXOTH))


def can_drop(python: str = sys.executable) -> tuple[bool, str]:
    """(True, "") when the worker can run as a user of its own: the grader is root and that
    user can run this Python and read its packages; else (False, why)."""
    if os.geteuid() != 0:
        return False, "the grader is not root, so the worker runs as the grader's user"
    own = [sys.prefix, sys.base_prefix] if python == sys.executable else []   # its packages
    for path in [python, *own]:
        if not reachable_by_others(path):
            return False, (f"{path} cannot be read by another user, so the worker runs as "
                           f"root")
    return True, ""


@dataclass
class Contained:
    """A running worker: its process, and whether it runs as ``UID``."""
    process: subprocess.Popen
    dropped: bool

    def cleanup(self) -> list[str]:
        """Kill its process group and, where it ran as ``UID``, every process of that user;
        what had to be done, in words."""
        killed = _kill_group(self.process.pid)
        if self.dropped:
            killed = kill_user(UID) or killed
        return ["processes of the submission were still running and were killed"] if killed \
            else []


def _kill_group(pgid: int) -> bool:
    try:
        os.killpg(pgid, signal.SIGKILL)
        return True
    except OSError:
        return False


def user_pids(uid: int, proc: Path = Path("/proc")) -> list[int]:
    """The processes of ``uid`` now (zombies included: they are gone once reaped)."""
    pids = []
    for entry in Path(proc).iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                pids.append(int(entry.name))
        except OSError:                    # ended while we looked
            pass
    return pids


def kill_user(uid: int, seconds: float = 5) -> bool:
    """SIGKILL every process of ``uid`` until none is left (a fork between two looks is
    caught by the next); True when there was one."""
    found = False
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pids = [p for p in user_pids(uid) if p != os.getpid()]
        if not pids:
            break
        found = True
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.01)
    return found


def _become_worker(limits: sandbox.Limits, drop: bool) -> None:
    """In the child, before exec: a session of its own, the user ``UID``, the limits, and
    death with the grader (set last: a change of user clears it)."""
    os.setsid()
    if drop:
        os.setgroups([])
        os.setgid(GID)
        os.setuid(UID)
    sandbox.set_rlimits(limits, cgroup=False)
    sandbox.die_with_parent()


def start(script: Path, helpers: list[Path], private: Path, limits: sandbox.Limits,
          passed_env: dict, python: str = sys.executable, **popen) -> Contained:
    """Run ``python script`` (with ``helpers`` beside it, copied into ``private``) as the
    worker; ``private`` becomes its working folder and HOME."""
    drop = can_drop(python)[0]
    home = private / "home"
    home.mkdir(parents=True, exist_ok=True)
    for path in [script, *helpers]:
        shutil.copy2(path, home / path.name)
    if drop:
        for path in [private, home, *home.iterdir()]:
            os.chown(path, UID, GID)
    env = dict(sandbox.environment(passed_env), HOME=str(home), TMPDIR=str(home),
               COURSE_DATA_DIR=str(home / "data"), MPLCONFIGDIR=str(home / "matplotlib"),
               XDG_CACHE_HOME=str(home / "cache"), IPYTHONDIR=str(home / "ipython"),
               JUPYTER_RUNTIME_DIR=str(home / "jupyter"))
    process = subprocess.Popen([python, "-E", "-s", str(home / script.name)],
                               cwd=home, env=env, preexec_fn=lambda: _become_worker(limits, drop),
                               **popen)
    return Contained(process, drop)
