"""`seal-agent eval` through the real-model path: transformers checkpoints from local
directories (tiny random-weight LLaVA and OWLv2 built from configs), likelihood scoring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from models_fixtures import llava_dir, owlv2_dir  # noqa: F401  (fixtures)

from seal_agent.cli import main
from seal_agent.shapeworld.hrbench import write_hrbench


@pytest.mark.slow
def test_eval_runs_local_checkpoints_with_likelihood_scoring(
    tmp_path: Path,
    llava_dir: Path,  # noqa: F811
    owlv2_dir: Path,  # noqa: F811
):
    tsv = tmp_path / "hr.tsv"
    write_hrbench(tsv, n=1, seed=0, cycles=1, sizes=[(800, 600)], subsets=["direct_attributes"])
    out = tmp_path / "out"
    argv = ["eval", "--bench", "hrbench", "--data", str(tsv), "--vqa", str(llava_dir)]
    argv += ["--search", str(owlv2_dir), "--device", "cpu", "--scoring", "likelihood"]
    argv += [
        "--max-targets",
        "1",
        "--max-calls",
        "3",
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    assert main([*argv, "--no-progress"]) == 0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 3
    by_system: dict[str, list[dict]] = {}
    for record in records:
        by_system.setdefault(record["system"], []).append(record)
    for record in by_system["global image only"]:  # the option with the lowest loss
        assert record["error"] is None
        assert 0 <= record["prediction"]["choice"] < len(record["shown_options"])
    for record in by_system["SEAL (vstar)"]:  # random weights: any answer, but no crash
        assert record["error"] is None, record["error"]
        assert record["prediction"]["choice"] in (None, *range(len(record["shown_options"])))
    run = json.loads((out / "run.json").read_text())
    assert run["models"]["scoring"] == "likelihood"
    for record in by_system["SEAL (vstar)"]:
        assert all(t["patches_scored"] <= 3 for t in record["prediction"]["targets"])
