"""Run a system over V*Bench-format items and score it.

A system is an ``Answerer``: given an item and the options in the order shown, it
returns which of the shown options it chose. Three are provided: the SEAL graph, a chat
model answering from the global image alone (the no-search baseline), and random
guessing; ``likelihood_answerer`` scores options by likelihood for models that can.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage
from pydantic import BaseModel, Field

from seal_agent.evaluation.dataset import VStarItem
from seal_agent.evaluation.scoring import (
    CategoryScore,
    OptionScorer,
    chance_accuracy,
    present_options,
    summarise,
)
from seal_agent.graph.parsing import parse_option_choice
from seal_agent.graph.prompts import format_options
from seal_agent.imaging.geometry import Box
from seal_agent.imaging.loading import encoded_global_view, load_image, to_image_ref


class Prediction(BaseModel):
    """What a system answered for one item; ``choice`` indexes the options as shown."""

    choice: int | None
    answer: str = ""
    patches_scored: int = 0
    targets_searched: int = 0
    targets_localised: int = Field(0, description="searched targets found with IoU > 0.5")
    targets_annotated: int = 0


Answerer = Callable[[VStarItem, list[str]], Prediction]


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


# -- systems -------------------------------------------------------------------------------
def _localised(item: VStarItem, searches: dict[str, Any]) -> tuple[int, int]:
    """(annotated targets a search found with IoU > 0.5, annotated targets searched for)."""
    hits = searched = 0
    for name, truth in zip(item.target_objects, item.target_boxes, strict=False):
        pattern = re.compile(rf"\b{re.escape(name.lower())}\b")
        outcome = next((o for t, o in searches.items() if pattern.search(t.lower())), None)
        if outcome is None:
            continue
        searched += 1
        if outcome["found"] and outcome["box"] and Box(*outcome["box"]).iou(truth) > 0.5:
            hits += 1
    return hits, searched


def graph_answerer(graph: Any, *, context: Any = None) -> Answerer:
    """The SEAL graph; ``context`` is passed as the per-call settings."""

    def answer(item: VStarItem, shown: list[str]) -> Prediction:
        out = graph.invoke(
            {"image": str(item.image_path), "question": item.question, "options": shown},
            context=context,
        )
        searches: dict[str, Any] = out.get("searches") or {}
        hits, searched = _localised(item, searches)
        return Prediction(
            choice=out.get("choice"),
            answer=str(out.get("answer", "")),
            patches_scored=sum(o["patches_scored"] for o in searches.values()),
            targets_searched=len(searches),
            targets_localised=hits,
            targets_annotated=searched,
        )

    return answer


def _global_message(
    item: VStarItem, text: str, max_side: int, image_format: str
) -> list[BaseMessage]:
    ref, pyramid = load_image(to_image_ref(item.image_path))
    data = encoded_global_view(ref, pyramid, max_side, image_format)  # type: ignore[arg-type]
    block = {"type": "image", "base64": data, "mime_type": f"image/{image_format}"}
    return [HumanMessage(content=[block, {"type": "text", "text": text}])]


def direct_answerer(
    model: BaseChatModel, *, max_side: int = 1024, image_format: str = "png"
) -> Answerer:
    """The chat model answering from the global image alone, with lettered options."""

    def answer(item: VStarItem, shown: list[str]) -> Prediction:
        text = f"{item.question}\n{format_options(shown)}"
        reply = model.invoke(_global_message(item, text, max_side, image_format)).text
        return Prediction(choice=parse_option_choice(reply, shown), answer=reply)

    return answer


def likelihood_answerer(
    model: OptionScorer, *, max_side: int = 1024, image_format: str = "png"
) -> Answerer:
    """The paper's scoring for open models: the option with the lowest mean token loss."""
    if not isinstance(model, OptionScorer):
        raise TypeError(f"{type(model).__name__} cannot score options (no score_options)")

    def answer(item: VStarItem, shown: list[str]) -> Prediction:
        messages = _global_message(item, item.question, max_side, image_format)
        losses = model.score_options(messages, shown)
        if len(losses) != len(shown):
            raise ValueError(f"score_options returned {len(losses)} losses for {len(shown)}")
        best = min(range(len(shown)), key=lambda i: losses[i])
        return Prediction(choice=best, answer=shown[best])

    return answer


def random_answerer(seed: int = 0) -> Answerer:
    """Uniform guessing (seeded per item), the chance baseline."""

    def answer(item: VStarItem, shown: list[str]) -> Prediction:
        return Prediction(choice=random.Random(f"random:{seed}:{item.id}").randrange(len(shown)))

    return answer


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
