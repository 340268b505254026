"""Shape classification of blobs by analysis by synthesis against the template bank."""

from __future__ import annotations

import math

import numpy as np

from seal_agent.shapeworld.perception.acuity import _evidence_weight
from seal_agent.shapeworld.perception.config import PerceptionConfig
from seal_agent.shapeworld.perception.templates import (
    _OFFSETS,
    _SIZE_MIN,
    _SIZE_RATIO,
    _SIZES,
    _WINDOW,
    _bank,
    _TemplateBank,
)
from seal_agent.shapeworld.scene import SHAPES

_DIRECT_EXTENT = 14  # blobs up to this extent are fitted directly, larger ones downsampled
_TRUNCATED_TEMPER = 0.15  # weight of the shape evidence of a blob cut by the view's edge
_SOLID = 0.9  # coverage of a pixel fully inside a shape (up to noise)
# Share of a blob's ink in solid pixels from which on (to which) its outline is taken
# for a hard pixel staircase: ~1 at the source resolution, well under 0.75 once shrunk.
_STAIRCASE_FROM, _STAIRCASE_FULL = 0.75, 0.95
_SPREAD_SLACK = 0.5  # px²: a pixel's own extent and a shrunk view's blur
_SPREAD_TOLERANCE = 1.5  # spread over that of a compact shape of the same ink


