"""Heatmaps kept in a search's trace, small enough for a graph state (opt-in).

``SearchConfig(trace_heatmaps=N)`` keeps each step's target heatmap, block-averaged to at
most NxN cells, so ``seal_agent.viz`` can draw what the search saw at every step; by
default nothing is kept and states (and checkpoints) stay small.
"""

from __future__ import annotations

import numpy as np


def downsample_heatmap(heatmap: np.ndarray, size: int) -> list[list[float]]:
    """A heatmap block-averaged to at most ``size`` x ``size`` cells, rounded for storage."""
    grid = np.asarray(heatmap, dtype=np.float32)
    rows, cols = grid.shape
    out_rows, out_cols = min(rows, size), min(cols, size)
    r_edges = np.linspace(0, rows, out_rows + 1).astype(int)
    c_edges = np.linspace(0, cols, out_cols + 1).astype(int)
    cells = np.add.reduceat(np.add.reduceat(grid, r_edges[:-1], axis=0), c_edges[:-1], axis=1)
    counts = np.outer(np.diff(r_edges), np.diff(c_edges))
    return np.round(cells / counts, 3).tolist()


__all__ = ["downsample_heatmap"]
