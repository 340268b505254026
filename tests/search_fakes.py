"""Small, fully controlled stand-ins for a search model and a large image.

``VirtualPyramid`` is an ``ImagePyramid`` of any size that holds no pixels: its views are
blank images of the right size, and it remembers which patch each view shows. The
``GeometricOracle`` reads those patches and "sees" a hidden box only once the box is
big enough in the view, as a real detector does, with a heatmap peaked on it.
Together they let engine tests run on 12000x9000 "images" in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from seal_agent.imaging.geometry import Box, ViewTransform, view_size
from seal_agent.imaging.pyramid import ImagePyramid
from seal_agent.search.protocol import Detection, ModelThresholds, PatchPrediction

GRID = 16  # heatmap cells along the view's longer side

ORACLE_THRESHOLDS = ModelThresholds(
    confidence_high=0.5,
    confidence_low=0.3,
    cue_threshold=0.6,
    cue_threshold_decay=0.7,
    cue_threshold_min=0.3,
)


class VirtualPyramid(ImagePyramid):
    """A pixel-less pyramid: views are blank, and the patches viewed are recorded."""

    def __init__(self, width: int, height: int) -> None:  # no super(): no pixels
        self.width, self.height = width, height
        self.viewed: list[Box] = []

    def view(self, patch, max_side):  # type: ignore[override]
        patch = Box(*patch)
        w, h = view_size(patch, max_side)
        self.viewed.append(patch)
        return Image.new("RGB", (w, h)), ViewTransform(patch, w, h)

    def crop(self, box):  # type: ignore[override]
        b = Box(*box).round_out()
        return Image.new("RGB", (int(b.width), int(b.height)))


@dataclass
class GeometricOracle:
    """Sees objects by geometry: confidence rises with the object's size in the view.

    ``objects`` maps a phrase to boxes in image pixels; a phrase not listed is nowhere.
    Confidence for an object wholly in the patch: 0.95 * clip((side_in_view - 3) / 9),
    so 12 view px is certain and 7.5 px is a sub-threshold candidate; a cut object
    scores by its visible fraction. The heatmap is a bump on each object, blurred to
    at least one cell, with peak ``peak`` (raw scale).
    """

    pyramid: VirtualPyramid
    objects: dict[str, list[Box]]
    input_size: int = 512
    peak: float = 1.0
    thresholds: ModelThresholds = ORACLE_THRESHOLDS
    calls: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)

    def predict(
        self, views: Sequence[Image.Image], phrases: Sequence[str]
    ) -> list[list[PatchPrediction]]:
        self.calls.append((len(views), tuple(phrases)))
        patches = self.pyramid.viewed[-len(views) :]
        out = []
        for view, patch in zip(views, patches, strict=True):
            frame = ViewTransform(patch, view.width, view.height)
            out.append([self._predict_one(frame, phrase) for phrase in phrases])
        return out

    def _predict_one(self, frame: ViewTransform, phrase: str) -> PatchPrediction:
        cols = max(1, round(GRID * frame.view_width / self.input_size))
        rows = max(1, round(GRID * frame.view_height / self.input_size))
        heat = np.zeros((rows, cols), dtype=np.float32)
        dets = []
        for obj in self.objects.get(phrase, []):
            inside = obj.intersection(frame.patch)
            if inside.is_empty:
                continue
            visible = inside.area / obj.area
            vbox = frame.to_view(inside)
            side = min(obj.width * frame.scale_x, obj.height * frame.scale_y)
            conf = 0.95 * min(1.0, max(0.0, (side - 3) / 9)) * visible
            if conf > 0.02:
                dets.append(Detection(vbox, conf))
            cx = (vbox.x1 + vbox.x2) / 2 / frame.view_width * cols
            cy = (vbox.y1 + vbox.y2) / 2 / frame.view_height * rows
            sigma = max(1.0, vbox.width / frame.view_width * cols)
            yy, xx = np.mgrid[0:rows, 0:cols] + 0.5
            bump = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
            heat = np.maximum(heat, self.peak * visible * bump.astype(np.float32))
        return PatchPrediction(tuple(dets), heat)


@dataclass
class ScriptedModel:
    """Answers from a function of (call number, view index, phrase); records every call."""

    answer: Callable[[int, int, str], PatchPrediction]
    input_size: int = 512
    thresholds: ModelThresholds = ORACLE_THRESHOLDS
    calls: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)

    def predict(
        self, views: Sequence[Image.Image], phrases: Sequence[str]
    ) -> list[list[PatchPrediction]]:
        call = len(self.calls)
        self.calls.append((len(views), tuple(phrases)))
        return [[self.answer(call, i, p) for p in phrases] for i in range(len(views))]


def blank(rows: int = 4, cols: int = 4) -> PatchPrediction:
    """Nothing found, a flat heatmap."""
    return PatchPrediction((), np.zeros((rows, cols), dtype=np.float32))


def every_leaf(pyramid: VirtualPyramid) -> list[Box]:
    """The patches viewed, for tree-shape assertions."""
    return list(pyramid.viewed)
