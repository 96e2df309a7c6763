"""Photo → embedding with one alignment everywhere: detect, choose a face, align, embed.

    pipeline = FacePipeline.from_checkpoint("runs/lfw/mbf_detect/best.pt", "mtcnn", weights_folder)
    embedding, faces = pipeline.embed_photo(read_image("photo.jpg"))

Faces are aligned to the 112×112 ArcFace template exactly as ``facelearn prepare`` aligns training
and evaluation data, then resized to the model's input size as the training loader does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .align import FaceDetector, Faces, align_face, build_detector, choose_face
from .data.images import fit_size
from .data.transforms import to_tensor
from .train.checkpoint import backbone_from_checkpoint


class FacePipeline:
    def __init__(self, detector: FaceDetector, backbone: torch.nn.Module, image_size: int, flip: bool = True):
        self.detector, self.backbone, self.image_size, self.flip = detector, backbone.eval(), image_size, flip

    @classmethod
    def from_checkpoint(
        cls, checkpoint: str | Path, detector: str = "mtcnn", weights: str | None = None, model: str | None = None
    ) -> FacePipeline:
        backbone, image_size = backbone_from_checkpoint(checkpoint, model)
        return cls(build_detector(detector, weights), backbone, image_size)

    def aligned_faces(self, image: np.ndarray) -> tuple[list[np.ndarray], Faces]:
        """Every detected face, aligned at 112×112 (the training alignment) and resized to the model's size."""
        faces = self.detector.detect(image)
        return [fit_size(align_face(image, points), self.image_size) for points in faces.landmarks], faces

    @torch.inference_mode()
    def embed_faces(self, aligned: list[np.ndarray]) -> np.ndarray:
        """(N, D) unit embeddings; with ``flip``, the image and its mirror are summed first (as in evaluation)."""
        batch = torch.stack([to_tensor(face) for face in aligned])
        total = self.backbone(batch) + (self.backbone(batch.flip(3)) if self.flip else 0)
        return torch.nn.functional.normalize(total.float(), dim=1).numpy()

    def embed_photo(self, image: np.ndarray, choose: str = "largest") -> tuple[np.ndarray | None, Faces]:
        """The embedding of the chosen face (None when there is no face) and all the detections."""
        aligned, faces = self.aligned_faces(image)
        if not aligned:
            return None, faces
        return self.embed_faces([aligned[choose_face(faces, image.shape, choose)]])[0], faces
