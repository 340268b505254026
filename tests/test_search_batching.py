"""How vstar fills its forward passes: spare windows riding along near-tied patches."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from search_fakes import ORACLE_THRESHOLDS, VirtualPyramid

from seal_agent.imaging.geometry import Box, ViewTransform
from seal_agent.search import engine as engine_module
from seal_agent.search.config import SearchConfig
from seal_agent.search.engine import VStarSearch
from seal_agent.search.frontier import BestFirstFrontier, Node
from seal_agent.search.protocol import Detection, ModelThresholds, PatchPrediction

UNLIMITED = {"max_calls": None, "deadline_s": None}


@dataclass
class HintModel:
    """A weak map (below every cue threshold) bright at ``hints``; the target is seen
    only at native detail, and only the part of it inside the view (a cut object)."""

    pyramid: VirtualPyramid
    target: Box
    hints: list[tuple[float, float]]
    input_size: int = 512
    grid: int = 64
    thresholds: ModelThresholds = ORACLE_THRESHOLDS
    calls: list[list[Box]] = field(default_factory=list)
    # A geometric oracle: its boxes do not come and go with the framing, so the
    # second native look (test_search_second_look.py) is not what these tests count.
    framing_invariant: bool = True

    def predict(
        self, views: Sequence[Image.Image], phrases: Sequence[str]
    ) -> list[list[PatchPrediction]]:
        patches = self.pyramid.viewed[-len(views) :]
        self.calls.append(list(patches))
        out = []
        for view, patch in zip(views, patches, strict=True):
            frame = ViewTransform(patch, view.width, view.height)
            heat = np.full((self.grid, self.grid), 0.001, dtype=np.float32)
            for x, y in self.hints:
                if patch.x1 <= x < patch.x2 and patch.y1 <= y < patch.y2:
                    c = int((x - patch.x1) / patch.width * self.grid)
                    r = int((y - patch.y1) / patch.height * self.grid)
                    heat[r, c] = 0.2
            dets = []
            visible = self.target.intersection(patch)
            if min(frame.scale_x, frame.scale_y) >= 0.9 and not visible.is_empty:
                dets.append(Detection(frame.to_view(visible), 0.9))
            out.append([PatchPrediction(tuple(dets), heat) for _ in phrases])
        return out


def run(target: Box, hints: list[tuple[float, float]], **config: object):
    # The weak map has no context cue to mix in, so signal-aware descent would queue
    # native tiles in raster order under it; these tests are about the tree descent's
    # passes (where spare windows ride along tied patches), so it is switched off.
    config = {"signal_descent": False, **config}
    pyramid = VirtualPyramid(4000, 3000)
    model = HintModel(pyramid, target, hints)
    result = VStarSearch(model, SearchConfig(**{**UNLIMITED, **config})).search(pyramid, "star")
    return result, model


TARGET = Box(2994, 2194, 3006, 2206)
DECOY = (800.0, 700.0)  # as bright as the target on the weak map; nothing there


def test_spare_windows_on_a_weak_maps_bright_places_ride_along_tied_patches() -> None:
    on, on_model = run(TARGET, [TARGET.center, DECOY], peek_windows=True)
    off, _ = run(TARGET, [TARGET.center, DECOY])  # off by default
    assert on.found
    assert off.found
    assert on.box is not None
    assert on.box.iou(TARGET) > 0.9
    assert on.forward_passes < off.forward_passes
    # The root's map gives none (the coarsest view); the tied children's maps do, and
    # their windows share the next pass with the tied grandchildren.
    spare = [s for s in on.trace if s.kind == "zoom" and s.priority is not None]
    assert spare
    assert all(s.level >= 3 for s in spare)
    assert len(on_model.calls[0]) == 1  # the root alone
    shared = [c for c in on_model.calls if any(p.width == 512 for p in c) and len(c) > 2]
    assert shared, "a spare window was scored in a pass of its own"


def test_no_spare_windows_when_batching_is_off() -> None:
    strict, model = run(TARGET, [TARGET.center, DECOY], batch_size=1, peek_windows=True)
    assert all(len(c) == 1 for c in model.calls)
    assert not [s for s in strict.trace if s.kind == "zoom" and s.priority is not None]


def test_a_box_a_spare_window_cuts_at_its_border_is_confirmed_whole() -> None:
    """The map's bright place is off the target, so the window centred on it cuts the
    target at its border; the part is confirmed by a window centred on it first."""
    target = Box(2980, 2180, 3020, 2220)
    hint = (target.center[0] + 256, target.center[1])
    result, _ = run(target, [hint, DECOY], peek_windows=True)
    assert result.found
    assert result.box is not None
    assert result.box.iou(target) > 0.9  # the whole target, not the part first seen
    kinds = [s.kind for s in result.trace]
    assert "confirm" in kinds
    assert kinds.index("confirm") > next(
        i for i, s in enumerate(result.trace) if s.kind == "zoom" and s.priority is not None
    )


def test_the_spare_lane_never_starts_a_batch_and_keeps_its_best() -> None:
    frontier = BestFirstFrontier()
    box = Box(0, 0, 10, 10)
    frontier.push_spare([Node(box, 2, 0, priority=p, kind="zoom") for p in (0.1, 0.3)], keep=3)
    frontier.push_spare([Node(box, 2, 0, priority=p, kind="zoom") for p in (0.2, 0.4)], keep=3)
    assert len(frontier) == 0
    assert frontier.pop_batch(8, frozenset({"tile"}), 0.7) == []
    taken = frontier.pop_spare(1, lambda n: n.priority != 0.4)  # the best is stale
    assert [n.priority for n in taken] == [0.3]
    assert [n.priority for n in frontier.pop_spare(8, lambda n: True)] == [0.2]
    assert frontier.pop_spare(8, lambda n: True) == []


def test_near_tied_tiles_and_tree_patches_share_a_pass() -> None:
    """A tile batch no longer stops at a tied tree patch, nor a tree batch at a tied
    tile; an untied one still waits for its own pass."""
    box = Box(0, 0, 10, 10)
    only = frozenset({"tile"})
    frontier = BestFirstFrontier()
    frontier.push_children(
        [
            Node(box, 3, 0, priority=0.50, kind="tile"),
            Node(box, 3, 0, priority=0.45, kind="split"),
            Node(box, 3, 0, priority=0.40, kind="tile"),
            Node(box, 3, 0, priority=0.10, kind="split"),
        ]
    )
    assert [n.priority for n in frontier.pop_batch(8, only, 0.7)] == [0.50, 0.45, 0.40]
    assert [n.priority for n in frontier.pop_batch(8, only, 0.7)] == [0.10]
    frontier.push_children(
        [
            Node(box, 3, 0, priority=0.50, kind="split"),
            Node(box, 3, 0, priority=0.40, kind="tile"),
            Node(box, 3, 0, priority=0.05, kind="tile"),
        ]
    )
    assert [n.kind for n in frontier.pop_batch(8, only, 0.7)] == ["split", "tile"]
    # Without a tie ratio, tiles still batch among themselves only.
    assert [n.priority for n in frontier.pop_batch(8, only)] == [0.05]


@dataclass
class ClutterModel:
    """Every coarse view holds a sub-threshold candidate at its centre (clutter), which
    no native view confirms: every closer look fails. The map peaks at the centre."""

    pyramid: VirtualPyramid
    input_size: int = 512
    thresholds: ModelThresholds = ORACLE_THRESHOLDS
    calls: list[int] = field(default_factory=list)
    framing_invariant: bool = True  # a geometric oracle (see HintModel)

    def predict(
        self, views: Sequence[Image.Image], phrases: Sequence[str]
    ) -> list[list[PatchPrediction]]:
        patches = self.pyramid.viewed[-len(views) :]
        self.calls.append(len(views))
        out = []
        for view, patch in zip(views, patches, strict=True):
            frame = ViewTransform(patch, view.width, view.height)
            heat = np.zeros((8, 8), dtype=np.float32)
            heat[3:5, 3:5] = 1.0
            dets = []
            if min(frame.scale_x, frame.scale_y) < 0.9:
                cx, cy = patch.center
                box = Box(cx - 15, cy - 15, cx + 15, cy + 15)
                dets.append(Detection(frame.to_view(box), 0.35))
            out.append([PatchPrediction(tuple(dets), heat) for _ in phrases])
        return out


def clutter_passes(invariant: bool = True, **config: object) -> list[list[str]]:
    pyramid = VirtualPyramid(4000, 3000)
    model = ClutterModel(pyramid, framing_invariant=invariant)
    cfg = SearchConfig(**{"max_calls": 80, "deadline_s": None, **config})
    result = VStarSearch(model, cfg).search(pyramid, "star")
    kinds = [str(s.kind) for s in result.trace]
    passes, start = [], 0
    for n in model.calls:
        passes.append(kinds[start : start + n])
        start += n
    return passes


def test_after_failed_closer_looks_they_share_passes_and_take_the_frontier_along() -> None:
    passes = clutter_passes()
    closer = [p for p in passes if {"zoom", "confirm"} & set(p)]
    assert closer[0] == ["zoom"]  # expected to end the search: alone
    assert any(len(p) > 1 and set(p) <= {"zoom", "confirm"} for p in closer)
    assert any({"split", "tile"} & set(p) for p in closer)  # the frontier came along


def test_closer_looks_go_alone_when_told_to(monkeypatch) -> None:
    monkeypatch.setattr(engine_module, "URGENT_TOGETHER_AFTER", {False: 10**6, True: 10**6})
    monkeypatch.setattr(engine_module, "FRONTIER_ALONG_AFTER", 10**6)
    passes = clutter_passes(full_batches_after=None)
    assert all(len(p) == 1 for p in passes if {"zoom", "confirm"} & set(p))
    assert all(len(p) == 1 for p in clutter_passes(batch_size=1))


def test_a_long_search_fills_its_passes_up_to_batch_size() -> None:
    """After full_batches_after passes, near-ties no longer decide what shares a pass
    (a model that is not framing_invariant; an invariant one's maps keep steering)."""
    free = clutter_passes(False, full_batches_after=None)
    full = clutter_passes(False, full_batches_after=3)
    assert free[:3] == full[:3]
    assert all(len(p) == 8 for p in full[3:-1])  # the last one may be cut by max_calls
    assert any(len(p) < 8 for p in free[3:-1])  # near-ties only: passes with room left
    assert clutter_passes(True, full_batches_after=3) == clutter_passes(
        True, full_batches_after=None
    )


def test_pop_batch_takes_every_urgent_node_together_only_when_asked() -> None:
    frontier = BestFirstFrontier()
    box = Box(0, 0, 10, 10)
    frontier.push_children([Node(box, 2, 0, priority=0.9, kind="split")])
    for _ in range(3):
        frontier.push_urgent(Node(box, 3, 1, kind="zoom"))
    assert len(frontier.pop_batch(8, frozenset({"tile"}), 0.7)) == 1
    assert len(frontier.pop_batch(8, frozenset({"tile"}), 0.7, urgent_together=True)) == 2
    assert [n.kind for n in frontier.pop_batch(8, frozenset({"tile"}), 0.7)] == ["split"]


def test_search_passes_labels_each_pass_with_its_views_kinds() -> None:
    """The benchmark that shows where passes go (benchmarks/search_passes.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import search_passes

    calls = [(1, ("star",)), (1, ("table",)), (3, ("star", "table")), (1, ("star", "table"))]
    steps = ["root", "split", "split", "tile", "zoom"]
    sequence = search_passes.pass_kinds(calls, steps, "star")
    assert sequence == ["root", "context", "split+split+tile", "zoom"]
    assert search_passes.collapse(sequence) == "root | context | splits+tile | zoom"


def test_a_trusted_weak_maps_single_peak_is_looked_at_with_the_next_batch() -> None:
    """A framing_invariant model's map that singles out one place below the cue threshold
    gets a native window there (a guess), scored in the pass of the root's best child, so
    a right guess ends the search in two passes and a wrong one costs a patch."""
    right, model = run(TARGET, [TARGET.center], signal_descent=True, guess_windows=True)
    assert right.found
    assert right.box == TARGET
    assert right.forward_passes == 2
    kinds = [s.kind for s in right.trace]
    assert kinds[0] == "root"
    assert sorted(kinds[1:]) == ["split", "zoom"]  # the guess and the best child
    assert len(model.calls[1]) == 2
    wrong, wrong_model = run(TARGET, [DECOY], signal_descent=True, guess_windows=True)
    assert wrong.found
    assert len(wrong_model.calls[1]) == 2  # the wrong guess cost no pass of its own
    assert wrong.trace[1].kind == "zoom"
    assert wrong.trace[1].best_score is None


def test_no_pass_asks_for_more_views_than_one_forward_of_the_model_takes() -> None:
    """A model's declared max_batch_size caps every batch (the sliding window's tiles,
    vstar's near-tied patches, closer looks and full batches), so the search's pass count
    is the model's forward count; SearchConfig.batch_size still overrides it."""
    for strategy in ("vstar", "sliding-window"):
        pyramid = VirtualPyramid(4000, 3000)
        model = ClutterModel(pyramid, framing_invariant=False)
        model.max_batch_size = 3  # type: ignore[attr-defined]
        cfg = SearchConfig(strategy=strategy, max_calls=60, deadline_s=None)
        result = VStarSearch(model, cfg).search(pyramid, "star")
        assert max(model.calls) == 3, strategy
        assert result.forward_passes == len(model.calls)
        uncapped = ClutterModel(VirtualPyramid(4000, 3000), framing_invariant=False)
        VStarSearch(uncapped, cfg).search(uncapped.pyramid, "star")
        assert max(uncapped.calls) == engine_module.DEFAULT_BATCH, strategy
    pyramid = VirtualPyramid(4000, 3000)
    model = ClutterModel(pyramid, framing_invariant=False)
    model.max_batch_size = 3  # type: ignore[attr-defined]
    cfg = SearchConfig(strategy="sliding-window", batch_size=6, max_calls=60, deadline_s=None)
    VStarSearch(model, cfg).search(pyramid, "star")
    assert max(model.calls) == 6
    big = ClutterModel(VirtualPyramid(4000, 3000), framing_invariant=False)
    big.max_batch_size = 64  # type: ignore[attr-defined]
    VStarSearch(big, SearchConfig(strategy="sliding-window", max_calls=60)).search(
        big.pyramid, "star"
    )
    assert max(big.calls) == engine_module.DEFAULT_BATCH  # never above the default
