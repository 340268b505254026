"""The graph's nodes: prepare, list_targets, search (one branch per target), answer.

Nodes are plain synchronous functions: LangGraph runs them in worker threads, both for
parallel branches and under ``ainvoke``/``astream``, so a CPU/GPU-bound search never
blocks an event loop. Pixels never enter the state; every node gets the decoded image
from the process-level cache through the state's ``ImageRef``.

``SealNodes`` is one graph's nodes; its mixins hold them, one job each: ``ListingNodes``
(listing.py: prepare, list_targets), ``SearchNodes`` (searching.py: search) and
``AnswerNodes`` (answering.py: answer), all built on ``node_base.NodeBase`` (the fields
they share, and the helpers for settings, image and chat calls). This module sets the
fields up and holds the routers.
"""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel
from langgraph.types import Send

from seal_agent.graph.answering import AnswerNodes
from seal_agent.graph.configuration import SealConfig
from seal_agent.graph.lazy_models import Lazy, model_name, resolve
from seal_agent.graph.listing import ListingNodes
from seal_agent.graph.node_base import image_block
from seal_agent.graph.records import outcome_from_result
from seal_agent.graph.searching import SearchNodes
from seal_agent.graph.state import SealState, SearchTask
from seal_agent.search import SearchModel
from seal_agent.search.view_cache import DEFAULT_VIEW_CACHE_BYTES


class SealNodes(ListingNodes, SearchNodes, AnswerNodes):
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
