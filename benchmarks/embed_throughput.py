"""Embedding throughput per backend, batch size and model: what the Recognizer's default should be.

    python benchmarks/embed_throughput.py [--models mobilefacenet iresnet50] [--batches 1 8 64] [--seconds 3]

Each (model, backend, batch) embeds random 112×112 uint8 faces with the flip sum (two forward
passes per face, as evaluation and the Recognizer do) for at least ``--seconds`` after a warm-up,
in one process. Backends: PyTorch fp32 NCHW, PyTorch fp32 channels_last, PyTorch bf16
channels_last (autocast; only on CPUs with native bf16 kernels), ONNX Runtime fp32 (the exported
graph, default session). A CPU TorchEmbedder tells glibc to keep freed memory (``keep_freed_memory``);
``--allocator glibc`` measures the PyTorch backends without it (a process-wide setting: one run each).
Writes benchmarks/results/embed_throughput[_glibc].json with the fastest backend per model and batch.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, write_result

import facelearn.deploy.backends
from facelearn.config import ModelConfig
from facelearn.deploy.backends import OnnxEmbedder, TorchEmbedder
from facelearn.deploy.export import EmbeddingGraph, export_onnx, model_metadata
from facelearn.hardware import cpu_has_fast_bf16
from facelearn.models import build_backbone


def faces_per_second(embed, batch: int, seconds: float) -> float:
    faces = np.random.default_rng(0).integers(0, 255, (batch, 112, 112, 3), dtype=np.uint8)
    embed(faces)  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        embed(faces)
        done += batch
    return done / (time.perf_counter() - start)


def backends(model: str, folder: Path) -> dict:
    backbone = build_backbone(ModelConfig(name=model, embedding_size=512), 112).eval()
    torch_fp32 = TorchEmbedder(backbone, 112, precision="float32", channels_last=False)
    channels_last = TorchEmbedder(backbone, 112, precision="float32", channels_last=True)
    bf16 = TorchEmbedder(backbone, 112, precision="bfloat16", channels_last=True) if cpu_has_fast_bf16() else None
    path = folder / f"{model}.onnx"
    export_onnx(EmbeddingGraph(backbone), 112, model_metadata(None, model, backbone, 112, True), path)
    onnx = OnnxEmbedder(path)
    found = {
        "torch fp32 NCHW": torch_fp32.embed,
        "torch fp32 channels_last": channels_last.embed,
        "onnxruntime fp32": onnx.embed,
    }
    if bf16 is not None:  # without native bf16 kernels it runs ~10x slower than fp32 (measured): not a candidate
        found["torch bf16 channels_last"] = bf16.embed
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["mobilefacenet", "iresnet50"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--allocator", choices=["kept", "glibc"], default="kept")
    parser.add_argument("--output")
    args = parser.parse_args()
    args.output = args.output or str(RESULTS / f"embed_throughput{'' if args.allocator == 'kept' else '_glibc'}.json")
    if args.allocator == "glibc":
        facelearn.deploy.backends.keep_freed_memory = lambda: False  # what TorchEmbedder calls
    rows, fastest = [], {}
    with tempfile.TemporaryDirectory() as folder:
        for model in args.models:
            embedders = backends(model, Path(folder))
            for batch in args.batches:
                speeds = {name: faces_per_second(embed, batch, args.seconds) for name, embed in embedders.items()}
                for name, speed in speeds.items():
                    rows.append({"model": model, "backend": name, "batch": batch, "faces_per_second": round(speed, 1)})
                    print(f"{model:<14}{name:<28}batch {batch:>3}  {speed:>8.1f} faces/s", flush=True)
                fastest[f"{model}/batch{batch}"] = max(speeds, key=speeds.get)
    write_result(
        args.output,
        {
            "allocator": args.allocator,
            "threads": torch.get_num_threads(),
            "rows": rows,
            "fastest": fastest,
        },
        variant={"allocator": args.allocator},
    )


if __name__ == "__main__":
    main()
