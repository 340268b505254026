"""Search results as state records: the rounded, JSON-ready ``TargetOutcome`` and
``StepRecord`` the graph keeps and streams."""

from __future__ import annotations

from collections.abc import Sequence

from seal_agent.graph.state import StepRecord, TargetOutcome
from seal_agent.search import SearchResult, TraceStep


def _round(value: float | None, ndigits: int = 4) -> float | None:
    return None if value is None else round(float(value), ndigits)


def _box_list(box: Sequence[float] | None) -> list[float] | None:
    return None if box is None else [round(float(v), 2) for v in box]


def step_record(step: TraceStep) -> StepRecord:
    record = StepRecord(
        index=step.index,
        parent=step.parent,
        patch=_box_list(step.patch) or [],
        level=step.level,
        priority=_round(step.priority, 6),
        best_score=_round(step.best_score),
        cue=step.cue,
        kind=step.kind,
    )
    if step.heatmap is not None:  # kept only when SearchConfig.trace_heatmaps asks
        record["heatmap"] = step.heatmap
    return record


def outcome_from_result(result: SearchResult) -> TargetOutcome:
    return TargetOutcome(
        target=result.target,
        found=result.found,
        box=_box_list(result.box),
        confidence=_round(result.confidence),
        instances=[
            {"box": _box_list(inst.box), "score": _round(inst.score)} for inst in result.instances
        ],
        stop_reason=result.stop_reason,
        message=result.message,
        patches_scored=result.patches_scored,
        forward_passes=result.forward_passes,
        elapsed_s=round(result.elapsed_s, 4),
        context_phrase=next((s.context_phrase for s in result.trace if s.context_phrase), None),
        trace=[step_record(s) for s in result.trace],
        fallback=result.fallback,
        confirmations=result.confirmations,
        dismissed=result.dismissed,
    )


__all__ = ["outcome_from_result", "step_record"]
