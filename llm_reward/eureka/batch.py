"""The reward server's requests: one batch of transitions from the library to its sandbox worker.

This is the trusted direction (the library writes, the worker reads), so a request is a pickle. Arrays travel in
it as ``(dtype, shape, raw buffer)`` rather than as pickled ndarrays: the server answers one batch per vector
step, and pickling an ndarray costs microseconds of numpy's reduce machinery per array (and an audited
``pickle.find_class`` per array in the worker), while a raw buffer is one copy each way. Buffers arrive as
``bytearray``, so the worker's arrays are writable, as pickled arrays were (reward code may modify its inputs).

    >>> import numpy as np
    >>> body = encode_request(np.zeros((2, 3)), np.ones((2, 1), np.float32), {"pos": np.arange(2)}, None)[4:]
    >>> obs, actions, next_obs, infos = decode_request(body)
    >>> obs.shape, actions.dtype, next_obs["pos"].tolist(), infos
    ((2, 3), dtype('float32'), [0, 1], None)
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

import numpy as np

HEADER = struct.Struct(">I")  # the byte length of the pickle that follows


def encode_request(obs: Any, actions: Any, next_obs: Any, infos: list[dict] | None) -> bytes:
    """A length-prefixed request: observations (arrays or dicts of arrays), actions, next observations and the
    already filtered infos (``None``: the code reads no info key, so each call gets an empty dict)."""
    payload = pickle.dumps((_pack(obs), _pack(actions), _pack(next_obs), infos), protocol=5)
    return HEADER.pack(len(payload)) + payload


def decode_request(body: bytes) -> tuple[Any, Any, Any, list[dict] | None]:
    """``(obs, actions, next_obs, infos)`` of one request body (worker side; the body comes from the library)."""
    obs, actions, next_obs, infos = pickle.loads(body)  # noqa: S301 - written by the trusted library process
    return _unpack(obs), _unpack(actions), _unpack(next_obs), infos


def _pack(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _pack(item) for key, item in value.items()}
    array = np.asarray(value)
    if array.dtype.kind not in "biufc":  # objects, strings, records: pickled as they are
        return ("object", value)
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    return ("array", array.dtype.str, array.shape, pickle.PickleBuffer(array))


def _unpack(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _unpack(item) for key, item in value.items()}
    if value[0] == "object":
        return value[1]
    _, dtype, shape, buffer = value
    parsed = _DTYPES.get(dtype)
    if parsed is None:
        parsed = _DTYPES[dtype] = np.dtype(dtype)
    array = np.ndarray(shape, parsed, buffer)  # a view of the buffer (a third of frombuffer + reshape's cost)
    return array if type(buffer) is bytearray else array.copy()  # a read-only source array arrives as bytes


_DTYPES: dict[str, np.dtype] = {}  # the requests' dtype strings, parsed once
