"""Shape world: the synthetic high-resolution world the project is tested and benchmarked in.

``generate_scene`` renders a seeded scene (see ``shape-world.md``), ``write_dataset``
writes scenes in V*Bench's on-disk format, ``ReferenceSearchModel`` is a
resolution-honest ``SearchModel`` over pixels, and ``perceive`` is the perception the
reference VQA chat model answers from.
"""

from seal_agent.shapeworld.dataset import SUBSETS, WrittenItem, annotation_path_for, write_dataset
from seal_agent.shapeworld.perception import (
    PerceivedObject,
    PerceivedTable,
    Perception,
    PerceptionConfig,
    Phrase,
    parse_phrase,
    perceive,
)
from seal_agent.shapeworld.scene import (
    COLOURS,
    PALETTE,
    SHAPES,
    TABLE_COLOUR,
    TABLE_NAME,
    Colour,
    Scene,
    SceneKind,
    SceneObject,
    SceneSpec,
    SceneSpecError,
    Shape,
    generate_scene,
)
from seal_agent.shapeworld.search_model import REFERENCE_THRESHOLDS, ReferenceSearchModel

__all__ = [
    "COLOURS",
    "PALETTE",
    "REFERENCE_THRESHOLDS",
    "SHAPES",
    "SUBSETS",
    "TABLE_COLOUR",
    "TABLE_NAME",
    "Colour",
    "PerceivedObject",
    "PerceivedTable",
    "Perception",
    "PerceptionConfig",
    "Phrase",
    "ReferenceSearchModel",
    "Scene",
    "SceneKind",
    "SceneObject",
    "SceneSpec",
    "SceneSpecError",
    "Shape",
    "WrittenItem",
    "annotation_path_for",
    "generate_scene",
    "parse_phrase",
    "perceive",
    "write_dataset",
]
