"""Rows of the result table, the notes under it, and their formatting (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

WIDTH = 44


@dataclass(frozen=True)
class Row:
    """One line of the table: cca's number, the baseline's, how they compare, the target."""

    measure: str
    cca: float
    baseline: float
    ratio: str
    target: str = "-"
    met: bool | None = None


@dataclass
class Section:
    """What one measurement reports: table rows and free-text notes (breakdowns, settings)."""

    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation. Raises ValueError if empty."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rate_row(measure: str, cca: float, baseline: float, minimum: float | None = None) -> Row:
    """A higher-is-better row; with ``minimum`` its target is ``cca / baseline >= minimum``
    (without, a diagnostic)."""
    ratio = cca / baseline if baseline else math.inf
    if minimum is None:
        return Row(measure, cca, baseline, f"{ratio:.2f}")
    return Row(measure, cca, baseline, f"{ratio:.2f}", f">= {minimum:g}", ratio >= minimum)


def latency_row(measure: str, cca: float, baseline: float, factor: float | None = None,
                slack: float = 0.0) -> Row:
    """A lower-is-better row; with ``factor`` its target is ``cca <= factor*baseline+slack``."""
    ratio = f"{cca / baseline:.2f}x" if baseline else "-"
    if factor is None:
        return Row(measure, cca, baseline, ratio)
    limit = factor * baseline + slack
    return Row(measure, cca, baseline, ratio, f"<= {factor:g}x+{slack:g}ms ({limit:.1f})",
               cca <= limit)


def format_table(rows: Sequence[Row]) -> str:
    lines = [f"{'measure':<{WIDTH}}{'cca':>10}{'baseline':>11}   {'ratio':<8}{'target':<24}met"]
    for row in rows:
        met = "-" if row.met is None else ("yes" if row.met else "NO")
        lines.append(f"{row.measure:<{WIDTH}}{row.cca:>10.1f}{row.baseline:>11.1f}   "
                     f"{row.ratio:<8}{row.target:<24}{met}")
    return "\n".join(lines)


def ms(seconds: float) -> float:
    return seconds * 1000.0
