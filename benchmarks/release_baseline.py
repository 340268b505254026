"""Release 0.1.0 as a configuration of today's code: the cost benchmarks' "before".

Issue 12 measures its savings against the release (0.1.0, commit ``RELEASE_COMMIT``).
Since then the engine gained rules that change which patches a search scores (issue 7),
and the graph gained ways to share work (issue 12). Each is a switch, so the release's
behaviour is today's code with these switched off:

* ``SearchConfig.confirm=False``: a confident box seen at less than native detail ends the
  search at once (0.1.0), instead of waiting for a native window to confirm it;
* ``SearchConfig.signal_descent=False``: every coarse view splits 2x2 (0.1.0), instead of
  going straight to batched native tiles under a flat heatmap or to a native window on a
  telling peak;
* ``SearchConfig.weak_cue_tiles=0``: a patch below a weak cue splits 2x2 (0.1.0),
  instead of into the few native tiles that cover it;
* ``SearchConfig.batch_size=1``: vstar scores one patch per forward pass (0.1.0), instead
  of batching native tiles and near-tied patches;
* ``SearchConfig.context_first=False``: the context cue is asked only when a patch's
  target cue is first too weak (0.1.0), and that patch pays a context-only pass, instead
  of scoring both phrases from the root on;
* ``SealConfig.cue_source="question"``: one contextual-cue question per target (0.1.0),
  instead of cues listed with the targets;
* ``view_cache_bytes=0`` and no VQA vision-feature cache: every view and every image is
  encoded each time it is shown (0.1.0).

Later rules that have no switch change only what a search returns in cases these
scenes do not reach (budget stops returning a fallback, a zoom window superseding
candidates at equal detail), not which patches it scores. ``tests/test_benchmarks_cost.py``
proves the equivalence: this configuration scores the same patches, in the same order,
with the same results as the release's own code on fixed scenes (captured from a
checkout of ``RELEASE_COMMIT``). A rule added later without a switch, or a switch whose
default changes, fails that test.
"""

from __future__ import annotations

from typing import Any

from seal_agent.graph import SealConfig
from seal_agent.search import SearchConfig

RELEASE = "0.1.0"
RELEASE_COMMIT = "5fbd7ef0a5456e368dece21fdeae1b1431e5b036"

#: The SearchConfig switches that turn today's engine back into the release's.
RELEASE_SEARCH_FIELDS: dict[str, Any] = {
    "confirm": False,
    "signal_descent": False,
    "weak_cue_tiles": 0,
    "batch_size": 1,
    "context_first": False,
}
#: The release shared nothing between searches or questions.
RELEASE_VIEW_CACHE_BYTES = 0


def release_search_config(**fields: Any) -> SearchConfig:
    """Today's SearchConfig behaving as the release's engine (``fields`` on top)."""
    return SearchConfig(**{**RELEASE_SEARCH_FIELDS, **fields})


def release_seal_config(**fields: Any) -> SealConfig:
    """The graph's settings as released: per-target cue questions, the release's engine."""
    search = fields.pop("search", None) or release_search_config()
    return SealConfig(cue_source="question", search=search, **fields)


__all__ = [
    "RELEASE",
    "RELEASE_COMMIT",
    "RELEASE_SEARCH_FIELDS",
    "RELEASE_VIEW_CACHE_BYTES",
    "release_seal_config",
    "release_search_config",
]
