"""Finding tables: large solid brown regions, with the objects on them filled in."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from seal_agent.imaging.geometry import Box
from seal_agent.shapeworld.perception.acuity import acuity

_NEAR_TABLE = 10  # max channel difference (0..255) of a pixel that is table brown
_TABLE_STRIDE = 2  # tables are large: found on every other pixel, 4x cheaper
_MIN_TABLE_CELLS = 24
_FINE_TABLE_VIEW = 128  # views with a shorter side below this are searched at every pixel


def _find_tables(
    near_brown: np.ndarray,
) -> tuple[np.ndarray, tuple[Box, ...], tuple[float, ...]]:
    """Large solid brown regions, with the objects lying on them filled in.

    Returns the mask on a grid of ``_TABLE_STRIDE`` model px, and boxes in model px.
    Solidity counts the objects on a table as table (the holes are filled first): in a
    close-up of an object on a table, the cloth is only a ring around it. Thin brown-ish
    structures (the mixed edge pixels of a red or orange shape) enclose nothing solid
    and are dropped. A small view is searched at every pixel, so that a ring one pixel
    thin is not lost between the samples.
    """
    st = _TABLE_STRIDE if min(near_brown.shape) >= _FINE_TABLE_VIEW else 1
    coarse = near_brown[::st, ::st]
    mask = np.zeros(coarse.shape, dtype=bool)
    boxes: list[Box] = []
    scores: list[float] = []
    if np.count_nonzero(coarse) >= _MIN_TABLE_CELLS:
        labels, n = ndimage.label(coarse)
        areas = np.bincount(labels.reshape(-1), minlength=n + 1)
        for i, region in enumerate(ndimage.find_objects(labels), start=1):
            if region is None or areas[i] < _MIN_TABLE_CELLS:
                continue
            y, x = region
            bh, bw = y.stop - y.start, x.stop - x.start
            filled = ndimage.binary_fill_holes(labels[region] == i)
            solidity = np.count_nonzero(filled) / (bh * bw)
            if min(bh, bw) * st < 6 or solidity < 0.5:
                continue
            mask[region] |= filled
            boxes.append(Box(x.start * st, y.start * st, x.stop * st, y.stop * st))
            side = min(bh, bw) * st / 2
            scores.append(round(float(min(1.0, solidity / 0.9) * acuity(side)), 4))
    if st != _TABLE_STRIDE:
        mask = mask[::_TABLE_STRIDE, ::_TABLE_STRIDE]
    return mask, tuple(boxes), tuple(scores)
