"""Identification in a real gallery: enrolled photos per person, and FPIR calibrated for the gallery's size."""

from __future__ import annotations

from .format import bold, count, fixed, pct, table


def enrolled_photos(result: dict) -> str:
    """results/lfw_open_set.json: rank-1 and TPIR at FPIR 1e-2 / 1e-1 by photos enrolled and how subjects score."""
    by_k: dict[int, dict[str, dict]] = {}
    for row in result["fusion"]["rows"]:
        by_k.setdefault(row["k"], {})[row["scores"]] = row
    modes = list(next(iter(by_k.values())))
    rows = []
    for k, scored in by_k.items():
        best_rank1 = max(row["rank1"] for row in scored.values())
        cells = [str(k)]
        for mode in modes:
            row = scored[mode]
            cells.append(
                f"{bold(pct(row['rank1'], 2), row['rank1'] == best_rank1)} / {pct(row['tpir']['0.01'], 1)} / "
                f"{pct(row['tpir']['0.1'], 1)}"
            )
        rows.append(cells)
    header = ["photos enrolled", *(f"{mode}: rank-1 / TPIR@1e-2 / TPIR@1e-1" for mode in modes)]
    return table(header, rows)


def interval(bounds: list[float]) -> str:
    return f"[{fixed(bounds[0], 4)}, {fixed(bounds[1], 4)}]"


def open_set_fpir(result: dict) -> str:
    """results/lfw_open_set.json: FPIR 1e-2 set on calibration strangers, realised on held-out strangers."""
    rows = []
    for row in result["open_set"]:
        rows.append(
            [
                row["gallery"],
                row["fusion"],
                fixed(row["threshold"], 4),
                f"{fixed(row['calibration_fpir'], 4)} {interval(row['calibration_interval'])} "
                f"({count(row['calibration_searches'])} searches, {count(row['calibration_people'])} people)",
                f"{fixed(row['test_fpir'], 4)} ({row['test_false_alarms']} of {count(row['test_searches'])}, "
                f"{count(row['test_people'])} people)",
                interval(row["held_out_interval"]),
                "yes" if row["within_interval"] else bold("no"),
                "—" if row["tpir"] is None else f"{pct(row['tpir'], 1)} of {count(row['mated_probes'])}",
            ]
        )
    header = [
        "gallery",
        "scores",
        "threshold",
        "calibration FPIR [95 %]",
        "held-out FPIR",
        "predicted [95 %]",
        "within",
        "TPIR (mated probes)",
    ]
    return table(header, rows)
