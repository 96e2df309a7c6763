"""Export with parity on real faces, the Recognizer from three model sources, calibration stored in the model."""

from __future__ import annotations

import hashlib
import json
import logging
import threading

import numpy as np
import pytest
import torch
from conftest import need, shared_path

from facelearn.cli import main as facelearn
from facelearn.data.images import encode_image, fit_size, read_image
from facelearn.data.lfw_split import lfw_split
from facelearn.deploy.calibration import calibrate
from facelearn.deploy.recognizer import NoFaceFound, Recognizer
from facelearn.deploy.stored_calibration import store_calibration
from facelearn.errors import ConfigError, DataError
from facelearn.eval.verification import evaluate_pairs
from facelearn.models.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow  # trains a model, starts processes or drives a browser


def lfw_face(path, size):
    """LFW-a is aligned by its authors: the central 128×128 of the 250×250 image holds the face."""
    return fit_size(read_image(path)[61:189, 61:189], size)


@pytest.fixture(scope="module")
def lfw_folds_8_10():
    lfw = shared_path("data", "lfw_a")
    _, pairs = lfw_split(lfw / "pairs.txt", lfw / "lfw", test_folds=(8, 9, 10))
    paths = [lfw / "lfw" / n / f"{n}_{i:04d}.jpg" for n1, i1, n2, i2 in pairs for n, i in ((n1, i1), (n2, i2))]
    return paths, np.array([n1 == n2 for n1, _, n2, _ in pairs])


def test_onnx_export_matches_pytorch_on_real_faces(tiny_run, lfw_folds_8_10, tmp_path, capsys):
    need("onnxruntime", "deploy")
    paths, issame = lfw_folds_8_10
    torch_model = Recognizer.load(tiny_run / "best.pt", detector=None)
    size = torch_model.input_size
    faces = [lfw_face(p, size) for p in paths]  # 3,600 real faces
    parity_folder = tmp_path / "parity"
    for number, face in enumerate(faces[:1000]):
        (parity_folder / f"{number // 100}").mkdir(parents=True, exist_ok=True)
        (parity_folder / f"{number // 100}" / f"{number}.png").write_bytes(encode_image(face, ".png"))
    onnx_path = tmp_path / "model.onnx"
    export = ["export", str(tiny_run / "best.pt"), str(onnx_path), "--parity", str(parity_folder), "--int8"]
    assert facelearn(export) == 0
    printed = capsys.readouterr().out
    assert "parity with PyTorch on 1000 faces" in printed and "int8 against PyTorch fp32: min cosine" in printed
    assert (tmp_path / "model.int8.onnx").is_file() and (tmp_path / "model.int8.onnx.sha256").is_file()
    digest = (tmp_path / "model.onnx.sha256").read_text().split()[0]
    assert hashlib.sha256(onnx_path.read_bytes()).hexdigest() == digest
    onnx_model = Recognizer.load(onnx_path, detector=None)
    ours, theirs = torch_model.embed(faces, aligned=True), onnx_model.embed(faces, aligned=True)
    assert np.sum(ours * theirs, 1).min() >= 0.9999
    accuracy = [evaluate_pairs(e[0::2], e[1::2], issame, folds=3).accuracy for e in (ours, theirs)]
    assert abs(accuracy[0] - accuracy[1]) <= 0.0005
    assert onnx_model.model_id == torch_model.model_id  # the same weights: galleries are shared
    assert onnx_model.embedder.session.get_inputs()[0].shape[0] == "batch"  # a real dynamic batch axis
    assert len(onnx_model.embed(faces[:3], aligned=True)) == 3 and len(onnx_model.embed(faces[:70], aligned=True)) == 70


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_recognizer_loads_a_checkpoint_a_plain_state_dict_and_an_onnx_file(tiny_run, tmp_path, caplog):
    need("onnxruntime", "deploy")
    from facelearn.deploy.backends import OnnxEmbedder

    # fp32 PyTorch against the fp32 export (backend auto may pick bf16 on a CPU with native bf16: ~3e-3 apart)
    checkpoint = Recognizer.load(tiny_run / "best.pt", detector=None, backend="torch", precision="float32")
    from facelearn.config import ModelConfig
    from facelearn.models import build_backbone

    arcface_torch_like = build_backbone(ModelConfig(name="mobilefacenet", embedding_size=512), 112).state_dict()
    torch.save(arcface_torch_like, tmp_path / "model.pt")  # a plain state_dict, as arcface_torch saves
    plain = Recognizer.load(tmp_path / "model.pt", "mobilefacenet", detector=None)
    faces = [np.random.default_rng(i).integers(0, 255, (32, 32, 3), dtype=np.uint8) for i in range(8)]
    assert facelearn(["export", str(tiny_run / "best.pt"), str(tmp_path / "m.onnx")]) == 0
    exported = Recognizer.load(tmp_path / "m.onnx", detector=None)
    np.testing.assert_allclose(checkpoint.embed(faces, aligned=True), exported.embed(faces, aligned=True), atol=1e-4)
    with pytest.raises(Exception, match="does not match"):
        Recognizer.load(tmp_path / "model.pt", "iresnet18", detector=None)
    assert plain.embedder.input_size == 112 and plain.embedder.embedding_size == 512  # 112×112 faces assumed
    onnx = pytest.importorskip("onnx")
    stripped = onnx.load(str(tmp_path / "m.onnx"))
    del stripped.metadata_props[:]
    onnx.save(stripped, str(tmp_path / "bare.onnx"))
    with caplog.at_level(logging.WARNING):
        bare = OnnxEmbedder(tmp_path / "bare.onnx", input_size=32, intra_op_num_threads=1)
    assert "has no facelearn metadata" in caplog.text and "no calibrated thresholds" in caplog.text
    assert bare.session.get_session_options().intra_op_num_threads == 1  # session options passed through
    with pytest.raises(DataError, match="no calibration"):
        Recognizer(bare).verify(faces[0], faces[1], aligned=True)
    float_input = torch.nn.Conv2d(3, 4, 3)
    torch.onnx.export(float_input, (torch.zeros(1, 3, 32, 32),), str(tmp_path / "f.onnx"), dynamo=False)
    with pytest.raises(DataError, match="a facelearn model takes one uint8"):
        OnnxEmbedder(tmp_path / "f.onnx")


