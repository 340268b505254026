"""The compiled SEAL graph: LangGraph's ``CompiledStateGraph``, whose async runs never block.

Turning an in-memory image into an ``ImageRef`` hashes it and writes it to the cache
directory, and even a path is checked on disk; LangGraph writes the input channel in the
event loop's thread. Under ``astream`` (and so ``ainvoke``, ``astream_events`` and the
LangGraph Server) the image is referenced in a worker thread first; the input channel
then only copies the reference.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.constants import START
from langgraph.graph.state import CompiledStateGraph

from seal_agent.graph.configuration import per_call_settings
from seal_agent.imaging.loading import is_image_ref


def _checked_context(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The run's ``context`` dict as ``SealConfig`` before LangGraph coerces it: LangGraph
    would build it with ``SealConfig(**context)``, where a thresholds profile path in a
    caller's dict is read and a bad value escapes as pydantic's ``ValidationError``."""
    context = kwargs.get("context")
    if isinstance(context, dict):
        kwargs["context"] = per_call_settings(context)
    return kwargs


class SealGraph(CompiledStateGraph[Any, Any, Any, Any]):
    """What ``build_graph`` returns; ``Pregel.copy``/``with_config`` keep the class."""

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        return super().stream(input, config, **_checked_context(kwargs))

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        kwargs = _checked_context(kwargs)
        coerce = getattr(self.channels.get(START), "coerce", None)
        if coerce is not None and isinstance(input, dict) and not is_image_ref(input.get("image")):
            input = await asyncio.to_thread(coerce, input)
        async for chunk in super().astream(input, config, **kwargs):
            yield chunk

    @classmethod
    def from_compiled(cls, graph: CompiledStateGraph[Any, Any, Any, Any]) -> SealGraph:
        """The same compiled graph as a ``SealGraph`` (``Pregel.copy``'s own recipe)."""
        return cls(**{k: v for k, v in graph.__dict__.items() if k != "__orig_class__"})


__all__ = ["SealGraph"]
