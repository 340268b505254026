"""Issue 7 on real detectors: when a confirmed box ends a vstar search.

A fallible detector (not ``framing_invariant``) shows false boxes that survive two
differently framed native looks. Such a box ends the search only once it stands out
from everything else the detector has shown at native detail, and once no box still
awaiting its confirmation scored above it; until then it is held, and a budget stop
or an exhausted frontier returns it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from search_fakes import ORACLE_THRESHOLDS, VirtualPyramid

from seal_agent.imaging.geometry import Box, ViewTransform
from seal_agent.search.config import SearchConfig
from seal_agent.search.engine import VStarSearch
from seal_agent.search.protocol import Detection, ModelThresholds, PatchPrediction

UNLIMITED = {"max_calls": None, "deadline_s": None}
#: The Haar detector's operating point: confident above 0.8, a fallback from 0.5.
STEADY_THRESHOLDS = ORACLE_THRESHOLDS.model_copy(
    update={"confidence_high": 0.8, "confidence_low": 0.5}
)


@dataclass
class SteadyDetector:
    """Sees each of ``boxes`` at its score in every native view holding it whole, however
    framed (a false box that survives reframing, as the Haar cascade's textures do);
    blind at coarse views; flat heatmaps. Not ``framing_invariant``."""

    pyramid: VirtualPyramid
    boxes: dict[Box, float]
    input_size: int = 512
    thresholds: ModelThresholds = STEADY_THRESHOLDS
    batches: list[list[Box]] = field(default_factory=list)
    # boxes seen only in the first native view that holds them (gone when reframed)
    fickle: dict[Box, float] = field(default_factory=dict)
    seen: set[Box] = field(default_factory=set)

    def predict(
        self, views: Sequence[Image.Image], phrases: Sequence[str]
    ) -> list[list[PatchPrediction]]:
        patches = self.pyramid.viewed[-len(views) :]
        self.batches.append(list(patches))
        out = []
        for view, patch in zip(views, patches, strict=True):
            frame = ViewTransform(patch, view.width, view.height)
            dets: list[Detection] = []
            if frame.scale_x >= 0.9:
                dets = [
                    Detection(frame.to_view(box), score)
                    for box, score in self.boxes.items()
                    if patch.contains(box)
                ]
                for box, score in self.fickle.items():
                    if patch.contains(box) and box not in self.seen:
                        self.seen.add(box)
                        dets.append(Detection(frame.to_view(box), score))
            out.append([PatchPrediction(tuple(dets), np.zeros((8, 8))) for _ in phrases])
        return out


TARGET = Box(1500, 1200, 1540, 1240)  # in the last row of native tiles: met last
FALSE = Box(900, 150, 940, 190)  # in the first row: met first, confirmed twice
CLUTTER = Box(150, 150, 190, 190)  # a sub-threshold box in the first tile


def _search(
    boxes: dict[Box, float],
    strategy: str = "vstar",
    fickle: dict[Box, float] | None = None,
    **config: object,
):
    pyramid = VirtualPyramid(2000, 1500)
    model = SteadyDetector(pyramid, boxes, fickle=fickle or {})
    settings = SearchConfig(strategy=strategy, **{**UNLIMITED, **config})  # type: ignore[arg-type]
    return VStarSearch(model, settings).search(pyramid, "face"), model


def test_a_confirmed_box_that_does_not_stand_out_is_held_and_a_clearer_one_wins() -> None:
    """0.85 twice, after a 0.75 elsewhere: not clearly the detector's best; the target's
    0.97 later is (log-odds 3.5 against 1.7)."""
    boxes = {CLUTTER: 0.75, FALSE: 0.85, TARGET: 0.97}
    result, _ = _search(boxes)
    assert result.found
    assert result.stop_reason == "found"
    assert result.box == TARGET
    # the sliding window, which stops at its first twice-confirmed box, takes the false one
    baseline, _ = _search(boxes, "sliding-window")
    assert baseline.box == FALSE
    # unless it is given the rule too (an ablation)
    holding, _ = _search(boxes, "sliding-window", hold_until_clear=True)
    assert holding.box == TARGET
    # and vstar without it stops at the false box
    plain, _ = _search(boxes, hold_until_clear=False)
    assert plain.box == FALSE


def test_a_box_that_stands_out_ends_the_search_at_once() -> None:
    """Nothing else near its score: the first twice-confirmed box ends the search."""
    result, _ = _search({CLUTTER: 0.2, FALSE: 0.9, TARGET: 0.97})
    assert result.box == FALSE
    first_tiles = 1 + 8  # the root and the first batch of tiles hold it
    assert result.patches_scored <= first_tiles + 2  # + its second look, + nothing else


def test_the_stronger_of_two_held_boxes_is_returned_when_the_frontier_runs_out() -> None:
    """No box ever stands out: every tile is scored, then the stronger confirmed box."""
    result, _ = _search({CLUTTER: 0.8, FALSE: 0.85, TARGET: 0.88})
    assert result.found
    assert not result.fallback
    assert result.box == TARGET
    assert result.patches_scored > 20  # every native tile of the 2000x1500 image


def test_a_budget_stop_returns_the_held_box() -> None:
    result, _ = _search({CLUTTER: 0.8, FALSE: 0.85}, max_calls=14)
    assert result.found
    assert result.stop_reason == "budget"
    assert result.box == FALSE
    assert result.patches_scored == 14


def test_a_pending_box_that_scored_higher_is_confirmed_before_stopping() -> None:
    """Two confident boxes in one batch of tiles: the weaker one's confirmation may come
    first, but the search stops only once the stronger one was looked at again."""
    weaker = Box(200, 200, 240, 240)
    stronger = Box(1000, 200, 1040, 240)
    result, model = _search({weaker: 0.9, stronger: 0.99})
    assert result.box == stronger
    confirmed = [b for batch in model.batches for b in batch if b.contains(stronger)]
    assert len(confirmed) >= 2  # its tile and its own second look


def test_a_framing_invariant_model_stops_at_its_first_confident_box() -> None:
    @dataclass
    class Trusted(SteadyDetector):
        framing_invariant: bool = True

    pyramid = VirtualPyramid(2000, 1500)
    model = Trusted(pyramid, {CLUTTER: 0.75, FALSE: 0.85, TARGET: 0.97})
    result = VStarSearch(model, SearchConfig(**UNLIMITED)).search(pyramid, "face")
    assert result.box == FALSE  # trusted: never confidently wrong, so no holding


def test_a_box_its_second_look_dismissed_counts_at_that_look() -> None:
    """A 0.95 box that a second framing does not repeat is no rival: the face seen at
    0.88 twice after it stands out (against what was left of it) and ends the search at
    once; a steady 0.8 rival keeps it held until every tile was scored."""
    middle = Box(1000, 700, 1040, 740)
    result, _ = _search({middle: 0.88}, fickle={CLUTTER: 0.95})
    assert result.box == middle
    assert result.dismissed == 1
    assert result.patches_scored < 20
    held, _ = _search({CLUTTER: 0.8, middle: 0.88})
    assert held.box == middle
    assert held.patches_scored > 20
