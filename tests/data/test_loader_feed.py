"""The training loader feeds a GPU: the flip mirrors, a worker's batch equals the main process's (stacked into
shared memory), and batches for a CUDA device come pinned."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from facelearn.config import load_config
from facelearn.data.images import encode_image
from facelearn.data.loader import TrainingDataset, build_train_loader
from facelearn.data.recordio import RecordDataset, write_recordio
from facelearn.data.transforms import TrainTransform, hflip
from facelearn.train.tasks import pins


def test_the_flip_mirrors_left_to_right():
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    flipped = hflip(image)
    assert flipped.flags.c_contiguous
    for column in range(7):
        np.testing.assert_array_equal(flipped[:, column], image[:, 6 - column])


@pytest.fixture
def recordio(tmp_path):
    rng = np.random.default_rng(1)
    faces = [(label, encode_image(rng.integers(0, 256, (112, 112, 3), dtype=np.uint8))) for label in (0, 0, 1, 1)]
    write_recordio(tmp_path / "train", sorted(faces * 4, key=lambda face: face[0]))  # grouped by label
    return RecordDataset(tmp_path)


def test_a_workers_batches_equal_the_main_processs(recordio):
    dataset = TrainingDataset(recordio, TrainTransform(flip=True), 112, seed=3)
    in_process = iter(build_train_loader(dataset, 8, seed=3, start_batch=0, num_workers=0))
    loader = build_train_loader(dataset, 8, seed=3, start_batch=0, num_workers=1)
    in_worker = iter(loader)
    try:
        for _ in range(3):
            expected, got = next(in_process), next(in_worker)
            assert got["images"].shape == (8, 3, 112, 112)
            assert torch.equal(got["images"], expected["images"])
            assert torch.equal(got["labels"], expected["labels"])
    finally:
        in_worker._shutdown_workers()


def test_batches_are_pinned_for_cuda_only():
    assert pins(load_config(None, ["train.device=cuda"]).train)
    assert not pins(load_config(None, ["train.device=cpu"]).train)


def test_a_forked_worker_reads_the_recordio_with_its_own_file(recordio):
    reader = recordio.reader
    expected = [reader.read(key) for key in (2, 3)]  # the main process has the file open, as when workers fork
    parent = reader._file.fileno()
    position = os.lseek(parent, 0, os.SEEK_CUR)
    child = os.fork()
    if child == 0:  # a worker: its reads must not move the main process's file offset
        reader.read(9)
        os._exit(0)
    os.waitpid(child, 0)
    assert os.lseek(parent, 0, os.SEEK_CUR) == position
    assert [reader.read(key) for key in (2, 3)] == expected
