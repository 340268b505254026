"""The frame a VQA model sees an image in, and boxes stated in that frame.

Two families of encoders exist, and a box's normalised coordinates are only meaningful
in the frame the model was actually shown:

* ``native``: the image at its own aspect ratio (Qwen2-VL / Qwen2.5-VL, GPT-4o, Claude,
  Gemini). ``[0, 1]`` coordinates are fractions of the image's width and height.
* ``padded_square``: the image centred in a ``max(w, h)`` square filled with a
  background colour, then resized (LLaVA-1.5's ``expand2square`` with the image
  processor's mean colour; SEAL's VQA model). Coordinates are fractions of the square.
"""

from __future__ import annotations

from typing import Literal

from PIL import Image

from seal_agent.imaging.geometry import Box

Frame = Literal["native", "padded_square"]

#: LLaVA-1.5's pad colour: the CLIP image processor's mean, as ``expand2square`` uses it.
CLIP_MEAN_RGB: tuple[int, int, int] = (122, 116, 104)


def square_offsets(width: int, height: int) -> tuple[int, int, int]:
    """(side, left, top) of an image centred in its padded square (integer, as LLaVA's)."""
    side = max(width, height)
    return side, (side - width) // 2, (side - height) // 2


def pad_to_square(image: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    """``image`` centred in a ``max(w, h)`` square of ``colour`` (a square stays as is)."""
    if image.width == image.height:
        return image
    side, left, top = square_offsets(image.width, image.height)
    canvas = Image.new(image.mode if image.mode == "RGB" else "RGB", (side, side), colour)
    canvas.paste(image.convert("RGB") if image.mode != "RGB" else image, (left, top))
    return canvas


def frame_location(box: Box, width: int, height: int, frame: Frame) -> tuple[float, ...]:
    """``box`` (image pixels) as ``[0, 1]`` coordinates of the frame the model sees."""
    if frame == "padded_square":
        side, left, top = square_offsets(width, height)
        sx = sy = float(side)
    else:
        left = top = 0
        sx, sy = float(width), float(height)
    values = ((box.x1 + left) / sx, (box.y1 + top) / sy, (box.x2 + left) / sx, (box.y2 + top) / sy)
    return tuple(min(1.0, max(0.0, v)) for v in values)


__all__ = [
    "CLIP_MEAN_RGB",
    "Frame",
    "frame_location",
    "pad_to_square",
    "square_offsets",
]
