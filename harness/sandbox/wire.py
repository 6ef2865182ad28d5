"""The only format that crosses the trust boundary: length-prefixed JSON headers.

A frame is ``uint32 length | header (UTF-8 JSON object)``. Arrays never travel in a
frame: they sit in the task's shared memory, and a header only describes them (dtype,
shape, offset), a description :func:`checked_layout` refuses unless it is a plain
little-endian numeric array within bounds. Nothing is ever pickled: decoding a frame can
build only dicts, lists, strings and numbers, whatever the peer sends. Both sides use
this module; it imports nothing but the standard library and numpy.
"""

from __future__ import annotations

import json
import socket
import struct
import time

import numpy as np

MAX_HEADER_BYTES = 1 << 20
# The little-endian numeric dtypes an array description may name (bool, ints, floats).
DTYPES = frozenset({"|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f4", "<f8"})
_LENGTH = struct.Struct("<I")


class ProtocolError(Exception):
    """The peer sent something that is not a frame of this protocol (or went away)."""


class PeerClosed(ProtocolError):
    """The peer closed the connection."""


class Deadline(Exception):
    """The deadline passed while waiting for the peer."""


def describe(array: np.ndarray) -> dict:
    """The header entry of ``array``."""
    return {"dtype": array.dtype.str, "shape": list(array.shape)}


def checked_layout(entry: object, max_bytes: int) -> tuple[np.dtype, tuple[int, ...], int]:
    """``(dtype, shape, nbytes)`` of a header entry, refusing anything but a small numeric array."""
    if not isinstance(entry, dict) or not isinstance(entry.get("dtype"), str) \
            or not isinstance(entry.get("shape"), list):
        raise ProtocolError("array entry must be {dtype, shape}")
    if entry["dtype"] not in DTYPES:
        raise ProtocolError(f"dtype {entry['dtype'][:20]!r} is not a plain numeric type")
    shape = entry["shape"]
    if len(shape) > 8 or not all(type(s) is int and 0 <= s < 2**40 for s in shape):
        raise ProtocolError("array shape must be at most 8 non-negative integers")
    dtype = np.dtype(entry["dtype"])
    nbytes = dtype.itemsize * int(np.prod(shape, dtype=np.float64))
    if nbytes > max_bytes:
        raise ProtocolError(f"an array of {nbytes} bytes is over the {max_bytes}-byte limit")
    return dtype, tuple(shape), nbytes


def send(sock: socket.socket, header: dict) -> None:
    head = json.dumps(header).encode()
    sock.sendall(_LENGTH.pack(len(head)) + head)


def _recv_exact(sock: socket.socket, size: int, deadline: float | None) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Deadline()
            sock.settimeout(remaining)
        try:
            n = sock.recv_into(view[got:], size - got)
        except TimeoutError:
            raise Deadline() from None
        except (ConnectionError, OSError) as exc:
            raise PeerClosed(str(exc)) from None
        if n == 0:
            raise PeerClosed("connection closed")
        got += n
    return buffer


def recv_header(sock: socket.socket, deadline: float | None = None) -> dict:
    """Read one frame."""
    (size,) = _LENGTH.unpack(_recv_exact(sock, 4, deadline))
    if size > MAX_HEADER_BYTES:
        raise ProtocolError(f"a header of {size} bytes is over the limit")
    try:
        header = json.loads(bytes(_recv_exact(sock, size, deadline)).decode())
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"header is not JSON: {exc.__class__.__name__}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header must be a JSON object")
    return header
