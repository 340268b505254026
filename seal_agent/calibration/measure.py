"""Measuring a search model on a labelled set: what it scores, where its heatmap points.

For every annotated target of every item the model is shown the views the search
would show it (``layout.py``) with the target's name as the phrase, and for each view
we record:

* every detection's score, and whether it is the target (IoU with the annotated box
  above ``iou_threshold``, 0.5 as in V*Bench's success criterion), and the best box
  of the view (the one the search's found/fallback tests look at);
* the heatmap's peak value (the cue strength the search compares with its cue
  threshold) and whether the peak steers right: the view holds the target and the
  peak lies in a child patch that holds it too, so ranking the children by this
  heatmap would descend towards the target.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from seal_agent.calibration.layout import LaidOutView, Layout, holds, lay_out_views
from seal_agent.errors import SealError, SearchModelError
from seal_agent.evaluation.dataset import VStarItem
from seal_agent.imaging.geometry import Box, ViewTransform
from seal_agent.imaging.loading import load_image, to_image_ref
from seal_agent.imaging.pyramid import ImagePyramid
from seal_agent.search.protocol import PatchPrediction, SearchModel, validate_predictions


@dataclass(frozen=True, slots=True)
class DetectionSample:
    score: float
    is_target: bool
    weight: float


@dataclass(frozen=True, slots=True)
class ViewSample:
    """What one view showed, for one target."""

    target: int  # index into Measurements.targets
    level: int
    kind: str
    is_leaf: bool
    holds_target: bool
    weight: float
    best_score: float | None
    best_is_target: bool
    cue: float
    steers: bool  # holds the target and the heatmap peak lies in a child holding it


@dataclass(frozen=True, slots=True)
class TargetInfo:
    item: str
    name: str
    box: Box


@dataclass
class Measurements:
    """Everything measured on a data set; ``choose.py`` turns it into thresholds."""

    iou_threshold: float
    layout: Layout
    items: int = 0
    targets: list[TargetInfo] = field(default_factory=list)
    views: list[ViewSample] = field(default_factory=list)
    detections: list[DetectionSample] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


ProgressCallback = Callable[[int, int, VStarItem], None]


def peak_point(heatmap: np.ndarray, frame: ViewTransform) -> tuple[float, float]:
    """The heatmap's arg-max cell centre in image pixels (the heatmap covers the view)."""
    rows, cols = heatmap.shape
    r, c = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    patch = frame.patch
    return (
        patch.x1 + (c + 0.5) / cols * patch.width,
        patch.y1 + (r + 0.5) / rows * patch.height,
    )


def steers_to(view: LaidOutView, point: tuple[float, float], target: Box) -> bool:
    """Whether a cue peaking at ``point`` sends the search into a child holding the target."""
    if not view.holds_target or not view.children:
        return False
    px, py = point
    return any(c.x1 <= px < c.x2 and c.y1 <= py < c.y2 and holds(c, target) for c in view.children)


def measure_target(
    model: SearchModel,
    pyramid: ImagePyramid,
    name: str,
    box: Box,
    target_index: int,
    out: Measurements,
    *,
    layout: Layout,
    include_tiles: bool,
    batch_size: int,
) -> None:
    """Show the model every laid-out view of one target and record what it says."""
    laid_out = lay_out_views(
        pyramid.width,
        pyramid.height,
        box,
        model.input_size,
        layout=layout,
        include_tiles=include_tiles,
    )
    for start in range(0, len(laid_out), batch_size):
        chunk = laid_out[start : start + batch_size]
        shown = [pyramid.view(v.patch, model.input_size) for v in chunk]
        images = [image for image, _ in shown]
        try:
            predictions = validate_predictions(model.predict(images, [name]), images, [name])
        except SealError:
            raise
        except Exception as exc:  # a model fault names what it was doing
            raise SearchModelError(
                f"search model raised {type(exc).__name__} on {name!r}: {exc}"
            ) from exc
        for view, (_, frame), per_phrase in zip(chunk, shown, predictions, strict=True):
            _record(view, frame, per_phrase[0], name, box, target_index, pyramid, out)


def _record(
    view: LaidOutView,
    frame: ViewTransform,
    prediction: PatchPrediction,
    name: str,
    truth: Box,
    target_index: int,
    pyramid: ImagePyramid,
    out: Measurements,
) -> None:
    best: tuple[float, bool] | None = None
    for det in prediction.detections:
        image_box = frame.to_image(Box(*det.box)).clip(pyramid.width, pyramid.height)
        if image_box.is_empty:
            continue
        is_target = image_box.iou(truth) > out.iou_threshold
        out.detections.append(DetectionSample(float(det.score), is_target, view.weight))
        if best is None or det.score > best[0]:
            best = (float(det.score), is_target)
    out.views.append(
        ViewSample(
            target=target_index,
            level=view.level,
            kind=view.kind,
            is_leaf=view.is_leaf,
            holds_target=view.holds_target,
            weight=view.weight,
            best_score=best[0] if best else None,
            best_is_target=bool(best and best[1]),
            cue=prediction.cue_strength,
            steers=steers_to(view, peak_point(prediction.heatmap, frame), truth),
        )
    )


def measure_items(
    model: SearchModel,
    items: Sequence[VStarItem],
    *,
    layout: Layout = "vstar",
    iou_threshold: float = 0.5,
    include_tiles: bool = True,
    batch_size: int = 8,
    max_image_pixels: int | None = None,
    on_item: ProgressCallback | None = None,
) -> Measurements:
    """Measure ``model`` on every annotated target of ``items`` (V*Bench format)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = Measurements(iou_threshold=iou_threshold, layout=layout)
    for index, item in enumerate(items):
        if on_item is not None:
            on_item(index, len(items), item)
        if not item.target_boxes:
            out.skipped.append(f"{item.id}: no annotated boxes")
            continue
        if len(item.target_objects) != len(item.target_boxes):
            out.skipped.append(
                f"{item.id}: {len(item.target_objects)} target names for "
                f"{len(item.target_boxes)} boxes"
            )
            continue
        if max_image_pixels is None:
            _, pyramid = load_image(to_image_ref(item.image_path))
        else:
            _, pyramid = load_image(to_image_ref(item.image_path), max_pixels=max_image_pixels)
        out.items += 1
        for name, box in zip(item.target_objects, item.target_boxes, strict=True):
            clipped = box.clip(pyramid.width, pyramid.height)
            if clipped.is_empty or not name.strip():
                out.skipped.append(f"{item.id}: target {name!r} has no usable box or name")
                continue
            out.targets.append(TargetInfo(item.id, name, clipped))
            measure_target(
                model,
                pyramid,
                name.strip(),
                clipped,
                len(out.targets) - 1,
                out,
                layout=layout,
                include_tiles=include_tiles,
                batch_size=batch_size,
            )
    return out


__all__ = [
    "DetectionSample",
    "Measurements",
    "ProgressCallback",
    "TargetInfo",
    "ViewSample",
    "measure_items",
    "measure_target",
    "peak_point",
    "steers_to",
]
