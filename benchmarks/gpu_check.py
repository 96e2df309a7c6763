"""Everything facelearn has never run on a GPU, checked in one go when a GPU is lent (under 8 minutes).

    python benchmarks/gpu_check.py [--insightface PATH]           # on a CUDA machine
    python benchmarks/gpu_check.py --device cpu --smoke           # the plumbing, on a CPU (tested)

Checks, each recorded as ok / failed (with the error) / skipped (with the reason), never stopping the
others:

* ``train_steps``: the engine's real step (``Trainer.train_step``) on the device, MobileFaceNet and
  iResNet-50 at 112 px, batch 128, in fp16 (with its GradScaler) and bf16 autocast, eager and (for
  MobileFaceNet) compiled: images/s and peak memory; with ``--insightface`` arcface_torch's own
  MobileFaceNet step (fp16 autocast, as its ``fp16=True``) beside it.
* ``resume``: a run killed at step 5 and resumed ends with the same weights as an uninterrupted one.
* ``loader``: the training loader alone (images/s per worker) against the step's images/s: how many
  loader workers keep the device busy.
* ``recognizer``: the embedding backend on the device, faces/s at batch 64.
* ``ddp``: one ``DistributedDataParallel`` step in a one-process group (nccl on CUDA, gloo on a CPU).

Writes benchmarks/results/gpu_check.json (machine, command, every check).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import tempfile
import time
import traceback
from pathlib import Path

import torch
from common import RESULTS, write_result

from facelearn.config import load_config
from facelearn.models.checkpoint import load_checkpoint, step_checkpoints
from facelearn.train.build import build_trainer

CHECKS = {}


def check(name: str):
    def register(function):
        CHECKS[name] = function
        return function

    return register


def recipe(args, output_dir, *extra: str):
    """A synthetic-data recipe on the checked device; ``--smoke`` makes it tiny."""
    size, batch = (32, 8) if args.smoke else (112, 128)
    return load_config(
        None,
        [
            "data.kind=synthetic",
            f"data.image_size={size}",
            "data.num_identities=64" if args.smoke else "data.num_identities=2000",
            "data.images_per_identity=4",
            f"train.batch_size={batch}",
            f"train.device={args.device}",
            f"train.output_dir={output_dir}",
            "eval.sets=[]",
            *(["model.name=mobilefacenet", "model.width=1", "model.blocks=[1,1,1,1]"] if args.smoke else []),
            *extra,
        ],
    )


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_steps(trainer, args, steps: int) -> float:
    """images/s of ``steps`` engine steps on the trainer's own loader (after two warm-up steps)."""
    batches = iter(trainer.task.loader(0))
    for _ in range(2):
        trainer.train_step(batches)
    synchronize(args.device)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batches)
    synchronize(args.device)
    return steps * trainer.config.train.batch_size / (time.perf_counter() - start)


@check("train_steps")
def train_steps(args, work: Path) -> dict:
    cuda = args.device.startswith("cuda")
    precisions = ["fp16", "bf16"] if cuda else ["off"]
    models = [("mobilefacenet", [])] if args.smoke else [("mobilefacenet", []), ("iresnet50", [])]
    rows = []
    for model, extra in models:
        for amp in precisions:
            for compiled in [False] if args.smoke or model != "mobilefacenet" else [False, True]:
                overrides = [
                    f"model.name={model}",
                    *extra,
                    f"train.amp={amp}",
                    f"train.compile={str(compiled).lower()}",
                ]
                if args.smoke:
                    overrides = [f"train.amp={amp}"]
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                trainer = build_trainer(recipe(args, work / f"{model}_{amp}_{compiled}", *overrides))
                speed = time_steps(trainer, args, 3 if args.smoke else 20)
                peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
                rows.append(
                    {
                        "model": model,
                        "amp": amp,
                        "compiled": compiled,
                        "images_per_second": round(speed, 1),
                        "peak_memory_mb": peak,
                    }
                )
    if args.insightface:
        rows.append(arcface_torch_row(args))
    return {"rows": rows}


