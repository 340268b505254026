"""Property tests for the splitter and the coordinate frames every search result relies on."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from seal_agent.errors import InvalidBoxError
from seal_agent.imaging.geometry import (
    Box,
    ViewTransform,
    crop_box_around,
    split_box,
    split_grid,
    validate_box,
    view_size,
)

sides = st.integers(min_value=1, max_value=20000)
offsets = st.integers(min_value=0, max_value=5000)
overlaps = st.floats(min_value=0.0, max_value=0.49, allow_nan=False)


@st.composite
def patches(draw: st.DrawFn) -> Box:
    x, y = draw(offsets), draw(offsets)
    w, h = draw(sides), draw(sides)
    return Box(x, y, x + w, y + h)


@st.composite
def float_boxes(draw: st.DrawFn) -> Box:
    coord = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False)
    x1, y1 = draw(coord), draw(coord)
    w = draw(st.floats(min_value=1e-3, max_value=1e4))
    h = draw(st.floats(min_value=1e-3, max_value=1e4))
    return Box(x1, y1, x1 + w, y1 + h)


# -- split_box -------------------------------------------------------------------------
@given(patches())
@settings(max_examples=300)
def test_split_without_overlap_partitions_the_patch_exactly(patch: Box) -> None:
    children = split_box(patch)
    assert sum(c.area for c in children) == patch.area
    for i, a in enumerate(children):
        assert patch.contains(a)
        assert not a.is_empty
        assert all(v == int(v) for v in a)  # integer strides, as the reference
        for b in children[i + 1 :]:
            assert a.intersection(b).is_empty


@given(patches())
def test_split_grid_follows_the_aspect_ratio(patch: Box) -> None:
    cols, rows = split_grid(patch.width, patch.height)
    ratio = patch.height / patch.width
    expected = (1, 4) if ratio >= 2 else (4, 1) if ratio <= 0.5 else (2, 2)
    assert (cols, rows) == expected
    children = split_box(patch)
    assert len(children) == min(cols, int(patch.width)) * min(rows, int(patch.height))


@given(patches())
def test_split_is_row_major_and_last_child_takes_the_remainder(patch: Box) -> None:
    children = split_box(patch)
    keys = [(c.y1, c.x1) for c in children]
    assert keys == sorted(keys)
    assert children[-1].x2 == patch.x2
    assert children[-1].y2 == patch.y2
    assert children[0].x1 == patch.x1
    assert children[0].y1 == patch.y1


def test_split_matches_the_reference_on_a_known_patch() -> None:
    # get_sub_patches([0, 0, 1001, 777], 2, 2): strides 500 / 388, remainder to the last.
    assert split_box(Box(0, 0, 1001, 777)) == [
        Box(0, 0, 500, 388),
        Box(500, 0, 1001, 388),
        Box(0, 388, 500, 777),
        Box(500, 388, 1001, 777),
    ]
    # 9000x600 panorama: h/w <= 0.5 -> four columns.
    assert split_box(Box(0, 0, 9000, 600)) == [
        Box(0, 0, 2250, 600),
        Box(2250, 0, 4500, 600),
        Box(4500, 0, 6750, 600),
        Box(6750, 0, 9000, 600),
    ]


@given(patches(), overlaps)
@settings(max_examples=300)
def test_overlapping_children_stay_inside_and_grow_their_tiles(patch: Box, overlap: float) -> None:
    plain = split_box(patch)
    grown = split_box(patch, overlap)
    assert len(plain) == len(grown)
    for p, g in zip(plain, grown, strict=True):
        assert patch.contains(g)
        assert g.contains(p)


@given(patches(), overlaps, st.data())
@settings(max_examples=300)
def test_a_target_no_larger_than_the_overlap_lies_whole_in_some_child(
    patch: Box, overlap: float, data: st.DataObject
) -> None:
    cols, rows = split_grid(patch.width, patch.height)
    cols, rows = min(cols, int(patch.width)), min(rows, int(patch.height))
    sx, sy = int(patch.width) // cols, int(patch.height) // rows
    # The margin is ceil(overlap * stride) on each side: a target up to that size fits.
    tw = math.ceil(overlap * sx) if cols > 1 else int(patch.width)
    th = math.ceil(overlap * sy) if rows > 1 else int(patch.height)
    assume(tw >= 1 and th >= 1)
    tw, th = min(tw, int(patch.width)), min(th, int(patch.height))
    x = data.draw(st.integers(int(patch.x1), int(patch.x2) - tw))
    y = data.draw(st.integers(int(patch.y1), int(patch.y2) - th))
    target = Box(x, y, x + tw, y + th)
    assert any(child.contains(target) for child in split_box(patch, overlap))


@pytest.mark.parametrize("bad", [Box(5, 5, 5, 10), Box(0, 0, 0.5, 0.5), Box(3, 3, 1, 1)])
def test_split_rejects_an_empty_patch(bad: Box) -> None:
    with pytest.raises(InvalidBoxError):
        split_box(bad)


def test_split_rejects_negative_overlap() -> None:
    with pytest.raises(ValueError, match="overlap"):
        split_box(Box(0, 0, 100, 100), -0.1)


# -- frames ------------------------------------------------------------------------------
@given(float_boxes(), st.integers(1, 2048), float_boxes())
@settings(max_examples=300)
def test_view_transform_round_trips(patch: Box, max_side: int, box: Box) -> None:
    w, h = view_size(patch, max_side)
    frame = ViewTransform(patch, w, h)
    back = frame.to_image(frame.to_view(box))
    scale = max(abs(v) for v in (*box, *patch)) + 1
    for a, b in zip(back, box, strict=True):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9 * scale)


@given(float_boxes(), st.integers(1, 2048))
def test_view_transform_maps_the_patch_onto_the_whole_view(patch: Box, max_side: int) -> None:
    w, h = view_size(patch, max_side)
    view = ViewTransform(patch, w, h).to_view(patch)
    for a, b in zip(view, (0, 0, w, h), strict=True):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


@given(patches(), st.integers(1, 2048))
def test_view_size_has_the_requested_longer_side_and_keeps_the_aspect(
    patch: Box, max_side: int
) -> None:
    w, h = view_size(patch, max_side)
    assert max(w, h) == max_side or min(w, h) == 1
    assert w >= 1
    assert h >= 1
    # Each side within rounding of the exact aspect-preserving size.
    s = max_side / max(patch.width, patch.height)
    assert abs(w - patch.width * s) <= 0.5 + 1e-9 or w == 1
    assert abs(h - patch.height * s) <= 0.5 + 1e-9 or h == 1


def test_view_size_rejects_an_empty_patch() -> None:
    with pytest.raises(InvalidBoxError):
        view_size(Box(0, 0, 0, 10), 512)


# -- validation and normalisation ----------------------------------------------------------
@given(float_boxes(), st.integers(1, 10000), st.integers(1, 10000))
def test_validate_box_returns_a_non_empty_box_inside_the_image_or_raises(
    box: Box, width: int, height: int
) -> None:
    if box.clip(width, height).is_empty:
        with pytest.raises(InvalidBoxError, match=r"outside|area"):
            validate_box(box, width, height)
        return
    valid = validate_box(box, width, height)
    assert not valid.is_empty
    assert Box(0, 0, width, height).contains(valid)


@pytest.mark.parametrize(
    ("box", "reason"),
    [
        (Box(float("nan"), 0, 10, 10), "non-finite"),
        (Box(0, 0, float("inf"), 10), "non-finite"),
        (Box(10, 10, 10, 20), "zero or negative area"),
        (Box(20, 20, 10, 10), "zero or negative area"),
        (Box(200, 200, 300, 300), "outside"),
        (Box(-50, -50, -1, -1), "outside"),
    ],
)
def test_validate_box_names_the_problem(box: Box, reason: str) -> None:
    with pytest.raises(InvalidBoxError, match=reason):
        validate_box(box, 100, 100)


@given(patches(), st.integers(1, 20000), st.integers(1, 20000))
def test_normalised_coordinates_lie_in_the_unit_square_for_boxes_in_the_image(
    box: Box, width: int, height: int
) -> None:
    assume(not box.clip(width, height).is_empty)
    clipped = validate_box(box, width, height)
    norm = clipped.normalized(width, height)
    assert all(0.0 <= v <= 1.0 for v in norm)
    assert norm[0] <= norm[2]
    assert norm[1] <= norm[3]


@given(patches(), st.integers(1, 20000), st.integers(1, 20000), st.floats(1.0, 3.0))
def test_crop_box_around_is_an_integer_box_inside_the_image(
    box: Box, width: int, height: int, scale: float
) -> None:
    assume(not box.clip(width, height).is_empty)
    crop = crop_box_around(box, width, height, scale)
    assert Box(0, 0, width, height).contains(crop)
    assert all(v == int(v) for v in crop)
    assert not crop.is_empty


def test_crop_box_around_is_centred_and_scaled_away_from_borders() -> None:
    crop = crop_box_around(Box(100, 100, 150, 150), 1000, 1000, 1.2)
    assert crop == Box(95, 95, 155, 155)
