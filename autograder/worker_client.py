"""The grader's side of a scoring worker (issue 13, part): start score_worker.py in the
sandbox, load a submission's answer cells, call its functions with a deadline.

Everything the worker sends is untrusted data (channel.py); a worker that crashes, hangs,
floods or answers garbage gives ``WorkerError`` for that call, and the grader scores it 0.

    with Worker(limits) as worker:
        errors = worker.load([answer_source, ...])
        value = worker.call("add", 1, 2)          # WorkerError if it fails in any way
"""
from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import channel
from . import sandbox
from .course import grading_env           # one torch thread, as the grading kernel

HERE = Path(__file__).resolve().parent
INSIDE = "/opt/scorer"                       # where the two files are mounted read-only


class WorkerError(RuntimeError):
    """The worker did not answer a call with data: crashed, timed out, broke the protocol,
    or the student's code raised (the message says which)."""


class _Deadline:
    """File-like reads and writes on a pipe that give up at a deadline."""

    def __init__(self, fd: int, deadline: float):
        self.fd, self.deadline = fd, deadline

    def _wait(self, readable: bool) -> None:
        left = self.deadline - time.monotonic()
        ready = select.select([self.fd] if readable else [], [] if readable else [self.fd],
                              [], max(0.0, left))
        if not any(ready):
            raise channel.ProtocolError("the worker did not answer in time")

    def read(self, n: int) -> bytes:
        self._wait(readable=True)
        return os.read(self.fd, min(n, 1 << 20))

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            self._wait(readable=False)
            try:
                view = view[os.write(self.fd, view[:1 << 16]):]
            except BrokenPipeError:
                raise channel.ProtocolError("the worker is gone") from None

    def flush(self) -> None:
        pass


class Worker:
    """One worker for one submission: in the sandbox, or with ``contained`` (no bubblewrap
    where the grader runs, a container is the isolation) as a process of its own user
    (contained.py)."""

    def __init__(self, limits: "sandbox.Limits" = sandbox.Limits(), timeout: float = 60,
                 channel_limits: channel.Limits = channel.Limits(), contained: bool = False):
        self.limits, self.timeout, self.channel_limits = limits, timeout, channel_limits
        self.private = Path(tempfile.mkdtemp(prefix="score-worker-"))
        pipes = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if contained:
            from . import contained as plain
            self.started = plain.start(HERE / "score_worker.py", [HERE / "channel.py"],
                                       self.private, limits, grading_env(), **pipes)
        else:
            files = {f"{INSIDE}/score_worker.py": str(HERE / "score_worker.py"),
                     f"{INSIDE}/channel.py": str(HERE / "channel.py")}
            self.started = sandbox.start(
                [sys.executable, "-E", "-s", f"{INSIDE}/score_worker.py"], self.private,
                limits, files=files, passed_env=grading_env(), **pipes)
        process = self.started.process
        os.set_blocking(process.stdin.fileno(), False)
        self.dead = False

    def _exchange(self, message: dict, timeout: float | None = None):
        if self.dead:
            raise WorkerError("the worker stopped earlier")
        deadline = time.monotonic() + (timeout or self.timeout)
        process = self.started.process
        try:
            channel.write_message(_Deadline(process.stdin.fileno(), deadline), message)
            return channel.read_message(_Deadline(process.stdout.fileno(), deadline),
                                        self.channel_limits)
        except (channel.ProtocolError, OSError) as error:
            self.dead = True                           # no later call trusts this stream
            self.close()
            raise WorkerError(str(error)) from None

    def load(self, sources: list[str], cell_seconds: float = 30) -> list[str]:
        """Run the answer cells, each interrupted after ``cell_seconds`` as nbgrader would;
        returns the errors they raised, in words."""
        reply = self._exchange({"cells": list(sources), "cell_seconds": cell_seconds},
                               self.timeout + cell_seconds * len(sources))
        errors = reply.get("errors") if isinstance(reply, dict) else None
        if not isinstance(errors, list) or not all(isinstance(e, str) for e in errors):
            raise WorkerError("the worker answered the load with something else")
        return errors

    def _value(self, message: dict, timeout: float | None = None):
        reply = self._exchange(message, timeout)
        if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
            raise WorkerError("the worker's answer is not a reply")
        if not reply["ok"]:
            raise WorkerError(str(reply.get("error"))[:2000])
        return reply.get("value")

    def call(self, name: str, *args, on: str | None = None, keep: str | None = None,
             as_torch: bool = False, timeout: float | None = None, **kwargs):
        """The value ``name(*args, **kwargs)`` returned in the worker, as data. With ``on``,
        ``name`` is a method of the object kept under that name ("" calls the object);
        with ``keep``, the result stays in the worker under that name and the value is its
        type. ``Worker.ref(name)`` passes a kept object as an argument."""
        return self._value({"call": name, "args": list(args), "kwargs": kwargs,
                            "torch": as_torch, "on": on, "keep": keep}, timeout)

    @staticmethod
    def ref(name: str) -> dict:
        return {"$handle": name}

    def get(self, on: str, attribute: str):
        """An attribute (dotted; digits index) of a kept object, as data."""
        return self._value({"get": attribute, "on": on})

    def state(self, on: str, grads: bool = False) -> dict:
        """A kept module's ``parameters``, ``buffers`` (and ``grads``) by name as arrays,
        ``training`` and its ``modules`` as [name, type] pairs."""
        value = self._value({"state": on, "grads": grads})
        if not isinstance(value, dict):
            raise WorkerError("the state is not a dict")
        return value

    def describe(self, on: str):
        """A kept object's type and data attributes, nested (for transforms)."""
        return self._value({"describe": on})

    def drop(self, on: str) -> None:
        self._value({"drop": on})

    def close(self) -> list[str]:
        process = self.started.process
        if process.poll() is None:
            process.kill()
        process.wait()
        notes = self.started.cleanup()
        for stream in (process.stdin, process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        shutil.rmtree(self.private, ignore_errors=True)
        return notes

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
