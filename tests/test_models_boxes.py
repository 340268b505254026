"""Detector box post-processing: clip to the view, drop slivers, greedy NMS."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seal_agent.models.boxes import greedy_nms, to_detections


def test_nms_keeps_the_best_of_overlapping_boxes_and_distinct_ones() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 9.5]], float)
    scores = np.array([0.5, 0.9, 0.3, 0.8])
    assert greedy_nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert greedy_nms(boxes, scores, 1.0).tolist() == [1, 3, 0, 2]
    assert greedy_nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_detections_are_clipped_to_the_view_and_slivers_dropped() -> None:
    boxes = torch.tensor(
        [
            [-5.0, 10.0, 30.0, 40.0],  # spills left: clipped
            [90.0, 50.0, 130.0, 70.0],  # spills into the padding on the right: clipped
            [10.0, 65.0, 20.0, 90.0],  # entirely below a 64-px-high view: dropped
            [40.0, 40.0, 40.5, 60.0],  # half a pixel wide: dropped
            [float("nan"), 0.0, 5.0, 5.0],  # non-finite: dropped
        ]
    )
    scores = torch.tensor([0.9, 0.8, 0.95, 0.99, 0.7])
    dets = to_detections(boxes, scores, 100, 64, nms_iou=0.5, max_detections=10)
    assert [tuple(d.box) for d in dets] == [(0.0, 10.0, 30.0, 40.0), (90.0, 50.0, 100.0, 64.0)]
    assert [d.score for d in dets] == pytest.approx([0.9, 0.8])


def test_max_detections_and_top_k() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 900, (1000, 2))
    boxes = torch.tensor(np.concatenate([xy, xy + 20], axis=1), dtype=torch.float32)
    scores = torch.tensor(rng.uniform(0, 1, 1000), dtype=torch.float32)
    dets = to_detections(boxes, scores, 960, 960, nms_iou=0.5, max_detections=5)
    assert len(dets) == 5
    assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
    assert dets[0].score == pytest.approx(float(scores.max()))
