"""``facelearn embed`` on 2,000 LFW-a photos: the local engine against the Ray engine on this machine.

    python benchmarks/bulk_pipeline.py [--photos 2000] [--model PATH [--architecture NAME]] [--work DIR]

Same work and model on both engines: RetinaFace detection, five-point alignment and a 512-d MobileFaceNet
at 112 px embedding every face (untrained weights unless --model: the arithmetic is the same), Parquet
shards of 16 photos, 2 worker processes against 2 actors of 1 CPU. Per engine: wall time and photos/s,
each stage's share of the workers' time (decode, detect, align, embed, write), the peak of the resident
memory summed over the driver and every process below it (sampled every 0.2 s; pages shared between
processes count once per process), the CPU time of the workers and of everything (driver, pool or Ray's
daemons), and the fixed cost of a run (the same command on 2 photos: starting the pool or Ray, loading
the model in every worker, stopping). This machine is shared (the load average is recorded): the wall
times count the waits for a core, so the projection stands on photos per CPU-second of a worker.
Writes benchmarks/results/bulk_pipeline.json and prints a table and the projection.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from common import RESULTS, ProcessTreeUsage, write_result

from facelearn.bulk.embed import EmbedOptions, embed_photos
from facelearn.bulk.engine import EngineOptions
from facelearn.bulk.output import shards
from facelearn.bulk.sources import list_photos

SHARED = Path(os.environ.get("FACELEARN_SHARED", Path(__file__).resolve().parents[2] / "shared"))
MILLION = 1_000_000


def link_photos(root: Path, count: int) -> Path:
    """The first ``count`` LFW-a photos in name order, as links under ``root/<person>/``."""
    if root.is_dir():  # made by an earlier run of this script
        return root
    lfw = SHARED / "data" / "lfw_a" / "lfw"
    made = 0
    for person in sorted(p for p in lfw.iterdir() if p.is_dir()):
        for photo in sorted(person.iterdir()):
            if made == count:
                return root
            (root / person.name).mkdir(parents=True, exist_ok=True)
            (root / person.name / photo.name).symlink_to(photo)
            made += 1
    return root


def untrained_mobilefacenet(path: Path) -> Path:
    """A facelearn checkpoint of the standard MobileFaceNet (112 px, 512-d), seeded, untrained."""
    import torch

    from facelearn.config import load_config
    from facelearn.models import build_backbone
    from facelearn.models.checkpoint import FORMAT
    from facelearn.schema import to_dict

    torch.manual_seed(0)
    config = load_config(None, ["model.name=mobilefacenet", "model.embedding_size=512", "data.image_size=112"])
    backbone = build_backbone(config.model, 112)
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    torch.save({"format": FORMAT, "config": to_dict(config), "task": state}, path)
    return path


def run(photos: Path, output: Path, options: EmbedOptions, engine: EngineOptions) -> dict:
    with ProcessTreeUsage() as usage:
        start = time.perf_counter()
        report = embed_photos(photos, output, options, engine)
        wall = time.perf_counter() - start
    stages, worker_cpu = report["this_run"]["stage_seconds"], report["this_run"]["cpu_seconds"]
    busy = sum(stages.values())
    written = sum(Path(path).stat().st_size for path in shards(str(output)))
    return {
        "photos": report["photos"],
        "faces": report["faces"],
        "wall_seconds": round(wall, 2),
        "photos_per_second": round(report["photos"] / wall, 2),
        "stage_seconds": stages,
        "stage_share": {stage: round(seconds / busy, 3) for stage, seconds in stages.items()},
        "worker_cpu_seconds": round(worker_cpu, 1),
        "photos_per_cpu_second": round(report["photos"] / worker_cpu, 2),
        "total_cpu_seconds": round(usage.cpu_seconds, 1),
        "peak_memory_mib": round(usage.peak / 2**20),
        "output_bytes_per_face": round(written / max(report["faces"], 1)),
        "engine": {k: v for k, v in report["this_run"].items() if k in ("engine", "workers", "actors", "batch_size")},
    }


def projection(rows: dict, listing_seconds_per_photo: float) -> dict:
    """A million photos on N machines of C cores, by the measured numbers (the arithmetic is in the JSON): each
    1-CPU actor runs at the photos per CPU-second measured in the workers (a core of its own, unlike here)."""
    ray = rows["ray"]
    per_actor = ray["photos_per_cpu_second"]
    startup = rows["ray_fixed_seconds"]
    serial = startup + listing_seconds_per_photo * MILLION  # Ray's start, then the driver lists the photos alone
    out = {"per_actor_photos_per_second": per_actor, "fixed_seconds": startup, "serial_seconds": round(serial, 1)}
    out["machines"] = []
    for machines, cores in ((1, 2), (1, 16), (4, 16), (16, 16), (64, 16)):
        actors = machines * cores
        hours = (serial + MILLION / (per_actor * actors)) / 3600
        out["machines"].append({"machines": machines, "cores_each": cores, "actors": actors, "hours": round(hours, 2)})
    out["core_hours_per_million"] = round(MILLION / per_actor / 3600, 1)
    out["listing_seconds_per_million"] = round(listing_seconds_per_photo * MILLION, 1)
    out["output_gib_per_million_faces"] = round(ray["output_bytes_per_face"] * MILLION / 2**30, 2)
    out["write_mib_per_second_per_actor"] = round(
        ray["output_bytes_per_face"] * ray["faces"] / ray["photos"] * per_actor / 2**20, 3
    )
    out["object_store_bytes_per_photo"] = 200  # a batch row carries the photos' keys and paths as JSON
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--model", help="default: an untrained 512-d MobileFaceNet (the same arithmetic)")
    parser.add_argument("--architecture")
    parser.add_argument("--work", help="folder for the photos' links and the outputs (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bulk_pipeline_"))
    work.mkdir(parents=True, exist_ok=True)
    model = args.model or str(untrained_mobilefacenet(work / "mobilefacenet.pt"))  # seeded: the same every run
    options = EmbedOptions(model, args.architecture, weights=str(SHARED / "weights" / "retinaface"))
    photos = link_photos(work / f"photos_{args.photos}", args.photos)
    small = link_photos(work / "photos_2", 2)
    start = time.perf_counter()
    list_photos(photos)
    listing = (time.perf_counter() - start) / args.photos
    rows: dict = {"load_average_at_start": [round(x, 1) for x in os.getloadavg()]}  # a shared machine says so
    for name, engine in (("local", EngineOptions(workers=2, batch_size=16)), ("ray", EngineOptions("ray", 16))):
        for output in work.glob(f"{name}_*"):  # a rerun of the benchmark measures the work again
            shutil.rmtree(output)
        fixed = run(small, work / f"{name}_2", options, engine)
        rows[f"{name}_fixed_seconds"] = fixed["wall_seconds"]
        print(f"{name}: 2 photos in {fixed['wall_seconds']} s (the fixed cost)", flush=True)
        rows[name] = run(photos, work / f"{name}_{args.photos}", options, engine)
        print(f"{name}: {rows[name]}", flush=True)
        rows[name]["steady_photos_per_second"] = round(
            (args.photos - 2) / (rows[name]["wall_seconds"] - rows[f"{name}_fixed_seconds"]), 2
        )
    rows["load_average_at_end"] = [round(x, 1) for x in os.getloadavg()]
    rows["ray_overhead_seconds"] = round(rows["ray"]["wall_seconds"] - rows["local"]["wall_seconds"], 2)
    rows["ray_overhead_cpu_seconds"] = round(rows["ray"]["total_cpu_seconds"] - rows["local"]["total_cpu_seconds"], 1)
    rows["projection"] = projection(rows, listing)
    print(
        f"\n{'engine':<8}{'photos/s':>10}{'steady':>8}{'per CPU-s':>10}{'fixed s':>9}{'CPU s':>8}{'peak MiB':>10}",
        "stages",
    )
    for name in ("local", "ray"):
        row = rows[name]
        shares = ", ".join(f"{k} {100 * v:.0f}%" for k, v in row["stage_share"].items())
        print(
            f"{name:<8}{row['photos_per_second']:>10}{row['steady_photos_per_second']:>8}{row['photos_per_cpu_second']:>10}"
            f"{rows[name + '_fixed_seconds']:>9}{row['total_cpu_seconds']:>8}{row['peak_memory_mib']:>10}  {shares}"
        )
    print(
        f"Ray's overhead at {args.photos} photos: {rows['ray_overhead_seconds']} s of wall time, "
        f"{rows['ray_overhead_cpu_seconds']} CPU-s"
    )
    for row in rows["projection"]["machines"]:
        print(f"  a million photos on {row['machines']} × {row['cores_each']} cores: {row['hours']} h")
    write_result(RESULTS / "bulk_pipeline.json", {"photos": args.photos, "model": args.model or "untrained", **rows})


if __name__ == "__main__":
    main()
