"""Slow clients, as in a slowloris attack: connections that each send part of a request, then one
more piece every few seconds, never finishing it. Used by tests/hardening (liveness while they
are open, the read deadline) and bench/run.py (the fast path's latency while they are open).

Half drip header lines (the headers never end); half send whole headers announcing a body, then
drip the body one byte at a time. One thread drips them all and notes when the server closed one.
"""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit

BODY_PATH = "/cds-services/hcc-systemic-therapy-select"


class SlowClients:
    """``count`` dripping connections to ``url``, a piece each ``every`` seconds. ``reopen``: open
    a new one for each the server closes, so that ``count`` stay open (an attacker's loop)."""

    def __init__(self, url: str, count: int, every: float = 2.0, reopen: bool = False):
        parts = urlsplit(url)
        self.address = (parts.hostname, parts.port)
        self.every = every
        self.reopen = reopen
        self.opened_at = time.monotonic()
        self.closed_after: list[float] = []  # seconds from start to each close by the server
        self._sockets = [self._open(i) for i in range(count)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, name="slow-clients", daemon=True)
        self._thread.start()

    @property
    def open(self) -> int:
        return sum(sock is not None for sock in self._sockets)

    def _open(self, i: int) -> socket.socket:
        host = self.address[0]
        sock = socket.create_connection(self.address, timeout=5)
        if i % 2 == 0:
            sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n".encode())
        else:
            sock.sendall(
                f"POST {BODY_PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                "Content-Length: 100000\r\n\r\n{".encode()
            )
        sock.setblocking(False)
        return sock

    def _closed_by_server(self, sock: socket.socket) -> bool:
        try:
            return sock.recv(65536, socket.MSG_PEEK) == b""  # end of stream (after an answer, if any)
        except BlockingIOError:  # nothing to read: still open
            return False
        except OSError:  # reset
            return True

    def _drip(self) -> None:
        n = 0
        while not self._stop.wait(self.every):
            n += 1
            for i, sock in enumerate(self._sockets):
                if sock is None:
                    if self.reopen:
                        self._sockets[i] = self._reopen(i)
                    continue
                try:
                    if not self._closed_by_server(sock):
                        sock.send(f"X-Drip-{n}: {n}\r\n".encode() if i % 2 == 0 else b" ")
                        continue
                except OSError:
                    pass
                sock.close()
                self.closed_after.append(time.monotonic() - self.opened_at)
                self._sockets[i] = self._reopen(i) if self.reopen else None

    def _reopen(self, i: int) -> socket.socket | None:
        try:
            return self._open(i)
        except OSError:  # refused or timed out: tried again at the next drip
            return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for sock in self._sockets:
            if sock is not None:
                sock.close()

    def __enter__(self) -> SlowClients:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()
