"""Pictures of a search: ``render_search(state)`` / ``save_search(state, "out.png")``."""

from seal_agent.viz.render import FOUND_OUTLINE, PALETTE, render_search, save_search

__all__ = ["FOUND_OUTLINE", "PALETTE", "render_search", "save_search"]