def test_calibration_is_stored_in_the_model_and_used_by_verify(tiny_run, tmp_path):
    model = tmp_path / "best.pt"
    model.write_bytes((tiny_run / "best.pt").read_bytes())
    before = load_checkpoint(model)
    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal(0.7, 0.1, 300), rng.normal(0.0, 0.1, 12_000)]
    calibration = calibrate(scores, np.r_[np.ones(300, bool), np.zeros(12_000, bool)], source="pairs")
    store_calibration(model, calibration)
    after = load_checkpoint(model)
    assert after["calibration"] == calibration.to_dict()
    assert all(torch.equal(before["task"][k], after["task"][k]) for k in before["task"])  # weights untouched
    recognizer = Recognizer.load(model, detector=None)
    face = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    decision = recognizer.verify(face, face, fmr=1e-3, aligned=True)
    assert decision["threshold"] == calibration.threshold(1e-3) and decision["fmr"] == 1e-3
    assert decision["model"] == recognizer.model_id and decision["same"] == (decision["score"] > decision["threshold"])
    with pytest.raises(DataError, match="needs at least 100,000 impostor pairs"):
        recognizer.verify(face, face, fmr=1e-4, aligned=True)
    plain = tmp_path / "backbone.pt"
    plain.write_bytes((tiny_run / "backbone.pt").read_bytes())
    with pytest.raises(DataError, match="plain state_dict, which has no place for a calibration"):
        store_calibration(plain, calibration)


def test_recognizer_detects_aligns_and_is_safe_across_threads(tiny_run, tmp_path):
    weights = shared_path("weights", "retinaface")
    recognizer = Recognizer.load(tiny_run / "best.pt", detector="retinaface", weights=str(weights))
    lfw = shared_path("data", "lfw_a", "lfw")
    photos = [read_image(p) for p in sorted((lfw / "Colin_Powell").glob("*.jpg"))[:6]]
    blank = np.full((200, 200, 3), 127, np.uint8)
    serial = recognizer.embed(photos + [blank])
    assert np.isnan(serial[-1]).all() and not np.isnan(serial[:-1]).any()  # no face: a NaN row, not an error
    results = [None] * 4

    def work(number):
        results[number] = recognizer.embed(photos + [blank])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        np.testing.assert_allclose(result, serial, atol=1e-5)
    recognizer.calibration = calibrate(
        np.r_[np.ones(10), np.zeros(20_000)],
        np.r_[np.ones(10, bool), np.zeros(20_000, bool)],
        source="synthetic scores",
    )
    recognizer.open_gallery(tmp_path / "g.db")
    enrolled = recognizer.enroll("colin", photos[:3] + [blank])
    assert enrolled["faces"] == 3 and enrolled["no_face"] == [3]
    with pytest.raises(DataError, match="no face found in any of the 1 images of 'nobody'"):
        recognizer.enroll("nobody", [blank])
    with pytest.raises(NoFaceFound, match="no face found in the second image"):
        recognizer.verify(photos[0], blank)
    with pytest.raises(NoFaceFound, match="no face found in the image"):  # as the service's 422 no_face
        recognizer.identify(blank)
    found = recognizer.identify(photos[4], k=1)
    assert len(found) >= 1 and found[0]["candidates"][0]["subject"] == "colin" and len(found[0]["box"]) == 4
    assert json.dumps(found)  # plain types: ready for --json and the service


def test_the_default_backend_is_chosen_by_measurement(tiny_run, caplog, tmp_path, monkeypatch):
    need("onnxruntime", "deploy")
    monkeypatch.setenv("FACELEARN_HOME", str(tmp_path))  # no choice remembered from an earlier run
    faces = [np.random.default_rng(i).integers(0, 255, (32, 32, 3), dtype=np.uint8) for i in range(4)]
    with caplog.at_level(logging.INFO, logger="facelearn.deploy.backends"):
        chosen = Recognizer.load(tiny_run / "best.pt", detector=None)  # backend="auto"
    assert "embedding backend: torch" in caplog.text and "onnx" in caplog.text and "faces/s" in caplog.text
    assert chosen.embedder.name in ("torch", "onnx")
    in_memory = Recognizer.load(tiny_run / "best.pt", detector=None, backend="onnx")
    # fp32 on both sides: on a CPU with native bf16 the PyTorch default is bf16 (~3e-3 from fp32)
    plain = Recognizer.load(tiny_run / "best.pt", detector=None, backend="torch", precision="float32")
    np.testing.assert_allclose(in_memory.embed(faces, aligned=True), plain.embed(faces, aligned=True), atol=1e-4)
    assert in_memory.model_id == plain.model_id
    with pytest.raises(ConfigError, match="unknown embedding backend 'tpu'; valid names: onnx, torch"):
        Recognizer.load(tiny_run / "best.pt", detector=None, backend="tpu")
