"""Files that are never half-written, and folders that one job at a time may write.

* :func:`write_atomic` writes to a temporary name in the same folder, flushes it to disk and renames
  it over the target: a crash, a kill or a full disk leaves the old file or the new one, never half
  of one, and the temporary file is removed when the write fails.
* :class:`DirectoryLock` is an exclusive ``fcntl`` lock on ``<folder>/.lock``. The file names the
  owner (pid, host, start time) so a refused second job can say who holds it; the owner removes the
  file as it lets go, and the operating system drops the lock when its owner dies, so a lock file
  left by a killed job is never stale.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import FacelearnError


class LockedError(FacelearnError):
    """Another job holds the folder's lock."""


def write_atomic(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            temporary.unlink()
        if isinstance(error, OSError) and error.filename is None:  # a failed write names no file
            raise OSError(error.errno, error.strerror, str(path)) from None
        raise
    return path


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    return write_atomic(path, lambda handle: handle.write(data))


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode())


class DirectoryLock:
    """``with DirectoryLock(run_dir, "facelearn train"):`` — refuses a second holder, naming the first."""

    def __init__(self, folder: str | Path, purpose: str):
        self.path = Path(folder) / ".lock"
        self.purpose = purpose
        self.handle = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            handle = open(self.path, "a+")  # noqa: SIM115 - held until release()
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                owner = handle.read().strip()
                handle.close()
                raise LockedError(
                    f"{self.path.parent} is in use by another job ({owner or 'owner unknown'}); "
                    "wait for it to finish or stop it, or choose another output folder"
                ) from None
            if self._is_current(handle):
                break
            handle.close()  # the previous owner removed this file as it let go: lock the one now there
        handle.seek(0)
        handle.truncate()
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        handle.write(json.dumps({"purpose": self.purpose, **owner}))
        handle.flush()
        self.handle = handle

    def _is_current(self, handle) -> bool:
        try:
            return os.path.samestat(os.fstat(handle.fileno()), os.stat(self.path))
        except FileNotFoundError:
            return False

    def release(self) -> None:
        if self.handle is not None:
            with contextlib.suppress(OSError):  # removed while still held: a job that opened it re-checks
                self.path.unlink()
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None

    def __enter__(self) -> DirectoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
