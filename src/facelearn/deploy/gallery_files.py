"""A gallery file checked before it is opened: present when it must be, writable when it will be written.

SQLite opens a file it may not write read-only without a word, and a folder it may not write
(where its ``-wal`` and ``-shm`` files live) fails with a message that reads like a corrupt file.
So a command that writes (enroll, delete, serve) probes the file and its folder first — the way
the write itself would, as root too (an immutable file, ``chattr +i``, refuses even root) — and a
command that only reads refuses a gallery that does not exist rather than create an empty one
(a typo would make everyone "unknown").
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import DataError

WHY = "an immutable file (chattr +i), a read-only mount, or another owner"


def local_path(location: str | Path) -> Path | None:
    """The file of an SQLite gallery; None for a Milvus URI."""
    return None if "://" in str(location) else Path(location)


def check_gallery_exists(location: str | Path) -> None:
    path = local_path(location)
    if path is not None and not path.is_file():
        what = "is a folder, not a gallery" if path.is_dir() else "does not exist (no such gallery)"
        raise DataError(
            f"{path} {what}: enroll someone first (facelearn enroll GALLERY SUBJECT PHOTO...), or check the path"
        )


def check_gallery_writable(location: str | Path) -> None:
    """Refuses, in one line, a gallery file or folder that SQLite could open but never write."""
    path = local_path(location)
    if path is None or path.is_dir():
        return  # a URI, or a folder (the store says what is wrong with that)
    for existing in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if existing.exists():
            try:
                os.close(os.open(existing, os.O_RDWR))
            except OSError as error:
                raise DataError(f"{existing} cannot be written ({error.strerror}: {WHY})") from None
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        return  # created on open; a failure there is an OSError naming the path
    try:
        handle, probe = tempfile.mkstemp(prefix=".facelearn-probe-", dir=folder)
    except OSError as error:
        raise DataError(
            f"{folder} cannot be written ({error.strerror}: {WHY}); SQLite keeps the gallery's journal beside it"
        ) from None
    os.close(handle)
    os.unlink(probe)


@contextlib.contextmanager
def gallery_errors(location: str | Path) -> Iterator[None]:
    """An SQLite error while reading or writing the gallery, as one line naming it."""
    try:
        yield
    except sqlite3.OperationalError as error:
        raise DataError(f"{location}: the gallery cannot be used ({error}; {WHY}?)") from None
