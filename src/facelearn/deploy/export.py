"""``facelearn export``: a checkpoint → one ONNX file that needs nothing else to embed faces.

The graph takes aligned RGB faces as uint8 ``(N, H, W, 3)`` (N free), and does everything the
PyTorch evaluation does: scale to [−1, 1], NHWC → NCHW, the backbone, optionally the mirrored
face's embedding added, L2 normalisation. Outputs: ``embedding`` (N, D) unit rows and ``quality``
(N,), the raw norm of the face's own embedding (MagFace's quality score). The file's metadata
(``facelearn.*`` keys) says what the graph expects: version, architecture, embedding and input
size, the alignment, the flip setting and, when calibrated, the thresholds. The file is written
atomically with a ``.sha256`` beside it, and checked against PyTorch at export (:func:`parity`).

The model's identity (``facelearn.model_digest``, the id a gallery is bound to) is
:func:`weights_digest` of the backbone, and a loader recomputes it from the graph's own weights
(:func:`exported_model_digest`): the graph keeps the backbone's tensors as they are (no Conv+BN
folding at export; ONNX Runtime folds them when it loads the graph) and ``facelearn.weights``
names, per state_dict entry, the initializer that holds it. A file whose weights were changed
after export is refused, and so is one that does not match the ``.sha256`` beside it.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..errors import DataError
from ..io import write_bytes_atomic, write_text_atomic
from .quality import NormQuality

ALIGNMENT = "arcface-5-point 112x112 (facelearn.align.align_face), then resized to the input size (cv2 INTER_AREA)"
OPSET = 17


class EmbeddingGraph(torch.nn.Module):
    """uint8 NHWC faces → (unit embeddings, quality): what is exported, and the PyTorch reference."""

    def __init__(self, backbone: torch.nn.Module, flip: bool = True):
        super().__init__()
        self.backbone, self.flip = backbone, flip

    def forward(self, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = faces.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        own = self.backbone(images).float()
        total = own + self.backbone(images.flip(3)).float() if self.flip else own
        return total / total.norm(dim=1, keepdim=True).clamp_min(1e-12), own.norm(dim=1)


def weights_digest(backbone: torch.nn.Module) -> str:
    """sha256 of the backbone's weights: the model's identity, the same in PyTorch and in its export."""
    digest = hashlib.sha256()
    for name, tensor in backbone.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def weight_sources(model, backbone: torch.nn.Module, prefix: str = "backbone.") -> list:
    """Per state_dict entry, in order: ``[name, initializer]`` holding its bytes (the exporter merges equal
    tensors into one), or ``[name, None, hex]`` for an entry the graph does not use (``num_batches_tracked``)."""
    from onnx import numpy_helper

    def key(array: np.ndarray) -> tuple:
        return array.dtype.str, array.shape, hashlib.sha256(array.tobytes()).hexdigest()

    by_name = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    by_content = {}
    for name, array in by_name.items():
        by_content.setdefault(key(array), name)
    sources = []
    for name, tensor in backbone.state_dict().items():
        array = tensor.detach().cpu().contiguous().numpy()
        own = prefix + name
        found = own if own in by_name and key(by_name[own]) == key(array) else by_content.get(key(array))
        sources.append([name, found] if found else [name, None, array.tobytes().hex()])
    return sources


def sources_digest(model, sources: list) -> str:
    """:func:`weights_digest` recomputed from a graph's initializers through ``sources``; every initializer
    must be one of the backbone's tensors (a weight nobody accounts for would escape the identity)."""
    from onnx import numpy_helper

    initializers = {i.name: i for i in model.graph.initializer}
    used = {entry[1] for entry in sources if entry[1] is not None}
    if used != set(initializers):
        strays = sorted(set(initializers) - used) or sorted(used - set(initializers))
        raise DataError(f"its weights do not match their list in facelearn.weights (e.g. {strays[0]!r})")
    digest = hashlib.sha256()
    for name, source, *value in sources:
        digest.update(name.encode())
        digest.update(numpy_helper.to_array(initializers[source]).tobytes() if source else bytes.fromhex(value[0]))
    return digest.hexdigest()


def initializers_digest(model) -> str:
    """sha256 of every initializer (its name, then its bytes) in name order: the identity of a graph whose
    weights are no backbone's own (the int8 model; ``facelearn.weights`` is then ``"initializers"``)."""
    from onnx import numpy_helper

    digest = hashlib.sha256()
    for initializer in sorted(model.graph.initializer, key=lambda i: i.name):
        digest.update(initializer.name.encode())
        digest.update(numpy_helper.to_array(initializer).tobytes())
    return digest.hexdigest()


def exported_model_digest(model, metadata: dict, data: bytes, path: Path) -> str:
    """The identity of an ONNX model, computed from the file at load: ``weights_digest`` of the backbone
    for a facelearn export (refused when it differs from the metadata's), the file's sha256 for a bare graph."""
    sidecar = Path(f"{path}.sha256")
    if sidecar.is_file():
        expected = (sidecar.read_text().split() or [""])[0]
        if expected != hashlib.sha256(data).hexdigest():
            raise DataError(
                f"{path} does not match {sidecar.name} beside it: the file was changed after export "
                "(or the .sha256 is stale); export it again, or remove the .sha256 if the change is yours"
            )
    claimed = metadata.get("facelearn.model_digest")
    if claimed is None:
        return hashlib.sha256(data).hexdigest()
    if "facelearn.weights" not in metadata:
        raise DataError(
            f"{path} was exported by an older facelearn, whose files cannot show that their weights are the ones "
            "exported: export it again (facelearn export CHECKPOINT OUTPUT.onnx)"
        )
    weights = metadata["facelearn.weights"]
    try:
        if weights == "initializers":
            computed = initializers_digest(model)
        else:
            computed = sources_digest(model, json.loads(weights))
    except (ValueError, TypeError, KeyError, IndexError) as error:
        raise DataError(f"{path} was modified after export: {error}") from None
    if computed != claimed:
        raise DataError(
            f"{path} was modified after export: its weights' sha256 is {computed[:16]}…, its metadata says "
            f"{claimed[:16]}… (facelearn.model_digest); export it again from the checkpoint"
        )
    return computed


