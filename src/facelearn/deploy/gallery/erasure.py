"""Erasing deleted faces from an SQLite gallery's files, never waiting on a reader.

The commit and the erasure are separate steps. A write commits without waiting for readers (WAL);
the erasure (``wal_checkpoint(TRUNCATE)``, with ``secure_delete`` on) cannot finish while another
connection reads an older snapshot, and is never waited for: one attempt with no busy timeout, and
when a reader is in the way the erasure is *pending* — retried every :data:`ERASE_RETRY_S` by a timer,
at the next write, and on close (or, if the process ended first, when the gallery is next opened).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("facelearn.gallery")
ERASE_RETRY_S = 1.0  # how often a pending erasure is tried again while a reader holds an older snapshot
ERASURE_PENDING = (
    "pending: another connection is reading an older snapshot; the deleted data is erased from the "
    f"database files as soon as it lets go (tried every {ERASE_RETRY_S:g} s, at the next write and on close)"
)


class WalErasure:
    def __init__(self, db: sqlite3.Connection, lock: threading.RLock, path: Path, busy_timeout_s: float):
        """``lock``: the gallery's (the timer's retries take it too); ``busy_timeout_s``: the connection's, restored
        after each attempt."""
        self.db, self.lock, self.path, self.busy_timeout_s = db, lock, path, busy_timeout_s
        self.pending, self.retry, self.closed = False, None, False

    def attempt(self) -> bool:
        """One attempt at ``wal_checkpoint(TRUNCATE)`` with no busy timeout: it never waits on a reader. True when
        done; False when it is pending (and retried by a timer)."""
        with self.lock:
            if self.closed:
                return not self.pending
            self.db.execute("PRAGMA busy_timeout = 0")
            try:
                busy = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            finally:
                self.db.execute(f"PRAGMA busy_timeout = {self.busy_timeout_s * 1000}")
            self.pending = bool(busy)
            if self.pending and self.retry is None:
                self.retry = threading.Timer(ERASE_RETRY_S, self._retry)
                self.retry.daemon = True
                self.retry.start()
            return not self.pending

    def _retry(self) -> None:
        with self.lock:
            self.retry = None
            if self.pending and not self.closed:
                self.attempt()

    def close(self) -> None:
        """A last attempt (still pending: said in the log; the next checkpoint or open erases it), the timer
        stopped. The connection is the gallery's to close."""
        with self.lock:
            if self.pending and not self.attempt():
                log.warning(
                    "%s: deleted data is still in %s-wal (another connection reads an older snapshot); "
                    "the next checkpoint or open of the gallery erases it",
                    self.path,
                    self.path,
                )
            if self.retry is not None:
                self.retry.cancel()
                self.retry = None
            self.closed = True
