"""The sandbox a submission's code runs in: bubblewrap (Debian package), closed by default.

A sandboxed process

* has its own PID namespace: it sees only its own processes, nothing of the host's
  ``/proc``, and everything it starts (``setsid`` included) dies with it;
* sees a filesystem built from an allowlist, read-only: the interpreter, the environment's
  packages, ``course_utils``, the system libraries and a few files of ``/etc``. Nothing of
  the grader's home, of any checkout of the course, or of other students is there;
* writes only into tmpfs folders of its own, each with a size: its working folder
  (``SCRATCH``, also ``HOME``), ``/tmp``, ``/dev/shm`` and the folder of its sockets;
* has no network, an environment cleared down to a short list, no capabilities and the
  user ``nobody`` inside (also where the grader runs as root), an address-space limit per
  process, no core dumps, and where the machine lets us create one, a cgroup that counts
  all its memory (tmpfs included) and its processes;
* dies when the process that started it dies (``--die-with-parent``).

Two ways in: :func:`start` runs any command (``Popen``), and running this file as a kernel
launcher (the kernelspec of :func:`write_kernelspec`) starts ipykernel inside and links
its IPC sockets to where the grader's nbclient looks for them
(``/proc/<pid>/root/run/kernel/...``), so no folder of the grader is writable from inside.
The launcher writes what it started to a state file; :func:`cleanup` kills whatever is
left and removes the cgroup.
"""
from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, fields
from pathlib import Path

KERNEL_NAME = "ssl-course-sandbox"
SCRATCH = "/home/student"      # the sandbox's working folder and HOME
IPC_DIR = "/run/kernel"        # the kernel's connection file and sockets
UID = GID = 65534              # nobody / nogroup, inside the sandbox
MiB, GiB = 2**20, 2**30

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_HIDDEN = ("/usr/src", "/usr/local/src", "/usr/local/share/ssl-course-kit")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf",
             "fonts", "mime.types")
PASSED_ENV = ("NBGRADER_EXECUTION", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
              "OPENBLAS_NUM_THREADS", "COURSE_FAST", "COURSE_MODE", "COURSE_DEVICE",
              "COURSE_GPU_AUGMENT", "PYTHONHASHSEED")
ENV_LIMITS, ENV_STATE, ENV_READ_ONLY = "SANDBOX_LIMITS", "SANDBOX_STATE_DIR", "SANDBOX_READ_ONLY"


@dataclass(frozen=True)
class Limits:
    """What one sandbox may use. ``memory`` bounds each process's address space and, where
    a cgroup can be made, the memory of all its processes together, tmpfs included; the
    tmpfs sizes bound the disk-like space (and count against ``memory`` in the cgroup)."""
    memory: int = 6 * GiB
    tmp: int = 512 * MiB
    shm: int = 64 * MiB
    scratch: int = 256 * MiB
    processes: int = 128

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls, value: str | None) -> "Limits":
        names = {f.name for f in fields(cls)}
        given = json.loads(value) if value else {}
        return cls(**{k: int(v) for k, v in given.items() if k in names})


# --------------------------------------------------------------------------------------
# is it there
# --------------------------------------------------------------------------------------

def bwrap() -> str | None:
    return shutil.which("bwrap")


