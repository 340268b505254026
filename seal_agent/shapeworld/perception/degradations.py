"""Honest degradations of the reference perception: what real detectors do to a search.

The reference model's heatmap tells a 3-pixel star from a 3-pixel square, and its boxes
are never confidently wrong. Real detectors are not like that, and a search built only
against the reference would be built for a detector nobody has. Two settings, each off
by default (the reference behaviour is unchanged):

* ``WeakHeatmap``: a ViT sees a shape only once it spans about a patch (14-16 model px;
  OWLv2's patches are 16 px, CLIP-L/14's 14 px). Below that an OWL-style class map
  carries colour at most, and otherwise only a faint, shape-blind objectness: every
  small blob alike. So the heatmap holds shape evidence only for blobs of at least
  ``min_shape_px`` model px; smaller blobs contribute ``unresolved_weight`` x the colour
  match (1 for a phrase without a colour).
* ``Fallibility``: confident false boxes on clutter and missed detections, each at a set
  rate per view. The draws are seeded from a hash of the view's pixels, the phrase and
  ``seed``, so the same view and phrase always get the same answer: runs reproduce, and
  strategies that visit the same views are compared on equal terms.
"""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator


class WeakHeatmap(BaseModel):
    """Shape evidence in the heatmap only where the shape spans enough model pixels."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_shape_px: float = Field(
        14.0,
        gt=0,
        description="blob side (model px) below which the heatmap holds no shape evidence "
        "(about one ViT patch: 14 px for CLIP-L/14, 16 px for OWLv2)",
    )
    unresolved_weight: float = Field(
        0.15,
        ge=0,
        le=1,
        description="evidence of an unresolved blob (x the colour match when the phrase "
        "names a colour): a faint objectness that every small blob shares",
    )


class Fallibility(BaseModel):
    """Confident false boxes on clutter and missed detections, at set rates per view."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    false_box_rate: float = Field(
        0.05,
        ge=0,
        le=1,
        description="chance that a view gets one confident box on a blob that is not the "
        "phrase (the heatmap shows it too, as a real detector's would)",
    )
    false_score: tuple[float, float] = Field(
        (0.51, 0.77), description="range of the false box's confidence (above found)"
    )
    miss_rate: float = Field(
        0.15,
        ge=0,
        le=1,
        description="chance that each confident detection (score >= miss_above) is missed",
    )
    miss_above: float = Field(
        0.3, ge=0, le=1, description="detections this confident may be missed"
    )
    max_clutter_score: float = Field(
        0.1,
        ge=0,
        le=1,
        description="a false box lands only on a blob the model scores below this "
        "for the phrase (clutter, not a lookalike of the target)",
    )
    seed: int = Field(0, description="changes every draw, for repeated trials")

    @model_validator(mode="after")
    def _ordered(self) -> Fallibility:
        lo, hi = self.false_score
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"false_score must be 0 <= low <= high <= 1, got {self.false_score}")
        return self


def view_rng(view: Image.Image, phrase: str, seed: int) -> np.random.Generator:
    """A generator seeded by the view's pixels, the phrase and ``seed``: same in, same out."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{view.mode}:{view.width}x{view.height}:{seed}:{phrase}\0".encode())
    digest.update(view.tobytes())
    return np.random.default_rng(int.from_bytes(digest.digest(), "little"))


__all__ = ["Fallibility", "WeakHeatmap", "view_rng"]
