"""The reward server's requests: one batch of transitions from the library to its sandbox worker.

This is the trusted direction (the library writes, the worker reads). Two body formats, told apart by the first
byte:

- ``A`` (arrays), the usual request: observations, actions and next observations that are plain numeric ndarrays
  travel as their raw bytes after a small layout block (each array's dtype and shape). The layout block of a
  vector env never changes, so both sides keep it: the library's header bytes and the worker's parsed layout are
  built once per layout, and a request costs one join here and one copy plus three array views in the worker
  (no pickle machinery on either side). Infos, when the code reads any, follow as a pickle.
- ``P`` (pickle), for anything else (dict observations, object or string arrays): a pickle in which arrays travel
  as ``(dtype, shape, raw buffer)``.

Either way the worker's arrays are writable copies (reward code may modify its inputs), one per request.

    >>> import numpy as np
    >>> body = encode_request(np.zeros((2, 3)), np.ones((2, 1), np.float32), {"pos": np.arange(2)}, None)[4:]
    >>> obs, actions, next_obs, infos = decode_request(body)
    >>> obs.shape, actions.dtype, next_obs["pos"].tolist(), infos
    ((2, 3), dtype('float32'), [0, 1], None)
    >>> body = encode_request(np.zeros((2, 3)), np.ones((2, 1), np.float32), np.ones((2, 3)), [{"x": 1}, {}])[4:]
    >>> body[:1], float(decode_request(body)[2].sum()), decode_request(body)[3]
    (b'A', 6.0, [{'x': 1}, {}])
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

import numpy as np

HEADER = struct.Struct(">I")  # the byte length of the body that follows

_ARRAYS, _PICKLE = b"A", b"P"
_ARRAYS_BYTE = _ARRAYS[0]
_LAYOUT_SIZE = struct.Struct("<H")  # byte length of an arrays body's layout block
_ARRAY_HEAD = struct.Struct("<BB")  # length of the dtype string, number of dimensions
_DIM = struct.Struct("<q")
_NUMERIC = frozenset("biufc")


def encode_request(obs: Any, actions: Any, next_obs: Any, infos: list[dict] | None) -> bytes:
    """A length-prefixed request: observations (arrays or dicts of arrays), actions, next observations and the
    already filtered infos (``None``: the code reads no info key, so each call gets an empty dict)."""
    ndarray = np.ndarray
    if type(actions) is list:  # a single env's ``[action]``
        array = np.asarray(actions)
        if array.dtype.kind in _NUMERIC:
            actions = array
    if type(obs) is ndarray and type(actions) is ndarray and type(next_obs) is ndarray:
        key = (obs.dtype, obs.shape, actions.dtype, actions.shape, next_obs.dtype, next_obs.shape, infos is None)
        layout = _HEADS.get(key)
        if layout is None and _plain(obs) and _plain(actions) and _plain(next_obs):
            if len(_HEADS) >= _MAX_LAYOUTS:
                _HEADS.clear()
            layout = _HEADS[key] = _layout_head(obs, actions, next_obs, infos is None)
        if layout is not None and obs.flags.c_contiguous and actions.flags.c_contiguous \
                and next_obs.flags.c_contiguous:
            head, size = layout
            if infos is None:
                return b"".join((HEADER.pack(size), head, obs, actions, next_obs))
            tail = pickle.dumps(infos, protocol=5)
            return b"".join((HEADER.pack(size + len(tail)), head, obs, actions, next_obs, tail))
    payload = _PICKLE + pickle.dumps((_pack(obs), _pack(actions), _pack(next_obs), infos), protocol=5)
    return HEADER.pack(len(payload)) + payload


def decode_request(body: bytes | bytearray | memoryview) -> tuple[Any, Any, Any, list[dict] | None]:
    """``(obs, actions, next_obs, infos)`` of one request body (worker side; the body comes from the library)."""
    if body[0] == _ARRAYS_BYTE:
        (size,) = _LAYOUT_SIZE.unpack_from(body, 1)
        end = 3 + size
        key = bytes(body[3:end])
        layout = _LAYOUTS.get(key)
        if layout is None:
            if len(_LAYOUTS) >= _MAX_LAYOUTS:
                _LAYOUTS.clear()
            layout = _LAYOUTS[key] = _parse_layout(key)
        (obs_shape, obs_dtype, actions_at), (actions_shape, actions_dtype, next_at), \
            (next_shape, next_dtype, data_size), with_infos = layout
        data = bytearray(body[end:end + data_size])  # one writable copy holds the three arrays
        infos = pickle.loads(body[end + data_size:]) if with_infos else None  # noqa: S301 - from the library
        return (np.ndarray(obs_shape, obs_dtype, data), np.ndarray(actions_shape, actions_dtype, data, actions_at),
                np.ndarray(next_shape, next_dtype, data, next_at), infos)
    if body[0] != _PICKLE[0]:
        raise ValueError("not a reward request")
    obs, actions, next_obs, infos = pickle.loads(body[1:])  # noqa: S301 - written by the trusted library process
    return _unpack(obs), _unpack(actions), _unpack(next_obs), infos


def _plain(array: np.ndarray) -> bool:
    return array.dtype.kind in _NUMERIC and not array.dtype.hasobject and len(array.dtype.str) < 256 \
        and array.ndim < 256


def _layout_head(obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray,
                 no_infos: bool) -> tuple[bytes, int]:
    """An arrays body's fixed part (tag, layout block) and the body size without infos, for one layout."""
    block = bytearray()
    for array in (obs, actions, next_obs):
        dtype = array.dtype.str.encode("ascii")
        block += _ARRAY_HEAD.pack(len(dtype), array.ndim) + dtype
        for dim in array.shape:
            block += _DIM.pack(dim)
    block += b"\x00" if no_infos else b"\x01"
    head = _ARRAYS + _LAYOUT_SIZE.pack(len(block)) + bytes(block)
    return head, len(head) + obs.nbytes + actions.nbytes + next_obs.nbytes


def _parse_layout(block: bytes) -> tuple[Any, ...]:
    """``((shape, dtype, next offset) x 3, with_infos)`` of a layout block; the last offset is the data size."""
    specs, offset, at = [], 0, 0
    for _ in range(3):
        length, ndim = _ARRAY_HEAD.unpack_from(block, offset)
        offset += _ARRAY_HEAD.size
        dtype = np.dtype(block[offset:offset + length].decode("ascii"))
        offset += length
        shape = tuple(_DIM.unpack_from(block, offset + _DIM.size * i)[0] for i in range(ndim))
        offset += _DIM.size * ndim
        at += dtype.itemsize * int(np.prod(shape, dtype=np.int64))
        specs.append((shape, dtype, at))
    if offset != len(block) - 1:
        raise ValueError("malformed request layout")
    return (*specs, block[-1] == 1)


# Both caches hold pure functions of their key (dtypes and shapes), so every server and thread in a process shares
# them safely: a race at worst computes one entry twice.
_MAX_LAYOUTS = 64  # a vector env has one layout; a caller that varies its batch size gets a few
_HEADS: dict[tuple, tuple[bytes, int]] = {}  # the library's header bytes per layout
_LAYOUTS: dict[bytes, tuple[Any, ...]] = {}  # the worker's parsed layouts


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
