"""Search metrics beside accuracy, mean and standard deviation over seeds, the report."""

from __future__ import annotations

import pytest

from seal_agent.errors import ChatModelError
from seal_agent.evaluation import EvalItem, ItemRecord, Prediction, TargetRecord
from seal_agent.evaluation.metrics import search_columns, summarise_rows
from seal_agent.evaluation.reporting import markdown_table, write_report
from seal_agent.evaluation.run import answer_item


def _record(seed: int, item: str, correct: bool, targets: list[TargetRecord]) -> ItemRecord:
    return ItemRecord(
        system="SEAL (vstar)",
        seed=seed,
        item_id=item,
        category="attribute" if item < "m" else "spatial",
        shown_options=["a", "b"],
        correct_index=0,
        prediction=Prediction(
            choice=0 if correct else 1,
            patches_scored=sum(t.patches_scored for t in targets),
            forward_passes=sum(t.forward_passes for t in targets),
            targets_searched=len(targets),
            targets_localised=sum(1 for t in targets if t.iou is not None and t.iou > 0.5),
            targets_annotated=sum(1 for t in targets if t.iou is not None),
            targets=targets,
        ),
        correct=correct,
        elapsed_s=1.0,
    )


def _t(found: bool, iou: float | None, patches: int) -> TargetRecord:
    return TargetRecord(name="x", found=found, iou=iou, patches_scored=patches, forward_passes=1)


def test_search_length_counts_successful_searches_only():
    records = [
        _record(0, "a", True, [_t(True, 0.9, 4), _t(True, 0.1, 30)]),  # found the wrong thing
        _record(0, "b", True, [_t(False, 0.0, 64)]),
        _record(0, "z", False, [_t(True, None, 6)]),  # no box to check against
    ]
    columns = search_columns(records)
    assert columns["search_length"] == pytest.approx((4 + 6) / 2)
    assert columns["targets_found"] == pytest.approx(75.0)
    assert columns["targets_localised"] == pytest.approx(100 / 3)
    assert columns["patches_per_question"] == pytest.approx(104 / 3)
    assert columns["passes_per_question"] == pytest.approx(4 / 3)
    assert columns["peak_gpu_mb"] is None


def test_seeds_give_mean_and_standard_deviation(tmp_path):
    records = [
        _record(0, "a", True, [_t(True, 0.9, 4)]),
        _record(0, "z", True, [_t(True, 0.9, 4)]),
        _record(1, "a", True, [_t(True, 0.9, 4)]),
        _record(1, "z", False, [_t(True, 0.9, 4)]),
    ]
    (row,) = summarise_rows(records, "vstar")
    assert row.accuracy["overall"].values == [100.0, 50.0]
    assert row.accuracy["overall"].mean == 75.0
    assert row.accuracy["overall"].std == pytest.approx(35.3553, abs=1e-3)
    assert list(row.accuracy) == ["attribute", "spatial", "overall"]
    table = markdown_table([row])
    assert "| SEAL (vstar) | 100.00 ± 0.00 | 50.00 ± 70.71 | 75.00 ± 35.36 |" in table
    files = write_report(tmp_path, [row], {"bench": "vstar"})
    assert files["figure"].read_bytes()[:4] == b"\x89PNG"


def test_a_model_fault_is_recorded_as_an_unanswered_item():
    item = EvalItem(
        id="i",
        bench="vstar",
        category="attribute",
        image_path="x.jpg",
        question="q?",
        options=("a", "b"),
        correct_index=1,
    )

    def broken(item, shown):
        raise ChatModelError("the chat model timed out")

    record = answer_item(broken, "SEAL (vstar)", 0, item, "official")
    assert record.error == "ChatModelError: the chat model timed out"
    assert record.prediction.choice is None
    assert not record.correct
