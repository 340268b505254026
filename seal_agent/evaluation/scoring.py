"""Multiple-choice scoring as in the V* paper.

Chat models see the options shuffled (seeded per item) and labelled with letters, and
must answer with a letter: showing the correct option first, as the files store it,
inflates scores by about 4 points. Models that can score text likelihoods (the paper's
way for open models) pick the option with the lowest mean token loss instead; order
does not matter there.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from langchain_core.messages import BaseMessage
from pydantic import BaseModel, Field


@runtime_checkable
class OptionScorer(Protocol):
    """A chat model that can score answers: mean token loss of each option (lower = likelier)
    as the continuation of ``messages``."""

    def score_options(
        self, messages: Sequence[BaseMessage], options: Sequence[str]
    ) -> list[float]: ...


def present_options(item_id: str, options: Sequence[str], seed: int) -> tuple[list[str], int]:
    """The options in the order shown for this item, and where the correct one went.

    ``options[0]`` is the correct answer. The order depends only on (seed, item id), so
    every system compared in one run sees each question's options in the same order.
    """
    order = list(range(len(options)))
    random.Random(f"{seed}:{item_id}").shuffle(order)
    return [options[i] for i in order], order.index(0)


class CategoryScore(BaseModel):
    n: int
    correct: int
    accuracy: float = Field(description="percent")


def summarise(results: Sequence[tuple[str, bool]]) -> dict[str, CategoryScore]:
    """Accuracy per category and ``overall`` (micro-averaged over items, as V*Bench's)."""
    by_category: dict[str, list[bool]] = {}
    for category, correct in results:
        by_category.setdefault(category, []).append(correct)
    scores = {
        category: _score(values)
        for category, values in sorted(by_category.items(), key=lambda kv: kv[0])
    }
    scores["overall"] = _score([c for _, c in results])
    return scores


def _score(values: Sequence[bool]) -> CategoryScore:
    n = len(values)
    correct = sum(values)
    return CategoryScore(n=n, correct=correct, accuracy=round(100.0 * correct / n, 2) if n else 0.0)


def chance_accuracy(option_counts: Sequence[tuple[str, int]]) -> dict[str, float]:
    """Expected accuracy (percent) of uniform guessing, per category and overall."""
    by_category: dict[str, list[float]] = {}
    for category, n_options in option_counts:
        by_category.setdefault(category, []).append(1.0 / n_options)
    expected = {c: round(100 * sum(v) / len(v), 2) for c, v in sorted(by_category.items())}
    every = [1.0 / n for _, n in option_counts]
    expected["overall"] = round(100 * sum(every) / len(every), 2) if every else 0.0
    return expected


__all__ = [
    "CategoryScore",
    "OptionScorer",
    "chance_accuracy",
    "present_options",
    "summarise",
]
