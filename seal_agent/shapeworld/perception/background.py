"""Local background and noise estimation of a view."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from PIL import Image, ImageChops
from scipy import ndimage

from seal_agent.shapeworld.perception.config import _PALETTE_RGB, _TABLE_RGB
from seal_agent.shapeworld.scene import TABLE_COLOUR

_BLOCK = 32  # model px per background block
_COLOURED = 24  # max-channel distance (0..255) within which a pixel is a reference colour
_MIN_BLOCK_PIXELS = 4  # background pixels a block needs for its own estimate

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def _solid(w: int, h: int) -> Image.Image:
    return Image.new("RGB", (w, h), TABLE_COLOUR)


def _max_channel_difference(a: Image.Image, b: Image.Image) -> np.ndarray:
    r, g, bl = ImageChops.difference(a, b).split()
    return np.asarray(ImageChops.lighter(ImageChops.lighter(r, g), bl))


def _estimate_background(image: Image.Image, in_table: np.ndarray) -> _Background:
    """The smooth local background of the view (an RGB image of its size) and its noise.

    Block medians of pixels that are neither palette- nor table-coloured nor next to
    such a pixel (a median, because the mixed edge pixels of a small shape are neither
    and would bias a mean); blocks without such pixels are filled from their neighbours.
    The block grid is extended linearly by one block on each side and interpolated
    bilinearly, so that a gradient stays a gradient up to the borders.

    Pixels on a table (``in_table``) are left out: brown is the background there, and a
    blurred (JPEG) object on a table is neither brown nor palette-coloured at its edges.
    A close-up of one object (a crop 1.1x its box) may leave no block with background:
    then the view's frame is the background (:func:`_border_level`). Never the median of
    the whole view: that is the object's colour, and an object on a background of its
    own colour is invisible.
    """
    w, h = image.size
    shorter = min(w, h)
    factor = 4 if shorter >= 128 else 2 if shorter >= 64 else 1
    small_image = image.reduce(factor) if factor > 1 else image
    small = np.asarray(small_image, dtype=np.float32)
    sh, sw = small.shape[:2]
    # Blocks of _BLOCK px, smaller in a thin view (a panorama's 512x34 root) so that the
    # gradient across it is still sampled by several blocks.
    block = min(_BLOCK, max(8, shorter // 4))
    k = max(1, block // factor)  # block side in reduced pixels
    by, bx = -(-sh // k), -(-sw // k)
    palette_distance, brown_distance = _distance_to_references(small_image)
    coloured = (palette_distance <= _COLOURED) | (brown_distance <= _COLOURED)
    coloured |= in_table[: sh * factor : factor, : sw * factor : factor]
    valid = ~_dilate(coloured)
    grid, filled = _block_medians(small, valid, k, by, bx)
    noise_samples = None
    if filled.any():
        grid = _fill_empty_blocks(grid, filled)
    else:
        level, noise_samples = _border_level(np.asarray(image), palette_distance, factor)
        grid = np.broadcast_to(level, (by, bx, 3))
    padded = np.pad(grid.astype(np.float64), ((1, 1), (1, 1), (0, 0)), mode="edge")
    if by >= 2:
        padded[0, 1:-1] = 2 * grid[0] - grid[1]
        padded[-1, 1:-1] = 2 * grid[-1] - grid[-2]
    if bx >= 2:
        padded[:, 0] = 2 * padded[:, 1] - padded[:, 2]
        padded[:, -1] = 2 * padded[:, -2] - padded[:, -3]
    # Bilinear between block centres at every reduced pixel (numpy, small), then nearest
    # up to full size (PIL, fast): a gradient of <= 0.25 level/px steps by < 1 level.
    block_px = k * factor
    gy = _interpolation_positions(sh, by, block_px / factor)
    gx = _interpolation_positions(sw, bx, block_px / factor)
    y0 = np.floor(gy).astype(np.intp)
    x0 = np.floor(gx).astype(np.intp)
    fy = (gy - y0)[:, None, None]
    fx = (gx - x0)[None, :, None]
    rows = padded[y0] * (1 - fy) + padded[y0 + 1] * fy
    smooth = rows[:, x0] * (1 - fx) + rows[:, x0 + 1] * fx
    cells = Image.fromarray(np.clip(np.rint(smooth), 0, 255).astype(np.uint8), "RGB")
    bg_image = cells if factor == 1 else cells.resize((w, h), Image.Resampling.NEAREST)
    if noise_samples is None:
        cloth = in_table[: sh * factor : factor, : sw * factor : factor] & (
            brown_distance <= _COLOURED
        )
        noise_samples = _noise_samples(image, bg_image, valid, cloth, factor)
    return _Background(bg_image, _robust_sigma(noise_samples))


class _Background(NamedTuple):
    image: Image.Image
    noise_sigma: float


_NOISE_ROW_STEP = 12  # rows sampled for the noise estimate in a large view
_MIN_NOISE_SAMPLES = 24
_MAD_TO_SIGMA = 1.4826  # sigma of a normal distribution over its median absolute deviation


def _noise_samples(
    image: Image.Image, bg_image: Image.Image, valid: np.ndarray, cloth: np.ndarray, factor: int
) -> np.ndarray:
    """Deviations from the background of plain pixels, on every 12th row of a large view.

    Deviations from the local background rather than differences of neighbouring
    pixels, which an interpolated (enlarged) view has smoothed away: the noise of a view
    enlarged 2x is correlated across 2 px, and a threshold taken from neighbour
    differences would make its every ripple an object. Plain pixels are those the
    background was estimated from (``valid``, on the grid reduced by ``factor``); a view
    with no plain background (inside a table) measures its cloth about brown.
    """
    w, h = image.size
    step = _NOISE_ROW_STEP if h >= 8 * _NOISE_ROW_STEP else 1
    rows = np.arange(step // 2, h, step)
    pixels = np.asarray(image)[rows].astype(np.int16)
    small_rows = np.minimum(rows // factor, valid.shape[0] - 1)
    plain = np.repeat(valid[small_rows], factor, axis=1)[:, :w]
    samples = (pixels - np.asarray(bg_image)[rows])[plain]
    if samples.shape[0] < _MIN_NOISE_SAMPLES:
        on_cloth = np.repeat(cloth[small_rows], factor, axis=1)[:, :w]
        samples = pixels[on_cloth] - np.rint(_TABLE_RGB).astype(np.int16)
    return samples


def _border_level(
    pixels: np.ndarray, palette_distance: np.ndarray, factor: int
) -> tuple[np.ndarray, np.ndarray]:
    """A uniform background for a view that an object (or a table) fills: the median of
    the view's outermost pixels that are not palette-coloured, and their deviations.

    In a close-up the frame around the object is background (dull, or the cloth of the
    table it lies on); inner non-palette pixels are the object's own blurred edge (a
    JPEG's chroma), which would pull the level towards the object's colour.
    """
    h, w = pixels.shape[:2]
    ring = np.zeros((h, w), dtype=bool)
    depth = 2 if min(h, w) >= 16 else 1
    ring[:depth] = ring[-depth:] = True
    ring[:, :depth] = ring[:, -depth:] = True
    palette = np.kron(palette_distance, np.ones((factor, factor), dtype=palette_distance.dtype))
    plain = np.zeros((h, w), dtype=bool)
    plain[: palette.shape[0], : palette.shape[1]] = palette[:h, :w] > _COLOURED
    candidates = pixels[ring & plain].astype(np.float32)
    if candidates.shape[0] < _MIN_BLOCK_PIXELS:  # one colour fills the view
        candidates = pixels.reshape(-1, 3).astype(np.float32)
    level = np.median(candidates, axis=0)
    return level, candidates - level


def _dilate(mask: np.ndarray) -> np.ndarray:
    return ndimage.binary_dilation(mask, structure=_EIGHT_CONNECTED)


def _block_medians(
    small: np.ndarray, valid: np.ndarray, k: int, by: int, bx: int
) -> tuple[np.ndarray, np.ndarray]:
    """(by, bx, 3) median of the valid pixels of each k x k block, and which blocks have
    enough of them for an estimate of their own."""
    sh, sw = small.shape[:2]
    padded_values = np.full((by * k, bx * k, 3), np.nan, dtype=np.float32)
    padded_values[:sh, :sw] = np.where(valid[..., None], small, np.nan)
    blocks = padded_values.reshape(by, k, bx, k, 3).transpose(0, 2, 1, 3, 4)
    blocks = np.sort(blocks.reshape(by, bx, k * k, 3), axis=2)  # NaN (not valid) last
    counts = np.count_nonzero(~np.isnan(blocks[..., 0]), axis=2)
    middle = np.maximum((counts - 1) // 2, 0)[..., None, None]
    grid = np.take_along_axis(blocks, np.broadcast_to(middle, (by, bx, 1, 3)), axis=2)[:, :, 0]
    return grid, counts >= min(_MIN_BLOCK_PIXELS, k * k)


def _interpolation_positions(length: int, blocks: int, block_size: float) -> np.ndarray:
    """Fractional index into the padded block grid of each pixel's centre."""
    centres = np.arange(length) + 0.5
    position = centres / block_size - 0.5 + 1  # +1: the padding block
    return np.clip(position, 0.0, blocks + 1 - 1e-6)


