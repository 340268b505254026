"""Run-time settings of one visual search."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from seal_agent.search.protocol import ModelThresholds

Strategy = Literal["vstar", "seal", "bfs", "dfs", "random-bfs", "random-dfs", "sliding-window"]
STRATEGIES: tuple[Strategy, ...] = (
    "vstar",
    "seal",
    "bfs",
    "dfs",
    "random-bfs",
    "random-dfs",
    "sliding-window",
)


class SearchConfig(BaseModel):
    """How to search for one target. Threshold fields left ``None`` take the model's defaults."""

    model_config = ConfigDict(extra="forbid")

    strategy: Strategy = Field(
        "vstar", description="vstar (ours), seal (the reference exactly) or a baseline"
    )
    confidence_high: float | None = Field(None, gt=0, le=1)
    confidence_low: float | None = Field(None, ge=0, le=1)
    cue_threshold: float | None = None
    cue_threshold_decay: float | None = Field(None, gt=0, le=1)
    cue_threshold_min: float | None = None
    max_calls: int | None = Field(
        256, ge=1, description="budget of patches scored per target (None: unlimited)"
    )
    deadline_s: float | None = Field(
        120.0, gt=0, description="wall-clock budget per target in seconds (None: unlimited)"
    )
    min_leaf_size: int = Field(224, ge=1, description="the reference's `minimum_size`")
    leaf_size_scale: float = Field(4.0, gt=0, description="the reference's `minimum_size_scale`")
    split_overlap: float = Field(
        0.125, ge=0, lt=0.5, description="vstar: children overlap by this fraction of a stride"
    )
    crop_scale: float = Field(1.2, ge=1, description="VWM crop size relative to the found box")
    seed: int = Field(0, description="seed of the random baselines")

    def resolve_thresholds(self, model_defaults: ModelThresholds) -> ModelThresholds:
        """The model's calibrated thresholds with this config's overrides applied."""
        overrides = {
            name: getattr(self, name)
            for name in ModelThresholds.model_fields
            if getattr(self, name) is not None
        }
        return model_defaults.model_copy(update=overrides) if overrides else model_defaults
