"""The run's JSONL store: append at once, resume, never mix two protocols."""

from __future__ import annotations

import pytest

from seal_agent.evaluation import ItemRecord, Prediction, RunStore, RunStoreError

MANIFEST = {"bench": "vstar", "order": "official", "seeds": 1}


def _record(item_id: str, seed: int = 0) -> ItemRecord:
    return ItemRecord(
        system="SEAL (vstar)",
        seed=seed,
        item_id=item_id,
        category="attribute",
        shown_options=["a", "b"],
        correct_index=0,
        prediction=Prediction(choice=0),
        correct=True,
        elapsed_s=0.5,
    )


def test_records_are_on_disk_as_soon_as_appended_and_resume_reads_them(tmp_path):
    store = RunStore(tmp_path, MANIFEST, resume=False)
    store.append(_record("a"))
    store.append(_record("b"))
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 2
    resumed = RunStore(tmp_path, MANIFEST, resume=True)
    assert resumed.done(("SEAL (vstar)", 0, "a"))
    assert not resumed.done(("SEAL (vstar)", 1, "a"))
    assert {r.item_id for r in resumed.records()} == {"a", "b"}


def test_a_line_torn_by_a_kill_is_cut_off_on_resume(tmp_path):
    store = RunStore(tmp_path, MANIFEST, resume=False)
    store.append(_record("a"))
    path = tmp_path / "results.jsonl"
    whole = _record("b").model_dump_json()
    with path.open("a") as fh:
        fh.write(whole[: len(whole) // 2])  # killed mid-write
    resumed = RunStore(tmp_path, MANIFEST, resume=True)
    assert [r.item_id for r in resumed.records()] == ["a"]
    resumed.append(_record("b"))
    again = RunStore(tmp_path, MANIFEST, resume=True)
    assert {r.item_id for r in again.records()} == {"a", "b"}


def test_a_corrupt_line_in_the_middle_is_an_error(tmp_path):
    store = RunStore(tmp_path, MANIFEST, resume=False)
    store.append(_record("a"))
    with (tmp_path / "results.jsonl").open("a") as fh:
        fh.write("{garbage}\n")
    store.append(_record("b"))
    with pytest.raises(RunStoreError, match=":2: not a result line"):
        RunStore(tmp_path, MANIFEST, resume=True)


def test_existing_results_are_not_overwritten_without_resume(tmp_path):
    RunStore(tmp_path, MANIFEST, resume=False).append(_record("a"))
    with pytest.raises(RunStoreError, match="--resume"):
        RunStore(tmp_path, MANIFEST, resume=False)


def test_resuming_with_other_settings_is_refused(tmp_path):
    RunStore(tmp_path, MANIFEST, resume=False).append(_record("a"))
    with pytest.raises(RunStoreError, match="order"):
        RunStore(tmp_path, {**MANIFEST, "order": "shuffled"}, resume=True)


def test_an_item_a_model_fault_left_unanswered_is_retried_on_resume(tmp_path):
    store = RunStore(tmp_path, MANIFEST, resume=False)
    store.append(_record("a").model_copy(update={"error": "ChatModelError: CUDA out of memory"}))
    resumed = RunStore(tmp_path, MANIFEST, resume=True)
    assert not resumed.done(("SEAL (vstar)", 0, "a"))
    resumed.append(_record("a"))
    again = RunStore(tmp_path, MANIFEST, resume=True)
    assert again.done(("SEAL (vstar)", 0, "a"))
    assert [r.error for r in again.records()] == [None]  # the later line wins
