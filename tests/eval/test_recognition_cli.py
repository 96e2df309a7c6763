"""``facelearn eval --ijb`` on the fixture's IJB layout, and ``--gallery/--probes/--distractors``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import shared_path

from facelearn.align.align import align_face
from facelearn.cli import main as facelearn
from facelearn.data.images import encode_image, read_image
from facelearn.data.synthetic import UNSEEN_IDENTITY_OFFSET, SyntheticFaces
from facelearn.data.transforms import to_tensor
from facelearn.errors import DataError
from facelearn.eval.ijb_layout import read_ijb_meta
from facelearn.eval.recognition import load_ijb_features, score_ijb
from facelearn.models.checkpoint import backbone_from_checkpoint

pytestmark = pytest.mark.slow  # trains a model, starts processes or drives a browser


@pytest.fixture
def ijb_folder(tmp_path):
    """The seed-0 meta folder with a rendered 96×96 face for every file name it lists."""
    folder = tmp_path / "IJBC"
    shutil.copytree(shared_path("fixtures", "ijb", "seed0", "IJBC", "meta"), folder / "meta")
    meta = read_ijb_meta(folder, "IJBC")
    faces = SyntheticFaces(1, 1, 96, seed=3)
    (folder / "loose_crop").mkdir()
    for index, name in enumerate(meta.names):
        image = faces.render(UNSEEN_IDENTITY_OFFSET + int(meta.templates[index]) % 40, index)
        (folder / "loose_crop" / name).write_bytes(encode_image(image))
    return folder


def test_eval_ijb_aligns_with_the_release_landmarks_and_scores_both_protocols(tiny_run, ijb_folder, tmp_path, capsys):
    output = tmp_path / "out"
    arguments = ["eval", str(tiny_run / "best.pt"), "--ijb", str(ijb_folder.parent), "--output", str(output)]
    assert facelearn(arguments) == 0
    printed = capsys.readouterr().out
    assert "IJBC 1:1 templates, 577 images" in printed and "TPIR@FPIR=0.01" in printed
    report = json.loads((output / "ijbc.json").read_text())
    assert len(report["one_to_one"]) == 8 and report["tar_rule"] == "at_most"
    assert report["one_to_n"]["galleries"]["G1"]["num_mated"] == 54
    assert {"ijbc_roc.png", "ijbc_cmc.png", "ijbc_det.png"} <= {p.name for p in output.iterdir()}
    # every image went through align_face with its own five landmarks, then the model and its mirror
    meta = read_ijb_meta(ijb_folder, "IJBC")
    features, mirrors = load_ijb_features(output / "ijbc_features.npz", meta)
    backbone, size = backbone_from_checkpoint(tiny_run / "best.pt")
    for index in (0, 300):
        face = align_face(read_image(ijb_folder / "loose_crop" / meta.names[index]), meta.landmarks[index], size, size)
        with torch.no_grad():
            pair = backbone(torch.stack([to_tensor(face), to_tensor(face).flip(2)])).numpy()
        np.testing.assert_allclose(features[index], pair[0], atol=1e-4)
        np.testing.assert_allclose(mirrors[index], pair[1], atol=1e-4)
    rescored = score_ijb(meta, features, mirrors, mode="N0D0F0")  # other options, no re-embedding
    assert rescored["one_to_one"] == report["one_to_one"]


def test_ijb_layout_errors_name_the_problem(tiny_run, ijb_folder, tmp_path, capsys):
    meta_dir = ijb_folder / "meta"
    best = str(tiny_run / "best.pt")
    capsys.readouterr()
    (ijb_folder / "loose_crop" / "7.jpg").unlink()
    assert facelearn(["eval", best, "--ijb", str(ijb_folder), "--output", str(tmp_path / "o")]) == 2
    assert "1 images of the media list are missing" in capsys.readouterr().err
    pairs = meta_dir / "ijbc_template_pair_label.txt"
    pairs.write_text("123456 " + pairs.read_text().split(" ", 1)[1])
    with pytest.raises(DataError, match="no images in the media list: 123456"):
        score_ijb(read_ijb_meta(ijb_folder), *np.split(np.ones((577, 8), np.float32), 2, axis=1))
    landmarks = meta_dir / "ijbc_name_5pts_score.txt"
    lines = landmarks.read_text().splitlines()
    landmarks.write_text("\n".join(lines[1:] + ["extra.jpg" + lines[0][lines[0].index(" ") :]]) + "\n")
    with pytest.raises(DataError, match="1 only in the media list \\(e.g. \\['1.jpg'\\]\\), 1 only in the landmark"):
        read_ijb_meta(ijb_folder)
    landmarks.write_text("1.jpg 1 2 3\n")
    with pytest.raises(DataError, match="ijbc_name_5pts_score.txt:1: expected 12 fields, got 4"):
        read_ijb_meta(ijb_folder)
    with pytest.raises(DataError, match="no meta/ folder"):
        read_ijb_meta(tmp_path / "nowhere")
    assert facelearn(["eval", best, "--distractors", str(tmp_path)]) == 2
    assert "--distractors needs --gallery and --probes" in capsys.readouterr().err


def test_ijbb_layout_reads_galleries_s1_s2_and_refuses_bad_embeddings(ijb_folder, tmp_path):
    folder = tmp_path / "IJBB"
    (folder / "meta").mkdir(parents=True)
    for path in (ijb_folder / "meta").iterdir():
        name = path.name.replace("ijbc", "ijbb").replace("_G1", "_S1").replace("_G2", "_S2")
        (folder / "meta" / name).write_bytes(path.read_bytes())
    meta = read_ijb_meta(tmp_path, "IJBB")
    assert list(meta.galleries) == ["S1", "S2"] and len(meta.probes[0]) == 124
    features = np.random.default_rng(0).normal(size=(577, 8)).astype(np.float32)
    features[9] = np.nan
    with pytest.raises(DataError, match="1 image embeddings are NaN or infinite \\(first: row 9\\)"):
        score_ijb(meta, features, features)
    features[9] = 0
    with pytest.raises(DataError, match="1 image embeddings are zero \\(first: row 9\\)"):
        score_ijb(meta, features, None, mode="N0D0F0")
    with pytest.raises(DataError, match="unknown IJB target 'IJBA'"):
        read_ijb_meta(tmp_path, "IJBA")


def write_faces(folder, identities, per_identity, faces, offset=0):
    for identity in identities:
        (folder / f"person{identity}").mkdir(parents=True)
        for k in range(per_identity):
            image = faces.render(UNSEEN_IDENTITY_OFFSET + identity, offset + k)
            (folder / f"person{identity}" / f"{k}.jpg").write_bytes(encode_image(image))


def test_eval_gallery_probes_distractors_on_folders(tiny_run, tmp_path, capsys):
    faces = SyntheticFaces(1, 1, 64, seed=5)
    write_faces(tmp_path / "gallery", range(8), 1, faces)
    write_faces(tmp_path / "probes", range(12), 2, faces, offset=10)  # 8 enrolled, 4 never enrolled
    write_faces(tmp_path / "distractors", range(100, 130), 1, faces)
    output = tmp_path / "out"
    folders = ["--gallery", str(tmp_path / "gallery"), "--probes", str(tmp_path / "probes")]
    arguments = ["eval", str(tiny_run / "best.pt"), *folders, "--distractors", str(tmp_path / "distractors")]
    assert facelearn([*arguments, "--output", str(output)]) == 0
    assert "closed set: rank-1" in capsys.readouterr().out
    report = json.loads((output / "identification.json").read_text())
    assert (report["num_mated"], report["num_nonmated"], report["gallery_identities"]) == (16, 8, 8)
    assert report["with_distractors"]["pairs"] == 8 * 3 * 2 and report["with_distractors"]["num_distractors"] == 30
    assert all(r <= f for r, f in zip(report["realised_fpir"], report["fpir"], strict=True))
    assert {"identification_cmc.png", "identification_det.png"} <= {p.name for p in output.iterdir()}
    (tmp_path / "empty").mkdir()
    assert facelearn(["eval", str(tiny_run / "best.pt"), "--gallery", str(tmp_path / "empty"), *folders[2:]]) == 2
    assert "gallery folder" in capsys.readouterr().err
