"""End-to-end runs in shape world: both layouts, the command line, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seal_agent.cli import main
from seal_agent.shapeworld import write_dataset
from seal_agent.shapeworld.hrbench import write_hrbench

REPO = Path(__file__).resolve().parents[1]
#: Timing columns differ from run to run; everything else must not.
TIMING = {"seconds_per_question", "peak_gpu_mb"}


def _comparable(summary_path: Path) -> list[dict]:
    rows = json.loads(summary_path.read_text())["rows"]
    for row in rows:
        row["search"] = {k: v for k, v in row["search"].items() if k not in TIMING}
        row["search_lengths"] = sorted(row["search_lengths"])
    return rows


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, Path]:
    """The same 2 x 6 shape-world questions in V*Bench's folders and HR-Bench's TSV."""
    root = tmp_path_factory.mktemp("layouts")
    sizes = [(2000, 1500)]
    write_dataset(root / "vstar", n=6, seed=3, sizes=sizes)
    write_hrbench(root / "hr_bench_4k.tsv", n=6, seed=3, cycles=2, sizes=sizes)
    return {"vstar": root / "vstar", "hrbench": root / "hr_bench_4k.tsv"}


@pytest.mark.slow
@pytest.mark.parametrize("bench", ["vstar", "hrbench"])
def test_seal_beats_the_global_image_by_40_points_in_both_layouts(layouts, bench, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["eval", "--bench", bench, "--data", str(layouts[bench])]
    argv += ["--vqa", "shapeworld", "--search", "shapeworld", "--order", "shuffled"]
    argv += ["--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| SEAL (vstar) |" in printed
    rows = {r["system"]: r for r in json.loads((out / "summary.json").read_text())["rows"]}
    seal = rows["SEAL (vstar)"]["accuracy"]["overall"]["mean"]
    direct = rows["global image only"]["accuracy"]["overall"]["mean"]
    assert seal - direct >= 40, (seal, direct)
    columns = ("FSP", "FCP") if bench == "hrbench" else ("attribute", "spatial")
    assert all(c in rows["SEAL (vstar)"]["accuracy"] for c in columns)
    search = rows["SEAL (vstar)"]["search"]
    assert search["patches_per_question"]["mean"] >= 1
    assert search["search_length"]["mean"] >= 1
    if bench == "vstar":  # the TSV layout carries no boxes
        assert search["targets_localised"]["mean"] > 80
    else:
        assert search["targets_localised"] is None
    n_items = 12 if bench == "vstar" else 24
    assert len((out / "results.jsonl").read_text().splitlines()) == 3 * n_items
    assert (out / "figure.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "table.md").read_text().startswith(("V*Bench", "HR-Bench"))


def _small_dataset(root: Path) -> Path:
    write_dataset(root, n=3, seed=1, sizes=[(1200, 900)])
    return root


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_table(tmp_path):
    data = _small_dataset(tmp_path / "data")
    common = ["--bench", "vstar", "--data", str(data), "--vqa", "shapeworld"]
    common += ["--search", "shapeworld", "--order", "shuffled", "--no-progress"]
    common += ["--cache-dir", str(tmp_path / "cache")]

    # The reference: one uninterrupted serial run.
    assert main(["eval", *common, "--out", str(tmp_path / "whole")]) == 0
    total = len((tmp_path / "whole" / "results.jsonl").read_text().splitlines())

    # The same run in another process, killed (SIGKILL, no clean-up) after two items.
    out = tmp_path / "killed"
    results = out / "results.jsonl"
    code = "import sys; from seal_agent.cli import main; raise SystemExit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-c", code, "eval", *common, "--out", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if results.is_file() and len(results.read_bytes().splitlines()) >= 2:
                break
            time.sleep(0.02)
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    before = results.read_bytes().splitlines()
    assert 2 <= len(before) < total
    finished = [json.loads(line) for line in before]

    # Resumed with two workers: only the missing items run; the table is the same.
    assert main(["eval", *common, "--out", str(out), "--resume", "--workers", "2"]) == 0
    after = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(after) == total
    assert after[: len(finished)] == finished  # finished items were not run again
    assert len({(r["system"], r["seed"], r["item_id"]) for r in after}) == total
    assert _comparable(out / "summary.json") == _comparable(tmp_path / "whole" / "summary.json")
    table = (out / "table.md").read_text()
    assert "| SEAL (vstar) |" in table
