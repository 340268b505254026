"""V* guided visual search for one target in one (large) image.

One engine runs every strategy. A patch tree rooted at the whole image is explored
from a frontier; visiting a patch scores its view with the search model; a box above
``confidence_high`` ends the search; otherwise the patch's cue heatmap ranks its
children. The strategies differ in the frontier's order (frontier.py) and, for
``seal`` versus ``vstar``, in the rules marked "vstar departs from seal" here and in
the run's parts (closer_looks.py, descent.py, stop_rule.py):

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

One search is a ``_SearchRun``: this module drives it (batches, budgets, the model
call, visiting a patch); its mixins hold the rest, one job each: ``CloserLooks``
(confirmations, candidate zooms), ``Descent`` (cues, children, native tiles),
``StopRule`` (when a confirmed box ends the search) and ``Outcomes`` (the result),
all typed against the fields declared on ``run_state.RunState``.
"""

from __future__ import annotations

import heapq
import inspect
import time
from collections.abc import Callable, Sequence
from functools import partial

from PIL import Image
from pydantic import ValidationError

from seal_agent.errors import InvalidQuestionError, SearchModelError, describe
from seal_agent.imaging.geometry import Box, ViewTransform
from seal_agent.imaging.pyramid import ImagePyramid, as_pyramid
from seal_agent.search.closer_looks import MIN_ZOOM_GAIN, CloserLooks
from seal_agent.search.config import SearchConfig
from seal_agent.search.descent import Descent
from seal_agent.search.frontier import Frontier, Node, make_frontier
from seal_agent.search.model_calls import ModelCallTimeoutError, call_before
from seal_agent.search.outcomes import Outcomes
from seal_agent.search.protocol import (
    MAX_INPUT_SIZE,
    MIN_INPUT_SIZE,
    ModelThresholds,
    PatchPrediction,
    SearchModel,
    accepts_scales,
    declared_framing_invariant,
    declared_max_batch_size,
    declared_max_upsample,
    declared_score_range,
    fit_heatmap_to_view,
    validate_predictions,
)
from seal_agent.search.result import ScoredBox, SearchResult, TraceStep
from seal_agent.search.run_state import (
    NATIVE_TOLERANCE,
    _Candidate,
    _Det,
    _Hit,
    _same_object,
    _StopSearchError,
)
from seal_agent.search.stop_rule import StopRule
from seal_agent.search.tiling import (
    is_native_leaf,
    is_seal_leaf,
    seal_smallest_size,
    sliding_windows,
)
from seal_agent.search.trace_heatmaps import downsample_heatmap

#: The contextual cue: ``cue(target)`` names where the target usually is ("table").
#: A callable that also takes ``view=`` (a PIL image of the patch) is, for ``seal``,
#: asked at every weak-cue patch and shown that patch, as the reference does; ``vstar``
#: asks once per target, without a view (the caller shows its global image).
ContextCue = Callable[..., str | None]
StepCallback = Callable[[TraceStep], None]

#: Tree strategies score one patch per forward pass unless told otherwise (the search
#: length is the measure); the sliding window and vstar's native tiles have no order
#: that one view could change, so they batch (a size a GPU takes in one pass: OWLv2 at
#: 960 px fits 8 views in ~6 GB), or at most the views one forward of the model takes
#: where it declares ``max_batch_size``.
DEFAULT_TREE_BATCH = 1
DEFAULT_BATCH = 8
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
#: Most root instances a result keeps, best first: a model that fires everywhere (10,000
#: confident boxes) would otherwise put all of them into the result and the graph's
#: state; the answer's prompt shows three.
MAX_INSTANCES = 100

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
            raise SearchModelError(f"search model could not be set up: {describe(exc)}") from exc
        if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
            raise SearchModelError(
                f"search model must have a positive integer input_size, got {input_size!r}"
            )
        if not MIN_INPUT_SIZE <= input_size <= MAX_INPUT_SIZE:
            raise SearchModelError(
                f"search model input_size {input_size} is outside {MIN_INPUT_SIZE}-"
                f"{MAX_INPUT_SIZE} px: views are rendered, and the image tiled, at that size"
            )
        if not callable(getattr(model, "predict", None)):
            raise SearchModelError("search model has no predict(views, phrases) method")
        if not isinstance(defaults, ModelThresholds):
            raise SearchModelError(
                f"search model thresholds must be ModelThresholds, got {type(defaults).__name__}"
            )
        try:  # built with model_construct (or mutated), a model's thresholds skip validation
            ModelThresholds.model_validate(defaults.model_dump())
        except ValidationError as exc:
            raise SearchModelError(
                f"search model thresholds are invalid: {_problems(exc)}"
            ) from exc
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
            raise ValueError(f"search thresholds are inconsistent: {_problems(exc)}") from exc

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


