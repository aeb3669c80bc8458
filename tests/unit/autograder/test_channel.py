"""The data-only channel: what it carries, and every way a hostile worker's bytes are refused."""
import io
import json
import struct

import numpy as np
import pytest

from autograder import channel

U64 = struct.Struct(">Q")


def round_trip(value, limits=channel.Limits()):
    return channel.read_message(io.BytesIO(channel.encode_message(value)), limits)


def frame(header, buffers=()) -> io.BytesIO:
    """A hand-made message: any header bytes, any buffers."""
    header = header if isinstance(header, bytes) else json.dumps(header).encode()
    parts = [U64.pack(len(header)), header, U64.pack(len(buffers))]
    for b in buffers:
        parts += [U64.pack(len(b)), b]
    return io.BytesIO(b"".join(parts))


def test_values_and_arrays_round_trip():
    rng = np.random.default_rng(0)
    value = {"loss": 0.25, "ok": True, "name": "z_i", "none": None, "nan": float("nan"),
             "arrays": [rng.standard_normal((3, 4)).astype(dtype) for dtype in
                        ("float16", "float32", "float64")],
             "ids": np.arange(6, dtype=np.int64).reshape(2, 3), "mask": np.array([True, False]),
             "empty": np.zeros((0, 5), dtype=np.float32), "scalar": np.float32(2.5)}
    back = round_trip(value)
    assert back["loss"] == 0.25 and back["ok"] is True and back["none"] is None
    assert np.isnan(back["nan"]) and back["scalar"] == 2.5
    for sent, got in zip(value["arrays"], back["arrays"]):
        assert got.dtype == sent.dtype and np.array_equal(got, sent)
    assert np.array_equal(back["ids"], value["ids"]) and back["empty"].shape == (0, 5)
    assert back["ids"].flags.writeable                        # a copy, not a view of the message


@pytest.mark.parametrize("value", [object(), {1: "x"}, {"$array": 0}, np.array(["a"]),
                                   lambda: 0, b"bytes"])
def test_only_data_can_be_sent(value):
    with pytest.raises(channel.ProtocolError):
        channel.encode_message(value)


def array_spec(index=0, dtype="float32", shape=(2,)):
    return {"$array": index, "dtype": dtype, "shape": list(shape)}


@pytest.mark.parametrize("stream, words", [
    (frame(b"\xff\xfe"), "not JSON"),
    (frame(b"{"), "not JSON"),
    (frame(b"[" * 200_000 + b"]" * 200_000), "JSON"),
    (frame(array_spec(), [b"\0" * 4]), "does not fit"),
    (frame(array_spec(dtype="object"), [b"\0" * 8]), "not allowed"),
    (frame(array_spec(dtype="complex64"), [b"\0" * 16]), "not allowed"),
    (frame(array_spec(shape=(-1,)), [b"\0" * 8]), "not a list of sizes"),
    (frame(array_spec(shape=(2.0,)), [b"\0" * 8]), "not a list of sizes"),
    (frame(array_spec(index=1), [b"\0" * 8]), "does not exist"),
    (frame([array_spec(), array_spec()], [b"\0" * 8]), "used twice"),
    (frame({"a": 1}, [b"\0" * 8]), "no value refers to"),
    (frame(dict(array_spec(), extra=1), [b"\0" * 8]), "keys"),
    (frame(array_spec(shape=(2**40, 2**40)), [b"\0" * 8]), "does not fit"),
])
def test_malformed_messages_are_refused(stream, words):
    with pytest.raises(channel.ProtocolError, match=words):
        channel.read_message(stream)


def test_lengths_are_checked_before_anything_is_read():
    limits = channel.Limits(max_header_bytes=100, max_arrays=2, max_array_bytes=64)
    with pytest.raises(channel.ProtocolError, match="header of"):
        channel.read_message(io.BytesIO(U64.pack(2**62)), limits)      # no 4 EiB allocation
    with pytest.raises(channel.ProtocolError, match="3 arrays"):
        channel.read_message(frame({"a": 1}, [b"", b"", b""]), limits)
    with pytest.raises(channel.ProtocolError, match="arrays of"):
        channel.read_message(frame([array_spec(shape=(20,))] * 1, [b"\0" * 80]), limits)
    with pytest.raises(channel.ProtocolError, match="nested too deeply"):
        round_trip(json.loads("[" * 40 + "]" * 40))


def test_a_cut_message_is_refused():
    data = channel.encode_message({"x": np.ones(10, dtype=np.float32)})
    for cut in (0, 4, 12, len(data) - 1):
        with pytest.raises(channel.ProtocolError, match="ended"):
            channel.read_message(io.BytesIO(data[:cut]))


def test_messages_follow_each_other_on_one_stream():
    stream = io.BytesIO(channel.encode_message({"n": 1}) + channel.encode_message([np.ones(2)]))
    assert channel.read_message(stream) == {"n": 1}
    assert np.array_equal(channel.read_message(stream)[0], np.ones(2))
