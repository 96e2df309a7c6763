"""Partial FC: two gloo processes with sharded class centres equal one process with the full
classifier (loss, centre gradients, embedding gradients); sampling keeps every positive."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import free_port

from facelearn.heads import ArcFaceHead, CurricularFaceHead, MagFaceHead, SubCenterArcFaceHead
from facelearn.heads.adacos import AdaCosHead
from facelearn.heads.partial_fc import PartialFC, shard_range

pytestmark = pytest.mark.slow  # trains a model, starts processes or drives a browser

N, D, C = 8, 16, 11  # 11 classes: shards of 6 and 5
HEADS = {
    "arcface": lambda classes: ArcFaceHead(D, classes),
    "curricularface": lambda classes: CurricularFaceHead(D, classes),
    "subcenter_arcface": lambda classes: SubCenterArcFaceHead(D, classes, sub_centers=3),
}


def data(name: str):
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(N, D, generator=generator, dtype=torch.float64) * 4
    labels = torch.tensor([0, 3, 5, 6, 10, 3, 7, 1])
    rows = C * (3 if name == "subcenter_arcface" else 1)
    weight = torch.randn(rows, D, generator=generator, dtype=torch.float64)
    return x, labels, weight


def single_process(name: str):
    x, labels, weight = data(name)
    head = HEADS[name](C).double()
    with torch.no_grad():
        head.weight.copy_(weight)
    x.requires_grad_(True)
    loss = head(x, labels).loss
    loss.backward()
    return loss.detach(), x.grad, head.weight.grad, getattr(head, "t", None)


def worker(rank: int, port: int, name: str, results, split: int = N // 2) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        x, labels, weight = data(name)
        start, stop = shard_range(C, rank, 2)
        head = PartialFC(HEADS[name](stop - start), C, sample_rate=1.0).double()
        with torch.no_grad():
            head.head.weight.copy_(head.local_block(weight))
        rows = slice(0, split) if rank == 0 else slice(split, N)
        local = x[rows].clone().requires_grad_(True)
        loss = head(local, labels[rows]).loss
        loss.backward()
        full = head.full_weight()
        results[rank] = (loss.detach(), local.grad, head.head.weight.grad, getattr(head.head, "t", None), full)
        dist.barrier()  # both processes finish their collectives before either leaves
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("name, split", [(name, N // 2) for name in HEADS] + [("arcface", 3)])
def test_two_processes_equal_one_full_classifier(name, split):
    """split = 3: one process has 3 rows, the other 5 (an unreadable image shrank a batch)."""
    loss, grad_x, grad_w, t = single_process(name)
    results = mp.Manager().dict()
    mp.spawn(worker, args=(free_port(), name, results, split), nprocs=2, join=True)
    rows = grad_w.shape[0] // C
    for rank in (0, 1):
        got_loss, got_x, got_w, got_t, full = results[rank]
        start, stop = shard_range(C, rank, 2)
        torch.testing.assert_close(got_loss, loss, rtol=1e-5, atol=1e-5)
        # the embeddings' gradient is ×2 (world size) so that DDP's averaging gives the exact one
        mine = slice(0, split) if rank == 0 else slice(split, N)
        torch.testing.assert_close(got_x / 2, grad_x[mine], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got_w, grad_w[start * rows : stop * rows], rtol=1e-5, atol=1e-5)
        if t is not None:
            torch.testing.assert_close(got_t, t)  # the statistic comes from the whole global batch
        torch.testing.assert_close(full, data(name)[2])  # gathered centres = the full matrix


def test_one_process_full_rate_equals_the_head():
    x, labels, weight = data("arcface")
    for head in (ArcFaceHead(D, C).double(), PartialFC(ArcFaceHead(D, C), C).double()):
        inner = getattr(head, "head", head)
        with torch.no_grad():
            inner.weight.copy_(weight)
        torch.testing.assert_close(head(x, labels).loss, single_process("arcface")[0])


def test_sampling_keeps_every_positive_and_logs_a_higher_rate(caplog):
    torch.manual_seed(0)
    x, labels, weight = data("arcface")
    head = PartialFC(ArcFaceHead(D, 100), 100, sample_rate=0.1).double()
    index, remapped = head.sample(labels)
    assert len(index) == 10 and set(labels.tolist()) <= set(index.tolist())
    assert torch.equal(index[remapped], labels)
    many = torch.arange(20)  # 20 positives, 10 wanted
    with caplog.at_level(logging.INFO, logger="facelearn.heads.partial_fc"):
        index, _ = head.sample(many)
    assert len(index) == 20 and head.effective_rate == pytest.approx(0.2)
    assert "20 positive classes" in caplog.text
    out = head(torch.randn(20, D, dtype=torch.float64), many)
    assert torch.isfinite(out.loss) and out.logits.shape == (20, 20)
    head.eval()
    assert head(x, labels).logits.shape == (N, 100)  # evaluation scores every class


def test_heads_that_need_every_class_are_refused_and_rates_checked():
    with pytest.raises(ValueError, match="cannot be used with Partial FC"):
        PartialFC(AdaCosHead(D, C), C)
    with pytest.raises(ValueError, match="sample_rate must be in"):
        PartialFC(ArcFaceHead(D, C), C, sample_rate=0)
    magface = PartialFC(MagFaceHead(D, C), C)  # its regulariser is added once, on the local batch
    assert torch.isfinite(magface(torch.randn(4, D) * 20, torch.tensor([0, 1, 2, 3])).loss)