def _classify_shapes(
    xs: np.ndarray,
    ys: np.ndarray,
    coverage: np.ndarray,
    pix_blob: np.ndarray,
    ink: np.ndarray,
    centroid: np.ndarray,
    width: int,
    height: int,
    config: PerceptionConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shape posterior (N, 5), box side per hypothesis (N, 5) and misfit (N,) of each blob.

    A blob wider than ``_DIRECT_EXTENT`` is compared at a coarser scale (its coverage
    block-averaged by 2, 4, ...): it is resolved anyway, and a fixed window keeps the
    comparison one vectorised product for all blobs of a scale.

    The misfit forgives what rasterisation explains: a shape drawn without anti-aliasing
    has a pixel staircase for an outline, which the ideal shape misses by up to a pixel
    all along it (a 13 px star's thin points leave a tenth of its ink unexplained by any
    ideal star). Only where the blob shows that staircase, i.e. in proportion to the
    share of its ink in solid pixels (squared): a shrunk view averages the staircase
    away, and there a second shape merged into a blob must still count against it.
    """
    bank = _bank()
    m = ink.size
    n_shapes = len(SHAPES)
    side = np.sqrt(ink[:, None] / bank.area_fraction[None, :])
    posterior = np.full((m, n_shapes), 1.0 / n_shapes)
    misfit = np.zeros(m)
    if m == 0:
        return posterior, side, misfit
    order = np.argsort(pix_blob, kind="stable")
    starts = np.searchsorted(pix_blob[order], np.arange(m))
    sx, sy = xs[order], ys[order]
    x_lo, x_hi = np.minimum.reduceat(sx, starts), np.maximum.reduceat(sx, starts)
    y_lo, y_hi = np.minimum.reduceat(sy, starts), np.maximum.reduceat(sy, starts)
    extent = np.maximum(x_hi - x_lo, y_hi - y_lo) + 1
    # A blob cut by the view's edge is a part of a shape: a cross's bar end looks like a
    # square. Its shape evidence is weak, as a detector's is for a truncated object;
    # the search's overlapping patches show it whole elsewhere.
    truncated = (x_lo == 0) | (y_lo == 0) | (x_hi == width - 1) | (y_hi == height - 1)
    # Blobs too faint to carry any shape (under ~1.5 px at the largest hypothesis) keep
    # the uniform prior.
    informative = side.max(axis=1) >= 1.5
    # A blob shows a pixel staircase where nearly all its ink lies in solid pixels; a
    # shrunk view's partly covered edge pixels average the staircase away.
    solid_ink = np.bincount(pix_blob, np.where(coverage >= _SOLID, coverage, 0.0), minlength=m)
    solid_share = solid_ink / np.maximum(ink, 1e-9)
    hard_edged = np.clip(
        (solid_share - _STAIRCASE_FROM) / (_STAIRCASE_FULL - _STAIRCASE_FROM), 0, 1
    )
    scale = np.ones(m, dtype=np.intp)
    wide = extent > _DIRECT_EXTENT
    scale[wide] = 2 ** np.ceil(np.log2(extent[wide] / _DIRECT_EXTENT)).astype(np.intp)
    cells = _WINDOW * _WINDOW
    for q in np.unique(scale[informative]):
        ids = np.flatnonzero(informative & (scale == q))
        slot = np.full(m, -1, dtype=np.intp)
        slot[ids] = np.arange(ids.size)
        pix_slot = slot[pix_blob]
        sel = pix_slot >= 0
        pix_slot = pix_slot[sel]
        origin = np.rint(centroid[ids] / q).astype(np.intp) - _WINDOW // 2  # (n, 2) x, y
        wx = xs[sel] // q - origin[pix_slot, 0]
        wy = ys[sel] // q - origin[pix_slot, 1]
        inside = (wx >= 0) & (wx < _WINDOW) & (wy >= 0) & (wy < _WINDOW)
        flat_index = pix_slot[inside] * cells + wy[inside] * _WINDOW + wx[inside]
        windows = np.bincount(
            flat_index, coverage[sel][inside] / float(q * q), minlength=ids.size * cells
        ).reshape(ids.size, cells)
        frac = centroid[ids] / q - (origin + _WINDOW // 2)
        sse, hard_sse = _template_sse(windows.astype(np.float32), frac, side[ids] / q, bank)
        # The evidence counts only as much as the blob is resolvable: a 3 px smudge
        # whose pixels happen to fit the star template best is only weakly star-like
        # to a real encoder (tempered log-likelihoods); a 10 px star is plainly a star.
        temper = _evidence_weight(np.median(side[ids], axis=1), config)[:, None]
        temper = np.where(truncated[ids, None], _TRUNCATED_TEMPER * temper, temper)
        # Misfit: ink the best template leaves unexplained, as area-averaged coverage or as
        # hard-edged pixels (a view not shrunk shows the shape's pixel staircase).
        unexplained = np.maximum(np.minimum(sse.min(axis=1), hard_sse), 0.0)
        best = sse.argmin(axis=1)
        outline = bank.perimeter[best] * side[ids, best] / q  # window px
        staircase = config.staircase_error * outline / q * hard_edged[ids]
        misfit[ids] = np.maximum(unexplained - staircase, 0.0) / np.maximum(
            ink[ids] / float(q * q), 1e-6
        )
        posterior[ids] = _softmax(-sse * temper / (2 * config.template_error**2))
    # A blob far more spread out than any shape of its ink is no shape: a table's edge
    # blurred into a faint line along it, or a chain of touching smudges. Its fit must
    # fail even where a coarse comparison window has averaged it into a dot.
    dx = xs + 0.5 - centroid[pix_blob, 0]
    dy = ys + 0.5 - centroid[pix_blob, 1]
    spread = np.bincount(pix_blob, coverage * (dx * dx + dy * dy), minlength=m) / np.maximum(
        ink, 1e-9
    )
    expected = (bank.spread[None, :] * side**2).min(axis=1) + _SPREAD_SLACK
    excess = np.maximum(spread / expected - _SPREAD_TOLERANCE, 0.0)
    misfit = np.maximum(misfit, config.misfit_scale * excess)
    return posterior, side, misfit


def _template_sse(
    windows: np.ndarray, frac: np.ndarray, side: np.ndarray, bank: _TemplateBank
) -> tuple[np.ndarray, np.ndarray]:
    """(N, 5) squared error between each observed window and each shape's template, and
    (N,) the error against the hard-edged rendering of the best-fitting template."""
    n = windows.shape[0]
    size_index = np.clip(
        np.rint(np.log(np.maximum(side, 1e-6) / _SIZE_MIN) / math.log(_SIZE_RATIO)),
        0,
        len(_SIZES) - 1,
    ).astype(np.intp)
    # Sub-pixel centroid offset in [-0.5, 0.5) -> template offset index 0..3.
    offset = np.clip(np.rint(frac * _OFFSETS).astype(np.intp) + 2, 0, _OFFSETS)
    offset[offset == _OFFSETS] = _OFFSETS - 1
    shape_index = np.arange(len(SHAPES))[None, :]
    oy, ox = offset[:, 1:2], offset[:, 0:1]
    templates = bank.templates[shape_index, size_index, oy, ox]  # (N, 5, W*W)
    energy = bank.energy[shape_index, size_index, oy, ox]  # (N, 5)
    if n == 0:
        return np.zeros((0, len(SHAPES))), np.zeros(0)
    cross = np.matmul(templates, windows[:, :, None])[..., 0]
    observed = (windows.astype(np.float64) ** 2).sum(axis=1)[:, None]
    sse = observed - 2 * cross + energy
    best = sse.argmin(axis=1)
    rows = np.arange(n)
    hard = bank.hard[best, size_index[rows, best], oy[:, 0], ox[:, 0]]  # (N, W*W)
    hard_sse = observed[:, 0] - 2 * (windows * hard).sum(axis=1) + hard.sum(axis=1)
    return sse, hard_sse


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)
