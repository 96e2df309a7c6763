"""Number formats of the result tables.

Rounding is Python's: the float the JSON holds, correctly rounded (0.285 is stored as
0.28499999999999998, so it shows as 0.28), the way the benchmark scripts print their own tables.
"""

from __future__ import annotations


def fixed(x: float, digits: int) -> str:
    """``x`` with ``digits`` decimals: 0.6799 → 0.680 at 3."""
    return f"{x:.{digits}f}"


def count(n: float) -> str:
    """A whole number with thousands separators: 4244 → 4,244."""
    return f"{n:,.0f}"


def pct(x: float, digits: int = 1) -> str:
    """A fraction as a percentage: 0.912 → 91.2 %."""
    return f"{fixed(100 * x, digits)} %"


def mean_std(mean: float, std: float, digits: int = 2, unit: str = " %") -> str:
    """Accuracy over folds: 0.9925, 0.0046 → 99.25 ± 0.46 %."""
    return f"{fixed(100 * mean, digits)} ± {fixed(100 * std, digits)}{unit}"


def fmr(x: float) -> str:
    """A rate as the tables write it: 0.001 → 1e-3."""
    mantissa, exponent = f"{x:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def memory(mib: float) -> str:
    """Mebibytes from a JSON (ru_maxrss / 1024, bytes / 2**20) as MB below 1000, else GB (÷ 1024)."""
    return f"{count(mib)} MB" if mib < 1000 else f"{fixed(mib / 1024, 1)} GB"


def bold(text: str, on: bool = True) -> str:
    return f"**{text}**" if on else text


def table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table, one line a row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows])
