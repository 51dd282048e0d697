"""The typed channel between a sandbox worker and the library: length-prefixed frames of numbers on a private pipe.

The worker writes frames to a pipe whose file descriptor only it and the library hold; whatever the reward code
prints goes to stdout, which the library never parses. Frames are decoded strictly: a size cap, no NaN or
Infinity tokens, and per-type schemas (numbers must be finite, component dicts are bounded).

Two kinds of frame body: JSON objects (every job's messages and errors), and the reward server's per-batch
``rewards`` frame, a tagged binary block of float64 (a reply per vector step, so it must cost microseconds, not
a JSON round of every number). Both are checked as strictly: the binary one by its exact length, its batch
size, its names and one finiteness test over all values.

    >>> frame = encode({"type": "result", "ok": True, "value": 1.5})
    >>> decode_payload(frame[4:])["value"]
    1.5
    >>> names, values = decode_rewards(encode_rewards(("speed",), [(1.0, 0.5), (2.0, 0.25)])[4:], n=2)
    >>> names, values.tolist()
    (('speed',), [[1.0, 2.0], [0.5, 0.25]])
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import re
import select
import struct
import time
from typing import Any, Sequence

import numpy as np

MAX_FRAME_BYTES = 8 * 1024 * 1024
MAX_COMPONENTS = 32
MAX_NAME_CHARS = 64
MAX_REASON_CHARS = 400
MAX_ABS_VALUE = 1e9
#: Largest |reward| (total or component) of one transition, checked on every call at run time, not only in the
#: smoke test: a reward beyond it is a bug or an attack on the training run, never a useful signal.
MAX_ABS_REWARD = 1e4
#: A component name: letters, digits and ``_ . : - + / ( ) [ ]`` or spaces (no control characters, no newlines:
#: names reach the reflection prompt), not starting with ``__`` (kept for the library's own keys).
NAME_PATTERN = re.compile(r"(?!__)[A-Za-z0-9_.:+\-/()\[\] ]{1,%d}" % MAX_NAME_CHARS)
_HEADER = struct.Struct(">I")

#: First bytes of a binary ``rewards`` frame. It starts with NUL, which no JSON text does, so a JSON reader
#: (every other job mode) refuses it as undecodable instead of misreading it.
REWARDS_TAG = b"\x00rw1"
_REWARDS_HEAD = struct.Struct("<4sIHI")  # tag, n transitions, k components, byte length of the name block
_NAME_SIZE = struct.Struct("<H")  # byte length of one UTF-8 component name
_FLOAT64 = np.dtype("<f8")


class ChannelError(RuntimeError):
    """A malformed, oversized or non-numeric frame, or a channel that closed or timed out."""


def encode(message: dict[str, Any]) -> bytes:
    """One frame: a 4-byte big-endian length, then compact JSON (NaN/inf refused)."""
    body = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
    if len(body) > MAX_FRAME_BYTES:
        raise ChannelError(f"frame of {len(body)} bytes exceeds {MAX_FRAME_BYTES}")
    return _HEADER.pack(len(body)) + body


def write_frame(fd: int, message: dict[str, Any]) -> None:
    write_bytes(fd, encode(message))


def write_bytes(fd: int, data: bytes) -> None:
    """Write a whole encoded frame (a pipe may take a large one in several writes)."""
    written = os.write(fd, data)  # the usual case: one write takes it all
    if written < len(data):
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view):]


def _refuse_constant(token: str) -> float:
    raise ChannelError(f"non-finite number {token} in a frame")


def decode_payload(body: bytes) -> dict[str, Any]:
    """Parse one frame body into a dict, refusing NaN/Infinity and non-object payloads."""
    try:
        message = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except (ValueError, RecursionError, MemoryError) as exc:  # bad UTF-8 or JSON, an integer beyond the digit
        raise ChannelError(f"undecodable frame: {type(exc).__name__}") from None  # limit, nesting too deep
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ChannelError("a frame must be a JSON object with a string 'type'")
    return message


def encode_rewards(names: Sequence[str], rows: Sequence[Sequence[float]]) -> bytes:
    """One binary ``rewards`` frame for a batch of ``n`` transitions, ``rows[i] = (total, *components)`` in
    ``names`` order: the tag, ``n``, ``k``, the name block, then ``n * (1 + k)`` little-endian float64 (row by
    row, as the rows come)."""
    names = tuple(names)
    block = _name_block(names)
    width = 1 + len(names)
    if rows and set(map(len, rows)) != {width}:
        raise ChannelError(f"a row of rewards does not hold a total and {len(names)} components")
    count = len(rows) * width
    size = _REWARDS_HEAD.size + len(block) + 8 * count
    if size > MAX_FRAME_BYTES:
        raise ChannelError(f"frame of {size} bytes exceeds {MAX_FRAME_BYTES}")
    # struct packs the rows in half the time numpy takes to build and copy an array this small
    values = _float64s(count).pack(*itertools.chain.from_iterable(rows)) if rows else b""
    return b"".join((_HEADER.pack(size), _REWARDS_HEAD.pack(REWARDS_TAG, len(rows), len(names), len(block)), block,
                     values))


@functools.lru_cache(maxsize=16)
def _float64s(count: int) -> struct.Struct:
    return struct.Struct(f"<{count}d")


@functools.lru_cache(maxsize=16)
def _name_block(names: tuple[str, ...]) -> bytes:
    """Each name as a 2-byte length and its UTF-8 bytes (cached: a reward function's names never change)."""
    return b"".join(_NAME_SIZE.pack(len(raw)) + raw for raw in (name.encode() for name in names))


def decode_rewards(body: bytes, n: int) -> tuple[tuple[str, ...], np.ndarray]:
    """Component names and a read-only ``(1 + k, n)`` float64 array (row 0: totals) from a ``rewards`` frame body.

    ChannelError unless it is exactly one well-formed frame for ``n`` transitions: at most ``MAX_COMPONENTS``
    distinct names of 1-``MAX_NAME_CHARS`` characters, and every value finite within +-``MAX_ABS_VALUE``.
    """
    if len(body) < _REWARDS_HEAD.size:
        raise ChannelError("truncated rewards frame")
    tag, count, k, block_size = _REWARDS_HEAD.unpack_from(body)
    if tag != REWARDS_TAG:
        raise ChannelError("not a rewards frame")
    if count != n:
        raise ChannelError(f"rewards frame for {count} transitions; {n} were sent")
    if k > MAX_COMPONENTS:
        raise ChannelError(f"rewards frame has {k} components; the limit is {MAX_COMPONENTS}")
    offset = _REWARDS_HEAD.size + block_size
    if len(body) - offset != (1 + k) * n * _FLOAT64.itemsize:
        raise ChannelError(f"rewards frame of {len(body)} bytes does not hold {(1 + k) * n} float64 values")
    names = _parse_names(body[_REWARDS_HEAD.size:offset], k)
    values = np.ndarray((n, 1 + k), _FLOAT64, body, offset).T  # read-only: a view of the frame's bytes
    if not np.abs(values).max(initial=0.0) <= MAX_ABS_REWARD:  # one test for NaN, inf and huge values alike
        raise ChannelError(f"a reward is non-finite or beyond +-{MAX_ABS_REWARD:g}")
    return names, values


@functools.lru_cache(maxsize=16)
def _parse_names(block: bytes, k: int) -> tuple[str, ...]:
    """``k`` distinct names of 1-``MAX_NAME_CHARS`` characters filling ``block`` exactly; ChannelError otherwise.

    Cached on the block's bytes: every frame of one reward function carries the same block, so the check runs
    once (a failing block raises every time; exceptions are not cached).
    """
    offset, names = 0, []
    for _ in range(k):
        if offset + _NAME_SIZE.size > len(block):
            raise ChannelError("truncated name block in a rewards frame")
        (size,) = _NAME_SIZE.unpack_from(block, offset)
        offset += _NAME_SIZE.size
        if offset + size > len(block):
            raise ChannelError("truncated name block in a rewards frame")
        try:
            name = block[offset:offset + size].decode("utf-8")
        except UnicodeDecodeError:
            raise ChannelError("a component name is not UTF-8") from None
        if not valid_name(name):
            raise ChannelError(f"bad component name {name[:80]!r} (letters, digits, _.:+-/()[] and spaces)")
        names.append(name)
        offset += size
    if offset != len(block):
        raise ChannelError("stray bytes after the names of a rewards frame")
    if len(set(names)) != k:
        raise ChannelError("repeated component name in a rewards frame")
    return tuple(names)


#: How long a reader polls the pipe (yielding the CPU between tries) before it sleeps in ``select``: a reply comes
#: within about a tenth of a millisecond, and waking a sleeping reader (an idle virtual CPU, here) costs more than
#: that. On a quiet 2-core VM this took code reward inside PPO from 0.73x to 0.78x the env's own steps/s.
SPIN_S = 0.0005


class FrameReader:
    """Reads frames from a pipe's read end with a deadline (``select``), so a silent worker cannot hang us."""

    def __init__(self, fd: int):
        self.fd = fd
        os.set_blocking(fd, False)
        self._buffer = bytearray()
        self.closed = False

    def _poll(self) -> bytes | None:
        """What the pipe holds within ``SPIN_S`` (``b""`` at end of stream), ``None`` if nothing came."""
        end = time.perf_counter() + SPIN_S
        while True:
            try:
                return os.read(self.fd, 1 << 16)
            except BlockingIOError:
                if time.perf_counter() > end:
                    return None
                os.sched_yield()

    def read(self, deadline: float) -> dict[str, Any] | None:
        """The next frame, ``None`` at end of stream; ChannelError when ``deadline`` (time.monotonic) passes."""
        body = self.read_body(deadline)
        return None if body is None else decode_payload(body)

    def read_body(self, deadline: float) -> bytes | None:
        """The next frame's undecoded body (the caller decides between JSON and a binary rewards frame)."""
        while True:
            if len(self._buffer) >= _HEADER.size:
                (size,) = _HEADER.unpack_from(self._buffer)
                if size > MAX_FRAME_BYTES:
                    raise ChannelError(f"frame of {size} bytes exceeds {MAX_FRAME_BYTES}")
                if len(self._buffer) >= _HEADER.size + size:
                    body = bytes(self._buffer[_HEADER.size:_HEADER.size + size])
                    del self._buffer[:_HEADER.size + size]
                    return body
            if self.closed:
                if self._buffer:
                    raise ChannelError("the channel closed in the middle of a frame")
                return None
            remaining = deadline - time.monotonic()  # checked on every chunk: a trickling worker cannot hang us
            if remaining <= 0:
                raise ChannelError("timed out")
            chunk = self._poll()
            if chunk is None:
                ready, _, _ = select.select([self.fd], [], [], remaining)
                if not ready:
                    continue
                chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                self.closed = True
            elif not self._buffer and len(chunk) >= _HEADER.size:  # the usual case: exactly one whole frame
                (size,) = _HEADER.unpack_from(chunk)
                if len(chunk) == _HEADER.size + size and size <= MAX_FRAME_BYTES:
                    return chunk[_HEADER.size:]
            self._buffer += chunk


# -- schema checks (library side) -------------------------------------------------------------------------------
def finite_number(value: Any, what: str) -> float:
    """``value`` as a float if it is a finite real number within +-1e9 (bools excluded); ChannelError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ChannelError(f"{what} is {type(value).__name__}, not a number")
    if isinstance(value, int) and abs(value) > MAX_ABS_VALUE:  # before float(): a huge int overflows it
        raise ChannelError(f"{what} is an integer beyond +-{MAX_ABS_VALUE:g}")
    value = float(value)
    if not math.isfinite(value) or abs(value) > MAX_ABS_VALUE:
        raise ChannelError(f"{what} = {value} is not a finite number within +-{MAX_ABS_VALUE:g}")
    return value


def optional_number(value: Any, what: str) -> float | None:
    return None if value is None else finite_number(value, what)


def component_means(value: Any, what: str = "components") -> dict[str, float]:
    """A bounded ``{name: finite number}`` dict."""
    if not isinstance(value, dict):
        raise ChannelError(f"{what} is {type(value).__name__}, not a dict")
    if len(value) > MAX_COMPONENTS:
        raise ChannelError(f"{what} has {len(value)} entries; the limit is {MAX_COMPONENTS}")
    out = {}
    for name, number in value.items():
        if not valid_name(name):
            raise ChannelError(f"{what} has a bad name {str(name)[:80]!r}")
        out[name] = finite_number(number, f"{what}[{name!r}]")
    return out


def number_list(value: Any, what: str, max_len: int = 100_000) -> list[float]:
    if not isinstance(value, list) or len(value) > max_len:
        raise ChannelError(f"{what} must be a list of at most {max_len} numbers")
    return [finite_number(v, f"{what}[{i}]") for i, v in enumerate(value)]


def valid_name(name: Any) -> bool:
    """Whether ``name`` may name a reward component (see ``NAME_PATTERN``)."""
    return isinstance(name, str) and NAME_PATTERN.fullmatch(name) is not None


def reason_text(value: Any) -> str:
    """A worker's one-line failure reason, flattened, truncated and always encodable as UTF-8 (it may quote the
    reward code's own message, lone surrogates included)."""
    try:
        text = value if isinstance(value, str) else repr(value)[:MAX_REASON_CHARS]
    except Exception:  # noqa: BLE001 - an int beyond repr's digit limit, say
        text = f"a reason of type {type(value).__name__}"
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    text = " ".join(text.split())
    return text[:MAX_REASON_CHARS] or "unknown error"
