"""``facelearn embed`` on the local engine: every face of every photo as the Recognizer sees it, every photo without
one reported, a rerun that writes nothing, an interrupted run finished; and ``enroll --from-embeddings``."""

from __future__ import annotations

import json
import shutil
import struct
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import need, shared_path
from helpers import lfw_photos, untrained_model

from facelearn.bulk.embed import EmbedOptions, embed_photos, faces_of
from facelearn.bulk.engine import EngineOptions
from facelearn.bulk.output import face_rows, read_columns
from facelearn.cli import main as facelearn
from facelearn.data.images import encode_image, read_image
from facelearn.deploy.gallery import open_gallery
from facelearn.deploy.recognizer import Recognizer


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return untrained_model(tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture
def weights():
    return shared_path("weights", "retinaface")


def huge_png(path, side: int = 20_000):
    """A PNG whose header claims side × side pixels: refused before it is decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)))


def awkward_photos(root):
    """Six LFW-a photos, a group photo, a wall without a face, a cut JPEG and a PNG too large to decode."""
    lfw_photos(root, 6, per_person=3)
    first = sorted(p for p in root.iterdir())[0]
    shutil.copy(shared_path("data", "photos", "facenet_pytorch", "multiface.jpg"), first / "group.jpg")
    noise = np.random.default_rng(0).integers(0, 30, (120, 160, 3), dtype=np.uint8)
    (first / "wall.jpg").write_bytes(encode_image(noise))
    (first / "cut.jpg").write_bytes(encode_image(noise)[:200])
    huge_png(first / "huge.png")
    return root


def test_every_face_of_every_photo_is_a_row_and_every_photo_without_one_is_reported(model, weights, tmp_path):
    root = awkward_photos(tmp_path / "photos")
    listing = tmp_path / "photos.txt"
    names = sorted(p.relative_to(tmp_path).as_posix() for p in root.rglob("*.*"))
    listing.write_text("\n".join([*names, "photos/nobody/ghost.jpg"]) + "\n")
    options = EmbedOptions(str(model), weights=str(weights), precision="float32")
    report = embed_photos(listing, tmp_path / "out", options, EngineOptions(workers=0, batch_size=4))

    person = sorted(p.name for p in root.iterdir())[0]
    assert report["photos"] == 11 and report["not_done"] == 0
    assert report["no_face"] == [f"photos/{person}/wall.jpg"]
    assert [r["photo"] for r in report["missing"]] == ["photos/nobody/ghost.jpg"]
    assert [r["photo"] for r in report["unreadable"]] == [f"photos/{person}/cut.jpg"]
    assert [r["photo"] for r in report["too_large"]] == [f"photos/{person}/huge.png"]
    assert "truncated" in report["unreadable"][0]["reason"]
    assert report["this_run"]["engine"] == "local" and set(report["this_run"]["stage_seconds"]) == {
        "decode", "detect", "align", "embed", "write",
    }  # fmt: skip
    assert json.loads((tmp_path / "out" / "embed_report.json").read_text())["faces"] == report["faces"]

    faces = face_rows(str(tmp_path / "out"))
    group = faces.filter(pa.compute.equal(faces["photo_key"], f"photos/{person}/group.jpg")).to_pylist()
    assert len(group) >= 3 and sorted(r["face_index"] for r in group) == list(range(len(group)))
    assert all(r["faces"] == len(group) and r["subject"] == person for r in group)
    assert (
        report["faces"] == len(faces) and report["photos_with_faces"] == len(set(faces["photo_key"].to_pylist())) == 7
    )
    assert np.allclose(np.linalg.norm(faces_of(faces), axis=1), 1, atol=1e-5)

    # the numbers the Recognizer gives for the same photo, one at a time
    recognizer = Recognizer.load(
        model, detector="retinaface", weights=str(weights), backend="torch", precision="float32"
    )
    image = read_image(root / person / "group.jpg")
    aligned, found = recognizer.aligned_faces(image)
    expected, quality = recognizer.embed_faces(aligned, 64)
    assert np.allclose([r["box"] for r in group], found.boxes, atol=1e-4)
    assert np.allclose([r["landmarks"] for r in group], found.landmarks.reshape(-1, 10), atol=1e-4)
    assert np.allclose([r["embedding"] for r in group], expected, atol=1e-5)
    assert np.allclose([r["quality"] for r in group], quality, rtol=1e-5)
    assert {r["model_id"] for r in faces.to_pylist()} == {recognizer.model_id}


def test_a_rerun_writes_nothing_and_an_interrupted_run_is_finished(model, weights, tmp_path):
    root = lfw_photos(tmp_path / "photos", 6)
    out = tmp_path / "out"
    options, engine = EmbedOptions(str(model), weights=str(weights)), EngineOptions(workers=2, batch_size=2)
    first = embed_photos(root, out, options, engine)  # in two worker processes
    written = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    assert len(written) == 3 and first["this_run"]["photos"] == 6 and first["not_done"] == 0

    again = embed_photos(root, out, options, engine)
    assert again["this_run"]["photos"] == 0 and again["faces"] == first["faces"]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")} == written  # nothing new

    # as a kill leaves it: one batch never written, a worker's temporary file half-written
    lost = sorted(written)[1]
    (out / lost).unlink()
    (out / f".{lost}.999.deadbeef.tmp").write_bytes(b"PAR1 half")
    resumed = embed_photos(root, out, options, engine)
    assert resumed["this_run"]["photos"] == 2 and resumed["faces"] == first["faces"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*written, "embed_report.json"]
    )  # the lock goes with its holder
    rows = read_columns(str(out), first["model_id"], ["photo_key", "face_index"]).to_pylist()
    assert len(rows) == len({(r["photo_key"], r["face_index"]) for r in rows})


def test_the_command_names_bad_input_in_one_line(model, tmp_path, capsys):
    root = lfw_photos(tmp_path / "photos", 2)
    pq.write_table(pa.table({"file": ["a.jpg"]}), tmp_path / "wrong.parquet")
    base = ["--model", str(model)]
    assert facelearn(["embed", str(tmp_path / "wrong.parquet"), str(tmp_path / "out"), *base]) == 2
    assert "needs a 'path' column" in capsys.readouterr().err
    assert facelearn(["embed", str(root), str(root / "faces"), *base]) == 2
    assert "lies inside the photos" in capsys.readouterr().err
    assert facelearn(["embed", str(root), str(tmp_path / "out"), *base, "--batch-size", "0"]) == 2
    assert "--batch-size must be at least 1" in capsys.readouterr().err


@pytest.fixture(params=["sqlite", "milvus"])
def store(request):
    if request.param == "milvus":
        need("milvus_lite", "milvus")
    return request.param


def test_bulk_enroll_is_idempotent_and_refuses_another_models_embeddings(model, weights, tmp_path, store, capsys):
    root = lfw_photos(tmp_path / "photos", 6)
    people = sorted(p.name for p in root.iterdir())
    shutil.copy(shared_path("data", "photos", "facenet_pytorch", "multiface.jpg"), root / people[0] / "group.jpg")
    out = tmp_path / "out"
    embed_photos(root, out, EmbedOptions(str(model), weights=str(weights)), EngineOptions(workers=0, batch_size=4))
    gallery = tmp_path / ("people.db" if store == "sqlite" else "people.milvus.db")
    command = ["enroll", str(gallery), "--from-embeddings", str(out), "--store", store, "--json", "--batch", "3"]
    assert facelearn([*command, "--model", str(model)]) == 0
    counts = json.loads(capsys.readouterr().out)
    photos = {person: len(list((root / person).iterdir())) for person in people}
    assert counts["faces_enrolled"] == 7 and counts["subjects"] == len(people)  # the largest face of each photo
    assert facelearn(command) == 0  # a rerun adds nothing
    again = json.loads(capsys.readouterr().out)
    assert again["faces_enrolled"] == 0 and again["already_enrolled"] == 7
    opened = open_gallery(gallery, counts["model_id"], 32, store)
    assert {s["subject"]: s["faces"] for s in opened.subjects()} == photos
    faces = face_rows(str(out))
    probe = faces.filter(
        pa.compute.equal(faces["photo_key"], f"{people[1]}/{sorted((root / people[1]).iterdir())[0].name}")
    )
    assert opened.search(faces_of(probe), k=1)[0][0][0] == people[1]
    opened.close()

    other = untrained_model(tmp_path / "other.pt", seed=1)
    assert facelearn([*command, "--model", str(other)]) == 2
    assert "not of model" in capsys.readouterr().err
    embed_photos(root, out, EmbedOptions(str(other), weights=str(weights)), EngineOptions(workers=0, batch_size=4))
    assert facelearn(command) == 2
    assert "several models" in capsys.readouterr().err
    assert facelearn([*command, "--model", str(other)]) == 2  # the gallery holds the first model's
    assert "Embeddings of different models cannot be compared" in capsys.readouterr().err
