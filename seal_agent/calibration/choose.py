"""Choosing thresholds for a stated precision from what ``measure.py`` recorded.

Every threshold answers "above this value, is the model right?" with a precision the
user states (default 0.9), so each is the LOWEST value at which the model is right at
least that often, i.e. the one that acts on the most evidence without dropping below
the precision:

* ``confidence_high`` (found): at every level of the tree a view's best box above it is
  the target (the highest of the per-level thresholds).
* ``confidence_low`` (fallback): per target, the best box a search that never cleared
  ``confidence_high`` would fall back to (the highest sub-threshold best box over its
  views); above it that box is the target.
* cue schedule: a heatmap peak above the level's threshold means the view holds the
  target and the peak lies in the child that holds it; of the reference's schedules
  ``max(min, start * decay ** (level - 1))`` the one calling the most such cues strong
  at the stated precision (pooled over the levels) is chosen.

Precision is that of everything above the threshold (all of it is acted upon), and
counts only once ``min_support`` samples lie above: a handful of top scores is not
yet evidence either way.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from seal_agent.calibration.layout import TILE_LEVEL
from seal_agent.calibration.measure import Measurements
from seal_agent.calibration.profile import ThresholdChoice
from seal_agent.search.protocol import ModelThresholds

#: Samples that must lie above a threshold before its precision counts as measured.
DEFAULT_MIN_SUPPORT = 5
#: Schedules tried by the fit: decay in 0.30..1.00.
DECAY_GRID = tuple(round(0.30 + 0.01 * i, 2) for i in range(71))


@dataclass(frozen=True, slots=True)
class Sample:
    score: float
    correct: bool
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Operating:
    """A threshold and what it achieves: ``score > value`` (or ``>=``) is acted upon."""

    value: float
    precision: float
    recall: float
    support: int


def lowest_threshold(
    samples: Iterable[Sample], precision: float, min_support: int = DEFAULT_MIN_SUPPORT
) -> Operating | None:
    """The lowest threshold keeping precision >= ``precision``; None if none does.

    The value lies halfway between the lowest accepted score and the next lower one,
    so it reads the same with ``>`` (found) and ``>=`` (fallback).
    """
    ordered = sorted(samples, key=lambda s: -s.score)
    total_right = sum(s.weight for s in ordered if s.correct)
    if not ordered or total_right <= 0:
        return None
    right = wrong = 0.0
    count = 0
    chosen: Operating | None = None
    chosen_index = -1
    i = 0
    while i < len(ordered):
        score = ordered[i].score
        while i < len(ordered) and ordered[i].score == score:  # ties go together
            s = ordered[i]
            right += s.weight if s.correct else 0.0
            wrong += 0.0 if s.correct else s.weight
            count += 1
            i += 1
        achieved = right / (right + wrong) if right + wrong > 0 else 0.0
        if achieved >= precision and count >= min_support:
            chosen = Operating(score, achieved, right / total_right, count)
            chosen_index = i
    if chosen is None:
        return None
    lower = ordered[chosen_index].score if chosen_index < len(ordered) else None
    gap = (chosen.value - lower) / 2 if lower is not None else 1e-3 * max(1.0, abs(chosen.value))
    return Operating(chosen.value - gap, chosen.precision, chosen.recall, chosen.support)


# -- found ------------------------------------------------------------------------------------
def found_samples_by_level(m: Measurements, with_tiles: bool = False) -> dict[int, list[Sample]]:
    """Per tree level (and the tiles, if asked): each view's best box, is it the target."""
    levels: dict[int, list[Sample]] = defaultdict(list)
    for v in m.views:
        if v.best_score is not None and (with_tiles or v.level != TILE_LEVEL):
            levels[v.level].append(Sample(v.best_score, v.best_is_target, v.weight))
    return dict(sorted(levels.items()))


def choose_found(
    m: Measurements,
    precision: float,
    default: float,
    min_support: int = DEFAULT_MIN_SUPPORT,
    min_level_samples: int = 4 * DEFAULT_MIN_SUPPORT,
) -> ThresholdChoice:
    """The highest of the per-level thresholds: a stop is precise at every level.

    Pooling the levels would let the many easy native-resolution views (where the
    target scores near 1) buy precision for the coarse ones, where a search is most
    likely to stop on a blurry distractor first. A level with fewer than
    ``min_level_samples`` views is too thin to veto the others.
    """
    rule = (
        "per tree level, the lowest score above which a view's best box is the target "
        "with the stated precision; the highest of the levels"
    )
    per_level: dict[int, Operating] = {}
    notes: list[str] = []
    for level, samples in found_samples_by_level(m).items():
        if len(samples) < min_level_samples:
            notes.append(f"level {level} skipped ({len(samples)} views with a box)")
            continue
        op = lowest_threshold(samples, precision, min_support)
        if op is not None:
            per_level[level] = op
            continue
        wrong = [s.score for s in samples if not s.correct]
        right = sum(s.correct for s in samples)
        if right >= min_support and wrong:  # never precise here: stop above every wrong box
            top = max(wrong)
            per_level[level] = Operating(top, 1.0, 0.0, 0)
            notes.append(f"level {level} never reaches precision {precision}")
    if not per_level:
        return ThresholdChoice(
            value=default,
            source="model default",
            rule=rule,
            support=sum(len(s) for s in found_samples_by_level(m).values()),
            note="too few detections on the target to measure",
        )
    level, op = max(per_level.items(), key=lambda kv: kv[1].value)
    summary = ", ".join(f"{lv}: {o.value:.3g}" for lv, o in per_level.items())
    notes.insert(0, f"set by level {level} (per level {{{summary}}})")
    return ThresholdChoice(
        value=min(1.0, max(op.value, 1e-6)),
        source="measured",
        rule=rule,
        precision=op.precision,
        recall=op.recall,
        support=op.support,
        note="; ".join(notes),
    )


