"""search_length.py's GPU-time model: passes priced from measured OWLv2 forward latencies."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import search_length  # noqa: E402


def _latencies(path: Path, batches: dict[int, float]) -> Path:
    rows = [{"batch": b, "latency_ms": ms} for b, ms in batches.items()]
    path.write_text(json.dumps({"search_model": {"batches": rows}}))
    return path


def test_a_pass_costs_the_forwards_owl_splits_it_into(tmp_path, monkeypatch):
    table = {1: 10.0, 2: 15.0, 3: 21.0, 4: 28.0, 8: 50.0, 16: 97.0}
    monkeypatch.setattr(search_length, "OWL_PASS_LATENCY", _latencies(tmp_path / "t.json", table))
    cost = search_length.owl_pass_cost()
    assert cost is not None
    # OwlSearchModel runs at most 4 views a forward: 8 views are two forwards of 4, not
    # the measured single forward of 8.
    assert cost(4) == 28.0
    assert cost(8) == 56.0
    assert cost(6) == 28.0 + 15.0
    assert cost(1) == 10.0


@pytest.mark.parametrize("content", [None, "{}", "not json", '{"search_model": {"batches": []}}'])
def test_no_pass_cost_without_a_usable_measurement(tmp_path, monkeypatch, content):
    path = tmp_path / "latency.json"
    if content is not None:
        path.write_text(content)
    monkeypatch.setattr(search_length, "OWL_PASS_LATENCY", path)
    assert search_length.owl_pass_cost() is None


def test_the_committed_measurement_prices_every_pass_size():
    cost = search_length.owl_pass_cost()
    assert cost is not None
    assert all(cost(n) > 0 for n in range(1, 17))
    assert cost(2) > cost(1)  # a fuller pass is not free
