"""Training under faults: exact resume whatever draws random numbers, real kills and signals, the
run lock, changed configs, a model that turns non-finite, and operating-system errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import skip_unless_allowed
from helpers import DDL, NOT_MBF, tiny_config

from facelearn.cli import main as facelearn
from facelearn.config import dump_config
from facelearn.io import DirectoryLock, LockedError
from facelearn.models.checkpoint import load_checkpoint, step_checkpoints
from facelearn.train.build import build_trainer
from facelearn.train.engine import TrainingDiverged

pytestmark = pytest.mark.slow  # trains a model, starts processes or drives a browser

ONE_THREAD = ["train.threads=1"]  # the same arithmetic in this process and in a child process
IRESNET = ["model.name=iresnet18", *NOT_MBF, "model.embedding_size=32"]


def final_weights(run_dir: Path) -> dict:
    return load_checkpoint(step_checkpoints(run_dir)[-1])["task"]


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = final_weights(a), final_weights(b)
    assert first.keys() == second.keys()
    different = [key for key in first if not torch.equal(first[key], second[key])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def interrupted_then_resumed(run_dir: Path, overrides: list[str], interrupt_at_call: int) -> None:
    """Train, stop with an exception in the forward pass (as a kill between two checkpoints),
    then run the same config again to the end."""
    trainer = build_trainer(tiny_config(run_dir, *overrides))
    original, calls = trainer.task.forward, {"n": 0}

    def failing_forward(batch):
        calls["n"] += 1
        if calls["n"] == interrupt_at_call:
            raise KeyboardInterrupt
        return original(batch)

    trainer.task.forward = failing_forward
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert [p.name for p in step_checkpoints(run_dir)] == ["step_0000003.pt"]
    assert build_trainer(tiny_config(run_dir, *overrides)).fit()["step"] == 6


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("teacher")
    build_trainer(tiny_config(run, *IRESNET, "train.steps=2")).fit()
    return str(step_checkpoints(run)[-1])


@pytest.mark.parametrize(
    "case",
    ["dropout", "partial_fc_sampling", "ddl", "distillation"],
)
def test_resume_is_bit_exact_when_the_model_draws_random_numbers(tmp_path, case, request):
    overrides = {
        "dropout": [*IRESNET, "model.dropout=0.4"],
        "partial_fc_sampling": ["head.partial_fc=true", "head.sample_rate=0.5"],
        "ddl": DDL,
        "distillation": lambda: ["train.task=distill", f"distill.teacher={request.getfixturevalue('teacher')}"],
    }[case]
    overrides = [*(overrides() if callable(overrides) else overrides), *ONE_THREAD]
    torch.set_num_threads(1)
    build_trainer(tiny_config(tmp_path / "straight", *overrides)).fit()
    interrupted_then_resumed(tmp_path / "resumed", overrides, interrupt_at_call=5)
    assert_same_weights(tmp_path / "straight", tmp_path / "resumed")


# ------------------------------------------------------------------ real processes, real signals
def recipe(run_dir: Path, *overrides: str) -> str:
    """The tiny config as a YAML recipe beside ``run_dir``, for the command line."""
    path = run_dir.parent / f"{run_dir.name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    dump_config(tiny_config(run_dir, *overrides), path)
    return str(path)


def start_training(run_dir: Path, *overrides: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "facelearn.cli", "train", recipe(run_dir, "train.log_every=1", *ONE_THREAD)]
    return subprocess.Popen([*command, *overrides], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_step(process: subprocess.Popen, run_dir: Path, step: int, timeout: float = 180) -> None:
    log, deadline = run_dir / "train.log", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.is_file() and f" step {step} loss" in log.read_text():
            return
        if process.poll() is not None:
            raise AssertionError(f"training ended early: {process.communicate()[1][-2000:]}")
        time.sleep(0.02)
    process.kill()
    raise AssertionError(f"no step {step} within {timeout} s")


def test_kill_9_with_partial_fc_sampling_then_resume_is_bit_exact(tmp_path):
    overrides = ["head.partial_fc=true", "head.sample_rate=0.5", "train.steps=12", "train.checkpoint_every=4"]
    process = start_training(tmp_path / "killed", *overrides)
    wait_for_step(process, tmp_path / "killed", 5)
    process.send_signal(signal.SIGKILL)
    process.wait(60)
    assert step_checkpoints(tmp_path / "killed"), "the kill came before the first checkpoint"
    torch.set_num_threads(1)
    assert build_trainer(tiny_config(tmp_path / "killed", *overrides, *ONE_THREAD)).fit()["step"] == 12
    build_trainer(tiny_config(tmp_path / "straight", *overrides, *ONE_THREAD)).fit()
    assert_same_weights(tmp_path / "straight", tmp_path / "killed")


def test_sigterm_writes_a_checkpoint_and_the_run_continues_exactly(tmp_path):
    overrides = ["train.steps=12", "train.checkpoint_every=1000"]
    process = start_training(tmp_path / "run", *overrides)
    wait_for_step(process, tmp_path / "run", 3)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    (written,) = step_checkpoints(tmp_path / "run")
    step = load_checkpoint(written)["step"]
    assert 3 <= step < 12
    assert f"stopped by SIGTERM after step {step}: checkpoint {written} written" in stderr
    assert "Traceback" not in stderr
    torch.set_num_threads(1)
    build_trainer(tiny_config(tmp_path / "run", *overrides, *ONE_THREAD)).fit()
    build_trainer(tiny_config(tmp_path / "straight", *overrides, *ONE_THREAD)).fit()
    assert_same_weights(tmp_path / "straight", tmp_path / "run")


def test_ctrl_c_checkpoints_and_a_second_ctrl_c_stops_at_once(tmp_path):
    process = start_training(tmp_path / "once", "train.steps=200", "train.checkpoint_every=1000")
    wait_for_step(process, tmp_path / "once", 2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "stopped by SIGINT" in stderr and "Traceback" not in stderr
    assert len(step_checkpoints(tmp_path / "once")) == 1

    process = start_training(tmp_path / "twice", "train.steps=200", "train.checkpoint_every=1000")
    wait_for_step(process, tmp_path / "twice", 2)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in stderr


def test_a_second_run_on_the_same_folder_is_refused_and_a_dead_owner_frees_it(tmp_path):
    process = start_training(tmp_path, "train.steps=400", "train.checkpoint_every=2")
    try:
        wait_for_step(process, tmp_path, 3)
        with pytest.raises(LockedError, match=rf"in use by another job .*\"pid\": {process.pid}"):
            build_trainer(tiny_config(tmp_path, "train.steps=400", "train.checkpoint_every=2")).fit()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(60)
    # the lock file is still there, but its owner is dead: the next job takes it
    assert (tmp_path / ".lock").is_file()
    with DirectoryLock(tmp_path, "facelearn train"):
        pass


# ------------------------------------------------------------------ config changes and divergence
def test_a_changed_config_is_refused_unless_forced_and_harmless_keys_may_change(tmp_path):
    build_trainer(tiny_config(tmp_path, "train.steps=3")).fit()
    with pytest.raises(Exception, match=r"another config \(optim.lr: 0.05 -> 0.01\).*train.resume=force"):
        build_trainer(tiny_config(tmp_path, "train.steps=3", "optim.lr=0.01")).fit()
    assert "lr: 0.05" in (tmp_path / "config.yaml").read_text()  # the refused config was not recorded
    harmless = ["train.steps=3", "train.log_every=1", "eval.every=1", "train.keep_last=3", "data.num_workers=0"]
    build_trainer(tiny_config(tmp_path, *harmless)).fit()
    forced = build_trainer(tiny_config(tmp_path, "train.steps=5", "optim.lr=0.01", "train.resume=force"))
    forced.fit()
    assert forced.step == 5
    assert [g["initial_lr"] for g in forced.optimizer.param_groups] == [0.01, 0.01]
    assert "lr: 0.01" in (tmp_path / "config.yaml").read_text()
    assert "train.resume=force: continuing with optim.lr: 0.05 -> 0.01" in (tmp_path / "train.log").read_text()


def test_a_non_finite_buffer_never_replaces_a_good_model(tmp_path):
    build_trainer(tiny_config(tmp_path, "train.steps=3")).fit()
    good = {name: (tmp_path / name).read_bytes() for name in ("best.pt", "backbone.pt", "step_0000003.pt")}
    trainer = build_trainer(tiny_config(tmp_path, "train.steps=6", "train.resume=force"))
    batch_norm = next(m for m in trainer.task.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    # in training mode batch norm uses the batch's statistics: the loss stays finite

    def break_statistics(module, inputs) -> None:
        module.running_var.fill_(float("inf"))

    batch_norm.register_forward_pre_hook(break_statistics)
    with pytest.raises(TrainingDiverged, match=r"non-finite at step 6 \(backbone\..*running_var"):
        trainer.fit()
    assert [p.name for p in step_checkpoints(tmp_path)] == ["step_0000003.pt"]
    for name, data in good.items():
        assert (tmp_path / name).read_bytes() == data, name


# ------------------------------------------------------------------ operating-system errors
def mount_tmpfs(path: Path, options: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if result.returncode != 0:
        skip_unless_allowed(f"cannot mount a small filesystem here ({result.stderr.decode().strip()}); needs root")


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "size=160k")
    yield disk
    subprocess.run(["umount", str(disk)], check=False)


def cli_train(run_dir: Path, capsys, *overrides: str) -> tuple[int, str]:
    code = facelearn(["train", recipe(run_dir.parent.parent / "recipes" / run_dir.name), f"train.output_dir={run_dir}",
                      *overrides])  # fmt: skip
    return code, capsys.readouterr().err


def test_a_full_disk_is_one_line_leaves_no_temporary_file_and_a_rerun_continues(small_disk, capsys):
    run = small_disk / "run"
    code, err = cli_train(run, capsys, "train.steps=6")
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("facelearn: error: ") and "No space left on device" in last and str(run) in last
    assert "Traceback" not in err
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)  # space freed
    code, err = cli_train(run, capsys, "train.steps=6")
    assert code == 0, err
    assert load_checkpoint(step_checkpoints(run)[-1])["step"] == 6


def test_read_only_folder_and_a_file_where_a_folder_should_be(tmp_path, capsys):
    read_only = tmp_path / "read_only"
    mount_tmpfs(read_only, "ro,size=64k")
    try:
        code, err = cli_train(read_only / "run", capsys)
        assert code == 2 and "Read-only file system" in err and str(read_only / "run") in err
        assert "Traceback" not in err
    finally:
        subprocess.run(["umount", str(read_only)], check=False)
    (tmp_path / "a_file").write_text("not a folder")
    code, err = cli_train(tmp_path / "a_file", capsys)
    assert code == 2 and str(tmp_path / "a_file") in err and "a file stands where a folder is needed" in err


def test_a_leftover_temporary_checkpoint_does_not_block_a_run(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / ".step_0000003.pt.4242.tmp").write_bytes(b"half a checkpoint")
    (tmp_path / "step_0000003.pt.tmp").write_bytes(b"from an older version")
    assert build_trainer(tiny_config(tmp_path)).fit()["step"] == 6
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    assert os.path.isfile(tmp_path / "step_0000006.pt")