# -- fallback ---------------------------------------------------------------------------------
def fallback_candidates(m: Measurements, confidence_high: float) -> list[Sample]:
    """Per target: the best sub-threshold box over its views, as a search would keep it."""
    best: dict[int, tuple[float, bool]] = {}
    for v in m.views:
        if v.best_score is None or v.best_score > confidence_high:
            continue
        current = best.get(v.target)
        if current is None or v.best_score > current[0]:
            best[v.target] = (v.best_score, v.best_is_target)
    return [Sample(score, correct) for score, correct in best.values()]


def choose_fallback(
    m: Measurements,
    precision: float,
    confidence_high: float,
    default: float,
    min_support: int = DEFAULT_MIN_SUPPORT,
) -> ThresholdChoice:
    samples = fallback_candidates(m, confidence_high)
    rule = (
        "lowest score above which a target's best sub-threshold box is the target with "
        "the stated precision"
    )
    op = lowest_threshold(samples, precision, min_support)
    if op is not None:
        return ThresholdChoice(
            value=max(0.0, min(op.value, confidence_high)),
            source="measured",
            rule=rule,
            precision=op.precision,
            recall=op.recall,
            support=op.support,
        )
    if len(samples) >= min_support and any(s.correct for s in samples):
        return ThresholdChoice(
            value=confidence_high,
            source="measured",
            rule=rule,
            support=len(samples),
            note=f"no fallback score reaches precision {precision}: fallbacks never count",
        )
    return ThresholdChoice(
        value=min(default, confidence_high),
        source="model default",
        rule=rule,
        support=len(samples),
        note="too few sub-threshold candidates on the target to measure",
    )


# -- cue schedule -----------------------------------------------------------------------------
def cue_samples_by_level(m: Measurements) -> dict[int, list[Sample]]:
    """Per tree level: (peak value, steers right) of the views whose cue the search uses."""
    levels: dict[int, list[Sample]] = defaultdict(list)
    for v in m.views:
        if v.level != TILE_LEVEL and not v.is_leaf and math.isfinite(v.cue):
            levels[v.level].append(Sample(v.cue, v.steers, v.weight))
    return dict(sorted(levels.items()))


def level_thresholds(
    m: Measurements, precision: float, min_support: int = DEFAULT_MIN_SUPPORT
) -> dict[int, tuple[float, Operating | None]]:
    """Per level, for the statistics: the lowest precise cue threshold (or None)."""
    out: dict[int, tuple[float, Operating | None]] = {}
    for level, samples in cue_samples_by_level(m).items():
        op = lowest_threshold(samples, precision, min_support)
        if op is not None:
            out[level] = (op.value, op)
    return out


@dataclass(frozen=True, slots=True)
class Schedule:
    start: float
    decay: float
    floor: float
    precision: float
    recall: float
    support: int


