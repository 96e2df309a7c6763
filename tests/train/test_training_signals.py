"""SIGTERM sent to the whole process group (``timeout``, SLURM preemption) still checkpoints and resumes exactly.

Issue 24, case 10: ``timeout 170 facelearn train …`` signalled the DataLoader workers with the main
process; they died, torch raised a RuntimeError in the main process, and the run ended in a
traceback with no checkpoint and its ``.lock`` left behind. Here a real ``facelearn train`` with a
data worker runs in its own session and the whole group gets SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from facelearn.config import dump_config, load_config
from facelearn.io import DirectoryLock, LockedError
from facelearn.models.checkpoint import load_checkpoint, step_checkpoints

RECIPE = [
    *("model.name=mobilefacenet", "model.width=1", "model.blocks=[1,1,1,1]", "model.embedding_size=32"),
    *("data.num_identities=6", "data.images_per_identity=4", "data.image_size=32", "data.num_workers=1"),
    *("train.batch_size=8", "train.steps=12", "train.checkpoint_every=1000", "train.log_every=1"),
    *("train.threads=1", "schedule.warmup_steps=2", "optim.lr=0.05", "eval.sets=[]"),
]
# the same command with the old workers, which die of the group's signal: the engine's fallback
WORKERS_DIE = (
    "import sys, facelearn.data.loader as loader; loader.leave_stop_signals_to_the_main_process = lambda worker: None; "
    "from facelearn.cli import main; sys.exit(main())"
)


def train_command(run_dir: Path, workers_die: bool = False) -> list[str]:
    recipe = run_dir.parent / f"{run_dir.name}.yaml"
    dump_config(load_config(None, [*RECIPE, f"train.output_dir={run_dir}"]), recipe)
    start = [sys.executable, "-c", WORKERS_DIE] if workers_die else [sys.executable, "-m", "facelearn.cli"]
    return [*start, "train", str(recipe)]


def run(command: list[str]) -> str:
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    return finished.stderr


def final_weights(run_dir: Path) -> dict:
    (last,) = [p for p in step_checkpoints(run_dir) if load_checkpoint(p)["step"] == 12]
    return load_checkpoint(last)["task"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("signals") / "straight"
    run(train_command(run_dir))
    return final_weights(run_dir)


def group_sigterm_at_step(command: list[str], run_dir: Path, step: int) -> tuple[int, str]:
    """Start ``command`` in its own session, SIGTERM the whole group once ``step`` is logged."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    log, deadline = run_dir / "train.log", time.monotonic() + 180
    while not (log.is_file() and f" step {step} loss" in log.read_text()):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"no step {step}: {process.communicate()[1][-2000:]}")
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGTERM)  # the main process and its data worker, as timeout and SLURM do
    _, stderr = process.communicate(timeout=120)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # every process of the group ends
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("a process of the group outlived the stop")
    return process.returncode, stderr


@pytest.mark.parametrize("workers", ["ignore the signal", "die of the signal"])
def test_sigterm_to_the_process_group_checkpoints_and_the_run_resumes_exactly(workers, straight, tmp_path):
    run_dir = tmp_path / "run"
    command = train_command(run_dir, workers_die=workers == "die of the signal")
    code, stderr = group_sigterm_at_step(command, run_dir, 3)
    assert code == 128 + signal.SIGTERM, stderr[-3000:]
    assert "Traceback" not in stderr and "RuntimeError" not in stderr, stderr[-3000:]
    assert not (run_dir / ".lock").exists()
    (written,) = step_checkpoints(run_dir)
    step = load_checkpoint(written)["step"]
    assert 3 <= step < 12 and f"stopped by SIGTERM after step {step}: checkpoint {written} written" in stderr

    resumed = run(command)
    assert f"resuming from {written} at step {step}" in resumed
    weights = final_weights(run_dir)
    different = [key for key in straight if not torch.equal(straight[key], weights[key])]
    assert weights.keys() == straight.keys() and not different, different[:3]
    assert not (run_dir / ".lock").exists()


def test_the_run_lock_file_goes_with_its_owner_and_is_never_held_twice(tmp_path):
    first = DirectoryLock(tmp_path, "facelearn train")
    first.acquire()
    with pytest.raises(LockedError, match="in use by another job"):
        DirectoryLock(tmp_path, "facelearn train").acquire()
    first.release()
    assert not (tmp_path / ".lock").exists()
    with DirectoryLock(tmp_path, "facelearn train"):
        assert (tmp_path / ".lock").is_file()
        with pytest.raises(LockedError):
            DirectoryLock(tmp_path, "facelearn train").acquire()
    assert not (tmp_path / ".lock").exists()