def _distance_to_references(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the max-channel distance to the nearest palette colour and to brown."""
    distances = [
        _max_channel_difference(image, Image.new("RGB", image.size, _rgb(rgb)))
        for rgb in _PALETTE_RGB
    ]
    return np.minimum.reduce(distances), _max_channel_difference(image, _solid(*image.size))


def _rgb(values: np.ndarray) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in values)
    return r, g, b


def _fill_empty_blocks(grid: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """Blocks without background (under a table) take the mean of their known neighbours,
    front by front, so that a gradient runs on across a table rather than stepping to the
    value of whichever side is nearest: the mixed pixels along a table's edge are only
    recognised as cloth-and-background where that background is right."""
    if filled.all():
        return grid
    out = np.where(filled[..., None], grid, 0.0).astype(np.float64)
    known = filled.copy()
    kernel = np.ones((3, 3))
    while not known.all():
        count = ndimage.convolve(known.astype(np.float64), kernel, mode="constant")
        sums = np.stack(
            [ndimage.convolve(out[..., c], kernel, mode="constant") for c in range(3)], axis=-1
        )
        front = ~known & (count > 0)
        out[front] = sums[front] / count[front, None]
        known |= front
    return out


def _robust_sigma(samples: np.ndarray) -> float:
    """Per-channel sigma from the median absolute deviation, averaged over channels."""
    if samples.shape[0] < _MIN_NOISE_SAMPLES:  # flat colours only
        return 0.5
    median = np.median(samples, axis=0)
    mad = np.median(np.abs(samples - median), axis=0).astype(np.float64)
    return max(0.5, float(_MAD_TO_SIGMA * mad.mean()))
