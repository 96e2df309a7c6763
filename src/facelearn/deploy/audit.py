"""The audit log of gallery changes: who changed which subject, when, and how — what a data
protection officer asks for, and nothing more.

One JSON object a line, appended (``O_APPEND``, flushed and fsynced) to ``<gallery>.audit.log``
beside an SQLite gallery (``--audit-log`` elsewhere), mode 0600::

    {"time": "2026-12-04T03:12:09.513Z", "action": "enroll", "subject": "alice", "faces": 5,
     "who": "key:frontdesk", "via": "api", "client": "127.0.0.1", "gallery": "people.db"}

* ``action``: ``enroll`` (a new subject), ``add`` (faces added), ``delete`` or ``delete_face`` (one
  face, named by ``face``, its id; ``subject_deleted: true`` when it was the subject's last face and
  the subject went with it); ``faces``: the faces the call enrolled, added or removed.
* ``who``: ``key:NAME`` (the API key's name), ``local:USER`` (the CLI's user), or ``anonymous``
  (a service without keys, on loopback); ``via``: ``api`` or ``cli``; ``client``: the caller's
  address (api).
* Never an image, an embedding, a score or metadata values.

Records are only ever appended. When the file passes ``max_bytes`` it is renamed to ``.1`` (``.1``
to ``.2``, …) and a new one begun; the oldest beyond ``keep`` files is removed — set the retention
your policy needs. Writers in several processes take an exclusive lock on ``<log>.lock`` for each
record, so lines never interleave and rotation never loses one.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import time
from pathlib import Path

from ..errors import ConfigError

ACTIONS = ("enroll", "add", "delete", "delete_face")


def default_audit_path(gallery: str | Path) -> Path:
    """``people.db`` → ``people.db.audit.log``; a Milvus URI → ``facelearn-audit.log`` here."""
    return Path("facelearn-audit.log") if "://" in str(gallery) else Path(f"{gallery}.audit.log")


def local_user() -> str:
    try:
        return f"local:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (a container's bare uid)
        return f"local:uid{os.getuid()}"


class AuditLog:
    def __init__(self, path: str | Path, max_bytes: int = 10 * 1024 * 1024, keep: int = 20):
        if max_bytes < 1024 or keep < 1:
            raise ConfigError("the audit log needs max_bytes >= 1024 and keep >= 1")
        self.path, self.max_bytes, self.keep = Path(path), max_bytes, keep

    def record(self, action: str, subject: str, faces: int, who: str, gallery: str | Path, **where: str) -> dict:
        """Append one record (``where``: ``via``, ``client``, ``face``, ``subject_deleted``); returns it."""
        if action not in ACTIONS:
            raise ValueError(f"an audit action is one of {ACTIONS}, not {action!r}")
        now = time.time()
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z",
            "action": action,
            "subject": subject,
            "faces": int(faces),
            "who": who,
            **{k: v if isinstance(v, bool) else str(v) for k, v in where.items() if v is not None},
            "gallery": str(gallery),
        }
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{self.path}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._rotate_if_full()
            handle = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(handle, line)
                os.fsync(handle)
            finally:
                os.close(handle)
        return entry

    def _rotate_if_full(self) -> None:
        try:
            if self.path.stat().st_size < self.max_bytes:
                return
        except FileNotFoundError:
            return
        oldest = Path(f"{self.path}.{self.keep}")
        oldest.unlink(missing_ok=True)
        for number in range(self.keep - 1, 0, -1):
            older = Path(f"{self.path}.{number}")
            if older.exists():
                older.rename(f"{self.path}.{number + 1}")
        self.path.rename(f"{self.path}.1")

    def records(self) -> list[dict]:
        """Every record still kept, oldest first (rotated files included)."""
        files = [Path(f"{self.path}.{n}") for n in range(self.keep, 0, -1)] + [self.path]
        return [json.loads(line) for f in files if f.exists() for line in f.read_text().splitlines() if line]
