"""Black-box teachers: the teacher-embeddings file, facelearn teacher-embed (model and dlib teachers,
resume), and distillation from precomputed embeddings with its refusals."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest
import torch
from conftest import need
from helpers import synthetic_people, tiny_config

from facelearn.bulk.teacher import teacher_embed
from facelearn.data.images import encode_image
from facelearn.data.teacher_embeddings import TeacherEmbeddings
from facelearn.deploy.teachers import build_teacher
from facelearn.errors import ConfigError, DataError
from facelearn.train.build import build_trainer

pytestmark = pytest.mark.slow  # trains a model, starts processes or drives a browser


def face_folder(root, people=6, photos=4, size=32, prefix="p"):
    return synthetic_people(root, range(people), photos, size, seed=3, prefix=prefix)


def random_teacher(root, size=16, skip=(), missing=()):
    embeddings = TeacherEmbeddings({"teacher": "random", "photos": str(root)})
    rng = np.random.default_rng(0)
    for path in sorted(root.glob("*/*.png")):
        key = f"{path.parent.name}/{path.stem}"
        if key not in skip:
            embeddings.add(key, None if key in missing else rng.normal(size=size))
    return embeddings


def test_the_file_round_trips_and_refuses_a_teacher_that_changes_size(tmp_path):
    root = face_folder(tmp_path / "faces", 2, 2)
    made = random_teacher(root, missing={"p1/1"})
    made.save(tmp_path / "t.npz")
    loaded = TeacherEmbeddings.load(tmp_path / "t.npz")
    assert loaded.keys == made.keys and loaded.missing == ["p1/1"] and np.array_equal(loaded.rows, made.rows)
    paths = sorted(root.glob("*/*.png"))
    table = loaded.table_for([f"{p.parent.name}/{p.stem}" for p in paths], "faces")
    assert table.shape == (4, 16) and np.isnan(table[3]).all() and np.array_equal(table[0], made.rows[0])
    with pytest.raises(DataError, match="changed mid-file: 16 before, 8"):
        made.add("p9/0", np.zeros(8))
    with pytest.raises(DataError, match="not a teacher-embeddings file"):
        TeacherEmbeddings.load(paths[0])


def test_missing_images_and_another_data_root_are_named(tmp_path):
    root = face_folder(tmp_path / "faces", 3, 2)
    keys = [f"{p.parent.name}/{p.stem}" for p in sorted(root.glob("*/*.png"))]
    partial = random_teacher(root, skip={"p2/0", "p2/1"})
    with pytest.raises(DataError, match=r"2 of the 6 images of faces have no teacher embedding \(first: p2/0, p2/1\)"):
        partial.table_for(keys, "faces")
    other = face_folder(tmp_path / "other", 2, 2, prefix="someone")
    with pytest.raises(DataError, match="none match: the file was made from .*faces, for another data root"):
        partial.table_for([f"{p.parent.name}/{p.stem}" for p in sorted(other.glob("*/*.png"))], "other")


def test_distillation_from_precomputed_embeddings_trains_and_refuses_what_needs_layers(tmp_path):
    torch.set_num_threads(1)
    root = face_folder(tmp_path / "faces")
    random_teacher(root, missing={"p0/0"}).save(tmp_path / "t.npz")
    options = [
        "train.task=distill",
        "data.kind=folder",
        f"data.root={root}",
        f"distill.teacher_embeddings={tmp_path / 't.npz'}",
    ]
    trainer = build_trainer(tiny_config(tmp_path / "run", *options))
    assert trainer.task.projection.out_features == 16  # student 32-d -> teacher 16-d, learned
    assert trainer.fit()["step"] == 6
    logged = (tmp_path / "run" / "train.log").read_text()
    assert "angular/final" in logged
    refusals = {
        "distill.stages=[2]": "stage losses .* need a teacher whose layers",
        "distill.method=hinton": "class logits",
        f"distill.teacher={tmp_path / 't.npz'}": "not both",
    }
    for override, message in refusals.items():
        with pytest.raises(ConfigError, match=message):
            build_trainer(tiny_config(tmp_path / "refused", *options, override))
    random_teacher(root, skip={"p3/2"}).save(tmp_path / "short.npz")
    with pytest.raises(DataError, match="1 of the 24 images"):
        build_trainer(tiny_config(tmp_path / "short", *options, f"distill.teacher_embeddings={tmp_path / 'short.npz'}"))


def test_a_teacher_that_is_not_there_or_not_an_image_model_is_refused(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'facelearn\[dlib\]'"):
        build_teacher("dlib")
    with pytest.raises(ConfigError, match="use dlib, onnx:PATH or checkpoint:PATH"):
        build_teacher("teacher.onnx")
    need("onnx", "deploy")
    vectors = tmp_path / "vectors.onnx"
    torch.onnx.export(torch.nn.Linear(10, 4), (torch.zeros(2, 10),), str(vectors), dynamo=False)
    with pytest.raises(DataError, match=r"uint8 \(N, H, W, 3\) batch"):
        build_teacher(f"onnx:{vectors}")


def test_teacher_embed_with_a_model_teacher_lists_faceless_photos_and_resumes(lfw_people, tmp_path):
    photos = tmp_path / "photos"
    for person, paths in list(lfw_people.enrolled.items())[:2]:
        (photos / person).mkdir(parents=True)
        for path in paths[:3]:
            shutil.copy(path, photos / person / path.name)
    (photos / "nobody").mkdir()
    (photos / "nobody" / "blank.png").write_bytes(encode_image(np.zeros((120, 120, 3), np.uint8), ".png"))
    teacher = [f"checkpoint:{lfw_people.model}", "--weights", str(lfw_people.weights)]
    from facelearn.cli import main as facelearn

    assert facelearn(["teacher-embed", str(photos), str(tmp_path / "all.npz"), "--teacher", *teacher]) == 0
    full = TeacherEmbeddings.load(tmp_path / "all.npz")
    assert len(full.keys) == 6 and full.missing == ["nobody/blank"] and full.embedding_size == 64
    assert full.meta["weights_sha256"] and full.meta["photos"] == str(photos.resolve())
    assert (
        facelearn(["teacher-embed", str(photos), str(tmp_path / "all.npz"), "--teacher", *teacher]) == 2
    )  # no overwrite
    started = TeacherEmbeddings({k: v for k, v in full.meta.items()})  # a run killed after two photos
    started.add(full.keys[0], np.full(64, 7.0))  # a marker: a resumed run keeps what was done
    started.add(full.keys[1], full.rows[1])
    started.save(tmp_path / "resumed.npz.partial")
    resumed = teacher_embed(
        f"checkpoint:{lfw_people.model}", photos, tmp_path / "resumed.npz", 1, weights=lfw_people.weights
    )
    assert resumed.keys[0] == full.keys[0] and (resumed.rows[0] == 7.0).all()
    assert sorted(resumed.keys) == sorted(full.keys) and resumed.missing == full.missing
    assert not (tmp_path / "resumed.npz.partial").exists()
    by_key = dict(zip(resumed.keys, resumed.rows, strict=True))
    for key, row in zip(full.keys[2:], full.rows[2:], strict=True):
        assert np.allclose(by_key[key], row, atol=1e-5)


def test_dlib_teacher_on_real_photos(lfw_people, tmp_path):
    need("dlib", "dlib")
    photos = tmp_path / "photos"
    people = list(lfw_people.enrolled.items())[:2]
    for person, paths in people:
        (photos / person).mkdir(parents=True)
        for path in paths[:2]:
            shutil.copy(path, photos / person / path.name)
    result = teacher_embed("dlib", photos, tmp_path / "dlib.npz", workers=2)
    assert result.embedding_size == 128 and result.meta["teacher"] == "dlib" and len(result.keys) == 4
    rows = {key: row / np.linalg.norm(row) for key, row in zip(result.keys, result.rows, strict=True)}
    (a1, a2), (b1, _) = [[rows[k] for k in result.keys if k.startswith(p)] for p, _ in people]
    assert a1 @ a2 > a1 @ b1  # the same person is nearer than another


def test_unlabelled_faces_feed_the_teacher_term_only_and_never_test_people(tmp_path):
    torch.set_num_threads(1)
    labelled, unlabelled = face_folder(tmp_path / "faces"), face_folder(tmp_path / "extra", 8, 1, prefix="u")
    both = random_teacher(labelled)
    for key, row in zip(random_teacher(unlabelled).keys, random_teacher(unlabelled).rows, strict=True):
        both.add(key, row)
    both.save(tmp_path / "t.npz")
    options = [
        "train.task=distill", "data.kind=folder", f"data.root={labelled}", f"data.unlabelled={unlabelled}",
        f"distill.teacher_embeddings={tmp_path / 't.npz'}",
    ]  # fmt: skip
    trainer = build_trainer(tiny_config(tmp_path / "run", *options))
    assert len(trainer.task.source) == 24 + 8 and trainer.task.source.labels.count(-1) == 8
    seen, head = {"labels": [], "unlabelled": 0}, trainer.task.head.forward
    original = trainer.task.forward

    def recording(batch):
        seen["unlabelled"] += int((batch["indices"] >= 24).sum())
        return original(batch)

    def head_forward(embeddings, labels):
        seen["labels"] += labels.tolist()
        return head(embeddings, labels)

    trainer.task.forward, trainer.task.head.forward = recording, head_forward
    assert trainer.fit()["step"] == 6
    assert seen["unlabelled"] > 0 and min(seen["labels"]) >= 0  # drawn, and never shown to the margin head
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("2\t1\nu3\t1\tp0\t1\nu5\t1\tp1\t2\n")
    test_set = f"eval.sets=[{{name: test, kind: pairs, path: {pairs}, root: {labelled}, folds: 2}}]"
    leak = r"data.unlabelled .* holds 2 identities of the evaluation pairs \(first: u3, u5\)"
    with pytest.raises(ConfigError, match=leak):
        build_trainer(tiny_config(tmp_path / "leak", *options, test_set))
    with pytest.raises(ConfigError, match="needs train.task=distill"):
        build_trainer(tiny_config(tmp_path / "plain", *options[1:]))


def test_head_weight_0_trains_on_the_teachers_term_alone(tmp_path):
    torch.set_num_threads(1)
    root = face_folder(tmp_path / "faces")
    random_teacher(root).save(tmp_path / "t.npz")
    options = [
        "train.task=distill", "data.kind=folder", f"data.root={root}",
        f"distill.teacher_embeddings={tmp_path / 't.npz'}", "distill.head_weight=0",
    ]  # fmt: skip
    trainer = build_trainer(tiny_config(tmp_path / "run", *options))
    head_before = trainer.task.head.weight.detach().clone()
    backbone_before = [p.detach().clone() for p in trainer.task.backbone.parameters()]
    assert trainer.fit()["step"] == 6
    assert torch.equal(trainer.task.head.weight, head_before)  # no margin-head term, no gradient for the head
    assert any(not torch.equal(p, q) for p, q in zip(trainer.task.backbone.parameters(), backbone_before, strict=True))
    logged = (tmp_path / "run" / "train.log").read_text()
    assert "angular/final" in logged and "classification" not in logged
    with pytest.raises(ConfigError, match="nothing to learn"):
        build_trainer(tiny_config(tmp_path / "none", *options, "distill.method=none"))


def test_a_teacher_whose_embeddings_share_one_direction_is_named_and_can_be_centred(tmp_path, caplog):
    torch.set_num_threads(1)
    root = face_folder(tmp_path / "faces")
    shared = random_teacher(root)
    shared.rows = [row + 5.0 for row in shared.rows]  # like dlib's: every embedding near one direction
    shared.save(tmp_path / "t.npz")
    options = [
        "train.task=distill",
        "data.kind=folder",
        f"data.root={root}",
        f"distill.teacher_embeddings={tmp_path / 't.npz'}",
    ]
    with caplog.at_level("WARNING", logger="facelearn.train.distillation"):
        raw = build_trainer(tiny_config(tmp_path / "raw", *options))
    assert "share one direction" in caplog.text and raw.task.teacher.table.mean().item() > 4
    centred = build_trainer(tiny_config(tmp_path / "centred", *options, "distill.center_teacher=true"))
    table = centred.task.teacher.table
    assert torch.allclose(table.mean(0), torch.zeros(16), atol=1e-5)
    assert torch.allclose(table, raw.task.teacher.table - raw.task.teacher.table.mean(0), atol=1e-5)
    assert centred.fit()["step"] == 6
    with pytest.raises(ConfigError, match="applies to distill.teacher_embeddings"):
        build_trainer(
            tiny_config(tmp_path / "model", "train.task=distill", "distill.teacher=x.pt", "distill.center_teacher=true")
        )
