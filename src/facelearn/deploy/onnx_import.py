"""Recognition ONNX models from elsewhere — insightface's ``w600k_r50.onnx`` (buffalo_l) and its kind — as facelearn's.

Such a model takes float32 faces, NCHW, RGB, scaled ``(x − 127.5) / 127.5``, and answers an
unnormalised embedding. :func:`wrap_onnx` builds facelearn's self-describing graph around it with
the ``onnx`` helper API, so that it embeds exactly as a ``facelearn export`` does:

    faces uint8 (N, S, S, 3) → float → [the faces; their mirror images] → channel order → (x − mean) / std
      → layout → the model (one batch of 2N) → its N own + N mirrored rows summed → L2 normalised
    outputs: ``embedding`` (N, D) unit rows, ``quality`` (N,) the raw norm of each face's own embedding

The input size and layout are read from the graph. Preprocessing defaults to insightface's
(``ArcFaceONNX``: mean 127.5, std 127.5 — or 0 and 1 where the graph's first eight nodes include its
own ``Sub`` and ``Mul`` — RGB), and every part can be set (:class:`OnnxPreprocessing`). The wrapper
keeps the model's opset and its metadata (a calibration stored by ``facelearn calibrate`` travels
along); its model id is the sha256 of the model's weights (initializers), not of the file. An ONNX
whose input is not one image tensor is refused, naming the inputs it has.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import DataError
from .export import ALIGNMENT, initializers_digest

IMAGE_INPUT = "one float (N, 3, H, W) or (N, H, W, 3) batch of faces (insightface's), or a uint8 (N, H, W, 3) batch"


@dataclass
class OnnxPreprocessing:
    """How a float-input model wants its faces; None: read from the graph, or insightface's default."""

    mean: float | None = None
    std: float | None = None
    channel_order: str = "rgb"  # of the model's input: "rgb" or "bgr"
    layout: str | None = None  # "nchw" or "nhwc"
    input_size: int | None = None  # for a graph whose height and width are not fixed
    flip: bool = True  # add the mirrored face's embedding

    @classmethod
    def take_from(cls, options: dict) -> OnnxPreprocessing:
        """The preprocessing options removed from ``options`` (the rest are ONNX Runtime's)."""
        return cls(**{f.name: options.pop(f.name) for f in fields(cls) if f.name in options})


def describe_inputs(model) -> str:
    """``'input.1' [None, 3, 112, 112] float32``, for every input: what an error message shows."""
    from onnx.helper import tensor_dtype_to_np_dtype

    described = []
    for value in graph_inputs(model):
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]
        described.append(f"{value.name!r} {dims} {tensor_dtype_to_np_dtype(tensor.elem_type)}")
    return ", ".join(described)


def graph_inputs(model) -> list:
    """The graph's real inputs (older exporters also list every initializer as an input)."""
    initializers = {tensor.name for tensor in model.graph.initializer}
    return [value for value in model.graph.input if value.name not in initializers]


def is_facelearn_graph(model) -> bool:
    """One uint8 (N, H, W, 3) input: ``facelearn export``'s graph, preprocessing inside."""
    import onnx

    inputs = graph_inputs(model)
    if len(inputs) != 1 or inputs[0].type.tensor_type.elem_type != onnx.TensorProto.UINT8:
        return False
    shape = inputs[0].type.tensor_type.shape.dim
    return len(shape) == 4 and shape[3].dim_value == 3


def image_input(model, source, preprocessing: OnnxPreprocessing) -> tuple[object, str, int]:
    """(the input, its layout, the face size), or a DataError naming the inputs the graph has."""
    import onnx

    inputs = graph_inputs(model)
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE)
    shape = [d.dim_value or None for d in inputs[0].type.tensor_type.shape.dim] if len(inputs) == 1 else []
    layout = preprocessing.layout or ("nchw" if shape[1:2] == [3] else "nhwc" if shape[3:] == [3] else None)
    if len(shape) != 4 or inputs[0].type.tensor_type.elem_type not in floats or layout not in ("nchw", "nhwc"):
        raise DataError(
            f"{source} takes {describe_inputs(model) or 'no input'}: not an image tensor. A recognition model takes "
            f"{IMAGE_INPUT} (facelearn export's); give layout='nchw' or 'nhwc' if its channel axis is not fixed"
        )
    height, width = (shape[2], shape[3]) if layout == "nchw" else (shape[1], shape[2])
    size = preprocessing.input_size or (height if height == width else None)
    if not size:
        raise DataError(f"{source} takes faces of {height}×{width} pixels: give input_size (square faces)")
    return inputs[0], layout, int(size)


