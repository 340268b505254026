"""The graph's nodes: prepare, list_targets, search (one branch per target), answer.

Nodes are plain synchronous functions: LangGraph runs them in worker threads, both for
parallel branches and under ``ainvoke``/``astream``, so a CPU/GPU-bound search never
blocks an event loop. Pixels never enter the state; every node gets the decoded image
from the process-level cache through the state's ``ImageRef``.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import Overwrite, Send
from PIL import Image

from seal_agent.errors import (
    ChatModelError,
    InvalidImageError,
    InvalidQuestionError,
    SealError,
    SearchModelError,
)
from seal_agent.graph import prompts, vwm
from seal_agent.graph.configuration import SealConfig, resolve_config
from seal_agent.graph.generation import token_limit_kwargs
from seal_agent.graph.model_calls import call_with_timeout, cap_reply
from seal_agent.graph.parsing import (
    CuedTargetListing,
    TargetListing,
    normalise_targets,
    parse_context_cue,
    parse_cued_target_listing,
    parse_option_choice,
    parse_target_listing,
)
from seal_agent.graph.state import Event, SealState, SearchTask, StepRecord, TargetOutcome
from seal_agent.imaging.geometry import Box, crop_box_around
from seal_agent.imaging.loading import (
    ImageRef,
    encode_image,
    encoded_global_view,
    load_image,
)
from seal_agent.imaging.pyramid import ImagePyramid
from seal_agent.search import SearchModel, SearchResult, TraceStep, VStarSearch
from seal_agent.search.view_cache import DEFAULT_VIEW_CACHE_BYTES, ViewCachingSearchModel

if TYPE_CHECKING:  # seal_agent.models is imported on first use, not with the graph
    from seal_agent.models.vision_tokens import VisionProfile

T = TypeVar("T")

#: Longest question accepted (it goes into every prompt of the run).
MAX_QUESTION_CHARS = 10_000


class Lazy(Generic[T]):
    """A model built on first use (the default graph must not load weights at import)."""

    def __init__(self, factory: Callable[[], T], description: str) -> None:
        self._factory = factory
        self._value: T | None = None
        self._lock = threading.Lock()
        self.description = description

    def get(self) -> T:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._factory()
        return self._value

    def __repr__(self) -> str:
        return f"Lazy({self.description})"


def resolve(model: T | Lazy[T]) -> T:
    return model.get() if isinstance(model, Lazy) else model


def model_name(model: object) -> str:
    """A readable name for error messages: the provider's model id where there is one."""
    for attr in ("model_name", "model", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return f"{type(model).__name__}({value})"
    return type(model).__name__


def image_block(base64_data: str, image_format: str) -> dict[str, Any]:
    """A LangChain standard (v1) image content block, accepted by every provider package."""
    return {"type": "image", "base64": base64_data, "mime_type": f"image/{image_format}"}


def _emitter() -> Callable[[Event], None]:
    """The node's stream writer, callable from any thread the search may use."""
    writer = get_stream_writer()
    context = contextvars.copy_context()
    owner = threading.get_ident()

    def emit(event: Event) -> None:
        if threading.get_ident() == owner:
            writer(event)
        else:  # LangGraph's writer reads the run's config from context variables
            context.copy().run(writer, event)

    return emit


def _round(value: float | None, ndigits: int = 4) -> float | None:
    return None if value is None else round(float(value), ndigits)


def _box_list(box: Sequence[float] | None) -> list[float] | None:
    return None if box is None else [round(float(v), 2) for v in box]


def step_record(step: TraceStep) -> StepRecord:
    record = StepRecord(
        index=step.index,
        parent=step.parent,
        patch=_box_list(step.patch) or [],
        level=step.level,
        priority=_round(step.priority, 6),
        best_score=_round(step.best_score),
        cue=step.cue,
        kind=step.kind,
    )
    if step.heatmap is not None:  # kept only when SearchConfig.trace_heatmaps asks
        record["heatmap"] = step.heatmap
    return record


def outcome_from_result(result: SearchResult) -> TargetOutcome:
    return TargetOutcome(
        target=result.target,
        found=result.found,
        box=_box_list(result.box),
        confidence=_round(result.confidence),
        instances=[
            {"box": _box_list(inst.box), "score": _round(inst.score)} for inst in result.instances
        ],
        stop_reason=result.stop_reason,
        message=result.message,
        patches_scored=result.patches_scored,
        forward_passes=result.forward_passes,
        elapsed_s=round(result.elapsed_s, 4),
        context_phrase=next((s.context_phrase for s in result.trace if s.context_phrase), None),
        trace=[step_record(s) for s in result.trace],
        fallback=result.fallback,
        confirmations=result.confirmations,
        dismissed=result.dismissed,
    )


class SealNodes:
    """The nodes of one graph, bound to its models and build-time settings."""

    def __init__(
        self,
        vqa_model: BaseChatModel | Lazy[BaseChatModel],
        search_model: SearchModel | Lazy[SearchModel],
        config: SealConfig,
        view_cache_bytes: int = DEFAULT_VIEW_CACHE_BYTES,
    ) -> None:
        self.vqa_model = vqa_model
        self.search_model = search_model
        self.config = config
        #: The deployment's image rules, fixed at build time (a call cannot change them).
        self.image_policy = config.image_policy()
        self.view_cache_bytes = view_cache_bytes
        self.view_model: Lazy[SearchModel] = Lazy(self._shared_views, "the graph's view cache")

    def _shared_views(self) -> SearchModel:
        """The search model behind one view cache shared by every search of this graph
        (targets of a question, and follow-up questions about the same image)."""
        model = self._search_model()
        if not self.view_cache_bytes or isinstance(model, ViewCachingSearchModel):
            return model
        try:  # the wrapper inspects the model, which may fail to load right here
            return ViewCachingSearchModel(model, max_bytes=self.view_cache_bytes)
        except SealError:
            raise
        except Exception as exc:
            raise SearchModelError(
                f"the search model could not be set up: {type(exc).__name__}: {exc}"
            ) from exc

    # -- helpers -------------------------------------------------------------------------
    def settings(self, runtime: Runtime[SealConfig] | None, config: RunnableConfig) -> SealConfig:
        context = runtime.context if runtime is not None else None
        return resolve_config(self.config, context, (config or {}).get("configurable"))

    def _image(self, ref: ImageRef, settings: SealConfig) -> tuple[ImageRef, ImagePyramid]:
        return load_image(ref, self.image_policy)

    def vision_profile(self) -> VisionProfile:
        """How the VQA model sees images: frame, token cost (``models.vision_tokens``)."""
        from seal_agent.models.vision_tokens import profile_for

        return profile_for(resolve(self.vqa_model))

    def _global_block(
        self,
        ref: ImageRef,
        pyramid: ImagePyramid,
        settings: SealConfig,
        side: int | None = None,
    ) -> dict:
        """The global image in the VQA model's frame (square-padded for LLaVA-style ones)."""
        full = min(settings.vqa_image_max_side, max(pyramid.width, pyramid.height))
        side = min(side or full, full)
        profile = self.vision_profile()
        if profile.frame == "native" and side == full:  # the view shared with other nodes
            data = encoded_global_view(ref, pyramid, side, settings.image_format)
        else:
            data = vwm.encoded_frame_view(ref, pyramid, side, settings.image_format, profile)
        return image_block(data, settings.image_format)

    def _question_message(
        self,
        ref: ImageRef,
        pyramid: ImagePyramid,
        settings: SealConfig,
        question: str,
        side: int | None = None,
    ) -> HumanMessage:
        """The prompt prefix the listing and the answer share: the global image, then the
        question (prompts.py: what follows it differs per call)."""
        return HumanMessage(
            content=[
                self._global_block(ref, pyramid, settings, side),
                {"type": "text", "text": question},
            ]
        )

    def _chat(self, messages: list[BaseMessage], doing: str, max_tokens: int | None = None) -> str:
        """The chat model's reply text; any failure becomes a ``ChatModelError``."""
        model = resolve(self.vqa_model)
        try:
            reply = call_with_timeout(
                lambda: model.invoke(messages, **token_limit_kwargs(model, max_tokens)),
                self.config.chat_timeout_s,
                doing=doing,
                model=model_name(model),
            )
        except SealError:
            raise
        except Exception as exc:
            raise ChatModelError(
                f"the VQA chat model {model_name(model)} failed while {doing}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(reply, BaseMessage):
            raise ChatModelError(
                f"the VQA chat model {model_name(model)} returned a {type(reply).__name__} "
                f"instead of a message while {doing}"
            )
        return cap_reply(reply.text, self.config.max_reply_chars)

    def _structured_listing(
        self,
        messages: list[BaseMessage],
        schema: type[TargetListing] | type[CuedTargetListing] = TargetListing,
        instruction_text: str = prompts.STRUCTURED_LISTING_INSTRUCTION,
    ) -> Any:
        """The listing via ``with_structured_output``; None where unsupported or unreadable."""
        model = resolve(self.vqa_model)
        try:
            structured = model.with_structured_output(schema, include_raw=True)
        except (NotImplementedError, AttributeError, TypeError, ValueError):
            return None
        instruction = SystemMessage(instruction_text)
        try:
            out = call_with_timeout(
                lambda: structured.invoke([*messages, instruction]),
                self.config.chat_timeout_s,
                doing="listing the objects to search for",
                model=model_name(model),
            )
        except SealError:
            raise
        except Exception:  # a provider refusing tools with images: the text path decides
            return None
        parsed = out.get("parsed") if isinstance(out, dict) else out
        return parsed if isinstance(parsed, TargetListing | CuedTargetListing) else None

    # -- nodes ---------------------------------------------------------------------------
    def prepare(
        self, state: SealState, config: RunnableConfig, runtime: Runtime[SealConfig]
    ) -> dict[str, Any]:
        """Validate the question and options, decode the image once, start a fresh VWM."""
        settings = self.settings(runtime, config)
        question = state.get("question")
        if not isinstance(question, str) or not question.strip():
            raise InvalidQuestionError(
                f"the question must be a non-empty string, got {question!r:.60}"
            )
        if len(question) > MAX_QUESTION_CHARS:
            raise InvalidQuestionError(
                f"the question is {len(question)} characters long, above the limit of "
                f"{MAX_QUESTION_CHARS}"
            )
        options = state.get("options")
        if options is not None:
            if (
                not isinstance(options, list | tuple)
                or not 2 <= len(options) <= 26
                or not all(isinstance(o, str) and o.strip() for o in options)
            ):
                raise InvalidQuestionError(
                    "options must be a list of 2 to 26 non-empty strings (shown as letters)"
                )
            options = [o.strip() for o in options]
        image = state.get("image")
        if image is None:
            raise InvalidImageError("the input has no 'image'")
        ref, _ = self._image(image, settings)
        update: dict[str, Any] = {
            "image": ref,
            "question": question.strip(),
            "options": options,
            "direct_answer": None,
            "target_cues": None,
            "searches": Overwrite({}),
            "warnings": Overwrite([]),
        }
        emit = _emitter()
        events: list[Event] = [
            {"event": "image_loaded", "width": ref.get("width"), "height": ref.get("height")}
        ]
        explicit = state.get("targets")
        if explicit is not None:
            if not isinstance(explicit, list | tuple):
                raise InvalidQuestionError("targets must be a list of object names")
            targets = normalise_targets(explicit, settings.max_targets)
            update |= {"targets": targets, "target_source": "input"}
            events.append({"event": "targets_given", "targets": targets})
        else:
            update |= {"targets": None, "target_source": "none"}
        for event in events:
            emit(event)
        update["events"] = Overwrite(events)
        return update

    def list_targets(
        self, state: SealState, config: RunnableConfig, runtime: Runtime[SealConfig]
    ) -> dict[str, Any]:
        """Ask the VQA model to answer from the global image, or to name what is missing."""
        settings = self.settings(runtime, config)
        ref, pyramid = self._image(state["image"], settings)
        cued = self._lists_cues(settings)
        system = prompts.CUED_LISTING_SYSTEM_PROMPT if cued else prompts.LISTING_SYSTEM_PROMPT
        # The question first, the listing instructions after it: the answer call starts
        # with the same message, so a model can reuse that prefix's KV cache.
        messages: list[BaseMessage] = [
            self._question_message(ref, pyramid, settings, state["question"]),
            SystemMessage(system.format(max_targets=settings.max_targets)),
        ]
        cues: dict[str, str | None] | None = None
        if cued:
            listing, reply, cues = self._cued_listing(messages, settings)
        else:
            listing = self._structured_listing(messages) if settings.structured_listing else None
            reply = None
            if listing is None:
                reply = self._chat(
                    messages, "listing the objects to search for", settings.max_new_tokens.listing
                )
                listing = parse_target_listing(reply)
        warnings: list[str] = []
        targets: list[str] = []
        direct_answer = None
        if listing is None:
            warnings.append(
                f"could not read a target list from the VQA model's reply {reply!r:.120}; "
                "answering from the global image without a search"
            )
        elif listing.missing_objects:
            targets = normalise_targets(listing.missing_objects, settings.max_targets)
            if not targets:
                warnings.append(
                    f"the VQA model named no usable objects ({listing.missing_objects!r:.120}); "
                    "answering from the global image without a search"
                )
        elif listing.answer and listing.answer.strip():
            direct_answer = listing.answer.strip()
        else:
            warnings.append("the VQA model gave neither an answer nor a target list")
        event: Event = {"event": "targets_listed", "targets": targets}
        target_cues = None
        if cues is not None:
            target_cues = {t: cues.get(t.lower()) for t in targets}
            event["cues"] = target_cues
        if direct_answer is not None:
            event["direct_answer"] = direct_answer
        if warnings:
            event["warning"] = warnings[0]
        _emitter()(event)
        return {
            "targets": targets,
            "target_source": "listing",
            "target_cues": target_cues,
            "direct_answer": direct_answer,
            "warnings": warnings,
            "events": [event],
        }

    # -- the cued listing (issue 12: one call lists targets and their cues) ---------------
    @staticmethod
    def _lists_cues(settings: SealConfig) -> bool:
        """The default path lists cues with the targets; ``seal`` keeps the reference's
        calls (a plain listing, then one cue question per target)."""
        return (
            settings.context_cue
            and settings.cue_source == "listing"
            and settings.search.strategy != "seal"
        )

    def _cued_listing(
        self, messages: list[BaseMessage], settings: SealConfig
    ) -> tuple[TargetListing | None, str | None, dict[str, str | None] | None]:
        """(listing, the text reply if one was read, cue per lower-cased target)."""
        if settings.structured_listing:
            parsed = self._structured_listing(
                messages, CuedTargetListing, prompts.STRUCTURED_CUED_LISTING_INSTRUCTION
            )
            if isinstance(parsed, CuedTargetListing):
                return parsed.to_listing(), None, parsed.cues()
            if isinstance(parsed, TargetListing):
                return parsed, None, {}
        reply = self._chat(
            messages, "listing the objects to search for", settings.max_new_tokens.listing
        )
        cued = parse_cued_target_listing(reply)
        if cued is None:
            return None, reply, None
        return cued.to_listing(), reply, cued.cues()

    def _listed_cue(
        self, task: SearchTask, emit: Callable[[Event], None]
    ) -> Callable[[str], str | None]:
        """The search's contextual cue from the listing: no extra chat call."""
        phrase = task.get("listed_cue")

        def listed(target: str) -> str | None:
            emit({"event": "context_cue", "target": target, "phrase": phrase, "source": "listing"})
            return phrase

        return listed

    def search(
        self, task: SearchTask, config: RunnableConfig, runtime: Runtime[SealConfig]
    ) -> dict[str, Any]:
        """V* search for one target (one branch of the fan-out)."""
        settings = self.settings(runtime, config)
        target = task["target"]
        ref, pyramid = self._image(task["image"], settings)
        emit = _emitter()
        emit({"event": "search_started", "target": target})

        def on_step(step: TraceStep) -> None:
            emit(
                {
                    "event": "search_step",
                    "target": target,
                    "step": step.index,
                    "patch": _box_list(step.patch),
                    "level": step.level,
                    "priority": _round(step.priority, 6),
                    "score": _round(step.best_score),
                    "cue": step.cue,
                    "kind": step.kind,
                }
            )

        cue = None
        if settings.context_cue:
            if "listed_cue" in task and self._lists_cues(settings):
                cue = self._listed_cue(task, emit)
            else:
                cue = self._context_cue(ref, pyramid, settings, emit)
        try:
            engine = VStarSearch(self.view_model.get(), settings.search)
        except SearchModelError as exc:  # a model that cannot be set up is a model fault
            result = SearchResult(
                target=target,
                strategy=settings.search.strategy,
                found=False,
                box=None,
                confidence=None,
                stop_reason="model_error",
                message=str(exc),
                patches_scored=0,
                forward_passes=0,
                elapsed_s=0.0,
            )
        else:
            result = engine.search(pyramid, target, context_cue=cue, on_step=on_step)
        if result.stop_reason == "model_error" and settings.raise_on_search_error:
            raise SearchModelError(f"the search for {target!r} failed: {result.message}")
        outcome = outcome_from_result(result)
        event: Event = {
            "event": "target_found" if outcome["found"] else "target_not_found",
            "target": target,
            "box": outcome["box"],
            "confidence": outcome["confidence"],
            "patches_scored": outcome["patches_scored"],
            "stop_reason": outcome["stop_reason"],
        }
        emit(event)
        return {"searches": {target: outcome}, "events": [event]}

    def _search_model(self) -> SearchModel:
        """The search model, built on first use; a factory failing is a model fault."""
        try:
            return resolve(self.search_model)
        except SealError:
            raise
        except Exception as exc:
            raise SearchModelError(
                f"the search model could not be built: {type(exc).__name__}: {exc}"
            ) from exc

    def _context_cue(
        self,
        ref: ImageRef,
        pyramid: ImagePyramid,
        settings: SealConfig,
        emit: Callable[[Event], None],
    ) -> Callable[..., str | None]:
        """The search's contextual cue: asks the VQA model where the target usually is.

        Shown the global image, or, when the search passes ``view`` (``seal`` asks at
        every weak-cue patch, as the reference does), that patch.
        """

        def ask(target: str, view: Image.Image | None = None) -> str | None:
            question = prompts.CONTEXT_CUE_QUESTION.format(target=target)
            if view is None:
                shown = self._global_block(ref, pyramid, settings)
            else:
                side = settings.vqa_image_max_side
                if max(view.width, view.height) > side:
                    view = view.copy()
                    view.thumbnail((side, side), Image.Resampling.BICUBIC)
                shown = image_block(
                    encode_image(view, settings.image_format), settings.image_format
                )
            message = HumanMessage(content=[shown, {"type": "text", "text": question}])
            reply = self._chat(
                [message],
                f"asking where the {target} usually is",
                settings.max_new_tokens.context_cue,
            )
            phrase = parse_context_cue(reply, target)
            emit({"event": "context_cue", "target": target, "phrase": phrase, "reply": reply})
            return phrase

        return ask

    def answer(
        self, state: SealState, config: RunnableConfig, runtime: Runtime[SealConfig]
    ) -> dict[str, Any]:
        """Answer from the VWM: global image, found targets' crops and locations."""
        settings = self.settings(runtime, config)
        options = state.get("options")
        targets = state.get("targets") or []
        direct = state.get("direct_answer")
        warnings: list[str] = []
        choice: int | None = None
        plan: vwm.VwmPlan | None = None
        if direct and not options and not targets:
            reply = direct
        elif options and self._scores_options(settings):
            messages, plan, warnings = self._vwm_messages(state, settings, targets, None)
            choice = self._pick_by_likelihood(messages, options)
            reply = options[choice]
        else:
            messages, plan, warnings = self._vwm_messages(state, settings, targets, options)
            reply = self._chat(
                messages,
                "answering the question",
                settings.max_new_tokens.answer,
            ).strip()
            if not reply:
                raise ChatModelError(
                    f"the VQA chat model {model_name(resolve(self.vqa_model))} returned an "
                    "empty answer"
                )
            choice = parse_option_choice(reply, options) if options else None
            if options and choice is None:
                warnings.append(f"could not read an option letter from the answer {reply!r:.120}")
        event: Event = {"event": "answered", "answer": reply, "choice": choice}
        if plan is not None:
            event["visual_tokens"] = plan.total_tokens
            event["visual_token_budget"] = plan.budget
        _emitter()(event)
        return {"answer": reply, "choice": choice, "warnings": warnings, "events": [event]}

    def _scores_options(self, settings: SealConfig) -> bool:
        if settings.option_scoring == "generate":
            return False
        can = callable(getattr(resolve(self.vqa_model), "score_options", None))
        if settings.option_scoring == "likelihood" and not can:
            raise ChatModelError(
                f"option_scoring='likelihood' needs a chat model with score_options(messages, "
                f"options); {model_name(resolve(self.vqa_model))} has none"
            )
        return can

    def _pick_by_likelihood(self, messages: list[BaseMessage], options: list[str]) -> int:
        model = resolve(self.vqa_model)
        try:
            scores = call_with_timeout(
                lambda: model.score_options(messages, options),  # type: ignore[attr-defined]
                self.config.chat_timeout_s,
                doing="scoring the options",
                model=model_name(model),
            )
            losses = [float(v) for v in scores]
        except SealError:
            raise
        except Exception as exc:
            raise ChatModelError(
                f"the VQA chat model {model_name(model)} failed while scoring the options: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if len(losses) != len(options) or any(v != v for v in losses):
            raise ChatModelError(
                f"the VQA chat model {model_name(model)} returned {len(losses)} option scores "
                f"for {len(options)} options (or NaN)"
            )
        return min(range(len(options)), key=lambda i: losses[i])

    def _vwm_messages(
        self,
        state: SealState,
        settings: SealConfig,
        targets: list[str],
        options: list[str] | None,
    ) -> tuple[list[BaseMessage], vwm.VwmPlan, list[str]]:
        """The final prompt (the listing's prefix: global image and question; then the
        VWM's crops and lines, the question again and the options), the token plan of its
        images, and warnings (crops left out by the budget)."""
        ref, pyramid = self._image(state["image"], settings)
        searches = state.get("searches") or {}
        located: list[tuple[str, Box]] = []
        absent: list[str] = []
        unlocated: list[tuple[str, str]] = []
        for target in targets:
            outcome = searches.get(target)
            if outcome is None:
                unlocated.append((target, "it was not searched"))
            elif outcome["found"] and outcome["box"] is not None:
                boxes = [i["box"] for i in outcome["instances"]] or [outcome["box"]]
                located.extend((target, Box(*b)) for b in boxes[:3])
            elif (
                settings.answer_with_best_box
                and outcome["box"] is not None
                and outcome["stop_reason"] != "model_error"
            ):  # the reference benchmark shows its best guess even for a failed search
                located.append((target, Box(*outcome["box"])))
            elif outcome["stop_reason"] in ("budget", "deadline", "model_error"):
                unlocated.append((target, outcome["message"]))
            else:
                absent.append(target)
        profile = self.vision_profile()
        regions = [self._crop_region(pyramid, box, settings) for _, box in located]
        budget = settings.vwm_token_budget or profile.default_budget
        plan = vwm.plan_vwm(
            profile,
            pyramid.width,
            pyramid.height,
            regions,
            budget,
            settings.vqa_image_max_side,
            settings.crop_sizing,
        )
        # Crops over a fixed-cost encoder's budget are not shown; their objects keep their
        # location line, after those whose crops follow the global image in order.
        order = sorted(range(len(located)), key=lambda i: not plan.crops[i].shown)
        located = [located[i] for i in order]
        shown = [plan.crops[i] for i in order if plan.crops[i].shown]
        warnings = [
            f"the visual-token budget ({budget}) leaves no crop for {located[k][0]!r}; "
            "only its location is given"
            for k in range(len(shown), len(located))
        ]
        prefix = self._question_message(
            ref, pyramid, settings, state["question"], max(plan.global_size)
        )
        content: list[str | dict[Any, Any]] = []
        if shown:
            content.append({"type": "text", "text": prompts.CROPS_CAPTION})
        for crop in shown:
            content.append(
                image_block(self._crop(pyramid, crop, profile, settings), settings.image_format)
            )
        text = prompts.answer_text(
            state["question"],
            located=located,
            absent=absent,
            unlocated=unlocated,
            width=pyramid.width,
            height=pyramid.height,
            options=options,
            frame=profile.frame,
        )
        content.append({"type": "text", "text": text})
        return [prefix, HumanMessage(content=content)], plan, warnings

    @staticmethod
    def _crop_region(pyramid: ImagePyramid, box: Box, settings: SealConfig) -> Box:
        """The VWM crop's region: ``crop_scale`` x the box, clipped to the image."""
        region = crop_box_around(box, pyramid.width, pyramid.height, settings.crop_scale)
        if region.is_empty:
            region = Box(*box).round_out().clip(pyramid.width, pyramid.height)
        return region

    @staticmethod
    def _crop(
        pyramid: ImagePyramid, crop: vwm.CropPlan, profile: VisionProfile, settings: SealConfig
    ) -> str:
        """The VWM crop at its planned size (``graph.vwm``), in the model's frame, encoded."""
        assert crop.size is not None
        image = vwm.for_frame(vwm.crop_image(pyramid, crop.region, crop.size), profile)
        return encode_image(image, settings.image_format)

    # -- routing -------------------------------------------------------------------------
    @staticmethod
    def route_after_prepare(state: SealState) -> str | list[Send]:
        if state.get("target_source") == "input":
            return SealNodes.route_to_search(state)
        return "list_targets"

    @staticmethod
    def route_to_search(state: SealState) -> str | list[Send]:
        targets = state.get("targets") or []
        if not targets:
            return "answer"
        image = state["image"]
        cues = state.get("target_cues")
        if cues is not None:  # listed with the targets: each branch gets its own
            return [
                Send("search", SearchTask(target=t, image=image, listed_cue=cues.get(t)))
                for t in targets
            ]
        return [Send("search", SearchTask(target=t, image=image)) for t in targets]


__all__ = ["Lazy", "SealNodes", "image_block", "model_name", "outcome_from_result", "resolve"]
