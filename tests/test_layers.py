"""The package's layers: recognition and serving load no training code; ``import facelearn`` stays light;
a new gallery store, embedding backend or detector is one class and one registration."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest


def modules_loaded_by(code: str) -> list[str]:
    """The facelearn modules a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m.startswith('facelearn'))))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_deploy_and_serve_load_no_training_module():
    pytest.importorskip("fastapi")
    loaded = modules_loaded_by(
        "import facelearn.deploy.recognizer, facelearn.deploy.backends, facelearn.deploy.gallery, "
        "facelearn.deploy.stored_calibration, facelearn.deploy.teachers, facelearn.serve.app, facelearn.serve.service, "
        "facelearn.bulk.embed, facelearn.bulk.enroll, facelearn.bulk.prepare, facelearn.bulk.teacher, "
        "facelearn.bulk.local, facelearn.bulk.ray_engine"
    )
    assert "facelearn.deploy.recognizer" in loaded and "facelearn.bulk.ray_engine" in loaded  # the probe really ran
    assert [m for m in loaded if m.startswith("facelearn.train")] == []


def test_import_facelearn_and_the_cli_parser_load_no_torch():
    probe = "import facelearn.cli, sys; facelearn.cli.build_parser(); print('torch' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False"


def test_a_new_gallery_store_is_one_class_and_one_registration(tmp_path):
    from facelearn.deploy.gallery import STORES, GalleryStore, UnknownSubject, open_gallery

    @STORES.register("in_memory_test")
    class InMemoryGallery(GalleryStore):
        def __init__(self, location, model_id, dim, index="exact"):
            self.model_id, self.dim, self.stored = model_id, dim, {}

        def enroll(self, subject, embeddings, qualities=None, sources=None, metadata=None, append=False):
            self.stored.setdefault(subject, []).extend(np.asarray(embeddings, np.float32))
            return len(self.stored[subject])

        def delete(self, subject):
            if subject not in self.stored:
                raise UnknownSubject(subject)
            return len(self.stored.pop(subject))

        def faces(self, subject):
            if subject not in self.stored:
                raise UnknownSubject(subject)
            return [{"face_id": str(i), "quality": None, "source": None} for i in range(len(self.stored[subject]))]

        def delete_face(self, subject, face_id):
            self.faces(subject)
            del self.stored[subject][int(face_id)]
            if not self.stored[subject]:
                del self.stored[subject]
                return 0
            return len(self.stored[subject])

        def checkpoint(self):
            pass

        def subjects(self):
            return [{"subject": s, "metadata": {}, "faces": len(f)} for s, f in sorted(self.stored.items())]

        def search(self, queries, k=5, where=None, subject=None):
            scored = [(s, float(max(np.stack(f) @ q))) for q in queries for s, f in self.stored.items()]
            return [sorted(scored, key=lambda x: -x[1])[:k]]

        def __len__(self):
            return len(self.stored)

        def close(self):
            pass

    try:
        gallery = open_gallery(tmp_path / "anything", "model", 2, store="in_memory_test")
        gallery.enroll("ada", np.array([[1.0, 0.0]]))
        assert gallery.search(np.array([[1.0, 0.0]]), 1) == [[("ada", 1.0)]]
        assert "in_memory_test" in STORES.names()
    finally:
        STORES._entries.pop("in_memory_test")


def test_a_new_backend_and_detector_are_one_class_and_one_registration():
    import torch

    from facelearn.align import DETECTORS, FaceDetector, Faces, build_detector
    from facelearn.deploy.backends import BACKENDS, Embedder, embedder_for
    from facelearn.models import MobileFaceNet

    @BACKENDS.register("constant_test")
    class ConstantEmbedder(Embedder):
        name, embedding_size, model_digest = "constant_test", 2, "c" * 64

        def __init__(self, input_size):
            self.input_size = input_size

        @classmethod
        def from_backbone(cls, backbone, input_size, flip=True, **options):
            return cls(input_size)

        def embed(self, faces):
            return np.tile([[1.0, 0.0]], (len(faces), 1)), np.ones(len(faces))

    @DETECTORS.register("nobody_test")
    class NobodyDetector(FaceDetector):
        def __init__(self, weights=None):
            super().__init__()

        def _detect(self, image):
            return Faces.empty()

    try:
        torch.manual_seed(0)
        embedder = embedder_for(MobileFaceNet(8, (1, 1, 1, 1), 1, 32), 32, backend="constant_test")
        assert embedder.embed(np.zeros((3, 32, 32, 3), np.uint8))[0].shape == (3, 2)
        assert len(build_detector("nobody_test").detect(np.zeros((8, 8, 3), np.uint8))) == 0
    finally:
        BACKENDS._entries.pop("constant_test")
        DETECTORS._entries.pop("nobody_test")
