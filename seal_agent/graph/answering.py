"""The ``answer`` node: the final VQA call over the visual working memory (the global
image, the found targets' crops and their locations), or option scoring by likelihood."""

from __future__ import annotations

from itertools import islice
from typing import TYPE_CHECKING, Any

from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from seal_agent.errors import ChatModelError, SealError, describe
from seal_agent.graph import prompts, vwm
from seal_agent.graph.configuration import SealConfig
from seal_agent.graph.lazy_models import model_name, resolve
from seal_agent.graph.model_calls import call_with_timeout
from seal_agent.graph.node_base import NodeBase, _emitter, image_block
from seal_agent.graph.parsing import parse_option_choice
from seal_agent.graph.state import Event, SealState
from seal_agent.imaging.geometry import Box, crop_box_around
from seal_agent.imaging.loading import encode_image
from seal_agent.imaging.pyramid import ImagePyramid

if TYPE_CHECKING:  # seal_agent.models is imported on first use, not with the graph
    from seal_agent.models.vision_tokens import VisionProfile


class AnswerNodes(NodeBase):
    """The ``answer`` node and the VWM prompt it sends."""

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
            # one value past the options' count is enough to tell a wrong count (a model
            # may hand back an endless iterator)
            losses = [float(v) for v in islice(scores, len(options) + 1)]
        except SealError:
            raise
        except Exception as exc:
            raise ChatModelError(
                f"the VQA chat model {model_name(model)} failed while scoring the options: "
                f"{describe(exc)}"
            ) from exc
        if len(losses) != len(options) or any(v != v for v in losses):
            got = f"more than {len(options)}" if len(losses) > len(options) else len(losses)
            raise ChatModelError(
                f"the VQA chat model {model_name(model)} returned {got} option scores "
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


__all__ = ["AnswerNodes"]
