"""The reference search model: shape-world perception behind the ``SearchModel`` protocol.

It stands in for OWLv2 or the paper's VSM in tests, benchmarks and the offline demo:
it looks at each view only after shrinking it to ``input_size`` (longer side), so a
target too small at the root is genuinely invisible there, and its heatmap is soft,
discriminative evidence for the phrase on a [0, 1] scale.

Two honest degradations (off by default; see ``perception.degradations``) make it behave
like the detectors users bring: ``weak_heatmap`` (shape evidence only for shapes a ViT
patch can see) and ``fallible`` (confident false boxes on clutter, missed detections).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from seal_agent.errors import InvalidImageError, SearchModelError
from seal_agent.imaging.geometry import Box
from seal_agent.search.protocol import Detection, ModelThresholds, PatchPrediction
from seal_agent.shapeworld.perception import (
    DEFAULT_CONFIG,
    PerceptionConfig,
    Phrase,
    ViewAnalysis,
    analyze_view,
    parse_phrase,
)
from seal_agent.shapeworld.perception.degradations import Fallibility, WeakHeatmap, view_rng
from seal_agent.shapeworld.scene import SHAPES

#: Thresholds on this model's scales. Confidences are posterior x acuity x fit, so
#: 0.5 / 0.3 keep the reference's meaning ("made out" / "plausible"). The heatmap is
#: in [0, 1]. Measured on generated 4000x3000 scenes at input 512: patches of levels
#: 2-3 without the target have a maximum below 0.05 in 90 % of cases, those holding
#: the target above 0.73 in 90 %; at the root (the target always inside, mostly
#: unresolved) the median maximum is ~0.3. The schedule (0.5, 0.4, 0.32, then 0.3)
#: decays as the reference's does: deeper, a weaker peak is already telling.
REFERENCE_THRESHOLDS = ModelThresholds(
    confidence_high=0.5,
    confidence_low=0.3,
    cue_threshold=0.5,
    cue_threshold_decay=0.8,
    cue_threshold_min=0.3,
)


@dataclass(frozen=True, slots=True)
class ReferenceViewEncoding:
    """One view's analysis (the reference model's "image tower" output) and its frame."""

    analysis: ViewAnalysis
    sx: float
    sy: float
    width: int
    height: int
    view: Image.Image | None = None  # kept only by a fallible model (its draws need pixels)

    @property
    def nbytes(self) -> int:
        arrays = (v for v in vars(self.analysis).values() if isinstance(v, np.ndarray))
        view = self.view
        pixels = 0 if view is None else len(view.getbands()) * view.width * view.height
        return 256 + pixels + sum(a.nbytes for a in arrays)


class ReferenceSearchModel:
    """Resolution-honest pixel locator of shape-world phrases ("red star", "table").

    Stateless between calls (the shape templates are built once, under a lock, and only
    read; the fallible draws are seeded per call from the view), so one instance may
    serve several threads.

    ``weak_heatmap`` and ``fallible`` degrade it honestly (both ``None``: the reference).
    ``max_batch_size`` makes it declare a GPU model's forward size (OWLv2 on a GPU takes
    4 views a forward), so the search batches as it would for that model; it computes
    the same answers either way.
    """

    def __init__(
        self,
        input_size: int = 512,
        thresholds: ModelThresholds | None = None,
        config: PerceptionConfig = DEFAULT_CONFIG,
        *,
        weak_heatmap: WeakHeatmap | None = None,
        fallible: Fallibility | None = None,
        max_batch_size: int | None = None,
    ) -> None:
        if not isinstance(input_size, int) or input_size < 32:
            raise ValueError(f"input_size must be an int >= 32, got {input_size!r}")
        if max_batch_size is not None and (
            isinstance(max_batch_size, bool)
            or not isinstance(max_batch_size, int)
            or max_batch_size < 1
        ):
            raise ValueError(
                f"max_batch_size must be a positive int or None, got {max_batch_size!r}"
            )
        self._max_batch_size = max_batch_size
        self._input_size = input_size
        self._thresholds = thresholds or REFERENCE_THRESHOLDS
        self._config = config
        self._weak = weak_heatmap
        self._fallible = fallible

    @property
    def input_size(self) -> int:
        return self._input_size

    @property
    def thresholds(self) -> ModelThresholds:
        return self._thresholds

    @property
    def config(self) -> PerceptionConfig:
        return self._config

    @property
    def weak_heatmap(self) -> WeakHeatmap | None:
        return self._weak

    @property
    def fallible(self) -> Fallibility | None:
        return self._fallible

    @property
    def max_batch_size(self) -> int | None:
        """Views per forward pass, as declared (protocol.SearchModel); None: no limit."""
        return self._max_batch_size

    @property
    def framing_invariant(self) -> bool:
        """The reference's boxes depend on the object's pixels only, never on the view's
        framing, and are never confidently wrong; the fallible mode's draws change with
        every view, so its confident boxes get a second look (protocol.SearchModel)."""
        return self._fallible is None

    def __repr__(self) -> str:
        extras = "".join(
            f", {name}={value!r}"
            for name, value in (("weak_heatmap", self._weak), ("fallible", self._fallible))
            if value is not None
        )
        return f"ReferenceSearchModel(input_size={self._input_size}{extras})"

    def predict(
        self, views: Sequence[Image.Image], phrases: Sequence[str]
    ) -> list[list[PatchPrediction]]:
        """``[view][phrase]`` predictions; boxes in each view's own pixel frame."""
        if isinstance(phrases, str):
            raise SearchModelError("phrases must be a sequence of strings, not one string")
        parsed = [(self._parse(p), p) for p in phrases]
        results: list[list[PatchPrediction]] = []
        for index, view in enumerate(views):
            if not isinstance(view, Image.Image):
                raise InvalidImageError(
                    f"view {index} is a {type(view).__name__}, expected a PIL image"
                )
            results.append(self._predict_one(view, parsed))
        return results

    # -- internals ----------------------------------------------------------------------
    @staticmethod
    def _parse(phrase: object) -> Phrase:
        if not isinstance(phrase, str):
            raise SearchModelError(f"a phrase must be a string, got {type(phrase).__name__}")
        return parse_phrase(phrase)

    # -- split API (search/view_cache.py): the pixel analysis is the image encoder -------
    def encode_views(self, views: Sequence[Image.Image]) -> list[ReferenceViewEncoding]:
        """What the model perceives in each view, independent of any phrase."""
        encodings = []
        for index, view in enumerate(views):
            if not isinstance(view, Image.Image):
                raise InvalidImageError(
                    f"view {index} is a {type(view).__name__}, expected a PIL image"
                )
            analysis, sx, sy = analyze_view(view, self._input_size, self._config)
            # A fallible model draws its failures from the view's pixels: keep them.
            kept = view if self._fallible is not None else None
            encodings.append(ReferenceViewEncoding(analysis, sx, sy, view.width, view.height, kept))
        return encodings

    def predict_encoded(
        self, encodings: Sequence[ReferenceViewEncoding], phrases: Sequence[str]
    ) -> list[list[PatchPrediction]]:
        """The phrase heads on stored analyses: equal to ``predict`` on the views."""
        if isinstance(phrases, str):
            raise SearchModelError("phrases must be a sequence of strings, not one string")
        parsed = [(self._parse(p), p) for p in phrases]
        return [self._heads(e, parsed) for e in encodings]

    def _predict_one(
        self, view: Image.Image, phrases: list[tuple[Phrase, str]]
    ) -> list[PatchPrediction]:
        return self._heads(self.encode_views([view])[0], phrases)

    def _heads(
        self, encoding: ReferenceViewEncoding, phrases: list[tuple[Phrase, str]]
    ) -> list[PatchPrediction]:
        analysis, sx, sy = encoding.analysis, encoding.sx, encoding.sy
        width, height = encoding.width, encoding.height
        predictions = []
        for phrase, text in phrases:
            found = analysis.detections(phrase)
            extra: tuple[tuple[float, float, float], ...] = ()
            if self._fallible is not None and encoding.view is not None:
                rng = view_rng(encoding.view, text, self._fallible.seed)
                found, extra = _fail(analysis, phrase, found, self._fallible, rng)
            detections = tuple(
                Detection(
                    box=Box(box.x1 * sx, box.y1 * sy, box.x2 * sx, box.y2 * sy).clip(width, height),
                    score=score,
                )
                for box, score in found
            )
            heatmap = analysis.heatmap(phrase, self._weak, extra).astype(np.float32, copy=False)
            predictions.append(
                PatchPrediction(
                    detections=tuple(d for d in detections if not d.box.is_empty),
                    heatmap=heatmap,
                )
            )
        return predictions


