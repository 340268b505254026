"""Where the patch tree stops, and the fixed windows that do not come from splitting.

Two leaf rules: the reference's (a fraction of the image's shorter side) and ours
(the model sees the patch at native resolution), the sliding-window baseline's tiling,
and the native-resolution window a candidate zoom looks through.
"""

from __future__ import annotations

import math

from seal_agent.imaging.geometry import Box


def seal_smallest_size(width: int, height: int, min_leaf_size: int, leaf_size_scale: float) -> int:
    """The reference's leaf size: max(ceil(min(W, H) / scale), minimum_size)."""
    return max(math.ceil(min(width, height) / leaf_size_scale), min_leaf_size)


def is_seal_leaf(patch: Box, smallest_size: int) -> bool:
    """Reference rule: a patch whose shorter side is <= the smallest size is not split."""
    return min(patch.width, patch.height) <= smallest_size


def is_native_leaf(patch: Box, input_size: int) -> bool:
    """Our rule: the model already sees every image pixel (longer side <= its input).

    Splitting further cannot add detail, only upsample it; stopping earlier leaves small
    targets a few model pixels wide (the reference's rule stops a 12000x9000 scan at
    3000x2250 patches, where a 12 px target becomes 2 model pixels).
    """
    return max(patch.width, patch.height) <= input_size


def _starts(length: int, tile: int, stride: int) -> list[int]:
    """Window origins covering [0, length): regular stride, the last one flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def sliding_windows(width: int, height: int, tile: int, overlap: int) -> list[Box]:
    """Square ``tile`` windows in raster order, neighbours overlapping by >= ``overlap`` px.

    Every object no larger than ``overlap`` in either side lies whole in some window.
    Images smaller than a tile give one window, the image itself.
    """
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    overlap = min(max(0, overlap), tile - 1)
    stride = tile - overlap
    xs = _starts(width, tile, stride)
    ys = _starts(height, tile, stride)
    return [Box(x, y, min(x + tile, width), min(y + tile, height)) for y in ys for x in xs]


def _axis_tiles(start: int, length: int, tile: int, margin: int) -> list[tuple[int, int]]:
    """Evenly spread windows of ``tile`` px over [start, start + length), overlapping >= margin."""
    if length <= tile:
        return [(start, start + length)]
    count = math.ceil((length - margin) / (tile - margin))
    step = (length - tile) / (count - 1)
    return [(start + round(i * step), start + round(i * step) + tile) for i in range(count)]


def native_tiles(patch: Box, input_size: int, margin: int) -> list[Box]:
    """The fewest native-resolution windows covering ``patch``, neighbours sharing >= margin px.

    Raster order. Used as a patch's children when they would all be leaves, so a search
    steps from a patch straight to native resolution instead of through one more level
    of 2x2 splitting that overshoots below the model's input size.
    """
    margin = min(max(0, margin), input_size - 1)
    x0, y0 = int(patch.x1), int(patch.y1)
    xs = _axis_tiles(x0, int(patch.x2) - x0, input_size, margin)
    ys = _axis_tiles(y0, int(patch.y2) - y0, input_size, margin)
    return [Box(x1, y1, x2, y2) for y1, y2 in ys for x1, x2 in xs]


def zoom_window(candidate: Box, width: int, height: int, input_size: int) -> Box:
    """A square window centred on ``candidate`` that the model sees at native resolution.

    At least ``input_size`` image pixels a side (so nothing is upsampled), and at least
    twice the candidate's longer side so that the object is seen whole and with context;
    shifted, not cut, at the image border; never larger than the image.
    """
    side = max(float(input_size), 2.0 * max(candidate.width, candidate.height))
    w, h = min(side, float(width)), min(side, float(height))
    cx, cy = candidate.center
    x1 = min(max(cx - w / 2, 0.0), width - w)
    y1 = min(max(cy - h / 2, 0.0), height - h)
    return Box(
        math.floor(x1),
        math.floor(y1),
        min(math.floor(x1) + math.ceil(w), width),
        min(math.floor(y1) + math.ceil(h), height),
    )


#: A second look is framed differently from the first when their windows overlap less
#: than this (IoU); otherwise the centred window is shifted by a quarter of its side.
SAME_FRAMING_IOU = 0.5


def reframed_window(
    candidate: Box, seen_in: Box, width: int, height: int, input_size: int
) -> Box | None:
    """A native window holding ``candidate`` whole, framed differently from ``seen_in``.

    The window centred on the candidate (``zoom_window``) if it differs enough from the
    view; else that window slid as far from the view as it can go (on each axis, to the
    end of the range where it stays in the image and holds the candidate an eighth of
    its side from its edges). None
    when no such window differs enough (the image is about one window large).
    """
    centred = zoom_window(candidate, width, height, input_size)
    if centred.iou(seen_in) < SAME_FRAMING_IOU:
        return centred
    w, h = centred.width, centred.height

    def slide(lo: float, hi: float, seen: float) -> int:
        lo, hi = math.ceil(lo), math.floor(hi)
        if hi < lo:  # cannot move on this axis
            return math.floor(seen)
        return lo if abs(lo - seen) >= abs(hi - seen) else hi

    for margin in (8, 0):  # the candidate an eighth of the window from its edges, or less
        mx, my = (w / margin, h / margin) if margin else (0.0, 0.0)
        x1 = slide(max(0.0, candidate.x2 + mx - w), min(width - w, candidate.x1 - mx), seen_in.x1)
        y1 = slide(max(0.0, candidate.y2 + my - h), min(height - h, candidate.y1 - my), seen_in.y1)
        moved = Box(x1, y1, x1 + w, y1 + h)
        inside = moved.x1 >= 0 and moved.y1 >= 0 and moved.x2 <= width and moved.y2 <= height
        if inside and moved.contains(candidate) and moved.iou(seen_in) < SAME_FRAMING_IOU:
            return moved
    return None


def other_framings(
    candidate: Box, first: Box, width: int, height: int, input_size: int, count: int
) -> list[Box]:
    """Up to ``count`` native windows holding ``candidate`` whole, each framed differently
    (IoU below SAME_FRAMING_IOU) from ``first`` and from one another.

    Tried in order: ``reframed_window``'s slide away from ``first``, then the windows
    that put the candidate near each corner (an eighth of the side from its edges).
    Fewer when the image leaves no room (about one window large).
    """
    chosen: list[Box] = []
    if count < 1:
        return chosen
    slid = reframed_window(candidate, first, width, height, input_size)
    options = [] if slid is None else [slid]
    centred = zoom_window(candidate, width, height, input_size)
    w, h = centred.width, centred.height
    mx, my = w / 8, h / 8
    for fx, fy in ((0, 0), (1, 1), (1, 0), (0, 1)):
        x1 = candidate.x1 - mx if fx else candidate.x2 + mx - w
        y1 = candidate.y1 - my if fy else candidate.y2 + my - h
        x1 = min(max(0.0, x1), width - w)
        y1 = min(max(0.0, y1), height - h)
        options.append(Box(math.floor(x1), math.floor(y1), math.floor(x1) + w, math.floor(y1) + h))
    for window in options:
        if len(chosen) >= count:
            break
        if not window.contains(candidate):
            continue
        if all(window.iou(other) < SAME_FRAMING_IOU for other in (first, *chosen)):
            chosen.append(window)
    return chosen


__all__ = [
    "is_native_leaf",
    "is_seal_leaf",
    "native_tiles",
    "other_framings",
    "reframed_window",
    "seal_smallest_size",
    "sliding_windows",
    "zoom_window",
]
