"""The data-only channel between the trusted grader and a scoring worker (issue 13, part).

The worker runs a student's code in the sandbox; the grader must read its answers without
trusting anything in them. So a message carries data only, never code or objects:

    frame   = u64 header length | header (UTF-8 JSON) | u64 count | (u64 length | bytes)*
    values  = null, true/false, numbers, strings, lists, objects with string keys, and
              {"$array": k, "dtype": "float32", "shape": [2, 3]}: the k-th buffer as an array

Nothing is unpickled or evaluated. ``read_message`` checks every length against ``Limits``
before it reads, every array against its dtype and shape, and every buffer is used exactly
once; anything else is a ``ProtocolError``, which the grader scores as a wrong answer.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

DTYPES = ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64")
ARRAY = "$array"
U64 = struct.Struct(">Q")


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int = 1 << 20
    max_arrays: int = 256
    max_array_bytes: int = 256 << 20      # all buffers of one message together
    max_depth: int = 32


class ProtocolError(ValueError):
    """A message that breaks the protocol; the text says how."""


# --------------------------------------------------------------------------------------
# writing (both sides)
# --------------------------------------------------------------------------------------

def _encode(value, buffers: list[bytes], depth: int = 0):
    if depth > Limits.max_depth:
        raise ProtocolError("value nested too deeply")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, np.ndarray):
        if value.dtype.name not in DTYPES:
            raise ProtocolError(f"dtype {value.dtype} cannot be sent")
        buffers.append(np.ascontiguousarray(value).tobytes())
        return {ARRAY: len(buffers) - 1, "dtype": value.dtype.name, "shape": list(value.shape)}
    if isinstance(value, (list, tuple)):
        return [_encode(v, buffers, depth + 1) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value) or ARRAY in value:
            raise ProtocolError("object keys must be strings other than '$array'")
        return {k: _encode(v, buffers, depth + 1) for k, v in value.items()}
    raise ProtocolError(f"a {type(value).__name__} cannot be sent (data only)")


def encode_message(value) -> bytes:
    buffers: list[bytes] = []
    header = json.dumps(_encode(value, buffers), allow_nan=True).encode("utf-8")
    parts = [U64.pack(len(header)), header, U64.pack(len(buffers))]
    for buffer in buffers:
        parts += [U64.pack(len(buffer)), buffer]
    return b"".join(parts)


def write_message(stream, value) -> None:
    stream.write(encode_message(value))
    stream.flush()


# --------------------------------------------------------------------------------------
# reading (the grader's side: nothing in a message is trusted)
# --------------------------------------------------------------------------------------

def _read_exact(stream, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise ProtocolError(f"the message ended {left} bytes early")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _length(stream, limit: int, what: str) -> int:
    (n,) = U64.unpack(_read_exact(stream, U64.size))
    if n > limit:
        raise ProtocolError(f"{what} of {n:,} bytes, over the limit of {limit:,}")
    return n


def _array(spec: dict, buffers: list[bytes], used: set[int]):
    if set(spec) != {ARRAY, "dtype", "shape"}:
        raise ProtocolError(f"an array has the keys {sorted(spec)}")
    index, dtype, shape = spec[ARRAY], spec["dtype"], spec["shape"]
    if type(index) is not int or not 0 <= index < len(buffers) or index in used:
        raise ProtocolError(f"array buffer {index!r} does not exist or is used twice")
    if dtype not in DTYPES:
        raise ProtocolError(f"dtype {dtype!r} is not allowed")
    if not isinstance(shape, list) or len(shape) > 32 or not all(
            type(d) is int and d >= 0 for d in shape):
        raise ProtocolError(f"shape {shape!r} is not a list of sizes")
    itemsize = np.dtype(dtype).itemsize
    if int(np.prod(shape, dtype=object)) * itemsize != len(buffers[index]):
        raise ProtocolError(f"shape {shape} of {dtype} does not fit {len(buffers[index])} bytes")
    used.add(index)
    return np.frombuffer(buffers[index], dtype=dtype).reshape(shape).copy()


def _decode(value, buffers: list[bytes], used: set[int], depth: int, limits: Limits):
    if depth > limits.max_depth:
        raise ProtocolError("value nested too deeply")
    if isinstance(value, list):
        return [_decode(v, buffers, used, depth + 1, limits) for v in value]
    if isinstance(value, dict):
        if ARRAY in value:
            return _array(value, buffers, used)
        return {k: _decode(v, buffers, used, depth + 1, limits) for k, v in value.items()}
    return value


def read_message(stream, limits: Limits = Limits()):
    """The next message's value, arrays as numpy arrays; ProtocolError for anything else."""
    header = _read_exact(stream, _length(stream, limits.max_header_bytes, "a header"))
    try:
        value = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ProtocolError(f"the header is not JSON ({type(error).__name__})") from None
    (count,) = U64.unpack(_read_exact(stream, U64.size))
    if count > limits.max_arrays:
        raise ProtocolError(f"{count} arrays, over the limit of {limits.max_arrays}")
    buffers, budget = [], limits.max_array_bytes
    for _ in range(count):
        n = _length(stream, budget, "arrays")
        buffers.append(_read_exact(stream, n))
        budget -= n
    used: set[int] = set()
    decoded = _decode(value, buffers, used, 0, limits)
    if len(used) != len(buffers):
        raise ProtocolError(f"{len(buffers) - len(used)} buffer(s) no value refers to")
    return decoded
