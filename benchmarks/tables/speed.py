"""Tables of training speed: docs/speed.md and docs/training.md (Partial FC)."""

from __future__ import annotations

from .format import bold, count, fixed, memory, pct, table

CONTENDERS = {
    "arcface_torch (fp32 NCHW)": "arcface_torch, fp32 NCHW",
    "facelearn eager (fp32, channels_last)": "facelearn eager, fp32 channels_last",
    "facelearn compiled (fp32, channels_last)": "facelearn compiled (`train.compile=true`), fp32 channels_last",
    "facelearn eager (torch.bfloat16, channels_last)": "facelearn eager, bf16 channels_last",
    "facelearn compiled (torch.bfloat16, channels_last)": "facelearn compiled, bf16 channels_last",
}
SHIPPED = ("arcface_torch (fp32 NCHW)", "glibc")  # the reference: arcface_torch as it comes


def vs_arcface_torch(result: dict) -> str:
    """results/vs_arcface_torch*.json: images/s and the ratio to arcface_torch as shipped, two allocators."""
    speeds = {(row["contender"], row["allocator"]): row["images_per_second"] for row in result["rows"]}
    reference = speeds[SHIPPED]
    rows = []
    for contender in dict.fromkeys(row["contender"] for row in result["rows"]):
        cells = []
        for allocator in ("glibc", "kept"):
            speed = speeds[contender, allocator]
            cell = f"{fixed(speed, 1)} ({fixed(speed / reference, 2)}×)"
            cells.append(bold(cell, allocator == "kept" and contender.startswith("facelearn")))
        rows.append([CONTENDERS[contender], *cells])
    header = ["images/s (× arcface_torch as shipped)", "glibc's allocator as it comes"]
    return table([*header, "freed memory kept (facelearn trains so)"], rows)


RECIPE_RUNS = {
    ("eager", "glibc"): ("eager, glibc as it comes (before)", False),
    ("compiled", "glibc"): ("compiled, glibc as it comes", False),
    ("eager", "kept"): ("eager (now)", True),
    ("compiled", "kept"): ("compiled (now)", True),
}
PARTS = ("waiting for the batch", "backbone forward", "head forward", "backward", "optimizer")


def recipe_speed(glibc: dict, kept: dict) -> str:
    """recipe_speed_glibc.json (before) and recipe_speed.json (now): the LFW recipe's step, taken apart."""
    rows = []
    for row in glibc["rows"] + kept["rows"]:
        label, now = RECIPE_RUNS[row["mode"], row["allocator"]]
        rows.append(
            [
                bold(label, now),
                bold(fixed(row["images_per_second"], 1), now),
                count(row["page_faults_per_step"]),
                f"{row['kernel_cpu_seconds_per_step']:.2g}",
                *(pct(row["parts_share"][part]) for part in PARTS),
            ]
        )
    header = ["run", "images/s", "page faults / step", "kernel CPU s / step", "waiting for data", "forward"]
    return table([*header, "head", "backward", "optimizer"], rows)


def train_throughput(result: dict) -> str:
    """results/train_throughput.json: images/s and the head's share of the step at 10k and 100k classes."""
    by_setting: dict[tuple[str, str], dict[int, dict]] = {}
    for row in result["rows"]:
        by_setting.setdefault((row["model"], row["setting"]), {})[row["classes"]] = row
    rows = []
    for (model, setting), by_classes in by_setting.items():
        fastest = setting.startswith("bf16")
        cells = [model, bold(setting, fastest)]
        for classes in (10_000, 100_000):
            row = by_classes[classes]
            cells += [bold(fixed(row["images_per_second"], 1), fastest), pct(row["head_share_of_step"])]
        rows.append(cells)
    header = ["model", "setting", "images/s (10k classes)", "head share at 10k", "images/s (100k classes)"]
    return table([*header, "head share at 100k"], rows)


def partial_fc_time(milliseconds: list[float]) -> str:
    if max(milliseconds) < 1000:
        return " / ".join(fixed(ms, 0) for ms in milliseconds) + " ms"
    digits = 2 if max(milliseconds) < 10_000 else 1
    return " / ".join(fixed(ms / 1000, digits) for ms in milliseconds) + " s"


def partial_fc_memory(mebibytes: list[float]) -> str:
    """One unit for the three rates: the largest value's."""
    unit = memory(max(mebibytes)).split()[1]
    values = [count(mib) if unit == "MB" else fixed(mib / 1024, 1) for mib in mebibytes]
    return " / ".join(values) + f" {unit}"


MEMORY_COLUMNS = ("peak_rss_mb", "per_rank_mb_w1", "per_rank_mb_w8")


def partial_fc_scaling(result: dict) -> str:
    """results/partial_fc_scaling.json: an ArcFace head under Partial FC, one process, up to a million classes."""
    by_classes: dict[int, list[dict]] = {}
    for row in result["rows"]:
        by_classes.setdefault(row["classes"], []).append(row)
    rows = []
    for classes, group in by_classes.items():
        rates = " / ".join(f"{row['sample_rate']:g}" for row in group)
        rows.append(
            [
                count(classes),
                rates,
                partial_fc_time([row["step_ms"] for row in group]),
                *(partial_fc_memory([row[key] for row in group]) for key in MEMORY_COLUMNS),
            ]
        )
    header = ["classes", "r", "step", "peak memory (measured)", "per process, W = 1", "per process, W = 8"]
    return table(header, rows)
