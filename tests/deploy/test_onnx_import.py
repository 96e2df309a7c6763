"""Recognition ONNX models from elsewhere: insightface's convention (float NCHW, (x − 127.5) / 127.5, RGB, an
unnormalised embedding) loaded without metadata, every part of the preprocessing overridable, wrapped into
facelearn's self-describing ONNX by facelearn export, and an ONNX that takes no image refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import need

from facelearn.cli import main as facelearn
from facelearn.config import ModelConfig
from facelearn.data.synthetic import SyntheticFaces
from facelearn.deploy.export import EmbeddingGraph
from facelearn.deploy.recognizer import Recognizer
from facelearn.errors import DataError
from facelearn.models import build_backbone


@pytest.fixture(scope="module")
def faces():
    synthetic = SyntheticFaces(1, 1, 112, seed=5)
    return np.stack([synthetic.render(i, i % 3) for i in range(12)])


@pytest.fixture(scope="module")
def backbone(faces):
    """Random weights whose batch-norm statistics are the faces' own, as a trained model's are: without them a
    random network maps every face to nearly one direction, and any preprocessing would pass for right."""
    torch.manual_seed(0)
    model = build_backbone(ModelConfig(name="mobilefacenet", embedding_size=128, options={"width": 1}))
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
            module.momentum = None  # a plain average over the batches seen
    with torch.no_grad():
        model.train()(torch.from_numpy(faces).permute(0, 3, 1, 2) / 127.5 - 1.0)
    model.eval()
    embeddings = torch.nn.functional.normalize(model(torch.from_numpy(faces).permute(0, 3, 1, 2) / 127.5 - 1.0))
    assert (embeddings @ embeddings.T).fill_diagonal_(0).max() < 0.9  # faces differ
    return model


def export_insightface_style(module: torch.nn.Module, path, example) -> None:
    """As insightface's recognition models are: one float input "input.1", one output "683", dynamic batch.
    (TorchScript names no value "683": the output is renamed in the ONNX graph afterwards.)"""
    import onnx

    torch.onnx.export(
        module.eval(),
        (example,),
        str(path),
        input_names=["input.1"],
        output_names=["embedding"],
        dynamic_axes={"input.1": {0: "None"}, "embedding": {0: "None"}},
        opset_version=11,
        dynamo=False,
    )
    model = onnx.load(str(path))
    for node in model.graph.node:
        node.output[:] = ["683" if name == "embedding" else name for name in node.output]
    model.graph.output[0].name = "683"
    onnx.save(model, str(path))


def reference(backbone, faces) -> tuple[np.ndarray, np.ndarray]:
    with torch.inference_mode():
        embedding, quality = EmbeddingGraph(backbone, flip=True)(torch.from_numpy(faces))
    return embedding.numpy(), quality.numpy()


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, 1)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_an_insightface_style_onnx_loads_without_metadata_and_matches_pytorch(backbone, faces, tmp_path):
    need("onnxruntime", "deploy")
    path = tmp_path / "w600k_r50_like.onnx"
    export_insightface_style(backbone, path, torch.zeros(1, 3, 112, 112))
    recognizer = Recognizer.load(path, detector=None)
    assert recognizer.input_size == 112 and recognizer.embedder.embedding_size == 128
    ours = recognizer.embed(list(faces), aligned=True)
    expected, expected_quality = reference(backbone, faces)
    assert cosines(ours, expected).min() >= 0.9999
    _, quality = recognizer.embed_faces(list(faces), 64)
    np.testing.assert_allclose(quality, expected_quality, rtol=1e-4)
    metadata = recognizer.embedder.metadata
    assert (
        '"layout": "nchw"' in metadata["facelearn.preprocessing"]
        and '"mean": 127.5' in metadata["facelearn.preprocessing"]
    )
    assert Recognizer.load(path, detector=None).model_id == recognizer.model_id  # the weights' digest


class NhwcBgrUnitRange(torch.nn.Module):
    """A model from another convention: NHWC, BGR, pixels / 255."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        rgb = x.flip(3) * 255.0 / 127.5 - 1.0
        return self.backbone(rgb.permute(0, 3, 1, 2))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_every_part_of_the_preprocessing_can_be_set(backbone, faces, tmp_path):
    need("onnxruntime", "deploy")
    path = tmp_path / "other.onnx"
    export_insightface_style(NhwcBgrUnitRange(backbone), path, torch.zeros(1, 112, 112, 3))
    expected, _ = reference(backbone, faces)
    right = Recognizer.load(path, detector=None, mean=0.0, std=255.0, channel_order="bgr")  # layout read: NHWC
    assert cosines(right.embed(list(faces), aligned=True), expected).min() >= 0.9999
    wrong = Recognizer.load(path, detector=None)  # insightface's defaults do not fit this model
    assert cosines(wrong.embed(list(faces), aligned=True), expected).min() < 0.99
    no_flip = Recognizer.load(path, detector=None, mean=0.0, std=255.0, channel_order="bgr", flip=False)
    with torch.inference_mode():
        own = torch.nn.functional.normalize(backbone(torch.from_numpy(faces).permute(0, 3, 1, 2) / 127.5 - 1.0))
    assert cosines(no_flip.embed(list(faces), aligned=True), own.numpy()).min() >= 0.9999


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_facelearn_export_wraps_it_into_a_self_describing_onnx(backbone, faces, tmp_path, capsys):
    need("onnxruntime", "deploy")
    source, wrapped = tmp_path / "w600k_r50_like.onnx", tmp_path / "wrapped.onnx"
    export_insightface_style(backbone, source, torch.zeros(1, 3, 112, 112))
    assert facelearn(["export", str(source), str(wrapped)]) == 0
    assert "parity with the original model" in capsys.readouterr().out
    import onnxruntime

    session = onnxruntime.InferenceSession(str(wrapped), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in session.get_inputs()] == [("faces", "tensor(uint8)")]
    embedding, quality = session.run(None, {"faces": faces})
    expected, expected_quality = reference(backbone, faces)
    assert cosines(embedding, expected).min() >= 0.9999
    np.testing.assert_allclose(quality, expected_quality, rtol=1e-4)
    loaded = Recognizer.load(wrapped, detector=None)
    assert loaded.embedder.metadata["facelearn.input_size"] == "112"
    assert loaded.model_id == Recognizer.load(source, detector=None).model_id


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_an_onnx_that_takes_no_image_is_refused_naming_its_input(tmp_path):
    need("onnxruntime", "deploy")
    vectors = tmp_path / "vectors.onnx"
    torch.onnx.export(
        torch.nn.Linear(10, 4), (torch.zeros(2, 10),), str(vectors), input_names=["features"], dynamo=False
    )
    with pytest.raises(DataError, match=r"takes 'features' \[2, 10\] float32: not an image tensor"):
        Recognizer.load(vectors, detector=None)
    assert facelearn(["export", str(vectors), str(tmp_path / "out.onnx")]) == 2
    assert not (tmp_path / "out.onnx").exists()
