"""The nodes before the search: ``prepare`` checks the input and decodes the image once;
``list_targets`` asks the VQA model to answer from the global image or to name what is
missing (with each target's contextual cue, on the default path)."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime
from langgraph.types import Overwrite
from pydantic import ValidationError

from seal_agent.errors import InvalidImageError, InvalidQuestionError, SealError
from seal_agent.graph import prompts
from seal_agent.graph.configuration import SealConfig
from seal_agent.graph.lazy_models import model_name, resolve
from seal_agent.graph.model_calls import call_with_timeout, cap_reply
from seal_agent.graph.node_base import NodeBase, _emitter
from seal_agent.graph.parsing import (
    MAX_TARGET_CHARS,
    CuedTargetListing,
    TargetListing,
    clean_phrase,
    normalise_targets,
    parse_cued_target_listing,
    parse_target_listing,
)
from seal_agent.graph.state import Event, SealState

#: Longest question accepted (it goes into every prompt of the run).
MAX_QUESTION_CHARS = 10_000


class ListingNodes(NodeBase):
    """The ``prepare`` and ``list_targets`` nodes and the listing calls they make."""

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
        if not isinstance(parsed, TargetListing | CuedTargetListing):
            return None
        try:  # a listing built without validation (model_construct) is checked here
            return type(parsed).model_validate(parsed.model_dump(warnings=False))
        except ValidationError:
            return None

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
                or not all(
                    isinstance(o, str) and o.strip() and len(o) <= MAX_QUESTION_CHARS
                    for o in options
                )
            ):
                raise InvalidQuestionError(
                    "options must be a list of 2 to 26 non-empty strings (shown as letters) "
                    f"of at most {MAX_QUESTION_CHARS} characters each"
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
            _check_given_targets(explicit)
            every = normalise_targets(explicit, len(explicit))
            targets = every[: settings.max_targets]
            update |= {"targets": targets, "target_source": "input"}
            events.append({"event": "targets_given", "targets": targets})
            if len(every) > len(targets):
                update["warnings"] = Overwrite(
                    [
                        f"{len(every)} distinct targets were given; searched for the first "
                        f"{len(targets)} (max_targets={settings.max_targets})"
                    ]
                )
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
            # a structured reply is not cut to max_reply_chars as the text path's is
            direct_answer = cap_reply(listing.answer.strip(), self.config.max_reply_chars)
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


def _check_given_targets(targets: list[Any] | tuple[Any, ...]) -> None:
    """A caller's target that cannot be searched for is an error naming it, not dropped."""
    for i, raw in enumerate(targets):
        phrase = clean_phrase(raw) if isinstance(raw, str) else ""
        if not phrase:
            raise InvalidQuestionError(
                f"target {i + 1} must be a non-empty object name, got {raw!r:.60}"
            )
        if len(phrase) > MAX_TARGET_CHARS:
            raise InvalidQuestionError(
                f"target {i + 1} is {len(phrase)} characters long, above the limit of "
                f"{MAX_TARGET_CHARS} for an object name"
            )


__all__ = ["MAX_QUESTION_CHARS", "ListingNodes"]
