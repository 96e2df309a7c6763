"""DDL as a training task: batch layout, groups, training through the engine, resume, plots."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from helpers import DDL, tiny_config, weights

from facelearn.config import DDLConfig, DDLGroupConfig
from facelearn.data.ddl_batches import DDLBatchSampler, build_groups
from facelearn.data.folder import ImageFolder
from facelearn.data.images import encode_image
from facelearn.data.synthetic import SyntheticFaces
from facelearn.train.build import build_trainer


def test_batch_layout_distinct_identities_and_true_pairs():
    source = SyntheticFaces(10, 3, 32, seed=0)
    config = DDLConfig(pairs=4, students=[DDLGroupConfig("a"), DDLGroupConfig("b")])
    groups = build_groups(source, config)
    keys = DDLBatchSampler(groups, 4, seed=1).batch(0)
    assert len(keys) == 3 * 3 * 4  # (teacher + 2 students) × (singles, first, second) × b
    for g in range(3):
        block = [source.label(index) for _, index, _, _ in keys[g * 12 : (g + 1) * 12]]
        singles, first, second = block[:4], block[4:8], block[8:]
        assert len(set(singles)) == 4 and first == second
        indices = [index for _, index, _, _ in keys[g * 12 + 4 : (g + 1) * 12]]
        assert all(a != b for a, b in zip(indices[:4], indices[4:], strict=True))  # two different photos
    assert keys == DDLBatchSampler(groups, 4, seed=1).batch(0)  # a pure function of (seed, batch)
    with pytest.raises(ValueError, match="at least ddl.pairs=12 identities"):
        build_groups(source, DDLConfig(pairs=12))


def test_groups_from_a_metadata_file(tmp_path):
    root = tmp_path / "faces"
    rows = []
    for person in range(4):
        (root / f"p{person}").mkdir(parents=True)
        for k in range(4):
            name = f"p{person}/{k}.jpg"
            (root / name).write_bytes(encode_image(np.full((16, 16, 3), 10 * person + k, np.uint8)))
            rows.append({"path": name, "group": "easy" if k < 2 else "profile"})
    metadata = tmp_path / "groups.csv"
    with open(metadata, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "group"])
        writer.writeheader()
        writer.writerows(rows)
    source = ImageFolder(root)
    config = DDLConfig(pairs=2, metadata=str(metadata), students=[DDLGroupConfig("profile", None)])
    easy, profile = build_groups(source, config)
    assert sorted(easy.by_identity[0]) == [0, 1] and sorted(profile.by_identity[0]) == [2, 3]
    with pytest.raises(ValueError, match="no degrade and no rows"):
        build_groups(source, DDLConfig(pairs=2, metadata=str(metadata), students=[DDLGroupConfig("pose", None)]))


def test_ddl_trains_resumes_and_plots(tmp_path):
    torch.set_num_threads(1)
    run = tmp_path / "ddl"
    config = tiny_config(run, *DDL, "eval.every=3")
    summary = build_trainer(config).fit()
    assert summary["step"] == 6 and np.isfinite(summary["verification"]["unseen"]["accuracy"])
    plots = sorted(p.name for p in (run / "eval").glob("ddl_distributions_step*.png"))
    assert plots == ["ddl_distributions_step0000003.png", "ddl_distributions_step0000006.png"]
    assert "DDL E[S+] - E[S-]: easy" in (run / "train.log").read_text()
    straight = weights(run)
    (run / "metrics.json").unlink()
    for path in sorted(run.glob("step_*.pt"))[1:]:
        path.unlink()  # as if killed after step 3
    build_trainer(tiny_config(run, *DDL, "eval.every=3")).fit()
    for key, value in weights(run).items():
        torch.testing.assert_close(value, straight[key], rtol=0, atol=0, msg=key)


def test_ddl_weights_zero_is_plain_classification_on_the_same_batches(tmp_path):
    torch.set_num_threads(1)
    zero = ["ddl.pos_weight=0", "ddl.neg_weight=0", "ddl.order_weight=0"]
    trainer = build_trainer(tiny_config(tmp_path / "z", *DDL, *zero))
    batch = next(iter(trainer.task.loader(0)))
    output = trainer.task(batch)
    assert output.loss.item() == pytest.approx(output.metrics["classification"], rel=1e-6)


def test_hard_pair_sets_degrade_both_or_only_the_second_member():
    from facelearn.config import DegradeConfig
    from facelearn.data.pairs import degraded, synthetic_pairs

    easy = synthetic_pairs(4, image_size=32)
    low = DegradeConfig(downsample_prob=1.0, downsample_sizes=[8])
    both, second = degraded(easy, low, "both"), degraded(easy, low, "second")
    assert not np.array_equal(both.load(0), easy.load(0)) and not np.array_equal(both.load(1), easy.load(1))
    assert np.array_equal(second.load(0), easy.load(0)) and not np.array_equal(second.load(1), easy.load(1))
    assert np.array_equal(second.load(1), both.load(1))  # the same hard image either way
    with pytest.raises(ValueError, match="valid: both, second"):
        degraded(easy, low, "first")


def test_positive_pairs_from_a_prepared_list(tmp_path):
    root = tmp_path / "faces"
    for person in range(3):
        (root / f"p{person}").mkdir(parents=True)
        for k in range(3):
            (root / f"p{person}/{k}.jpg").write_bytes(encode_image(np.full((16, 16, 3), 9 * person + k, np.uint8)))
    source = ImageFolder(root)
    listed = tmp_path / "pairs.csv"
    listed.write_text("group,first,second\neasy,p0/0.jpg,p0/2.jpg\nlow,p1/1.jpg,p1/2.jpg\n")
    config = DDLConfig(pairs=2, pairs_list=str(listed), students=[DDLGroupConfig("low")])
    groups = build_groups(source, config)
    keys = DDLBatchSampler(groups, 2, seed=0).batch(3)
    easy_pairs = [index for _, index, _, _ in keys[2:6]]
    low_pairs = [index for _, index, _, _ in keys[8:12]]
    assert easy_pairs == [0, 0, 2, 2] and low_pairs == [4, 4, 5, 5]  # only the listed pairs
    listed.write_text("group,first,second\neasy,p0/0.jpg,p1/2.jpg\n")
    with pytest.raises(ValueError, match="different people"):
        build_groups(source, config)


def test_each_process_draws_its_own_ddl_batches():
    from facelearn.data.ddl_batches import DDLBatchSampler

    class Group:
        identities = list(range(10))
        pair_identities = list(range(10))
        by_identity = {i: [2 * i, 2 * i + 1] for i in range(10)}
        listed_pairs = None

    one = DDLBatchSampler([Group()], 3, seed=4).batch(5)
    assert DDLBatchSampler([Group()], 3, seed=4, rank=0).batch(5) == one  # rank 0 = the single-process run
    assert DDLBatchSampler([Group()], 3, seed=4, rank=1).batch(5) != one
