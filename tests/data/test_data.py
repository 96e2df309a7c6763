"""Datasets and transforms: synthetic faces, folders, RecordIO, .bin, LFW pairs, degradations."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from conftest import shared_path
from helpers import write_folder

from facelearn.config import DataConfig, DegradeConfig, load_config
from facelearn.data.folder import ImageFolder
from facelearn.data.images import ImageError, encode_image, read_image
from facelearn.data.loader import SeededBatchSampler, TrainingDataset, build_source, collate
from facelearn.data.pairs import pairs_from_bin, pairs_from_lfw, read_lfw_pairs, synthetic_pairs
from facelearn.data.recordio import MAGIC, RecordDataset, RecordReader, frame_record, pack, unpack, write_recordio
from facelearn.data.synthetic import SyntheticFaces
from facelearn.data.transforms import Degrade, TrainTransform, downsample, to_tensor
from facelearn.data.verification_bin import UnsafeBinError, load_verification_bin, write_verification_bin
from facelearn.errors import DataError


def test_synthetic_faces_are_deterministic_and_identity_structured():
    a, b = SyntheticFaces(4, 3, 64, seed=1), SyntheticFaces(4, 3, 64, seed=1)
    np.testing.assert_array_equal(a.image(5), b.image(5))
    assert a.image(0).shape == (64, 64, 3) and a.image(0).dtype == np.uint8
    assert a.label(5) == 1 and len(a) == 12 and a.num_classes == 4
    assert not np.array_equal(a.image(0), a.image(1))  # same identity, another nuisance
    assert not np.array_equal(SyntheticFaces(4, 3, 64, seed=2).image(0), a.image(0))


def test_synthetic_pairs_use_unseen_identities_and_hard_is_degraded():
    easy, hard = synthetic_pairs(20, seed=0), synthetic_pairs(20, seed=0, hard=True)
    assert easy.issame.sum() == 10
    np.testing.assert_array_equal(easy.issame, hard.issame)
    sharpness = [np.abs(np.diff(p.load(0).astype(float), axis=1)).mean() for p in (easy, hard)]
    assert sharpness[1] < sharpness[0]  # low resolution and blur remove high frequencies
    same = int(np.flatnonzero(easy.issame)[0])
    assert not np.array_equal(easy.load(2 * same), easy.load(2 * same + 1))


def test_transforms():
    image = np.random.default_rng(0).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    tensor = to_tensor(image)
    assert tensor.shape == (3, 112, 112)
    assert tensor.min() >= -1 and tensor.max() <= 1
    assert torch.allclose(tensor[:, 0, 0], torch.tensor(image[0, 0] / 127.5 - 1, dtype=torch.float32))
    low = downsample(image, 16)
    assert low.shape == image.shape
    assert np.abs(np.diff(low.astype(float), axis=1)).mean() < np.abs(np.diff(image.astype(float), axis=1)).mean()
    every = DegradeConfig(downsample_prob=1, blur_prob=1, occlusion_prob=1, noise_prob=1, grayscale_prob=1)
    degraded = Degrade(every)(image, np.random.default_rng(0))
    assert degraded.shape == image.shape
    gray = Degrade(DegradeConfig(grayscale_prob=1))(image, np.random.default_rng(0))
    np.testing.assert_array_equal(gray[..., 0], gray[..., 1])
    flipped = TrainTransform(flip=True)(image, np.random.default_rng(3))
    assert flipped.shape == (3, 112, 112)


def test_image_folder_labels_and_errors(tmp_path):
    write_folder(tmp_path / "faces")
    folder = ImageFolder(tmp_path / "faces")
    assert folder.num_classes == 2 and len(folder) == 6
    assert [folder.label(i) for i in range(6)] == [0, 0, 0, 1, 1, 1]
    assert folder.image(0).shape == (112, 112, 3)
    with pytest.raises(DataError, match="does not exist"):
        ImageFolder(tmp_path / "missing")
    (tmp_path / "empty" / "nobody").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds no images"):
        ImageFolder(tmp_path / "empty")


def test_unreadable_image_is_skipped_and_counted_or_fatal_when_strict(tmp_path, caplog):
    write_folder(tmp_path / "faces", corrupt=True)
    folder = ImageFolder(tmp_path / "faces")
    broken = next(i for i in range(len(folder)) if folder.paths[i].name == "broken.jpg")
    dataset = TrainingDataset(folder, TrainTransform(), 112, seed=0)
    batch = collate([dataset[(0, i)] for i in range(len(folder))])
    assert batch["skipped"] == 1 and len(batch["labels"]) == len(folder) - 1
    assert "broken.jpg" in caplog.text  # reported by name
    strict = TrainingDataset(folder, TrainTransform(), 112, seed=0, strict=True)
    with pytest.raises(ImageError, match="broken.jpg"):
        strict[(0, broken)]


def test_image_decoding_variants(tmp_path):
    import cv2

    gray = np.arange(64 * 64, dtype=np.uint8).reshape(64, 64)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    deep = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)[:, :, None].repeat(3, 2)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 2] = 255  # red in BGRA
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    assert read_image(tmp_path / "gray.png").shape == (64, 64, 3)
    assert read_image(tmp_path / "deep.png").dtype == np.uint8
    assert tuple(read_image(tmp_path / "rgba.png")[0, 0]) == (255, 0, 0)
    whole = encode_image(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    (tmp_path / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ImageError, match="truncated.jpg"):
        read_image(tmp_path / "truncated.jpg")
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(ImageError, match="text.jpg"):
        read_image(tmp_path / "text.jpg")
    with pytest.raises(ImageError, match="cannot read"):
        read_image(tmp_path / "absent.jpg")


def test_recordio_round_trip_in_insightface_layout(tmp_path):
    rng = np.random.default_rng(0)
    samples = [(label, encode_image(rng.integers(0, 256, (112, 112, 3), dtype=np.uint8))) for label in (0, 0, 1, 2, 2)]
    write_recordio(tmp_path / "train", samples)
    dataset = RecordDataset(tmp_path)
    assert len(dataset) == 5 and dataset.num_classes == 3
    assert [dataset.label(i) for i in range(5)] == [0, 0, 1, 2, 2]
    assert dataset.image(3).shape == (112, 112, 3)
    reader = RecordReader(tmp_path / "train.rec")
    flag, header, _ = unpack(reader.read(0))
    assert flag == 2 and list(header) == [6.0, 9.0]  # images 1..5, identity records 6..8
    _, bounds, _ = unpack(reader.read(8))
    assert list(bounds) == [4.0, 6.0]  # identity 2 owns images 4 and 5


def test_recordio_payload_containing_the_magic_word(tmp_path):
    magic = MAGIC.to_bytes(4, "little")
    payload = b"abcd" + magic + b"efgh" + magic + b"xy"
    framed = frame_record(payload)
    assert framed.count(magic) == 3  # one header per part; the data's own magic words are split out
    (tmp_path / "x.rec").write_bytes(framed + frame_record(b"tail"))
    (tmp_path / "x.idx").write_text(f"0\t0\n1\t{len(framed)}\n")
    reader = RecordReader(tmp_path / "x.rec")
    assert reader.read(0) == payload and reader.read(1) == b"tail"
    flag, label, body = unpack(pack(3.0, b"img"))
    assert (flag, label, body) == (0, 3.0, b"img")


def test_insightface_bin_reads_and_round_trips(tmp_path):
    pairs = pairs_from_bin(shared_path("data", "insightface_bin", "small_lfw.bin"))
    assert pairs.num_pairs == 10 and pairs.issame.all()
    assert pairs.load(0).shape == (112, 112, 3)
    bins, issame = load_verification_bin(shared_path("data", "insightface_bin", "small_lfw.bin"))
    write_verification_bin(tmp_path / "copy.bin", bins, issame)
    again, flags = load_verification_bin(tmp_path / "copy.bin")
    assert again == bins and flags.tolist() == issame.tolist()


class _Exploit:
    def __reduce__(self):
        return (exec, ("print('this must never run')",))  # exec: print may be patched (Ray patches it)


def test_bin_with_anything_else_is_refused_and_nothing_runs(tmp_path, capsys):
    evil = tmp_path / "evil.bin"
    evil.write_bytes(pickle.dumps(([b"x", b"y"], [_Exploit()])))
    with pytest.raises(UnsafeBinError, match="refused to load builtins.exec"):
        load_verification_bin(evil)
    assert "never run" not in capsys.readouterr().out
    wrong = tmp_path / "wrong.bin"
    wrong.write_bytes(pickle.dumps({"bins": []}))
    with pytest.raises(UnsafeBinError, match="expected a \\(bins, issame_list\\) pair"):
        load_verification_bin(wrong)
    uneven = tmp_path / "uneven.bin"
    uneven.write_bytes(pickle.dumps(([b"a", b"b", b"c"], [True])))
    with pytest.raises(UnsafeBinError, match="expected N issame flags for 2N images"):
        load_verification_bin(uneven)


def test_lfw_pairs(tmp_path):
    pairs_txt = shared_path("data", "lfw_a", "pairs.txt")
    entries = read_lfw_pairs(pairs_txt)
    assert len(entries) == 6000
    assert sum(a == b for a, _, b, _ in entries) == 3000
    lfw = pairs_from_lfw(pairs_txt, shared_path("data", "lfw_a", "lfw"))
    assert lfw.num_pairs == 6000 and lfw.load(0).shape == (112, 112, 3)
    (tmp_path / "pairs.txt").write_text("1 1\nNobody 1 2\n")
    with pytest.raises(DataError, match="1 images|2 images"):
        pairs_from_lfw(tmp_path / "pairs.txt", tmp_path)


def test_sampler_is_resumable_and_covers_each_epoch():
    sampler = SeededBatchSampler(10, 3, seed=5)
    batches = iter(sampler)
    first = [next(batches) for _ in range(7)]
    epoch0 = [index for batch in first[:3] for _, index in batch]
    assert len(set(epoch0)) == 9  # 3 full batches of a 10-image epoch, no repeats
    resumed = iter(SeededBatchSampler(10, 3, seed=5, start_batch=4))
    assert [next(resumed) for _ in range(3)] == first[4:7]
    ranks = [next(iter(SeededBatchSampler(10, 2, seed=5, rank=r, world_size=2))) for r in (0, 1)]
    assert ranks[0] + ranks[1] == next(iter(SeededBatchSampler(10, 4, seed=5)))


def test_missing_or_empty_dataset_errors(tmp_path):
    with pytest.raises(ValueError, match="needs data.root"):
        build_source(DataConfig(kind="folder"), 0)
    with pytest.raises(DataError, match="train.rec"):
        build_source(DataConfig(kind="recordio", root=str(tmp_path)), 0)
    with pytest.raises(ValueError, match="data.kind: 'lmdb' is not one of: synthetic, folder, recordio"):
        load_config(None, ["data.kind=lmdb"])
    with pytest.raises(ValueError, match="fewer than one global batch"):
        SeededBatchSampler(3, 4, seed=0)


def test_an_exclude_file_names_one_path_a_line_spaces_included(tmp_path):
    face = encode_image(np.full((8, 8, 3), 128, np.uint8), ".png")
    for person, names in {"ada": ["a 1.png", "a2.png"], "bob": ["b1.png"]}.items():
        (tmp_path / "root" / person).mkdir(parents=True)
        for name in names:
            (tmp_path / "root" / person / name).write_bytes(face)
    (tmp_path / "exclude.txt").write_text("ada/a 1.png\n\n")
    kept = ImageFolder(tmp_path / "root", tmp_path / "exclude.txt")
    assert sorted(p.name for p in kept.paths) == ["a2.png", "b1.png"]  # split on whitespace, "a 1.png" stayed
