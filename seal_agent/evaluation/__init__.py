"""V*Bench-format evaluation: dataset loading, multiple-choice scoring, runners."""

from seal_agent.evaluation.dataset import (
    SUBSETS,
    DatasetError,
    VStarItem,
    load_vstar_dataset,
)
from seal_agent.evaluation.runner import (
    Answerer,
    EvaluationReport,
    ItemResult,
    Prediction,
    direct_answerer,
    evaluate,
    format_table,
    graph_answerer,
    likelihood_answerer,
    random_answerer,
)
from seal_agent.evaluation.scoring import (
    CategoryScore,
    OptionScorer,
    chance_accuracy,
    present_options,
    summarise,
)

__all__ = [
    "SUBSETS",
    "Answerer",
    "CategoryScore",
    "DatasetError",
    "EvaluationReport",
    "ItemResult",
    "OptionScorer",
    "Prediction",
    "VStarItem",
    "chance_accuracy",
    "direct_answerer",
    "evaluate",
    "format_table",
    "graph_answerer",
    "likelihood_answerer",
    "load_vstar_dataset",
    "present_options",
    "random_answerer",
    "summarise",
]
