"""The graph state: SEAL's visual working memory (VWM), checkpointer-safe.

Everything here is plain JSON-like data (dicts, lists, strings, numbers): boxes are
``[x1, y1, x2, y2]`` lists in original-image pixels, the image is an ``ImageRef`` (a file
reference and its size, never pixels). Any LangGraph checkpointer can store it, and a
resumed run in another process reads it back unchanged.
"""

from __future__ import annotations

import operator
import os
from typing import Annotated, Any, Literal, NotRequired

from PIL import Image
from pydantic import PlainValidator
from pydantic.json_schema import SkipJsonSchema

# typing_extensions' TypedDict: pydantic (and so LangGraph's JSON schemas, which the
# LangGraph Server publishes) refuses typing.TypedDict before Python 3.12.
from typing_extensions import TypedDict

from seal_agent.imaging.loading import ImageOrigin


class ImageRef(TypedDict, total=False):
    """The state's image: ``seal_agent.imaging.loading.ImageRef``, field for field.

    Declared here with ``typing_extensions.TypedDict`` so the graph's JSON schemas
    generate; the two are the same type to a type checker (TypedDicts are structural).
    """

    uri: str
    origin: ImageOrigin
    digest: str
    source_url: str
    width: int
    height: int


def _as_given(value: Any) -> Any:
    return value


#: A PIL image passes schema validation as it is and is left out of the JSON schema.
_PILImage = SkipJsonSchema[Annotated[Image.Image, PlainValidator(_as_given)]]

#: What ``image`` may be on input. In JSON: a path, an http(s) or base64 data URL, or an
#: object (a LangChain standard image block, an OpenAI ``image_url`` block, an Anthropic
#: image block, or an ``ImageRef``). From Python also a ``Path``, raw bytes or a PIL image.
ImageInputField = str | os.PathLike[str] | bytes | dict[str, Any] | _PILImage


class StepRecord(TypedDict):
    """One visited patch of a search (a compact ``TraceStep``)."""

    index: int
    parent: int | None
    patch: list[float]
    level: int
    priority: float | None
    best_score: float | None
    cue: str
    kind: str | None  # root / split / zoom / tile
    #: The target heatmap over the patch, downsampled; only with
    #: ``SearchConfig(trace_heatmaps=N)``, so checkpoints hold none unless asked.
    heatmap: NotRequired[list[list[float]]]


class TargetOutcome(TypedDict):
    """What the search for one target produced."""

    target: str
    found: bool
    box: list[float] | None  # original-image pixels; the fallback box when not found
    confidence: float | None
    instances: list[dict[str, Any]]  # {"box": [...], "score": float}, several at the root
    stop_reason: str
    message: str
    patches_scored: int
    forward_passes: int
    elapsed_s: float
    context_phrase: str | None
    trace: list[StepRecord]
    #: Found through the best candidate at or above confidence_low, not a box above
    #: confidence_high (also after a budget or deadline stop).
    fallback: NotRequired[bool]
    #: Confident boxes seen at less than native detail, and the native-detail views that
    #: checked them; ``dismissed`` of them failed the check.
    confirmations: NotRequired[int]
    dismissed: NotRequired[int]


#: A compact entry of the run's trace: ``{"event": "targets_listed", "targets": [...]}``.
#: The same events are streamed live (``stream_mode="custom"``), with every search step.
Event = dict[str, Any]


def merge_outcomes(
    current: dict[str, TargetOutcome] | None, update: dict[str, TargetOutcome] | None
) -> dict[str, TargetOutcome]:
    """Reducer of the per-target outcomes written by parallel search branches."""
    merged = dict(current or {})
    merged.update(update or {})
    return merged


class SealInput(TypedDict):
    """What a caller passes to ``graph.invoke``.

    ``image``: a file path, ``pathlib.Path``, PIL image, raw bytes, base64 data URL, an
    http(s) URL (when ``SealConfig.allow_urls``), or an image content block (LangChain
    standard, OpenAI ``image_url``, Anthropic). It is turned into an ``ImageRef`` as it
    enters the graph, before the first checkpoint. ``targets``: search for these
    objects and skip the listing step (``[]`` answers from the global image alone).
    """

    image: ImageInputField
    question: str
    options: NotRequired[list[str] | None]
    targets: NotRequired[list[str] | None]


class SealState(TypedDict):
    """The VWM plus the run's bookkeeping."""

    image: ImageRef
    question: str
    options: NotRequired[list[str] | None]
    #: The objects to search for: given by the caller, or listed by the VQA model.
    targets: NotRequired[list[str] | None]
    #: How ``targets`` came to be.
    target_source: NotRequired[Literal["input", "listing", "none"]]
    #: Where each listed target usually is (the default listing names both); None when
    #: the targets were given, or listed the reference's way (cues asked per target).
    target_cues: NotRequired[dict[str, str | None] | None]
    #: The VQA model's direct answer when the listing step needed no search.
    direct_answer: NotRequired[str | None]
    searches: NotRequired[Annotated[dict[str, TargetOutcome], merge_outcomes]]
    answer: NotRequired[str]
    #: Index into ``options`` of the option the answer chose (None: none recognised).
    choice: NotRequired[int | None]
    warnings: NotRequired[Annotated[list[str], operator.add]]
    events: NotRequired[Annotated[list[Event], operator.add]]


class SealOutput(TypedDict):
    """What ``graph.invoke`` returns."""

    image: ImageRef
    question: str
    options: NotRequired[list[str] | None]
    targets: NotRequired[list[str] | None]
    target_source: NotRequired[Literal["input", "listing", "none"]]
    searches: NotRequired[dict[str, TargetOutcome]]
    answer: NotRequired[str]
    choice: NotRequired[int | None]
    warnings: NotRequired[list[str]]
    events: NotRequired[list[Event]]


class SearchTask(TypedDict):
    """The payload each search branch receives through ``Send``."""

    target: str
    image: ImageRef
    #: The contextual cue the listing named for this target (present: do not ask).
    listed_cue: NotRequired[str | None]


__all__ = [
    "Event",
    "ImageInputField",
    "ImageRef",
    "SealInput",
    "SealOutput",
    "SealState",
    "SearchTask",
    "StepRecord",
    "TargetOutcome",
    "merge_outcomes",
]
