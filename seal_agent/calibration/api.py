"""``calibrate``: measure a search model on a labelled set and write what it should use."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from seal_agent import __version__
from seal_agent.calibration.choose import DEFAULT_MIN_SUPPORT, choose_thresholds
from seal_agent.calibration.layout import Layout
from seal_agent.calibration.measure import Measurements, ProgressCallback, measure_items
from seal_agent.calibration.profile import ModelInfo, Provenance, ThresholdsProfile
from seal_agent.calibration.statistics import calibration_statistics
from seal_agent.errors import SealError, SearchModelError
from seal_agent.evaluation.dataset import SUBSETS, load_vstar_dataset
from seal_agent.search.protocol import ModelThresholds, SearchModel

DEFAULT_PRECISION = 0.9


class CalibrationError(SealError, ValueError):
    """The data cannot calibrate anything (no usable targets)."""


def model_defaults(model: SearchModel) -> ModelThresholds:
    defaults = getattr(model, "thresholds", None)
    if not isinstance(defaults, ModelThresholds):
        raise SearchModelError(
            f"search model thresholds must be ModelThresholds, got {type(defaults).__name__}"
        )
    return defaults


def build_profile(
    measurements: Measurements,
    model: SearchModel,
    *,
    precision: float = DEFAULT_PRECISION,
    model_name: str | None = None,
    dataset: str = "",
    subsets: Sequence[str] = (),
    min_support: int = DEFAULT_MIN_SUPPORT,
    command: str | None = None,
) -> ThresholdsProfile:
    """Thresholds chosen for ``precision`` from measurements, with statistics and provenance."""
    if not measurements.targets:
        detail = f" ({'; '.join(measurements.skipped[:3])})" if measurements.skipped else ""
        raise CalibrationError(f"no annotated target to calibrate on{detail}")
    defaults = model_defaults(model)
    thresholds, choices, per_level = choose_thresholds(
        measurements, precision, defaults, min_support
    )
    return ThresholdsProfile(
        thresholds=thresholds,
        precision=precision,
        model=ModelInfo(
            name=model_name or repr(model),
            type=type(model).__name__,
            input_size=model.input_size,
            defaults=defaults,
        ),
        choices=choices,
        statistics=calibration_statistics(
            measurements, thresholds.confidence_high, per_level, precision
        ),
        provenance=Provenance(
            dataset=dataset,
            subsets=list(subsets),
            items=measurements.items,
            targets=len(measurements.targets),
            views=len(measurements.views),
            layout=measurements.layout,
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            seal_agent_version=__version__,
            command=command,
        ),
    )


def calibrate(
    data: str | Path,
    model: SearchModel,
    *,
    precision: float = DEFAULT_PRECISION,
    model_name: str | None = None,
    subsets: Sequence[str] = tuple(SUBSETS),
    limit: int | None = None,
    layout: Layout = "vstar",
    include_tiles: bool = True,
    iou_threshold: float = 0.5,
    batch_size: int = 8,
    min_support: int = DEFAULT_MIN_SUPPORT,
    command: str | None = None,
    on_item: ProgressCallback | None = None,
) -> ThresholdsProfile:
    """Calibrate ``model`` on a V*Bench-format folder ``data``; returns the profile.

    ``save_profile(profile, path)`` writes it; ``SearchConfig(thresholds=profile)`` (or
    the path) makes a search use it.
    """
    if not 0 < precision <= 1:
        raise ValueError(f"precision must be in (0, 1], got {precision}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    model_defaults(model)  # fail before measuring anything
    items = load_vstar_dataset(data, subsets, limit=limit)
    measurements = measure_items(
        model,
        items,
        layout=layout,
        iou_threshold=iou_threshold,
        include_tiles=include_tiles,
        batch_size=batch_size,
        on_item=on_item,
    )
    return build_profile(
        measurements,
        model,
        precision=precision,
        model_name=model_name,
        dataset=str(Path(data).expanduser()),
        subsets=subsets,
        min_support=min_support,
        command=command,
    )


__all__ = ["DEFAULT_PRECISION", "CalibrationError", "build_profile", "calibrate", "model_defaults"]
