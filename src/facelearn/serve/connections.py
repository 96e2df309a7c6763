"""Connections before they are requests: a deadline for the headers, a cap on open connections, a quiet log.

uvicorn waits for a request's headers as long as the client likes, and headers come before any
key is checked. A few hundred half-sent requests ("slow-loris") thus held every file descriptor:
accept() failed, the readiness probe timed out, and asyncio logged a traceback per failed accept
(~119 MB in 45 s). Here, each connection:

* must finish a request's headers within ``header_timeout`` seconds of its first byte (of opening,
  for the first request), or it is closed;
* counts against a cap kept ``RESERVED_FILES`` below the process's file limit (raised to its hard
  limit when allowed). At the cap, the connection that has been idle or half-sent longest is
  closed to make room — a connection serving a request is never dropped — and when every one is
  busy, the new one is closed at once. So accept() never runs out of descriptors;
* and the log keeps one line a minute of the messages an attacker can repeat at will.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import time

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

RESERVED_FILES = 64  # the model, the gallery, the log, the worker threads' files
REPEATED = ("socket.accept() out of system resource", "Invalid HTTP request received.")


def connection_cap(wanted: int) -> int:
    """At most ``wanted`` connections, and never more than the file limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    goal = wanted + RESERVED_FILES
    if soft != resource.RLIM_INFINITY and soft < goal:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(
                resource.RLIMIT_NOFILE, (goal if hard == resource.RLIM_INFINITY else min(goal, hard), hard)
            )
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return max(1, min(wanted, soft - RESERVED_FILES)) if soft != resource.RLIM_INFINITY else wanted


class QuietRepeats(logging.Filter):
    """One line a minute (no traceback) for each message a client can make the server repeat."""

    def __init__(self, every_s: float = 60.0):
        super().__init__()
        self.every_s, self.last, self.dropped = every_s, {}, {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        key = next((m for m in REPEATED if message.startswith(m)), None)
        if key is None:
            return True
        now = time.monotonic()
        if now - self.last.get(key, -self.every_s) < self.every_s:
            self.dropped[key] = self.dropped.get(key, 0) + 1
            return False
        self.last[key] = now
        dropped = self.dropped.pop(key, 0)
        record.msg, record.args = key + (f" ({dropped} more since the last such line)" if dropped else ""), ()
        record.exc_info = record.exc_text = None
        return True


class GuardedConnection(H11Protocol):
    header_timeout: float = 10.0
    max_connections: int = 1000
    idle: dict  # connections with no request in progress, longest idle first (one per server: see below)

    def connection_made(self, transport) -> None:
        self.refused, self.header_timer = False, None
        if len(self.connections) >= self.max_connections and not self._drop_longest_idle():
            self.refused, self.transport = True, transport
            transport.abort()
            return
        super().connection_made(transport)
        self._note_state()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._note_state()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._note_state()

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        if not self.refused:
            super().connection_lost(exc)

    def _note_state(self) -> None:
        if self.transport.is_closing():
            self._forget()
        elif self.conn.their_state is h11.IDLE:  # between requests, or inside a request's headers
            self.idle.setdefault(self, None)
            if self.header_timer is None and (self.cycle is None or self.conn.trailing_data[0]):
                self.header_timer = self.loop.call_later(self.header_timeout, self._close)
        else:  # the headers are complete: a request is in progress
            self.idle.pop(self, None)
            self._cancel_timer()

    def _drop_longest_idle(self) -> bool:
        for connection in list(self.idle):
            if not connection.transport.is_closing():
                connection._close()
                return True
            self.idle.pop(connection, None)
        return False

    def _close(self) -> None:
        self._forget()
        if not self.transport.is_closing():
            with contextlib.suppress(h11.LocalProtocolError):
                self.conn.send(h11.ConnectionClosed())
            self.transport.close()

    def _forget(self) -> None:
        self.idle.pop(self, None)
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None


def guarded_connections(settings) -> type[GuardedConnection]:
    """The connection class uvicorn is given (``http=``), with this server's limits and its own idle list."""
    quiet = QuietRepeats()
    for name in ("asyncio", "uvicorn.error"):
        logging.getLogger(name).addFilter(quiet)
    attributes = {
        "header_timeout": settings.header_timeout_s,
        "max_connections": connection_cap(settings.max_connections),
        "idle": {},
    }
    return type("GuardedConnection", (GuardedConnection,), attributes)
