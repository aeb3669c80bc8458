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

Objects (a head, a queue, a transform) stay in the worker under names the grader gives:

    {"call": ..., "keep": "head"}        keep the result as "head"; the value is its type
    {"call": "forward", "on": "head"}    a method of a kept object ("" calls the object)
    {"$handle": "head"} in args          the kept object itself, as an argument
    {"get": "ptr", "on": "queue"}        an attribute, as data
    {"state": "head"}                    a module's parameters, buffers, gradients, mode
    {"describe": "t"}                    an object's type and data attributes, nested
    {"drop": "head"}                     forget it

A name that is not in the answers' namespace is imported (``torch.nn.Linear``), so the
grader can build the inputs it needs (two encoders for a momentum update) in the worker.
"""
from __future__ import annotations

import importlib
import os
import sys
import traceback

if __package__:            # imported by the grader's tests
    from . import channel
else:                      # run as a script in the sandbox, beside channel.py
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
        if isinstance(value, torch.Size):
            return list(value)
        if isinstance(value, torch.dtype):
            return str(value)
    if isinstance(value, (list, tuple)):
        return [to_data(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_data(v) for k, v in value.items()}
    if type(value).__module__.startswith("PIL.") and hasattr(value, "getdata"):
        import numpy as np
        return np.asarray(value)
    return value


def type_name(value) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


DATA = (type(None), bool, int, float, str)


def describe(value, depth: int = 0):
    """An object as nested data: its type and the attributes a grader can compare (numbers,
    strings, tensors, nested objects), so a transform's steps and settings can be read."""
    data = to_data(value)
    if isinstance(data, DATA) or type(data).__name__ == "ndarray":
        return data
    if depth >= 5:
        return {"type": type_name(value)}
    if isinstance(value, (list, tuple)):
        return [describe(v, depth + 1) for v in value[:64]]
    if isinstance(value, dict):
        return {str(k): describe(v, depth + 1) for k, v in list(value.items())[:64]}
    if callable(value) and not hasattr(value, "__dict__"):
        return {"type": type_name(value)}
    attributes = {}
    for key, item in list(getattr(value, "__dict__", {}).items())[:64]:
        if key.startswith("__") or key in ("_forward_hooks", "_backward_hooks"):
            continue
        attributes[str(key)] = describe(item, depth + 1)
    return {"type": type_name(value), "attributes": attributes}


def module_state(module, grads: bool) -> dict:
    """A module's parameters, buffers (and gradients) by name, its mode and its parts."""
    state = {"parameters": {n: to_data(p) for n, p in module.named_parameters()},
             "buffers": {n: to_data(b) for n, b in module.named_buffers()},
             "training": bool(module.training),
             "modules": [[n, type_name(m)] for n, m in module.named_modules()][:256]}
    if grads:
        state["grads"] = {n: to_data(p.grad) for n, p in module.named_parameters()
                          if p.grad is not None}
    return state


def short_error(error: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(error), error)).strip()[-2000:]


class CellTimeout(BaseException):
    """A cell ran past its time: it is interrupted, as nbgrader interrupts a kernel's cell."""


def _interrupt(signum, frame):
    raise CellTimeout()


