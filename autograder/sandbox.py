"""An isolated grading kernel: ipykernel started under bubblewrap (Debian package).

A submission's code runs in a kernel that

* has no network (a new, empty network namespace);
* sees the file system read-only, with the course folder and the repository (masters,
  hidden tests, other students' work, the gradebook, the wrong variants in tests/) hidden
  under empty folders, except what the notebook needs: the Python environment,
  ``course_utils`` and its own working folder (read-write);
* gets a private ``/tmp`` and an address-space limit (a memory bomb fails with
  MemoryError instead of taking the machine down); nbgrader's per-cell timeout and
  ``course.py``'s per-submission timeout bound its time.

How: ``course.py`` writes a kernelspec whose argv runs this file; this file reads what to
hide and show from environment variables set by ``course.py`` and replaces itself with
``bwrap ... python -m ipykernel_launcher -f CONNECTION_FILE``. The kernel talks to nbgrader
over IPC sockets next to the connection file (TCP loopback in a new network namespace is
not the grader's), and shares the PID namespace (ipykernel exits when it cannot see its
parent). Where bubblewrap is missing or does not work, grading still runs, unisolated, and
says so loudly.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

KERNEL_NAME = "ssl-course-sandbox"
DEFAULT_MEMORY = 6 * 2**30          # bytes of address space for the kernel
ENV_HIDE, ENV_READ_ONLY, ENV_WRITE, ENV_MEMORY, ENV_CHDIR = (
    "SANDBOX_HIDE", "SANDBOX_READ_ONLY", "SANDBOX_WRITE", "SANDBOX_MEMORY", "SANDBOX_CHDIR")


def bwrap() -> str | None:
    return shutil.which("bwrap")


def available() -> tuple[bool, str]:
    """(True, "") when bubblewrap can start a process here, else (False, why)."""
    exe = bwrap()
    if exe is None:
        return False, "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    try:
        probe = subprocess.run([exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                                "--unshare-net", "true"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, f"bubblewrap does not start: {error}"
    if probe.returncode != 0:
        return False, f"bubblewrap does not start: {probe.stderr.decode(errors='replace').strip()}"
    return True, ""


def _paths(value: str | None) -> list[str]:
    return [p for p in (value or "").split(os.pathsep) if p]


def bwrap_args(hide: list[str], read_only: list[str], write: list[str]) -> list[str]:
    """bubblewrap arguments: read-only root, hidden folders, then what is shown again."""
    args = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
            "--unshare-net", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
            "--new-session"]
    for path in sorted(set(hide), key=len):                  # outer folders first
        if os.path.isdir(path):
            args += ["--tmpfs", path]
        elif os.path.exists(path):
            args += ["--ro-bind", "/dev/null", path]
    for path in sorted(set(read_only), key=len):
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    for path in sorted(set(write), key=len):
        if os.path.exists(path):
            args += ["--bind", path, path]
    return args


def limit_memory(max_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


def write_kernelspec(folder: Path) -> Path:
    """A kernelspec in ``folder``/kernels/ that starts the sandboxed kernel; add ``folder``
    to JUPYTER_PATH to use it."""
    spec_dir = Path(folder) / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, str(Path(__file__).resolve()), "{connection_file}"],
            "display_name": "Python 3 (sandboxed grading)", "language": "python",
            # a signal from the grader does not reach a kernel in its own session:
            # interrupt it with a message on the control channel instead
            "interrupt_mode": "message", "metadata": {"debugger": False}}
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return spec_dir


def sandbox_env(hide: list[str], read_only: list[str], write: list[str],
                memory: int = DEFAULT_MEMORY, chdir: str | None = None) -> dict:
    """The environment variables this launcher reads (``chdir``: the kernel's folder,
    default the folder it was started in)."""
    env = {ENV_HIDE: os.pathsep.join(map(str, hide)),
           ENV_READ_ONLY: os.pathsep.join(map(str, read_only)),
           ENV_WRITE: os.pathsep.join(map(str, write)), ENV_MEMORY: str(memory)}
    if chdir:
        env[ENV_CHDIR] = str(chdir)
    return env


def main(argv: list[str]) -> None:
    """Kernel launcher: ``sandbox.py CONNECTION_FILE [KERNEL ARGS]`` -> bwrap ... ipykernel."""
    connection_file = os.path.abspath(argv[1])
    workdir = os.environ.get(ENV_CHDIR) or os.getcwd()
    write = _paths(os.environ.get(ENV_WRITE)) + [os.path.dirname(connection_file), workdir]
    args = bwrap_args(_paths(os.environ.get(ENV_HIDE)), _paths(os.environ.get(ENV_READ_ONLY)),
                      write)
    limit_memory(int(os.environ.get(ENV_MEMORY, DEFAULT_MEMORY)))
    command = [bwrap(), *args, "--chdir", workdir, "--setenv", "TMPDIR", "/tmp",
               sys.executable, "-m", "ipykernel_launcher", "-f", connection_file, *argv[2:]]
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv)
