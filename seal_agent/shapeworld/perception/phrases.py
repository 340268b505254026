"""Parsing of the phrases the perception is asked about ('red star', 'desk')."""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

from seal_agent.shapeworld.scene import COLOURS, Colour, Shape

_SHAPE_WORDS: dict[str, Shape] = {
    "circle": "circle",
    "disc": "circle",
    "disk": "circle",
    "dot": "circle",
    "square": "square",
    "triangle": "triangle",
    "star": "star",
    "pentagram": "star",
    "cross": "cross",
    "plus": "cross",
}
_TABLE_WORDS = frozenset({"table", "desk"})
_COLOUR_WORDS: dict[str, Colour] = {c: c for c in COLOURS} | {"violet": "purple"}


class Phrase(NamedTuple):
    """What a phrase asks for: an object (shape and/or colour), a table, or nothing known."""

    kind: Literal["object", "table", "unknown"]
    shape: Shape | None = None
    colour: Colour | None = None


def _singular(word: str) -> str:
    if word.endswith(("sses", "xes")):  # crosses, boxes
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def parse_phrase(text: str) -> Phrase:
    """'the Red Stars' -> object(star, red); 'desk' -> table; 'giraffe' -> unknown.

    Unknown words (articles, 'small', 'object') are ignored; a phrase with neither a
    shape, a palette colour nor a table word is unknown (no detections, flat heatmap).
    """
    shape: Shape | None = None
    colour: Colour | None = None
    table = False
    for raw in re.findall(r"[a-z]+", str(text).lower()):
        word = _singular(raw)
        if shape is None and (raw in _SHAPE_WORDS or word in _SHAPE_WORDS):
            shape = _SHAPE_WORDS.get(raw) or _SHAPE_WORDS[word]
        elif colour is None and raw in _COLOUR_WORDS:
            colour = _COLOUR_WORDS[raw]
        elif raw in _TABLE_WORDS or word in _TABLE_WORDS:
            table = True
    if shape is not None or colour is not None:
        return Phrase("object", shape, colour)
    if table:
        return Phrase("table")
    return Phrase("unknown")
