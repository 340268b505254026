"""A lazily built pyramid of downscaled copies of one image, for cheap patch views.

A search looks at the same large image hundreds of times, most often at coarse
scales (the root of a 12000x9000 scan is shown to the model at 512 px). Resizing each
such view from full resolution reads every one of the patch's pixels; resizing it from
a level that is already close to the wanted resolution reads at most 4x the output.
The levels cost 1/3 of the image's memory in total and are built once, on demand.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from PIL import Image

from seal_agent.errors import InvalidImageError
from seal_agent.imaging.geometry import Box, ViewTransform, validate_box, view_size

#: No level is built whose longer side would be below this: views are at least this
#: large in practice, so smaller levels would never be chosen.
MIN_LEVEL_SIDE = 256


def _as_rgb(image: object) -> Image.Image:
    if not isinstance(image, Image.Image):
        raise InvalidImageError(f"expected a PIL image, got {type(image).__name__}")
    if image.width < 1 or image.height < 1:
        raise InvalidImageError(f"image has no pixels ({image.width}x{image.height})")
    try:
        image.load()  # a lazily opened file fails here, with our message, not mid-search
        return to_rgb(image)
    except (OSError, ValueError) as exc:
        raise InvalidImageError(
            f"cannot convert an image of mode {image.mode!r} to RGB: {exc}"
        ) from exc


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB, holding as few full-size copies as possible at once.

    Transparency is flattened onto white, as a viewer would show it, instead of letting
    transparent pixels turn into whatever colour they happen to store; 16/32-bit grey is
    rescaled to 8 bit (PIL would clip). ``decoding.decode_cost`` mirrors the copies made.
    """
    if image.mode == "RGB":
        return image
    if image.mode == "La":  # premultiplied grey + alpha: Pillow converts it only to LA
        image = image.convert("LA")
    if image.mode in ("RGBA", "RGBa", "LA"):
        # Pillow blends these onto RGB directly, the alpha band as the mask: no copy.
        canvas = Image.new("RGB", image.size, (255, 255, 255))
        canvas.paste(image, mask=image)
        return canvas
    if image.mode == "PA" or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba)
        return canvas
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _wide_grey_to_rgb(image)
    return image.convert("RGB")


