"""The HTTP server inside each gunicorn worker: waitress, which reads every request whole before a
thread runs the app.

gunicorn's threaded worker gave a connection to a thread as soon as its first bytes arrived, and
the thread then waited for the rest: 16 clients sending a header line every 2 s held every thread,
and nothing else was answered, ``/healthz`` included (issue 22). waitress reads requests in its
event loop (a body over 512 KiB goes to a temporary file), so a slow client holds a connection,
never a thread. gunicorn stays the master: it binds a socket per worker (``SO_REUSEPORT``), forks,
replaces dead workers, watches their heartbeat and stops them on SIGTERM, as before.

Added here to what waitress does: the read deadline (waitress only closes a connection silent for
longer than its ``channel_timeout``, and a client dripping a byte a second is never silent), the
gunicorn heartbeat, a graceful stop, and JSON bodies for the requests waitress refuses itself.
"""

from __future__ import annotations

import json
import os
import time

from gunicorn.workers.base import Worker
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher

from .settings import Settings

STOP_LINGER_SECONDS = 1.0  # a stopping worker still reads a request just sent on a kept-alive connection


def worker_class(read_seconds: float, max_body_bytes: int) -> type[Worker]:
    """The gunicorn worker class, with the read deadline and the largest body (``CDS_REQUEST_READ_SECONDS``,
    ``CDS_MAX_REQUEST_BYTES``); threads and connections come from gunicorn's ``threads`` and
    ``worker_connections``."""
    return type("WaitressWorker", (WaitressWorker,), {"read_seconds": read_seconds, "max_body_bytes": max_body_bytes})


class _JsonErrorTask(ErrorTask):
    """A request waitress refuses before the app sees it (body over the limit, malformed): answered
    in the app's error shape, ``{"error": code, "message": text}``."""

    def execute(self) -> None:
        error = self.request.error
        body = json.dumps({"error": error.reason.lower().replace(" ", "_"), "message": error.body}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _Channel(HTTPChannel):
    """One connection; notes since when it waits for a request (opened or last answered) and when
    the request being read began (its first byte)."""

    error_task_class = _JsonErrorTask

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.waiting_since = self.request_began = time.monotonic()

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.request_began = time.monotonic()
        return super().received(data)

    def service(self) -> None:
        super().service()
        self.waiting_since = time.monotonic()

    @property
    def busy(self) -> bool:
        """A request is being read, run or sent."""
        return bool(self.requests or self.request is not None or self.total_outbufs_len)


class _Server(TcpWSGIServer):
    channel_class = _Channel
    read_seconds = 15.0

    def maintenance(self, now: float) -> None:
        """Close a connection whose request has not arrived whole ``read_seconds`` after its first
        byte, or that has sent nothing for ``read_seconds`` (waitress calls this every
        ``cleanup_interval``)."""
        cutoff = time.monotonic() - self.read_seconds
        for channel in list(self.active_channels.values()):
            if channel.requests:  # read whole: a thread has it or will
                continue
            began = channel.waiting_since if channel.request is None else channel.request_began
            if began < cutoff:
                channel.will_close = True


class WaitressWorker(Worker):
    read_seconds = 15.0
    max_body_bytes: int = Settings.model_fields["max_request_bytes"].default  # used as is by bench/bare_app.py

    @classmethod
    def check_config(cls, cfg, log) -> None:
        """Called by the gunicorn master once at start, just after its own "Listening at" line.
        With ``reuse_port`` the master binds nothing (each worker binds its own socket), so that
        line names no address ("Listening at:  (2081)"): this one names the address bound."""
        log.info(
            "Listening at: %s (%s), one socket per worker", ",".join(f"http://{bind}" for bind in cfg.bind), os.getpid()
        )

    def run(self) -> None:
        connections: dict = {}  # waitress's socket map: listening sockets, connections, its wake-up pipe
        adjustments = Adjustments(
            threads=self.cfg.threads,
            # The map also holds the listening sockets and the wake-up pipe.
            connection_limit=self.cfg.worker_connections + len(self.sockets) + 1,
            channel_timeout=self.read_seconds,  # _Server.maintenance applies the stricter rule
            cleanup_interval=1,
            max_request_body_size=self.max_body_bytes,
            backlog=self.cfg.backlog,
            asyncore_use_poll=True,  # select() stops at file descriptor 1024
            ident="",  # no Server header
        )
        dispatcher = ThreadedTaskDispatcher()
        dispatcher.set_thread_count(self.cfg.threads)
        servers = []
        for listener in self.sockets:
            sock = listener.sock
            server = _Server(
                self.wsgi,
                map=connections,
                _sock=sock,
                dispatcher=dispatcher,
                adj=adjustments,
                bind_socket=False,
                sockinfo=(sock.family, sock.type, sock.proto, sock.getsockname()),
            )
            server.read_seconds = self.read_seconds
            servers.append(server)

        beat = 0.0
        while self.alive:
            wasyncore.loop(timeout=1.0, map=connections, use_poll=True, count=1)
            if time.monotonic() - beat >= 1.0:
                # Once a second, not after every event: a system call here, just after a request
                # was handed to a thread, made this loop queue for the GIL behind that thread
                # (slower one call at a time: measured in bench/README.md).
                beat = time.monotonic()
                self.notify()
                if self.ppid != os.getppid():
                    self.log.info("Parent changed, shutting down: %s", self)
                    break
        self._drain(servers, connections, dispatcher)

    def _drain(self, servers, connections, dispatcher) -> None:
        """Accept no more connections (with ``SO_REUSEPORT`` the kernel sends new ones to the other
        workers), let requests being read, run or sent finish within ``graceful_timeout``, then stop."""
        for server in servers:
            server.accepting = False
            server.socket.close()
        linger_until = time.monotonic() + STOP_LINGER_SECONDS
        deadline = time.monotonic() + self.cfg.graceful_timeout
        while time.monotonic() < deadline:
            channels = [c for c in connections.values() if isinstance(c, HTTPChannel)]
            if not any(c.busy for c in channels) and (not channels or time.monotonic() >= linger_until):
                break
            self.notify()
            wasyncore.loop(timeout=0.1, map=connections, use_poll=True, count=1)
        dispatcher.shutdown(cancel_pending=True, timeout=max(deadline - time.monotonic(), 0.5))
        for server in servers:
            server.close()
