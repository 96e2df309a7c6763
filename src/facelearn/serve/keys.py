"""API keys: made at random, shown once, stored only as SHA-256 hashes, compared in constant time.

    facelearn serve keys add alice --keys keys.json     # prints the key once
    facelearn serve keys list|remove NAME --keys keys.json

A key is 256 random bits, so a plain SHA-256 of it cannot be brute-forced (a password hash's slow
stretching is for guessable secrets). The file is written atomically; a key file readable by
others is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import time
from pathlib import Path

from ..errors import ConfigError
from ..io import write_text_atomic

PREFIX = "fl_"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


class KeyStore:
    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.keys: list[dict] = self._read() if self.path and self.path.exists() else []

    def _read(self) -> list[dict]:
        mode = self.path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"{self.path} is readable by other users: chmod 600 {self.path}")
        try:
            keys = json.loads(self.path.read_text())["keys"]
        except (ValueError, KeyError, TypeError) as error:
            raise ConfigError(f"{self.path} is not a facelearn key file ({error})") from None
        return keys

    def _write(self) -> None:
        if self.path is None:
            raise ConfigError("give the key file: --keys FILE")
        write_text_atomic(self.path, json.dumps({"keys": self.keys}, indent=2))
        os.chmod(self.path, 0o600)

    @property
    def required(self) -> bool:
        return bool(self.keys)

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
        return [{"name": entry["name"], "created": entry["created"]} for entry in self.keys]

    def check(self, key: str) -> str | None:
        """The name of the key, or None; every stored hash is compared, each in constant time."""
        wanted, found = digest(key), None
        for entry in self.keys:
            if hmac.compare_digest(wanted, entry["sha256"]):
                found = entry["name"]
        return found
