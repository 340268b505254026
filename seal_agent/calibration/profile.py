"""Thresholds profiles: the file ``seal-agent calibrate`` writes and the search loads.

A profile holds the thresholds a search model was calibrated to (on the model's own
score and heatmap scales), the precision they were chosen for, how each one was
chosen, the measured statistics behind them, and where they came from (data set,
model, command, time). Only ``thresholds`` matters to the search; the rest is there
so that a reader can judge whether the profile fits their images and model.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from seal_agent.errors import SealError
from seal_agent.search.protocol import ModelThresholds

PROFILE_FORMAT: Literal["seal-agent/thresholds-profile"] = "seal-agent/thresholds-profile"
PROFILE_VERSION = 1
#: A profile is a small JSON file; anything larger is not one (and is not read whole).
MAX_PROFILE_BYTES = 8 * 1024 * 1024


class ProfileError(SealError, ValueError):
    """A thresholds profile that cannot be read, parsed or validated."""


class Quantiles(BaseModel):
    """A distribution in a few numbers (empty distributions have ``count`` 0)."""

    model_config = ConfigDict(extra="forbid")

    count: int = 0
    weight: float = Field(0.0, description="sum of sample weights (views sampled stand for more)")
    min: float | None = None
    p10: float | None = None
    p50: float | None = None
    p90: float | None = None
    max: float | None = None


class Histogram(BaseModel):
    """Weighted counts of a score between ``edges`` (len(edges) == len(counts) + 1)."""

    model_config = ConfigDict(extra="forbid")

    edges: list[float]
    counts: list[float]


class ScoreDistribution(BaseModel):
    quantiles: Quantiles
    histogram: Histogram | None = None


class DetectionStatistics(BaseModel):
    """Scores of detections on the annotated target (IoU > threshold) and on anything else."""

    model_config = ConfigDict(extra="forbid")

    iou_threshold: float
    target: ScoreDistribution
    non_target: ScoreDistribution
    best_per_view_target: ScoreDistribution
    best_per_view_non_target: ScoreDistribution


class LevelStatistics(BaseModel):
    """Heatmap peaks (cue strength) at one level of the patch tree (1 = the root)."""

    model_config = ConfigDict(extra="forbid")

    level: int
    views: int = Field(description="views measured at this level")
    peak_with_target: Quantiles = Field(description="views holding the target")
    peak_without_target: Quantiles
    steers_to_target: float | None = Field(
        None, description="weighted share of target-holding views whose peak is in its child"
    )
    threshold: float | None = Field(
        None, description="the lowest cue threshold steering right with the precision here"
    )
    precision: float | None = None
    recall: float | None = None
    found_threshold: float | None = Field(
        None, description="the lowest score above which a best box here is the target"
    )


class ThresholdChoice(BaseModel):
    """How one threshold was chosen, and what it achieves on the calibration data."""

    model_config = ConfigDict(extra="forbid")

    value: float
    source: Literal["measured", "model default"]
    rule: str
    precision: float | None = None
    recall: float | None = None
    support: int = Field(0, description="samples the choice rests on")
    note: str | None = None


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="what was given: a hub id, a local directory, 'shapeworld'")
    type: str = Field(description="the search model's class")
    input_size: int
    defaults: ModelThresholds = Field(description="the model family's shipped thresholds")


class Provenance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str
    subsets: list[str]
    items: int
    targets: int
    views: int
    layout: str = Field(description="which search's tree the views were laid out as")
    created: str = Field(description="UTC, ISO 8601")
    seal_agent_version: str
    command: str | None = None


class CalibrationStatistics(BaseModel):
    model_config = ConfigDict(extra="forbid")

    detections: DetectionStatistics
    fallback_candidates: ScoreDistribution = Field(
        description="per target: best sub-threshold box (what a fallback would return)"
    )
    levels: list[LevelStatistics]


class ThresholdsProfile(BaseModel):
    """Calibrated thresholds for one search model, with the evidence behind them."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["seal-agent/thresholds-profile"] = PROFILE_FORMAT
    version: int = PROFILE_VERSION
    thresholds: ModelThresholds
    precision: float = Field(gt=0, le=1, description="the precision the thresholds target")
    model: ModelInfo
    choices: dict[str, ThresholdChoice]
    statistics: CalibrationStatistics
    provenance: Provenance


def save_profile(profile: ThresholdsProfile, path: str | os.PathLike[str]) -> Path:
    """Write the profile as indented JSON (parent folders created); returns the path."""
    target = Path(path).expanduser()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(profile.model_dump_json(indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"cannot write the thresholds profile {target}: {exc}") from exc
    return target


def load_profile(path: str | os.PathLike[str]) -> ThresholdsProfile:
    """Read and validate a profile; every failure is a ``ProfileError`` naming the file."""
    source = Path(path).expanduser()
    data = _read_json(source)
    if not isinstance(data, dict) or data.get("format") != PROFILE_FORMAT:
        raise ProfileError(
            f'{source} is not a seal-agent thresholds profile (no "format": '
            f'"{PROFILE_FORMAT}"); write one with `seal-agent calibrate`'
        )
    if data.get("version") != PROFILE_VERSION:
        raise ProfileError(
            f"{source} is a version {data.get('version')!r} profile; this seal-agent reads "
            f"version {PROFILE_VERSION}"
        )
    try:
        return ThresholdsProfile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(f"invalid thresholds profile {source}: {exc}") from exc


def _read_text(source: Path) -> str:
    """A regular file's text, at most ``MAX_PROFILE_BYTES``.

    Opened non-blocking and checked on the open descriptor: a FIFO would block the
    open or the read forever, and ``/dev/zero`` (size 0 to ``stat``) never ends.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(source, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ProfileError(f"the thresholds profile {source} is not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(MAX_PROFILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_PROFILE_BYTES:
        raise ProfileError(
            f"{source} is over {MAX_PROFILE_BYTES} bytes; a thresholds profile is at most that"
        )
    return data.decode("utf-8")


def _read_json(source: Path) -> Any:
    try:
        text = _read_text(source)
    except FileNotFoundError as exc:
        raise ProfileError(f"thresholds profile not found: {source}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"cannot read the thresholds profile {source}: {exc}") from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ProfileError(f"{source} is not valid JSON: {exc}") from exc


__all__ = [
    "MAX_PROFILE_BYTES",
    "PROFILE_FORMAT",
    "PROFILE_VERSION",
    "CalibrationStatistics",
    "DetectionStatistics",
    "Histogram",
    "LevelStatistics",
    "ModelInfo",
    "ProfileError",
    "Provenance",
    "Quantiles",
    "ScoreDistribution",
    "ThresholdChoice",
    "ThresholdsProfile",
    "load_profile",
    "save_profile",
]
