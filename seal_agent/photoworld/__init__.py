"""Photo world: scenes built from real photographs, and a real detector, all offline.

The photographs ship inside scikit-image's wheel (``skimage/data``) and the detector's
trained weights inside OpenCV's (``cv2.data``), so tests and benchmarks can exercise the
search on real pixels with a real, fallible third-party detector without downloading
anything. Install with the ``photo`` extra: ``pip install 'seal-agent[photo]'``.
"""

from seal_agent.photoworld.detector import (
    HAAR_THRESHOLDS,
    DetectorUnavailableError,
    HaarSearchModel,
    HaarSettings,
)
from seal_agent.photoworld.photos import PhotoDataError
from seal_agent.photoworld.scene import PhotoScene, PhotoSceneSpec, build_scene

__all__ = [
    "HAAR_THRESHOLDS",
    "DetectorUnavailableError",
    "HaarSearchModel",
    "HaarSettings",
    "PhotoDataError",
    "PhotoScene",
    "PhotoSceneSpec",
    "build_scene",
]
