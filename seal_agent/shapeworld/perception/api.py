"""What the VQA model is given: perceived objects and tables of a whole image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from seal_agent.imaging.geometry import Box
from seal_agent.shapeworld.perception.config import DEFAULT_CONFIG, PerceptionConfig
from seal_agent.shapeworld.perception.phrases import parse_phrase
from seal_agent.shapeworld.perception.pipeline import analyze_view
from seal_agent.shapeworld.scene import COLOURS, SHAPES, Colour, Shape


class PerceivedObject(BaseModel):
    """A shape the model can see, with its box in the pixels of the image it was given."""

    model_config = ConfigDict(frozen=True)

    shape: Shape
    colour: Colour
    box: Box
    confidence: float = Field(description="shape and colour both made out (0..1)")
    size_px: float = Field(description="side as the model saw it, model px")

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


class PerceivedTable(BaseModel):
    model_config = ConfigDict(frozen=True)

    box: Box
    confidence: float


@dataclass(frozen=True)
class Perception:
    """What a model of ``input_size`` sees in an image: shapes it resolves, and tables."""

    image_size: tuple[int, int]
    input_size: int
    objects: tuple[PerceivedObject, ...]
    tables: tuple[PerceivedTable, ...]

    def resolved(self, threshold: float = 0.5) -> list[PerceivedObject]:
        """Objects whose shape and colour are made out above ``threshold``, best first."""
        return [o for o in self.objects if o.confidence > threshold]

    def find(self, phrase: str, threshold: float = 0.5) -> list[PerceivedObject]:
        """Resolved objects matching 'red star' / 'star' / 'red', best first."""
        parsed = parse_phrase(phrase)
        if parsed.kind != "object":
            return []
        return [
            o
            for o in self.resolved(threshold)
            if (parsed.shape is None or o.shape == parsed.shape)
            and (parsed.colour is None or o.colour == parsed.colour)
        ]


def perceive(
    image: Image.Image, input_size: int = 336, config: PerceptionConfig = DEFAULT_CONFIG
) -> Perception:
    """Look at the whole ``image`` at ``input_size`` and list what can be made out.

    Every blob is listed with its best shape and colour and a confidence (posterior x
    acuity x colour purity), so that the caller can tell "a red star" from "something
    small and red"; boxes are in ``image``'s pixels.
    """
    analysis, sx, sy = analyze_view(image, input_size, config)
    objects: list[PerceivedObject] = []
    if analysis.n_blobs:
        best_shape = analysis.shape_confidence.argmax(axis=1)
        best_colour = analysis.colour_fraction.argmax(axis=1)
        boxes = np.stack([analysis.boxes(k) for k in range(len(SHAPES))], axis=1)
        for i in range(analysis.n_blobs):
            k, c = int(best_shape[i]), int(best_colour[i])
            confidence = float(analysis.shape_confidence[i, k] * analysis.colour_fraction[i, c])
            x1, y1, x2, y2 = boxes[i, k]
            box = Box(x1 * sx, y1 * sy, x2 * sx, y2 * sy).clip(image.width, image.height)
            if box.is_empty:
                continue
            objects.append(
                PerceivedObject(
                    shape=SHAPES[k],
                    colour=COLOURS[c],
                    box=box,
                    confidence=round(confidence, 4),
                    size_px=round(float(analysis.side[i, k]), 2),
                )
            )
    objects.sort(key=lambda o: -o.confidence)
    tables = tuple(
        PerceivedTable(box=Box(b.x1 * sx, b.y1 * sy, b.x2 * sx, b.y2 * sy), confidence=s)
        for b, s in zip(analysis.table_boxes, analysis.table_scores, strict=True)
    )
    return Perception(
        image_size=image.size, input_size=input_size, objects=tuple(objects), tables=tables
    )
