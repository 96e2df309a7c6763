"""``--engine ray`` on a local Ray of 2 CPUs: the same faces as the local engine, exactly once through a killed actor
and a killed driver, nothing new on a rerun, prepare and teacher-embed on Ray, and clear errors instead of hangs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import need, shared_path
from helpers import lfw_photos, untrained_model

from facelearn.bulk.embed import EmbedOptions, embed_photos, faces_of
from facelearn.bulk.engine import EngineOptions
from facelearn.bulk.output import face_rows, read_columns
from facelearn.cli import main as facelearn
from facelearn.data.recordio import RecordDataset
from facelearn.data.teacher_embeddings import TeacherEmbeddings
from facelearn.errors import ConfigError


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return untrained_model(tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture
def weights():
    return shared_path("weights", "retinaface")


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (from /proc): the Ray processes a driver started."""
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def pipeline_actors() -> list[int]:
    """This test session's Ray actors that run the pipeline (their process title names the map)."""
    actors = []
    for pid in descendants(os.getpid()):
        try:
            if b"MapBatches(PipelineActor)" in Path(f"/proc/{pid}/cmdline").read_bytes():
                actors.append(pid)
        except OSError:
            continue
    return actors


def assert_each_photo_once(output, listed: int, model_id: str) -> None:
    rows = read_columns(str(output), model_id, ["photo_key", "face_index"]).to_pylist()
    assert len(rows) == len({(r["photo_key"], r["face_index"]) for r in rows}), "a face was written twice"
    assert len({r["photo_key"] for r in rows}) == listed, "a photo is missing"


def by_face(table):
    return table.sort_by([("photo_key", "ascending"), ("face_index", "ascending")])


def test_both_engines_give_the_same_faces_and_embeddings_and_a_rerun_writes_nothing(
    local_ray, model, weights, tmp_path
):
    root = lfw_photos(tmp_path / "photos", 200, per_person=3)
    options = EmbedOptions(str(model), weights=str(weights))
    local = embed_photos(root, tmp_path / "local", options, EngineOptions(workers=2, batch_size=8))
    ray = embed_photos(root, tmp_path / "ray", options, EngineOptions(engine="ray", batch_size=8))
    assert ray["this_run"]["engine"] == "ray" and ray["this_run"]["actors"] == 2  # one CPU each, on 2 CPUs
    shards = sorted(p.name for p in (tmp_path / "ray").glob("part-*.parquet"))
    assert shards == sorted(p.name for p in (tmp_path / "local").glob("part-*.parquet")) and len(shards) == 25
    for key in ("photos", "faces", "photos_with_faces", "no_face", "unreadable", "not_done"):
        assert ray[key] == local[key], key
    assert local["photos"] == 200 and local["faces"] >= 200
    a, b = by_face(face_rows(str(tmp_path / "local"))), by_face(face_rows(str(tmp_path / "ray")))
    assert a["photo_key"].to_pylist() == b["photo_key"].to_pylist()
    assert a["face_index"].to_pylist() == b["face_index"].to_pylist()
    assert np.allclose(a["box"].to_pylist(), b["box"].to_pylist(), atol=1e-3)
    assert np.abs(faces_of(a) - faces_of(b)).max() <= 1e-5

    written = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ray").iterdir() if p.name.startswith("part-")}
    again = embed_photos(root, tmp_path / "ray", options, EngineOptions(engine="ray", batch_size=8))
    assert again["this_run"]["photos"] == 0 and again["faces"] == ray["faces"]
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ray").iterdir() if p.name.startswith("part-")} == written


def test_a_worker_killed_mid_run_is_retried_and_every_face_is_written_once(local_ray, model, weights, tmp_path):
    root = lfw_photos(tmp_path / "photos", 100, per_person=4)
    out = tmp_path / "out"
    killed: list[int] = []

    def kill_an_actor_once_shards_appear():
        deadline = time.monotonic() + 600
        while not killed and time.monotonic() < deadline:
            actors = pipeline_actors()
            if actors and any(out.glob("part-*.parquet")):
                os.kill(actors[0], signal.SIGKILL)
                killed.append(actors[0])
            time.sleep(0.02)

    killer = threading.Thread(target=kill_an_actor_once_shards_appear, daemon=True)
    killer.start()
    options = EmbedOptions(str(model), weights=str(weights))
    report = embed_photos(root, out, options, EngineOptions(engine="ray", batch_size=2))
    killed.append(0)  # stops the killer if the run ended first
    killer.join()
    assert killed[0] != 0, "the run ended before an actor could be killed"
    shards = len(list(out.glob("part-*.parquet")))
    assert report["not_done"] == 0 and report["this_run"]["photos"] == 100 and shards == 50
    assert_each_photo_once(out, 100, report["model_id"])


