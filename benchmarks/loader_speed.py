"""How many images a second one CPU core feeds a GPU: facelearn's training loader on RecordIO beside
arcface_torch's loading steps, and the cores each needs to keep up with the GPU speeds arcface_torch reports.

    python benchmarks/loader_speed.py --faces FOLDER_OF_ALIGNED_112PX_FACES [--work /tmp/loader_speed]
        [--workers 1 2] [--batches 30]

``--faces`` holds ``<identity>/*.jpg`` aligned faces (for example ``facelearn prepare``'s output); they are
packed once into ``WORK/train.rec`` with facelearn's own packing. Each loader runs the real ``DataLoader`` with
worker processes, batch 128, decoding and augmenting at 112 px in the workers (pinned memory where CUDA is
there; this machine has none):

* **facelearn**: ``TrainingDataset`` on ``RecordDataset`` with ``TrainTransform`` (random flip, seeded per
  sample) through ``build_train_loader``: the checked decode (``decode_image``: format sniffed, JPEG structure
  walked, OpenCV decode), then flip and scaling to [−1, 1].
* **arcface_torch's steps**: its ``MXFaceDataset`` needs mxnet and torchvision, which cannot run beside this
  project's packages (mxnet 1.9.1, the last release, fails on import under NumPy 2: ``np.PZERO`` was removed;
  torchvision's only build on the index needs torch 2.14 with CUDA in place of the CPU torch 2.13), so its
  ``__getitem__`` is re-enacted step by step with the libraries under them: the record read (facelearn's
  reader for ``mx.recordio``), OpenCV decode to RGB (what ``mx.image.imdecode`` runs),
  ``PIL.Image.fromarray`` (``ToPILImage``), a PIL flip with probability ½ (``RandomHorizontalFlip``),
  ``ToTensor`` (to float, /255) and ``Normalize(0.5, 0.5)``; shuffled batches through torch's default
  collate. A stand-in for its steps, not its code.

Per core = images per CPU-second of the whole process tree (workers and the main process) while the batches
are timed, so it holds on a shared machine; the wall-clock rate is printed beside it. The first
``workers × prefetch + 2`` batches are drained before the clock starts. The GPU speeds are arcface_torch's:
iResNet-50 5,004 images/s on 8 V100s (``docs/speed_benchmark.md``, Partial FC 0.1, 125k identities) and
MobileFaceNet ~10,800 images/s on 8 GPUs (the ``ms1mv2_mbf`` training log its README links, fp16, batch
128 a GPU). Prints a table and writes benchmarks/results/loader_speed.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from common import RESULTS, ProcessTreeUsage, write_result
from PIL import Image
from torch.utils.data import DataLoader, Dataset, RandomSampler

import facelearn
from facelearn.bulk.prepare import pack_recordio
from facelearn.data.loader import TrainingDataset, build_train_loader
from facelearn.data.recordio import RecordDataset, RecordReader, unpack
from facelearn.data.transforms import TrainTransform

BATCH, SIZE, PREFETCH = 128, 112, 4
GPU_SPEEDS = {  # images/s on one GPU, as arcface_torch reports them
    "iresnet50": (5004 / 8, "arcface_torch docs/speed_benchmark.md: r50, 8× V100, Partial FC 0.1, 125k ids: 5,004/s"),
    "mobilefacenet": (10_800 / 8, "ms1mv2_mbf/training.log linked from arcface_torch README: ~10,800/s on 8 GPUs"),
}


class ArcfaceTorchSteps(Dataset):
    """arcface_torch's ``MXFaceDataset.__getitem__`` step by step, without mxnet and torchvision."""

    def __init__(self, root: Path):
        self.reader = RecordReader(root / "train.rec", root / "train.idx")
        _, header, _ = unpack(self.reader.read(0))
        self.keys = np.arange(1, int(header[0]))

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int):
        _, label, payload = unpack(self.reader.read(int(self.keys[index])))
        bgr = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
        image = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        if torch.rand(1) < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        tensor = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float().div(255)
        return tensor.sub_(0.5).div_(0.5), torch.tensor(int(label), dtype=torch.long)


def facelearn_loader(root: Path, workers: int) -> DataLoader:
    dataset = TrainingDataset(RecordDataset(root), TrainTransform(flip=True), SIZE, seed=0)
    return build_train_loader(dataset, BATCH, seed=0, start_batch=0, num_workers=workers)


