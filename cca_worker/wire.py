"""Messages between a pool process, its fork server and its shims: each a 4-byte big-endian
length and a JSON object, with file descriptors attached to its first byte. Stdlib only."""

from __future__ import annotations

import json
import os
import socket
import struct
from collections.abc import Sequence
from typing import Any

MAX_FDS = 3
_HEADER = struct.Struct(">I")
_MAX_MESSAGE = 64 << 20


def send(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    """Send one message, with ``fds`` attached to its first byte. Raises OSError."""
    data = json.dumps(message).encode()
    frame = _HEADER.pack(len(data)) + data
    sent = socket.send_fds(sock, [frame], list(fds)) if fds else 0
    if sent < len(frame):  # sendall of nothing still writes, and fails once the peer left
        sock.sendall(frame[sent:])


def receive(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """The next message and the file descriptors sent with it; ``(None, [])`` at end of
    file. Raises OSError, and ValueError for a malformed message."""
    header, fds = b"", []
    while len(header) < _HEADER.size:
        data, got, _, _ = socket.recv_fds(sock, _HEADER.size - len(header), MAX_FDS,
                                          socket.MSG_CMSG_CLOEXEC)
        fds += got
        if not data:
            close(fds)
            return None, []
        header += data
    (size,) = _HEADER.unpack(header)
    if size > _MAX_MESSAGE:
        close(fds)
        raise ValueError(f"message of {size} bytes")
    body = bytearray()
    while len(body) < size:
        chunk = sock.recv(min(size - len(body), 1 << 20))
        if not chunk:
            close(fds)
            return None, []
        body += chunk
    return json.loads(body), fds


def close(fds: Sequence[int]) -> None:
    for fd in fds:
        os.close(fd)
