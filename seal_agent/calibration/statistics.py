"""Summaries of the measured distributions, as they are written into a profile."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from seal_agent.calibration.choose import Operating, Sample, fallback_candidates, lowest_threshold
from seal_agent.calibration.layout import TILE_LEVEL
from seal_agent.calibration.measure import Measurements
from seal_agent.calibration.profile import (
    CalibrationStatistics,
    DetectionStatistics,
    Histogram,
    LevelStatistics,
    Quantiles,
    ScoreDistribution,
)

HISTOGRAM_BINS = 20


def weighted_quantiles(
    values: Sequence[float], weights: Sequence[float] | None = None
) -> Quantiles:
    """10th/50th/90th weighted percentiles (the lower value at a step), min and max."""
    finite = [
        (v, 1.0 if weights is None else weights[i])
        for i, v in enumerate(values)
        if math.isfinite(v)
    ]
    if not finite:
        return Quantiles()
    finite.sort()
    data = np.array([v for v, _ in finite], dtype=np.float64)
    w = np.array([x for _, x in finite], dtype=np.float64)
    cumulative = np.cumsum(w) / w.sum()

    def at(q: float) -> float:
        return float(data[min(int(np.searchsorted(cumulative, q)), len(data) - 1)])

    return Quantiles(
        count=len(data),
        weight=round(float(w.sum()), 3),
        min=float(data[0]),
        p10=at(0.1),
        p50=at(0.5),
        p90=at(0.9),
        max=float(data[-1]),
    )


def distribution(
    values: Sequence[float],
    weights: Sequence[float] | None = None,
    edges: np.ndarray | None = None,
) -> ScoreDistribution:
    histogram = None
    if edges is not None and len(values):
        counts, _ = np.histogram(values, bins=edges, weights=weights)
        histogram = Histogram(
            edges=[round(float(e), 6) for e in edges],
            counts=[round(float(c), 3) for c in counts],
        )
    return ScoreDistribution(quantiles=weighted_quantiles(values, weights), histogram=histogram)


def _edges(values: Sequence[float]) -> np.ndarray | None:
    if not values:
        return None
    low, high = min(values), max(values)
    if low >= 0.0 and high <= 1.0:  # probabilities: the fixed [0, 1] grid compares models
        return np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    if high <= low:
        high = low + 1.0
    return np.linspace(low, high, HISTOGRAM_BINS + 1)


def detection_statistics(m: Measurements) -> DetectionStatistics:
    scores = [d.score for d in m.detections]
    edges = _edges(scores)

    def part(is_target: bool) -> ScoreDistribution:
        chosen = [d for d in m.detections if d.is_target == is_target]
        return distribution([d.score for d in chosen], [d.weight for d in chosen], edges)

    def best(is_target: bool) -> ScoreDistribution:
        chosen = [v for v in m.views if v.best_score is not None and v.best_is_target == is_target]
        return distribution(
            [v.best_score for v in chosen if v.best_score is not None],
            [v.weight for v in chosen],
            edges,
        )

    return DetectionStatistics(
        iou_threshold=m.iou_threshold,
        target=part(True),
        non_target=part(False),
        best_per_view_target=best(True),
        best_per_view_non_target=best(False),
    )


def level_statistics(
    m: Measurements, per_level: dict[int, tuple[float, Operating | None]], precision: float
) -> list[LevelStatistics]:
    grouped = defaultdict(list)
    for v in m.views:
        grouped[v.level].append(v)
    out: list[LevelStatistics] = []
    for level in sorted(grouped, key=lambda lv: (lv == TILE_LEVEL, lv)):
        views = grouped[level]
        inside = [v for v in views if v.holds_target]
        outside = [v for v in views if not v.holds_target]
        steerable = [v for v in inside if not v.is_leaf]
        chosen = per_level.get(level)
        op = chosen[1] if chosen else None
        found = lowest_threshold(
            [
                Sample(v.best_score, v.best_is_target, v.weight)
                for v in views
                if v.best_score is not None
            ],
            precision,
        )
        out.append(
            LevelStatistics(
                level=level,
                views=len(views),
                peak_with_target=weighted_quantiles([v.cue for v in inside]),
                peak_without_target=weighted_quantiles(
                    [v.cue for v in outside], [v.weight for v in outside]
                ),
                steers_to_target=(
                    sum(v.steers for v in steerable) / len(steerable) if steerable else None
                ),
                threshold=chosen[0] if chosen else None,
                precision=op.precision if op else None,
                recall=op.recall if op else None,
                found_threshold=found.value if found else None,
            )
        )
    return out


def calibration_statistics(
    m: Measurements,
    confidence_high: float,
    per_level: dict[int, tuple[float, Operating | None]],
    precision: float,
) -> CalibrationStatistics:
    candidates = fallback_candidates(m, confidence_high)
    return CalibrationStatistics(
        detections=detection_statistics(m),
        fallback_candidates=distribution([c.score for c in candidates]),
        levels=level_statistics(m, per_level, precision),
    )


__all__ = [
    "calibration_statistics",
    "detection_statistics",
    "distribution",
    "level_statistics",
    "weighted_quantiles",
]
