"""The views a search would show the model on its way to a target, laid out as its tree.

Calibration must measure the model on what the search shows it: the root (the whole
image shrunk to ``input_size``), then at every split level the patch holding the
target AND its siblings (the patches the search weighs against it at that step), down
to the leaves, and the native-resolution tiles (what leaves, candidate zooms and the
sliding window see) around the target. Scoring the whole tree instead would count
thousands of patches a guided search never visits (a 4000x3000 image has ~340 at a
512 px input), and a rare distractor among them would set every threshold; the
search's own path with its alternatives is the population its decisions are made on.
Views that do not hold the target are not descended into.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from seal_agent.imaging.geometry import Box, split_box
from seal_agent.search.tiling import (
    is_native_leaf,
    is_seal_leaf,
    native_tiles,
    seal_smallest_size,
)

Layout = Literal["vstar", "seal"]
#: Level given to native tiles (not a tree level: they are all leaves).
TILE_LEVEL = 0
#: Trees deeper than this are not laid out (an 1:20 panorama at a 32 px input would be).
MAX_LEVELS = 12


@dataclass(frozen=True, slots=True)
class LaidOutView:
    """One patch the search could visit, and what calibration needs to know about it."""

    patch: Box
    level: int  # 1 = root; TILE_LEVEL for native tiles
    kind: Literal["root", "split", "tile"]
    is_leaf: bool
    children: tuple[Box, ...]  # where a cue on this view would send the search
    holds_target: bool
    weight: float = 1.0  # how many views of the population this one stands for


def holds(patch: Box, target: Box) -> bool:
    """True when the target's centre lies in the patch (the search can find it there)."""
    cx, cy = target.center
    return patch.x1 <= cx < patch.x2 and patch.y1 <= cy < patch.y2


def lay_out_views(
    width: int,
    height: int,
    target: Box,
    input_size: int,
    *,
    layout: Layout = "vstar",
    split_overlap: float = 0.125,
    include_tiles: bool = True,
    min_leaf_size: int = 224,
    leaf_size_scale: float = 4.0,
) -> list[LaidOutView]:
    """The views to measure for one target: its path down the tree with the siblings
    at each step, and the native tiles within one tile of it."""
    overlap = 0.0 if layout == "seal" else split_overlap
    smallest = seal_smallest_size(width, height, min_leaf_size, leaf_size_scale)

    def leaf(patch: Box) -> bool:
        if layout == "seal":
            return is_seal_leaf(patch, smallest)
        return is_native_leaf(patch, input_size)

    views: list[LaidOutView] = []
    current = [(Box.full(width, height), "root")]
    level = 1
    while current and level <= MAX_LEVELS:
        next_level: list[tuple[Box, str]] = []
        for patch, kind in current:
            is_leaf = leaf(patch)
            children = () if is_leaf else tuple(c for c in split_box(patch, overlap) if c != patch)
            inside = holds(patch, target)
            views.append(
                LaidOutView(
                    patch, level, "root" if kind == "root" else "split", is_leaf, children, inside
                )
            )
            if inside:
                next_level.extend((c, "split") for c in children)
        current = list(dict.fromkeys(next_level))  # overlapping parents share no child
        level += 1
    if include_tiles:
        margin = math.ceil(split_overlap * input_size)
        tiles = native_tiles(Box.full(width, height), input_size, margin)
        near = target.expand(input_size, input_size)
        if len(tiles) > 1:
            for tile in tiles:
                if not tile.intersection(near).is_empty:
                    views.append(
                        LaidOutView(tile, TILE_LEVEL, "tile", True, (), holds(tile, target))
                    )
    return views


__all__ = ["TILE_LEVEL", "LaidOutView", "Layout", "holds", "lay_out_views"]
