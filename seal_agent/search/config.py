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
    # -- added by the search engine (all optional; defaults are the measured best) --------
    batch_size: int | None = Field(
        None,
        ge=1,
        description=(
            "most patches scored per forward pass where a strategy batches: the "
            "sliding-window's tiles, and vstar's native tiles and near-tied tree patches "
            "(None: 8, for both; a telling cue's best child still goes alone; 1: strictly "
            "one by one). For bfs/dfs/random orders it is the patches popped per pass "
            "(None: 1); seal always 1, as the reference"
        ),
    )
    confirm: bool = Field(
        True,
        description=(
            "every strategy but seal: a box above confidence_high seen at less than native "
            "detail (a view coarser than the image, or upsampled beyond the model's "
            "max_upsample) ends the search only once a native-detail window around it "
            "confirms it; a failed confirmation dismisses it"
        ),
    )
    signal_descent: bool = Field(
        True,
        description=(
            "vstar: where a coarse view's heatmaps carry no signal, go straight to "
            "native-resolution tiles (batched) ranked by what signal there is; where a "
            "telling map points at one place, look there through a native window next"
        ),
    )
    candidate_zoom: bool = Field(
        True, description="vstar: look at a sub-threshold candidate at native resolution next"
    )
    zoom_min_confidence: float | None = Field(
        None,
        ge=0,
        le=1,
        description="vstar: lowest candidate confidence worth a zoom (None: confidence_low / 2)",
    )
    weak_cue: Literal["blend", "context", "target"] = Field(
        "blend",
        description=(
            "vstar, when the target cue is below its threshold: blend the normalised target "
            "and context heatmaps, use the context alone (the reference), or the target alone"
        ),
    )
    priority: Literal["probability", "reference"] = Field(
        "probability",
        description=(
            "vstar: rank patches by the probability product (ours) or by the reference's "
            "level-weighted heatmap-mass sum (seal always uses the reference's)"
        ),
    )
    native_tiles: int = Field(
        0,
        ge=0,
        description=(
            "tree strategies except seal: split a patch straight into native-resolution "
            "tiles when at most this many cover it (0: always the 2x2 split). 9 cuts an "
            "exhaustive search (absent target) of a 4000x3000 image from 341 patches to "
            "117, but costs guided searches ~25 % more patches: off by default"
        ),
    )
    window_overlap: float = Field(
        0.25,
        ge=0,
        lt=1,
        description="sliding-window: neighbouring tiles overlap by this fraction of a tile",
    )

    def resolve_thresholds(self, model_defaults: ModelThresholds) -> ModelThresholds:
        """The model's calibrated thresholds with this config's overrides applied."""
        overrides = {
            name: getattr(self, name)
            for name in ModelThresholds.model_fields
            if getattr(self, name) is not None
        }
        return model_defaults.model_copy(update=overrides) if overrides else model_defaults
