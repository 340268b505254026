"""Calibrating a search model's thresholds on a labelled set (``seal-agent calibrate``).

``layout`` lays out the views a search would show the model, ``measure`` records the
model's scores and heatmap peaks on them, ``choose`` picks thresholds for a stated
precision, ``statistics`` summarises the distributions, ``profile`` reads and writes
the thresholds profile a search loads (``SearchConfig(thresholds=...)``).
"""

from seal_agent.calibration.api import (
    DEFAULT_PRECISION,
    CalibrationError,
    build_profile,
    calibrate,
)
from seal_agent.calibration.measure import Measurements, measure_items
from seal_agent.calibration.profile import (
    ProfileError,
    ThresholdsProfile,
    load_profile,
    save_profile,
)

__all__ = [
    "DEFAULT_PRECISION",
    "CalibrationError",
    "Measurements",
    "ProfileError",
    "ThresholdsProfile",
    "build_profile",
    "calibrate",
    "load_profile",
    "measure_items",
    "save_profile",
]
