"""SEAL exposed as LangChain tools."""

from seal_agent.tools.visual_search import (
    DEFAULT_DESCRIPTION,
    VisualSearchInput,
    create_visual_search_tool,
)

__all__ = ["DEFAULT_DESCRIPTION", "VisualSearchInput", "create_visual_search_tool"]