class _SearchRun(CloserLooks, Descent, StopRule, Outcomes):
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
        # The deadline a model call is waited for until (model_calls.call_before).
        deadline = cfg.deadline_s
        self.deadline_at = None if deadline is None else time.monotonic() + deadline
        self.smallest_size = seal_smallest_size(
            self.width, self.height, cfg.min_leaf_size, cfg.leaf_size_scale
        )
        # vstar departs from seal: children overlap (cfg.split_overlap) so that a target
        # cut by a split line lies whole in some child; the reference tiles exactly,
        # leaving such a target split between two children and found in neither.
        self.overlap = 0.0 if self.is_seal else cfg.split_overlap
        declared = engine.max_batch_size
        if self.is_seal:
            self.batch_size = 1  # the reference scores one patch per visit
        elif cfg.batch_size is not None:
            self.batch_size = cfg.batch_size
        elif self.strategy in ("sliding-window", "vstar"):
            # The sliding window batches its tiles; vstar batches runs of native tiles,
            # near-tied patches of any kind and pending closer looks (see run()); a
            # patch the cue singles out still goes alone (each such view decides what
            # comes next) until the search has run long (full_batches_after). Never
            # more views per predict call than one forward pass of the model takes
            # (protocol.SearchModel's max_batch_size): a larger batch would be split into
            # several forwards, and the search's pass count would no longer be the model's.
            self.batch_size = DEFAULT_BATCH if declared is None else min(declared, DEFAULT_BATCH)
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
        model, views, phrases = self.model, list(views), list(phrases)
        if self.passes_scales:
            scales = [f.patch.width / f.view_width for f in frames]
            call = partial(model.predict, views, phrases, scales=scales)  # type: ignore[call-arg]
        else:
            call = partial(model.predict, views, phrases)
        try:
            # A model that never answers is abandoned at the deadline (model_calls.py).
            output = call_before(call, self.deadline_at)
        except ModelCallTimeoutError as exc:
            raise _StopSearchError(
                "deadline",
                f"stopped at the {self.cfg.deadline_s:g} s deadline: {exc} "
                f"({self.patches_scored} patches scored, the last {len(views)} unanswered)",
            ) from exc
        except Exception as exc:  # a model fault ends the search; Ctrl-C still propagates
            raise _StopSearchError("model_error", f"search model raised {describe(exc)}") from exc
        try:
            valid = validate_predictions(output, views, phrases, self.score_range)
        except SearchModelError as exc:
            raise _StopSearchError("model_error", str(exc)) from exc
        return [
            [fit_heatmap_to_view(p, view) for p in per_view]
            for view, per_view in zip(views, valid, strict=True)
        ]

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
            self.notes.append(f"context cue failed ({describe(exc)})")
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
                confident = (d for d in detections if d.score > self.th.confidence_high)
                instances = [
                    ScoredBox(box=d.box, score=d.score)
                    for d in heapq.nlargest(MAX_INSTANCES, confident, key=lambda d: d.score)
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


def _problems(exc: ValidationError) -> str:
    """A validation error in one line: each field and what is wrong with it."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'thresholds'}: {err['msg']}"
        for err in exc.errors()
    )


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
