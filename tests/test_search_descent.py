"""Issue 7's engine rules: confirm before stopping, signal-aware descent with batched
native tiles, budgets that keep what was found, and the optional protocol parts
(``scales=``, ``max_upsample``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from PIL import Image
from search_fakes import ORACLE_THRESHOLDS, GeometricOracle, ScriptedModel, VirtualPyramid, blank

from seal_agent.imaging.geometry import Box
from seal_agent.search import engine as engine_module
from seal_agent.search.config import SearchConfig
from seal_agent.search.engine import VStarSearch
from seal_agent.search.frontier import BestFirstFrontier, Node
from seal_agent.search.protocol import (
    Detection,
    ModelThresholds,
    PatchPrediction,
    accepts_scales,
    declared_max_upsample,
)
from seal_agent.search.signal import peak_cell, peak_share, peak_signal
from seal_agent.search.tiling import native_tiles, sliding_windows

UNLIMITED = {"max_calls": None, "deadline_s": None}


# -- heatmap signal ------------------------------------------------------------------------
def test_peak_signal_tells_a_peak_from_noise_and_flatness() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(32, 32))
    peaked = noise * 0.01
    peaked[10, 20] = 5.0
    assert peak_signal(np.zeros((8, 8))) == 0.0
    assert peak_signal(np.full((8, 8), -3.5)) == 0.0  # a flat logit map
    assert peak_signal(noise) < 1.2
    assert peak_signal(peaked) > 3.0
    # scale-free: logits and probabilities read alike
    assert peak_signal(peaked * 7 - 3) == pytest.approx(peak_signal(peaked))


def test_peak_share_is_high_for_one_place_and_low_for_several() -> None:
    patch = Box(0, 0, 1600, 1600)
    one = np.zeros((16, 16))
    one[3, 4] = 1.0
    cell = peak_cell(one, patch)
    assert cell == Box(400, 300, 500, 400)
    window = Box(200, 100, 712, 612)
    assert peak_share(one, patch, window) == 1.0
    several = one.copy()
    several[12, 12] = 1.0
    several[12, 2] = 1.0
    assert peak_share(several, patch, window) == pytest.approx(1 / 3)


# -- confirm before stopping ----------------------------------------------------------------
def test_a_coarse_confident_box_is_confirmed_at_native_detail() -> None:
    big = Box(1000, 2000, 1140, 2140)  # 140 px: confident already at the root (18 view px)
    pyramid = VirtualPyramid(4000, 3000)
    model = GeometricOracle(pyramid, {"star": [big]})
    result = VStarSearch(model, SearchConfig(**UNLIMITED)).search(pyramid, "star")
    assert result.found
    assert result.confirmations == 1
    assert result.patches_scored == 2
    assert result.trace[1].kind == "confirm"
    assert result.trace[1].parent == 0
    window = result.trace[1].patch
    assert window.contains(big)
    assert max(window.width, window.height) <= 512  # native detail
    assert "confirmation" in result.message
    fast = VStarSearch(model, SearchConfig(confirm=False, **UNLIMITED)).search(pyramid, "star")
    assert fast.patches_scored == 1
    assert fast.confirmations == 0


def false_root_box(call: int, view: int, phrase: str) -> PatchPrediction:
    """A confident box in the first view only (the root), nothing anywhere else."""
    if call == 0:
        return PatchPrediction((Detection(Box(100, 100, 110, 110), 0.8),), np.zeros((4, 4)))
    return blank()


def test_a_failed_confirmation_dismisses_the_box_and_it_never_wins_a_fallback() -> None:
    model = ScriptedModel(false_root_box)
    config = SearchConfig(strategy="bfs", **UNLIMITED)
    result = VStarSearch(model, config).search(VirtualPyramid(2000, 1500), "star")
    assert not result.found
    assert result.stop_reason == "exhausted"
    assert result.dismissed == 1
    assert result.confirmations == 1
    assert result.box is None  # the dismissed 0.8 box is not offered
    assert result.trace[1].kind == "confirm"


def test_seal_stops_at_once_as_the_reference_does() -> None:
    model = ScriptedModel(false_root_box)
    config = SearchConfig(strategy="seal", **UNLIMITED)
    result = VStarSearch(model, config).search(VirtualPyramid(2000, 1500), "star")
    assert result.found
    assert result.patches_scored == 1
    assert result.confirmations == 0


class UpsampleHallucinator:
    """Sees a confident box only in views it is shown enlarged (scale < 1), as detectors
    hallucinate on interpolated pixels; accepts ``scales=`` and records them."""

    input_size = 512
    thresholds: ModelThresholds = ORACLE_THRESHOLDS

    def __init__(self, max_upsample: float = 1.0) -> None:
        self.max_upsample = max_upsample
        self.scales: list[float] = []

    def predict(
        self, views: Sequence[Image.Image], phrases: Sequence[str], *, scales: Sequence[float]
    ) -> list[list[PatchPrediction]]:
        self.scales.extend(scales)
        out = []
        for _view, scale in zip(views, scales, strict=True):
            dets = (Detection(Box(10, 10, 30, 30), 0.9),) if scale < 0.9 else ()
            out.append([PatchPrediction(dets, np.zeros((4, 4))) for _ in phrases])
        return out


def test_the_view_scale_reaches_models_that_accept_it() -> None:
    model = UpsampleHallucinator()
    assert accepts_scales(model)
    assert not accepts_scales(ScriptedModel(lambda *_: blank()))
    VStarSearch(model, SearchConfig(strategy="bfs", max_calls=3)).search(
        VirtualPyramid(4000, 3000), "star"
    )
    assert model.scales[0] == pytest.approx(4000 / 512)  # the root: original px per view px


def test_a_box_from_an_upsampled_view_is_confirmed_unless_the_model_says_it_helps() -> None:
    # 1400x1000: the root is seen at 0.37x; its 2x2 children (~790x560) at 0.65x; their
    # children (~440x315) are leaves shown enlarged 1.16x, where the fake hallucinates.
    config = SearchConfig(strategy="bfs", **UNLIMITED)
    strict = VStarSearch(UpsampleHallucinator(), config).search(VirtualPyramid(1400, 1000), "star")
    assert not strict.found
    assert strict.dismissed >= 1
    lenient_model = UpsampleHallucinator(max_upsample=2.0)
    assert declared_max_upsample(lenient_model) == 2.0
    lenient = VStarSearch(lenient_model, config).search(VirtualPyramid(1400, 1000), "star")
    assert lenient.found
    assert lenient.confirmations == 0


def test_a_small_image_needs_no_confirmation_no_window_can_show_it_better() -> None:
    def answer(call: int, view: int, phrase: str) -> PatchPrediction:
        return PatchPrediction((Detection(Box(10, 10, 30, 30), 0.9),), np.zeros((2, 2)))

    result = VStarSearch(ScriptedModel(answer)).search(VirtualPyramid(300, 200), "star")
    assert result.found
    assert result.patches_scored == 1


# -- budgets keep what was found -----------------------------------------------------------
def test_a_budget_stop_returns_a_pending_confident_box_as_a_flagged_fallback() -> None:
    model = ScriptedModel(false_root_box)
    config = SearchConfig(strategy="bfs", max_calls=1)
    result = VStarSearch(model, config).search(VirtualPyramid(2000, 1500), "star")
    assert result.stop_reason == "budget"
    assert result.found
    assert result.fallback
    assert result.confidence == pytest.approx(0.8)


def test_a_deadline_stop_keeps_a_candidate_above_confidence_low(monkeypatch) -> None:
    ticks = iter(range(1000))
    monkeypatch.setattr(engine_module, "_clock", lambda: float(next(ticks)))

    def answer(call: int, view: int, phrase: str) -> PatchPrediction:
        return PatchPrediction((Detection(Box(5, 5, 15, 15), 0.35),), np.zeros((2, 2)))

    config = SearchConfig(strategy="bfs", max_calls=None, deadline_s=2.5)
    result = VStarSearch(ScriptedModel(answer), config).search(VirtualPyramid(4000, 3000), "star")
    assert result.stop_reason == "deadline"
    assert result.found
    assert result.fallback
    low = SearchConfig(strategy="bfs", max_calls=None, deadline_s=2.5, confidence_low=0.4)
    ticks2 = iter(range(1000))
    monkeypatch.setattr(engine_module, "_clock", lambda: float(next(ticks2)))
    result = VStarSearch(ScriptedModel(answer), low).search(VirtualPyramid(4000, 3000), "star")
    assert not result.found
    assert not result.fallback
    assert result.confidence == pytest.approx(0.35)  # still reported, not claimed


# -- signal-aware descent -------------------------------------------------------------------
@pytest.mark.parametrize("size", [(4000, 3000), (9000, 600), (2246, 1582)])
def test_a_flat_heatmap_costs_no_more_than_the_sliding_window(size) -> None:
    """Target absent, maps flat: vstar goes to native tiles after the root, in batches."""
    results = {}
    for strategy in ("vstar", "sliding-window", "bfs"):
        model = ScriptedModel(lambda *_: blank())
        config = SearchConfig(strategy=strategy, **UNLIMITED)
        results[strategy] = VStarSearch(model, config).search(VirtualPyramid(*size), "star")
    vstar, window = results["vstar"], results["sliding-window"]
    assert vstar.stop_reason == "exhausted"
    tiles = native_tiles(Box.full(*size), 512, 64)
    assert vstar.patches_scored == 1 + len(tiles)
    assert vstar.patches_scored <= window.patches_scored + 1
    assert vstar.forward_passes <= window.forward_passes + 1
    assert vstar.patches_scored < results["bfs"].patches_scored
    assert {s.kind for s in vstar.trace[1:]} == {"tile"}


def test_a_target_only_visible_at_native_detail_is_found_through_tiles() -> None:
    """A detector whose map is flat (peak 0): only native tiles can see the 14 px star."""
    target = Box(3300, 2500, 3314, 2514)
    costs = {}
    for strategy in ("vstar", "sliding-window"):
        pyramid = VirtualPyramid(4000, 3000)
        model = GeometricOracle(pyramid, {"star": [target]}, peak=0.0)
        config = SearchConfig(strategy=strategy, **UNLIMITED)
        result = VStarSearch(model, config).search(pyramid, "star")
        assert result.found, strategy
        assert result.box is not None
        assert result.box.iou(target) > 0.5
        costs[strategy] = result
    assert costs["vstar"].forward_passes <= costs["sliding-window"].forward_passes + 1


def test_a_telling_map_is_followed_one_view_at_a_time_to_a_native_window() -> None:
    target = Box(2520, 1230, 2544, 1254)
    pyramid = VirtualPyramid(4000, 3000)
    model = GeometricOracle(pyramid, {"star": [target]})
    config = SearchConfig(framings=1, **UNLIMITED)  # the closer look in one framing
    result = VStarSearch(model, config).search(pyramid, "star")
    assert result.found
    assert result.forward_passes == result.patches_scored  # one by one where it tells
    assert result.patches_scored <= 4
    assert all(n == 1 for n, _ in model.calls)
    off_pyramid = VirtualPyramid(4000, 3000)  # a model reads its own pyramid's views
    off_model = GeometricOracle(off_pyramid, {"star": [target]})
    off = VStarSearch(off_model, SearchConfig(signal_descent=False, **UNLIMITED)).search(
        off_pyramid, "star"
    )
    assert result.patches_scored <= off.patches_scored


def test_tile_batches_respect_batch_size_and_the_call_budget() -> None:
    model = ScriptedModel(lambda *_: blank())
    config = SearchConfig(strategy="vstar", batch_size=3, max_calls=8, deadline_s=None)
    result = VStarSearch(model, config).search(VirtualPyramid(4000, 3000), "star")
    assert result.patches_scored == 8
    assert [n for n, _ in model.calls] == [1, 3, 3, 1]


def test_the_sliding_window_and_vstar_tiles_share_the_default_batch() -> None:
    sizes = {}
    for strategy in ("vstar", "sliding-window"):
        model = ScriptedModel(lambda *_: blank())
        config = SearchConfig(strategy=strategy, **UNLIMITED)
        VStarSearch(model, config).search(VirtualPyramid(4000, 3000), "star")
        sizes[strategy] = max(n for n, _ in model.calls)
    assert sizes["vstar"] == sizes["sliding-window"] == engine_module.DEFAULT_BATCH
    assert len(sliding_windows(4000, 3000, 512, 128)) > engine_module.DEFAULT_BATCH


def test_pop_batch_batches_only_the_named_kinds_and_urgent_nodes_go_alone() -> None:
    frontier = BestFirstFrontier()
    box = Box(0, 0, 10, 10)
    frontier.push_children(
        [
            Node(box, 2, 0, priority=0.9, kind="tile"),
            Node(box, 2, 0, priority=0.8, kind="tile"),
            Node(box, 2, 0, priority=0.7, kind="split"),
            Node(box, 2, 0, priority=0.6, kind="tile"),
        ]
    )
    frontier.push_urgent(Node(box, 3, 1, kind="zoom"))
    only = frozenset({"tile"})
    assert [n.kind for n in frontier.pop_batch(8, only)] == ["zoom"]
    assert [n.priority for n in frontier.pop_batch(8, only)] == [0.9, 0.8]
    assert [n.priority for n in frontier.pop_batch(8, only)] == [0.7]
    assert [n.priority for n in frontier.pop_batch(8, only)] == [0.6]
    assert frontier.pop_batch(8, only) == []


def two_weak_peaks(call: int, view: int, phrase: str) -> PatchPrediction:
    """A weak map (below every cue threshold) with two equal peaks, top-left and
    bottom-right: two children tie, the other two trail."""
    heat = np.zeros((4, 4), dtype=np.float32)
    heat[0, 0] = heat[3, 3] = 0.01
    return PatchPrediction((), heat)


def test_near_tied_patches_share_a_forward_pass_unless_batch_size_is_one() -> None:
    model = ScriptedModel(two_weak_peaks)
    config = SearchConfig(strategy="vstar", max_calls=3, deadline_s=None)
    VStarSearch(model, config).search(VirtualPyramid(4000, 3000), "star")
    assert [n for n, _ in model.calls] == [1, 2]  # the root, then the two tied children
    strict = ScriptedModel(two_weak_peaks)
    config = SearchConfig(strategy="vstar", max_calls=3, deadline_s=None, batch_size=1)
    VStarSearch(strict, config).search(VirtualPyramid(4000, 3000), "star")
    assert [n for n, _ in strict.calls] == [1, 1, 1]


def peaked(value: float) -> PatchPrediction:
    """Nothing found; a map with one bright cell of ``value`` (below or above the cue
    threshold), a peak the search can steer by."""
    heat = np.zeros((8, 8), dtype=np.float32)
    heat[2, 5] = value
    return PatchPrediction((), heat)


def descent_kinds(value: float, **config: object) -> list[tuple[str, int]]:
    pyramid = VirtualPyramid(2000, 1500)
    model = ScriptedModel(lambda *_: peaked(value))
    model.framing_invariant = True  # type: ignore[attr-defined]  # trusted to steer when weak
    cfg = SearchConfig(max_calls=30, deadline_s=None, **config)
    result = VStarSearch(model, cfg).search(pyramid, "star")
    return [(str(s.kind), s.level) for s in result.trace]


def test_below_a_weak_cue_a_patch_few_native_tiles_cover_is_split_into_them() -> None:
    """The root (20 native tiles) still splits 2x2; each child (about 1100x830, six
    tiles) goes straight to its native tiles instead of coarse 2x2 children whose own
    children would be upsampled. A strong cue keeps the 2x2 split, and so does
    weak_cue_tiles=0."""
    assert len(native_tiles(Box(0, 0, 2000, 1500), 512, 128)) > 6
    weak = descent_kinds(0.2)
    assert weak[0] == ("root", 1)
    assert all(kind == "tile" for kind, level in weak if level >= 3)
    assert any(kind == "tile" for kind, _ in weak)
    for kinds in (descent_kinds(0.2, weak_cue_tiles=0), descent_kinds(0.9)):
        assert not any(kind == "tile" for kind, _ in kinds)
        assert any(kind == "split" and level >= 3 for kind, level in kinds)
