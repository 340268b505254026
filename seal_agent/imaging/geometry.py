"""Boxes, patch splitting and coordinate frames.

Every box that leaves this module is in ORIGINAL-IMAGE pixel coordinates
``(x1, y1, x2, y2)`` with ``x2``/``y2`` exclusive, unless a name says otherwise
(``view`` = the resized picture a model is shown, ``patch`` = a region of the image).
Keeping one frame everywhere is what lets a search, a graph checkpoint and a tool
artifact agree on where a target is.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from seal_agent.errors import InvalidBoxError


class Box(NamedTuple):
    """An axis-aligned box ``(x1, y1, x2, y2)`` in pixels; ``x2``/``y2`` are exclusive.

    A NamedTuple so that it is immutable, cheap in the search's inner loop, and
    serialises as a plain list (JSON, msgpack checkpoints, tool artifacts).
    """

    x1: float
    y1: float
    x2: float
    y2: float

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float) -> Box:
        """From V*Bench's ``[x, y, w, h]`` annotation format."""
        return cls(x, y, x + w, y + h)

    @classmethod
    def full(cls, width: int, height: int) -> Box:
        """The whole image."""
        return cls(0, 0, width, height)

    # -- measures -----------------------------------------------------------------
    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2)

    @property
    def is_empty(self) -> bool:
        return not (self.width > 0 and self.height > 0)

    def to_xywh(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.width, self.height)

    # -- operations ---------------------------------------------------------------
    def intersection(self, other: Box) -> Box:
        """Overlap of two boxes; may be empty (check ``is_empty``)."""
        return Box(
            max(self.x1, other.x1),
            max(self.y1, other.y1),
            min(self.x2, other.x2),
            min(self.y2, other.y2),
        )

    def iou(self, other: Box) -> float:
        inter = self.intersection(other).area
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def contains(self, other: Box) -> bool:
        return (
            self.x1 <= other.x1
            and self.y1 <= other.y1
            and other.x2 <= self.x2
            and other.y2 <= self.y2
        )

    def clip(self, width: float, height: float) -> Box:
        """Clip to the image ``[0, width) x [0, height)``."""
        return Box(
            min(max(self.x1, 0.0), width),
            min(max(self.y1, 0.0), height),
            min(max(self.x2, 0.0), width),
            min(max(self.y2, 0.0), height),
        )

    def scale_about_center(self, factor: float) -> Box:
        """Grow (factor > 1) or shrink the box around its centre."""
        cx, cy = self.center
        hw, hh = self.width * factor / 2, self.height * factor / 2
        return Box(cx - hw, cy - hh, cx + hw, cy + hh)

    def expand(self, margin_x: float, margin_y: float) -> Box:
        return Box(self.x1 - margin_x, self.y1 - margin_y, self.x2 + margin_x, self.y2 + margin_y)

    def round_out(self) -> Box:
        """Smallest integer box containing this one (for cropping pixels)."""
        return Box(math.floor(self.x1), math.floor(self.y1), math.ceil(self.x2), math.ceil(self.y2))

    def normalized(self, width: float, height: float, ndigits: int = 3) -> tuple[float, ...]:
        """Coordinates divided by the frame size, rounded (the VWM's location text)."""
        return (
            round(self.x1 / width, ndigits),
            round(self.y1 / height, ndigits),
            round(self.x2 / width, ndigits),
            round(self.y2 / height, ndigits),
        )


def validate_box(box: Box | tuple[float, float, float, float], width: int, height: int) -> Box:
    """Check a caller-supplied box against an image and return it as a ``Box``.

    Raises ``InvalidBoxError`` with the reason, never lets NaN or a zero-area box
    reach a crop (PIL would silently return an empty image).
    """
    b = Box(*box)
    if not all(math.isfinite(v) for v in b):
        raise InvalidBoxError(f"box {tuple(b)} has a non-finite coordinate")
    if b.is_empty:
        raise InvalidBoxError(f"box {tuple(b)} has zero or negative area")
    clipped = b.clip(width, height)
    if clipped.is_empty:
        raise InvalidBoxError(f"box {tuple(b)} lies outside the {width}x{height} image")
    return clipped


def crop_box_around(box: Box, width: int, height: int, scale: float = 1.2) -> Box:
    """The reference's crop for the VWM: ``scale`` x the found box, centred, clipped."""
    return box.scale_about_center(scale).clip(width, height).round_out().clip(width, height)


# -- splitting ---------------------------------------------------------------------
def split_grid(width: float, height: float) -> tuple[int, int]:
    """(columns, rows) of the reference's aspect-preserving split.

    h/w >= 2 -> 1 x 4 (a column of rows), h/w <= 0.5 -> 4 x 1, otherwise 2 x 2.
    """
    ratio = height / width
    if ratio >= 2:
        return 1, 4
    if ratio <= 0.5:
        return 4, 1
    return 2, 2


def split_box(patch: Box, overlap: float = 0.0) -> list[Box]:
    """Split an integer patch into sub-patches, row-major, exactly as the reference does.

    Integer strides; the last row/column takes the remainder. With ``overlap`` > 0
    each sub-patch is grown by that fraction of its stride on every side (clipped to
    the parent), so that a target cut by a split line lies whole in some child.
    ``overlap=0`` reproduces the reference's tiling, which exactly partitions the patch.
    """
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    x0, y0 = int(patch.x1), int(patch.y1)
    w, h = int(patch.x2) - x0, int(patch.y2) - y0
    if w < 1 or h < 1:
        raise InvalidBoxError(f"cannot split an empty patch {tuple(patch)}")
    cols, rows = split_grid(w, h)
    cols, rows = min(cols, w), min(rows, h)
    sx, sy = w // cols, h // rows
    children: list[Box] = []
    for j in range(rows):
        for i in range(cols):
            cw = w - i * sx if i == cols - 1 else sx
            ch = h - j * sy if j == rows - 1 else sy
            child = Box(x0 + i * sx, y0 + j * sy, x0 + i * sx + cw, y0 + j * sy + ch)
            if overlap > 0:
                mx, my = math.ceil(overlap * sx), math.ceil(overlap * sy)
                child = child.expand(mx, my).intersection(patch)
            children.append(child)
    return children


# -- frames --------------------------------------------------------------------------
class ViewTransform(NamedTuple):
    """Maps between a patch of the image and the resized view a model was shown."""

    patch: Box
    view_width: int
    view_height: int

    @property
    def scale_x(self) -> float:
        """View pixels per image pixel, horizontally."""
        return self.view_width / self.patch.width

    @property
    def scale_y(self) -> float:
        return self.view_height / self.patch.height

    def to_image(self, box: Box) -> Box:
        """A box in view pixels -> original-image pixels."""
        return Box(
            self.patch.x1 + box.x1 / self.scale_x,
            self.patch.y1 + box.y1 / self.scale_y,
            self.patch.x1 + box.x2 / self.scale_x,
            self.patch.y1 + box.y2 / self.scale_y,
        )

    def to_view(self, box: Box) -> Box:
        """A box in original-image pixels -> view pixels."""
        return Box(
            (box.x1 - self.patch.x1) * self.scale_x,
            (box.y1 - self.patch.y1) * self.scale_y,
            (box.x2 - self.patch.x1) * self.scale_x,
            (box.y2 - self.patch.y1) * self.scale_y,
        )


def view_size(patch: Box, max_side: int) -> tuple[int, int]:
    """(width, height) of a patch resized so that its longer side is ``max_side``."""
    w, h = patch.width, patch.height
    if w <= 0 or h <= 0:
        raise InvalidBoxError(f"patch {tuple(patch)} has no area")
    s = max_side / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))
