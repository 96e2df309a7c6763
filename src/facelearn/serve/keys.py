"""API keys: made at random, shown once, stored only as SHA-256 hashes, compared in constant time.

    facelearn serve keys add alice --keys keys.json     # prints the key once
    facelearn serve keys list|remove NAME --keys keys.json

A key is 256 random bits, so a plain SHA-256 of it cannot be brute-forced (a password hash's slow
stretching is for guessable secrets). The file is written atomically; a key file readable by
others is refused, and so is one with an entry that is not a name and a SHA-256 (naming the entry).

A running service calls :meth:`KeyStore.refresh` before each keyed request: the file is re-read
when its identity, size or time changed (a ``stat``, no read otherwise), so ``keys remove`` on a
running server's file takes effect at once. A file that cannot be read then (missing, malformed,
readable by others) leaves no key valid — the service refuses keyed requests until it is fixed —
and is logged once per change, not once per request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import stat
import time
from pathlib import Path

from ..errors import ConfigError
from ..io import write_text_atomic

PREFIX = "fl_"
SHA256 = re.compile(r"^[0-9a-f]{64}$")
log = logging.getLogger("facelearn.serve")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


class KeyStore:
    def __init__(self, path: str | Path | None, must_exist: bool = False):
        self.path = Path(path) if path else None
        if must_exist and self.path is not None and not self.path.is_file():
            raise ConfigError(
                f"--keys {self.path}: no such key file (make one: facelearn serve keys add NAME --keys {self.path})"
            )
        self.stamp = self._stamp()
        self.keys: list[dict] = self._read() if self.stamp else []
        self.problem: str | None = None

    def _stamp(self) -> tuple | None:
        try:
            info = self.path.stat() if self.path else None
        except OSError:
            return None
        return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_mode) if info else None

    def _read(self) -> list[dict]:
        mode = self.path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"{self.path} is readable by other users: chmod 600 {self.path}")
        try:
            keys = json.loads(self.path.read_text())["keys"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
            raise ConfigError(f"{self.path} is not a facelearn key file ({error})") from None
        if not isinstance(keys, list):
            raise ConfigError(f"{self.path} is not a facelearn key file (keys is not a list)")
        for number, entry in enumerate(keys, start=1):
            if not (
                isinstance(entry, dict)
                and isinstance(entry.get("name"), str)
                and SHA256.match(str(entry.get("sha256")))
            ):
                raise ConfigError(
                    f"{self.path}: entry {number} is not a key (a name and a sha256 of 64 hex digits); "
                    "fix or remove it, or make the file anew with facelearn serve keys add"
                )
        return keys

    def refresh(self) -> bool:
        """Re-read the file if it changed; False while it cannot be read (no key is valid then)."""
        stamp = self._stamp()
        if stamp == self.stamp and stamp is not None:
            return self.problem is None
        self.stamp = stamp
        try:
            if stamp is None:
                raise ConfigError(f"the key file {self.path} is missing")
            self.keys, self.problem = self._read(), None
            log.info("facelearn serve: re-read %s: %d key(s)", self.path, len(self.keys))
        except (ConfigError, OSError) as error:
            self.keys, self.problem = [], str(error)
            log.error("facelearn serve: %s; every keyed request is refused until it is fixed", error)
        return self.problem is None

    def _write(self) -> None:
        if self.path is None:
            raise ConfigError("give the key file: --keys FILE")
        write_text_atomic(self.path, json.dumps({"keys": self.keys}, indent=2))
        os.chmod(self.path, 0o600)

    @property
    def required(self) -> bool:
        """A key file is named: keys are required, even while it holds none (then nobody gets in)."""
        return self.path is not None

    def add(self, name: str) -> str:
        if any(entry["name"] == name for entry in self.keys):
            raise ConfigError(f"a key named {name!r} exists in {self.path}: remove it first")
        key = PREFIX + secrets.token_urlsafe(32)
        self.keys.append({"name": name, "sha256": digest(key), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ")})
        self._write()
        return key

    def remove(self, name: str) -> None:
        kept = [entry for entry in self.keys if entry["name"] != name]
        if len(kept) == len(self.keys):
            raise ConfigError(f"no key named {name!r} in {self.path}")
        self.keys = kept
        self._write()

    def names(self) -> list[dict]:
        return [{"name": entry["name"], "created": entry.get("created")} for entry in self.keys]

    def check(self, key: str) -> str | None:
        """The name of the key, or None; every stored hash is compared, each in constant time."""
        wanted, found = digest(key), None
        for entry in self.keys:
            if hmac.compare_digest(wanted, entry["sha256"]):
                found = entry["name"]
        return found
