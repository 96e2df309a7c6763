"""Training on several processes (what ``torchrun --nproc_per_node=2 facelearn train`` runs):
two gloo processes give the weights of one process with the same global batch, checkpoints are
written once and resume on another number of processes, and a group that cannot form fails
cleanly."""

from __future__ import annotations

import os

import pytest
import torch
import torch.multiprocessing as mp
from helpers import free_port, tiny_config

from facelearn.distributed import DistributedError, init_from_environment
from facelearn.models.checkpoint import load_checkpoint, step_checkpoints
from facelearn.train.build import build_trainer

pytestmark = pytest.mark.slow  # trains a model, starts processes or drives a browser

# Batch norm normalises each process's own batch, so the one-process reference accumulates two
# micro-batches of 4 (the same 8 images, grouped the same way) instead of one batch of 8.
COMMON = ["train.amp=off", "train.batch_size=4", "train.steps=2", "train.checkpoint_every=1", "train.threads=1"]


def worker(rank: int, port: int, run: str, overrides: list[str]) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2")
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    try:
        build_trainer(tiny_config(run, *COMMON, *overrides)).fit()
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def two_processes(run, *overrides) -> None:
    mp.spawn(worker, args=(free_port(), str(run), list(overrides)), nprocs=2, join=True)


def final_state(run) -> dict:
    return load_checkpoint(step_checkpoints(run)[-1])


@pytest.mark.parametrize("head", [["head.name=arcface"], ["head.name=cosface", "head.partial_fc=true"]])
def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path, head):
    two_processes(tmp_path / "two", *head)
    build_trainer(tiny_config(tmp_path / "one", *COMMON, "train.grad_accum=2", *head)).fit()
    two, one = final_state(tmp_path / "two"), final_state(tmp_path / "one")
    assert two["step"] == one["step"] == 2
    assert one["task"].keys() == two["task"].keys()
    for key in one["task"]:
        if "running_" in key or "num_batches" in key:
            continue  # batch-norm statistics are rank 0's under several processes, as with DDP
        torch.testing.assert_close(two["task"][key], one["task"][key], rtol=1e-4, atol=1e-5, msg=key)
    moved = one["task"]["head.weight" if "head.weight" in one["task"] else "head.head.weight"]
    assert moved.shape[0] == 6  # every class centre in one checkpoint, also from the sharded run
    # only rank 0 wrote: one log, one metrics file
    assert (tmp_path / "two" / "metrics.json").is_file() and len(list((tmp_path / "two").glob("train.log"))) == 1


def test_partial_fc_checkpoint_resumes_on_another_number_of_processes(tmp_path):
    run = tmp_path / "run"
    pfc = ["head.partial_fc=true", "optim.name=sgd"]
    two_processes(run, *pfc)  # steps 1–2 on two processes (shards of 3 classes)
    saved = final_state(run)
    assert saved["task"]["head.head.weight"].shape == (6, 32)
    momentum = [s["momentum_buffer"] for s in saved["optimizer"]["state"].values() if s["momentum_buffer"].ndim == 2]
    assert any(m.shape == (6, 32) for m in momentum)  # the sharded centres' momentum, gathered
    resumed = build_trainer(tiny_config(run, *COMMON, *pfc, "train.steps=3", "train.resume=force"))
    resumed.fit()  # step 3 on one process
    assert resumed.step == 3
    two_processes(run, *pfc, "train.steps=4", "train.resume=force")  # and step 4 on two again
    assert final_state(run)["step"] == 4
    with pytest.raises(Exception, match="class centres"):
        build_trainer(
            tiny_config(run, *COMMON, *pfc, "train.steps=5", "train.resume=force", "data.num_classes=8")
        ).fit()


def test_a_group_that_cannot_form_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    with pytest.raises(DistributedError, match="torchrun --nproc_per_node"):
        init_from_environment(timeout_seconds=2)  # the second process never comes
    assert not torch.distributed.is_initialized()


def test_sync_bn_on_cpu_is_refused(tmp_path):
    with pytest.raises(mp.ProcessRaisedException, match="sync_bn needs CUDA"):
        mp.spawn(worker, args=(free_port(), str(tmp_path), ["train.sync_bn=true"]), nprocs=2, join=True)
