"""Photo → embedding: the same alignment as `facelearn prepare`, unit embeddings, no face → None."""

from __future__ import annotations

import numpy as np
import torch
from conftest import shared_path

from facelearn.align import build_detector
from facelearn.align.prepare import PrepareOptions, crop_face
from facelearn.data.images import read_image
from facelearn.models import MobileFaceNet
from facelearn.pipeline import FacePipeline


def test_pipeline_aligns_like_prepare_and_embeds(tmp_path):
    weights = str(shared_path("weights", "mtcnn"))
    photo = read_image(shared_path("data", "lfw_a", "lfw", "Aaron_Eckhart", "Aaron_Eckhart_0001.jpg"))
    torch.manual_seed(0)
    pipeline = FacePipeline(build_detector("mtcnn", weights), MobileFaceNet(64, (1, 1, 1, 1), 1, 112), 112)
    aligned, faces = pipeline.aligned_faces(photo)
    prepared, count = crop_face(photo, PrepareOptions(weights=weights), pipeline.detector)
    assert len(aligned) == count == 1
    np.testing.assert_array_equal(aligned[0], prepared)
    embedding, _ = pipeline.embed_photo(photo)
    assert embedding.shape == (64,)
    np.testing.assert_allclose(np.linalg.norm(embedding), 1.0, rtol=1e-5)
    np.testing.assert_allclose(pipeline.embed_faces(aligned)[0], embedding, atol=1e-6)
    nothing, faces = pipeline.embed_photo(np.zeros((120, 120, 3), np.uint8))
    assert nothing is None and len(faces) == 0
