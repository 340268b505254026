"""What the search asks of a search model, and what it gets back.

The search is model-agnostic: anything that can look at a batch of views of one
image and, for each of a few phrases, return boxes with confidences and a heatmap
is a search model. OWLv2 does it in one forward pass per batch; shape world's
reference model does it from pixels on the CPU.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator

from seal_agent.errors import SearchModelError, describe
from seal_agent.imaging.geometry import Box


@dataclass(frozen=True, slots=True)
class Detection:
    """One box a model found, in the pixel frame of the VIEW it was shown."""

    box: Box
    score: float


@dataclass(frozen=True, slots=True)
class PatchPrediction:
    """A model's answer for one view and one phrase.

    ``heatmap`` is a 2-D float array covering exactly the view (any resolution; the
    search maps it onto the patch by fractions), on the model's own raw scale: its
    maximum is compared with the model's cue-threshold schedule to decide whether the
    target cue is strong enough to steer by.
    """

    detections: tuple[Detection, ...]
    heatmap: np.ndarray

    @property
    def cue_strength(self) -> float:
        return float(self.heatmap.max()) if self.heatmap.size else float("-inf")

    def best(self) -> Detection | None:
        return max(self.detections, key=lambda d: d.score, default=None)


class ModelThresholds(BaseModel):
    """Decision thresholds on a model's own scales; each model family ships defaults.

    The defaults here are the reference VSM's (vstar-reference.md).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    confidence_high: float = Field(0.5, gt=0, le=1, description="found when a box scores above")
    confidence_low: float = Field(
        0.3, ge=0, le=1, description="best fallback box counts as found at or above"
    )
    cue_threshold: float = Field(6.0, description="target-cue threshold at the root (level 1)")
    cue_threshold_decay: float = Field(0.7, gt=0, le=1)
    cue_threshold_min: float = Field(3.0, description="floor of the target-cue threshold")

    @model_validator(mode="after")
    def _low_below_high(self) -> ModelThresholds:
        if self.confidence_low > self.confidence_high:
            raise ValueError(
                f"confidence_low ({self.confidence_low}) must not exceed "
                f"confidence_high ({self.confidence_high})"
            )
        return self

    def cue_threshold_at(self, level: int) -> float:
        """delta(level) = max(min, start * decay ** (level - 1)); the root is level 1."""
        return max(
            self.cue_threshold_min, self.cue_threshold * self.cue_threshold_decay ** (level - 1)
        )


@runtime_checkable
class SearchModel(Protocol):
    """A batched open-vocabulary locator.

    ``predict(views, phrases)[i][j]`` is the prediction for ``views[i]`` and
    ``phrases[j]``. All views are of one image; scoring several views in one call is
    how a GPU model scores a batch of patches in one forward pass.

    Optional, detected once per search (existing models need none of them):

    * ``predict(views, phrases, *, scales=...)``: a model whose ``predict`` has a
      ``scales`` parameter receives each view's scale, original-image pixels per view
      pixel (> 1: the view is shrunk, < 1: upsampled), e.g. to size its anchors or to
      know that a 12 px blob in a 1/8 view is a 96 px object.
    * ``max_upsample`` (float, default 1.0): how far the model benefits from seeing
      pixels enlarged. A confident box from a view upsampled beyond it (or from a view
      coarser than the image) is confirmed at native detail before the search stops.
    * ``score_range`` ((low, high), default (0.0, 1.0)): the range of detection scores;
      a score outside it is a model fault.
    * ``framing_invariant`` (bool, default False): True declares that the model's
      confident boxes do not depend on how a view frames the object (a deterministic
      detector that is never confidently wrong), so a second, differently framed
      native look at a confident native box would only repeat it and is skipped; such
      a model is also trusted to steer by a sub-threshold map when no context cue is
      given (a fallible one's weak map leads to its false boxes: native tiles instead),
      and its first confirmed box ends a vstar search (a fallible model's is held
      until it stands out from every other box the model showed at native detail,
      ``SearchConfig.hold_until_clear``). Real detectors' boxes come and go with the
      framing (issue 7), so the default asks for the second look.
    * ``max_batch_size`` (int, default none): the most views one forward pass of the
      model takes. Where the search batches (the sliding window's tiles, vstar's
      native tiles, near-tied patches and closer looks) it then asks for at most that
      many views per ``predict`` call, so its forward-pass count is the model's own:
      OWLv2 on a GPU runs 4 views a forward (``OwlSearchModel``), and a pass of 8
      would be two forwards back to back. ``SearchConfig.batch_size`` overrides it.

    Thread-safety: one model instance serves every concurrent graph branch, so
    ``predict`` may be called from several threads at once and must not keep per-call
    state on the instance. Keep read-only state (weights, templates) shared; guard
    lazy initialisation and a non-reentrant forward pass with a ``threading.Lock``;
    keep per-thread scratch (buffers, RNGs, CUDA streams) in a ``threading.local()``
    created in ``__init__``, never in plain attributes.
    """

    @property
    def input_size(self) -> int:
        """Longer side, in pixels, of what the model actually looks at."""
        ...

    @property
    def thresholds(self) -> ModelThresholds:
        """Calibrated defaults for this model family."""
        ...

    def predict(
        self, views: Sequence[Image.Image], phrases: Sequence[str]
    ) -> list[list[PatchPrediction]]: ...


