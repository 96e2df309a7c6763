"""Embedding backends: aligned uint8 faces (N, H, W, 3) → (unit embeddings, quality).

Every backend is an :class:`Embedder` registered in :data:`BACKENDS` by name (``torch``, ``onnx``);
``Recognizer.load(model, backend=name)`` and the CLI's ``--backend`` read the registry, and
``auto`` measures the registered backends and keeps the fastest. Both built-in backends compute
:class:`facelearn.deploy.export.EmbeddingGraph`: PyTorch runs bf16 channels_last on CPUs with
native bf16 kernels, fp16 on CUDA, fp32 otherwise; ONNX Runtime takes its session options and
providers from the caller as given. A new backend is one subclass with ``from_backbone`` and one
``@BACKENDS.register`` line.
"""

from __future__ import annotations

import json
import logging
import time
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..hardware import cpu_has_fast_bf16, keep_freed_memory
from ..registry import Registry
from .export import EmbeddingGraph, export_bytes, exported_model_digest, model_metadata, weights_digest
from .quality import NormQuality

log = logging.getLogger(__name__)


class Embedder(ABC):
    """Aligned faces in, unit embeddings and a quality score (the raw norm) out."""

    name: str
    input_size: int  # square faces of this many pixels
    embedding_size: int
    model_digest: str  # sha256 of the weights: the model's identity in a gallery
    norm_quality = None  # a NormQuality where the raw norm is a quality score (MagFace, AdaFace): deploy/quality.py

    @classmethod
    @abstractmethod
    def from_backbone(cls, backbone: torch.nn.Module, input_size: int, flip: bool = True, **options) -> Embedder:
        """This backend running a PyTorch backbone (a checkpoint's)."""

    @abstractmethod
    def embed(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, H, W, 3) uint8 RGB faces → ((N, D) unit embeddings, (N,) raw norms)."""


BACKENDS: Registry[Embedder] = Registry("embedding backend")


@BACKENDS.register("torch")
class TorchEmbedder(Embedder):
    name = "torch"

    def __init__(
        self,
        backbone: torch.nn.Module,
        input_size: int,
        flip: bool = True,
        device: str | None = None,
        precision: str = "auto",
        channels_last: bool | None = None,
    ):
        """``precision`` auto: fp16 on CUDA, bf16 on CPUs with native bf16, else fp32; ``channels_last``
        None: on with reduced precision or CUDA (the layout their kernels want). On a CPU, glibc is told
        to keep freed memory (``keep_freed_memory``): a batch's activations are reused by the next batch
        instead of being mapped and zeroed again (benchmarks/embed_throughput.py --allocator)."""

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cpu":
            keep_freed_memory()
        if precision == "auto":
            precision = "float16" if self.device.type == "cuda" else ("bfloat16" if cpu_has_fast_bf16() else "float32")
        self.precision = precision
        self.graph = EmbeddingGraph(backbone.eval(), flip).to(self.device).eval()
        if channels_last is None:
            channels_last = precision != "float32" or self.device.type == "cuda"
        self.channels_last = channels_last
        if self.channels_last:
            self.graph = self.graph.to(memory_format=torch.channels_last)
        self.input_size, self.flip = input_size, flip
        self.model_digest = weights_digest(backbone)
        self.embedding_size = int(self.embed(np.zeros((1, input_size, input_size, 3), np.uint8))[0].shape[1])

    @classmethod
    def from_backbone(cls, backbone: torch.nn.Module, input_size: int, flip: bool = True, **options) -> TorchEmbedder:
        return cls(backbone, input_size, flip, **options)

    @torch.inference_mode()
    def embed(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = torch.from_numpy(np.ascontiguousarray(faces)).to(self.device)
        dtype = getattr(torch, self.precision)
        with torch.autocast(self.device.type, dtype=dtype, enabled=self.precision != "float32"):
            embedding, quality = self.graph(batch)
        return embedding.float().cpu().numpy(), quality.float().cpu().numpy()


@BACKENDS.register("onnx")
class OnnxEmbedder(Embedder):
    name = "onnx"

    def __init__(
        self,
        path: str | Path | bytes,
        providers: list | None = None,
        session_options=None,
        input_size: int | None = None,
        **settings,
    ):
        """``path``: an .onnx file, or the bytes of one (an export made in memory)."""
        import onnx
        import onnxruntime

        if isinstance(path, bytes):
            data, self.path = path, Path("<in memory>")
        else:
            self.path = Path(path)
            if not self.path.is_file():
                raise DataError(f"{self.path} does not exist")
            data = self.path.read_bytes()
        model = onnx.load_from_string(data)
        self.metadata = {p.key: p.value for p in model.metadata_props}
        if session_options is None:
            session_options = onnxruntime.SessionOptions()
            for key, value in settings.items():  # e.g. intra_op_num_threads=2
                setattr(session_options, key, value)
        self.session = onnxruntime.InferenceSession(
            data, sess_options=session_options, providers=providers or ["CPUExecutionProvider"]
        )
        inputs = self.session.get_inputs()
        shape = inputs[0].shape if len(inputs) == 1 else []
        if len(shape) != 4 or shape[3] != 3 or inputs[0].type != "tensor(uint8)":
            raise DataError(
                f"{self.path} takes {[(i.name, i.shape, i.type) for i in inputs]}; a facelearn model takes one uint8 "
                "(N, H, W, 3) batch of aligned faces (export it with facelearn export)"
            )
        if "facelearn.version" not in self.metadata:
            log.warning(
                "%s has no facelearn metadata: its input size and flip setting are taken from the graph and the "
                "arguments, and it has no calibrated thresholds (run facelearn calibrate on it)",
                self.path,
            )
        size = input_size or self.metadata.get("facelearn.input_size") or shape[1]
        if not str(size).isdigit():
            raise DataError(f"{self.path} has no fixed input size and no facelearn metadata: give input_size")
        self.input_size = int(size)
        self.flip = self.metadata.get("facelearn.flip", "true") == "true"
        self.model_digest = exported_model_digest(model, self.metadata, data, self.path)  # from the weights
        self.calibration = (
            json.loads(self.metadata["facelearn.calibration"]) if "facelearn.calibration" in self.metadata else None
        )
        if "facelearn.norm_quality" in self.metadata:  # a MagFace / AdaFace export (deploy/quality.py)
            self.norm_quality = NormQuality(**json.loads(self.metadata["facelearn.norm_quality"]))
        self.embedding_size = int(self.embed(np.zeros((1, self.input_size, self.input_size, 3), np.uint8))[0].shape[1])

    @classmethod
    def from_backbone(cls, backbone: torch.nn.Module, input_size: int, flip: bool = True, **options) -> OnnxEmbedder:
        """The backbone exported in memory (the graph ``facelearn export`` writes)."""
        metadata = model_metadata(None, "", backbone, input_size, flip)
        return cls(export_bytes(EmbeddingGraph(backbone, flip), input_size, metadata), **options)

    def embed(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        embedding, quality = self.session.run(None, {"faces": np.ascontiguousarray(faces, np.uint8)})
        return embedding, quality


def faces_per_second(embedder, batch: int = 16, repeats: int = 3) -> float:
    """Best of ``repeats`` timed calls on a batch of random faces, after one warm-up call."""
    faces = np.random.default_rng(0).integers(0, 255, (batch, embedder.input_size, embedder.input_size, 3), np.uint8)
    embedder.embed(faces)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        embedder.embed(faces)
        best = min(best, time.perf_counter() - start)
    return batch / best


def fastest_embedder(backbone: torch.nn.Module, input_size: int, flip: bool = True, **options) -> Embedder:
    """Whichever registered backend embeds faster on this machine (ONNX Runtime only where installed and
    on a CPU). Measured, not assumed: on a CPU with native bf16 PyTorch bf16 channels_last tends to win;
    on an AVX2-only CPU fp32 PyTorch and ONNX Runtime are close and the measurement decides. The choice is
    remembered per model and machine (:mod:`facelearn.deploy.backend_choice`): measured once, not at every load."""
    from .backend_choice import remember, remembered

    digest = weights_digest(backbone)
    names = {"torch"}
    try:
        import onnxruntime  # noqa: F401

        if torch.device(options.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")).type == "cpu":
            names.add("onnx")
    except ImportError:
        pass

    def build(name: str) -> Embedder:  # the options are PyTorch's (device, precision): ONNX Runtime's defaults
        if name == "onnx":
            return kept_onnx_embedder(backbone, input_size, flip, digest)
        return BACKENDS.get(name).from_backbone(backbone, input_size, flip, **options)

    chosen = remembered(digest, names) if len(names) > 1 else "torch"
    if chosen is not None:
        log.info("embedding backend: %s (remembered for this model and machine)", chosen)
        return build(chosen)
    candidates = [build(name) for name in sorted(names, reverse=True)]  # torch, then onnx
    speeds = {candidate: faces_per_second(candidate) for candidate in candidates}
    chosen = max(speeds, key=speeds.get)
    log.info("embedding backend: %s", ", ".join(f"{c.name} {s:.0f} faces/s" for c, s in speeds.items()))
    remember(digest, chosen.name, {c.name: s for c, s in speeds.items()})
    return chosen


def kept_onnx_embedder(backbone: torch.nn.Module, input_size: int, flip: bool, digest: str) -> OnnxEmbedder:
    """The backbone in ONNX Runtime, from the export kept under $FACELEARN_HOME when its weights are this
    backbone's, else exported now (seconds) and kept."""
    from .backend_choice import export_path, keep_export

    path = export_path(digest, input_size, flip)
    if path.is_file():
        try:
            embedder = OnnxEmbedder(path)
            if embedder.model_digest == digest:
                return embedder
        except Exception as error:  # a damaged file is made again, never a failed load
            log.warning("%s cannot be used (%s): exported again", path, error)
    metadata = model_metadata(None, "", backbone, input_size, flip)
    data = export_bytes(EmbeddingGraph(backbone, flip), input_size, metadata)
    keep_export(path, data)
    return OnnxEmbedder(data)


def embedder_for(backbone: torch.nn.Module, input_size: int, backend: str = "auto", **options) -> Embedder:
    """``backend``: a name in :data:`BACKENDS`, or ``auto`` (:func:`fastest_embedder`)."""
    if backend == "auto":
        return fastest_embedder(backbone, input_size, **options)
    return BACKENDS.get(backend).from_backbone(backbone, input_size, **options)
