"""What one search run holds: its small records, and the state every part of the run
reads and writes (declared once on ``RunState``, so each part's mixin is typed
against the same fields that ``engine._SearchRun`` sets up)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

from seal_agent.imaging.geometry import Box, ViewTransform
from seal_agent.search.config import SearchConfig, Strategy
from seal_agent.search.frontier import Frontier, Node
from seal_agent.search.protocol import ModelThresholds, PatchPrediction
from seal_agent.search.result import ScoredBox, StopReason, TraceStep

#: Views within this factor of the image's own pixels count as native detail.
NATIVE_TOLERANCE = 1.02
#: A detection in a confirmation view is the pending box seen again when their overlap
#: covers at least this share of the smaller box (a coarse view's box of a small object
#: is loose, so IoU would be too strict); a box elsewhere in the window is another box.
SAME_OBJECT_OVERLAP = 0.3


@dataclass(frozen=True, slots=True)
class _Det:
    """A detection in original-image pixels (light: a model may return hundreds)."""

    box: Box
    score: float


@dataclass(slots=True)
class _Candidate:
    """A sub-threshold box kept as the fallback answer."""

    box: Box
    score: float
    step: int
    detail: float  # view px per image px (<= 1) of the view it was seen in
    superseded: bool = False
    dismissed: bool = False  # a confident box its native-detail confirmation rejected
    instances: list[ScoredBox] | None = None  # root instances, kept until confirmed


@dataclass(slots=True)
class _Hit:
    box: Box
    score: float
    step: int
    instances: list[ScoredBox]
    first: float | None = None  # the first look's score, for a box a second view confirmed

    @property
    def strength(self) -> float:
        """The weaker of its looks: both had to clear ``confidence_high``."""
        return self.score if self.first is None else min(self.score, self.first)


class _StopSearchError(Exception):
    """Ends a run early with a reason (budget, deadline, model fault)."""

    def __init__(self, reason: StopReason, message: str) -> None:
        super().__init__(message)
        self.reason: StopReason = reason
        self.message = message


def _same_object(a: Box, b: Box) -> bool:
    """Whether two boxes show one object (overlap over the smaller box's area)."""
    smaller = min(a.area, b.area)
    return smaller > 0 and a.intersection(b).area >= SAME_OBJECT_OVERLAP * smaller


class RunState:
    """The fields of one search run (set by ``engine._SearchRun.__init__``) and the
    driver's methods the other parts call: declarations only, for the type checker."""

    cfg: SearchConfig
    th: ModelThresholds
    strategy: Strategy
    is_seal: bool
    guided: bool
    width: int
    height: int
    target: str
    input_size: int
    frontier: Frontier
    trace: list[TraceStep]
    candidates: list[_Candidate]
    zoom_windows: list[Box]
    patches_scored: int
    forward_passes: int
    notes: list[str]
    overlap: float
    batch_size: int
    speculate: bool
    ride_along: bool
    max_upsample: float
    score_range: tuple[float, float]
    confirm: bool
    second_look: bool
    framing_invariant: bool
    confirmations: int
    dismissed: int
    pending: dict[int, _Candidate]
    held: _Hit | None
    native_seen: list[_Det]
    second_looks: list[_Det]
    stop_rule: bool
    zoom_floor: float

    if TYPE_CHECKING:

        def _elapsed(self) -> float: ...

        def _predict(
            self,
            views: Sequence[Image.Image],
            phrases: Sequence[str],
            frames: Sequence[ViewTransform],
        ) -> list[list[PatchPrediction]]: ...

        def _context(self, view: Image.Image | None = None) -> str | None: ...

        def _push_zoom(
            self,
            window: Box,
            node: Node,
            index: int,
            around: Box | None = None,
            guess: bool = False,
        ) -> None: ...
