"""What every part of the graph's nodes shares: the standard image content block they
build, the stream emitter they write events to, and ``NodeBase``: the fields of one
graph's nodes (set by ``nodes.SealNodes.__init__``, declared here so each part's mixin is
typed against them) and the helpers every node uses (settings, image, chat call)."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime

from seal_agent.errors import ChatModelError, SealError, describe
from seal_agent.graph import vwm
from seal_agent.graph.configuration import SealConfig, resolve_config
from seal_agent.graph.generation import token_limit_kwargs
from seal_agent.graph.lazy_models import Lazy, model_name, resolve
from seal_agent.graph.model_calls import call_with_timeout, cap_reply
from seal_agent.graph.state import Event
from seal_agent.imaging.loading import ImageRef, encoded_global_view, load_image
from seal_agent.imaging.policy import ImagePolicy
from seal_agent.imaging.pyramid import ImagePyramid
from seal_agent.search import SearchModel

if TYPE_CHECKING:  # seal_agent.models is imported on first use, not with the graph
    from seal_agent.models.vision_tokens import VisionProfile


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


class NodeBase:
    """The fields of one graph's nodes and the helpers the node parts share."""

    vqa_model: BaseChatModel | Lazy[BaseChatModel]
    search_model: SearchModel | Lazy[SearchModel]
    config: SealConfig
    image_policy: ImagePolicy
    view_cache_bytes: int
    view_model: Lazy[SearchModel]

    if TYPE_CHECKING:  # defined by a part (listing.py), called by another (searching.py)

        @staticmethod
        def _lists_cues(settings: SealConfig) -> bool: ...

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
                f"the VQA chat model {model_name(model)} failed while {doing}: {describe(exc)}"
            ) from exc
        if not isinstance(reply, BaseMessage):
            raise ChatModelError(
                f"the VQA chat model {model_name(model)} returned a {type(reply).__name__} "
                f"instead of a message while {doing}"
            )
        return cap_reply(reply.text, self.config.max_reply_chars)


__all__ = ["NodeBase", "image_block"]
