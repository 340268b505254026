"""Run-time settings of one visual search."""

from __future__ import annotations

import json
import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

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

    thresholds: ModelThresholds | None = Field(
        None,
        description=(
            "calibrated thresholds replacing the model's defaults: a ModelThresholds, a "
            "profile (an object with .thresholds, or the path of a JSON profile written by "
            "`seal-agent calibrate`); the single threshold fields below still override it"
        ),
    )

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
    trace_heatmaps: int = Field(
        0,
        ge=0,
        le=64,
        description=(
            "keep each step's target heatmap in the trace, downsampled to at most NxN "
            "(for seal_agent.viz); 0, the default, keeps none, so states stay small"
        ),
    )
    # -- added by the search engine (all optional; defaults are the measured best) --------
    batch_size: int | None = Field(
        None,
        ge=1,
        description=(
            "most patches scored per forward pass where a strategy batches: the "
            "sliding-window's tiles, and vstar's native tiles, near-tied patches, pending "
            "closer looks and their framings (None: 8, or the model's max_batch_size "
            "where it declares a smaller one, for both; a telling cue's best "
            "child still goes alone; 1: strictly one by one). For "
            "bfs/dfs/random orders it is the patches popped per pass (None: 1); seal "
            "always 1, as the reference"
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
    hold_until_clear: bool | None = Field(
        None,
        description=(
            "with a model that is not framing_invariant, a box two native looks confirmed "
            "ends the search only once it stands out from every other box the model has "
            "shown at native detail (by 1 in log-odds) and no pending box scored above it; "
            "until then it is held, and the search's end returns the strongest held box "
            "(None: vstar only; True/False: any strategy but seal)"
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
    context_first: bool = Field(
        True,
        description=(
            "vstar: ask the context cue before the first forward pass, so every view (the "
            "root included) is scored with the target and context phrases together; "
            "False asks it only at the first weak-cue patch, which then pays one more "
            "pass (and patch) for the context phrase. Costs one cue question for a "
            "target whose cue never weakens (free when the cue comes from the listing)"
        ),
    )
    framings: int = Field(
        3,
        ge=1,
        le=8,
        description=(
            "vstar, for a model that is not framing_invariant: a closer look (candidate "
            "zoom, heatmap-peak window) is scored through this many differently framed "
            "native windows in one forward pass, and two that see the box confidently "
            "confirm it (1: one window, confirmed by a later pass). Measured on shape "
            "world's fallible mode (search_passes.py --n 30, 37 targets, this release's "
            "other rules on): 3 framings 5.65 -> 3.32 forward passes, 20.4 -> 9.7 "
            "patches, 94.6 -> 97.3 % success against 1; 2 framings 3.6 passes"
        ),
    )
    full_batches_after: int | None = Field(
        4,
        ge=1,
        description=(
            "vstar: after this many forward passes every pass takes the next batch_size "
            "patches in the frontier's order, near-tied or not (None: never). Measured "
            "on shape world (search_passes.py --n 30, 37 targets) against None: forward "
            "passes 2.57 -> 2.57 (reference), 4.97 -> 4.86 (weak heatmap), 3.62 -> 3.32 "
            "(fallible) for patches 4.46 -> 4.68, 18.3 -> 20.0, 9.0 -> 9.7; after 3 "
            "(with tie_weak_root): 2-3 % fewer passes again for 5-7 % more patches"
        ),
    )
    guess_windows: bool = Field(
        False,
        description=(
            "vstar, for a framing_invariant model: a map whose bright cells lie in one "
            "native window while the target cue is below its threshold gets that window "
            "as a guess, scored with the next batch. Shape world's reference model "
            "(search_passes.py --n 30): 2.89 -> 2.59 forward passes; but the graph's "
            "searches, whose next batches ride along with the guesses, pay for it in "
            "patches (cost_per_question.py: encoder passes per question 0.80x -> 1.08x "
            "of release 0.1.0's, against issue 12's 0.8x): off by default"
        ),
    )
    tie_weak_root: bool = Field(
        False,
        description=(
            "vstar: below a root whose target cue is below its threshold (a context cue "
            "mixed in), the children are equally likely and share the second forward "
            "pass. Shape world (37 targets): passes 2.57 -> 2.41 (reference), 4.86 -> "
            "4.49 (weak heatmap), 3.32 -> 3.11 (fallible) for patches 4.7 -> 5.1, "
            "20.0 -> 19.4, 9.7 -> 9.5; but the graph's searches "
            "(vstar_shapeworld.py --n 24) 7.12 -> 8.54 patches per question: off by "
            "default"
        ),
    )
    peek_windows: bool = Field(
        False,
        description=(
            "vstar: a forward pass of near-tied patches (a weak cue, below the root) that "
            "has room left up to batch_size also scores native windows on the weak cue's "
            "brightest places. Saves 8-10 % of forward passes on shape world's models for "
            "+1-5 % patches, but on real photos with a detector whose false boxes hold up "
            "at native detail it looks at target-like clutter first (Haar faces: 1 target "
            "of 16 lost, +11 % patches, -8 % passes): off by default"
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
    weak_cue_tiles: int = Field(
        6,
        ge=0,
        description=(
            "vstar: below a target cue under its threshold, a patch that at most this "
            "many native-resolution tiles cover is split into them instead of 2x2 "
            "(0: always 2x2). Shape world's weak heatmap (search_passes.py --n 30): "
            "17.9 -> 15.8 patches, 4.97 -> 4.68 forward passes; reference unchanged"
        ),
    )
    window_overlap: float = Field(
        0.25,
        ge=0,
        lt=1,
        description="sliding-window: neighbouring tiles overlap by this fraction of a tile",
    )

    @field_validator("thresholds", mode="before")
    @classmethod
    def _thresholds_from_profile(cls, value: Any) -> Any:
        return thresholds_from(value)

    def resolve_thresholds(self, model_defaults: ModelThresholds) -> ModelThresholds:
        """The model's defaults, then a profile's thresholds, then single-field overrides."""
        base = self.thresholds if self.thresholds is not None else model_defaults
        overrides = {
            name: getattr(self, name)
            for name in ModelThresholds.model_fields
            if getattr(self, name) is not None
        }
        return base.model_copy(update=overrides) if overrides else base


#: A thresholds profile is a small JSON file; a larger one is refused unread.
MAX_THRESHOLDS_FILE_BYTES = 8 * 1024 * 1024


def thresholds_from(value: Any) -> Any:
    """ModelThresholds from a profile object, a profile's JSON path or a profile mapping.

    Anything else is returned as given for pydantic to validate (or reject). The full
    profile (statistics, provenance) is read by ``seal_agent.calibration.load_profile``;
    the search needs only its ``thresholds``.
    """
    if isinstance(value, str | os.PathLike):
        path = os.path.expanduser(os.fspath(value))
        try:
            if os.path.getsize(path) > MAX_THRESHOLDS_FILE_BYTES:
                raise ValueError(f"{path} is too large to be a thresholds profile")
            with open(path, encoding="utf-8") as fh:
                value = json.load(fh)
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the thresholds profile {path}: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise ValueError(f"thresholds profile {path} is not valid JSON: {exc}") from exc
        if not isinstance(value, dict) or not isinstance(value.get("thresholds"), dict):
            raise ValueError(f"{path} is not a thresholds profile (no 'thresholds' object)")
    if isinstance(value, dict) and isinstance(value.get("thresholds"), dict):
        return value["thresholds"]
    profile_thresholds = getattr(value, "thresholds", None)
    if isinstance(profile_thresholds, ModelThresholds):
        return profile_thresholds
    return value