def _fail(
    analysis: ViewAnalysis,
    phrase: Phrase,
    found: list[tuple[Box, float]],
    fallible: Fallibility,
    rng: np.random.Generator,
) -> tuple[list[tuple[Box, float]], tuple[tuple[float, float, float], ...]]:
    """Drop detections at ``miss_rate``; at ``false_box_rate`` add one confident box on
    clutter (a blob the model itself scores as not the phrase), and its heatmap point.

    The draws come in a fixed order from ``rng``, so a view and phrase always fail alike.
    """
    if phrase.kind != "object":
        return found, ()
    wants_false = rng.random() < fallible.false_box_rate
    pick, score = rng.random(), rng.uniform(*fallible.false_score)
    misses = rng.random(len(found))
    kept = [
        (box, s)
        for (box, s), u in zip(found, misses, strict=True)
        if s < fallible.miss_above or u >= fallible.miss_rate
    ]
    if not wants_false or analysis.n_blobs == 0:
        return kept, ()
    clutter = np.flatnonzero(analysis.phrase_scores(phrase) < fallible.max_clutter_score)
    if clutter.size == 0:
        return kept, ()
    blob = int(clutter[min(int(pick * clutter.size), clutter.size - 1)])
    shape = (
        SHAPES.index(phrase.shape)
        if phrase.shape is not None
        else int(analysis.shape_posterior[blob].argmax())
    )
    x1, y1, x2, y2 = (float(v) for v in analysis.boxes(shape)[blob])
    false = (Box(x1, y1, x2, y2), float(score))
    cx, cy = (float(v) for v in analysis.centroid[blob])
    return sorted([*kept, false], key=lambda d: -d[1]), ((cx, cy, float(score)),)


__all__ = [
    "REFERENCE_THRESHOLDS",
    "Fallibility",
    "ReferenceSearchModel",
    "ReferenceViewEncoding",
    "WeakHeatmap",
]
