"""What a search returns: the box, why it stopped, what it cost, and how it got there."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from seal_agent.imaging.geometry import Box

StopReason = Literal[
    "found",  # a box cleared confidence_high
    "fallback",  # nothing cleared the bar; the best candidate cleared confidence_low
    "exhausted",  # every patch was scored; no candidate cleared confidence_low
    "budget",  # max_calls reached (found=True with fallback=True if a candidate held)
    "deadline",  # deadline_s reached (likewise)
    "model_error",  # the search model raised or returned malformed output
]


class ScoredBox(BaseModel):
    """A box in original-image pixels with its confidence."""

    model_config = ConfigDict(frozen=True)

    box: Box
    score: float


class TraceStep(BaseModel):
    """One visited patch, in visiting order (for visualisation and evaluation)."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(description="position in the visiting order, 0 = first patch scored")
    parent: int | None = Field(description="index of the patch this one was split from")
    patch: Box
    level: int = Field(description="1 = the whole image")
    priority: float | None = Field(description="priority it was popped with (None at the root)")
    best_score: float | None = Field(description="best detection confidence in this patch")
    cue: Literal["target", "context", "none"] = Field(
        description="which heatmap ranked its children ('none' for a leaf or a found patch)"
    )
    context_phrase: str | None = None
    heatmap: list[list[float]] | None = Field(
        None,
        description="the target heatmap over the patch, downsampled (SearchConfig.trace_heatmaps)",
    )
    kind: Literal["root", "split", "zoom", "tile", "confirm"] | None = Field(
        None,
        description=(
            "how the patch arose: the whole image, a split of its parent, a candidate or "
            "heatmap-peak zoom (vstar), a native-resolution tile (sliding-window, or vstar "
            "below a view without signal), or a native-detail window confirming a confident "
            "box seen at less than native detail"
        ),
    )


class SearchResult(BaseModel):
    """The outcome of one target's search."""

    target: str
    strategy: str
    found: bool
    box: Box | None = Field(description="best box in original-image pixels (found or fallback)")
    confidence: float | None
    instances: list[ScoredBox] = Field(
        default_factory=list,
        description="every box above confidence_high at the root, best first (at most 100)",
    )
    stop_reason: StopReason
    fallback: bool = Field(
        False,
        description=(
            "the box is the best candidate at or above confidence_low, not a box that "
            "cleared confidence_high (stop_reason says why the search ended: fallback, "
            "budget or deadline)"
        ),
    )
    message: str = Field(description="why the search stopped, in a sentence")
    patches_scored: int = Field(description="views scored by the search model (search length)")
    forward_passes: int = Field(description="batched calls made to the search model")
    confirmations: int = Field(
        0,
        description=(
            "patches spent confirming confident boxes seen at less than native detail "
            "(one native-detail window each; included in patches_scored)"
        ),
    )
    dismissed: int = Field(
        0, description="confident boxes that their native-detail confirmation rejected"
    )
    elapsed_s: float
    trace: list[TraceStep] = Field(default_factory=list)