def run_cells(sources: list[str], namespace: dict, seconds: float = 0) -> list[str]:
    """Execute each cell in one namespace, as a notebook would; errors are collected. With
    ``seconds``, a cell still running after that long is interrupted and the next one runs
    (what it defined before stays). A cell that defeats the interruption runs into the
    grader's deadline instead, and its worker is ended."""
    import signal
    signal.signal(signal.SIGALRM, _interrupt)
    errors = []
    for index, source in enumerate(sources):
        try:
            signal.setitimer(signal.ITIMER_REAL, seconds)
            exec(compile(source, f"<cell {index}>", "exec"), namespace)
        except CellTimeout:
            errors.append(f"cell {index}: interrupted after {seconds:g} s")
        except BaseException as error:                  # noqa: BLE001 (student code)
            errors.append(f"cell {index}: {short_error(error)}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    return errors


class Refused(Exception):
    """A request that names something that is not there."""


def resolve(name: str, namespace: dict):
    """A name the grader calls: a plain name from the answers' namespace (the student's
    function or class); a dotted one from the real module when its first part is one
    (``torch.nn.Linear``: a student's variable called ``torch`` does not shadow it), else
    from the namespace (``ProjectionHead.forward``)."""
    if not isinstance(name, str) or not name:
        raise Refused(f"{name!r} is not a name")
    head, *rest = name.split(".")
    value = namespace.get(head, _MISSING) if not rest else _MISSING
    if value is _MISSING and rest:
        try:
            value = importlib.import_module(head)
        except ImportError:
            value = namespace.get(head, _MISSING)
    if value is _MISSING:
        try:
            value = importlib.import_module(head)
        except ImportError:
            raise Refused(f"{name!r} is not defined") from None
    for part in rest:
        try:
            value = getattr(value, part)
        except AttributeError:
            try:
                value = importlib.import_module(f"{head}.{part}")
            except ImportError:
                raise Refused(f"{name!r} is not defined") from None
        head = f"{head}.{part}"
    return value


_MISSING = object()


def kept(name, handles: dict):
    if name not in handles:
        raise Refused(f"nothing is kept as {name!r}")
    return handles[name]


def with_handles(value, handles: dict):
    if isinstance(value, list):
        return [with_handles(v, handles) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$handle"}:
            return kept(value["$handle"], handles)
        return {k: with_handles(v, handles) for k, v in value.items()}
    return value


def attribute(value, path: str):
    for part in path.split(".") if path else []:
        value = value[int(part)] if part.isdigit() else getattr(value, part)
    return value


def target(request: dict, namespace: dict, handles: dict):
    name = request.get("call")
    if request.get("on") is None:
        function = resolve(name, namespace)
    else:
        function = attribute(kept(request["on"], handles), name or "")
    if not callable(function):
        raise Refused(f"{name!r} is not callable")
    return function


def respond(request: dict, namespace: dict, handles: dict):
    """The value a request asks for (student code may run, and raise, here)."""
    if "get" in request:
        return to_data(attribute(kept(request.get("on"), handles), request["get"]))
    if "state" in request:
        return module_state(kept(request["state"], handles), bool(request.get("grads")))
    if "describe" in request:
        return describe(kept(request["describe"], handles))
    if "drop" in request:
        handles.pop(request["drop"], None)
        return None
    function = target(request, namespace, handles)
    args = with_handles(request.get("args", []), handles)
    kwargs = with_handles(request.get("kwargs", {}), handles)
    if request.get("torch"):
        args, kwargs = to_torch(args), to_torch(kwargs)
    value = function(*args, **kwargs)
    if request.get("keep") is not None:
        handles[str(request["keep"])] = value
        return {"type": type_name(value)}
    return to_data(value)


def answer(request: dict, namespace: dict, handles: dict | None = None) -> dict:
    try:
        value = respond(request, namespace, {} if handles is None else handles)
        channel.encode_message(value)                   # data only, or an error now
    except BaseException as error:                      # noqa: BLE001 (student code)
        return {"ok": False, "error": short_error(error)}
    return {"ok": True, "value": value}


def warm_imports() -> None:
    """What every set-up cell imports first, imported before any cell's clock starts (torch
    and torchvision alone take seconds on a busy machine)."""
    for name in ("numpy", "torch", "torchvision"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def main() -> int:
    incoming, outgoing = take_channel()
    warm_imports()
    namespace, handles = {"__name__": "__main__"}, {}
    first = channel.read_message(incoming)
    seconds = first.get("cell_seconds", 0)
    seconds = float(seconds) if isinstance(seconds, (int, float)) and seconds > 0 else 0.0
    channel.write_message(outgoing, {"errors": run_cells(first.get("cells", []), namespace,
                                                         seconds)})
    while True:
        request = channel.read_message(incoming)
        if request.get("stop"):
            return 0
        channel.write_message(outgoing, answer(request, namespace, handles))


if __name__ == "__main__":
    sys.exit(main())
