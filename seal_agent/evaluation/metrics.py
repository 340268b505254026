"""From item records to the numbers in the table.

Accuracy follows each benchmark's own rule: V*Bench micro-averages over items per
subset and overall; HR-Bench computes accuracy within each ``cycle_category`` (per task
and for all rows) and averages those over cycles, as its authors' evaluation does
(FSP = ``single``, FCP = ``cross``). Search metrics sit beside it: the share of targets
found and of annotated targets localised (IoU > 0.5), patches scored and forward passes
per question, the paper's search length (patches scored, successful searches only),
latency and peak GPU memory. Over several seeds every number is given as mean and
standard deviation.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, Field

from seal_agent.evaluation.hrbench import CATEGORIES as HRBENCH_CATEGORIES
from seal_agent.evaluation.records import ItemRecord

#: Search and cost columns, in table order.
SEARCH_METRICS: tuple[str, ...] = (
    "targets_found",
    "targets_localised",
    "patches_per_question",
    "passes_per_question",
    "search_length",
    "seconds_per_question",
    "peak_gpu_mb",
)


class Stat(BaseModel):
    """A number over seeds: mean, standard deviation (0 for one seed), each seed's value."""

    mean: float
    std: float
    values: list[float]

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        mean = statistics.fmean(values)
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return cls(mean=round(mean, 4), std=round(std, 4), values=[round(v, 4) for v in values])


class RowSummary(BaseModel):
    """One system over every seed of a run."""

    system: str
    seeds: list[int]
    items: int = Field(description="items per seed")
    errors: int = Field(0, description="items a model fault left unanswered, all seeds")
    accuracy: dict[str, Stat] = Field(description="column -> percent")
    search: dict[str, Stat | None]
    search_lengths: list[int] = Field(
        default_factory=list, description="patches scored by each successful search, all seeds"
    )


def accuracy_columns(records: Sequence[ItemRecord], bench: str) -> dict[str, float]:
    """Accuracy (percent) per column for one system and seed."""
    if bench == "hrbench":
        return _hrbench_accuracy(records)
    by_category: dict[str, list[bool]] = defaultdict(list)
    for record in records:
        by_category[record.category].append(record.correct)
    columns = {c: _percent(v) for c, v in sorted(by_category.items())}
    columns["overall"] = _percent([r.correct for r in records])
    return columns


def _hrbench_accuracy(records: Sequence[ItemRecord]) -> dict[str, float]:
    cycles: dict[str, list[ItemRecord]] = defaultdict(list)
    for record in records:
        cycles[record.cycle or ""].append(record)
    totals: dict[str, float] = defaultdict(float)
    for rows in cycles.values():
        by_category: dict[str, list[bool]] = defaultdict(list)
        for row in rows:
            by_category[row.category].append(row.correct)
        for category, values in by_category.items():
            totals[HRBENCH_CATEGORIES.get(category, category)] += _percent(values)
        totals["overall"] += _percent([r.correct for r in rows])
    # Divided by the number of cycles, as the authors do, even where a task is absent.
    count = len(cycles)
    columns = {k: v / count for k, v in sorted(totals.items()) if k != "overall"}
    columns["overall"] = totals["overall"] / count if count else 0.0
    return columns


def search_columns(records: Sequence[ItemRecord]) -> dict[str, float | None]:
    """Search and cost metrics for one system and seed (None where nothing was measured)."""
    n = max(1, len(records))
    targets = [t for r in records for t in r.prediction.targets]
    annotated = sum(r.prediction.targets_annotated for r in records)
    lengths = [t.patches_scored for t in targets if t.successful]
    peaks = [r.peak_gpu_mb for r in records if r.peak_gpu_mb is not None]
    searched = any(r.prediction.targets_searched for r in records)
    return {
        "targets_found": _percent([t.found for t in targets]) if targets else None,
        "targets_localised": (
            100.0 * sum(r.prediction.targets_localised for r in records) / annotated
            if annotated
            else None
        ),
        "patches_per_question": (
            sum(r.prediction.patches_scored for r in records) / n if searched else None
        ),
        "passes_per_question": (
            sum(r.prediction.forward_passes for r in records) / n if searched else None
        ),
        "search_length": statistics.fmean(lengths) if lengths else None,
        "seconds_per_question": sum(r.elapsed_s for r in records) / n,
        "peak_gpu_mb": max(peaks) if peaks else None,
    }


def summarise_rows(
    records: Iterable[ItemRecord], bench: str, systems: Sequence[str] | None = None
) -> list[RowSummary]:
    """One summary per system (in ``systems`` order where given), over all its seeds."""
    grouped: dict[str, dict[int, list[ItemRecord]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        grouped[record.system][record.seed].append(record)
    order = list(systems) if systems is not None else sorted(grouped)
    rows: list[RowSummary] = []
    for system in order:
        if system not in grouped:
            continue
        by_seed = {
            s: sorted(v, key=lambda r: r.item_id) for s, v in sorted(grouped[system].items())
        }
        per_seed_accuracy = [accuracy_columns(v, bench) for v in by_seed.values()]
        per_seed_search = [search_columns(v) for v in by_seed.values()]
        columns = sorted({c for a in per_seed_accuracy for c in a}, key=_column_order)
        accuracy = {c: Stat.of([a.get(c, 0.0) for a in per_seed_accuracy]) for c in columns}
        search: dict[str, Stat | None] = {}
        for metric in SEARCH_METRICS:
            values = [s[metric] for s in per_seed_search if s[metric] is not None]
            search[metric] = Stat.of(values) if values else None  # type: ignore[arg-type]
        lengths = [
            t.patches_scored
            for v in by_seed.values()
            for r in v
            for t in r.prediction.targets
            if t.successful
        ]
        rows.append(
            RowSummary(
                system=system,
                seeds=list(by_seed),
                items=max(len(v) for v in by_seed.values()),
                errors=sum(1 for v in by_seed.values() for r in v if r.error),
                accuracy=accuracy,
                search=search,
                search_lengths=lengths,
            )
        )
    return rows


def _column_order(column: str) -> tuple[int, str]:
    known = ["attribute", "spatial", "FSP", "FCP"]
    if column == "overall":
        return (2, column)
    return (0, f"{known.index(column):02d}") if column in known else (1, column)


def _percent(values: Sequence[bool]) -> float:
    return 100.0 * sum(values) / len(values) if values else 0.0


__all__ = [
    "SEARCH_METRICS",
    "RowSummary",
    "Stat",
    "accuracy_columns",
    "search_columns",
    "summarise_rows",
]
