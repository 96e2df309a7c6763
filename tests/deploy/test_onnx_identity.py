"""An exported model's identity comes from its weights, not from what its metadata claims.

Issue 24, case 6: negating one initializer of an exported .onnx still served under the original
model id against the original gallery (its answers changed), and the ``.sha256`` beside the file
was never checked. Now the id is recomputed from the graph's weights at load: a change is refused
naming the mismatch, a stale ``.sha256`` is refused, and a file whose metadata was made to agree
with its new weights gets a new id, which the original gallery refuses.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import need

from facelearn.cli import main as facelearn
from facelearn.cli import recipe_path
from facelearn.data.images import encode_image
from facelearn.deploy.gallery import GalleryError
from facelearn.deploy.recognizer import Recognizer
from facelearn.errors import DataError

SMALL = [
    *("model.name=mobilefacenet", "model.width=1", "model.blocks=[1,1,1,1]", "model.embedding_size=16"),
    *("data.num_identities=6", "data.images_per_identity=4", "data.image_size=32", "data.num_workers=0"),
    *("train.batch_size=8", "train.steps=3", "train.checkpoint_every=3", "schedule.warmup_steps=1"),
    "eval.sets=[]",
]
FACES = [np.random.default_rng(i).integers(0, 255, (32, 32, 3), dtype=np.uint8) for i in range(4)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A model exported with its .sha256, and a gallery enrolled with it."""
    need("onnxruntime", "deploy")
    work = tmp_path_factory.mktemp("onnx_identity")
    assert facelearn(["train", str(recipe_path("demo")), *SMALL, f"train.output_dir={work / 'run'}"]) == 0
    assert facelearn(["export", str(work / "run" / "step_0000003.pt"), str(work / "model.onnx")]) == 0
    recognizer = Recognizer.load(work / "model.onnx", detector=None, gallery=work / "people.db")
    recognizer.enroll("ada", FACES[:2], aligned=True)
    recognizer.gallery.close()
    return work


def tampered(work, name, edit_metadata=None):
    """The export with one initializer negated (and its metadata edited by ``edit_metadata``), no .sha256."""
    onnx = need("onnx", "deploy")
    from onnx import numpy_helper

    model = onnx.load(str(work / "model.onnx"))
    initializer = next(i for i in model.graph.initializer if numpy_helper.to_array(i).size > 1)
    initializer.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(initializer), initializer.name))
    metadata = {p.key: p.value for p in model.metadata_props}
    if edit_metadata:
        edit_metadata(model, metadata)
        del model.metadata_props[:]
        for key, value in metadata.items():
            model.metadata_props.add(key=key, value=value)
    path = work / name
    onnx.save(model, str(path))
    return path


def test_the_onnx_id_is_computed_from_its_weights_and_equals_the_checkpoints(exported):
    from_onnx = Recognizer.load(exported / "model.onnx", detector=None)
    from_torch = Recognizer.load(exported / "run" / "step_0000003.pt", detector=None, backend="torch")
    assert from_onnx.model_id == from_torch.model_id  # the same weights: one gallery serves both


def test_a_changed_initializer_is_refused_naming_the_mismatch(exported, capsys):
    path = tampered(exported, "negated.onnx")
    with pytest.raises(DataError, match=r"negated.onnx was modified after export: its weights' sha256 is"):
        Recognizer.load(path, detector=None)
    face = exported / "face.png"
    face.write_bytes(encode_image(FACES[0], ".png"))
    capsys.readouterr()
    identify = ["identify", str(exported / "people.db"), str(face), "--model", str(path), "--aligned"]
    assert facelearn(identify) == 2
    err = capsys.readouterr().err
    assert err.startswith("facelearn: error: ") and "modified after export" in err and "Traceback" not in err


def test_a_file_that_does_not_match_its_sha256_is_refused(exported, tmp_path):
    shutil.copy(exported / "model.onnx.sha256", tmp_path / "model.onnx.sha256")  # the export's own .sha256
    (tmp_path / "model.onnx").write_bytes(tampered(exported, "negated_again.onnx").read_bytes())
    with pytest.raises(DataError, match=r"does not match model.onnx.sha256 beside it"):
        Recognizer.load(tmp_path / "model.onnx", detector=None)


def test_edited_metadata_gives_a_new_id_and_the_gallery_refuses_it(exported):
    from facelearn.deploy.export import sources_digest

    def claim_the_new_weights(model, metadata):
        metadata["facelearn.model_digest"] = sources_digest(model, json.loads(metadata["facelearn.weights"]))

    def claim_anything(model, metadata):
        metadata["facelearn.model_digest"] = "0" * 64

    def drop_the_weight_list(model, metadata):
        del metadata["facelearn.weights"]

    original = Recognizer.load(exported / "model.onnx", detector=None).model_id
    consistent = Recognizer.load(tampered(exported, "consistent.onnx", claim_the_new_weights), detector=None)
    assert consistent.model_id != original
    with pytest.raises(GalleryError, match=f"model {original!r}; it was opened with .*{consistent.model_id}"):
        consistent.open_gallery(exported / "people.db")
    with pytest.raises(DataError, match="modified after export"):
        Recognizer.load(tampered(exported, "claims_anything.onnx", claim_anything), detector=None)
    with pytest.raises(DataError, match="exported by an older facelearn"):
        Recognizer.load(tampered(exported, "no_list.onnx", drop_the_weight_list), detector=None)
