"""``facelearn prepare``: the report, resuming after an interruption, RecordIO and .bin outputs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import shared_path

from facelearn.align.prepare import PrepareOptions
from facelearn.bulk.prepare import JOURNAL, prepare_dataset, prepare_pairs_bin
from facelearn.cli import main as facelearn
from facelearn.data.images import encode_image, read_image
from facelearn.data.recordio import RecordDataset
from facelearn.data.verification_bin import load_verification_bin

PEOPLE = ("Abdullah_Gul", "Alvaro_Uribe")


@pytest.fixture
def raw_folder(tmp_path):
    """Two LFW people with two photos each, plus the group photo, a photo without a face, a corrupt
    JPEG and a text file."""
    lfw = shared_path("data", "lfw_a", "lfw")
    root = tmp_path / "raw"
    for person in PEOPLE:
        (root / person).mkdir(parents=True)
        for number in (1, 2):
            name = f"{person}_{number:04d}.jpg"
            shutil.copy(lfw / person / name, root / person / name)
    shutil.copy(shared_path("data", "photos", "facenet_pytorch", "multiface.jpg"), root / PEOPLE[0] / "group.jpg")
    noise = np.random.default_rng(0).integers(0, 30, (120, 160, 3), dtype=np.uint8)
    (root / PEOPLE[1] / "wall.jpg").write_bytes(encode_image(noise))
    (root / PEOPLE[1] / "broken.jpg").write_bytes(encode_image(noise)[:200])
    (root / PEOPLE[1] / "notes.txt").write_text("not an image")
    return root


def options(**changes) -> PrepareOptions:
    return PrepareOptions(weights=str(shared_path("weights", "mtcnn")), **changes)


def test_report_counts_faces_no_faces_several_faces_and_failures(raw_folder, tmp_path):
    output = tmp_path / "aligned"
    report = prepare_dataset(raw_folder, output, options(), workers=0)
    assert report["images_read"] == 6 and report["faces_found"] == 5 and report["no_face"] == 1
    assert report["multi_face"] == 1  # the group photo: the largest face was kept
    assert report["no_face_images"] == [f"{PEOPLE[1]}/wall.jpg"]  # relative to the source
    reasons = {r["source"].rsplit("/", 1)[1]: r["reason"] for r in report["failures"]}
    assert set(reasons) == {"broken.jpg", "notes.txt"} and "not a decodable image" in reasons["notes.txt"]
    aligned = sorted(p.relative_to(output).as_posix() for p in output.glob("*/*.jpg"))
    assert aligned == [
        "Abdullah_Gul/Abdullah_Gul_0001.jpg",
        "Abdullah_Gul/Abdullah_Gul_0002.jpg",
        "Abdullah_Gul/group.jpg",
        "Alvaro_Uribe/Alvaro_Uribe_0001.jpg",
        "Alvaro_Uribe/Alvaro_Uribe_0002.jpg",
    ]
    assert read_image(output / aligned[0]).shape == (112, 112, 3)
    assert json.loads((output / "prepare_report.json").read_text())["faces_found"] == 5


def test_an_interrupted_run_resumes_without_redoing_finished_images(raw_folder, tmp_path):
    output = tmp_path / "aligned"
    first = prepare_dataset(raw_folder, output, options(), workers=0)
    lines = (output / JOURNAL).read_text().splitlines()
    done = json.loads(lines[0])["source"]
    (output / JOURNAL).write_text(lines[0] + "\n" + lines[1][:15])  # killed while writing line two
    marker = output / done.split("/")[-2] / (done.split("/")[-1].rsplit(".", 1)[0] + ".jpg")
    marker.write_bytes(b"kept")  # a finished image must not be recomputed
    second = prepare_dataset(raw_folder, output, options(), workers=0)
    assert marker.read_bytes() == b"kept"
    for key in ("images_read", "faces_found", "no_face", "multi_face"):
        assert second[key] == first[key]
    assert len((output / JOURNAL).read_text().splitlines()) == 1 + 7  # cut line dropped, rest redone
    with pytest.raises(ValueError, match="other options.*size"):
        prepare_dataset(raw_folder, output, options(size=96), workers=0)


def test_recordio_output_and_other_crops(raw_folder, tmp_path):
    report = prepare_dataset(raw_folder, tmp_path / "rec", options(crop="center"), workers=0, recordio=True)
    assert report["faces_found"] == 6  # a centre crop needs no face
    dataset = RecordDataset(tmp_path / "rec")
    assert len(dataset) == 6 and dataset.num_classes == 2
    assert sorted(dataset.label(i) for i in range(6)) == [0, 0, 0, 1, 1, 1]
    assert dataset.image(0).shape == (112, 112, 3)
    resized = prepare_dataset(raw_folder, tmp_path / "resize", options(crop="resize", size=64), workers=0)
    assert resized["faces_found"] == 6
    assert read_image(next((tmp_path / "resize").glob("*/*.jpg"))).shape == (64, 64, 3)


def test_pairs_into_an_insightface_bin(raw_folder, tmp_path):
    (raw_folder / PEOPLE[1] / "broken.jpg").unlink()
    shutil.copy(raw_folder / PEOPLE[1] / "wall.jpg", raw_folder / PEOPLE[1] / f"{PEOPLE[1]}_0003.jpg")
    pairs = tmp_path / "pairs.txt"
    a, b = PEOPLE
    pairs.write_text(f"1\t2\n{a}\t1\t2\n{b}\t1\t3\n{a}\t1\t{b}\t1\n{a}\t2\t{b}\t2\n")
    report = prepare_pairs_bin(pairs, raw_folder, tmp_path / "pairs.bin", options(), workers=0)
    assert report["pairs"] == 4 and report["images"] == 5
    assert report["center_crop_fallbacks"] == [str(raw_folder / b / f"{b}_0003.jpg")]
    images, issame = load_verification_bin(tmp_path / "pairs.bin")
    assert len(images) == 8 and issame.tolist() == [True, True, False, False]


def test_cli_prepare_in_worker_processes(raw_folder, tmp_path, capsys):
    weights = str(shared_path("weights", "retinaface"))
    output = tmp_path / "out"
    command = ["prepare", str(raw_folder), str(output), "--detector", "retinaface", "--weights", weights]
    assert facelearn([*command, "--workers", "1"]) == 0
    assert "5 faces aligned" in capsys.readouterr().out
    assert facelearn(["prepare", str(tmp_path / "missing"), str(output)]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_a_flat_folder_of_photos_is_prepared_into_a_flat_folder(raw_folder, tmp_path, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    for photo in (raw_folder / PEOPLE[0]).iterdir():  # two LFW photos and the group photo, no identity folders
        shutil.copy(photo, flat / photo.name)
    output = tmp_path / "faces"
    command = ["prepare", str(flat), str(output), "--weights", str(shared_path("weights", "mtcnn")), "--workers", "0"]
    assert facelearn(command) == 0  # once refused: "holds no identity folders"
    assert "3 faces aligned" in capsys.readouterr().out
    written = sorted(p.name for p in output.glob("*.jpg"))
    assert written == ["Abdullah_Gul_0001.jpg", "Abdullah_Gul_0002.jpg", "group.jpg"]
    assert all(read_image(output / name).shape == (112, 112, 3) for name in written)
    assert facelearn(["prepare", str(flat), str(tmp_path / "rec"), "--recordio", "--workers", "0"]) == 2
    assert "--recordio needs identity folders" in capsys.readouterr().err