def model_metadata(
    checkpoint: dict | None, model_name: str, backbone: torch.nn.Module, input_size: int, flip: bool
) -> dict:
    metadata = {
        "facelearn.version": __version__,
        "facelearn.model_digest": weights_digest(backbone),
        "facelearn.architecture": json.dumps(checkpoint["config"]["model"]) if checkpoint else model_name,
        "facelearn.embedding_size": str(backbone.embedding_size),
        "facelearn.input_size": str(input_size),
        "facelearn.alignment": ALIGNMENT,
        "facelearn.flip": str(flip).lower(),
    }
    if checkpoint and checkpoint.get("calibration"):
        metadata["facelearn.calibration"] = json.dumps(checkpoint["calibration"])
    head = (checkpoint or {}).get("config", {}).get("head")
    norm = NormQuality.from_head(head, checkpoint.get("task")) if checkpoint else None
    if norm is not None:  # a MagFace / AdaFace model: how its norm maps onto a quality in [0, 1]
        metadata["facelearn.norm_quality"] = json.dumps(asdict(norm))
    return metadata


def export_bytes(graph: EmbeddingGraph, input_size: int, metadata: dict) -> bytes:
    """The ONNX file's bytes: a dynamic batch axis, the metadata as ``metadata_props``."""
    import onnx

    graph.eval()
    example = torch.zeros(2, input_size, input_size, 3, dtype=torch.uint8)
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter is the one that needs no extra package
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            graph,
            (example,),
            buffer,
            input_names=["faces"],
            output_names=["embedding", "quality"],
            dynamic_axes={"faces": {0: "batch"}, "embedding": {0: "batch"}, "quality": {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=False,  # the backbone's own tensors, so a loader can recompute its identity
            dynamo=False,
        )
    graph.eval()  # the exporter restores the module's previous mode
    model = onnx.load_from_string(buffer.getvalue())
    sources = weight_sources(model, graph.backbone)
    if sources_digest(model, sources) != weights_digest(graph.backbone):
        raise DataError("the exported graph's weights are not the backbone's: its identity could not be recorded")
    for key, value in {**metadata, "facelearn.weights": json.dumps(sources, separators=(",", ":"))}.items():
        model.metadata_props.add(key=key, value=value)
    return model.SerializeToString()


def export_onnx(graph: EmbeddingGraph, input_size: int, metadata: dict, output: str | Path) -> str:
    """Write ``output`` (and ``output.sha256``) atomically; returns the sha256."""
    data = export_bytes(graph, input_size, metadata)
    digest = hashlib.sha256(data).hexdigest()
    write_bytes_atomic(output, data)
    write_text_atomic(Path(f"{output}.sha256"), f"{digest}  {Path(output).name}\n")
    return digest


def parity(graph: EmbeddingGraph, onnx_path: str | Path, faces: np.ndarray, batch_size: int = 64) -> dict:
    """Cosine of every ONNX Runtime embedding with PyTorch's on ``faces`` (uint8 NHWC)."""
    import onnxruntime

    if len(faces) == 0:
        raise DataError("the parity check needs faces")
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    graph.eval()
    cosines, quality_errors = [], []
    for start in range(0, len(faces), batch_size):
        batch = np.ascontiguousarray(faces[start : start + batch_size])
        theirs, their_quality = session.run(None, {"faces": batch})
        with torch.inference_mode():
            ours, our_quality = (t.numpy() for t in graph(torch.from_numpy(batch)))
        cosines.append(np.sum(theirs * ours, 1))
        quality_errors.append(np.abs(their_quality - our_quality) / np.maximum(our_quality, 1e-12))
    cosines = np.concatenate(cosines)
    return {
        "faces": len(faces),
        "min_cosine": float(cosines.min()),
        "mean_cosine": float(cosines.mean()),
        "max_quality_relative_error": float(np.concatenate(quality_errors).max()),
    }


def quantize_int8(fp32_path: str | Path, output: str | Path, faces: np.ndarray, batch_size: int = 32) -> str:
    """ONNX Runtime static int8 quantisation (QDQ, per-channel weights) calibrated on real aligned faces."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Faces(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([faces[i : i + batch_size] for i in range(0, len(faces), batch_size)])

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"faces": np.ascontiguousarray(batch, np.uint8)}

    if len(faces) < 100:
        raise DataError(f"int8 calibration needs at least 100 real aligned faces, got {len(faces)}")
    staging = Path(output).with_name(f".{Path(output).name}.partial")
    quantize_static(
        str(fp32_path),
        str(staging),
        Faces(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QInt8,
    )
    import onnx

    model = onnx.load(str(staging))
    staging.unlink()
    identity = {"facelearn.model_digest": initializers_digest(model), "facelearn.weights": "initializers"}
    kept = [p for p in model.metadata_props if p.key not in identity]  # another model than the fp32 one
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in identity.items():
        model.metadata_props.add(key=key, value=value)
    data = model.SerializeToString()
    digest = hashlib.sha256(data).hexdigest()
    write_bytes_atomic(output, data)
    write_text_atomic(Path(f"{output}.sha256"), f"{digest}  {Path(output).name}\n")
    return digest
