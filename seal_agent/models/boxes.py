"""Box post-processing shared by the detectors: NMS and the view-frame clip.

torchvision's ``nms`` is not a dependency of this project. The detectors here keep at
most a few hundred candidate boxes per phrase (top-k by score), so a greedy NMS over a
precomputed numpy IoU matrix costs well under a millisecond per phrase and view.
"""

from __future__ import annotations

import numpy as np
import torch

from seal_agent.imaging.geometry import Box
from seal_agent.search.protocol import Detection


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept, best first; ``boxes`` is ``(N, 4)`` x1y1x2y2.

    The pairwise IoU matrix is computed once (N <= a few hundred), so the greedy pass
    is a loop over boolean rows, not over tensor ops.
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")
    b = boxes[order].astype(np.float64)
    areas = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    w = np.clip(
        np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0]), 0, None
    )
    h = np.clip(
        np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1]), 0, None
    )
    inter = w * h
    iou = inter / np.maximum(areas[:, None] + areas[None, :] - inter, 1e-9)
    suppressed = np.zeros(len(order), dtype=bool)
    keep: list[int] = []
    for rank in range(len(order)):
        if suppressed[rank]:
            continue
        keep.append(rank)
        suppressed |= iou[rank] > iou_threshold
    return order[np.asarray(keep, dtype=np.int64)]


def to_detections(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    view_width: int,
    view_height: int,
    *,
    nms_iou: float,
    max_detections: int,
    pre_nms_top_k: int = 256,
    min_side: float = 1.0,
) -> tuple[Detection, ...]:
    """Clip boxes (view pixels) to the view, drop slivers, NMS, best ``max_detections``.

    The clip matters for OWLv2: its boxes live on the padded square, and a box that
    spills into the padding must not reach outside the view (and thus the patch). A box
    thinner than ``min_side`` view pixels after clipping (one lying in the padding, or a
    degenerate regression) locates nothing and would defeat NMS (its IoU is 0).
    """
    if boxes.numel() == 0:
        return ()
    box_array = boxes.detach().float().cpu().numpy()
    score_array = scores.detach().float().cpu().numpy()
    if len(score_array) > pre_nms_top_k:
        top = np.argpartition(-score_array, pre_nms_top_k - 1)[:pre_nms_top_k]
        box_array, score_array = box_array[top], score_array[top]
    box_array = np.stack(
        (
            np.clip(box_array[:, 0], 0, view_width),
            np.clip(box_array[:, 1], 0, view_height),
            np.clip(box_array[:, 2], 0, view_width),
            np.clip(box_array[:, 3], 0, view_height),
        ),
        axis=-1,
    )
    valid = (
        np.isfinite(box_array).all(-1)
        & np.isfinite(score_array)
        & (box_array[:, 2] - box_array[:, 0] >= min_side)
        & (box_array[:, 3] - box_array[:, 1] >= min_side)
    )
    box_array, score_array = box_array[valid], score_array[valid]
    kept = greedy_nms(box_array, score_array, nms_iou)[:max_detections]
    return tuple(
        Detection(Box(*(float(v) for v in box_array[i])), float(score_array[i])) for i in kept
    )
