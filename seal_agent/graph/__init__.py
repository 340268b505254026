"""SEAL as a LangGraph state machine.

``build_graph(vqa_model, search_model, config=SealConfig(...))`` returns a compiled graph.
``seal_agent.graph:graph`` is a ready graph (what ``langgraph.json`` serves): a real module
attribute, cheap to import, whose models (``$SEAL_AGENT_MODELS``: ``transformers`` by
default, or the offline ``shapeworld`` pair) are built on first use.
"""

from __future__ import annotations

from seal_agent.graph.builder import build_default_graph, build_graph
from seal_agent.graph.compiled import SealGraph
from seal_agent.graph.configuration import SealConfig
from seal_agent.graph.state import SealInput, SealOutput, SealState, TargetOutcome

#: The default graph. Building it loads no model; the first run does.
graph: SealGraph = build_default_graph()

__all__ = [
    "SealConfig",
    "SealGraph",
    "SealInput",
    "SealOutput",
    "SealState",
    "TargetOutcome",
    "build_default_graph",
    "build_graph",
    "graph",
]
