"""The reference's priority: ancestor-weighted heatmap mass, via summed-area tables."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from search_fakes import ScriptedModel, VirtualPyramid, blank

from seal_agent.imaging.geometry import Box
from seal_agent.search.config import SearchConfig
from seal_agent.search.engine import VStarSearch
from seal_agent.search.priority import (
    HeatmapMass,
    ancestor_weighted_priority,
    child_probability,
    mix_distributions,
    normalise_heatmap,
    unit_mass,
)
from seal_agent.search.protocol import PatchPrediction


def test_normalise_is_min_max_and_flat_maps_become_zero() -> None:
    np.testing.assert_allclose(
        normalise_heatmap(np.array([[2.0, 4.0], [6.0, 3.0]])), [[0, 0.5], [1, 0.25]]
    )
    assert not normalise_heatmap(np.full((3, 3), 7.0)).any()


def test_mass_counts_fractional_cells_by_covered_area() -> None:
    cue = HeatmapMass.from_heatmap(np.array([[0.0, 1.0], [2.0, 1.0]]), Box(0, 0, 100, 100), 1)
    assert cue.total == 4.0
    assert cue.share(Box(50, 0, 100, 50)) == pytest.approx(0.25)
    # Half of the 0-cell and half of the 1-cell of the top row.
    assert cue.mass(Box(25, 0, 75, 50)) == pytest.approx(0.5)
    assert cue.share(Box(25, 0, 75, 50)) == pytest.approx(0.125)
    # Parts outside the patch count nothing.
    assert cue.mass(Box(-100, -100, 100, 100)) == pytest.approx(4.0)
    assert cue.mass(Box(200, 200, 300, 300)) == 0.0


def test_all_zero_heatmap_gives_zero_shares() -> None:
    cue = HeatmapMass.from_heatmap(np.zeros((4, 4)), Box(0, 0, 40, 40), 1)
    assert cue.share(Box(0, 0, 20, 20)) == 0.0


@given(
    st.integers(1, 9),
    st.integers(1, 9),
    st.integers(1, 6),
    st.data(),
)
@settings(max_examples=150, deadline=None)
def test_mass_equals_the_pixel_sum_of_the_upsampled_heatmap(
    rows: int, cols: int, cell: int, data: st.DataObject
) -> None:
    """With a heatmap cell of ``cell`` image pixels, any integer box's mass is exact."""
    rng = np.random.default_rng(rows * 100 + cols * 10 + cell)
    heat = rng.random((rows, cols))
    pixels = np.repeat(np.repeat(heat, cell, axis=0), cell, axis=1) / (cell * cell)
    ox, oy = data.draw(st.integers(0, 50)), data.draw(st.integers(0, 50))
    patch = Box(ox, oy, ox + cols * cell, oy + rows * cell)
    x1 = data.draw(st.integers(0, cols * cell - 1))
    x2 = data.draw(st.integers(x1 + 1, cols * cell))
    y1 = data.draw(st.integers(0, rows * cell - 1))
    y2 = data.draw(st.integers(y1 + 1, rows * cell))
    cue = HeatmapMass.from_heatmap(heat, patch, 1)
    box = Box(ox + x1, oy + y1, ox + x2, oy + y2)
    assert cue.mass(box) == pytest.approx(pixels[y1:y2, x1:x2].sum(), rel=1e-9, abs=1e-9)


def test_ancestor_weighted_priority_on_a_hand_computed_example() -> None:
    root = HeatmapMass.from_heatmap(
        normalise_heatmap(np.array([[0.0, 4.0], [2.0, 2.0]])), Box(0, 0, 1000, 1000), 1
    )
    # Normalised root: [[0, 1], [0.5, 0.5]], total 2.
    assert ancestor_weighted_priority(Box(500, 0, 1000, 500), [root]) == pytest.approx(1 / 2 / 4)
    assert ancestor_weighted_priority(Box(0, 500, 500, 1000), [root]) == pytest.approx(0.5 / 2 / 4)
    child = HeatmapMass.from_heatmap(
        normalise_heatmap(np.array([[3.0, 0.0], [0.0, 0.0]])), Box(500, 0, 1000, 500), 2
    )
    # Grandchild (500, 0, 750, 250): a quarter of the root's 1-cell -> share 0.25 / 2,
    # weighted 1/4; all of the child's mass -> share 1, weighted 1/16.
    grandchild = Box(500, 0, 750, 250)
    expected = 0.25 / 2 / 4 + 1.0 / 16
    assert ancestor_weighted_priority(grandchild, [root, child]) == pytest.approx(expected)
    assert ancestor_weighted_priority(Box(750, 0, 1000, 250), [root, child]) == pytest.approx(
        0.25 / 2 / 4
    )


