"""What the transformers-backed search models share: loading, locking, input checks.

Concurrency model: graph branches share one search model. Pre-processing (PIL and
numpy work on the views) runs in the caller's thread, so several branches prepare
batches in parallel; only the forward pass is serialised by a lock, because one GPU
runs one batch at a time anyway and torch modules are not re-entrant under
``inference_mode`` with shared caches.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from PIL import Image

from seal_agent.errors import InvalidImageError, InvalidQuestionError, SearchModelError
from seal_agent.models.devices import resolve_device, resolve_dtype
from seal_agent.search.protocol import ModelThresholds, PatchPrediction, validate_predictions


def check_views(views: Sequence[Image.Image]) -> list[Image.Image]:
    """RGB copies only where needed (views are small: at most ``input_size`` a side)."""
    checked: list[Image.Image] = []
    for i, view in enumerate(views):
        if not isinstance(view, Image.Image):
            raise InvalidImageError(f"view {i} is a {type(view).__name__}, expected a PIL image")
        if view.width < 1 or view.height < 1:
            raise InvalidImageError(f"view {i} has no pixels ({view.width}x{view.height})")
        checked.append(view if view.mode == "RGB" else view.convert("RGB"))
    return checked


def check_phrases(phrases: Sequence[str]) -> list[str]:
    if isinstance(phrases, str):
        raise InvalidQuestionError("phrases must be a sequence of strings, got a single string")
    cleaned: list[str] = []
    for i, phrase in enumerate(phrases):
        if not isinstance(phrase, str) or not phrase.strip():
            raise InvalidQuestionError(f"search phrase {i} is empty or not text: {phrase!r}")
        cleaned.append(" ".join(phrase.split()))
    return cleaned


class TransformersSearchModel:
    """Base of the detector-backed ``SearchModel`` implementations.

    Subclasses implement ``_load`` (returns nothing; sets up model and processor) and
    ``_predict_chunk`` (one forward pass for a list of RGB views).
    """

    #: Calibrated defaults of the family; subclasses override.
    default_thresholds: ModelThresholds = ModelThresholds.model_validate({})
    #: ``input_size`` of well-known checkpoints, answered without loading anything, so a
    #: search or graph can be set up on a machine that does not have the weights (yet).
    known_input_sizes: dict[str, int] = {}  # noqa: RUF012 - read-only class table

    def __init__(
        self,
        model_id: str,
        *,
        device: str | None = None,
        dtype: str | None = None,
        thresholds: ModelThresholds | None = None,
        min_score: float = 0.01,
        max_detections: int = 16,
        nms_iou: float = 0.5,
        max_batch_size: int = 16,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_detections < 1:
            raise ValueError(f"max_detections must be >= 1, got {max_detections}")
        if not 0 <= min_score < 1:
            raise ValueError(f"min_score must be in [0, 1), got {min_score}")
        if not 0 < nms_iou <= 1:
            raise ValueError(f"nms_iou must be in (0, 1], got {nms_iou}")
        self.model_id = model_id
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self._thresholds = thresholds or self.default_thresholds
        self.min_score = min_score
        self.max_detections = max_detections
        self.nms_iou = nms_iou
        self.max_batch_size = max_batch_size
        self.model_kwargs = dict(model_kwargs or {})
        self._load_lock = threading.Lock()
        self._forward_lock = threading.Lock()
        self._loaded = False
        self._input_size = 0

    # -- SearchModel -------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        """Longer side, in pixels, of the views this model should be shown."""
        if not self._loaded and self.model_id in self.known_input_sizes:
            return self.known_input_sizes[self.model_id]
        self.ensure_loaded()
        return self._input_size

    @property
    def thresholds(self) -> ModelThresholds:
        return self._thresholds

    def predict(
        self, views: Sequence[Image.Image], phrases: Sequence[str]
    ) -> list[list[PatchPrediction]]:
        checked_views = check_views(views)
        checked_phrases = check_phrases(phrases)
        if not checked_views:
            return []
        if not checked_phrases:
            return [[] for _ in checked_views]
        self.ensure_loaded()
        out: list[list[PatchPrediction]] = []
        for start in range(0, len(checked_views), self.max_batch_size):
            chunk = checked_views[start : start + self.max_batch_size]
            try:
                out.extend(self._predict_chunk(chunk, checked_phrases))
            except (SearchModelError, InvalidImageError, InvalidQuestionError):
                raise
            except (RuntimeError, ValueError) as exc:  # CUDA OOM, dtype/shape errors
                raise SearchModelError(
                    f"{type(self).__name__} ({self.model_id}) failed on a batch of "
                    f"{len(chunk)} views: {exc}"
                ) from exc
        return validate_predictions(out, checked_views, checked_phrases)

    # -- loading -------------------------------------------------------------------------
    def ensure_loaded(self) -> None:
        """Build model and processor on first use, once, even under concurrent calls."""
        if self._loaded:
            return
        with self._load_lock:
            if not self._loaded:
                self._load()
                self._loaded = True

    def _load(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict_chunk(
        self, views: list[Image.Image], phrases: list[str]
    ) -> list[list[PatchPrediction]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model_id={self.model_id!r}, device={str(self.device)!r}, "
            f"dtype={str(self.dtype).removeprefix('torch.')!r})"
        )