def _grid(values: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` candidate thresholds: midpoints between quantiles of the values."""
    unique = np.unique(values)
    if len(unique) > count:
        unique = np.unique(np.quantile(unique, np.linspace(0, 1, count)))
    mids = (unique[1:] + unique[:-1]) / 2
    below = unique[0] - 1e-3 * max(1.0, abs(unique[0]))
    return np.concatenate([[below], mids, [unique[-1] + 1e-3 * max(1.0, abs(unique[-1]))]])


def fit_schedule(
    samples: list[tuple[int, Sample]],
    precision: float,
    min_support: int = DEFAULT_MIN_SUPPORT,
    grid_size: int = 48,
) -> Schedule | None:
    """The schedule ``max(floor, start * decay ** (level - 1))`` under which the cues it
    calls strong steer right with ``precision``, calling the most right cues strong.

    Pooled over levels, so no thin level decides alone. Ties go to the higher precision,
    then the flatter schedule. On negative (logit) scales a decay below 1 would tighten
    the threshold with depth instead of relaxing it; it is tried all the same, and the
    data decide. None when no schedule reaches the precision with ``min_support`` cues.
    """
    if not samples:
        return None
    levels = np.array([lv for lv, _ in samples], dtype=np.float64)
    scores = np.array([s.score for _, s in samples], dtype=np.float64)
    right = np.array([s.weight if s.correct else 0.0 for _, s in samples])
    weight = np.array([s.weight for _, s in samples])
    total_right = right.sum()
    if total_right <= 0:
        return None
    candidates = _grid(scores, grid_size)
    best: tuple[tuple[float, float, float], Schedule] | None = None
    for start in candidates:
        for decay in DECAY_GRID[::5]:
            raw = start * decay ** (levels - 1)  # (n,)
            # every floor at once: (floors, n)
            delta = np.maximum(candidates[:, None], raw[None, :])
            strong = scores[None, :] > delta
            acted = strong @ weight
            hits = strong @ right
            counts = strong.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                achieved = np.where(acted > 0, hits / acted, 0.0)
            ok = (achieved >= precision) & (counts >= min_support)
            for k in np.flatnonzero(ok):
                key = (hits[k] / total_right, achieved[k], decay)
                if best is None or key > best[0]:
                    best = (
                        key,
                        Schedule(
                            float(start),
                            float(decay),
                            float(candidates[k]),
                            float(achieved[k]),
                            float(key[0]),
                            int(counts[k]),
                        ),
                    )
    if best is None:
        return None
    found = best[1]
    if found.start < found.floor:  # the floor rules at every level: say so plainly
        return Schedule(found.floor, 1.0, found.floor, found.precision, found.recall, found.support)
    return found


def choose_cue(
    m: Measurements,
    precision: float,
    defaults: ModelThresholds,
    min_support: int = DEFAULT_MIN_SUPPORT,
) -> tuple[dict[str, ThresholdChoice], dict[int, tuple[float, Operating | None]]]:
    per_level = level_thresholds(m, precision, min_support)
    samples = [(lv, s) for lv, group in cue_samples_by_level(m).items() for s in group]
    rule = (
        "the schedule max(min, start * decay ** (level - 1)) under which the heatmap peaks "
        "it calls strong lie in the child holding the target with the stated precision, "
        "calling the most of them strong (pooled over levels)"
    )
    schedule = fit_schedule(samples, precision, min_support)
    if schedule is None:
        if samples and any(s.correct for _, s in samples):
            top = max(s.score for _, s in samples)
            value = top + 1e-3 * max(1.0, abs(top))
            note = f"no schedule reaches precision {precision}: the target cue is never trusted"
            source: Literal["measured", "model default"] = "measured"
            values = (value, 1.0, value)
        else:
            note = "too few non-leaf views to measure the cue"
            source = "model default"
            values = (
                defaults.cue_threshold,
                defaults.cue_threshold_decay,
                defaults.cue_threshold_min,
            )
        names = ("cue_threshold", "cue_threshold_decay", "cue_threshold_min")
        return (
            {
                name: ThresholdChoice(
                    value=v, source=source, rule=rule, support=len(samples), note=note
                )
                for name, v in zip(names, values, strict=True)
            },
            per_level,
        )
    common = {
        "source": "measured",
        "rule": rule,
        "precision": schedule.precision,
        "recall": schedule.recall,
        "support": schedule.support,
    }
    return (
        {
            "cue_threshold": ThresholdChoice(value=schedule.start, **common),
            "cue_threshold_decay": ThresholdChoice(value=schedule.decay, **common),
            "cue_threshold_min": ThresholdChoice(value=schedule.floor, **common),
        },
        per_level,
    )


def choose_thresholds(
    m: Measurements,
    precision: float,
    defaults: ModelThresholds,
    min_support: int = DEFAULT_MIN_SUPPORT,
) -> tuple[ModelThresholds, dict[str, ThresholdChoice], dict[int, tuple[float, Operating | None]]]:
    """All five thresholds, how each was chosen, and the per-level cue thresholds."""
    if not 0 < precision <= 1:
        raise ValueError(f"precision must be in (0, 1], got {precision}")
    found = choose_found(m, precision, defaults.confidence_high, min_support)
    fallback = choose_fallback(m, precision, found.value, defaults.confidence_low, min_support)
    cue, per_level = choose_cue(m, precision, defaults, min_support)
    choices = {"confidence_high": found, "confidence_low": fallback, **cue}
    thresholds = ModelThresholds(
        **{name: round(choice.value, 6) for name, choice in choices.items()}
    )
    return thresholds, choices, per_level


__all__ = [
    "DEFAULT_MIN_SUPPORT",
    "Operating",
    "Sample",
    "choose_cue",
    "choose_fallback",
    "choose_found",
    "choose_thresholds",
    "cue_samples_by_level",
    "fallback_candidates",
    "fit_schedule",
    "level_thresholds",
    "lowest_threshold",
]
