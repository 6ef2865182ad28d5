"""The only format that crosses the trust boundary: a JSON header and raw numeric arrays.

A frame is ``uint32 header length | header (UTF-8 JSON) | array bytes``. The header's
``arrays`` list gives each array's dtype (little-endian numeric types only) and shape;
their bytes follow in order. Nothing is ever pickled: decoding a frame can build only
dicts, lists, strings, numbers and numpy arrays, whatever the peer sends. Both sides use
this module; it imports nothing but the standard library and numpy.
"""

from __future__ import annotations

import json
import socket
import struct
import time

import numpy as np

MAX_HEADER_BYTES = 1 << 20
# The little-endian numeric dtypes a frame may carry (bool, ints, floats).
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


def encode(header: dict, arrays: tuple[np.ndarray, ...] = ()) -> list[bytes | memoryview]:
    """The pieces of one frame (send them in order)."""
    arrays = tuple(np.ascontiguousarray(a) for a in arrays)
    for a in arrays:
        if a.dtype.str not in DTYPES:
            raise ProtocolError(f"cannot send dtype {a.dtype}")
    head = json.dumps({**header, "arrays": [describe(a) for a in arrays]}).encode()
    return [_LENGTH.pack(len(head)), head, *(memoryview(a).cast("B") for a in arrays)]


def send(sock: socket.socket, header: dict, arrays: tuple[np.ndarray, ...] = ()) -> None:
    for piece in encode(header, arrays):
        sock.sendall(piece)


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
    """Read one frame's header (its arrays, if any, are still to be read with :func:`recv_arrays`)."""
    (size,) = _LENGTH.unpack(_recv_exact(sock, 4, deadline))
    if size > MAX_HEADER_BYTES:
        raise ProtocolError(f"a header of {size} bytes is over the limit")
    try:
        header = json.loads(bytes(_recv_exact(sock, size, deadline)).decode())
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"header is not JSON: {exc.__class__.__name__}") from None
    if not isinstance(header, dict) or not isinstance(header.get("arrays", []), list):
        raise ProtocolError("header must be a JSON object")
    return header


def recv_arrays(sock: socket.socket, header: dict, max_bytes: int, deadline: float | None = None) -> list[np.ndarray]:
    """The arrays a header announces, read into fresh buffers this side owns."""
    layouts = [checked_layout(e, max_bytes) for e in header.get("arrays", [])]
    if sum(n for _, _, n in layouts) > max_bytes:
        raise ProtocolError(f"the arrays are over the {max_bytes}-byte limit")
    return [np.frombuffer(_recv_exact(sock, n, deadline), dtype=d).reshape(s) for d, s, n in layouts]


def recv(sock: socket.socket, max_bytes: int, deadline: float | None = None) -> tuple[dict, list[np.ndarray]]:
    header = recv_header(sock, deadline)
    return header, recv_arrays(sock, header, max_bytes, deadline)
