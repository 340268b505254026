"""V* visual search: model protocol, configuration, results and the search engine."""

from seal_agent.search.config import STRATEGIES, SearchConfig, Strategy
from seal_agent.search.engine import VStarSearch
from seal_agent.search.protocol import (
    Detection,
    ModelThresholds,
    PatchPrediction,
    SearchModel,
    validate_predictions,
)
from seal_agent.search.result import ScoredBox, SearchResult, StopReason, TraceStep

__all__ = [
    "STRATEGIES",
    "Detection",
    "ModelThresholds",
    "PatchPrediction",
    "ScoredBox",
    "SearchConfig",
    "SearchModel",
    "SearchResult",
    "StopReason",
    "Strategy",
    "TraceStep",
    "VStarSearch",
    "validate_predictions",
]
