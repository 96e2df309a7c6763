"""Tables of the bulk photo pipeline: docs/bulk.md."""

from __future__ import annotations

from .format import count, fixed, pct, table

ENGINES = {"local": "local ({workers} processes)", "ray": "Ray ({actors} actors, 1 CPU each)"}
STAGES = ("decode", "detect", "align", "embed", "write")
STORES = {"milvus": "milvus-lite", "sqlite": "SQLite"}


def mib(x: float) -> str:
    return f"{count(x)} MiB"


def gib(x_mib: float) -> str:
    return f"{fixed(x_mib / 1024, 1)} GiB"


def bulk_pipeline(result: dict) -> str:
    """results/bulk_pipeline.json: both engines on the same photos, and where their time goes."""
    rows = []
    for engine, label in ENGINES.items():
        run = result[engine]
        shares = " / ".join(pct(run["stage_share"][stage], 0) for stage in STAGES)
        rows.append(
            [
                label.format(**run["engine"]),
                fixed(run["photos_per_second"], 1),
                fixed(run["steady_photos_per_second"], 1),
                fixed(run["photos_per_cpu_second"], 1),
                fixed(result[f"{engine}_fixed_seconds"], 1),
                fixed(run["total_cpu_seconds"], 1),
                mib(run["peak_memory_mib"]),
                shares,
            ]
        )
    header = ["engine", "photos/s", "steady photos/s", "photos per worker CPU-second", "fixed s", "CPU s in all"]
    return table([*header, "peak memory", " / ".join(STAGES)], rows)


def bulk_projection(result: dict) -> str:
    """results/bulk_pipeline.json: hours for a million photos by machines × cores, from per-actor throughput."""
    machines = result["projection"]["machines"]
    header = ["machines × cores (1-CPU actors)", *(f"{m['machines']} × {m['cores_each']}" for m in machines)]
    return table(header, [["hours for 1,000,000 photos", *(fixed(m["hours"], 2) for m in machines)]])


def bulk_enroll(result: dict) -> str:
    """results/bulk_enroll.json: a million faces into each store, then the rerun that adds nothing."""
    rows = []
    for store, label in STORES.items():
        run = result["stores"][store]
        rows.append(
            [
                label,
                f"{run['seconds']:.0f} s",
                count(run["faces_per_second"]),
                f"{run['rerun_seconds']:.0f} s",
                gib(run["gallery_mib"]),
                gib(run["peak_memory_mib"]),
            ]
        )
    return table(["store", "first enroll", "faces/s", "rerun (adds 0)", "gallery on disk", "peak memory"], rows)
