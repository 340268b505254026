"""The ``search`` node: V* search for one target (one branch of the fan-out), with its
contextual cue from the listing or from the VQA model, over the graph's shared view cache."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime
from PIL import Image

from seal_agent.errors import SealError, SearchModelError, describe
from seal_agent.graph import prompts
from seal_agent.graph.configuration import SealConfig, SettingsError
from seal_agent.graph.lazy_models import resolve
from seal_agent.graph.node_base import NodeBase, _emitter, image_block
from seal_agent.graph.parsing import parse_context_cue
from seal_agent.graph.records import _box_list, _round, outcome_from_result
from seal_agent.graph.state import Event, SearchTask
from seal_agent.imaging.loading import ImageRef, encode_image
from seal_agent.imaging.pyramid import ImagePyramid
from seal_agent.search import SearchModel, SearchResult, TraceStep, VStarSearch
from seal_agent.search.view_cache import ViewCachingSearchModel


class SearchNodes(NodeBase):
    """The ``search`` node, its contextual cues and the search model it shares."""

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
                f"the search model could not be set up: {describe(exc)}"
            ) from exc

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
        except ValueError as exc:  # the call's threshold overrides do not fit the model's
            if isinstance(exc, SealError):
                raise
            raise SettingsError(f"the search settings do not fit the search model: {exc}") from exc
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
            raise SearchModelError(f"the search model could not be built: {describe(exc)}") from exc

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


__all__ = ["SearchNodes"]
