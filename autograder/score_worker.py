"""The scoring worker (issue 13, part): a submission's answer cells as plain Python, in the
sandbox, answering the grader's calls over the data-only channel (channel.py).

The grader starts it as ``python score_worker.py`` inside the sandbox, with this file and
channel.py mounted read-only beside each other and the channel on stdin/stdout. Before any
student code runs, the channel moves to fresh descriptors and fds 0/1 become /dev/null and
stderr, so a print cannot corrupt a message. (Student code can still find the channel: the
grader trusts nothing it reads, it only checks data against its own computation.)

    grader -> {"cells": [source, ...]}            worker -> {"errors": [...]}
    grader -> {"call": name, "args": [...],       worker -> {"ok": true, "value": ...}
               "kwargs": {...}, "torch": bool}              or {"ok": false, "error": "..."}
    grader -> {"stop": true}                      (the worker exits)
"""
from __future__ import annotations

import os
import sys
import traceback

import channel


def take_channel():
    """The channel on private descriptors; 0 and 1 no longer reach the grader."""
    incoming = os.fdopen(os.dup(0), "rb", buffering=0)
    outgoing = os.fdopen(os.dup(1), "wb", buffering=0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    return incoming, outgoing


def to_torch(value):
    import numpy as np
    import torch
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, list):
        return [to_torch(v) for v in value]
    if isinstance(value, dict):
        return {k: to_torch(v) for k, v in value.items()}
    return value


def to_data(value):
    """What a student's function returned, as data: tensors become arrays (bfloat16 as
    float32); tuples become lists; anything else that is not data is refused later."""
    if "torch" in sys.modules:
        import torch
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu()
            if value.dtype == torch.bfloat16:
                value = value.float()
            return value.numpy()
    if isinstance(value, (list, tuple)):
        return [to_data(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_data(v) for k, v in value.items()}
    return value


def short_error(error: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(error), error)).strip()[-2000:]


def run_cells(sources: list[str], namespace: dict) -> list[str]:
    """Execute each cell in one namespace, as a notebook would; errors are collected."""
    errors = []
    for index, source in enumerate(sources):
        try:
            exec(compile(source, f"<cell {index}>", "exec"), namespace)
        except BaseException as error:                  # noqa: BLE001 (student code)
            errors.append(f"cell {index}: {short_error(error)}")
    return errors


def answer(request: dict, namespace: dict) -> dict:
    function = namespace.get(request.get("call"))
    if not callable(function):
        return {"ok": False, "error": f"{request.get('call')!r} is not defined"}
    args, kwargs = request.get("args", []), request.get("kwargs", {})
    if request.get("torch"):
        args, kwargs = to_torch(args), to_torch(kwargs)
    try:
        value = to_data(function(*args, **kwargs))
        channel.encode_message(value)                   # data only, or an error now
    except BaseException as error:                      # noqa: BLE001
        return {"ok": False, "error": short_error(error)}
    return {"ok": True, "value": value}


def main() -> int:
    incoming, outgoing = take_channel()
    namespace = {"__name__": "__main__"}
    first = channel.read_message(incoming)
    channel.write_message(outgoing, {"errors": run_cells(first.get("cells", []), namespace)})
    while True:
        request = channel.read_message(incoming)
        if request.get("stop"):
            return 0
        channel.write_message(outgoing, answer(request, namespace))


if __name__ == "__main__":
    sys.exit(main())
