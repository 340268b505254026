"""Ideal shape geometry and the bank of area-averaged shape templates."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from seal_agent.shapeworld.scene import SHAPES, STAR_INNER_RATIO, Shape

_WINDOW = 20  # model px: side of the window a small blob is compared in
_SUPERSAMPLE = 8
_OFFSETS = 4  # sub-pixel centroid positions per axis: -0.5, -0.25, 0, 0.25
_SIZE_MIN, _SIZE_MAX, _SIZE_RATIO = 1.2, 16.0, 1.06
_SIZES = _SIZE_MIN * _SIZE_RATIO ** np.arange(
    int(math.log(_SIZE_MAX / _SIZE_MIN) / math.log(_SIZE_RATIO)) + 1
)


def _vertices(shape: Shape) -> list[tuple[float, float]]:
    """Polygon of a triangle or star in its unit box [0, 1]²."""
    if shape == "triangle":
        return [(0.0, 1.0), (1.0, 1.0), (0.5, 0.0)]
    inner = STAR_INNER_RATIO * 0.5
    return [
        (
            0.5 + (0.5 if k % 2 == 0 else inner) * math.cos(-math.pi / 2 + k * math.pi / 5),
            0.5 + (0.5 if k % 2 == 0 else inner) * math.sin(-math.pi / 2 + k * math.pi / 5),
        )
        for k in range(10)
    ]


def _outline_length(shape: Shape) -> float:
    """Perimeter of the ideal shape in units of its box side."""
    if shape == "circle":
        return math.pi
    if shape in ("square", "cross"):
        return 4.0  # a plus sign of bars 1/3 thick: twelve edges of 1/3
    vertices = _vertices(shape)
    return sum(math.dist(a, b) for a, b in zip(vertices, vertices[1:] + vertices[:1], strict=True))


def _inside(shape: Shape, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Point membership of the ideal shape in its unit box [0, 1]²."""
    if shape == "square":
        return (x >= 0) & (x < 1) & (y >= 0) & (y < 1)
    if shape == "circle":
        return (x - 0.5) ** 2 + (y - 0.5) ** 2 <= 0.25
    if shape == "cross":
        in_box = (x >= 0) & (x < 1) & (y >= 0) & (y < 1)
        return in_box & ((np.abs(x - 0.5) <= 1 / 6) | (np.abs(y - 0.5) <= 1 / 6))
    vertices = _vertices(shape)
    inside = np.zeros(np.broadcast(x, y).shape, dtype=bool)
    for (x1, y1), (x2, y2) in zip(vertices, vertices[1:] + vertices[:1], strict=True):
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (x < x_at)
    return inside


@dataclass(frozen=True)
class _TemplateBank:
    """Area-averaged renderings of each shape at each size and sub-pixel centroid offset.

    ``templates[k, i, oy, ox]`` is a ``_WINDOW`` x ``_WINDOW`` coverage map of shape k at
    side ``_SIZES[i]`` whose centroid lies at window coordinate
    ``_WINDOW / 2 + (o - 2) / 4`` (o = 0..3) on each axis.
    """

    templates: np.ndarray  # (5, n_sizes, 4, 4, W*W) float32
    energy: np.ndarray  # (5, n_sizes, 4, 4) sum of squares
    hard: np.ndarray  # (5, n_sizes, 4, 4, W*W) bool: the template as hard-edged pixels
    area_fraction: np.ndarray  # (5,) shape area / box area
    centroid: np.ndarray  # (5, 2) centroid in units of the box side (x, y)
    perimeter: np.ndarray  # (5,) outline length in units of the box side
    spread: np.ndarray  # (5,) mean squared distance from the centroid, box side = 1

    @staticmethod
    def build() -> _TemplateBank:
        fine = (np.arange(1024) + 0.5) / 1024
        fx, fy = np.meshgrid(fine, fine)
        area, centroid, spread = [], [], []
        for shape in SHAPES:
            mask = _inside(shape, fx, fy)
            area.append(mask.mean())
            gx, gy = fx[mask].mean(), fy[mask].mean()
            centroid.append((gx, gy))
            spread.append(((fx[mask] - gx) ** 2 + (fy[mask] - gy) ** 2).mean())
        area_fraction = np.array(area, dtype=np.float32)
        centroids = np.array(centroid, dtype=np.float32)

        ss, w = _SUPERSAMPLE, _WINDOW
        n = (w + 1) * ss
        # Canvas coordinate relative to the centroid (model px); template offset m is the
        # slice starting at (ss - 2m) (a quarter pixel is ss/4 = 2 canvas samples).
        rel = (np.arange(n) + 0.5) / ss - (w / 2 + 0.5)
        templates = np.zeros((len(SHAPES), len(_SIZES), _OFFSETS, _OFFSETS, w * w), np.float32)
        for k, shape in enumerate(SHAPES):
            for i, side in enumerate(_SIZES):
                ux = rel / side + centroids[k, 0]
                uy = rel / side + centroids[k, 1]
                canvas = _inside(shape, ux[None, :], uy[:, None]).astype(np.float32)
                for oy in range(_OFFSETS):
                    y0 = ss - 2 * oy
                    rows = canvas[y0 : y0 + w * ss]
                    for ox in range(_OFFSETS):
                        x0 = ss - 2 * ox
                        block = rows[:, x0 : x0 + w * ss].reshape(w, ss, w, ss)
                        templates[k, i, oy, ox] = block.mean(axis=(1, 3)).ravel()
        energy = (templates**2).sum(axis=-1)
        perimeter = np.array([_outline_length(shape) for shape in SHAPES], dtype=np.float32)
        return _TemplateBank(
            templates,
            energy,
            templates >= 0.5,
            area_fraction,
            centroids,
            perimeter,
            np.array(spread, dtype=np.float32),
        )


_BANK: _TemplateBank | None = None
_BANK_LOCK = threading.Lock()


def _bank() -> _TemplateBank:
    global _BANK
    if _BANK is None:
        with _BANK_LOCK:
            if _BANK is None:
                _BANK = _TemplateBank.build()
    return _BANK
