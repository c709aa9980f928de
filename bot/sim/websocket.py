"""The server side of RFC 6455 WebSocket framing, enough for the Socket Mode simulator."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import socket
import struct
import threading
from collections.abc import Mapping
from typing import Any

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
GOING_AWAY, PROTOCOL_ERROR = 1001, 1002


def frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked frame (servers never mask)."""
    size = len(payload)
    if size <= 125:
        header = struct.pack("!BB", 0x80 | opcode, size)
    elif size <= 0xFFFF:
        header = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return header + payload


def read_frame(rfile: io.BufferedIOBase) -> tuple[bool, int, bool, bytes] | None:
    """(fin, opcode, was masked, unmasked payload), or None when the connection ended."""

    def exactly(n: int) -> bytes:
        data = rfile.read(n) if n else b""
        if len(data) < n:
            raise EOFError
        return data

    try:
        first, second = exactly(2)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", exactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", exactly(8))
        is_masked = bool(second & 0x80)
        mask = exactly(4) if is_masked else b""
        data = exactly(size)
    except (EOFError, OSError, ValueError):
        return None
    if is_masked:
        data = bytes(byte ^ mask[i % 4] for i, byte in enumerate(data))
    return bool(first & 0x80), first & 0x0F, is_masked, data


class Connection:
    """One WebSocket session; frames from several threads go out whole, one at a time."""

    def __init__(self, sock: socket.socket, wfile: io.BufferedIOBase) -> None:
        self.is_open = True
        self._sock = sock
        self._wfile = wfile
        self._send_lock = threading.Lock()

    def send(self, opcode: int, payload: bytes) -> bool:
        with self._send_lock:
            if not self.is_open:
                return False
            try:
                self._wfile.write(frame(opcode, payload))
            except OSError:
                self.is_open = False
                return False
            return True

    def send_json(self, message: Mapping[str, Any]) -> bool:
        return self.send(TEXT, json.dumps(message).encode())

    def close(self, code: int, reason: str = "") -> None:
        """Send a close frame, then end the TCP connection (the reader sees EOF and returns)."""
        self.send(CLOSE, struct.pack("!H", code) + reason.encode())
        with self._send_lock:
            self.is_open = False
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept answer to a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
