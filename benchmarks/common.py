"""What every benchmark records beside its numbers: the machine and the command."""

from __future__ import annotations

import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "?")


def machine() -> dict:
    from facelearn.hardware import cpu_has_fast_bf16

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "native_bf16": cpu_has_fast_bf16(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    }


def command() -> str:
    return "python " + " ".join(sys.argv)


def write_result(path: str | Path, record: dict, variant: dict | None = None) -> None:
    """``record`` with the machine and the command; ``variant``: what sets this file apart from its siblings
    of the same benchmark (an allocator, a precision), as fields rather than only a file-name suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    head = {"machine": machine(), "command": command(), **({"variant": variant} if variant else {})}
    path.write_text(json.dumps({**head, **record}, indent=2))
    print(f"wrote {path}")


def shell_command(arguments: list[str]) -> str:
    """``facelearn …`` as a user types it: the packaged recipes as ``configs/<name>.yaml``."""
    import facelearn

    configs = str(Path(facelearn.__file__).parent / "configs")
    return "facelearn " + " ".join(argument.replace(configs, "configs") for argument in arguments)


def needs(path: str | Path, made_by: str) -> Path:
    """A file or folder another script makes (``made_by``); stops with what to run when it is missing."""
    path = Path(path)
    if not path.exists():
        sys.exit(f"{path} is missing: run {made_by} first (or pass its location)")
    return path


def train_unless_done(command: list[str], run: str | Path, name: str) -> dict:
    """``facelearn <command>`` into ``run`` unless the run finished before (its ``metrics.json`` exists, so a
    killed benchmark resumes where it stopped); returns the run's metrics."""
    from facelearn.cli import main as facelearn

    metrics = Path(run) / "metrics.json"
    if not metrics.is_file():
        print(shell_command(command), flush=True)
        if facelearn(command) != 0:
            sys.exit(f"training {name} failed")
    return json.loads(metrics.read_text())


def process_tree(root: int) -> dict[int, tuple[int, float]]:
    """pid → (resident bytes, user + system CPU seconds) of ``root`` and every process below it (from /proc)."""
    children: dict[int, list[int]] = {}
    usage: dict[int, tuple[int, float]] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            rss = int(Path(f"/proc/{entry}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(int(stat[1]), []).append(int(entry))
        usage[int(entry)] = (rss, (int(stat[11]) + int(stat[12])) / ticks)
    found, stack = {}, [root]
    while stack:
        pid = stack.pop()
        if pid in usage:
            found[pid] = usage[pid]
        stack += children.get(pid, [])
    return found


class ProcessTreeUsage:
    """``with ProcessTreeUsage() as usage:`` — the peak of the resident memory summed over this process and every
    process below it, and their CPU seconds (each process's last sample; sampled every 0.2 s, so a process that
    lived less than that may be missed). A pool's workers and Ray's daemons and workers all count."""

    def __init__(self):
        self.peak, self.cpu, self.running = 0, {}, True
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def sample(self):
        while self.running:
            tree = process_tree(os.getpid())
            self.peak = max(self.peak, sum(rss for rss, _ in tree.values()))
            self.cpu.update({pid: cpu for pid, (_, cpu) in tree.items()})
            time.sleep(0.2)

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu.values())

    def __enter__(self):
        self.start = {pid: cpu for pid, (_, cpu) in process_tree(os.getpid()).items()}
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.cpu = {pid: cpu - self.start.get(pid, 0.0) for pid, cpu in self.cpu.items()}
