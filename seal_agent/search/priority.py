"""Heatmap mass inside sub-patches, and the reference's ancestor-weighted priority.

Every scored patch leaves a normalised cue heatmap; the priority of a sub-patch sums,
over the patch and all its ancestors, the share of each one's heatmap mass that falls
inside the sub-patch, weighted 1/4**level. With deep trees (a 12000x9000 scan is
six levels) and overlapping children that would be O(heatmap pixels) per ancestor per
child; a summed-area table per scored patch makes each share O(1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from seal_agent.imaging.geometry import Box


def normalise_heatmap(heatmap: np.ndarray) -> np.ndarray:
    """Min-max normalise to [0, 1] as the reference does; a flat map becomes all zeros.

    A flat map carries no preference, and zeros make every child's share 0, so the
    order falls back to the queue's tie-break instead of favouring the biggest child.
    """
    hm = np.asarray(heatmap, dtype=np.float32)
    lo, hi = float(hm.min()), float(hm.max())
    if not hi > lo:
        return np.zeros_like(hm)
    return (hm - lo) / (hi - lo)


@dataclass(frozen=True, slots=True)
class HeatmapMass:
    """A normalised heatmap laid over an image patch, with O(1) mass queries.

    The heatmap may have any resolution (a 60x60 OWLv2 grid over a 4000x3000 patch);
    a query box is mapped to fractional heatmap cells, each cell counted by the share of
    its area inside the box (exact for a piecewise-constant heatmap: the integral over
    [0, u] x [0, v] is bilinear inside a cell, so bilinear interpolation of the
    summed-area table's corners gives it).
    """

    patch: Box
    level: int
    table: np.ndarray  # (rows + 1, cols + 1) float64 summed-area table, table[0, :] = 0

    @classmethod
    def from_heatmap(cls, normalised: np.ndarray, patch: Box, level: int) -> HeatmapMass:
        hm = np.asarray(normalised, dtype=np.float64)
        if hm.ndim != 2 or hm.size == 0:
            raise ValueError("heatmap must be a non-empty 2-D array")
        table = np.zeros((hm.shape[0] + 1, hm.shape[1] + 1), dtype=np.float64)
        np.cumsum(np.cumsum(hm, axis=0), axis=1, out=table[1:, 1:])
        return cls(patch, level, table)

    @property
    def total(self) -> float:
        return float(self.table[-1, -1])

    def _integral(self, u: float, v: float) -> float:
        """Mass over heatmap columns [0, u) and rows [0, v) (fractional cells)."""
        rows, cols = self.table.shape[0] - 1, self.table.shape[1] - 1
        u = min(max(u, 0.0), float(cols))
        v = min(max(v, 0.0), float(rows))
        i, j = min(int(u), cols - 1), min(int(v), rows - 1)
        fu, fv = u - i, v - j
        t = self.table
        top = t[j, i] * (1 - fu) + t[j, i + 1] * fu
        bottom = t[j + 1, i] * (1 - fu) + t[j + 1, i + 1] * fu
        return float(top * (1 - fv) + bottom * fv)

    def mass(self, box: Box) -> float:
        """Heatmap mass inside ``box`` (image pixels; the part outside the patch counts 0)."""
        p = self.patch
        cols, rows = self.table.shape[1] - 1, self.table.shape[0] - 1
        sx, sy = cols / p.width, rows / p.height
        u1, u2 = (box.x1 - p.x1) * sx, (box.x2 - p.x1) * sx
        v1, v2 = (box.y1 - p.y1) * sy, (box.y2 - p.y1) * sy
        if u2 <= u1 or v2 <= v1:
            return 0.0
        return (
            self._integral(u2, v2)
            - self._integral(u1, v2)
            - self._integral(u2, v1)
            + self._integral(u1, v1)
        )

    def share(self, box: Box) -> float:
        """Fraction of the total mass inside ``box``; 0 for an all-zero heatmap."""
        total = self.total
        return self.mass(box) / total if total > 0 else 0.0


def unit_mass(heatmap: np.ndarray) -> np.ndarray:
    """Scale a non-negative map to total 1 (a distribution); an all-zero map stays zero."""
    total = float(heatmap.sum())
    return heatmap / total if total > 0 else heatmap


def mix_distributions(maps: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """sum w_i * unit_mass(map_i): each cue contributes by its weight, not its raw mass.

    Mixing normalised heatmaps directly would let the map with more mass win: a table
    (a large region of 1.0s) would outweigh a sparse target map however sharp its peak.
    Maps must share one grid (they come from one view); an all-zero map contributes
    nothing, and its weight is given to the others.
    """
    used = [(m, w) for m, w in zip(maps, weights, strict=True) if float(m.sum()) > 0]
    if not used:
        return np.zeros_like(maps[0])
    total_weight = sum(w for _, w in used)
    return sum((w / total_weight) * unit_mass(m) for m, w in used)  # type: ignore[return-value]


def child_probability(
    parent_probability: float, cue: HeatmapMass, child: Box, uniform_weight: float
) -> float:
    """P(target in child) = P(target in parent) x the parent's belief in the child.

    The belief mixes the cue's share of mass in the child with the child's share of the
    parent's area (weight ``uniform_weight``): a cue is never fully trusted, so no
    region's probability drops to zero on one coarse view's say-so. A flat cue gives
    the area share alone.
    """
    area_share = child.intersection(cue.patch).area / cue.patch.area
    if cue.total <= 0:
        return parent_probability * area_share
    belief = (1.0 - uniform_weight) * cue.share(child) + uniform_weight * area_share
    return parent_probability * belief


def ancestor_weighted_priority(child: Box, lineage: Sequence[HeatmapMass]) -> float:
    """The reference's priority: sum over A in lineage of share_A(child) / 4**level(A).

    ``lineage`` holds the patch being split and all its ancestors (any order). Coarser
    ancestors weigh more: their view of the whole scene outranks a zoomed-in view's
    local evidence.
    """
    return sum(cue.share(child) / 4.0**cue.level for cue in lineage)


__all__ = [
    "HeatmapMass",
    "ancestor_weighted_priority",
    "child_probability",
    "mix_distributions",
    "normalise_heatmap",
    "unit_mass",
]
