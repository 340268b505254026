"""Score one system over V*Bench-format items in memory (the library's simple path).

``seal-agent eval`` and ``evaluation.run`` add what long runs need (resume, workers,
seeds, Ray); this is the plain loop the benchmarks use. The answerers live in
``evaluation.systems`` and are re-exported here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from pydantic import BaseModel, Field

from seal_agent.evaluation.dataset import VStarItem
from seal_agent.evaluation.records import Prediction
from seal_agent.evaluation.scoring import (
    CategoryScore,
    chance_accuracy,
    present_options,
    summarise,
)
from seal_agent.evaluation.systems import (
    Answerer,
    direct_answerer,
    graph_answerer,
    likelihood_answerer,
    random_answerer,
)


class ItemResult(BaseModel):
    id: str
    category: str
    question: str
    shown_options: list[str]
    correct_index: int
    prediction: Prediction
    correct: bool
    elapsed_s: float


class EvaluationReport(BaseModel):
    system: str
    seed: int
    scores: dict[str, CategoryScore]
    chance: dict[str, float]
    mean_patches_scored: float
    localisation_rate: float | None = Field(
        None, description="percent of annotated targets a search found with IoU > 0.5"
    )
    wall_s: float
    mean_s_per_item: float
    items: list[ItemResult]


def evaluate(
    items: Sequence[VStarItem],
    answerer: Answerer,
    *,
    system: str,
    seed: int = 0,
    on_item: Callable[[ItemResult], None] | None = None,
) -> EvaluationReport:
    """Score ``answerer`` on ``items``; options are shuffled per item (seeded)."""
    results: list[ItemResult] = []
    started = time.perf_counter()
    for item in items:
        shown, correct_index = present_options(item.id, item.options, seed)
        t0 = time.perf_counter()
        prediction = answerer(item, shown)
        result = ItemResult(
            id=item.id,
            category=item.category,
            question=item.question,
            shown_options=shown,
            correct_index=correct_index,
            prediction=prediction,
            correct=prediction.choice == correct_index,
            elapsed_s=round(time.perf_counter() - t0, 4),
        )
        results.append(result)
        if on_item is not None:
            on_item(result)
    wall = time.perf_counter() - started
    annotated = sum(r.prediction.targets_annotated for r in results)
    localised = sum(r.prediction.targets_localised for r in results)
    n = max(1, len(results))
    return EvaluationReport(
        system=system,
        seed=seed,
        scores=summarise([(r.category, r.correct) for r in results]),
        chance=chance_accuracy([(item.category, len(item.options)) for item in items]),
        mean_patches_scored=round(sum(r.prediction.patches_scored for r in results) / n, 2),
        localisation_rate=round(100.0 * localised / annotated, 2) if annotated else None,
        wall_s=round(wall, 3),
        mean_s_per_item=round(wall / n, 4),
        items=results,
    )


# -- reporting -----------------------------------------------------------------------------
def format_table(reports: Sequence[EvaluationReport]) -> str:
    """A V*Bench-style table: attribute / spatial / overall accuracy (%), plus cost."""
    categories = ["attribute", "spatial", "overall"]
    header = (
        f"| {'system':<34} | "
        + " | ".join(f"{c:>9}" for c in categories)
        + " | patches/q | located | s/q    |"
    )
    rule = "|" + "-" * 36 + "|" + "|".join("-" * 11 for _ in categories) + "|" + "-" * 11
    rule += "|" + "-" * 9 + "|" + "-" * 8 + "|"
    lines = [header, rule]
    for report in reports:
        cells = []
        for c in categories:
            score = report.scores.get(c)
            cells.append(f"{score.accuracy:>9.2f}" if score else f"{'-':>9}")
        located = "-" if report.localisation_rate is None else f"{report.localisation_rate:.1f}%"
        lines.append(
            f"| {report.system:<34} | "
            + " | ".join(cells)
            + f" | {report.mean_patches_scored:>9.2f} | {located:>7}"
            + f" | {report.mean_s_per_item:>6.2f} |"
        )
    counts = reports[0].scores if reports else {}
    lines.append("items: " + ", ".join(f"{c} {counts[c].n}" for c in categories if c in counts))
    return "\n".join(lines)


__all__ = [
    "Answerer",
    "EvaluationReport",
    "ItemResult",
    "Prediction",
    "direct_answerer",
    "evaluate",
    "format_table",
    "graph_answerer",
    "likelihood_answerer",
    "random_answerer",
]
