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


def share_of_peak(row: dict) -> str:
    return f"{pct(row['fraction_of_bf16_peak'])} / {pct(row['fraction_of_fp32_peak'])}"


def training_peak(result: dict) -> str:
    """results/vs_arcface_torch_peak.json: each contender's FLOP rate against the machine's bf16 and fp32 peaks."""
    allocators = len({row["allocator"] for row in result["rows"]}) > 1
    rows = []
    for row in result["rows"]:
        facelearn = row["contender"].startswith("facelearn")
        cells = [row["model"], row["contender"], *([row["allocator"]] if allocators else [])]
        rows.append(
            [
                *cells,
                str(row["batch_size"]),
                fixed(row["images_per_second"], 1),
                fixed(row["gflop_per_image"], 2),
                count(row["gflops"]),
                bold(share_of_peak(row), facelearn),
                f"{fixed(row['ratio_to_arcface_torch_same_allocator'], 2)}×",
            ]
        )
    header = ["model", "contender", *(["allocator"] if allocators else []), "batch", "images/s", "GFLOP / image"]
    return table([*header, "GFLOP/s", "of the bf16 / fp32 peak", "× arcface_torch"], rows)


def base_of(attempt: dict, rows: list[dict]) -> dict:
    """The default a try varies: facelearn compiled for a compile mode, facelearn eager otherwise."""
    kind = "facelearn compiled" if "compiled" in attempt["contender"] else "facelearn eager"
    return next(
        row
        for row in rows
        if row["model"] == attempt["model"]
        and row["allocator"] == attempt["allocator"]
        and row["contender"].startswith(kind)
    )


def training_tries(result: dict) -> str:
    """results/vs_arcface_torch_tries.json: each variant tried against the default it varies, same rounds."""
    rows = []
    for attempt in result["tries"]:
        base = base_of(attempt, result["rows"])
        rows.append(
            [
                attempt["model"],
                attempt["contender"].removeprefix("try: "),
                fixed(attempt["images_per_second"], 1),
                share_of_peak(attempt),
                f"{fixed(attempt['images_per_second'] / base['images_per_second'], 2)}× {base['contender']}",
            ]
        )
    return table(["model", "tried", "images/s", "of the bf16 / fp32 peak", "against the default"], rows)


def other_operators(top: list[dict]) -> list[tuple[str, float]]:
    """The operators beside the convolutions by share, inductor's compiled graphs (its fused kernels) as one."""
    shares: dict[str, float] = {}
    for op in top:
        if "convolution" in op["operator"]:
            continue
        compiled = op["operator"].startswith("## Call CompiledFxGraph")
        name = "inductor's fused kernels" if compiled else f"`{op['operator'].removeprefix('aten::')}`"
        shares[name] = shares.get(name, 0.0) + op["share"]
    return sorted(shares.items(), key=lambda item: item[1], reverse=True)


def training_profile(result: dict) -> str:
    """results/vs_arcface_torch_peak.json: where facelearn's step goes by operator, and the convolutions' rate."""
    peak = result["peak"]["bf16_gflops"]
    kept = [row for row in result["rows"] + result["tries"] if row["allocator"] == "kept"]  # as profiled
    per_image = {(row["model"], row["contender"]): row for row in kept}
    rows = []
    for model, profiles in result["profiles"].items():
        for contender, profile in profiles.items():
            row = per_image[model, contender]
            counted = row["gflop_by_operator"]
            convolution_gflop = (counted.get("convolution", 0) + counted.get("convolution_backward", 0)) * row[
                "batch_size"
            ]
            seconds = profile["convolution_seconds_per_step"]
            others = other_operators(profile["top_operators"])[:3]
            rows.append(
                [
                    model,
                    contender,
                    fixed(profile["seconds_per_step"], 2),
                    pct(seconds / profile["seconds_per_step"]),
                    f"{count(convolution_gflop / seconds)} ({pct(convolution_gflop / seconds / peak)})",
                    ", ".join(f"{name} {pct(share)}" for name, share in others),
                ]
            )
    header = ["model", "step", "profiled s / step", "in convolutions", "their GFLOP/s (of the bf16 peak)"]
    return table([*header, "largest other operators"], rows)


def loader_speed(before: dict, now: dict) -> str:
    """results/loader_speed_before.json and loader_speed.json: images per core, and the cores that feed the GPU
    speeds arcface_torch reports."""
    speeds = now["gpu_speeds"]
    rows = []
    for label, result, loaders in (("before", before, ("facelearn",)), ("now", now, None)):
        for row in result["rows"]:
            if loaders is not None and row["loader"] not in loaders:
                continue
            facelearn_now = row["loader"] == "facelearn" and label == "now"
            name = f"{row['loader']} ({label})" if row["loader"] == "facelearn" else row["loader"]
            rows.append(
                [
                    bold(name, facelearn_now),
                    str(row["workers"]),
                    count(row["images_per_second"]),
                    bold(count(row["images_per_cpu_second"]), facelearn_now),
                    *(
                        fixed(
                            row["images_per_cpu_second"]
                            and speeds[m]["images_per_second"] / row["images_per_cpu_second"],
                            2,
                        )
                        for m in ("iresnet50", "mobilefacenet")
                    ),
                    count(16 * row["images_per_cpu_second"]),
                ]
            )
    iresnet, mobilefacenet = (count(speeds[m]["images_per_second"]) for m in ("iresnet50", "mobilefacenet"))
    header = ["loader", "workers", "images/s", "images per core-second", f"cores for a V100's iResNet-50 ({iresnet}/s)"]
    return table([*header, f"cores for a GPU's MobileFaceNet ({mobilefacenet}/s)", "16 cores feed (images/s)"], rows)


def speed_headline(training: dict, loader: dict) -> str:
    """README: the fraction of the bf16 peak facelearn's compiled step reaches, its ratio to arcface_torch, and
    the faces one core of the loader feeds."""
    compiled = {
        row["model"]: row
        for row in training["rows"]
        if row["contender"].startswith("facelearn compiled") and row["allocator"] == "kept"
    }
    share = {model: pct(row["fraction_of_bf16_peak"], 0) for model, row in compiled.items()}
    ratio = {model: fixed(row["ratio_to_arcface_torch_same_allocator"], 2) for model, row in compiled.items()}
    per_core = max(r["images_per_cpu_second"] for r in loader["rows"] if r["loader"] == "facelearn")
    return (
        f"On a {training['machine']['cpu_threads']}-core CPU with native bf16, a compiled training step reaches "
        f"{share['iresnet50']} of the bf16 "
        f"matrix-product peak with iResNet-50 ({ratio['iresnet50']}× arcface_torch) and {share['mobilefacenet']} "
        f"with MobileFaceNet ({ratio['mobilefacenet']}×); one core of the loader decodes and augments "
        f"{count(per_core)} faces a second (16 cores: {count(16 * per_core)}/s): [speed](docs/speed.md)."
    )
