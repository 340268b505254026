"""Evaluation on V*Bench and HR-Bench: datasets, protocol, systems, metrics, runs, reports.

``evaluate_run(EvalSpec(...))`` is what ``seal-agent eval`` calls: items from either
benchmark's published layout, options in the official or a seeded shuffled order, the
SEAL graph beside its baselines, every finished item appended to a JSONL file (resumable),
threads or Ray actors, and a Markdown table, JSON summary and PNG figure. ``evaluate``
is the plain in-memory loop over V*Bench items the benchmarks use.
"""

from seal_agent.evaluation.dataset import (
    EXPLORATORY_SUBSETS,
    SUBSETS,
    DatasetError,
    VStarItem,
    load_vstar_dataset,
    vstar_items,
)
from seal_agent.evaluation.hrbench import load_hrbench
from seal_agent.evaluation.items import EvalItem
from seal_agent.evaluation.metrics import RowSummary, Stat, summarise_rows
from seal_agent.evaluation.protocol import ORDERS, Order, sample_items, shown_options
from seal_agent.evaluation.records import ItemRecord, Prediction, TargetRecord
from seal_agent.evaluation.reporting import markdown_table, write_report
from seal_agent.evaluation.run import EvalResult, EvalSpec, evaluate_run, load_items
from seal_agent.evaluation.runner import (
    EvaluationReport,
    ItemResult,
    evaluate,
    format_table,
)
from seal_agent.evaluation.scoring import (
    CategoryScore,
    OptionScorer,
    chance_accuracy,
    present_options,
    summarise,
)
from seal_agent.evaluation.store import RunStore, RunStoreError
from seal_agent.evaluation.systems import (
    Answerer,
    ModelSpec,
    SystemSpec,
    build_answerers,
    default_systems,
    direct_answerer,
    graph_answerer,
    likelihood_answerer,
    random_answerer,
)

__all__ = [
    "EXPLORATORY_SUBSETS",
    "ORDERS",
    "SUBSETS",
    "Answerer",
    "CategoryScore",
    "DatasetError",
    "EvalItem",
    "EvalResult",
    "EvalSpec",
    "EvaluationReport",
    "ItemRecord",
    "ItemResult",
    "ModelSpec",
    "OptionScorer",
    "Order",
    "Prediction",
    "RowSummary",
    "RunStore",
    "RunStoreError",
    "Stat",
    "SystemSpec",
    "TargetRecord",
    "VStarItem",
    "build_answerers",
    "chance_accuracy",
    "default_systems",
    "direct_answerer",
    "evaluate",
    "evaluate_run",
    "format_table",
    "graph_answerer",
    "likelihood_answerer",
    "load_hrbench",
    "load_items",
    "load_vstar_dataset",
    "markdown_table",
    "present_options",
    "random_answerer",
    "sample_items",
    "shown_options",
    "summarise",
    "summarise_rows",
    "vstar_items",
    "write_report",
]
