"""Items spread over a local Ray instance give exactly the serial results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seal_agent.evaluation import EvalSpec, ModelSpec, SystemSpec, evaluate_run
from seal_agent.shapeworld import write_dataset

pytest.importorskip("ray")


def _answers(out: Path) -> dict[tuple[str, int, str], tuple]:
    answers = {}
    for line in (out / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        prediction = r["prediction"]
        answers[(r["system"], r["seed"], r["item_id"])] = (
            tuple(r["shown_options"]),
            prediction["choice"],
            r["correct"],
            prediction["patches_scored"],
            json.dumps(prediction["targets"], sort_keys=True),
            r["error"],
        )
    return answers


@pytest.mark.slow
def test_a_local_ray_instance_gives_the_serial_results(tmp_path):
    data = tmp_path / "data"
    write_dataset(data, n=10, seed=7, sizes=[(800, 600), (600, 800)])  # 20 items
    base = EvalSpec(
        bench="vstar",
        data=data,
        models=ModelSpec(cache_dir=tmp_path / "cache"),
        systems=(SystemSpec(name="SEAL (vstar)", kind="seal"),),
        order="shuffled",
        out=tmp_path / "serial",
    )
    serial = evaluate_run(base, progress=False)
    on_ray = evaluate_run(
        base.model_copy(
            update={"out": tmp_path / "ray", "ray_address": "local", "ray_num_cpus": 2}
        ),
        progress=False,
    )
    assert on_ray.ran == serial.ran == 20
    assert _answers(tmp_path / "ray") == _answers(tmp_path / "serial")
    assert [r.accuracy for r in on_ray.rows] == [r.accuracy for r in serial.rows]
    assert (tmp_path / "ray" / "table.md").is_file()
