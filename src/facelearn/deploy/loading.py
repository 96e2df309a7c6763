"""What ``Recognizer.load``'s model can be, and the embedder each one gives.

* a named model that needs no training: ``dlib`` (:data:`NAMED_MODELS`; a file of that name wins);
* an ``.onnx``: facelearn's export, or a float-input recognition model from elsewhere, wrapped
  (:func:`facelearn.deploy.onnx_import.onnx_embedder`);
* a facelearn checkpoint, or a plain state_dict (arcface_torch ``model.pt``) named by ``architecture``
  or read from its keys (:func:`facelearn.models.checkpoint.backbone_from_state`).
"""

from __future__ import annotations

from pathlib import Path

from ..models.checkpoint import FORMAT, backbone_from_state, load_checkpoint
from ..registry import Registry
from .backends import Embedder, embedder_for
from .dlib_model import DlibFaceModel
from .onnx_import import onnx_embedder
from .quality import NormQuality

NAMED_MODELS: Registry[Embedder] = Registry("named model")
NAMED_MODELS.register("dlib")(DlibFaceModel)


def is_named_model(model) -> bool:
    return isinstance(model, str) and model in NAMED_MODELS and not Path(model).exists()


def load_embedder(
    model: str | Path, architecture: str | None = None, backend: str = "auto", **options
) -> tuple[Embedder, dict | None]:
    """(the embedder, its stored calibration or None). ``options``: the backend's (and an imported ONNX
    model's preprocessing: mean, std, channel_order, layout, input_size, flip)."""
    if is_named_model(model):
        embedder = NAMED_MODELS.get(model)(**options)
        return embedder, embedder.calibration
    if str(model).endswith(".onnx"):
        embedder = onnx_embedder(model, **options)
        return embedder, embedder.calibration
    checkpoint = load_checkpoint(model)
    backbone, size = backbone_from_state(checkpoint, model, architecture)
    own = checkpoint.get("format") == FORMAT
    calibration = checkpoint.get("calibration") if own else None
    embedder = embedder_for(backbone, size, backend, **options)
    if own:  # a MagFace / AdaFace model's norm is its quality (facelearn.deploy.quality)
        embedder.norm_quality = NormQuality.from_head(checkpoint.get("config", {}).get("head"), checkpoint.get("task"))
    return embedder, calibration
