"""arcface_torch checkpoints: loaded by arcface_torch's own names (r18 … r200, mbf, mbf_large) and without a name
by reading the architecture, embedding and input size from the keys and shapes; a state_dict that fits nothing
is refused with its keys named."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import load_json

from facelearn.cli import main as facelearn
from facelearn.config import ModelConfig
from facelearn.data.images import encode_image
from facelearn.deploy.export import EmbeddingGraph
from facelearn.deploy.recognizer import Recognizer
from facelearn.models import BACKBONES, build_backbone, check_model_options
from facelearn.models.checkpoint import backbone_from_state
from facelearn.models.state_dicts import ARCFACE_TORCH_NAMES, ArchitectureError, infer_architecture

FACES = np.random.default_rng(0).integers(0, 255, (2, 112, 112, 3), dtype=np.uint8)


def random_backbone(name: str, embedding_size: int = 512, **options):
    torch.manual_seed(1)
    return build_backbone(ModelConfig(name=name, embedding_size=embedding_size, options=options)).eval()


def embeddings_of(backbone) -> np.ndarray:
    with torch.inference_mode():
        return EmbeddingGraph(backbone.eval())(torch.from_numpy(FACES))[0].numpy()


def test_every_arcface_torch_name_is_a_facelearn_backbone_with_valid_options():
    assert set(ARCFACE_TORCH_NAMES) == {"r18", "r34", "r50", "r100", "r200", "mbf", "mbf_large"}
    for name, (backbone, options) in ARCFACE_TORCH_NAMES.items():
        assert backbone in BACKBONES, name
        check_model_options(ModelConfig(name=backbone, options=options))


@pytest.mark.parametrize("reference,expected", [("iresnet50", "iresnet50"), ("iresnet100", "iresnet100")])
def test_the_reference_key_names_of_arcface_torch_are_recognised(reference, expected):
    """insightface's own state_dict keys and shapes (shared/fixtures/reference_keys), as meta tensors: no memory."""
    keys = load_json("fixtures", "reference_keys", f"{reference}.json")["state_dict"]
    state = {key: torch.empty(shape, device="meta") for key, shape in keys}
    assert infer_architecture(state, "model.pt") == (expected, {})


def test_the_reference_mbf_keys_infer_mbf_and_load_strictly():
    keys = load_json("fixtures", "reference_keys", "mobilefacenet.json")["state_dict"]
    state = {key: torch.zeros(shape) for key, shape in keys}
    backbone, size = backbone_from_state(state, "model.pt")
    assert (backbone.model_config.name, backbone.model_config.options) == ARCFACE_TORCH_NAMES["mbf"]
    assert size == 112 and backbone.embedding_size == 512


@pytest.mark.parametrize(
    "saved,name,embedding_size",
    [
        (("iresnet18", {}), "r18", 256),  # a 256-d model: the size comes from the shapes
        (("mobilefacenet", {"width": 2}), "mbf", 512),
        (("mobilefacenet", {"width": 4, "blocks": (2, 8, 12, 4)}), "mbf_large", 128),
    ],
)
def test_arcface_torch_saves_load_by_name_and_by_inference(saved, name, embedding_size, tmp_path):
    backbone = random_backbone(saved[0], embedding_size, **saved[1])
    path = tmp_path / "model.pt"
    torch.save(backbone.state_dict(), path)  # how arcface_torch saves: the bare backbone's state_dict
    expected = embeddings_of(backbone)
    for architecture in (name, None):
        recognizer = Recognizer.load(path, architecture, detector=None, backend="torch", precision="float32")
        assert recognizer.embedder.embedding_size == embedding_size and recognizer.input_size == 112
        np.testing.assert_allclose(recognizer.embed(list(FACES), aligned=True), expected, atol=1e-5)


def test_ddp_prefixes_and_facelearn_names_and_a_non_512_export(tmp_path, capsys):
    backbone = random_backbone("mobilefacenet", 256, width=1)
    torch.save({f"module.{k}": v for k, v in backbone.state_dict().items()}, tmp_path / "ddp.pt")
    loaded, _ = backbone_from_state(torch.load(tmp_path / "ddp.pt"), "ddp.pt", "mobilefacenet")
    assert loaded.model_config.options["width"] == 1 and loaded.embedding_size == 256  # the width the keys show
    with pytest.raises(Exception, match="tensors differ in shape"):  # width 1 saved, width 2 named
        backbone_from_state(torch.load(tmp_path / "ddp.pt"), "ddp.pt", "mbf")
    pytest.importorskip("onnxruntime")
    torch.save(backbone.state_dict(), tmp_path / "model.pt")
    assert facelearn(["export", str(tmp_path / "model.pt"), str(tmp_path / "m.onnx")]) == 0  # no --architecture
    exported = Recognizer.load(tmp_path / "m.onnx", detector=None)
    assert exported.embedder.embedding_size == 256
    assert '"width": 1' in exported.embedder.metadata["facelearn.architecture"]
    assert np.sum(exported.embed(list(FACES), aligned=True) * embeddings_of(backbone), 1).min() >= 0.9999


def test_a_state_dict_of_no_known_architecture_is_refused_with_its_keys(tmp_path, capsys):
    nonsense = {"encoder.embed.weight": torch.zeros(10, 4), "decoder.proj.bias": torch.zeros(4)}
    torch.save(nonsense, tmp_path / "other.pt")
    with pytest.raises(ArchitectureError, match=r"its 2 keys begin encoder\.embed\.weight, decoder\.proj\.bias"):
        Recognizer.load(tmp_path / "other.pt", detector=None)
    photos = [tmp_path / "a.png", tmp_path / "b.png"]  # photos are checked first: these exist
    for photo in photos:
        photo.write_bytes(encode_image(np.zeros((112, 112, 3), np.uint8), ".png"))
    assert facelearn(["verify", *map(str, photos), "--model", str(tmp_path / "other.pt"), "--aligned"]) == 2
    error = capsys.readouterr().err
    assert "matches no architecture facelearn knows" in error and "expected arcface_torch's iResNet" in error
    odd = {f"layer{s}.{k}.conv1.weight": torch.zeros(1) for s in (1, 2, 3, 4) for k in range(5)} | {
        "fc.weight": torch.zeros(2, 512)
    }
    with pytest.raises(ArchitectureError, match=r"\[5, 5, 5, 5\] blocks per stage"):
        infer_architecture(odd, "odd.pt")