def insightface_mean_std(model) -> tuple[float, float]:
    """insightface ``ArcFaceONNX``'s rule: a graph that subtracts and multiplies in its first eight nodes
    normalises its own input (mean 0, std 1); any other takes (x − 127.5) / 127.5."""
    names = [node.name for node in model.graph.node[:8]]
    own_sub = any(n.startswith(("Sub", "_minus")) for n in names)
    own_mul = any(n.startswith(("Mul", "_mul")) for n in names)
    return (0.0, 1.0) if own_sub and own_mul else (127.5, 127.5)


def wrap_onnx(data: bytes, source, preprocessing: OnnxPreprocessing | None = None) -> bytes:
    """A float-input recognition model's bytes → facelearn's self-describing graph's bytes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    preprocessing = preprocessing or OnnxPreprocessing()
    if preprocessing.channel_order not in ("rgb", "bgr"):
        raise DataError(f"channel_order must be 'rgb' or 'bgr', got {preprocessing.channel_order!r}")
    original = onnx.load_from_string(data)
    source_input, layout, size = image_input(original, source, preprocessing)
    default_mean, default_std = insightface_mean_std(original)
    mean = default_mean if preprocessing.mean is None else preprocessing.mean
    std = default_std if preprocessing.std is None else preprocessing.std
    opset = next((o.version for o in original.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 11:
        original = onnx.version_converter.convert_version(original, 11)
        opset = 11
    inner = onnx.compose.add_prefix(original, "model/")
    model_input = "model/" + source_input.name
    model_output = inner.graph.output[0].name
    model_type = source_input.type.tensor_type.elem_type

    constants = {
        "facelearn/mean": np.array(mean, np.float32),
        "facelearn/std": np.array(std, np.float32),
        "facelearn/last": np.array([-1], np.int64),
        "facelearn/before_first": np.array([np.iinfo(np.int64).min], np.int64),
        "facelearn/width_axis": np.array([2], np.int64),
        "facelearn/channel_axis": np.array([3], np.int64),
        "facelearn/backwards": np.array([-1], np.int64),
        "facelearn/embedding_axis": np.array([1], np.int64),
    }

    def reverse(name: str, axis: str, out: str):
        inputs = [name, "facelearn/last", "facelearn/before_first", f"facelearn/{axis}", "facelearn/backwards"]
        return helper.make_node("Slice", inputs, [out])

    nodes = [helper.make_node("Cast", ["faces"], ["facelearn/x"], to=TensorProto.FLOAT)]
    batch = "facelearn/x"
    if preprocessing.flip:
        nodes += [
            reverse("facelearn/x", "width_axis", "facelearn/mirrored"),
            helper.make_node("Concat", ["facelearn/x", "facelearn/mirrored"], ["facelearn/both"], axis=0),
        ]
        batch = "facelearn/both"
    if preprocessing.channel_order == "bgr":
        nodes.append(reverse(batch, "channel_axis", "facelearn/bgr"))
        batch = "facelearn/bgr"
    nodes += [
        helper.make_node("Sub", [batch, "facelearn/mean"], ["facelearn/centred"]),
        helper.make_node("Div", ["facelearn/centred", "facelearn/std"], ["facelearn/scaled"]),
    ]
    scaled = "facelearn/scaled"
    if layout == "nchw":
        nodes.append(helper.make_node("Transpose", [scaled], ["facelearn/nchw"], perm=[0, 3, 1, 2]))
        scaled = "facelearn/nchw"
    nodes.append(helper.make_node("Cast", [scaled], [model_input], to=model_type))
    nodes += list(inner.graph.node)
    nodes += [
        helper.make_node("Cast", [model_output], ["facelearn/raw_any"], to=TensorProto.FLOAT),
        helper.make_node("Flatten", ["facelearn/raw_any"], ["facelearn/raw"], axis=1),
    ]
    own = "facelearn/raw"
    total = "facelearn/raw"
    if preprocessing.flip:
        split = {"num_outputs": 2} if opset >= 18 else {}
        nodes += [
            helper.make_node("Split", ["facelearn/raw"], ["facelearn/own", "facelearn/of_mirror"], axis=0, **split),
            helper.make_node("Add", ["facelearn/own", "facelearn/of_mirror"], ["facelearn/total"]),
        ]
        own, total = "facelearn/own", "facelearn/total"
    if opset >= 18:
        norm = helper.make_node("ReduceL2", [own, "facelearn/embedding_axis"], ["quality"], keepdims=0)
    else:
        norm = helper.make_node("ReduceL2", [own], ["quality"], axes=[1], keepdims=0)
    nodes += [norm, helper.make_node("LpNormalization", [total], ["embedding"], axis=1, p=2)]

    used_names = {name for node in nodes for name in node.input}
    graph = helper.make_graph(
        nodes,
        "facelearn_imported",
        [helper.make_tensor_value_info("faces", TensorProto.UINT8, ["batch", size, size, 3])],
        [
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", None]),
            helper.make_tensor_value_info("quality", TensorProto.FLOAT, ["batch"]),
        ],
        initializer=[
            *inner.graph.initializer,
            *(numpy_helper.from_array(v, k) for k, v in constants.items() if k in used_names),
        ],
        value_info=list(inner.graph.value_info),
    )
    wrapped = helper.make_model(graph, opset_imports=list(original.opset_import), ir_version=original.ir_version)
    wrapped.functions.extend(inner.functions)
    used = {
        "mean": mean,
        "std": std,
        "channel_order": preprocessing.channel_order,
        "layout": layout,
        "input": source_input.name,
    }
    metadata = {p.key: p.value for p in original.metadata_props}  # a stored calibration among them
    metadata.update(
        {
            "facelearn.version": __version__,
            # the identity covers the preprocessing constants too: another mean or std is another model
            "facelearn.model_digest": initializers_digest(wrapped),
            "facelearn.weights": "initializers",
            "facelearn.architecture": f"imported ONNX {Path(str(source)).name}",
            "facelearn.input_size": str(size),
            "facelearn.alignment": ALIGNMENT,
            "facelearn.flip": str(preprocessing.flip).lower(),
            "facelearn.preprocessing": json.dumps(used),
        }
    )
    dims = [d.dim_value for d in original.graph.output[0].type.tensor_type.shape.dim[1:]]
    if dims and all(dims):
        metadata["facelearn.embedding_size"] = str(int(np.prod(dims)))
    for key, value in metadata.items():
        wrapped.metadata_props.add(key=key, value=value)
    return wrapped.SerializeToString()


def read_onnx(path: str | Path | bytes) -> tuple[bytes, str]:
    if isinstance(path, bytes):
        return path, "<in memory>"
    if not Path(path).is_file():
        raise DataError(f"{path} does not exist")
    return Path(path).read_bytes(), str(path)


def onnx_embedder(path: str | Path | bytes, **options):
    """An :class:`~facelearn.deploy.backends.OnnxEmbedder` of a facelearn export, or of any float-input
    recognition model wrapped by :func:`wrap_onnx`; the :class:`OnnxPreprocessing` fields among ``options``
    set its preprocessing, the rest go to ONNX Runtime."""
    import onnx

    from .backends import OnnxEmbedder

    preprocessing = OnnxPreprocessing.take_from(options)
    data, source = read_onnx(path)
    if is_facelearn_graph(onnx.load_from_string(data)):
        return OnnxEmbedder(path, input_size=preprocessing.input_size, **options)
    return OnnxEmbedder(wrap_onnx(data, source, preprocessing), **options)


def import_parity(original: bytes, wrapped: bytes, faces: np.ndarray) -> dict:
    """Cosine of the wrapped graph's embeddings with the original model's, run by ONNX Runtime on faces that
    NumPy preprocessed as the wrapper's metadata says (flip sum and normalisation in NumPy too)."""
    import onnx
    import onnxruntime

    metadata = {p.key: p.value for p in onnx.load_from_string(wrapped).metadata_props}
    used, flip = json.loads(metadata["facelearn.preprocessing"]), metadata["facelearn.flip"] == "true"
    x = faces.astype(np.float32)
    both = np.concatenate([x, x[:, :, ::-1]]) if flip else x
    if used["channel_order"] == "bgr":
        both = both[..., ::-1]
    both = (both - np.float32(used["mean"])) / np.float32(used["std"])
    if used["layout"] == "nchw":
        both = both.transpose(0, 3, 1, 2)
    options = {"providers": ["CPUExecutionProvider"]}
    source = onnxruntime.InferenceSession(original, **options)
    kind = source.get_inputs()[0].type
    raw = source.run(None, {used["input"]: np.ascontiguousarray(both, np.float16 if "float16" in kind else np.float32)})
    raw = raw[0].reshape(len(both), -1).astype(np.float32)
    total = raw[: len(x)] + raw[len(x) :] if flip else raw
    expected = total / np.linalg.norm(total, axis=1, keepdims=True)
    embedding, _ = onnxruntime.InferenceSession(wrapped, **options).run(None, {"faces": faces})
    cosines = np.sum(embedding * expected, 1)
    return {"faces": len(faces), "min_cosine": float(cosines.min()), "mean_cosine": float(cosines.mean())}