#: Range of ``input_size`` accepted. Every view is rendered at the model's input size (a
#: patch smaller than it is enlarged), so an absurd declaration (10**6 px) would have the
#: first view allocate terabytes; and the search cuts the image into tiles of about that
#: size, so a tiny one (4 px: 6.75 million tiles of a 12000x9000 image) would queue
#: gigabytes of tiles before the budget stops it. Real detectors look at 224-2048 px.
MIN_INPUT_SIZE = 32
MAX_INPUT_SIZE = 8192

#: Largest heatmap magnitude accepted. The search normalises maps and sums their mass in
#: float32/float64; values near the float limits (1e308) overflow there into NaN
#: priorities. Logits, probabilities and counts are many orders of magnitude below.
MAX_HEATMAP_MAGNITUDE = 1e30

#: Most detections one prediction may hold. Every box is checked and mapped to the image
#: in Python, so 10 million boxes (a model returning every anchor of a dense grid at many
#: scales) would take minutes per view; OWLv2's densest grid at 1344 px has 9,216.
MAX_DETECTIONS = 20_000

#: The optional declarations a model may make (see ``SearchModel``), each with the
#: value that stands for a model that does not make it.
OPTIONAL_DECLARATIONS: dict[str, Any] = {
    "max_upsample": 1.0,
    "score_range": (0.0, 1.0),
    "framing_invariant": False,
    "max_batch_size": None,
}


class DeclarationsShowThrough:
    """Mixin for wrappers that stand between the engine and a search model (caches,
    recorders, cost replays): the engine reads the optional declarations from the model
    it is given, so the wrapped model's must show through, or a wrapper would silently
    change the search (a framing-invariant model charged second looks, say). Subclasses
    say which model declares in ``declaring_model``; defaults are the protocol's."""

    @property
    def declaring_model(self) -> object:
        raise NotImplementedError

    def _declared(self, name: str) -> Any:
        return getattr(self.declaring_model, name, OPTIONAL_DECLARATIONS[name])

    @property
    def max_upsample(self) -> Any:
        return self._declared("max_upsample")

    @property
    def score_range(self) -> Any:
        return self._declared("score_range")

    @property
    def framing_invariant(self) -> Any:
        return self._declared("framing_invariant")

    @property
    def max_batch_size(self) -> Any:
        return self._declared("max_batch_size")


def accepts_scales(model: object) -> bool:
    """Whether ``model.predict`` takes a ``scales`` keyword (an optional protocol part)."""
    predict = getattr(model, "predict", None)
    if predict is None:
        return False
    try:
        params = inspect.signature(predict).parameters
    except (TypeError, ValueError):  # builtins or C extensions without a signature
        return False
    param = params.get("scales")
    return param is not None and param.kind in (
        inspect.Parameter.KEYWORD_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    )


def _declaration(model: object, name: str) -> Any:
    """The model's optional declaration ``name``, or the protocol's default for it; a
    property that raises is a model fault named as such."""
    try:
        return getattr(model, name, OPTIONAL_DECLARATIONS[name])
    except Exception as exc:  # a property that raises
        raise SearchModelError(f"search model attribute {name} raised {describe(exc)}") from exc


def declared_max_upsample(model: object) -> float:
    """The model's ``max_upsample`` (default 1.0: enlarged pixels add nothing)."""
    value = _declaration(model, "max_upsample")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SearchModelError(f"search model max_upsample must be a finite number, got {value!r}")
    if value < 1.0:
        raise SearchModelError(f"search model max_upsample must be >= 1, got {value!r}")
    return float(value)


def declared_framing_invariant(model: object) -> bool:
    """The model's ``framing_invariant`` (default False: confident boxes get a second look)."""
    value = _declaration(model, "framing_invariant")
    if not isinstance(value, bool):
        raise SearchModelError(f"search model framing_invariant must be a bool, got {value!r}")
    return value


def declared_max_batch_size(model: object) -> int | None:
    """The model's ``max_batch_size`` (default None: the search's own batch sizes)."""
    value = _declaration(model, "max_batch_size")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SearchModelError(
            f"search model max_batch_size must be a positive integer or None, got {value!r}"
        )
    return int(value)


