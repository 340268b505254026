"""Real local models: OWLv2 / Grounding DINO search models and transformers VLMs.

Importing this package is cheap: the classes (and torch/transformers) are imported on
first attribute access, so ``from seal_agent.models import OwlSearchModel`` costs the
transformers import only when a model is actually used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from seal_agent.models.defaults import (
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_SEARCH_MODEL_ID,
    DEFAULT_VQA_MODEL_ID,
    PAPER_VQA_MODEL_ID,
)

if TYPE_CHECKING:
    from seal_agent.models.chat import GenerationSettings, TransformersChatModel
    from seal_agent.models.devices import DeviceError
    from seal_agent.models.grounding_dino import (
        GROUNDING_DINO_THRESHOLDS,
        GroundingDinoSearchModel,
    )
    from seal_agent.models.option_scoring import best_option, score_options
    from seal_agent.models.owl import OWL_THRESHOLDS, OwlSearchModel

_LAZY = {
    "OwlSearchModel": "seal_agent.models.owl",
    "OWL_THRESHOLDS": "seal_agent.models.owl",
    "GroundingDinoSearchModel": "seal_agent.models.grounding_dino",
    "GROUNDING_DINO_THRESHOLDS": "seal_agent.models.grounding_dino",
    "TransformersChatModel": "seal_agent.models.chat",
    "GenerationSettings": "seal_agent.models.chat",
    "score_options": "seal_agent.models.option_scoring",
    "best_option": "seal_agent.models.option_scoring",
    "DeviceError": "seal_agent.models.devices",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'seal_agent.models' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_SEARCH_MODEL_ID",
    "DEFAULT_VQA_MODEL_ID",
    "GROUNDING_DINO_THRESHOLDS",
    "OWL_THRESHOLDS",
    "PAPER_VQA_MODEL_ID",
    "DeviceError",
    "GenerationSettings",
    "GroundingDinoSearchModel",
    "OwlSearchModel",
    "TransformersChatModel",
    "best_option",
    "score_options",
]
