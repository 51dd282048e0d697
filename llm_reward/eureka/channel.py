"""The typed channel between a sandbox worker and the library: length-prefixed JSON of numbers on a private pipe.

The worker writes frames to a pipe whose file descriptor only it and the library hold; whatever the reward code
prints goes to stdout, which the library never parses. Frames are decoded strictly: a size cap, no NaN or
Infinity tokens, and per-type schemas (numbers must be finite, component dicts are bounded).

    >>> frame = encode({"type": "result", "ok": True, "value": 1.5})
    >>> decode_payload(frame[4:])["value"]
    1.5
"""

from __future__ import annotations

import json
import math
import os
import select
import struct
import time
from typing import Any

MAX_FRAME_BYTES = 8 * 1024 * 1024
MAX_COMPONENTS = 32
MAX_NAME_CHARS = 64
MAX_REASON_CHARS = 400
MAX_ABS_VALUE = 1e9
_HEADER = struct.Struct(">I")


class ChannelError(RuntimeError):
    """A malformed, oversized or non-numeric frame, or a channel that closed or timed out."""


def encode(message: dict[str, Any]) -> bytes:
    """One frame: a 4-byte big-endian length, then compact JSON (NaN/inf refused)."""
    body = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
    if len(body) > MAX_FRAME_BYTES:
        raise ChannelError(f"frame of {len(body)} bytes exceeds {MAX_FRAME_BYTES}")
    return _HEADER.pack(len(body)) + body


def write_frame(fd: int, message: dict[str, Any]) -> None:
    data = encode(message)
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _refuse_constant(token: str) -> float:
    raise ChannelError(f"non-finite number {token} in a frame")


def decode_payload(body: bytes) -> dict[str, Any]:
    """Parse one frame body into a dict, refusing NaN/Infinity and non-object payloads."""
    try:
        message = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ChannelError(f"undecodable frame: {type(exc).__name__}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ChannelError("a frame must be a JSON object with a string 'type'")
    return message


class FrameReader:
    """Reads frames from a pipe's read end with a deadline (``select``), so a silent worker cannot hang us."""

    def __init__(self, fd: int):
        self.fd = fd
        self._buffer = bytearray()
        self.closed = False

    def read(self, deadline: float) -> dict[str, Any] | None:
        """The next frame, ``None`` at end of stream; ChannelError when ``deadline`` (time.monotonic) passes."""
        while True:
            if len(self._buffer) >= _HEADER.size:
                (size,) = _HEADER.unpack_from(self._buffer)
                if size > MAX_FRAME_BYTES:
                    raise ChannelError(f"frame of {size} bytes exceeds {MAX_FRAME_BYTES}")
                if len(self._buffer) >= _HEADER.size + size:
                    body = bytes(self._buffer[_HEADER.size:_HEADER.size + size])
                    del self._buffer[:_HEADER.size + size]
                    return decode_payload(body)
            if self.closed:
                if self._buffer:
                    raise ChannelError("the channel closed in the middle of a frame")
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChannelError("timed out")
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                self.closed = True
            self._buffer += chunk


# -- schema checks (library side) -------------------------------------------------------------------------------
def finite_number(value: Any, what: str) -> float:
    """``value`` as a float if it is a finite real number within +-1e9 (bools excluded); ChannelError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ChannelError(f"{what} is {type(value).__name__}, not a number")
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
        if not isinstance(name, str) or not name or len(name) > MAX_NAME_CHARS:
            raise ChannelError(f"{what} has a bad name {str(name)[:80]!r}")
        out[name] = finite_number(number, f"{what}[{name!r}]")
    return out


def number_list(value: Any, what: str, max_len: int = 100_000) -> list[float]:
    if not isinstance(value, list) or len(value) > max_len:
        raise ChannelError(f"{what} must be a list of at most {max_len} numbers")
    return [finite_number(v, f"{what}[{i}]") for i, v in enumerate(value)]


def reason_text(value: Any) -> str:
    """A worker's one-line failure reason, flattened and truncated (it may quote the reward code's own message)."""
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text[:MAX_REASON_CHARS] or "unknown error"