def arcface_torch_loader(root: Path, workers: int) -> DataLoader:
    dataset = ArcfaceTorchSteps(root)
    return DataLoader(
        dataset,
        batch_size=BATCH,
        sampler=RandomSampler(dataset, generator=torch.Generator().manual_seed(0)),
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        drop_last=True,
        persistent_workers=workers > 0,
        prefetch_factor=PREFETCH if workers else None,
    )


LOADERS = {"facelearn": facelearn_loader, "arcface_torch's steps": arcface_torch_loader}


def timed(loader: DataLoader, workers: int, batches: int) -> dict:
    """Images/s (wall) and images per CPU-second of the process tree over ``batches`` batches."""
    iterator = iter(loader)
    for _ in range(workers * PREFETCH + 2):  # the workers start; the prefetched batches drain
        next(iterator)
    images = 0
    with ProcessTreeUsage() as usage:
        start = time.perf_counter()
        for _ in range(batches):
            batch = next(iterator)
            images += len(batch["images"] if isinstance(batch, dict) else batch[0])
        seconds = time.perf_counter() - start
    getattr(iterator, "_shutdown_workers", lambda: None)()
    return {
        "images": images,
        "images_per_second": round(images / seconds, 1),
        "cpu_seconds": round(usage.cpu_seconds, 2),
        "images_per_cpu_second": round(images / usage.cpu_seconds, 1),
    }


def recordio(faces: Path, work: Path) -> Path:
    """``work/train.rec`` packed from ``faces/<identity>/*.jpg`` (identity folders linked in), once."""
    if not (work / "train.rec").is_file():
        work.mkdir(parents=True, exist_ok=True)
        for identity in sorted(p for p in faces.iterdir() if p.is_dir()):
            link = work / identity.name
            if not link.exists():
                link.symlink_to(identity.resolve(), target_is_directory=True)
        pack_recordio(work)
    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, required=True, help="<identity>/*.jpg aligned 112×112 faces")
    parser.add_argument("--work", type=Path, default=Path("/tmp/loader_speed"), help="where train.rec is packed")
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--batches", type=int, default=30, help="batches of 128 timed per loader and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=str(RESULTS / "loader_speed.json"))
    args = parser.parse_args()
    if not args.faces.is_dir():
        parser.error(f"--faces {args.faces} is not a folder of <identity>/*.jpg faces")
    root = recordio(args.faces, args.work)
    load_before = [round(x, 2) for x in os.getloadavg()]
    runs = {(name, workers): [] for name in LOADERS for workers in args.workers}
    for _ in range(args.rounds):  # alternating, so a busy neighbour slows every loader alike
        for (name, workers), results in runs.items():
            results.append(timed(LOADERS[name](root, workers), workers, args.batches))
    rows = []
    print(f"\n{'loader':<24}{'workers':>8}{'images/s':>10}{'per core':>10}" + "".join(f"{m:>16}" for m in GPU_SPEEDS))
    for (name, workers), results in runs.items():
        per_core = statistics.median(r["images_per_cpu_second"] for r in results)
        cores = {model: round(speed / per_core, 2) for model, (speed, _) in GPU_SPEEDS.items()}
        rows.append(
            {
                "loader": name,
                "workers": workers,
                "images_per_second": statistics.median(r["images_per_second"] for r in results),
                "images_per_cpu_second": per_core,
                "cores_to_feed_one_gpu": cores,
                "sixteen_cores_feed_images_per_second": round(16 * per_core),
                "rounds": results,
            }
        )
        row = rows[-1]
        print(
            f"{name:<24}{workers:>8}{row['images_per_second']:>10.0f}{per_core:>10.0f}"
            + "".join(f"{cores[m]:>16.2f}" for m in GPU_SPEEDS)
        )
    write_result(
        args.output,
        {
            "batch_size": BATCH,
            "image_size": SIZE,
            "images_in_recordio": len(RecordDataset(root)),
            "facelearn_source": str(Path(facelearn.__file__).parent),  # which loader: a checkout's src/ or another
            "gpu_speeds": {m: {"images_per_second": s, "source": src} for m, (s, src) in GPU_SPEEDS.items()},
            "load_average": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]},
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
