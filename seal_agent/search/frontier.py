"""The queue of patches still to visit, one class per visiting order.

The strategies share the tree, the visit and the stopping rules and differ only here,
in which queued patch is scored next, so a benchmark compares orders and nothing else.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from seal_agent.imaging.geometry import Box
from seal_agent.search.priority import HeatmapMass

NodeKind = Literal["root", "split", "zoom", "tile", "confirm"]


@dataclass(slots=True)
class Node:
    """A patch waiting in the frontier."""

    patch: Box
    level: int  # 1 = the whole image
    parent: int | None  # trace index of the patch it came from
    priority: float | None = None
    kind: NodeKind = "split"
    # For a "confirm" node: index of the pending candidate (engine-side) it confirms.
    confirms: int | None = None
    # A speculative view that rides along where a pass has room (Frontier.push_spare).
    spare: bool = False
    # A closer look on a guess (the peak of a map whose target cue is below its
    # threshold): it shares its forward pass with what the search would score next.
    guess: bool = False
    # Cue heatmaps of the parent and all its ancestors, for the children's priorities.
    lineage: tuple[HeatmapMass, ...] = field(default=())


class Frontier:
    """Base: an urgent lane (candidate zooms) served before the order's own queue."""

    def __init__(self) -> None:
        self._urgent: deque[Node] = deque()
        self._spare: list[Node] = []

    def push_urgent(self, node: Node) -> None:
        self._urgent.append(node)

    def push_spare(self, nodes: list[Node], keep: int) -> None:
        """Queue nodes worth a look only where a forward pass has room to spare.

        They never start a batch and never count in ``len``; the ``keep`` with the
        highest priority are kept (newest first among equals), so the lane is bounded.
        """
        self._spare = sorted([*nodes, *self._spare], key=lambda n: -(n.priority or 0.0))[
            : max(0, keep)
        ]

    def pop_spare(self, limit: int, wanted: Callable[[Node], bool]) -> list[Node]:
        """Up to ``limit`` spare nodes, best first, that ``wanted`` still accepts (the
        others are dropped: a spare node is a guess, stale once its place was seen)."""
        taken: list[Node] = []
        kept: list[Node] = []
        for node in self._spare:
            if len(taken) < limit and wanted(node):
                taken.append(node)
            elif len(taken) >= limit:
                kept.append(node)
        self._spare = kept
        return taken

    def push_children(self, children: list[Node]) -> None:
        raise NotImplementedError

    def _pop(self) -> Node:
        raise NotImplementedError

    def _size(self) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._urgent) + self._size()

    def pop(self) -> Node:
        if self._urgent:
            return self._urgent.popleft()
        return self._pop()

    def _peek(self) -> Node:
        raise NotImplementedError

    def pop_batch(
        self,
        limit: int,
        only: frozenset[str] | None = None,
        tie_ratio: float | None = None,
        urgent_together: bool = False,
    ) -> list[Node]:
        """Up to ``limit`` nodes, in visiting order (to score in one forward pass).

        With ``only``, a batch grows past its first node only while that node and the
        next ones in order are of those kinds (a best-first search batches its native
        tiles and visits its tree patches one by one), or, with ``tie_ratio``, while
        the next node's priority is at least that share of the first's (a near tie:
        the order between them is a coin flip anyway), whatever the kinds of the two
        (a tile and a tree patch that tie share a pass); urgent nodes then go alone,
        or, with ``urgent_together``, all in one batch.
        """
        if only is None:
            batch: list[Node] = []
            while len(batch) < limit and len(self):
                batch.append(self.pop())
            return batch
        if not len(self):
            return []
        if self._urgent:
            batch = [self._urgent.popleft()]
            while urgent_together and len(batch) < limit and self._urgent:
                batch.append(self._urgent.popleft())
            return batch
        first = self._pop()
        batch = [first]
        floor = None
        if tie_ratio is not None and first.priority is not None and first.priority > 0:
            floor = tie_ratio * first.priority
        while len(batch) < limit and self._size():
            nxt = self._peek()
            tied = floor is not None and nxt.priority is not None and nxt.priority >= floor
            if not (tied or (first.kind in only and nxt.kind in only)):
                break
            batch.append(self._pop())
        return batch


class BestFirstFrontier(Frontier):
    """One global priority queue (the reference's): highest priority first, ties FIFO."""

    def __init__(self) -> None:
        super().__init__()
        self._heap: list[tuple[float, int, Node]] = []
        self._counter = itertools.count()

    def push_children(self, children: list[Node]) -> None:
        for child in children:
            priority = child.priority if child.priority is not None else 0.0
            heapq.heappush(self._heap, (-priority, next(self._counter), child))

    def _pop(self) -> Node:
        return heapq.heappop(self._heap)[2]

    def _peek(self) -> Node:
        return self._heap[0][2]

    def _size(self) -> int:
        return len(self._heap)


class FifoFrontier(Frontier):
    """Sequential breadth-first: children in raster order, first in first out."""

    def __init__(self) -> None:
        super().__init__()
        self._queue: deque[Node] = deque()

    def push_children(self, children: list[Node]) -> None:
        self._queue.extend(children)

    def _pop(self) -> Node:
        return self._queue.popleft()

    def _peek(self) -> Node:
        return self._queue[0]

    def _size(self) -> int:
        return len(self._queue)


class LifoFrontier(Frontier):
    """Depth-first: the first child (raster order, or shuffled) is explored first."""

    def __init__(self, rng: random.Random | None = None) -> None:
        super().__init__()
        self._stack: list[Node] = []
        self._rng = rng

    def push_children(self, children: list[Node]) -> None:
        ordered = list(children)
        if self._rng is not None:
            self._rng.shuffle(ordered)
        self._stack.extend(reversed(ordered))

    def _pop(self) -> Node:
        return self._stack.pop()

    def _peek(self) -> Node:
        return self._stack[-1]

    def _size(self) -> int:
        return len(self._stack)


class RandomLevelFrontier(Frontier):
    """Breadth-first level by level, in random order within a level."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self._levels: dict[int, list[Node]] = {}
        self._rng = rng
        self._count = 0

    def push_children(self, children: list[Node]) -> None:
        for child in children:
            self._levels.setdefault(child.level, []).append(child)
            self._count += 1

    def _pop(self) -> Node:
        level = min(lv for lv, nodes in self._levels.items() if nodes)
        nodes = self._levels[level]
        index = self._rng.randrange(len(nodes))
        nodes[index], nodes[-1] = nodes[-1], nodes[index]
        self._count -= 1
        return nodes.pop()

    def _size(self) -> int:
        return self._count


def make_frontier(strategy: str, seed: int) -> Frontier:
    """The frontier that realises ``strategy``'s visiting order."""
    if strategy in ("vstar", "seal"):
        return BestFirstFrontier()
    if strategy in ("bfs", "sliding-window"):
        return FifoFrontier()
    if strategy == "dfs":
        return LifoFrontier()
    if strategy == "random-dfs":
        return LifoFrontier(random.Random(seed))
    if strategy == "random-bfs":
        return RandomLevelFrontier(random.Random(seed))
    raise ValueError(f"unknown strategy {strategy!r}")


__all__ = [
    "BestFirstFrontier",
    "FifoFrontier",
    "Frontier",
    "LifoFrontier",
    "Node",
    "NodeKind",
    "RandomLevelFrontier",
    "make_frontier",
]
