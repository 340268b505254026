"""What the search asks of a search model, and what it gets back.

The search is model-agnostic: anything that can look at a batch of views of one
image and, for each of a few phrases, return boxes with confidences and a heatmap
is a search model. OWLv2 does it in one forward pass per batch; shape world's
reference model does it from pixels on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator

from seal_agent.errors import SearchModelError
from seal_agent.imaging.geometry import Box


@dataclass(frozen=True, slots=True)
class Detection:
    """One box a model found, in the pixel frame of the VIEW it was shown."""

    box: Box
    score: float


@dataclass(frozen=True, slots=True)
class PatchPrediction:
    """A model's answer for one view and one phrase.

    ``heatmap`` is a 2-D float array covering exactly the view (any resolution; the
    search maps it onto the patch by fractions), on the model's own raw scale: its
    maximum is compared with the model's cue-threshold schedule to decide whether the
    target cue is strong enough to steer by.
    """

    detections: tuple[Detection, ...]
    heatmap: np.ndarray

    @property
    def cue_strength(self) -> float:
        return float(self.heatmap.max()) if self.heatmap.size else float("-inf")

    def best(self) -> Detection | None:
        return max(self.detections, key=lambda d: d.score, default=None)


class ModelThresholds(BaseModel):
    """Decision thresholds on a model's own scales; each model family ships defaults.

    The defaults here are the reference VSM's (vstar-reference.md).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    confidence_high: float = Field(0.5, gt=0, le=1, description="found when a box scores above")
    confidence_low: float = Field(
        0.3, ge=0, le=1, description="best fallback box counts as found at or above"
    )
    cue_threshold: float = Field(6.0, description="target-cue threshold at the root (level 1)")
    cue_threshold_decay: float = Field(0.7, gt=0, le=1)
    cue_threshold_min: float = Field(3.0, description="floor of the target-cue threshold")

    @model_validator(mode="after")
    def _low_below_high(self) -> ModelThresholds:
        if self.confidence_low > self.confidence_high:
            raise ValueError(
                f"confidence_low ({self.confidence_low}) must not exceed "
                f"confidence_high ({self.confidence_high})"
            )
        return self

    def cue_threshold_at(self, level: int) -> float:
        """delta(level) = max(min, start * decay ** (level - 1)); the root is level 1."""
        return max(
            self.cue_threshold_min, self.cue_threshold * self.cue_threshold_decay ** (level - 1)
        )


@runtime_checkable
class SearchModel(Protocol):
    """A batched open-vocabulary locator.

    ``predict(views, phrases)[i][j]`` is the prediction for ``views[i]`` and
    ``phrases[j]``. All views are of one image; scoring several views in one call is
    how a GPU model scores all children of a node in one forward pass. Implementations
    must be safe to call from several threads (concurrent graph branches share one).
    """

    @property
    def input_size(self) -> int:
        """Longer side, in pixels, of what the model actually looks at."""
        ...

    @property
    def thresholds(self) -> ModelThresholds:
        """Calibrated defaults for this model family."""
        ...

    def predict(
        self, views: Sequence[Image.Image], phrases: Sequence[str]
    ) -> list[list[PatchPrediction]]: ...


def validate_predictions(
    output: object, views: Sequence[Image.Image], phrases: Sequence[str]
) -> list[list[PatchPrediction]]:
    """Check a model's output shape and values; raise ``SearchModelError`` naming the fault.

    A misbehaving model (wrong nesting, NaN scores, a 1-D heatmap) must end a search
    with a clear reason, not corrupt the priority queue.
    """
    if not isinstance(output, list) or len(output) != len(views):
        got = len(output) if isinstance(output, list) else type(output).__name__
        raise SearchModelError(f"search model returned {got} results for {len(views)} views")
    for i, per_view in enumerate(output):
        if not isinstance(per_view, list) or len(per_view) != len(phrases):
            raise SearchModelError(
                f"search model returned a malformed result for view {i}: expected a list of "
                f"{len(phrases)} predictions (one per phrase)"
            )
        for pred in per_view:
            if not isinstance(pred, PatchPrediction):
                raise SearchModelError(
                    f"search model returned {type(pred).__name__}, expected PatchPrediction"
                )
            hm = pred.heatmap
            if not isinstance(hm, np.ndarray) or hm.ndim != 2 or hm.size == 0:
                raise SearchModelError("search model returned a heatmap that is not a 2-D array")
            if not np.isfinite(hm).all():
                raise SearchModelError("search model returned a heatmap with NaN or inf")
            for det in pred.detections:
                if not math.isfinite(det.score) or not all(math.isfinite(v) for v in det.box):
                    raise SearchModelError("search model returned a non-finite box or score")
    return output
