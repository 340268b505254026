"""``ViewAnalysis``: everything perceived in one view, and the scores read from it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import ndimage

from seal_agent.imaging.geometry import Box
from seal_agent.shapeworld.perception.acuity import acuity
from seal_agent.shapeworld.perception.config import PerceptionConfig
from seal_agent.shapeworld.perception.degradations import WeakHeatmap
from seal_agent.shapeworld.perception.phrases import Phrase
from seal_agent.shapeworld.perception.tables import _TABLE_STRIDE
from seal_agent.shapeworld.perception.templates import _bank
from seal_agent.shapeworld.scene import COLOURS, SHAPES


@dataclass(frozen=True, eq=False)
class ViewAnalysis:
    """Everything perceived in one model view; immutable, so safe to share across threads.

    Coordinates are model pixels (continuous, pixel i covers [i, i+1)).
    """

    width: int
    height: int
    noise_sigma: float
    ink: np.ndarray  # (N,) coverage sum per blob, px²
    centroid: np.ndarray  # (N, 2) x, y
    colour_fraction: np.ndarray  # (N, 8) share of each palette colour in the ink
    shape_posterior: np.ndarray  # (N, 5)
    side: np.ndarray  # (N, 5) box side under each shape hypothesis
    misfit: np.ndarray  # (N,) share of the ink the best template leaves unexplained
    #: beyond what a pixel staircase along its outline accounts for
    table_mask: np.ndarray  # (ceil(H/2), ceil(W/2)) bool, on a grid of 2 model px
    table_boxes: tuple[Box, ...]
    table_scores: tuple[float, ...]
    config: PerceptionConfig

    @property
    def n_blobs(self) -> int:
        return int(self.ink.shape[0])

    @cached_property
    def fit_quality(self) -> np.ndarray:
        """(N,) 1 when the best template explains the blob, falling as ink is left over.

        Two shapes that touch once shrunk make one blob that no single shape explains;
        whichever template fits it least badly must not be believed.
        """
        return 1.0 / (1.0 + (self.misfit / self.config.misfit_scale) ** 2)

    @cached_property
    def shape_confidence(self) -> np.ndarray:
        """(N, 5): posterior x acuity at the hypothesis' size x fit; a detector's score."""
        return self.shape_posterior * acuity(self.side, self.config) * self.fit_quality[:, None]

    def boxes(self, shape_index: int) -> np.ndarray:
        """(N, 4) x1, y1, x2, y2 of every blob under a shape hypothesis, model px."""
        side = self.side[:, shape_index]
        g = _bank().centroid[shape_index]
        x1 = self.centroid[:, 0] - g[0] * side
        y1 = self.centroid[:, 1] - g[1] * side
        return np.stack([x1, y1, x1 + side, y1 + side], axis=1)

    def phrase_scores(self, phrase: Phrase) -> np.ndarray:
        """(N,) detection confidence of each blob for an object phrase."""
        scores = np.ones(self.n_blobs)
        if phrase.shape is not None:
            scores = scores * self.shape_confidence[:, SHAPES.index(phrase.shape)]
        if phrase.colour is not None:
            scores = scores * self.colour_fraction[:, COLOURS.index(phrase.colour)]
            if phrase.shape is None:
                # A colour alone is seen as soon as there is ink of it; its box is only as
                # good as the blob's extent, so it too needs a few pixels.
                scores = scores * acuity(np.sqrt(self.ink) * 2, self.config)
        return scores

    def blob_side(self) -> np.ndarray:
        """(N,) side (model px) of each blob under its most likely shape: its apparent size."""
        best = self.shape_posterior.argmax(axis=1)
        return self.side[np.arange(self.n_blobs), best]

    def phrase_evidence(self, phrase: Phrase, weak: WeakHeatmap | None = None) -> np.ndarray:
        """(N,) soft evidence for the heatmap: looks like this rather than the alternatives.

        With ``weak``, blobs smaller than ``weak.min_shape_px`` carry no shape evidence,
        only a faint objectness times the colour match (see ``degradations``).
        """
        evidence = np.ones(self.n_blobs)
        if phrase.shape is not None:
            # Only what looks MORE like the shape than chance (1 in 5) counts: hundreds of
            # featureless smudges at the prior would otherwise outweigh one telling blob.
            p = self.shape_posterior[:, SHAPES.index(phrase.shape)] * self.fit_quality
            chance = 1.0 / len(SHAPES)
            lift = np.clip((p - chance) / (1.0 - chance), 0.0, 1.0)
            evidence = evidence * lift**self.config.evidence_power
            if weak is not None:
                unresolved = self.blob_side() < weak.min_shape_px
                evidence = np.where(unresolved, weak.unresolved_weight, evidence)
        if phrase.colour is not None:
            evidence = evidence * self.colour_fraction[:, COLOURS.index(phrase.colour)]
        return evidence

    def heatmap(
        self,
        phrase: Phrase,
        weak: WeakHeatmap | None = None,
        extra: tuple[tuple[float, float, float], ...] = (),
    ) -> np.ndarray:
        """Blurred evidence on a grid of ``heatmap_stride`` model px, values in [0, 1].

        ``extra``: (x, y, evidence) points in model px added to the blobs' evidence (a
        fallible detector's false detections, which its class map shows too).
        """
        cfg = self.config
        stride = cfg.heatmap_stride
        grid = np.zeros((-(-self.height // stride), -(-self.width // stride)), np.float32)
        sigma = cfg.heatmap_sigma_px / stride
        if phrase.kind == "table":
            if self.table_boxes:
                cells = _block_mean(
                    self.table_mask.astype(np.float32), max(1, stride // _TABLE_STRIDE)
                )
                grid[: cells.shape[0], : cells.shape[1]] = cells
                grid = ndimage.gaussian_filter(grid, sigma, mode="constant")
            return np.clip(grid, 0.0, 1.0)
        if phrase.kind == "unknown" or (self.n_blobs == 0 and not extra):
            return grid
        evidence = self.phrase_evidence(phrase, weak).astype(np.float32)
        points = self.centroid
        if extra:
            added = np.asarray(extra, dtype=np.float64).reshape(-1, 3)
            points = np.concatenate([points.reshape(-1, 2), added[:, :2]])
            evidence = np.concatenate([evidence, added[:, 2].astype(np.float32)])
        keep = evidence > 1e-4
        if not keep.any():
            return grid
        cx = np.clip((points[keep, 0] / stride).astype(np.intp), 0, grid.shape[1] - 1)
        cy = np.clip((points[keep, 1] / stride).astype(np.intp), 0, grid.shape[0] - 1)
        np.add.at(grid, (cy, cx), evidence[keep] / _kernel_peak(sigma))
        grid = ndimage.gaussian_filter(grid, sigma, mode="constant")
        return np.clip(grid, 0.0, 1.0)

    def detections(self, phrase: Phrase) -> list[tuple[Box, float]]:
        """(box in model px, confidence) for the phrase, best first."""
        cfg = self.config
        if phrase.kind == "table":
            return sorted(zip(self.table_boxes, self.table_scores, strict=True), key=_by_score)
        if phrase.kind == "unknown" or self.n_blobs == 0:
            return []
        scores = self.phrase_scores(phrase)
        if phrase.shape is not None:
            boxes = self.boxes(SHAPES.index(phrase.shape))
        else:
            best_shape = self.shape_posterior.argmax(axis=1)
            all_boxes = np.stack([self.boxes(k) for k in range(len(SHAPES))], axis=1)
            boxes = all_boxes[np.arange(self.n_blobs), best_shape]
        order = np.argsort(-scores)[: cfg.max_detections]
        return [
            (Box(*(float(v) for v in boxes[i])), float(scores[i]))
            for i in order
            if scores[i] >= cfg.min_detection_score
        ]


def _by_score(item: tuple[Box, float]) -> float:
    return -item[1]


_PEAKS: dict[float, float] = {}


def _kernel_peak(sigma: float) -> float:
    """Peak of a unit impulse after ``gaussian_filter`` (so that a lone blob's peak = e)."""
    peak = _PEAKS.get(sigma)
    if peak is None:
        size = 2 * math.ceil(4 * sigma) + 1
        impulse = np.zeros((size, size), np.float32)
        impulse[size // 2, size // 2] = 1.0
        peak = float(ndimage.gaussian_filter(impulse, sigma, mode="constant").max())
        _PEAKS[sigma] = peak
    return peak


def _block_mean(values: np.ndarray, stride: int) -> np.ndarray:
    h, w = values.shape
    hp, wp = -(-h // stride) * stride, -(-w // stride) * stride
    if (hp, wp) != (h, w):
        values = np.pad(values, ((0, hp - h), (0, wp - w)))
    return values.reshape(hp // stride, stride, wp // stride, stride).mean(axis=(1, 3))
