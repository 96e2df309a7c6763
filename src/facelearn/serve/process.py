"""``facelearn serve`` as a separate process on a free loopback port: for the tests, the load
benchmark and scripts that need a service for a while."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    """Starts the server, waits for /v1/ready, stops it (SIGTERM, then SIGKILL)."""

    def __init__(self, model: Path, gallery: Path, weights: Path, workdir: Path, *options: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.tmpdir = workdir / "tmp"  # the server's TMPDIR: must stay empty (no upload on disk)
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / f"serve-{self.port}.log"
        self.command = [
            sys.executable, "-m", "facelearn.cli", "serve", "--model", str(model), "--gallery", str(gallery),
            "--weights", str(weights), "--port", str(self.port), *options,
        ]  # fmt: skip
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0, open_files: int | None = None, probe: str = "/v1/ready") -> Served:
        """``open_files``: the server's file limit (soft and hard), as ``ulimit -n`` would set it; ``probe``:
        the route that must answer 200 (``/v1/health`` for a server that is up but not ready)."""
        environment = {**os.environ, "TMPDIR": str(self.tmpdir)}

        def limit_files() -> None:
            if open_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, env=environment, preexec_fn=limit_files
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"facelearn serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}{probe}", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"facelearn serve did not answer {probe} in {timeout} s:\n{self.log.read_text()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def client(self, **options):
        import httpx

        return httpx.Client(base_url=self.url, timeout=60, **options)
