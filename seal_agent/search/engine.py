"""V* guided visual search for one target in one (large) image.

One engine runs every strategy. A patch tree rooted at the whole image is explored
from a frontier; visiting a patch scores its view with the search model; a box above
``confidence_high`` ends the search; otherwise the patch's cue heatmap ranks its
children. The strategies differ in the frontier's order (frontier.py) and, for
``seal`` versus ``vstar``, in the rules marked "vstar departs from seal" below:

* ``seal`` is the reference code (penghao-wu/vstar, visual_search.py) as described in
  vstar-reference.md, step for step: it asks the contextual cue at every weak-cue
  patch, showing that patch, and follows the documented delta(level) schedule. (Early
  commits of the reference overrode the schedule with ``threshold = 500``, i.e. always
  the contextual cue; the reference removed that override on 2023-12-25.)
* ``vstar`` is ours: the same skeleton, with each departure explained where it is made:
  a resolution-aware leaf rule, overlapping children, target and context phrases in one
  model call, a weak target cue mixed with the context rather than dropped, a
  probability priority instead of the level-weighted mass sum, candidate zooms,
  heatmap-peak windows and batched native tiles chosen by how much each heatmap
  discriminates (signal.py), confident boxes confirmed at native detail before they
  end the search, fallback candidates superseded by closer looks, and forward passes
  shared by near-tied views, by pending closer looks (a closer look's several framings,
  which confirm each other, included), by guesses and what comes next, and filled up
  once a search has run long;
* ``bfs``/``dfs``/``random-bfs``/``random-dfs`` visit the same tree as ``vstar`` with the
  same visit, leaf, confirmation, found and fallback rules, in an uninformed order (no
  cue, no zoom);
* ``sliding-window`` scores every native-resolution tile in raster order, in batches.

Every strategy returns its best live candidate at or above ``confidence_low`` as a
flagged fallback when it ends without a confident box, budget and deadline stops
included.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydantic import ValidationError

from seal_agent.errors import InvalidQuestionError, SearchModelError
from seal_agent.imaging.geometry import Box, ViewTransform, split_box
from seal_agent.imaging.pyramid import ImagePyramid, as_pyramid
from seal_agent.search.config import SearchConfig
from seal_agent.search.frontier import Frontier, Node, make_frontier
from seal_agent.search.priority import (
    HeatmapMass,
    ancestor_weighted_priority,
    child_probability,
    mix_distributions,
    normalise_heatmap,
)
from seal_agent.search.protocol import (
    ModelThresholds,
    PatchPrediction,
    SearchModel,
    accepts_scales,
    declared_framing_invariant,
    declared_max_batch_size,
    declared_max_upsample,
    declared_score_range,
    validate_predictions,
)
from seal_agent.search.result import (
    ScoredBox,
    SearchResult,
    StopReason,
    TraceStep,
)
from seal_agent.search.signal import peak_cell, peak_share, peak_signal
from seal_agent.search.tiling import (
    SAME_FRAMING_IOU,
    is_native_leaf,
    is_seal_leaf,
    native_tiles,
    other_framings,
    reframed_window,
    seal_smallest_size,
    sliding_windows,
    zoom_window,
)
from seal_agent.search.trace_heatmaps import downsample_heatmap

#: The contextual cue: ``cue(target)`` names where the target usually is ("table").
#: A callable that also takes ``view=`` (a PIL image of the patch) is, for ``seal``,
#: asked at every weak-cue patch and shown that patch, as the reference does; ``vstar``
#: asks once per target, without a view (the caller shows its global image).
ContextCue = Callable[..., str | None]
StepCallback = Callable[[TraceStep], None]

#: vstar: a candidate zoom must show the candidate at least this many times sharper
#: than the view it was seen in, or it cannot change the model's mind.
MIN_ZOOM_GAIN = 1.5
#: vstar: how much of a parent's belief in a child is the child's share of its area
#: rather than of the cue's mass, for a cue above its threshold and for a weak one.
STRONG_CUE_UNIFORM = 0.1
WEAK_CUE_UNIFORM = 0.5
#: Tree strategies score one patch per forward pass unless told otherwise (the search
#: length is the measure); the sliding window and vstar's native tiles have no order
#: that one view could change, so they batch (a size a GPU takes in one pass: OWLv2 at
#: 960 px fits 8 views in ~6 GB), or at most the views one forward of the model takes
#: where it declares ``max_batch_size``.
DEFAULT_TREE_BATCH = 1
DEFAULT_BATCH = 8
#: Views within this factor of the image's own pixels count as native detail.
NATIVE_TOLERANCE = 1.02
#: vstar: a coarse view whose target (and context) heatmaps peak no higher than noise
#: would (signal.peak_signal below this) carries no signal to descend by.
FLAT_SIGNAL = 1.0
#: vstar: a target cue above its threshold whose bright cells lie at least this much
#: within one native window points at one place: look there next.
PEAK_WINDOW_SHARE = 0.8
#: vstar: tree patches whose priorities are within this share of the best queued one
#: are scored with it in one forward pass (up to ``batch_size``; ``batch_size=1``
#: scores strictly one by one). Where the cue is telling, the best child dominates and
#: goes alone; where it is weak, its near-tied siblings would mostly be visited anyway.
#: Measured on shape world (20 targets per mode): forward passes -15 % (reference),
#: -53 % (weak heatmap), -16 % (fallible), for +13-19 % patches. Native tiles and tree
#: patches that tie share a pass too (a tile batch used to stop at a tree patch and a
#: tree batch at a tile, alternating one pass each): measured (search_length.py --mode
#: all --n 30, 37 targets) passes 3.16 -> 2.95 (reference), 5.03 -> 4.92 (weak
#: heatmap), 4.68 -> 4.24 (fallible), patches 4.86 -> 4.81, 17.0 -> 16.9, 7.3 -> 7.4;
#: on real photos (real_photos.py --n 16, Haar faces, where flat maps send vstar to
#: tiles next to tree patches) passes 18.6 -> 11.4, patches 44.6 -> 44.8, success same.
TIE_BATCH_RATIO: float | None = 0.7

#: vstar: closer looks (candidate zooms, confirmations) that a search has seen come to
#: nothing before its pending closer looks share one pass, and before they also take
#: the frontier's next batch along (2). See run(). A model that is not
#: ``framing_invariant`` has its closer looks scored through several framings that must
#: meet in one pass (SearchConfig.framings): always together (0; fallible mode 4.19 ->
#: 3.32 passes). A framing-invariant model's first closer look usually ends the search,
#: so it goes alone (1): together, the graph's searches scored 0.5 more windows per
#: question for no pass saved (cost_per_question.py).
URGENT_TOGETHER_AFTER = {False: 0, True: 1}  # keyed by framing_invariant
FRONTIER_ALONG_AFTER = 2
CLOSER_LOOKS = frozenset({"zoom", "confirm"})
#: A pass's views that may confirm each other's confident box (_mutual_confirmation):
#: closer looks only. Overlapping native tiles of one pass did too at first; on real
#: photos (real_photos.py --n 16, Haar faces) two tiles then confirmed a false box on a
#: texture before the face was reached (one face of 16 lost).
MUTUAL_KINDS = frozenset({"zoom"})
#: vstar: a spare window's box within this many view pixels of the window's border
#: (where the window does not reach the image's) may be cut by it.
CUT_MARGIN = 2.0
#: A detection in a confirmation view is the pending box seen again when their overlap
#: covers at least this share of the smaller box (a coarse view's box of a small object
#: is loose, so IoU would be too strict); a box elsewhere in the window is another box.
SAME_OBJECT_OVERLAP = 0.3

#: vstar, with a model that is not ``framing_invariant`` (_settle): a box two native
#: looks confirmed ends the search once its odds (the weaker look's) are at least this
#: factor, in log-odds, above those of every other box the model has shown at native
#: detail in this search (ln 2: twice the odds); until then it is held.
STAND_OUT_LOGIT = math.log(2.0)
#: Scores this close to a model's range ends are clipped before taking log-odds.
LOGIT_EPS = 1e-4

#: The clock budgets are measured with (a module attribute so tests can drive it).
_clock = time.perf_counter


class VStarSearch:
    """Searches an image for one target phrase with a ``SearchModel``.

    Stateless between calls: one instance may serve several searches and threads.
    """

    def __init__(self, model: SearchModel, config: SearchConfig | None = None) -> None:
        try:
            input_size = getattr(model, "input_size", None)
            defaults = getattr(model, "thresholds", None)
        except Exception as exc:  # a lazy model whose loading fails
            raise SearchModelError(
                f"search model could not be set up: {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
            raise SearchModelError(
                f"search model must have a positive integer input_size, got {input_size!r}"
            )
        if not callable(getattr(model, "predict", None)):
            raise SearchModelError("search model has no predict(views, phrases) method")
        if not isinstance(defaults, ModelThresholds):
            raise SearchModelError(
                f"search model thresholds must be ModelThresholds, got {type(defaults).__name__}"
            )
        self.model = model
        self.input_size = input_size
        self.config = config if config is not None else SearchConfig()
        # The optional protocol parts, detected once (protocol.SearchModel).
        self.passes_scales = accepts_scales(model)
        self.max_upsample = declared_max_upsample(model)
        self.framing_invariant = declared_framing_invariant(model)
        self.score_range = declared_score_range(model)
        self.max_batch_size = declared_max_batch_size(model)
        try:
            self.thresholds = self.config.resolve_thresholds(defaults)
            ModelThresholds.model_validate(self.thresholds.model_dump())
        except ValidationError as exc:
            raise ValueError(f"search thresholds are inconsistent: {exc}") from exc

    def search(
        self,
        image: Image.Image | ImagePyramid,
        target: str,
        *,
        context_cue: ContextCue | None = None,
        on_step: StepCallback | None = None,
    ) -> SearchResult:
        """Find ``target`` (a short noun phrase such as "red star") in ``image``.

        ``context_cue(target)`` names where the target usually is ("table"). ``vstar``
        asks it once per target, before its first forward pass (``context_first``; with
        ``context_first=False`` only once a patch's target cue is too weak to steer by);
        ``seal`` asks it at the first weak-cue patch, or, with a callable that takes
        ``view=``, at every weak-cue patch, shown that patch (the reference); the
        uninformed orders never ask.
        """
        if not isinstance(target, str) or not target.strip():
            raise InvalidQuestionError(f"search target must be a non-empty phrase, got {target!r}")
        pyramid = as_pyramid(image)
        run = _SearchRun(self, pyramid, target.strip(), context_cue, on_step)
        return run.run()


@dataclass(frozen=True, slots=True)
class _Det:
    """A detection in original-image pixels (light: a model may return hundreds)."""

    box: Box
    score: float


@dataclass(slots=True)
class _Candidate:
    """A sub-threshold box kept as the fallback answer."""

    box: Box
    score: float
    step: int
    detail: float  # view px per image px (<= 1) of the view it was seen in
    superseded: bool = False
    dismissed: bool = False  # a confident box its native-detail confirmation rejected
    instances: list[ScoredBox] | None = None  # root instances, kept until confirmed


@dataclass(slots=True)
class _Hit:
    box: Box
    score: float
    step: int
    instances: list[ScoredBox]
    first: float | None = None  # the first look's score, for a box a second view confirmed

    @property
    def strength(self) -> float:
        """The weaker of its looks: both had to clear ``confidence_high``."""
        return self.score if self.first is None else min(self.score, self.first)


class _StopSearchError(Exception):
    """Ends a run early with a reason (budget, deadline, model fault)."""

    def __init__(self, reason: StopReason, message: str) -> None:
        super().__init__(message)
        self.reason: StopReason = reason
        self.message = message


class _SearchRun:
    """The state of one search: frontier, trace, candidates, counters."""

    def __init__(
        self,
        engine: VStarSearch,
        pyramid: ImagePyramid,
        target: str,
        context_cue: ContextCue | None,
        on_step: StepCallback | None,
    ) -> None:
        cfg = engine.config
        self.model = engine.model
        self.cfg = cfg
        self.th = engine.thresholds
        self.strategy = cfg.strategy
        self.is_seal = self.strategy == "seal"
        self.guided = self.strategy in ("vstar", "seal")
        self.pyramid = pyramid
        self.width, self.height = pyramid.width, pyramid.height
        self.target = target
        self.context_cue = context_cue
        self.on_step = on_step
        self.input_size: int = engine.input_size  # read once (a lazy model may load)
        self.frontier: Frontier = make_frontier(self.strategy, cfg.seed)
        self.trace: list[TraceStep] = []
        self.candidates: list[_Candidate] = []
        self.zoom_windows: list[Box] = []
        self.patches_scored = 0
        self.forward_passes = 0
        self.context_asked = False
        self.context_phrase: str | None = None
        self.notes: list[str] = []
        self.started = _clock()
        self.smallest_size = seal_smallest_size(
            self.width, self.height, cfg.min_leaf_size, cfg.leaf_size_scale
        )
        # vstar departs from seal: children overlap (cfg.split_overlap) so that a target
        # cut by a split line lies whole in some child; the reference tiles exactly,
        # leaving such a target split between two children and found in neither.
        self.overlap = 0.0 if self.is_seal else cfg.split_overlap
        if cfg.batch_size is not None:
            self.tile_batch = cfg.batch_size
        else:
            # Never more views per predict call than one forward pass of the model takes
            # (protocol.SearchModel's max_batch_size): a larger batch would be split into
            # several forwards, and the search's pass count would no longer be the model's.
            declared = engine.max_batch_size
            self.tile_batch = DEFAULT_BATCH if declared is None else min(declared, DEFAULT_BATCH)
        if self.is_seal:
            self.batch_size = 1  # the reference scores one patch per visit
        elif self.strategy == "sliding-window":
            self.batch_size = self.tile_batch
        elif self.strategy == "vstar":
            # vstar batches runs of native tiles, near-tied patches of any kind and
            # pending closer looks (see run()); a patch the cue singles out still goes
            # alone (each such view decides what comes next) until the search has run
            # long (full_batches_after).
            self.batch_size = self.tile_batch
        elif cfg.batch_size is not None:
            self.batch_size = cfg.batch_size
        else:
            self.batch_size = DEFAULT_TREE_BATCH
        self.batch_kinds: frozenset[str] | None = (
            frozenset({"tile"}) if self.strategy == "vstar" else None
        )
        self.tie_ratio = TIE_BATCH_RATIO if self.strategy == "vstar" else None
        self.speculate = self.strategy == "vstar" and self.batch_size > 1
        self.failed_looks = 0  # batches with a closer look that found nothing
        self.ride_along = self.strategy == "vstar" and cfg.peek_windows and self.batch_size > 1
        # vstar departs from seal: near-tied tree patches and native tiles are scored in
        # batches of up to batch_size views (one forward pass each); the reference
        # scores one patch per pass.
        self.passes_scales = engine.passes_scales
        self.max_upsample = engine.max_upsample
        self.score_range = engine.score_range
        self.context_takes_view = self.is_seal and _takes_view(context_cue)
        self.confirm = cfg.confirm and not self.is_seal
        self.second_look = self.confirm and not engine.framing_invariant
        self.framing_invariant = engine.framing_invariant
        self.confirmations = 0
        self.dismissed = 0
        self.pending: dict[int, _Candidate] = {}
        # The stop rule (_settle): a confirmed box held until it stands out; the best
        # box of each native-detail view seen so far (what it must stand out from) and
        # the verdicts of second looks (a box's evidence is the weaker of its looks).
        self.held: _Hit | None = None
        self.native_seen: list[_Det] = []
        self.second_looks: list[_Det] = []
        hold = cfg.hold_until_clear
        self.stop_rule = self.second_look and (self.strategy == "vstar" if hold is None else hold)
        floor = cfg.zoom_min_confidence
        self.zoom_floor = self.th.confidence_low / 2 if floor is None else floor

    # -- driver ------------------------------------------------------------------------
    def run(self) -> SearchResult:
        full = Box.full(self.width, self.height)
        if self.strategy == "sliding-window":
            overlap = round(self.input_size * self.cfg.window_overlap)
            tiles = sliding_windows(self.width, self.height, self.input_size, overlap)
            level = 1 if len(tiles) == 1 else 2
            self.frontier.push_children(
                [Node(tile, level, None, kind="root" if tile == full else "tile") for tile in tiles]
            )
        else:
            self.frontier.push_children([Node(full, 1, None, kind="root")])
        if self.strategy == "vstar" and self.cfg.context_first:
            # vstar departs from seal: the context phrase is known before the first
            # pass, so the root and every later view score both phrases at once. Asked
            # lazily (the reference's order), the first weak-cue patch pays a second
            # pass for the context phrase, and a batch of weak-cue patches one pass
            # each. Measured on shape world (search_length.py --mode all --n 30, 37
            # targets): forward passes 3.65 -> 3.16 (reference), 6.05 -> 5.03 (weak
            # heatmap), 5.30 -> 4.68 (fallible); patches 5.35 -> 4.86, 18.0 -> 17.0,
            # 7.9 -> 7.3; success unchanged.
            self._context()
        try:
            while len(self.frontier):
                self._check_budgets()
                limit = self.batch_size
                if self.cfg.max_calls is not None:
                    limit = min(limit, self.cfg.max_calls - self.patches_scored)
                # vstar departs from seal: pending closer looks share a pass (they used
                # to go alone until one had come to nothing: several pending at once come
                # from the near-tied views of one pass or are one closer look's framings
                # (SearchConfig.framings), and one of them usually ends the search;
                # measured with this release's other rules, search_passes.py --n 30, 37
                # shape-world targets: passes 2.59 -> 2.57 (reference), 4.86 -> 4.86
                # (weak heatmap), 4.19 -> 3.32 (fallible); patches 4.78 -> 4.68, 19.95
                # -> 20.0, 10.8 -> 9.7), and after a second
                # failure they take the frontier's next batch along (what the search
                # would score next if they fail too; wasted patches if one succeeds).
                # Measured (37 shape-world targets; 16 real photos, Haar faces), before
                # they shared a pass at once: passes 2.95 -> 2.95 (reference),
                # 4.92 -> 4.89 (weak heatmap), 4.24 -> 4.14 (fallible), 11.4 -> 10.1
                # (real photos); patches 4.81 -> 4.81, 16.9 -> 17.2, 7.4 -> 7.6, 44.8 ->
                # 46.6; success unchanged. Taking the frontier along after the first
                # failure: real photos 9.6 passes for 47.3 patches, but weak heatmap
                # +5 % patches for -2 % passes and fallible +11 % for -6 %.
                failed = self.failed_looks if self.speculate else 0
                fill = self._full_batches()
                batch = self.frontier.pop_batch(
                    limit,
                    self.batch_kinds,
                    None if fill else self.tie_ratio,
                    urgent_together=failed >= URGENT_TOGETHER_AFTER[self.framing_invariant],
                )
                if fill and len(batch) < limit:
                    batch += self.frontier.pop_batch(limit - len(batch))
                looks = [n for n in batch if n.kind in CLOSER_LOOKS and not n.spare]
                along = failed >= FRONTIER_ALONG_AFTER or all(n.guess for n in looks)
                if looks and along and len(batch) < limit:
                    # vstar departs from seal: closer looks on guesses (the peak of a
                    # map whose target cue is below its threshold, _descend_by_signal)
                    # take along what the search would score next: a wrong guess then
                    # costs a patch, not a pass. See _descend_by_signal for the effect.
                    batch += self.frontier.pop_batch(
                        limit - len(batch), self.batch_kinds, self.tie_ratio
                    )
                if self.ride_along and 2 <= len(batch) < limit:
                    # vstar departs from seal: a pass of several near-tied patches takes
                    # spare windows on weak cues' bright places (_queue_peeks); a pass
                    # the cue gave to one patch stays one patch.
                    batch += self.frontier.pop_spare(limit - len(batch), self._peek_wanted)
                hit = self._visit(batch)
                if looks and hit is None:
                    self.failed_looks += 1
                if (done := self._settle(hit)) is not None:
                    return self._found(done)
        except _StopSearchError as stop:
            return self._unfinished(stop.reason, stop.message)
        return self._exhausted()

    def _full_batches(self) -> bool:
        """vstar: whether this pass is filled up to batch_size in the frontier's order.

        vstar departs from seal: a search still running after ``full_batches_after``
        forward passes has seen its maps' best places come to nothing; what it queued
        next is ranked by maps that have been wrong, so near-ties no longer decide what
        shares a pass: every pass takes the next batch_size patches, as the sliding
        window does, which bounds a long search's passes by its patches / batch_size.
        See SearchConfig.full_batches_after for the measured effect. Not for a
        ``framing_invariant`` model: its maps steer a long search level by level (the
        reference model's passes were the same with full batches), so they only added
        patches: the graph's searches 10.1 -> 12.6 encoder passes per question
        (cost_per_question.py), against issue 12's 0.8x of release 0.1.0's.
        """
        after = self.cfg.full_batches_after
        return (
            self.speculate
            and not self.framing_invariant
            and after is not None
            and self.forward_passes >= after
        )

    def _check_budgets(self) -> None:
        cfg = self.cfg
        if cfg.max_calls is not None and self.patches_scored >= cfg.max_calls:
            raise _StopSearchError(
                "budget", f"stopped after {self.patches_scored} patches scored (max_calls)"
            )
        if cfg.deadline_s is not None and self._elapsed() >= cfg.deadline_s:
            raise _StopSearchError(
                "deadline",
                f"stopped at the {cfg.deadline_s:g} s deadline after "
                f"{self.patches_scored} patches scored",
            )

    def _elapsed(self) -> float:
        return _clock() - self.started

    # -- model -------------------------------------------------------------------------
    def _predict(
        self,
        views: Sequence[Image.Image],
        phrases: Sequence[str],
        frames: Sequence[ViewTransform],
    ) -> list[list[PatchPrediction]]:
        self.patches_scored += len(views)
        self.forward_passes += 1
        try:
            if self.passes_scales:
                scales = [f.patch.width / f.view_width for f in frames]
                output = self.model.predict(list(views), list(phrases), scales=scales)  # type: ignore[call-arg]
            else:
                output = self.model.predict(list(views), list(phrases))
        except Exception as exc:  # a model fault ends the search; Ctrl-C still propagates
            raise _StopSearchError(
                "model_error", f"search model raised {type(exc).__name__}: {exc}"
            ) from exc
        try:
            return validate_predictions(output, views, phrases, self.score_range)
        except SearchModelError as exc:
            raise _StopSearchError("model_error", str(exc)) from exc

    def _context(self, view: Image.Image | None = None) -> str | None:
        """The context phrase: asked once per target (vstar, or a callable that cannot be
        shown a patch), or for seal at every weak-cue patch, showing it (the reference)."""
        per_patch = self.context_takes_view and view is not None
        if self.context_asked and not per_patch:
            return self.context_phrase
        self.context_asked = True
        if self.context_cue is None:
            return None
        try:
            answer = (
                self.context_cue(self.target, view=view)
                if per_patch
                else self.context_cue(self.target)
            )
        except Exception as exc:  # the caller's LLM failing must not end the search
            self.notes.append(f"context cue failed ({type(exc).__name__}: {exc})")
            return None
        phrase: str | None = None
        if isinstance(answer, str) and answer.strip():
            phrase = answer.strip()
            if phrase.lower() == self.target.lower():
                phrase = None
        if per_patch:
            return phrase
        self.context_phrase = phrase
        return self.context_phrase

    def _phrases(self) -> list[str]:
        # vstar departs from seal: once the context phrase is known it is scored in the
        # same predict call as the target (one forward pass, one patch scored); the
        # reference runs a separate pass (and an LLM question) for every weak-cue patch.
        if self.strategy == "vstar" and self.context_phrase is not None:
            return [self.target, self.context_phrase]
        return [self.target]

    # -- visiting ----------------------------------------------------------------------
    def _visit(self, batch: list[Node]) -> _Hit | None:
        views: list[tuple[Image.Image, ViewTransform]] = [
            self.pyramid.view(node.patch, self.input_size) for node in batch
        ]
        predictions = self._predict([v for v, _ in views], self._phrases(), [f for _, f in views])
        hits: list[_Hit] = []
        first = len(self.trace)
        for node, (view, frame), per_phrase in zip(batch, views, predictions, strict=True):
            hit = self._visit_one(node, view, frame, per_phrase)
            if hit is not None:
                hits.append(hit)
        if not hits and self.second_look:
            mutual = self._mutual_confirmation(first)
            if mutual is not None:
                hits.append(mutual)
        return max(hits, key=lambda h: h.strength) if hits else None

    def _native_view(self, patch: Box) -> bool:
        """Whether the model sees ``patch`` at native detail (neither shrunk nor enlarged)."""
        scale = self.input_size / max(patch.width, patch.height)
        return scale * NATIVE_TOLERANCE >= 1.0 and scale <= self.max_upsample * NATIVE_TOLERANCE

    def _mutual_confirmation(self, first: int) -> _Hit | None:
        """A confident box seen at native detail by two differently framed views of one
        forward pass (trace steps from ``first`` on), or None.

        vstar departs from seal (the baselines share it): the second native look that a
        model which is not ``framing_invariant`` owes a confident box (see
        _confirmation_window) may be scored in the same pass as the first: two views
        framed differently (IoU below SAME_FRAMING_IOU), both at native detail, that
        both see one object confidently confirm each other. vstar's closer looks are
        scored through several framings at once for this (SearchConfig.framings); the
        sliding window's overlapping tiles meet it where a target lies in two tiles of
        one batch. The pending boxes' own confirmation views are then never scored.
        """
        fresh = [
            (i, c)
            for i, c in self.pending.items()
            if i >= first
            and self.trace[i].kind in MUTUAL_KINDS
            and self._native_view(self.trace[i].patch)
        ]
        best: _Hit | None = None
        for a, (ia, ca) in enumerate(fresh):
            for ib, cb in fresh[a + 1 :]:
                pa, pb = self.trace[ia].patch, self.trace[ib].patch
                if not _same_object(ca.box, cb.box) or pa.iou(pb) >= SAME_FRAMING_IOU:
                    continue
                win, other = (ca, cb) if ca.score >= cb.score else (cb, ca)
                if best is None or min(win.score, other.score) > best.strength:
                    # the weaker framing is the box's other look (the stop rule's strength)
                    best = _Hit(win.box, win.score, win.step, win.instances or [], other.score)
        if best is not None:
            self.confirmations += 1
        return best

    def _visit_one(
        self,
        node: Node,
        view: Image.Image,
        frame: ViewTransform,
        per_phrase: list[PatchPrediction],
    ) -> _Hit | None:
        index = len(self.trace)
        detections = self._image_detections(per_phrase[0], frame)
        best = max(detections, key=lambda d: d.score, default=None)
        scale = min(frame.scale_x, frame.scale_y)  # view px per image px
        detail = min(1.0, scale)
        hit: _Hit | None = None
        cue: str = "none"
        cue_phrase: str | None = None
        if best is not None and detail * NATIVE_TOLERANCE >= 1.0:
            self.native_seen.append(best)
        confirming = self.pending.pop(node.confirms, None) if node.confirms is not None else None
        if confirming is not None:
            self.confirmations += 1
            # A confirmation is about the pending box: its verdict is the best detection
            # overlapping it. Other boxes in the window are not pursued from here (the
            # search reaches them through its own views): a confirmation that spawned
            # confirmations could chain without end on a model that fires everywhere.
            again = [d for d in detections if _same_object(d.box, confirming.box)]
            best = max(again, key=lambda d: d.score, default=None)
            verdict = best.score if best is not None else self.score_range[0]
            self.second_looks.append(_Det(confirming.box, verdict))
        if best is not None and best.score > self.th.confidence_high:
            instances: list[ScoredBox] = []
            if node.kind == "root":  # the reference returns every instance at the root only
                instances = [
                    ScoredBox(box=d.box, score=d.score)
                    for d in sorted(detections, key=lambda d: -d.score)
                    if d.score > self.th.confidence_high
                ]
            elif confirming is not None and confirming.instances:
                instances = confirming.instances
            window = self._confirmation_window(best, node, scale)
            if window is None and node.spare:
                window = self._cut_box_window(best, node)
            if window is None:
                first = confirming.score if confirming is not None else None
                hit = _Hit(best.box, best.score, index, instances, first)
            else:
                # vstar departs from seal (the baselines share it): a confident box seen
                # at less than native detail is only a pending candidate until a native
                # window around it confirms it. The reference stops at once; with real
                # detectors most confidently wrong boxes come from such views (coarse
                # views, upsampled leaves), measured in issue 7.
                pending = _Candidate(best.box, best.score, index, detail, instances=instances)
                self.candidates.append(pending)
                self.pending[index] = pending
                self.zoom_windows.append(window)
                self.frontier.push_urgent(
                    Node(window, node.level + 1, index, kind="confirm", confirms=index)
                )
                if not self._is_leaf(node):
                    cue, cue_phrase = self._expand(node, index, view, frame, per_phrase)
        else:
            if confirming is not None:  # the closer look did not see it: dismiss it
                confirming.superseded = confirming.dismissed = True
                self.dismissed += 1
            if not self.is_seal:
                # a window centred on candidates overrides their earlier looks at up to
                # its own detail; any other view must be 1.5x sharper to
                gain = 1.0 / NATIVE_TOLERANCE if node.kind == "zoom" else MIN_ZOOM_GAIN
                self._supersede(node.patch, detail, gain)
            if best is not None:
                self.candidates.append(_Candidate(best.box, best.score, index, detail))
            if not self._is_leaf(node):
                cue, cue_phrase = self._expand(node, index, view, frame, per_phrase)
            if best is not None and (zoom := self._zoom_window(best, node, detail)) is not None:
                self._push_zoom(zoom, node, index, best.box)
        step = TraceStep(
            index=index,
            parent=node.parent,
            patch=node.patch,
            level=node.level,
            priority=node.priority,
            best_score=best.score if best is not None else None,
            cue=cue,
            context_phrase=cue_phrase,
            kind=node.kind,
            heatmap=(
                downsample_heatmap(per_phrase[0].heatmap, self.cfg.trace_heatmaps)
                if self.cfg.trace_heatmaps
                else None
            ),
        )
        self.trace.append(step)
        if self.on_step is not None:
            self.on_step(step)
        return hit

    def _confirmation_window(self, best: _Det, node: Node, scale: float) -> Box | None:
        """The native-detail window that must confirm ``best`` first, or None to accept it.

        A box needs confirming when its view was coarser than the image or upsampled
        beyond what the model declares useful, and a window around it shows it closer
        to native detail (else no view could do better: a small image, a big object);
        or, for a model that is not ``framing_invariant``, when it was seen at native
        detail but only once (a second look, framed differently). A confirmation view
        that sees the pending box again confidently accepts it.
        """
        if not self.confirm or node.kind == "confirm":
            return None
        coarse = scale * NATIVE_TOLERANCE < 1.0
        enlarged = scale > self.max_upsample * NATIVE_TOLERANCE
        window = zoom_window(best.box, self.width, self.height, self.input_size)
        if not (coarse or enlarged):
            # vstar departs from seal (the baselines share it): a confident box seen at
            # native detail ends the search only once a second native view, framed
            # differently (centred on it, or slid away from the first), sees it
            # confidently again; a model that declares ``framing_invariant`` is spared
            # the look. A real detector's confident false boxes on textures come and go
            # with the framing (OpenCV's Haar cascade on photo world: 15 of 28 false
            # boxes above 0.8 in a native tile fell to 0.8 or below centred on them, 1 of
            # the 11 faces that cleared it did);
            # the reference stops at once. Measured on benchmarks/real_photos.py
            # (n 16): sliding window 56 % -> 62 % success, vstar 31 % -> 38 %, for
            # about one patch per confident box.
            if not self.second_look:
                return None
            return reframed_window(best.box, node.patch, self.width, self.height, self.input_size)
        window_scale = self.input_size / max(window.width, window.height)
        if coarse and window_scale <= scale * NATIVE_TOLERANCE:
            return None
        if enlarged and window_scale * NATIVE_TOLERANCE >= scale:
            return None
        return window

    def _cut_box_window(self, best: _Det, node: Node) -> Box | None:
        """A window centred on a spare window's confident box that touches the window's
        border inside the image (it may be a cut part of something larger), else None.

        vstar departs from seal: a spare window is placed on a weak map's bright cell,
        not on a candidate, so what it cuts at its border is seen only in part; such a
        box is confirmed whole (a window centred on it) before it ends the search.
        """
        if not self.confirm:
            return None
        patch, box = node.patch, best.box
        margin = CUT_MARGIN * max(patch.width, patch.height) / self.input_size
        cut = (
            (box.x1 - patch.x1 < margin and patch.x1 > 0)
            or (box.y1 - patch.y1 < margin and patch.y1 > 0)
            or (patch.x2 - box.x2 < margin and patch.x2 < self.width)
            or (patch.y2 - box.y2 < margin and patch.y2 < self.height)
        )
        if not cut:
            return None
        return zoom_window(box, self.width, self.height, self.input_size)

    def _image_detections(self, prediction: PatchPrediction, frame: ViewTransform) -> list[_Det]:
        """The model's boxes in original-image pixels, clipped; empty boxes dropped."""
        out: list[_Det] = []
        for det in prediction.detections:
            box = frame.to_image(Box(*det.box)).clip(self.width, self.height)
            if not box.is_empty:
                out.append(_Det(box, float(det.score)))
        return out

    def _is_leaf(self, node: Node) -> bool:
        if node.kind in ("zoom", "tile", "confirm"):
            return True
        if self.is_seal:
            return is_seal_leaf(node.patch, self.smallest_size)
        # vstar departs from seal: a patch is a leaf once the model sees it at native
        # resolution. The reference's min(W, H) / 4 rule stops a 12000x9000 scan at
        # 3000x2250 patches, shown to a 512 px model at 1/6 scale: a 12 px target is then
        # 2 model pixels and cannot be found; on a 1000x700 image it stops at 224 px
        # patches that the model sees upsampled 2.3x, wasting visits on no new detail.
        return is_native_leaf(node.patch, self.input_size)

    # -- cues and children ---------------------------------------------------------------
    def _expand(
        self,
        node: Node,
        index: int,
        view: Image.Image,
        frame: ViewTransform,
        per_phrase: list[PatchPrediction],
    ) -> tuple[str, str | None]:
        """Queue the node's children; returns the cue that ranked them and its phrase."""
        children = [c for c in self._children(node.patch) if c != node.patch]
        if not children:
            return "none", None
        if not self.guided:
            # Uninformed orders need no cue: the frontier ignores priorities.
            self.frontier.push_children(
                [Node(c, node.level + 1, index, kind="split") for c in children]
            )
            return "none", None
        heatmap, cue, phrase, strong = self._cue(node, view, frame, per_phrase)
        if (
            self.strategy == "vstar"
            and self.cfg.signal_descent
            and self._descend_by_signal(
                node, index, frame, per_phrase, heatmap, strong or cue == "context"
            )
        ):
            return cue, phrase
        if self.ride_along and not strong and node.level > 1:
            self._queue_peeks(node, index, frame, heatmap)
        if self.is_seal or self.cfg.priority == "reference":
            # The reference: sum over the patch and its ancestors of their heatmap's
            # share in the child, weighted 1/4**level.
            lineage = (*node.lineage, HeatmapMass.from_heatmap(heatmap, node.patch, node.level))
            nodes = [
                Node(
                    c,
                    node.level + 1,
                    index,
                    priority=ancestor_weighted_priority(c, lineage),
                    kind="split",
                    lineage=lineage,
                )
                for c in children
            ]
        else:
            # vstar departs from seal: the priority is the probability that the target
            # lies in the patch, P(child) = P(parent) x the parent's belief in the child,
            # the belief mixing the cue's share with the area share (weight 0.1 for a
            # cue above its threshold, 0.5 for a weak one: half noise). The reference's
            # level-weighted sum lets the root's blurry heatmap outvote everything seen
            # later and, measured on shape world, needs ~1.5x more patches; with a
            # sharp cue the product goes straight down, with a weak one it stays broad.
            cue_mass = HeatmapMass.from_heatmap(heatmap, node.patch, node.level)
            parent_p = node.priority if node.priority is not None else 1.0
            floor = STRONG_CUE_UNIFORM if strong else WEAK_CUE_UNIFORM
            if (
                self.cfg.tie_weak_root
                and not strong
                and cue == "context"
                and node.kind == "root"
                and self.speculate
            ):
                # vstar departs from seal: below a root whose target cue is below its
                # threshold, the children are equally likely (area shares). The root is
                # the coarsest view: a target there is a few model pixels wide, and
                # what its weak map (and the context mixed in) prefers is mostly not
                # where the target is; ranked by it, the children went one by one or
                # two by two. Equal, they tie and share pass 2, and each one's own map
                # ranks what lies below it. Measured with this release's other rules
                # (search_passes.py --n 30, 37 targets): passes 2.59 -> 2.41
                # (reference), 4.86 -> 4.49 (weak heatmap), 3.32 -> 3.11 (fallible);
                # patches 4.68 -> 5.11, 20.0 -> 19.4, 9.7 -> 9.5; success unchanged.
                # But the graph's searches (vstar_shapeworld.py --n 24 --seed 0) pay
                # 7.12 -> 8.54 patches per question: off by default (tie_weak_root).
                floor = 1.0
            nodes = [
                Node(
                    c,
                    node.level + 1,
                    index,
                    priority=child_probability(parent_p, cue_mass, c, floor),
                    kind="split",
                )
                for c in children
            ]
        self.frontier.push_children(nodes)
        return cue, phrase

    def _descend_by_signal(
        self,
        node: Node,
        index: int,
        frame: ViewTransform,
        per_phrase: list[PatchPrediction],
        heatmap: np.ndarray,
        steered: bool,
    ) -> bool:
        """vstar: native tiles below a coarse view without signal or steer (True: children
        queued), and a native window on a telling map's single peak (queued next; returns
        False). ``steered``: the target cue cleared its threshold, or a context cue was
        mixed in.

        vstar departs from seal: the reference descends 2x2 through every coarse view
        whatever its heatmap shows. A real detector's map holds nothing for an object a
        few model pixels wide (issue 7: below ~40 px a face detector's map is flat), so
        such views cost patches and steer nowhere; below one, the search steps straight
        to the native-resolution tiles of the patch, ranked by whatever signal there is
        and scored in batches, which bounds a flat search by the sliding window's cost.
        Conversely a map above its threshold whose bright cells all lie in one native
        window has said where to look: that window is looked at next, skipping the
        levels in between (the children stay queued in case it shows nothing).

        vstar departs from seal: below such a view the native tiles are queued in raster
        order (each gets the parent's probability times its area share), not ranked by
        the map's residual mass. A map without signal has nothing to rank by, and what
        it does show is what the model half-sees at the wrong scale: on photo world the
        Haar cascade's faint windows on textures, exactly where its confident false
        boxes are, so a ranked search met a false box before the face; raster order is
        blind to them, as the sliding window is. Measured on benchmarks/real_photos.py
        (n 16): forward passes 18.6 -> 13.4 (whole batches of sibling tiles), success
        unchanged at 31 %.

        vstar departs from seal: a target cue below its threshold with no context cue to
        mix in counts as no signal, however peaked (``steered`` False). By the model's
        own calibration nothing is made out, and with no context the peak is the
        model's half-seen guess at the wrong scale (the cascade's textures again);
        descending 2x2 by it paid for coarse views and led to textures. With a context
        cue (shape world's "on a table") the mix still steers. Measured on
        benchmarks/real_photos.py (n 16, with the second look): vstar 38 % -> 56 %
        success, 18.3 -> 11.4 forward passes, 66.6 -> 64.4 patches. A model that
        declares ``framing_invariant`` (never confidently wrong, e.g. shape world's
        reference model) is trusted to steer by its weak map: there the sub-threshold
        peak is the target's own evidence, and raster tiles cost the graph's
        cue-less searches 3.7x the patches (a 12 px circle on 7680x4320: 26 -> 97).
        """
        scale = min(frame.scale_x, frame.scale_y)
        if scale * NATIVE_TOLERANCE >= 1.0:
            return False
        signal = max(peak_signal(per_phrase[0].heatmap), peak_signal(heatmap))
        if signal < FLAT_SIGNAL or not (steered or self.framing_invariant):
            margin = math.ceil(self.cfg.split_overlap * self.input_size)
            tiles = native_tiles(node.patch, self.input_size, margin)
            if len(tiles) < 2:
                return False
            cue_mass = HeatmapMass.from_heatmap(heatmap, node.patch, node.level)
            parent_p = node.priority if node.priority is not None else 1.0
            self.frontier.push_children(
                [
                    Node(
                        t,
                        node.level + 1,
                        index,
                        priority=child_probability(parent_p, cue_mass, t, 1.0),
                        kind="tile",
                    )
                    for t in tiles
                ]
            )
            return True
        strong = per_phrase[0].cue_strength > self.th.cue_threshold_at(node.level)
        # vstar departs from seal: a model that declares ``framing_invariant`` is also
        # looked at through a native window on its map's single peak when its target cue
        # is below the threshold (a guess): for such a model the sub-threshold peak is
        # the target's own evidence more often than not. The guess shares its pass with
        # what the search would score next (run()), so a wrong one costs a patch, not a
        # pass. Measured (search_passes.py --n 30, 37 targets; the other rules of this
        # release on): reference model 2.89 -> 2.59 forward passes, 4.51 -> 4.41
        # patches, 5 targets of 37 found in 2 passes instead of 3; as urgent closer
        # looks that went alone, 2.97 (a wrong guess cost a pass). Weak-heatmap mode
        # unchanged (its maps never single out one window). Not for fallible models:
        # their native views of the peak's clutter hold their false boxes (fallible mode
        # 97.3 -> 91.9 % success).
        if strong or (self.framing_invariant and self.cfg.guess_windows):
            target = normalise_heatmap(per_phrase[0].heatmap)
            cell = peak_cell(target, node.patch)
            window = zoom_window(cell, self.width, self.height, self.input_size)
            window_scale = self.input_size / max(window.width, window.height)
            if (
                window_scale >= MIN_ZOOM_GAIN * scale
                and peak_share(target, node.patch, window) >= PEAK_WINDOW_SHARE
                and not any(w.contains(cell) for w in self.zoom_windows)
            ):
                self._push_zoom(window, node, index, cell, guess=not strong)
        return False

    def _queue_peeks(
        self, node: Node, index: int, frame: ViewTransform, heatmap: np.ndarray
    ) -> None:
        """vstar: native windows on a weak cue's brightest places, to ride along in
        forward passes that have room (run()).

        vstar departs from seal: a weak cue cannot single out a child, so its near-tied
        children share a pass (TIE_BATCH_RATIO) that usually has room left; the room is
        filled with native-detail windows on the places the weak map finds brightest
        (each window's cells suppressed before the next is picked). A window that shows
        the target ends the search a level or two early; one that does not costs a
        patch, not a pass. Only below the root: the root is the coarsest view (a small
        target a few pixels wide), and its windows cost patches without saving passes.
        Measured on shape world (search_length.py --mode all --n 30, 37 targets, with
        context_first): forward passes 3.16 -> 2.76 (reference), 5.03 -> 4.54 (weak
        heatmap), 4.68 -> 4.19 (fallible); patches 4.86 -> 5.00, 17.0 -> 17.5,
        7.3 -> 7.8; success unchanged. Windows from the root as well: passes no lower on
        the reference (2.76), patches 5.9 (above 5.5), fallible success 94.6 -> 86.5 %
        (more native views, more of its false boxes). Off by default
        (``SearchConfig.peek_windows``): on real photos (real_photos.py --n 16, Haar
        faces) they cost one face of 16 (31 -> 25 %) to a false box on clutter seen
        at native detail, and +11 % patches, for -8 % passes: a weak map's bright
        places are exactly the target-like clutter a fallible detector fires on.
        """
        scale = min(frame.scale_x, frame.scale_y)
        rows, cols = heatmap.shape
        if rows * cols < 2:
            return
        cue_mass = HeatmapMass.from_heatmap(heatmap, node.patch, node.level)
        if cue_mass.total <= 0:
            return
        parent_p = node.priority if node.priority is not None else 1.0
        cw, ch = node.patch.width / cols, node.patch.height / rows
        left = np.asarray(heatmap, dtype=np.float64).copy()
        peeks: list[Node] = []
        for _ in range(self.batch_size):
            flat = int(np.argmax(left))
            r, c = divmod(flat, cols)
            if not left[r, c] > 0:
                break
            cell = Box(
                node.patch.x1 + c * cw,
                node.patch.y1 + r * ch,
                node.patch.x1 + (c + 1) * cw,
                node.patch.y1 + (r + 1) * ch,
            )
            window = zoom_window(cell, self.width, self.height, self.input_size)
            if self.input_size / max(window.width, window.height) < MIN_ZOOM_GAIN * scale:
                break  # no sharper than the view that asked for it
            c1 = max(0, math.floor((window.x1 - node.patch.x1) / cw))
            c2 = min(cols, math.ceil((window.x2 - node.patch.x1) / cw))
            r1 = max(0, math.floor((window.y1 - node.patch.y1) / ch))
            r2 = min(rows, math.ceil((window.y2 - node.patch.y1) / ch))
            left[r1:r2, c1:c2] = 0.0
            left[r, c] = 0.0
            share = cue_mass.share(window)
            peeks.append(
                Node(
                    window,
                    node.level + 1,
                    index,
                    priority=parent_p * share,
                    kind="zoom",
                    spare=True,
                )
            )
        self.frontier.push_spare(peeks, keep=self.batch_size)

    def _peek_wanted(self, node: Node) -> bool:
        """A spare window is scored only if no window scored so far holds its centre."""
        cx, cy = node.patch.center
        centre = Box(cx, cy, cx, cy)
        if any(w.contains(centre) for w in self.zoom_windows):
            return False
        self.zoom_windows.append(node.patch)
        return True

    def _children(self, patch: Box) -> list[Box]:
        if not self.is_seal and self.cfg.native_tiles > 0:
            # Optional (off by default): when a few native-resolution tiles cover the
            # patch, they are its children. Splitting 2x2 again overshoots (a 1266x949
            # patch gives 713x534 children, still above a 512 px input, then 16
            # upsampled grandchildren), so tiles make an exhaustive search ~3x cheaper;
            # but the 713x534 children, seen at 0.7x, already show most targets, and a
            # guided search measured ~25 % more patches with tiles than without.
            margin = math.ceil(self.cfg.split_overlap * self.input_size)
            tiles = native_tiles(patch, self.input_size, margin)
            if len(tiles) <= self.cfg.native_tiles:
                return tiles
        return split_box(patch, self.overlap)

    def _cue(
        self,
        node: Node,
        view: Image.Image,
        frame: ViewTransform,
        per_phrase: list[PatchPrediction],
    ) -> tuple[np.ndarray, str, str | None, bool]:
        """The map that ranks the children, which cue it is, its phrase, and whether the
        target cue was strong (above the level's threshold)."""
        target_pred = per_phrase[0]
        target = normalise_heatmap(target_pred.heatmap)
        if target_pred.cue_strength > self.th.cue_threshold_at(node.level):
            return target, "target", None, True
        phrase = self._context(view)
        if phrase is None:  # no context available: the target heatmap is all there is
            return target, "target", None, False
        if len(per_phrase) > 1:
            context_heatmap = per_phrase[1].heatmap
        else:
            # seal: the reference scores the context phrase in a second pass for every
            # weak-cue patch. vstar: only the first weak-cue patch gets one (the phrase
            # was not known when it was scored); every later call scores both phrases.
            if self.cfg.max_calls is not None and self.patches_scored >= self.cfg.max_calls:
                return target, "target", None, False
            context_heatmap = self._predict([view], [phrase], [frame])[0][0].heatmap
        context = normalise_heatmap(context_heatmap)
        if self.is_seal or self.cfg.weak_cue == "context":
            return context, "context", phrase, False
        if self.cfg.weak_cue == "target":
            return target, "target", None, False
        if context.shape != target.shape:  # a model with per-phrase grids: cannot mix
            return context, "context", phrase, False
        # vstar departs from seal: a weak target cue is still evidence (a blurry blob
        # that looks more like the target than its neighbours), so it is mixed with the
        # context, half and half as distributions, instead of being thrown away; the
        # context then decides between regions the target cue cannot tell apart.
        return mix_distributions([target, context], [0.5, 0.5]), "context", phrase, False

    # -- candidate zoom ----------------------------------------------------------------
    def _zoom_window(self, best: _Det, node: Node, detail: float) -> Box | None:
        """The window to look at a sub-threshold candidate through next, or None."""
        # vstar departs from seal: a sub-threshold candidate seen at low resolution is
        # looked at next through a native-resolution window centred on it, confirming
        # or rejecting it in one step; the reference only keeps it as a fallback and
        # may reach it again only by descending the tree level by level.
        if self.strategy != "vstar" or not self.cfg.candidate_zoom:
            return None
        if not self.zoom_floor <= best.score <= self.th.confidence_high:
            return None
        window = zoom_window(best.box, self.width, self.height, self.input_size)
        window_detail = min(1.0, self.input_size / max(window.width, window.height))
        if window_detail < MIN_ZOOM_GAIN * detail:
            # vstar departs from seal: a candidate at or above confidence_low seen at
            # native detail, by a model that is not framing_invariant, is looked at
            # again through a window framed differently (centred on it, or slid away):
            # real detectors score an object by how the view frames it, and a face cut
            # near a tile's edge at 0.56 may clear the bar centred. The look's verdict
            # supersedes the first. Measured on benchmarks/real_photos.py (n 16): vstar
            # 64.4 -> 47.5 patches, 11.4 -> 10.9 forward passes, success unchanged
            # (56 %; the two runs miss different scenes).
            if not (
                self.second_look
                and best.score >= self.th.confidence_low
                and node.kind in ("root", "split", "tile")
            ):
                return None
            reframed = reframed_window(
                best.box, node.patch, self.width, self.height, self.input_size
            )
            if reframed is None:
                return None
            window = reframed
        if any(w.contains(best.box) for w in self.zoom_windows):
            return None
        return window

    def _push_zoom(
        self, window: Box, node: Node, index: int, around: Box | None = None, guess: bool = False
    ) -> None:
        """Queue a closer look through ``window`` at ``around`` (a candidate's box or a
        map's peak cell), with its other framings where the model owes a second look."""
        self.zoom_windows.append(window)
        self.frontier.push_urgent(Node(window, node.level + 1, index, kind="zoom", guess=guess))
        extra = self.cfg.framings - 1
        if around is None or extra < 1 or not (self.speculate and self.second_look):
            return
        # vstar departs from seal: for a model that is not ``framing_invariant`` a
        # confident box at native detail ends the search only once a second framing sees
        # it again (_confirmation_window), which cost a pass of its own after every
        # closer look. The other framings are scored in the closer look's pass instead
        # (pending closer looks share a pass, URGENT_TOGETHER_AFTER), and two that see
        # the box confirm it (_mutual_confirmation). See SearchConfig.framings.
        for other in other_framings(
            around, window, self.width, self.height, self.input_size, extra
        ):
            self.frontier.push_urgent(Node(other, node.level + 1, index, kind="zoom", guess=guess))

    def _supersede(self, patch: Box, detail: float, gain: float = MIN_ZOOM_GAIN) -> None:
        # vstar departs from seal (and the baselines share it): a candidate seen in a
        # coarse view is dismissed once a view with at least 1.5x its detail covered it
        # whole (a zoom window centred on it: any detail at least its own); the closer
        # look's own verdict (its own candidate or nothing) stands. The reference keeps
        # the best score ever seen, so a blurry distractor that once scored 0.35 can win
        # the fallback after the closer look rejected it.
        for cand in self.candidates:
            if not cand.superseded and detail >= gain * cand.detail and patch.contains(cand.box):
                cand.superseded = True

    # -- stopping ----------------------------------------------------------------------
    def _settle(self, hit: _Hit | None) -> _Hit | None:
        """The confirmed box that ends the search now, or None to keep searching.

        vstar departs from seal: with a model that is not ``framing_invariant``, a box
        confirmed by two differently framed native looks ends the search only when it
        stands out from everything else the model has shown at native detail in this
        search (``_stands_out``; each box by the weaker of its looks, so a box its
        second look dismissed is no rival at its first score) and no box still awaiting
        its confirmation scored above it (``_better_pending``). Otherwise it is held:
        the search goes on, the stronger of two confirmed boxes (by the weaker of each
        one's looks) is kept, and a budget or deadline stop or an exhausted frontier
        returns the held box.

        A real detector's false boxes that survive reframing (the Haar cascade on
        textures: about half of them) are rarely its clearest box of the image: a
        texture that fools it fires at 0.8-0.95 where others fired at 0.7-0.9, a face
        it sees well scores 0.98 or more. The reference, and the sliding window, stop
        at the first confirmed box. Measured on benchmarks/real_photos.py (Haar faces,
        16 scenes per seed block): seeds 0-15, vstar 9 -> 11 faces (sliding window
        10), 50.4 -> 62.1 patches, 9.2 -> 11.1 forward passes; seeds 16-31, 9 -> 11
        (sliding window 10), 53.6 -> 70.6 patches, 9.4 -> 12.0 passes. The pending-box
        check alone: 10 and 9 faces. Margins from 0.3 to 1.5 in log-odds: 10-11 faces
        per block. Rivals at their first look's score (dismissed boxes too): the same
        faces for 77.1 patches and 13.1 passes on seeds 0-15. On 64 smaller scenes
        (2000x1500, seeds 0-63), where few false boxes come before the face: 49 faces
        without the rule, 48 with it (a face seen at 0.90/0.81 lost to a texture at
        0.84/0.95 met later). The sliding window given the same rule
        (``hold_until_clear=True``): 11 and 11 faces, 79.1 and 69.0 patches. Shape
        world (search_length.py --mode all --n 12): reference and weak unchanged;
        fallible success unchanged, patches 10.7 -> 11.3, passes 5.5 -> 5.6.
        """
        if hit is not None and (self.held is None or hit.strength > self.held.strength):
            self.held = hit
        held = self.held
        if held is None:
            return None
        if not self.stop_rule or (not self._better_pending(held) and self._stands_out(held)):
            return held
        return None

    def _better_pending(self, held: _Hit) -> bool:
        """Whether a box still awaiting its confirmation scored above ``held``'s
        strength at its first look (it could still beat it: confirm it first)."""
        return any(c.score > held.strength for c in self.pending.values())

    def _stands_out(self, held: _Hit) -> bool:
        """Whether ``held`` stands out from the other native views' best boxes."""
        others = [self._evidence(d) for d in self.native_seen if not _same_object(d.box, held.box)]
        if not others:
            return True
        return self._logit(held.strength) - self._logit(max(others)) >= STAND_OUT_LOGIT

    def _evidence(self, det: _Det) -> float:
        """A box's score, or the weaker of its looks where a second look judged it."""
        looks = [r.score for r in self.second_looks if _same_object(r.box, det.box)]
        return min([det.score, *looks])

    def _logit(self, score: float) -> float:
        low, high = self.score_range
        p = min(max((score - low) / (high - low), LOGIT_EPS), 1.0 - LOGIT_EPS)
        return math.log(p / (1.0 - p))

    # -- results -----------------------------------------------------------------------
    def _best_candidate(self) -> _Candidate | None:
        if self.is_seal:
            # The reference: highest confidence ever seen, strictly above 0.
            best = max(self.candidates, key=lambda c: c.score, default=None)
            return best if best is not None and best.score > 0 else None
        live = [c for c in self.candidates if not c.superseded]
        return max(live, key=lambda c: c.score, default=None)

    def _result(
        self,
        *,
        found: bool,
        reason: StopReason,
        message: str,
        box: Box | None,
        confidence: float | None,
        instances: list[ScoredBox] | None = None,
        fallback: bool = False,
    ) -> SearchResult:
        if self.confirmations:
            message = (
                f"{message}; {self.confirmations} confirmation patch(es) at native detail, "
                f"{self.dismissed} confident box(es) dismissed"
            )
        if self.notes:
            notes = list(dict.fromkeys(self.notes))  # a per-patch cue may fail many times
            message = f"{message}; {'; '.join(notes[:3])}"
        return SearchResult(
            target=self.target,
            strategy=self.strategy,
            found=found,
            box=box,
            confidence=confidence,
            instances=instances or [],
            stop_reason=reason,
            fallback=fallback,
            message=message,
            patches_scored=self.patches_scored,
            forward_passes=self.forward_passes,
            confirmations=self.confirmations,
            dismissed=self.dismissed,
            elapsed_s=self._elapsed(),
            trace=self.trace,
        )

    def _found(self, hit: _Hit) -> SearchResult:
        return self._result(
            found=True,
            reason="found",
            message=(
                f"found {self.target!r} with confidence {hit.score:.2f} at step {hit.step + 1} "
                f"({self.patches_scored} patches scored)"
            ),
            box=hit.box,
            confidence=hit.score,
            instances=hit.instances,
        )

    def _fallback(self) -> _Candidate | None:
        best = self._best_candidate()
        return best if best is not None and best.score >= self.th.confidence_low else None

    def _exhausted(self) -> SearchResult:
        if self.held is not None:  # every patch scored: the strongest confirmed box
            return self._found(self.held)
        fallback = self._fallback()
        if fallback is not None:
            return self._result(
                found=True,
                reason="fallback",
                message=(
                    f"no box cleared {self.th.confidence_high:g}; the best candidate "
                    f"({fallback.score:.2f}) cleared confidence_low {self.th.confidence_low:g}"
                ),
                box=fallback.box,
                confidence=fallback.score,
                fallback=True,
            )
        best = self._best_candidate()
        detail = f"best candidate {best.score:.2f}" if best is not None else "no candidate"
        return self._result(
            found=False,
            reason="exhausted",
            message=(
                f"{self.target!r} not found: every patch was scored ({self.patches_scored}); "
                f"{detail} below confidence_low {self.th.confidence_low:g}"
            ),
            box=best.box if best is not None else None,
            confidence=best.score if best is not None else None,
        )

    def _unfinished(self, reason: StopReason, message: str) -> SearchResult:
        if reason in ("budget", "deadline") and (held := self.held) is not None:
            # A box two native looks confirmed, held because it did not stand out.
            return self._result(
                found=True,
                reason=reason,
                message=(
                    f"{message}; returning the confirmed box held ({held.strength:.2f}, "
                    "two native looks) that had not yet stood out"
                ),
                box=held.box,
                confidence=held.score,
                instances=held.instances,
            )
        best = self._best_candidate()
        # Budgets keep what was found: a search cut short by max_calls or its deadline
        # returns its best live candidate at or above confidence_low (a confident box
        # still awaiting confirmation included), flagged as a fallback. A model fault
        # returns it too, but not as found: the run cannot vouch for it.
        if reason in ("budget", "deadline") and (fallback := self._fallback()) is not None:
            return self._result(
                found=True,
                reason=reason,
                message=(
                    f"{message}; returning the best candidate ({fallback.score:.2f}, at or "
                    f"above confidence_low {self.th.confidence_low:g}) as a fallback"
                ),
                box=fallback.box,
                confidence=fallback.score,
                fallback=True,
            )
        return self._result(
            found=False,
            reason=reason,
            message=f"{self.target!r} not found: {message}",
            box=best.box if best is not None else None,
            confidence=best.score if best is not None else None,
        )


def _same_object(a: Box, b: Box) -> bool:
    """Whether two boxes show one object (overlap over the smaller box's area)."""
    smaller = min(a.area, b.area)
    return smaller > 0 and a.intersection(b).area >= SAME_OBJECT_OVERLAP * smaller


def _takes_view(cue: ContextCue | None) -> bool:
    """Whether a context-cue callable accepts ``view=`` (it can be shown the patch)."""
    if cue is None:
        return False
    try:
        params = inspect.signature(cue).parameters
    except (TypeError, ValueError):
        return False
    return "view" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


__all__ = ["ContextCue", "StepCallback", "VStarSearch"]
