"""Issue 7 on real detectors: a second, differently framed look before a native box ends
the search; no steering by maps that carry no signal or steer (flat, or a weak target
cue with no context); confirmations about the pending box only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest
from PIL import Image
from search_fakes import ORACLE_THRESHOLDS, GeometricOracle, ScriptedModel, VirtualPyramid, blank

from seal_agent.errors import SearchModelError
from seal_agent.imaging.geometry import Box, ViewTransform
from seal_agent.imaging.pyramid import ImagePyramid
from seal_agent.search.config import SearchConfig
from seal_agent.search.engine import VStarSearch
from seal_agent.search.protocol import (
    Detection,
    ModelThresholds,
    PatchPrediction,
    declared_framing_invariant,
)
from seal_agent.search.tiling import (
    SAME_FRAMING_IOU,
    native_tiles,
    other_framings,
    reframed_window,
    zoom_window,
)
from seal_agent.shapeworld.scene import generate_scene
from seal_agent.shapeworld.search_model import ReferenceSearchModel

UNLIMITED = {"max_calls": None, "deadline_s": None}


@dataclass
class FickleDetector:
    """A detector whose false box depends on the framing, as real ones' do.

    It sees ``target`` confidently in any view near native detail holding it whole, and
    a confident false
    box at ``false`` only in views whose patch starts at ``false_origin`` (one framing,
    as a texture that happens to line up with the detector's window grid). Heatmaps
    are flat. Not ``framing_invariant``.
    """

    pyramid: VirtualPyramid
    target: Box
    false: Box
    input_size: int = 512
    thresholds: ModelThresholds = ORACLE_THRESHOLDS
    views: list[Box] = field(default_factory=list)
    native: list[Box] = field(default_factory=list)  # views near native detail

    def predict(
        self, views: Sequence[Image.Image], phrases: Sequence[str]
    ) -> list[list[PatchPrediction]]:
        patches = self.pyramid.viewed[-len(views) :]
        out = []
        for view, patch in zip(views, patches, strict=True):
            self.views.append(patch)
            frame = ViewTransform(patch, view.width, view.height)
            dets = []
            if frame.scale_x < 0.9:  # too coarse to see a 40 px object
                out.append([PatchPrediction((), np.zeros((8, 8))) for _ in phrases])
                continue
            self.native.append(patch)
            if patch.contains(self.target):
                dets.append(Detection(frame.to_view(self.target), 0.95))
            first_look = not any(v.contains(self.false) for v in self.native[:-1])
            if patch.contains(self.false) and first_look:
                dets.append(Detection(frame.to_view(self.false), 0.9))
            out.append([PatchPrediction(tuple(dets), np.zeros((8, 8))) for _ in phrases])
        return out


@pytest.mark.parametrize("strategy", ["vstar", "sliding-window", "bfs"])
def test_a_false_box_that_a_second_framing_does_not_repeat_is_dismissed(strategy) -> None:
    target = Box(1500, 1100, 1540, 1140)  # far from the first tile: seen later
    false = Box(200, 200, 240, 240)  # in the first native tile, at its framing only
    pyramid = VirtualPyramid(2000, 1500)
    model = FickleDetector(pyramid, target, false)
    result = VStarSearch(model, SearchConfig(strategy=strategy, **UNLIMITED)).search(
        pyramid, "face"
    )
    assert result.found, strategy
    assert result.box == target
    assert result.dismissed >= 1  # the false box, at its second look
    assert result.confirmations >= 2  # the false box's and the target's
    # the target ended the search only once two differently framed native views saw it:
    # a confirmation view, or another view of the same pass (overlapping tiles, a
    # closer look's other framings)
    seen = [
        s.patch
        for s in result.trace
        if s.patch.contains(target)
        and (s.best_score or 0) > 0.5
        and max(s.patch.width, s.patch.height) <= 512
    ]
    assert len(seen) >= 2
    assert any(a.iou(b) < SAME_FRAMING_IOU for a in seen for b in seen)


def test_seal_and_confirm_false_stop_at_the_first_native_box() -> None:
    for config in (
        SearchConfig(strategy="seal", **UNLIMITED),
        SearchConfig(strategy="sliding-window", confirm=False, **UNLIMITED),
    ):
        pyramid = VirtualPyramid(2000, 1500)
        model = FickleDetector(pyramid, Box(1500, 1100, 1540, 1140), Box(200, 200, 240, 240))
        result = VStarSearch(model, config).search(pyramid, "face")
        assert result.found
        assert result.confirmations == 0
        if config.strategy == "sliding-window":
            assert result.box == Box(200, 200, 240, 240)  # the false box wins: no second look


class Invariant(GeometricOracle):
    framing_invariant = True


def test_a_framing_invariant_model_is_spared_the_second_look() -> None:
    target = Box(1500, 1100, 1530, 1130)
    counts = {}
    for cls in (GeometricOracle, Invariant):
        pyramid = VirtualPyramid(2000, 1500)
        model = cls(pyramid, {"star": [target]}, peak=0.0)  # flat maps: native tiles
        config = SearchConfig(strategy="sliding-window", **UNLIMITED)
        result = VStarSearch(model, config).search(pyramid, "star")
        assert result.found
        assert result.box is not None
        assert result.box.iou(target) > 0.5
        counts[cls.__name__] = (result.patches_scored, result.confirmations)
    assert counts["Invariant"][1] == 0
    assert counts["GeometricOracle"][1] >= 1  # by a confirmation view or a second tile
    assert counts["GeometricOracle"][0] >= counts["Invariant"][0]


def test_framing_invariant_must_be_a_bool() -> None:
    assert declared_framing_invariant(object()) is False
    assert declared_framing_invariant(Invariant(VirtualPyramid(10, 10), {})) is True

    class Bad:
        framing_invariant = "yes"

    with pytest.raises(SearchModelError, match="framing_invariant"):
        declared_framing_invariant(Bad())


def test_a_confirmation_is_about_the_pending_box_only() -> None:
    """A coarse confident box A whose confirmation window shows a confident box B
    elsewhere instead: A is dismissed, B neither ends the search nor spawns a
    confirmation of its own (a model firing everywhere cannot chain them)."""
    a = Box(1000, 1000, 1100, 1100)
    b_offset = (300.0, 300.0)  # B sits at this offset in any confirmation window of A

    def answer(call: int, view: int, phrase: str) -> PatchPrediction:
        if call == 0:  # the root: A seen confidently, coarse
            scale = 512 / 4000
            box = Box(a.x1 * scale, a.y1 * scale, a.x2 * scale, a.y2 * scale)
            return PatchPrediction((Detection(box, 0.9),), np.zeros((8, 8)))
        if call == 1:  # A's confirmation window: no A, a confident B elsewhere
            x, y = b_offset
            return PatchPrediction((Detection(Box(x, y, x + 40, y + 40), 0.9),), np.zeros((8, 8)))
        return blank(8, 8)

    model = ScriptedModel(answer)
    result = VStarSearch(model, SearchConfig(strategy="bfs", **UNLIMITED)).search(
        VirtualPyramid(4000, 3000), "star"
    )
    assert result.trace[1].kind == "confirm"
    assert result.dismissed == 1
    assert result.confirmations == 1
    assert all(s.kind != "confirm" for s in result.trace[2:])
    assert not result.found


def test_a_detector_firing_in_every_view_cannot_chain_confirmations() -> None:
    """A confident box at the same view position in every view maps to a new place in
    the image each time: the search still ends (here on a box in the image's corner,
    which no other framing holds), every confirmation having failed."""

    def everywhere(call: int, view: int, phrase: str) -> PatchPrediction:
        # the bottom-right corner of every view: never the same object twice
        return PatchPrediction((Detection(Box(460, 460, 500, 500), 0.9),), np.zeros((8, 8)))

    config = SearchConfig(strategy="vstar", max_calls=None, deadline_s=None)
    result = VStarSearch(ScriptedModel(everywhere), config).search(
        VirtualPyramid(4000, 3000), "star"
    )
    assert result.dismissed == result.confirmations > 0  # no confirmation ever held
    assert result.patches_scored < 300


# -- reframing -------------------------------------------------------------------------------
def test_reframed_window_is_centred_when_that_frames_differently() -> None:
    box = Box(1000, 1000, 1040, 1040)
    window = reframed_window(box, Box(0, 0, 512, 512), 4000, 3000, 512)
    assert window == Box(764, 764, 1276, 1276)


@pytest.mark.parametrize(
    ("box", "seen_in"),
    [
        (Box(1000, 1000, 1040, 1040), Box(764, 764, 1276, 1276)),  # seen centred already
        (Box(60, 1922, 176, 2038), Box(0, 1723, 512, 2235)),  # at the image's left edge
        (Box(3700, 2700, 3740, 2740), Box(3488, 2488, 4000, 3000)),  # near the corner
    ],
)
def test_reframed_window_slides_away_from_the_first_view(box, seen_in) -> None:
    window = reframed_window(box, seen_in, 4000, 3000, 512)
    assert window is not None
    assert window.contains(box)
    assert window.width == window.height == 512
    assert window == window.clip(4000, 3000)  # inside the image
    assert window.iou(seen_in) < SAME_FRAMING_IOU


def test_reframed_window_is_none_when_no_other_framing_holds_the_box() -> None:
    assert reframed_window(Box(100, 100, 140, 140), Box(0, 0, 512, 512), 512, 512, 512) is None
    corner = Box(3950, 2950, 3990, 2990)  # any window holding it is within 10 px of this
    assert reframed_window(corner, Box(3488, 2488, 4000, 3000), 4000, 3000, 512) is None


# -- no steering without signal -------------------------------------------------------------
def peaked_weak(call: int, view: int, phrase: str) -> PatchPrediction:
    """A distinct peak (bottom right), but far below the cue threshold (0.6): no target."""
    heat = np.zeros((16, 16), dtype=np.float32)
    heat[13, 13] = 0.2
    return PatchPrediction((), heat)


def test_a_weak_target_cue_without_context_does_not_steer() -> None:
    model = ScriptedModel(peaked_weak)
    config = SearchConfig(strategy="vstar", max_calls=20, deadline_s=None)
    result = VStarSearch(model, config).search(VirtualPyramid(4000, 3000), "star")
    tiles = native_tiles(Box.full(4000, 3000), 512, 64)
    visited = [s.patch for s in result.trace[1:]]
    assert {s.kind for s in result.trace[1:]} == {"tile"}
    assert visited == tiles[: len(visited)]  # raster order, not drawn to the peak


def test_a_weak_target_cue_with_a_context_cue_still_steers() -> None:
    model = ScriptedModel(peaked_weak)
    config = SearchConfig(strategy="vstar", max_calls=5, deadline_s=None)
    result = VStarSearch(model, config).search(
        VirtualPyramid(4000, 3000), "star", context_cue=lambda _t: "table"
    )
    assert result.trace[0].cue == "context"
    assert result.trace[1].kind == "split"  # descends 2x2 by the blended map
    # towards the bottom-right quarter, where both phrases' maps peak
    assert (result.trace[1].patch.x2, result.trace[1].patch.y2) == (4000, 3000)


def test_a_weak_root_cues_children_can_be_tied_into_one_pass() -> None:
    """tie_weak_root: the root's weak map (context mixed in) does not rank its children;
    they share the second pass, and below each the blended map steers."""
    model = ScriptedModel(peaked_weak)
    config = SearchConfig(strategy="vstar", max_calls=6, deadline_s=None, tie_weak_root=True)
    result = VStarSearch(model, config).search(
        VirtualPyramid(4000, 3000), "star", context_cue=lambda _t: "table"
    )
    children = result.trace[1:5]
    assert [s.kind for s in children] == ["split"] * 4
    assert len({s.priority for s in children}) == 1
    assert [n for n, _ in model.calls][:2] == [1, 4]
    below, parent = result.trace[5], result.trace[result.trace[5].parent or 0]
    assert below.level == 3
    assert (below.patch.x2, below.patch.y2) == (parent.patch.x2, parent.patch.y2)


def test_a_flat_noisy_map_queues_native_tiles_in_raster_order() -> None:
    rng = np.random.default_rng(1)

    def noise(call: int, view: int, phrase: str) -> PatchPrediction:
        return PatchPrediction((), (0.7 + 0.01 * rng.normal(size=(16, 16))).astype(np.float32))

    model = ScriptedModel(noise)
    config = SearchConfig(strategy="vstar", max_calls=17, deadline_s=None)
    result = VStarSearch(model, config).search(VirtualPyramid(4000, 3000), "star")
    tiles = native_tiles(Box.full(4000, 3000), 512, 64)
    assert [s.patch for s in result.trace[1:]] == tiles[:16]


@dataclass
class EdgeShy:
    """Scores ``target`` 0.95 in a native view unless it lies within 60 px of the view's
    border (0.4 there: cut context, as real detectors score edge objects); blind at
    coarse views; flat heatmaps."""

    pyramid: VirtualPyramid
    target: Box
    input_size: int = 512
    thresholds: ModelThresholds = ORACLE_THRESHOLDS

    def predict(
        self, views: Sequence[Image.Image], phrases: Sequence[str]
    ) -> list[list[PatchPrediction]]:
        out = []
        for view, patch in zip(views, self.pyramid.viewed[-len(views) :], strict=True):
            frame = ViewTransform(patch, view.width, view.height)
            dets: tuple[Detection, ...] = ()
            if frame.scale_x >= 0.9 and patch.contains(self.target):
                t, p = self.target, patch
                edge = min(t.x1 - p.x1, t.y1 - p.y1, p.x2 - t.x2, p.y2 - t.y2)
                dets = (Detection(frame.to_view(t), 0.95 if edge > 60 else 0.4),)
            out.append([PatchPrediction(dets, np.zeros((8, 8))) for _ in phrases])
        return out


def test_a_native_candidate_is_looked_at_again_framed_differently() -> None:
    """Every native tile holding the star has it near its edge: only a differently framed
    look shows it confidently (then a second look confirms it)."""
    target = Box(470, 200, 500, 230)  # 12 px from tile 0's right edge, 34 from tile 1's left
    results = {}
    for relook in (True, False):
        pyramid = VirtualPyramid(4000, 3000)
        config = SearchConfig(strategy="vstar", candidate_zoom=relook, **UNLIMITED)
        results[relook] = VStarSearch(EdgeShy(pyramid, target), config).search(pyramid, "star")
    looked = results[True]
    assert looked.stop_reason == "found"
    assert looked.box == target
    assert "zoom" in [s.kind for s in looked.trace]
    blind = results[False]
    assert blind.fallback  # only ever 0.4: a fallback after every tile
    assert looked.patches_scored < blind.patches_scored / 3


class _Fallible(ReferenceSearchModel):
    """Shape world's reference model declaring itself fallible (not framing_invariant)."""

    @property
    def framing_invariant(self) -> bool:
        return False


def test_a_framing_invariant_model_steers_by_its_weak_map_without_a_context_cue():
    """No context cue and a target cue below its threshold: a trusted model's weak map
    still steers the descent; a fallible model's is not followed (raster tiles)."""
    scene = generate_scene(4, width=7680, height=4320, kind="direct_attributes")
    pyramid = ImagePyramid(scene.image)
    target = scene.targets[0].shape
    trusted = VStarSearch(ReferenceSearchModel()).search(pyramid, target)
    fallible = VStarSearch(_Fallible()).search(pyramid, target)
    assert trusted.found
    assert fallible.found
    assert "split" in {s.kind for s in trusted.trace}
    assert {s.kind for s in fallible.trace} <= {"root", "tile", "confirm", "zoom"}
    assert trusted.patches_scored < fallible.patches_scored / 2


@pytest.mark.parametrize(
    ("box", "size", "least"),
    [
        (Box(1000, 1000, 1030, 1030), (4000, 3000), 2),  # room all round
        (Box(200, 200, 230, 230), (4000, 3000), 1),  # near a corner
        (Box(3000, 280, 3030, 310), (9000, 600), 2),  # a panorama's strip
    ],
)
def test_other_framings_hold_the_box_and_differ_from_each_other(box, size, least) -> None:
    width, height = size
    first = zoom_window(box, width, height, 512)
    others = other_framings(box, first, width, height, 512, 2)
    assert least <= len(others) <= 2
    windows = [first, *others]
    for w in others:
        assert w.contains(box)
        assert (w.width, w.height) == (first.width, first.height)
        assert Box.full(width, height).contains(w)
    for i, a in enumerate(windows):
        for b in windows[i + 1 :]:
            assert a.iou(b) < SAME_FRAMING_IOU
    assert other_framings(box, first, width, height, 512, 0) == []


def test_no_other_framing_in_an_image_about_one_window_large_or_in_its_corner() -> None:
    box = Box(250, 250, 280, 280)
    first = zoom_window(box, 540, 540, 512)
    assert other_framings(box, first, 540, 540, 512, 2) == []
    corner = Box(5, 5, 35, 35)  # every window holding it whole is the corner's
    first = zoom_window(corner, 4000, 3000, 512)
    assert other_framings(corner, first, 4000, 3000, 512, 2) == []
