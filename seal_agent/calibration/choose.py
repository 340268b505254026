"""Choosing thresholds for a stated precision from what ``measure.py`` recorded.

Every threshold answers "above this value, is the model right?" with a precision the
user states (default 0.9), so each is the LOWEST value at which the model is right at
least that often, i.e. the one that acts on the most evidence without dropping below
the precision:

* ``confidence_high`` (found): at every level of the tree, and on the native tiles, a
  view's best box above it is the target (the highest of the per-level thresholds).
* ``confidence_low`` (fallback): per target, the best box a search that never cleared
  ``confidence_high`` would fall back to (the highest sub-threshold best box over its
  views); above it that box is the target.
* cue schedule: per tree level, a heatmap peak above the level's threshold means the
  view holds the target and the peak lies in the child that holds it; the reference's
  schedule ``max(min, start * decay ** (level - 1))`` is then fitted to the levels
  from above (never below a level's threshold).

Where precision first holds for only a handful of samples (the top scores), it is not
yet evidence: the scan from the top ignores violations until ``min_support`` samples
are above, and stops at the first violation after that.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

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
        if achieved >= precision:
            chosen = Operating(score, achieved, right / total_right, count)
            chosen_index = i
        elif count >= min_support:
            break
    if chosen is None or chosen.support < min_support:
        return None
    lower = ordered[chosen_index].score if chosen_index < len(ordered) else None
    gap = (chosen.value - lower) / 2 if lower is not None else 1e-3 * max(1.0, abs(chosen.value))
    return Operating(chosen.value - gap, chosen.precision, chosen.recall, chosen.support)


# -- found ------------------------------------------------------------------------------------
def found_samples_by_level(m: Measurements) -> dict[int, list[Sample]]:
    """Per level (tiles apart): each view's best box and whether it is the target."""
    levels: dict[int, list[Sample]] = defaultdict(list)
    for v in m.views:
        if v.best_score is not None:
            levels[v.level].append(Sample(v.best_score, v.best_is_target, v.weight))
    return dict(sorted(levels.items()))


def choose_found(
    m: Measurements, precision: float, default: float, min_support: int = DEFAULT_MIN_SUPPORT
) -> ThresholdChoice:
    """The highest of the per-level thresholds: a stop is precise at every level.

    Pooling the levels would let the many easy native-resolution views (where the
    target scores near 1) buy precision for the coarse ones, where a search is most
    likely to stop on a blurry distractor first.
    """
    rule = (
        "per tree level (and the native tiles), the lowest score above which a view's "
        "best box is the target with the stated precision; the highest of the levels"
    )
    per_level: dict[int, Operating] = {}
    notes: list[str] = []
    for level, samples in found_samples_by_level(m).items():
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
    notes.insert(0, f"set by level {level} (per level {{{summary}}}; 0 = native tiles)")
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
    """Per level: the cue threshold (above every peak when none is precise) and its point."""
    out: dict[int, tuple[float, Operating | None]] = {}
    for level, samples in cue_samples_by_level(m).items():
        if len(samples) < min_support:
            continue
        op = lowest_threshold(samples, precision, min_support)
        if op is not None:
            out[level] = (op.value, op)
        else:  # the cue is never trustworthy here: put the threshold above every peak
            top = max(s.score for s in samples)
            out[level] = (top + 1e-3 * max(1.0, abs(top)), None)
    return out


def fit_schedule(points: dict[int, float]) -> tuple[float, float, float]:
    """(start, decay, floor) of ``max(floor, start * decay ** (level - 1))`` fitted to the
    per-level thresholds from above.

    The schedule never drops below a level's measured threshold (a cue trusted below it
    would steer with less than the stated precision; one trusted a little less often
    only costs the blend with the context), and among such schedules it is the closest
    in least squares. A flat schedule at the highest level's value always qualifies.
    """
    if not points:
        raise ValueError("no level to fit")
    values = sorted(set(points.values()))
    top = values[-1]
    best: tuple[float, float, float, float, float] | None = None
    for decay in DECAY_GRID:
        # the smallest start that clears every level above the floor, for each floor
        for floor in values:
            need = [
                value / decay ** (level - 1) for level, value in points.items() if value > floor
            ]
            start = max([*need, floor]) if all(v > 0 for v in need) else top
            if any(v <= 0 for v in need):  # negative scales: only a flat schedule is safe
                start, decay_used = top, 1.0
            else:
                decay_used = decay
            schedule = {level: max(floor, start * decay_used ** (level - 1)) for level in points}
            if any(schedule[lv] < value - 1e-12 for lv, value in points.items()):
                continue
            error = sum((schedule[lv] - value) ** 2 for lv, value in points.items())
            key = (round(error, 12), -decay_used, floor)
            if best is None or key < best[:3]:
                best = (*key, start, decay_used)
    if best is None:
        return top, 1.0, top
    _, _, floor, start, decay = best
    return start, decay, floor


def choose_cue(
    m: Measurements,
    precision: float,
    defaults: ModelThresholds,
    min_support: int = DEFAULT_MIN_SUPPORT,
) -> tuple[dict[str, ThresholdChoice], dict[int, tuple[float, Operating | None]]]:
    per_level = level_thresholds(m, precision, min_support)
    rule = (
        "per level, the lowest heatmap peak above which the view holds the target and the "
        "peak lies in its child, with the stated precision; the reference's schedule "
        "max(min, start * decay ** (level - 1)) fitted to the levels"
    )
    if not per_level:
        note = "too few non-leaf views to measure the cue"
        return (
            {
                "cue_threshold": ThresholdChoice(
                    value=defaults.cue_threshold, source="model default", rule=rule, note=note
                ),
                "cue_threshold_decay": ThresholdChoice(
                    value=defaults.cue_threshold_decay, source="model default", rule=rule, note=note
                ),
                "cue_threshold_min": ThresholdChoice(
                    value=defaults.cue_threshold_min, source="model default", rule=rule, note=note
                ),
            },
            per_level,
        )
    start, decay, floor = fit_schedule({lv: value for lv, (value, _) in per_level.items()})
    support = sum(op.support for _, op in per_level.values() if op is not None)
    levels = ", ".join(f"{lv}: {value:.4g}" for lv, (value, _) in per_level.items())
    note = f"measured per level {{{levels}}}"
    return (
        {
            "cue_threshold": ThresholdChoice(
                value=start, source="measured", rule=rule, support=support, note=note
            ),
            "cue_threshold_decay": ThresholdChoice(
                value=decay, source="measured", rule=rule, support=support
            ),
            "cue_threshold_min": ThresholdChoice(
                value=floor, source="measured", rule=rule, support=support
            ),
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
