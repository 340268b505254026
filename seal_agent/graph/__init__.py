"""SEAL as a LangGraph state machine.

``build_graph(vqa_model, search_model, config=SealConfig(...))`` returns a compiled graph;
``from seal_agent.graph import graph`` gives a ready default over the real models, built
lazily: the graph on first access of the name, its models on first use.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from seal_agent.graph.builder import build_default_graph, build_graph
from seal_agent.graph.configuration import SealConfig
from seal_agent.graph.state import SealInput, SealOutput, SealState, TargetOutcome

if TYPE_CHECKING:
    from langgraph.graph.state import CompiledStateGraph

    graph: CompiledStateGraph

_default_graph: Any = None
_default_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    # Module-level lazy attribute: there is deliberately no graph.py, so the name
    # ``seal_agent.graph.graph`` is this object and never shadows a submodule.
    if name == "graph":
        global _default_graph
        with _default_lock:
            if _default_graph is None:
                _default_graph = build_default_graph()
        return _default_graph
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SealConfig",
    "SealInput",
    "SealOutput",
    "SealState",
    "TargetOutcome",
    "build_default_graph",
    "build_graph",
    "graph",
]
