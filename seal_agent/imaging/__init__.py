"""Geometry (boxes, splits, frames), image loading and the view pyramid."""

from seal_agent.imaging.geometry import (
    Box,
    ViewTransform,
    crop_box_around,
    split_box,
    split_grid,
    validate_box,
    view_size,
)
from seal_agent.imaging.pyramid import ImagePyramid

__all__ = [
    "Box",
    "ImagePyramid",
    "ViewTransform",
    "crop_box_around",
    "split_box",
    "split_grid",
    "validate_box",
    "view_size",
]