def test_a_killed_driver_is_finished_by_a_rerun_without_duplicates(local_ray, model, weights, tmp_path):
    root = lfw_photos(tmp_path / "photos", 120, per_person=4)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "facelearn.cli", "embed", str(root), str(out), "--model", str(model)]
    command += ["--weights", str(weights), "--engine", "ray", "--batch-size", "2"]
    with open(tmp_path / "driver.log", "w") as log:
        driver = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)  # its own local Ray
    try:
        deadline = time.monotonic() + 400
        while len(list(out.glob("part-*.parquet"))) < 3 and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert driver.poll() is None, f"the driver ended before it was killed: {(tmp_path / 'driver.log').read_text()}"
        os.kill(driver.pid, signal.SIGKILL)  # the driver only; its Ray goes down by itself
        driver.wait()
        time.sleep(1)
    finally:  # whatever of its Ray is left (agents outlive a killed driver for a while)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)
    before = len(list(out.glob("part-*.parquet")))
    assert 3 <= before < 60, before
    report = embed_photos(
        root, out, EmbedOptions(str(model), weights=str(weights)), EngineOptions(engine="ray", batch_size=2)
    )
    assert report["not_done"] == 0 and report["this_run"]["photos"] <= 120 - 2 * before
    assert len(list(out.glob("part-*.parquet"))) == 60 and not list(out.glob(".*.tmp"))
    assert_each_photo_once(out, 120, report["model_id"])


def test_a_cluster_that_does_not_answer_is_one_line_within_seconds(model, tmp_path):
    need("ray", "ray")
    root = lfw_photos(tmp_path / "photos", 2)
    command = [sys.executable, "-m", "facelearn.cli", "embed", str(root), str(tmp_path / "out"), "--model", str(model)]
    start = time.monotonic()
    result = subprocess.run(
        [*command, "--engine", "ray", "--address", "127.0.0.1:1", "--connect-timeout", "5"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and time.monotonic() - start < 30
    assert "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("facelearn: error: --address 127.0.0.1:1: no Ray cluster answers there")
    )


def test_actors_that_could_never_be_placed_are_refused_at_once(local_ray, model, weights, tmp_path):
    root = lfw_photos(tmp_path / "photos", 2)
    options = EmbedOptions(str(model), weights=str(weights))
    with pytest.raises(ConfigError, match=r"--actors 3 at 1 CPU each do not fit the cluster \(room for 2\)"):
        embed_photos(root, tmp_path / "a", options, EngineOptions(engine="ray", actors=3))
    with pytest.raises(ConfigError, match="no node of the Ray cluster holds one actor's 4 CPU"):
        embed_photos(root, tmp_path / "b", options, EngineOptions(engine="ray", cpus_per_actor=4))


def test_prepare_and_teacher_embed_on_ray_write_what_the_local_engine_writes(local_ray, model, weights, tmp_path):
    root = lfw_photos(tmp_path / "photos", 8, per_person=4)
    detector = ["--detector", "retinaface", "--weights", str(weights)]
    assert facelearn(["prepare", str(root), str(tmp_path / "local"), *detector, "--workers", "2"]) == 0
    assert facelearn(["prepare", str(root), str(tmp_path / "ray"), *detector, "--engine", "ray", "--recordio"]) == 0
    crops = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").glob("*/*.jpg"))
    assert len(crops) == 8 and crops == sorted(
        p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").glob("*/*.jpg")
    )
    assert all((tmp_path / "local" / c).read_bytes() == (tmp_path / "ray" / c).read_bytes() for c in crops)
    dataset = RecordDataset(tmp_path / "ray")  # the training set a cluster prepares and torchrun reads
    assert len(dataset) == 8 and dataset.num_classes == len({c.parts[0] for c in crops})

    teacher = ["--teacher", f"checkpoint:{model}", "--weights", str(weights)]
    assert facelearn(["teacher-embed", str(root), str(tmp_path / "local.npz"), *teacher]) == 0
    assert facelearn(["teacher-embed", str(root), str(tmp_path / "ray.npz"), *teacher, "--engine", "ray"]) == 0
    local, ray = TeacherEmbeddings.load(tmp_path / "local.npz"), TeacherEmbeddings.load(tmp_path / "ray.npz")
    assert sorted(local.keys) == sorted(ray.keys) and len(local.keys) == 8
    rows = dict(zip(ray.keys, ray.rows, strict=True))
    assert max(np.abs(row - rows[key]).max() for key, row in zip(local.keys, local.rows, strict=True)) <= 1e-5
