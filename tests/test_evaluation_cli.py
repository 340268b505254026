"""`seal-agent eval`: flags, and bad settings as one clear line instead of a traceback."""

from __future__ import annotations

import pytest

from seal_agent.cli import build_parser, main
from seal_agent.shapeworld import write_dataset

BASE = ["eval", "--vqa", "shapeworld", "--search", "shapeworld", "--no-progress"]


def test_eval_is_a_subcommand_with_the_documented_flags():
    args = build_parser().parse_args(
        [
            *BASE,
            "--bench",
            "hrbench",
            "--data",
            "x.tsv",
            "--strategy",
            "seal",
            "--strategy",
            "bfs",
            "--scoring",
            "choice",
            "--order",
            "shuffled",
            "--seeds",
            "3",
            "--limit",
            "40",
            "--workers",
            "4",
            "--resume",
            "--out",
            "runs/x",
            "--ray",
        ]
    )
    assert args.strategies == ["seal", "bfs"]
    assert (args.seeds, args.limit, args.workers, args.resume) == (3, 40, 4, True)
    assert args.ray == "local"
    assert build_parser().parse_args([*BASE, "--bench", "vstar", "--data", "d"]).ray is None
    joined = [*BASE, "--bench", "vstar", "--data", "d", "--ray", "ray://head:10001"]
    assert build_parser().parse_args(joined).ray == "ray://head:10001"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--seeds", "0"], "seeds"),
        (["--limit", "0"], "limit"),
        (["--workers", "0"], "workers"),
    ],
)
def test_bad_settings_are_one_clear_line(tmp_path, capsys, extra, message):
    argv = [*BASE, "--bench", "vstar", "--data", str(tmp_path), "--out", str(tmp_path / "o")]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seal-agent: invalid eval settings")
    assert message in err


def test_a_missing_dataset_is_named(tmp_path, capsys):
    argv = [*BASE, "--bench", "hrbench", "--data", str(tmp_path / "hr.tsv")]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    assert "HR-Bench TSV not found" in capsys.readouterr().err


def test_likelihood_scoring_needs_a_model_that_scores_options(tmp_path, capsys):
    write_dataset(tmp_path / "d", n=1, seed=0, sizes=[(800, 600)])
    argv = [*BASE, "--bench", "vstar", "--data", str(tmp_path / "d"), "--scoring", "likelihood"]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    assert "scores options" in capsys.readouterr().err


def test_max_targets_above_the_limit_is_one_line_not_a_traceback(tmp_path, capsys):
    # It passed the eval settings and failed as a pydantic traceback when the graph was built.
    from seal_agent.evaluation import ModelSpec
    from seal_agent.graph.configuration import MAX_TARGETS_LIMIT

    argv = [*BASE, "--bench", "vstar", "--data", str(tmp_path), "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--max-targets", "100000"])
    assert exit_info.value.code == 2
    assert f"--max-targets: must be at most {MAX_TARGETS_LIMIT}" in capsys.readouterr().err
    with pytest.raises(ValueError, match="less than or equal to 16"):
        ModelSpec(vqa="shapeworld", search="shapeworld", max_targets=100000)
