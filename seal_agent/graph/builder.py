"""Assemble the SEAL graph.

::

    START -> prepare -> list_targets -> search x N (Send) -> answer -> END
                  \\              \\___________ no targets ___/^
                   \\__ explicit targets: straight to the searches (or the answer)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.channels.ephemeral_value import EphemeralValue
from langgraph.constants import END, START
from langgraph.graph import StateGraph
from langgraph.types import Checkpointer

from seal_agent.graph.compiled import SealGraph
from seal_agent.graph.configuration import SealConfig
from seal_agent.graph.default_models import ModelSet, default_models
from seal_agent.graph.lazy_models import Lazy
from seal_agent.graph.nodes import SealNodes
from seal_agent.graph.state import SealInput, SealOutput, SealState
from seal_agent.imaging.content_blocks import unwrap_image_input
from seal_agent.imaging.loading import to_image_ref
from seal_agent.search import SearchModel
from seal_agent.search.view_cache import DEFAULT_VIEW_CACHE_BYTES
from seal_agent.text_arguments import check_text_arguments


class _ImageReferencingInput(EphemeralValue):
    """The graph's input channel, which turns the caller's image into an ``ImageRef``.

    LangGraph stores the raw input in the run's first checkpoint (the ``__start__``
    channel) before any node or reducer runs, so converting in a node or a reducer would
    still checkpoint the pixels. Converting here, as the input is written, keeps every
    checkpoint pixel-free; in-memory images are spilled to the cache directory once.
    """

    __slots__ = ("coerce", "settings")

    def __init__(
        self,
        typ: Any,
        guard: bool = True,
        coerce: Callable[[Any], Any] | None = None,
        settings: SealConfig | None = None,
    ) -> None:
        super().__init__(typ, guard)
        self.coerce = coerce
        # The build-time settings ride on the channel, so every copy of the graph
        # (with_config, the server's copies) still knows its deployment policy.
        self.settings = settings

    def copy(self) -> _ImageReferencingInput:
        empty = super().copy()
        empty.coerce, empty.settings = self.coerce, self.settings
        return empty

    def from_checkpoint(self, checkpoint: Any) -> _ImageReferencingInput:
        empty = super().from_checkpoint(checkpoint)
        empty.coerce, empty.settings = self.coerce, self.settings
        return empty

    def update(self, values: Sequence[Any]) -> bool:
        if self.coerce is not None and values:
            values = [self.coerce(v) for v in values]
        return super().update(values)


def graph_settings(graph: object) -> SealConfig | None:
    """The build-time settings of a graph made by ``build_graph`` (None for others)."""
    channels = getattr(graph, "channels", None)
    start = channels.get(START) if isinstance(channels, dict) else None
    return start.settings if isinstance(start, _ImageReferencingInput) else None


def _listed(value: Any) -> list[Any] | tuple[Any, ...] | None:
    """A list or tuple as is; anything else is the prepare node's to refuse."""
    return value if isinstance(value, list | tuple) else None


def _input_coercer(config: SealConfig) -> Callable[[Any], Any]:
    policy = config.image_policy()

    def coerce(value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        # Before the first checkpoint: a lone surrogate or a NUL fails its serializer.
        check_text_arguments(
            value.get("question"), _listed(value.get("targets")), _listed(value.get("options"))
        )
        if "image" not in value:
            return value
        image = unwrap_image_input(value["image"])  # content blocks, data URLs: decoded
        ref = to_image_ref(image, policy=policy)  # type: ignore[arg-type]
        # A new question in a reused thread must not inherit the last run's targets or
        # options: absent keys are written as None.
        return {"targets": None, "options": None, **value, "image": ref}

    return coerce


def build_graph(
    vqa_model: BaseChatModel | Lazy[BaseChatModel],
    search_model: SearchModel | Lazy[SearchModel],
    config: SealConfig | None = None,
    *,
    checkpointer: Checkpointer = None,
    interrupt_before: list[str] | None = None,
    interrupt_after: list[str] | None = None,
    name: str = "seal",
    view_cache_bytes: int = DEFAULT_VIEW_CACHE_BYTES,
) -> SealGraph:
    """The SEAL graph over a VQA chat model and a search model.

    ``vqa_model``: any LangChain chat model that accepts standard image content blocks.
    ``search_model``: anything implementing ``SearchModel``. Per-call settings: pass
    ``context=SealConfig(...)`` (or a partial dict) to ``invoke``/``stream``.
    ``view_cache_bytes``: budget of the view encodings every search of this graph shares
    (``search/view_cache.py``; 0 turns the cache off).
    """
    if config is None:
        config = SealConfig()
    elif not isinstance(config, SealConfig):
        raise TypeError(f"config must be a SealConfig, got {type(config).__name__}")
    nodes = SealNodes(vqa_model, search_model, config, view_cache_bytes=view_cache_bytes)
    builder = StateGraph(
        SealState,
        context_schema=SealConfig,
        input_schema=SealInput,
        output_schema=SealOutput,
    )
    builder.add_node("prepare", nodes.prepare)  # type: ignore[call-overload]
    builder.add_node("list_targets", nodes.list_targets)  # type: ignore[call-overload]
    builder.add_node("search", nodes.search)  # type: ignore[call-overload]
    builder.add_node("answer", nodes.answer)  # type: ignore[call-overload]
    builder.add_edge(START, "prepare")
    builder.add_conditional_edges(
        "prepare", nodes.route_after_prepare, ["list_targets", "search", "answer"]
    )
    builder.add_conditional_edges("list_targets", nodes.route_to_search, ["search", "answer"])
    builder.add_edge("search", "answer")
    builder.add_edge("answer", END)
    graph = builder.compile(
        checkpointer=checkpointer,
        interrupt_before=interrupt_before,
        interrupt_after=interrupt_after,
        name=name,
    )
    start = graph.channels[START]
    assert isinstance(start, EphemeralValue)
    graph.channels[START] = _ImageReferencingInput(
        start.typ, start.guard, _input_coercer(config), settings=config
    )
    return SealGraph.from_compiled(graph)  # async runs reference the image off the loop


def build_default_graph(
    config: SealConfig | None = None, *, models: ModelSet | None = None
) -> SealGraph:
    """The graph over a default model set (``$SEAL_AGENT_MODELS``, see ``default_models``).

    The models are built on first use, not here: importing or building the graph never
    loads weights.
    """
    vqa, searcher = default_models(models)
    return build_graph(vqa, searcher, config)


__all__ = ["build_default_graph", "build_graph", "graph_settings"]
