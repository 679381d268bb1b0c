"""A small clamd client: the zINSTREAM command over TCP, fed from a file object in chunks.

clamd's stream protocol: send `zINSTREAM\\0`, then the data as chunks each prefixed with its length
(4 bytes, big-endian), then a zero length; clamd answers one NUL-terminated line, `stream: OK` or
`stream: <signature> FOUND` (or `... ERROR`). Anything else than those two answers — a refused
connection, a timeout, a dropped connection, an error line, a reply we do not understand — is
UNREACHABLE: the file was not scanned, and that never counts as clean.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from enum import StrEnum
from typing import BinaryIO

CHUNK_SIZE = 64 * 1024
MAX_REPLY = 4096


class Verdict(StrEnum):
    CLEAN = "clean"
    INFECTED = "infected"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class ScanResult:
    verdict: Verdict
    signature: str | None = None  # the malware's name, when infected
    detail: str = ""  # why the scan did not happen, for the log

    @property
    def clean(self) -> bool:
        return self.verdict is Verdict.CLEAN

    @property
    def infected(self) -> bool:
        return self.verdict is Verdict.INFECTED


class ClamdClient:
    """Talks to one clamd. `timeout` bounds every step (connecting, each send, waiting for the verdict)."""

    def __init__(self, host: str, port: int = 3310, timeout: float = 30.0, chunk_size: int = CHUNK_SIZE):
        self.host, self.port, self.timeout, self.chunk_size = host, port, timeout, chunk_size

    def describe(self) -> str:
        return f"clamd at {self.host}:{self.port}"

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.settimeout(self.timeout)
        return sock

    @staticmethod
    def _read_reply(sock: socket.socket) -> str:
        data = b""
        while b"\0" not in data and len(data) < MAX_REPLY:
            part = sock.recv(1024)
            if not part:
                break
            data += part
        return data.split(b"\0", 1)[0].decode("utf-8", "replace").strip()

    def ping(self) -> bool:
        """Whether clamd answers PING with PONG."""
        try:
            with self._connect() as sock:
                sock.sendall(b"zPING\0")
                return self._read_reply(sock) == "PONG"
        except OSError:
            return False

    def scan_stream(self, fileobj: BinaryIO) -> ScanResult:
        """Send the stream to clamd chunk by chunk (never all of it in memory) and return the verdict."""
        try:
            with self._connect() as sock:
                sock.sendall(b"zINSTREAM\0")
                try:
                    while chunk := fileobj.read(self.chunk_size):
                        sock.sendall(struct.pack(">I", len(chunk)) + chunk)
                    sock.sendall(struct.pack(">I", 0))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # clamd stops reading when it refuses the stream (size limit): its reply says why
                reply = self._read_reply(sock)
        except TimeoutError:
            return ScanResult(Verdict.UNREACHABLE, detail=f"{self.describe()}: no answer within {self.timeout:g} s")
        except OSError as exc:
            return ScanResult(Verdict.UNREACHABLE, detail=f"{self.describe()}: {exc}")
        return parse_reply(reply, self.describe())


def parse_reply(reply: str, where: str = "clamd") -> ScanResult:
    """clamd's answer to one INSTREAM; only the two exact success forms are believed."""
    text = reply.removeprefix("stream:").strip() if reply.startswith("stream:") else None
    if text == "OK":
        return ScanResult(Verdict.CLEAN)
    if text and text.endswith(" FOUND"):
        signature = text.removesuffix(" FOUND").strip()
        if signature:
            return ScanResult(Verdict.INFECTED, signature=signature[:200])
    return ScanResult(Verdict.UNREACHABLE, detail=f"{where}: unexpected reply {reply[:200]!r}")
