"""The protocol of a run: which items, in which option order, under which seeds.

Published numbers disagree by several points on the same model because of protocol
alone, so every choice here is explicit and recorded with the results:

* ``official`` keeps each item's options as published; ``shuffled`` draws an order per
  (seed, item) that every system in the run shares.
* ``seeds`` repeats the run; reports give the mean and standard deviation over seeds.
* ``limit`` samples across subsets (and HR-Bench cycles), not the first subset's items.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

from seal_agent.evaluation.items import EvalItem

Order = Literal["official", "shuffled"]
ORDERS: tuple[Order, ...] = ("official", "shuffled")


def shown_options(item: EvalItem, order: Order, seed: int) -> tuple[list[str], int]:
    """The options as shown for this item under ``order`` and ``seed``, and the correct index."""
    if order == "official":
        return list(item.options), item.correct_index
    if order != "shuffled":
        raise ValueError(f"unknown option order {order!r}; expected one of {list(ORDERS)}")
    permutation = list(range(len(item.options)))
    random.Random(f"{seed}:{item.id}").shuffle(permutation)
    return [item.options[i] for i in permutation], permutation.index(item.correct_index)


def sample_items(items: Sequence[EvalItem], limit: int | None, seed: int = 0) -> list[EvalItem]:
    """At most ``limit`` items drawn evenly across strata, in the dataset's order.

    Each stratum (category, and cycle where there is one) is shuffled with ``seed`` and
    the strata are dealt round-robin, so ``limit=40`` on V*Bench takes 20 attribute and
    20 spatial items, not the first 40 attribute ones.
    """
    if limit is None or limit >= len(items):
        return list(items)
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    strata: dict[str, list[int]] = {}
    for position, item in enumerate(items):
        strata.setdefault(item.stratum, []).append(position)
    rng = random.Random(f"limit:{seed}")
    queues = [rng.sample(positions, len(positions)) for _, positions in sorted(strata.items())]
    chosen: list[int] = []
    while len(chosen) < limit:
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(queue.pop())
    return [items[i] for i in sorted(chosen)]


def run_seeds(n: int) -> list[int]:
    """The seeds of ``--seeds N``: 0 .. N-1."""
    if n < 1:
        raise ValueError(f"seeds must be at least 1, got {n}")
    return list(range(n))


__all__ = ["ORDERS", "Order", "run_seeds", "sample_items", "shown_options"]