def arcface_torch_row(args) -> dict:
    """arcface_torch's MobileFaceNet step with its fp16 autocast and GradScaler, on the device."""
    import sys

    import torch.nn.functional as F

    sys.path.insert(0, str(Path(args.insightface) / "recognition" / "arcface_torch"))
    from backbones.mobilefacenet import get_mbf
    from losses import CombinedMarginLoss

    device, classes, batch = torch.device(args.device), 2000, 128
    backbone = get_mbf(fp16=True, num_features=512).to(device).train()
    weight = torch.nn.Parameter(torch.normal(0, 0.01, (classes, 512), device=device))
    margin = CombinedMarginLoss(64, 1.0, 0.5, 0.0)
    optimizer = torch.optim.SGD([*backbone.parameters(), weight], lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda")
    images = torch.randn(batch, 3, 112, 112, device=device)
    labels = torch.randint(0, classes, (batch,), device=device)

    def step():
        embeddings = backbone(images).float()
        logits = F.linear(F.normalize(embeddings), F.normalize(weight)).clamp(-1, 1)
        scaler.scale(F.cross_entropy(margin(logits, labels), labels)).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()

    for _ in range(2):
        step()
    synchronize(args.device)
    start = time.perf_counter()
    for _ in range(20):
        step()
    synchronize(args.device)
    return {
        "model": "arcface_torch mbf",
        "amp": "fp16",
        "compiled": False,
        "images_per_second": round(20 * batch / (time.perf_counter() - start), 1),
    }


@check("resume")
def resume(args, work: Path) -> dict:
    """Six steps straight, and six steps killed in the fifth then resumed: the same weights, bit for bit."""
    extra = ["train.steps=6", "train.checkpoint_every=3", "train.keep_last=5", "data.num_workers=0"]
    build_trainer(recipe(args, work / "straight", *extra)).fit()
    interrupted = build_trainer(recipe(args, work / "resumed", *extra))
    forward, calls = interrupted.task.forward, {"n": 0}

    def killed_in_step_5(batch):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return forward(batch)

    interrupted.task.forward = killed_in_step_5
    with contextlib.suppress(KeyboardInterrupt):
        interrupted.fit()
    build_trainer(recipe(args, work / "resumed", *extra)).fit()
    first, second = (load_checkpoint(step_checkpoints(work / r)[-1])["task"] for r in ("straight", "resumed"))
    different = [k for k in first if not torch.equal(first[k], second[k])]
    return {"same_weights": not different, "tensors_differing": different[:5]}


@check("loader")
def loader(args, work: Path) -> dict:
    workers = 1 if args.smoke else min(8, os.cpu_count() or 1)
    trainer = build_trainer(recipe(args, work / "loader", f"data.num_workers={workers}"))
    batches, count = iter(trainer.task.loader(0)), 4 if args.smoke else 40
    next(batches)
    start = time.perf_counter()
    for _ in range(count):
        next(batches)
    loader_speed = count * trainer.config.train.batch_size / (time.perf_counter() - start)
    step_speed = time_steps(trainer, args, 3 if args.smoke else 20)
    per_worker = loader_speed / workers
    return {
        "workers": workers,
        "loader_images_per_second": round(loader_speed, 1),
        "step_images_per_second": round(step_speed, 1),
        "workers_to_feed_the_step": round(step_speed / per_worker, 1),
    }


@check("recognizer")
def recognizer(args, work: Path) -> dict:
    from facelearn.deploy.backends import TorchEmbedder, faces_per_second
    from facelearn.models import MobileFaceNet

    embedder = TorchEmbedder(MobileFaceNet(512, (1, 4, 6, 2), 2, 112), 112, device=args.device)
    return {"precision": embedder.precision, "faces_per_second": round(faces_per_second(embedder, batch=64), 1)}


@check("ddp")
def ddp(args, work: Path) -> dict:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from facelearn.models import MobileFaceNet

    cuda = args.device.startswith("cuda")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = "nccl" if cuda else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        device = torch.device(args.device)
        model = DistributedDataParallel(
            MobileFaceNet(64, (1, 1, 1, 1), 1, 32).to(device), device_ids=[device.index or 0] if cuda else None
        )
        loss = model(torch.randn(4, 3, 32, 32, device=device)).square().mean()
        loss.backward()
        gradients = all(p.grad is not None for p in model.parameters() if p.requires_grad)
        return {"backend": backend, "loss": float(loss), "every_parameter_has_a_gradient": gradients}
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: the script's plumbing, on any device")
    parser.add_argument("--insightface", help="a checkout of deepinsight/insightface: arcface_torch's step too")
    parser.add_argument("--only", nargs="+", choices=list(CHECKS))
    parser.add_argument("--output", default=str(RESULTS / "gpu_check.json"))
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run on a GPU machine, or --device cpu --smoke for the plumbing")
    results = {}
    with tempfile.TemporaryDirectory(prefix="facelearn-gpu-check-") as work:
        for name in args.only or CHECKS:
            start = time.perf_counter()
            try:
                results[name] = {"status": "ok", **CHECKS[name](args, Path(work) / name)}
            except Exception as error:  # one failing check must not hide the others
                results[name] = {
                    "status": "failed",
                    "error": f"{type(error).__name__}: {error}",
                    "traceback": traceback.format_exc()[-2000:],
                }
            results[name]["seconds"] = round(time.perf_counter() - start, 1)
            print(f"{name:<12} {results[name]['status']:<7} {results[name]['seconds']:>6} s", flush=True)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    write_result(args.output, {"device": device, "smoke": args.smoke, "checks": results})


if __name__ == "__main__":
    main()