def available() -> tuple[bool, str]:
    """(True, "") when bubblewrap can start a closed sandbox here, else (False, why)."""
    exe = bwrap()
    if exe is None:
        return False, "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    probe = [exe, *namespace_args(), *filesystem_args(read_only_paths(), {}, Limits()),
             "--clearenv", "--chdir", "/", "true"]
    try:
        run = subprocess.run(probe, capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, f"bubblewrap does not start: {error}"
    if run.returncode != 0:
        return False, f"bubblewrap does not start: {run.stderr.decode(errors='replace').strip()}"
    return True, ""


# --------------------------------------------------------------------------------------
# what the sandbox sees
# --------------------------------------------------------------------------------------

def read_only_paths(extra: list[str] = ()) -> list[str]:
    """The allowlist: this interpreter and its environment, course_utils, and ``extra``."""
    import importlib.util
    paths = {sys.prefix, sys.base_prefix, os.path.realpath(sys.prefix),
             os.path.realpath(sys.base_prefix),
             os.path.dirname(os.path.realpath(sys.executable))}
    utils = importlib.util.find_spec("course_utils")
    if utils is not None and utils.origin:
        paths.add(str(Path(utils.origin).resolve().parent))
    paths.update(extra)
    return sorted(p for p in paths if p and os.path.exists(p))


def namespace_args() -> list[str]:
    return ["--unshare-user", "--uid", str(UID), "--gid", str(GID), "--disable-userns",
            "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--hostname", "grading", "--cap-drop", "ALL",
            "--die-with-parent", "--new-session"]


def _depth(path: str) -> int:
    return len(Path(path).parts)


def filesystem_args(read_only: list[str], files: dict[str, str], limits: Limits) -> list[str]:
    """An empty root, then the system folders and ``read_only`` bound read-only, system
    folders that might hold a checkout hidden, the sized tmpfs folders, ``files``
    (sandbox path -> host file) bound read-only, and the root remounted read-only."""
    mounts: list[tuple[str, list[str]]] = []            # (sandbox path, arguments)
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            mounts.append((path, ["--symlink", os.readlink(path), path]))
        elif os.path.isdir(path):
            mounts.append((path, ["--ro-bind", path, path]))
    for path in read_only:
        real = os.path.realpath(path)
        if os.path.isdir(real) or os.path.isfile(real):
            mounts.append((path, ["--ro-bind", real, path]))
    for path in SYSTEM_HIDDEN:
        if os.path.isdir(path):
            mounts.append((path, ["--tmpfs", path]))
    for name in ETC_FILES:
        path = os.path.join("/etc", name)
        if os.path.exists(path):
            mounts.append((path, ["--ro-bind", os.path.realpath(path), path]))
    mounts += [("/proc", ["--proc", "/proc"]), ("/dev", ["--dev", "/dev"]),
               ("/dev/shm", ["--size", str(limits.shm), "--tmpfs", "/dev/shm"]),
               ("/tmp", ["--size", str(limits.tmp), "--tmpfs", "/tmp"]),
               (SCRATCH, ["--size", str(limits.scratch), "--tmpfs", SCRATCH]),
               (IPC_DIR, ["--size", str(MiB), "--tmpfs", IPC_DIR])]
    # outer folders first, so what is shown inside a hidden or writable folder stays shown
    # (an environment in /tmp/ci-checkout/.venv stays above the sandbox's own /tmp)
    mounts.sort(key=lambda m: _depth(m[0]))
    flat = [x for _, a in mounts for x in a]
    for inside, host in sorted(files.items()):
        flat += ["--ro-bind", host, inside]
    return flat + ["--remount-ro", "/"]


def environment(passed: dict) -> dict:
    """The sandbox's whole environment: fixed values and a few names of ``passed``."""
    env = {"PATH": f"{sys.prefix}/bin:/usr/local/bin:/usr/bin:/bin", "HOME": SCRATCH,
           "USER": "student", "LOGNAME": "student", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
           "PYTHONIOENCODING": "utf-8", "PYTHONNOUSERSITE": "1",
           "PYTHONDONTWRITEBYTECODE": "1", "MPLCONFIGDIR": "/tmp/matplotlib",
           "XDG_CACHE_HOME": "/tmp/cache", "IPYTHONDIR": "/tmp/ipython",
           "JUPYTER_RUNTIME_DIR": "/tmp/jupyter", "COURSE_OFFLINE": "1",
           "COURSE_DATA_DIR": f"{SCRATCH}/data"}
    env.update({k: passed[k] for k in PASSED_ENV if k in passed})
    return env


def identity_files(folder: Path) -> dict[str, str]:
    """/etc/passwd and /etc/group that name only the sandbox's user."""
    passwd, group = folder / "passwd", folder / "group"
    passwd.write_text(f"student:x:{UID}:{GID}:student:{SCRATCH}:/bin/sh\n", encoding="utf-8")
    group.write_text(f"student:x:{GID}:\n", encoding="utf-8")
    return {"/etc/passwd": str(passwd), "/etc/group": str(group)}


# --------------------------------------------------------------------------------------
# limits the kernel enforces for us: rlimits and, where we may make one, a cgroup
# --------------------------------------------------------------------------------------

def _own_cgroup(controller: str) -> str | None:
    """This process's cgroup path in a v1 hierarchy (``memory``, ``pids``), or None."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, names, path = line.split(":", 2)
        if controller in names.split(","):
            return path
    return None


def make_cgroups(name: str, limits: Limits) -> list[str]:
    """Per-sandbox cgroups (v1 memory and pids, or v2), limited; [] where none can be made.
    Memory counts tmpfs pages too, so /tmp and /dev/shm cannot go round the limit."""
    made = []
    settings = {"memory": {"memory.limit_in_bytes": limits.memory,
                           "memory.memsw.limit_in_bytes": limits.memory},
                "pids": {"pids.max": limits.processes}}
    for controller, values in settings.items():
        own = _own_cgroup(controller)
        base = Path("/sys/fs/cgroup") / controller
        if own is None or not (base / own.lstrip("/")).is_dir():
            continue
        folder = base / own.lstrip("/") / name
        try:
            folder.mkdir()
        except OSError:
            continue
        made.append(str(folder))
        for key, value in values.items():
            try:
                (folder / key).write_text(str(value))
            except OSError:
                pass                      # memsw exists only with swap accounting
    if not made and Path("/sys/fs/cgroup/cgroup.controllers").exists():
        own = _own_cgroup("")             # v2: '0::/path'
        folder = Path("/sys/fs/cgroup") / (own or "/").lstrip("/") / name
        try:
            folder.mkdir()
            (folder / "memory.max").write_text(str(limits.memory))
            (folder / "pids.max").write_text(str(limits.processes))
            made.append(str(folder))
        except OSError:
            if folder.is_dir():
                _remove_cgroup(str(folder))
    return made


def join_cgroups(cgroups: list[str]) -> None:
    for folder in cgroups:
        Path(folder, "cgroup.procs").write_text(str(os.getpid()))


def _cgroup_pids(folder: str) -> list[int]:
    try:
        return [int(p) for p in Path(folder, "cgroup.procs").read_text().split()]
    except OSError:
        return []


def _remove_cgroup(folder: str) -> bool:
    for _ in range(50):
        for pid in _cgroup_pids(folder):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.rmdir(folder)
            return True
        except OSError:
            time.sleep(0.02)
    return False


def user_threads(proc: Path = Path("/proc")) -> int:
    """Threads of this user now: what RLIMIT_NPROC counts (a thread is a task too)."""
    count = 0
    for entry in Path(proc).iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == os.getuid():
                count += len(os.listdir(entry / "task"))
        except OSError:                    # ended while we counted
            pass
    return count


def set_rlimits(limits: Limits, cgroup: bool) -> None:
    """Address space and no core dumps; the process count where no cgroup counts it (it
    counts every thread of this user then, so leave room for the grader's own)."""
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory, limits.memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if not cgroup:
        cap = user_threads() + limits.processes
        resource.setrlimit(resource.RLIMIT_NPROC, (cap, cap))


def die_with_parent() -> None:
    """This launcher gets SIGKILL when the process that started it (nbgrader) dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# --------------------------------------------------------------------------------------
# starting and cleaning up
# --------------------------------------------------------------------------------------

@dataclass
class Started:
    """A running sandbox: the bwrap process, its PID namespace's first process (as seen
    from outside) and that namespace's inode, the cgroups made for it."""
    process: subprocess.Popen
    child_pid: int
    pid_namespace: int
    cgroups: list[str]

    def record(self) -> dict:
        return {"bwrap_pid": self.process.pid, "child_pid": self.child_pid,
                "pid_namespace": self.pid_namespace, "cgroups": self.cgroups}

    def cleanup(self) -> list[str]:
        return cleanup(self.record())


def start(command: list[str], private: Path, limits: Limits = Limits(),
          files: dict[str, str] | None = None, passed_env: dict | None = None,
          read_only: list[str] = (), **popen) -> Started:
    """Start ``command`` in a new sandbox; ``private`` is a folder of the grader's (never
    shown inside) for the few files the sandbox gets read-only. Returns once bubblewrap
    says which process runs inside."""
    exe = bwrap()
    if exe is None:
        raise RuntimeError("bubblewrap (bwrap) is not installed")
    private.mkdir(parents=True, exist_ok=True)
    files = dict(identity_files(private), **(files or {}))
    env = environment(dict(os.environ if passed_env is None else passed_env))
    env_args = ["--clearenv"] + [x for k, v in sorted(env.items()) for x in ("--setenv", k, v)]
    cgroups = make_cgroups(f"ssl-grading-{uuid.uuid4().hex[:12]}", limits)
    info_read, info_write = os.pipe()
    args = [exe, *namespace_args(), *filesystem_args(read_only_paths(list(read_only)), files,
                                                   limits),
            *env_args, "--chdir", SCRATCH, "--info-fd", str(info_write), *command]

    def before_exec():                    # in the child, before bwrap runs
        join_cgroups(cgroups)
        set_rlimits(limits, cgroup=bool(cgroups))

    try:
        # bwrap itself gets only the sandbox's environment: it stays the namespace's first
        # process, whose /proc/1/environ the kernel can read
        process = subprocess.Popen(args, env=env, pass_fds=[info_write],
                                   preexec_fn=before_exec, **popen)
    except Exception:
        for folder in cgroups:
            _remove_cgroup(folder)
        raise
    finally:
        os.close(info_write)
    info = read_info(info_read, process)
    return Started(process, int(info["child-pid"]), int(info.get("pid-namespace", 0)), cgroups)


def read_info(fd: int, process: subprocess.Popen) -> dict:
    """bubblewrap's --info-fd JSON (child-pid, namespaces); an error when it exits first."""
    data = b""
    try:
        while True:
            chunk = os.read(fd, 65536)
            data += chunk
            try:
                return json.loads(data)
            except ValueError:
                if not chunk:
                    break
    finally:
        os.close(fd)
    process.wait()
    raise RuntimeError(f"bubblewrap exited ({process.returncode}) before the sandbox started")


def _pid_namespace(pid: int) -> int | None:
    """The PID namespace of a live process (None when it is gone or a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return None if state in ("Z", "X") else os.stat(f"/proc/{pid}/ns/pid").st_ino
    except (OSError, IndexError):
        return None


def cleanup(record: dict) -> list[str]:
    """Kill what is left of a sandbox (its PID namespace dies with its first process) and
    remove its cgroups; returns what had to be done, in words (empty when nothing)."""
    done = []
    child, namespace = record.get("child_pid"), record.get("pid_namespace")
    if child and namespace and _pid_namespace(child) == namespace:
        try:
            os.kill(child, signal.SIGKILL)
            done.append("processes of the submission were still running and were killed")
        except OSError:
            pass
        deadline = time.monotonic() + 5               # a kill is delivered, not yet done
        while _pid_namespace(child) == namespace and time.monotonic() < deadline:
            time.sleep(0.01)
    for folder in record.get("cgroups", []):
        if _cgroup_pids(folder) and not done:
            done.append("processes of the submission were still running and were killed")
        if not _remove_cgroup(folder):
            done.append(f"cgroup {folder} could not be removed")
    return done


def state_records(state_dir: Path) -> list[dict]:
    records = []
    for path in sorted(Path(state_dir).glob("sandbox-*.json")):
        try:
            records.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            pass
    return records


def cleanup_all(state_dir: Path) -> list[str]:
    notes = []
    for record in state_records(state_dir):
        notes += [n for n in cleanup(record) if n not in notes]
    return notes


# --------------------------------------------------------------------------------------
# the kernel launcher
# --------------------------------------------------------------------------------------

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


def launcher_env(state_dir: Path, limits: Limits = Limits(), read_only: list[str] = ()) -> dict:
    """The environment variables the kernel launcher reads."""
    return {ENV_STATE: str(state_dir), ENV_LIMITS: limits.to_env(),
            ENV_READ_ONLY: os.pathsep.join(read_only)}


PORTS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


def kernel_connection(connection: dict) -> dict:
    """The kernel's copy of the grader's connection file: the same ports and key, its
    sockets in the sandbox's own IPC folder."""
    if connection.get("transport") != "ipc":
        raise RuntimeError("the sandboxed kernel needs --KernelManager.transport=ipc")
    return dict(connection, ip=f"{IPC_DIR}/kernel")


def link_sockets(connection: dict, child_pid: int) -> None:
    """Where nbclient connects (``<ip>-<port>`` in the grader's folder) -> the sockets the
    kernel binds inside the sandbox, reached through its root in /proc."""
    for name in PORTS:
        port = connection[name]
        link = f"{connection['ip']}-{port}"
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(f"/proc/{child_pid}/root{IPC_DIR}/kernel-{port}", link)


def main(argv: list[str]) -> int:
    """``sandbox.py CONNECTION_FILE [KERNEL ARGS]``: ipykernel in a sandbox."""
    die_with_parent()
    connection_file = os.path.abspath(argv[1])
    with open(connection_file, encoding="utf-8") as f:
        connection = json.load(f)
    state_dir = Path(os.environ.get(ENV_STATE) or os.path.dirname(connection_file))
    private = Path(tempfile.mkdtemp(prefix="launch-", dir=state_dir))
    inside = kernel_connection(connection)
    (private / "connection.json").write_text(json.dumps(inside), encoding="utf-8")
    command = [sys.executable, "-m", "ipykernel_launcher", "-f", f"{IPC_DIR}/connection.json",
               "--IPKernelApp.parent_handle=0", *argv[2:]]
    read_only = [p for p in os.environ.get(ENV_READ_ONLY, "").split(os.pathsep) if p]
    started = start(command, private, Limits.from_env(os.environ.get(ENV_LIMITS)),
                    files={f"{IPC_DIR}/connection.json": str(private / "connection.json")},
                    read_only=read_only)
    (state_dir / f"sandbox-{started.process.pid}.json").write_text(
        json.dumps(started.record()), encoding="utf-8")
    link_sockets(connection, started.child_pid)

    def stop(signum, frame):
        started.process.kill()

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, stop)
    code = started.process.wait()
    cleanup(started.record())
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