def _wide_grey_stripes(image: Image.Image, stripe_pixels: int) -> Iterator[tuple[int, Any]]:
    import numpy as np

    rows = max(1, stripe_pixels // image.width)
    for y in range(0, image.height, rows):
        stripe = image.crop((0, y, image.width, min(image.height, y + rows)))
        yield y, np.array(stripe, dtype=np.float32)  # a writable copy of one stripe


def _wide_grey_to_rgb(image: Image.Image) -> Image.Image:
    return wide_grey_to_l(image).convert("RGB")


def wide_grey_to_l(image: Image.Image, stripe_pixels: int = 1_000_000) -> Image.Image:
    """16/32-bit grey rescaled to 8 bit in row stripes (never a full-size float copy)."""
    import numpy as np

    lo, hi = np.inf, -np.inf
    for _, values in _wide_grey_stripes(image, stripe_pixels):
        if np.isfinite(values).any():
            lo = min(lo, float(np.nanmin(values[np.isfinite(values)])))
            hi = max(hi, float(np.nanmax(values[np.isfinite(values)])))
    if lo > hi:  # no finite value at all
        lo = hi = 0.0
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    grey = np.empty((image.height, image.width), dtype=np.uint8)
    for y, values in _wide_grey_stripes(image, stripe_pixels):
        # inf - inf and inf * 0 are NaN, set to 0 below: not worth a RuntimeWarning
        # (an error where warnings are errors).
        with np.errstate(invalid="ignore", over="ignore"):
            values -= lo
            values *= scale
        np.clip(values, 0, 255, out=values)
        grey[y : y + values.shape[0]] = np.nan_to_num(values)
    return Image.frombuffer("L", image.size, grey, "raw", "L", 0, 1)  # shares ``grey``


class ImagePyramid:
    """Level 0 is the RGB image at full resolution; level k halves each side of level k-1.

    Thread-safe: levels are built under a lock, and views only read them.
    """

    def __init__(self, image: Image.Image) -> None:
        self._levels: list[Image.Image] = [_as_rgb(image)]
        self._lock = threading.Lock()
        self.width, self.height = self._levels[0].size

    # -- public API ------------------------------------------------------------------
    @property
    def image(self) -> Image.Image:
        """The full-resolution RGB image (not a copy: do not modify it)."""
        return self._levels[0]

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def full_box(self) -> Box:
        return Box.full(self.width, self.height)

    def levels_built(self) -> int:
        """How many levels exist now (level 0 included); for tests and diagnostics."""
        return len(self._levels)

    def crop(self, box: Box | tuple[float, float, float, float]) -> Image.Image:
        """Full-resolution pixels of ``box`` (rounded outwards, clipped to the image)."""
        b = validate_box(box, self.width, self.height).round_out().clip(self.width, self.height)
        return self._levels[0].crop((int(b.x1), int(b.y1), int(b.x2), int(b.y2)))

    def view(
        self, patch: Box | tuple[float, float, float, float], max_side: int
    ) -> tuple[Image.Image, ViewTransform]:
        """The patch resized so that its longer side is ``max_side``, and its frame.

        Resized from the coarsest level that still has at least the output's resolution,
        so a view never downsamples more than 2x in one step; the area-averaging filter
        makes a small object blur into its surroundings as in a real encoder's input.
        """
        if max_side < 1:
            raise ValueError(f"max_side must be >= 1, got {max_side}")
        patch = validate_box(patch, self.width, self.height)
        out_w, out_h = view_size(patch, max_side)
        # View pixels per image pixel; the level must have at least this many.
        needed = max(out_w / patch.width, out_h / patch.height)
        level = self._level_for(needed)
        fx, fy = level.width / self.width, level.height / self.height
        region = (patch.x1 * fx, patch.y1 * fy, patch.x2 * fx, patch.y2 * fy)
        downsampling = out_w <= region[2] - region[0] and out_h <= region[3] - region[1]
        # BOX averages the source pixels under each output pixel (area filter) when
        # shrinking; when enlarging a small patch, BILINEAR avoids blocky nearest-pixel
        # replication that no camera would produce.
        resample = Image.Resampling.BOX if downsampling else Image.Resampling.BILINEAR
        view = level.resize((out_w, out_h), resample=resample, box=region)
        return view, ViewTransform(patch, out_w, out_h)

    # -- levels ----------------------------------------------------------------------
    def _level_for(self, needed_scale: float) -> Image.Image:
        """The coarsest level whose scale (level px per image px) is >= needed_scale.

        Level sizes are known in advance (``reduce`` rounds up), so only the chosen
        level is ever built.
        """
        index, w, h = 0, self.width, self.height
        while max(w, h) >= 2 * MIN_LEVEL_SIDE:
            next_w, next_h = -(-w // 2), -(-h // 2)
            if next_w / self.width < needed_scale or next_h / self.height < needed_scale:
                break
            index, w, h = index + 1, next_w, next_h
        return self._get_level(index)

    def _get_level(self, index: int) -> Image.Image:
        levels = self._levels
        if index < len(levels):  # list reads are atomic; levels are never removed
            return levels[index]
        with self._lock:
            while len(self._levels) <= index:
                self._levels.append(self._levels[-1].reduce(2))
            return self._levels[index]


def as_pyramid(image: Image.Image | ImagePyramid) -> ImagePyramid:
    """Accept either; callers that search one image many times should pass a pyramid."""
    if isinstance(image, ImagePyramid):
        return image
    if not isinstance(image, Image.Image):
        raise InvalidImageError(
            f"expected a PIL image or an ImagePyramid, got {type(image).__name__}"
        )
    return ImagePyramid(image)


__all__ = ["MIN_LEVEL_SIDE", "ImagePyramid", "as_pyramid", "to_rgb", "wide_grey_to_l"]
