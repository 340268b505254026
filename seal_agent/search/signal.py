"""How much a cue heatmap actually discriminates, and where it points.

A heatmap steers the search only if it tells regions apart. Real detectors' maps
carry nothing for objects a few model pixels wide (a flat or noisy map), and a
search that keeps descending through such coarse views pays for views that cannot
help. These measures let the engine tell a telling map from a flat one on any
model's raw scale (OWL logits, probabilities, shape world's [0, 1] maps).
"""

from __future__ import annotations

import math

import numpy as np

from seal_agent.imaging.geometry import Box


def peak_signal(heatmap: np.ndarray) -> float:
    """The peak's z-score over the map's cells, relative to what noise would give.

    ``(max - mean) / std`` divided by ``sqrt(2 ln N)``, about the largest z of N
    independent Gaussian cells: about 1 or below for a map of pure noise, 0 for a flat
    map, and well above 1 for a map with a distinct peak. Scale-free, so it reads
    logits and probabilities alike. (On tiny grids the reference is capped at half
    the largest z any N cells can reach, ``sqrt(N - 1)``, so a one-cell peak on a 2x2
    map still reads as a peak.)
    """
    hm = np.asarray(heatmap, dtype=np.float64)
    if hm.size < 2:
        return 0.0
    std = float(hm.std())
    if not std > 1e-12 * max(1.0, float(np.abs(hm).max())):
        return 0.0
    z = (float(hm.max()) - float(hm.mean())) / std
    noise = min(math.sqrt(2.0 * math.log(hm.size)), math.sqrt(hm.size - 1) / 2)
    return z / noise


def peak_cell(normalised: np.ndarray, patch: Box) -> Box:
    """The heatmap's strongest cell as a box in image pixels."""
    rows, cols = normalised.shape
    r, c = np.unravel_index(int(np.argmax(normalised)), normalised.shape)
    cw, ch = patch.width / cols, patch.height / rows
    return Box(
        patch.x1 + c * cw, patch.y1 + r * ch, patch.x1 + (c + 1) * cw, patch.y1 + (r + 1) * ch
    )


def peak_share(normalised: np.ndarray, patch: Box, window: Box, level: float = 0.5) -> float:
    """Share of the map's strong mass (cells >= ``level`` of the peak) inside ``window``.

    1.0 when everything the map finds bright lies in the window (one place to look);
    low when bright cells are spread over several places (several same-coloured
    objects, a texture) and one window cannot settle the question.
    """
    rows, cols = normalised.shape
    strong = np.where(normalised >= level, normalised, 0.0)
    total = float(strong.sum())
    if total <= 0:
        return 0.0
    sx, sy = cols / patch.width, rows / patch.height
    c1 = max(0, math.floor((window.x1 - patch.x1) * sx))
    c2 = min(cols, math.ceil((window.x2 - patch.x1) * sx))
    r1 = max(0, math.floor((window.y1 - patch.y1) * sy))
    r2 = min(rows, math.ceil((window.y2 - patch.y1) * sy))
    if c2 <= c1 or r2 <= r1:
        return 0.0
    return float(strong[r1:r2, c1:c2].sum()) / total


__all__ = ["peak_cell", "peak_share", "peak_signal"]