def declared_score_range(model: object) -> tuple[float, float]:
    """The model's ``score_range`` (default [0, 1])."""
    value = _declaration(model, "score_range")
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise SearchModelError(
            f"search model score_range must be two numbers (low, high), got {value!r}"
        ) from exc
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise SearchModelError(f"search model score_range must satisfy low < high, got {value!r}")
    return low, high


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _check_detection(det: object, where: str, score_range: tuple[float, float]) -> None:
    if not isinstance(det, Detection):
        raise SearchModelError(f"{where}: a detection is {type(det).__name__}, expected Detection")
    box = det.box
    if not isinstance(box, (tuple, list)) or len(box) != 4:
        size = len(box) if isinstance(box, (tuple, list)) else type(box).__name__
        raise SearchModelError(
            f"{where}: a box has {size} coordinates, expected 4 (x1, y1, x2, y2)"
        )
    if not all(_is_real(v) for v in box):
        kinds = ", ".join(type(v).__name__ for v in box)
        raise SearchModelError(f"{where}: box coordinates must be numbers, got ({kinds})")
    if not all(math.isfinite(v) for v in box):
        raise SearchModelError(f"{where}: a box has a non-finite coordinate (NaN or inf)")
    if box[2] < box[0] or box[3] < box[1]:
        raise SearchModelError(f"{where}: box {tuple(box)} has x2 < x1 or y2 < y1")
    if not _is_real(det.score):
        raise SearchModelError(f"{where}: a score is {type(det.score).__name__}, expected a number")
    if not math.isfinite(det.score):
        raise SearchModelError(f"{where}: a score is non-finite (NaN or inf)")
    low, high = score_range
    if not low <= det.score <= high:
        raise SearchModelError(
            f"{where}: score {float(det.score):g} is outside the model's range [{low:g}, {high:g}]"
        )


def _check_prediction(pred: object, where: str, score_range: tuple[float, float]) -> None:
    if not isinstance(pred, PatchPrediction):
        raise SearchModelError(f"{where}: got {type(pred).__name__}, expected PatchPrediction")
    hm = pred.heatmap
    if not isinstance(hm, np.ndarray):
        raise SearchModelError(f"{where}: the heatmap is {type(hm).__name__}, not a numpy array")
    if hm.dtype.kind not in "iuf":
        raise SearchModelError(f"{where}: the heatmap is not numeric (dtype {hm.dtype})")
    if hm.ndim != 2 or hm.size == 0:
        raise SearchModelError(
            f"{where}: the heatmap is not a 2-D array with cells (shape {hm.shape})"
        )
    if not np.isfinite(hm).all():
        raise SearchModelError(f"{where}: the heatmap holds NaN or inf")
    if max(abs(float(hm.min())), abs(float(hm.max()))) > MAX_HEATMAP_MAGNITUDE:
        raise SearchModelError(
            f"{where}: the heatmap holds values beyond +-{MAX_HEATMAP_MAGNITUDE:g}"
        )
    detections = pred.detections
    if not isinstance(detections, (tuple, list)):
        raise SearchModelError(
            f"{where}: detections is {type(detections).__name__}, expected a tuple of Detection"
        )
    if len(detections) > MAX_DETECTIONS:
        raise SearchModelError(
            f"{where}: {len(detections)} detections, more than {MAX_DETECTIONS} (unfiltered "
            "anchors? keep the boxes worth reporting)"
        )
    for det in detections:
        _check_detection(det, where, score_range)


def fit_heatmap_to_view(prediction: PatchPrediction, view: Image.Image) -> PatchPrediction:
    """The prediction with a heatmap finer than its view max-pooled to the view's pixels.

    A map with more cells than the view has pixels tells the search nothing more (it
    maps the map onto the patch by fractions), but the search keeps a summed-area table
    of every scored map for the priorities of its descendants: a 10000x10000 map would
    hold 800 MB per patch. Max-pooling keeps the map's peak, which is the cue strength.
    """
    hm = prediction.heatmap
    rows, cols = hm.shape
    step_y, step_x = -(-rows // view.height), -(-cols // view.width)
    if step_y == 1 and step_x == 1:
        return prediction
    # Along the rows' contiguous axis first: 7x faster on a 10000x10000 map.
    pooled = np.maximum.reduceat(hm, np.arange(0, cols, step_x), axis=1)
    pooled = np.maximum.reduceat(pooled, np.arange(0, rows, step_y), axis=0)
    return PatchPrediction(prediction.detections, pooled)


def validate_predictions(
    output: object,
    views: Sequence[Image.Image],
    phrases: Sequence[str],
    score_range: tuple[float, float] = (0.0, 1.0),
) -> list[list[PatchPrediction]]:
    """Check a model's output shape and values; raise ``SearchModelError`` naming the fault.

    A misbehaving model (wrong nesting, string coordinates, NaN or out-of-range scores,
    a 1-D or non-numeric heatmap, ``detections=None``) must end a search with a clear
    reason, not corrupt the priority queue or escape as a raw ``TypeError``.
    """
    try:
        if not isinstance(output, list) or len(output) != len(views):
            got = len(output) if isinstance(output, list) else type(output).__name__
            raise SearchModelError(f"search model returned {got} results for {len(views)} views")
        for i, per_view in enumerate(output):
            if not isinstance(per_view, list) or len(per_view) != len(phrases):
                raise SearchModelError(
                    f"search model returned a malformed result for view {i}: expected a list "
                    f"of {len(phrases)} predictions (one per phrase)"
                )
            for j, pred in enumerate(per_view):
                _check_prediction(
                    pred, f"search model output for view {i}, phrase {j}", score_range
                )
    except SearchModelError:
        raise
    except Exception as exc:  # anything the checks themselves trip over is still the model's
        raise SearchModelError(f"search model returned malformed output ({describe(exc)})") from exc
    return output