def test_seal_search_pops_patches_in_the_hand_computed_priority_order() -> None:
    """The same example run through the engine: priorities in the trace, ties FIFO."""

    def answer(call: int, view: int, phrase: str) -> PatchPrediction:
        if call == 0:
            return PatchPrediction((), np.array([[0.0, 4.0], [2.0, 2.0]]))
        if call == 1:
            return PatchPrediction((), np.array([[3.0, 0.0], [0.0, 0.0]]))
        return blank()

    model = ScriptedModel(answer)
    pyramid = VirtualPyramid(1000, 1000)  # seal leaf size: max(ceil(1000 / 4), 224) = 250
    result = VStarSearch(model, SearchConfig(strategy="seal", max_calls=None)).search(
        pyramid, "star"
    )
    steps = result.trace
    assert steps[0].priority is None
    assert steps[0].cue == "target"
    assert steps[1].patch == Box(500, 0, 1000, 500)
    assert steps[1].priority == pytest.approx(0.125)
    assert steps[2].patch == Box(500, 0, 750, 250)
    assert steps[2].priority == pytest.approx(0.25 / 2 / 4 + 1 / 16)
    assert steps[2].parent == 1
    assert steps[2].level == 3
    # Next: the two level-2 patches tied at 0.0625, in insertion (raster) order.
    assert steps[3].patch == Box(0, 500, 500, 1000)
    assert steps[4].patch == Box(500, 500, 1000, 1000)
    assert steps[3].priority == pytest.approx(0.0625)
    # Exhaustive: the whole 1 + 4 + 16 tree, nothing found.
    assert result.patches_scored == 21
    assert result.stop_reason == "exhausted"


# -- vstar's probability priority ----------------------------------------------------------
def test_mixing_weighs_cues_as_distributions_not_by_their_mass() -> None:
    sparse_target = np.zeros((4, 4))
    sparse_target[0, 0] = 1.0  # one sharp blob: mass 1
    big_table = np.zeros((4, 4))
    big_table[2:, 2:] = 1.0  # a large region: mass 4
    mixed = mix_distributions([sparse_target, big_table], [0.5, 0.5])
    assert mixed.sum() == pytest.approx(1.0)
    assert mixed[0, 0] == pytest.approx(0.5)  # the blob keeps half, not a fifth
    assert mixed[2:, 2:].sum() == pytest.approx(0.5)
    # An empty cue gives its weight to the other.
    np.testing.assert_allclose(
        mix_distributions([np.zeros((4, 4)), big_table], [0.5, 0.5]), unit_mass(big_table)
    )
    assert not mix_distributions([np.zeros((2, 2)), np.zeros((2, 2))], [0.5, 0.5]).any()


def test_child_probability_multiplies_down_the_tree_and_keeps_a_uniform_floor() -> None:
    heat = np.zeros((2, 2))
    heat[0, 1] = 1.0  # all the cue in the top-right quadrant
    cue = HeatmapMass.from_heatmap(heat, Box(0, 0, 100, 100), 2)
    top_right, bottom_left = Box(50, 0, 100, 50), Box(0, 50, 50, 100)
    assert child_probability(0.5, cue, top_right, 0.1) == pytest.approx(0.5 * (0.9 + 0.025))
    # Nothing in the cue: the floor's area share still reaches it.
    assert child_probability(0.5, cue, bottom_left, 0.1) == pytest.approx(0.5 * 0.025)
    assert child_probability(0.5, cue, bottom_left, 0.5) == pytest.approx(0.5 * 0.125)
    # A flat cue: the area share alone.
    flat = HeatmapMass.from_heatmap(np.zeros((2, 2)), Box(0, 0, 100, 100), 2)
    assert child_probability(1.0, flat, top_right, 0.1) == pytest.approx(0.25)


def test_vstar_priorities_follow_the_probability_product() -> None:
    """A sharp root cue sends vstar straight into its quadrant, with P = 0.9 + 0.1 x area."""

    def answer(call: int, view: int, phrase: str) -> PatchPrediction:
        heat = np.zeros((2, 2))
        if call == 0:
            heat[1, 1] = 5.0  # strong (above the 0.6 root threshold), bottom-right
        return PatchPrediction((), heat)

    model = ScriptedModel(answer)
    result = VStarSearch(model, SearchConfig(max_calls=3, native_tiles=0)).search(
        VirtualPyramid(4000, 3000), "star"
    )
    second = result.trace[1]
    assert second.patch.x2 == 4000
    assert second.patch.y2 == 3000
    area_share = second.patch.area / (4000 * 3000)
    mass_share = HeatmapMass.from_heatmap(
        np.array([[0.0, 0.0], [0.0, 1.0]]), Box(0, 0, 4000, 3000), 1
    ).share(second.patch)
    assert second.priority == pytest.approx(0.9 * mass_share + 0.1 * area_share)
