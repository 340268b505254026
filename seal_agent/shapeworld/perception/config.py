"""The perception's physical constants (``PerceptionConfig``) and reference colours."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from seal_agent.shapeworld.scene import COLOURS, PALETTE, TABLE_COLOUR


class PerceptionConfig(BaseModel):
    """The perception's few physical constants; defaults calibrated on generated scenes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # 8 model px: a ViT detector does not name an object much under half a patch (OWLv2's
    # patches are 16 px at 960, CLIP-L/14's 14 px at 336), and the stand-in must be no more
    # acute than the networks it stands in for (at 5 px it named shapes no encoder would).
    acuity_px: float = Field(
        8.0, gt=0, description="object side (model px) at which a shape is half-resolvable"
    )
    acuity_power: float = Field(4.0, gt=0, description="steepness of the acuity curve")
    evidence_acuity_px: float = Field(
        3.0, gt=0, description="blob side (model px) at which shape evidence counts half"
    )
    template_error: float = Field(
        0.12, gt=0, description="per-pixel coverage error the shape posterior allows for"
    )
    noise_sigmas: float = Field(4.0, gt=0, description="a pixel differs beyond this x noise")
    min_ink: float = Field(0.3, ge=0, description="blobs with less coverage (px²) are noise")
    heatmap_stride: int = Field(4, ge=1, description="model px per heatmap cell")
    heatmap_sigma_px: float = Field(6.0, gt=0, description="heatmap blur, model px")
    misfit_scale: float = Field(
        0.1, gt=0, description="share of a blob's ink left unexplained that halves evidence"
    )
    staircase_error: float = Field(
        0.2,
        ge=0,
        description="ink (px²) per px of outline that a hard-edged rendering may misplace",
    )
    evidence_power: float = Field(
        2.0, gt=0, description="sharpens shape evidence so one good match outweighs clutter"
    )
    max_detections: int = Field(20, ge=1)
    min_detection_score: float = Field(0.02, ge=0, le=1)


DEFAULT_CONFIG = PerceptionConfig()

_PALETTE_RGB = np.array([PALETTE[c] for c in COLOURS], dtype=np.float32)
_TABLE_RGB = np.array(TABLE_COLOUR, dtype=np.float32)
_TABLE_INDEX = len(COLOURS)  # colour index used for "brown" in the unmixing
_REFERENCE_RGB = np.vstack([_PALETTE_RGB, _TABLE_RGB[None]])
