"""The acuity curves: how resolvable a shape of a given side in model pixels is."""

from __future__ import annotations

import numpy as np

from seal_agent.shapeworld.perception.config import DEFAULT_CONFIG, PerceptionConfig


def acuity(side_px: np.ndarray | float, config: PerceptionConfig = DEFAULT_CONFIG) -> np.ndarray:
    """How resolvable a shape of this side (model px) is, 0..1 (0.5 at ``acuity_px``)."""
    side = np.maximum(np.asarray(side_px, dtype=np.float64), 1e-6)
    return 1.0 / (1.0 + (config.acuity_px / side) ** config.acuity_power)


def _evidence_weight(side_px: np.ndarray, config: PerceptionConfig) -> np.ndarray:
    """Weight of a blob's template evidence: its pixels count as much as it is resolved.

    Softer than :func:`acuity` (which gates naming a shape): a 3 px smudge cannot be
    named, yet whether it is rather star-like or rather square-like still guides a search.
    """
    side = np.maximum(np.asarray(side_px, dtype=np.float64), 1e-6)
    return 1.0 / (1.0 + (config.evidence_acuity_px / side) ** config.acuity_power)
