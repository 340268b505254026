"""Unmixing of pixels against the reference colours: coverage per pixel."""

from __future__ import annotations

import numpy as np

from seal_agent.shapeworld.perception.config import _REFERENCE_RGB, _TABLE_INDEX

#: Unmixing weighs luma above chroma (JPEG's YCbCr, chroma at half weight): a JPEG keeps
#: luma sharp and blurs chroma, so a small shape's outline is in its luma.
_UNMIX_SPACE = np.diag([1.0, 0.5, 0.5]).astype(np.float32) @ np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]],
    dtype=np.float32,
)
_REFERENCE_UNMIX = _REFERENCE_RGB @ _UNMIX_SPACE.T


def _unmix(
    observed: np.ndarray, local_bg: np.ndarray, *, allow_table: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel: coverage, index and residual of the reference colour that explains it.

    ``pixel - bg = a * (colour - bg) + residual``, for every reference colour at once,
    written with (n, 3) @ (3, 9) products instead of (n, 9, 3) temporaries.
    """
    observed = observed @ _UNMIX_SPACE.T
    local_bg = local_bg @ _UNMIX_SPACE.T
    diff = observed - local_bg  # (n, 3)
    ref = _REFERENCE_UNMIX
    ref_sq = (ref**2).sum(axis=1)[None, :]
    diff_dot = diff @ ref.T - (diff * local_bg).sum(axis=1, keepdims=True)  # d . (c - b)
    norm2 = ref_sq - 2 * (local_bg @ ref.T) + (local_bg**2).sum(axis=1, keepdims=True)
    norm2 = np.maximum(norm2, 1.0)
    alpha = np.clip(diff_dot / norm2, 0.0, 1.0)
    residual = (diff**2).sum(axis=1, keepdims=True) - alpha * (2 * diff_dot - alpha * norm2)
    if not allow_table:  # on a table, brown is the background, not a colour
        residual[:, _TABLE_INDEX] = np.inf
    best = residual.argmin(axis=1)
    rows = np.arange(best.size)
    return alpha[rows, best].astype(np.float32), best, residual[rows, best]
