"""Where the patch tree stops: the reference's rule (seal) and the resolution-aware rule."""

from __future__ import annotations

import math

import pytest
from search_fakes import ScriptedModel, VirtualPyramid, blank

from seal_agent.imaging.geometry import Box
from seal_agent.search.config import SearchConfig
from seal_agent.search.engine import VStarSearch
from seal_agent.search.result import SearchResult
from seal_agent.search.tiling import (
    is_native_leaf,
    is_seal_leaf,
    seal_smallest_size,
    sliding_windows,
    zoom_window,
)

SIZES = [
    (12000, 9000),
    (7680, 4320),
    (9000, 600),
    (600, 9000),
    (2246, 1582),
    (512, 512),
    (300, 200),
]


def exhaust(
    width: int, height: int, strategy: str, input_size: int = 512, native_tiles: int = 0
) -> SearchResult:
    """Score every patch of the tree (a model that never sees anything)."""
    model = ScriptedModel(lambda *_: blank(), input_size=input_size)
    config = SearchConfig(
        strategy=strategy, max_calls=None, deadline_s=None, native_tiles=native_tiles
    )
    return VStarSearch(model, config).search(VirtualPyramid(width, height), "star")


def split_parents(result: SearchResult) -> set[int]:
    return {s.parent for s in result.trace if s.parent is not None}


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_native_leaves_are_seen_at_full_resolution_and_parents_are_not(
    width: int, height: int
) -> None:
    result = exhaust(width, height, "bfs")
    parents = split_parents(result)
    assert result.stop_reason == "exhausted"
    for step in result.trace:
        longer = max(step.patch.width, step.patch.height)
        if step.index in parents:
            assert longer > 512  # split only while the model sees less than every pixel
        else:
            # A leaf: shown at native resolution or better, so a 12 px target is >= 12
            # model px; and never smaller than needed (its parent was above 512).
            assert longer <= 512
            if step.parent is not None:
                parent = result.trace[step.parent].patch
                assert max(parent.width, parent.height) > 512


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_native_leaves_cover_the_whole_image(width: int, height: int) -> None:
    result = exhaust(width, height, "bfs")
    parents = split_parents(result)
    leaves = [s.patch for s in result.trace if s.index not in parents]
    # Every point of a coarse grid lies in some leaf.
    for gx in range(0, width, max(1, width // 37)):
        for gy in range(0, height, max(1, height // 29)):
            assert any(leaf.x1 <= gx < leaf.x2 and leaf.y1 <= gy < leaf.y2 for leaf in leaves), (
                gx,
                gy,
            )


def test_small_images_make_the_root_a_leaf() -> None:
    for size in [(300, 200), (512, 512), (40, 30)]:
        result = exhaust(*size, "vstar")
        assert result.patches_scored == 1
        assert result.trace[0].cue == "none"
        assert result.stop_reason == "exhausted"


@pytest.mark.parametrize(
    ("width", "height", "leaf_min_side"),
    [(12000, 9000, 2250), (4000, 3000, 750), (2246, 1582, 396), (9000, 600, 224), (800, 600, 224)],
)
def test_seal_leaves_follow_the_reference_rule(width: int, height: int, leaf_min_side: int) -> None:
    assert seal_smallest_size(width, height, 224, 4.0) == leaf_min_side
    result = exhaust(width, height, "seal")
    parents = split_parents(result)
    for step in result.trace:
        shorter = min(step.patch.width, step.patch.height)
        if step.index in parents:
            assert shorter > leaf_min_side
        else:
            assert shorter <= leaf_min_side


def test_seal_leaves_of_a_large_scan_are_far_below_native_resolution() -> None:
    """Why vstar departs: the reference stops a 12000x9000 scan at 3000x2250 leaves."""
    result = exhaust(12000, 9000, "seal")
    leaves = [s.patch for s in result.trace if s.index not in split_parents(result)]
    assert {(leaf.width, leaf.height) for leaf in leaves} == {(3000, 2250)}
    # A 12 px target in such a leaf is about 2 model pixels.
    assert 12 * 512 / 3000 < 2.1
    assert result.patches_scored == 1 + 4 + 16


def test_leaf_predicates() -> None:
    assert is_native_leaf(Box(0, 0, 512, 300), 512)
    assert not is_native_leaf(Box(0, 0, 513, 10), 512)
    assert is_seal_leaf(Box(0, 0, 5000, 224), 224)
    assert not is_seal_leaf(Box(0, 0, 5000, 225), 224)


@pytest.mark.parametrize(("width", "height"), [*SIZES, (513, 100), (1, 1)])
def test_sliding_windows_cover_the_image_so_small_targets_lie_whole_in_a_tile(
    width: int, height: int
) -> None:
    tiles = sliding_windows(width, height, 512, 128)
    keys = [(t.y1, t.x1) for t in tiles]
    assert keys == sorted(keys)  # raster order
    for t in tiles:
        assert Box(0, 0, width, height).contains(t)
        assert max(t.width, t.height) <= 512
    # Any 128 px (or smaller) target lies whole in some tile.
    step = max(1, min(width, height) // 7)
    for x in range(0, max(1, width - 128), step):
        for y in range(0, max(1, height - 128), step):
            target = Box(x, y, min(x + 128, width), min(y + 128, height))
            assert any(t.contains(target) for t in tiles), target


def test_zoom_window_is_native_centred_and_inside_the_image() -> None:
    w = zoom_window(Box(1000, 1000, 1020, 1020), 4000, 3000, 512)
    assert (w.width, w.height) == (512, 512)
    assert abs(w.center[0] - 1010) <= 1
    assert abs(w.center[1] - 1010) <= 1
    corner = zoom_window(Box(3990, 2990, 4000, 3000), 4000, 3000, 512)
    assert corner == Box(3488, 2488, 4000, 3000)
    large = zoom_window(Box(0, 0, 400, 300), 4000, 3000, 512)
    assert large.width == 800
    assert large.contains(Box(0, 0, 400, 300))
    tiny_image = zoom_window(Box(10, 10, 20, 20), 300, 200, 512)
    assert tiny_image == Box(0, 0, 300, 200)


def test_native_tree_depth_grows_with_log_of_the_size() -> None:
    """The tree of a 12000x9000 scan is deep enough to reach native resolution (no more)."""
    result = exhaust(12000, 9000, "bfs")
    deepest = max(s.level for s in result.trace)
    # Each level halves the side (a little less with overlap): 12000 -> <= 512.
    assert deepest - 1 >= math.ceil(math.log2(12000 / 512))
    assert deepest - 1 <= math.ceil(math.log2(12000 / 512)) + 1


def test_native_tiles_end_the_tree_in_one_step_at_native_resolution() -> None:
    plain = exhaust(4000, 3000, "bfs")
    tiled = exhaust(4000, 3000, "bfs", native_tiles=9)
    assert plain.patches_scored == 1 + 4 + 16 + 64 + 256
    assert tiled.patches_scored == 1 + 4 + 16 + 16 * 6  # 1266x949 -> six 512 px tiles
    parents = split_parents(tiled)
    leaves = [s.patch for s in tiled.trace if s.index not in parents]
    assert {(leaf.width, leaf.height) for leaf in leaves} == {(512, 512)}
