"""The per-view pipeline: tables, background, coverage, blobs, shapes."""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from seal_agent.shapeworld.perception.analysis import ViewAnalysis
from seal_agent.shapeworld.perception.background import (
    _EIGHT_CONNECTED,
    _estimate_background,
    _max_channel_difference,
    _solid,
)
from seal_agent.shapeworld.perception.classify import _classify_shapes
from seal_agent.shapeworld.perception.config import (
    _TABLE_INDEX,
    _TABLE_RGB,
    DEFAULT_CONFIG,
    PerceptionConfig,
)
from seal_agent.shapeworld.perception.tables import _NEAR_TABLE, _find_tables
from seal_agent.shapeworld.perception.unmixing import _unmix
from seal_agent.shapeworld.perception.views import analysis_view
from seal_agent.shapeworld.scene import COLOURS


def analyze_view(
    view: Image.Image, input_size: int, config: PerceptionConfig = DEFAULT_CONFIG
) -> tuple[ViewAnalysis, float, float]:
    """Perceive one view; returns the analysis and the view-px-per-model-px scales (x, y)."""
    shown = analysis_view(view, input_size)
    analysis = _analyze(shown, config)
    return analysis, view.width / shown.width, view.height / shown.height


def _analyze(image: Image.Image, config: PerceptionConfig) -> ViewAnalysis:
    w, h = image.size
    pixels = np.asarray(image)  # (h, w, 3) uint8, read-only view of PIL's buffer
    brown_distance = _max_channel_difference(image, _solid(w, h))
    table_mask, table_boxes, table_scores = _find_tables(brown_distance <= _NEAR_TABLE)
    in_table = np.zeros((h, w), dtype=bool)  # the tables proper: their cloth is background
    near_table = np.zeros((h, w), dtype=bool)  # and 2 px around, where pixels mix with it
    for box in table_boxes:
        x1, y1, x2, y2 = (int(v) for v in box.clip(w, h))
        in_table[y1:y2, x1:x2] = True
        x1, y1, x2, y2 = (int(v) for v in box.expand(2, 2).clip(w, h))
        near_table[y1:y2, x1:x2] = True
    bg_image, sigma = _estimate_background(image, in_table)
    bg_pixels = np.asarray(bg_image)
    threshold = max(2.0, config.noise_sigmas * sigma)

    differs = _max_channel_difference(image, bg_image) > threshold
    if table_boxes:
        # Table cloth is the local background of what lies on it, not an object.
        differs &= ~((brown_distance <= max(threshold, _NEAR_TABLE)) & near_table)

    index = np.flatnonzero(differs)
    ys, xs = np.divmod(index, w)
    observed = pixels.reshape(-1, 3)[index].astype(np.float32)
    local_bg = bg_pixels.reshape(-1, 3)[index].astype(np.float32)
    coverage, colour, residual = _unmix(observed, local_bg, allow_table=True)
    on_table = np.flatnonzero(near_table.reshape(-1)[index])
    if on_table.size:
        # Near a table a pixel may mix a shape with brown or with the dull background
        # (a shape at the table's edge); the background that explains it best wins.
        brown = np.broadcast_to(_TABLE_RGB, (on_table.size, 3))
        c2, k2, r2 = _unmix(observed[on_table], brown, allow_table=False)
        better = r2 < residual[on_table]
        coverage[on_table[better]] = c2[better]
        colour[on_table[better]] = k2[better]
    keep = (colour != _TABLE_INDEX) & (coverage > 0.05)
    index, xs, ys, coverage, colour = index[keep], xs[keep], ys[keep], coverage[keep], colour[keep]

    mask = np.zeros(h * w, dtype=bool)
    mask[index] = True
    labels, n_components = ndimage.label(mask.reshape(h, w), structure=_EIGHT_CONNECTED)
    blob, n = _split_by_colour(labels.reshape(-1)[index] - 1, n_components, colour, coverage)
    ink = np.bincount(blob, coverage, minlength=n)
    valid = ink >= config.min_ink
    blob_ids = np.flatnonzero(valid)
    remap = np.full(n, -1, dtype=np.intp)
    remap[blob_ids] = np.arange(blob_ids.size)
    pix_blob = remap[blob]
    sel = pix_blob >= 0
    pix_blob, xs, ys, coverage, colour = pix_blob[sel], xs[sel], ys[sel], coverage[sel], colour[sel]
    m = blob_ids.size
    ink = ink[blob_ids]
    safe_ink = np.maximum(ink, 1e-9)
    cx = np.bincount(pix_blob, coverage * (xs + 0.5), minlength=m) / safe_ink
    cy = np.bincount(pix_blob, coverage * (ys + 0.5), minlength=m) / safe_ink
    n_colours = len(COLOURS)
    colour_ink = np.bincount(pix_blob * n_colours + colour, coverage, minlength=m * n_colours)
    colour_fraction = colour_ink.reshape(m, n_colours) / safe_ink[:, None]
    centroid = np.stack([cx, cy], axis=1)

    posterior, side, misfit = _classify_shapes(
        xs, ys, coverage, pix_blob, ink, centroid, w, h, config
    )
    return ViewAnalysis(
        width=w,
        height=h,
        noise_sigma=sigma,
        ink=ink,
        centroid=centroid,
        colour_fraction=colour_fraction,
        shape_posterior=posterior,
        side=side,
        misfit=misfit,
        table_mask=table_mask,
        table_boxes=table_boxes,
        table_scores=table_scores,
        config=config,
    )


def _split_by_colour(
    component: np.ndarray, n_components: int, colour: np.ndarray, coverage: np.ndarray
) -> tuple[np.ndarray, int]:
    """Blob index per pixel: a component holding two colours in earnest is two blobs.

    Objects a few pixels apart touch once shrunk; when they differ in colour, colour
    tells them apart (as it does for a real encoder). Colours holding little of a
    component's ink are its edge pixels' noise and stay with the dominant colour.
    """
    n_colours = len(COLOURS)
    per_colour = np.bincount(
        component * n_colours + colour, coverage, minlength=n_components * n_colours
    ).reshape(n_components, n_colours)
    significant = per_colour >= np.maximum(1.0, 0.2 * per_colour.sum(axis=1, keepdims=True))
    dominant = per_colour.argmax(axis=1)
    effective = np.where(significant[component, colour], colour, dominant[component])
    keys, blob = np.unique(component * n_colours + effective, return_inverse=True)
    return blob.reshape(-1), keys.size
