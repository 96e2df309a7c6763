"""Photo → embedding through the Recognizer: the same alignment as `facelearn prepare`, unit embeddings,
no face → a NaN row."""

from __future__ import annotations

import numpy as np
import torch
from conftest import shared_path

from facelearn.align import build_detector
from facelearn.align.prepare import PrepareOptions, crop_face
from facelearn.data.images import read_image
from facelearn.deploy.backends import TorchEmbedder
from facelearn.deploy.recognizer import Recognizer
from facelearn.models import MobileFaceNet


def test_recognizer_aligns_like_prepare_and_embeds(tmp_path):
    weights = str(shared_path("weights", "mtcnn"))
    photo = read_image(shared_path("data", "lfw_a", "lfw", "Aaron_Eckhart", "Aaron_Eckhart_0001.jpg"))
    torch.manual_seed(0)
    embedder = TorchEmbedder(MobileFaceNet(64, (1, 1, 1, 1), 1, 112), 112, precision="float32")
    recognizer = Recognizer(embedder, build_detector("mtcnn", weights))
    aligned, faces = recognizer.aligned_faces(photo)
    prepared, count = crop_face(photo, PrepareOptions(weights=weights), recognizer.detector)
    assert len(aligned) == count == 1
    np.testing.assert_array_equal(aligned[0], prepared)
    embedding = recognizer.embed([photo])[0]
    assert embedding.shape == (64,)
    np.testing.assert_allclose(np.linalg.norm(embedding), 1.0, rtol=1e-5)
    np.testing.assert_allclose(recognizer.embed(aligned, aligned=True)[0], embedding, atol=1e-6)
    nothing = recognizer.embed([np.zeros((120, 120, 3), np.uint8)])[0]
    assert np.isnan(nothing).all()
