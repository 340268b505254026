"""`seal-agent ask` from the command line, with the offline shape-world models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seal_agent.cli import main
from seal_agent.imaging import Box
from seal_agent.shapeworld import Scene, generate_scene


@pytest.fixture(scope="module")
def scene_path(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Scene]:
    scene = generate_scene(
        4, width=2400, height=1800, kind="direct_attributes", target_size=(20, 24)
    )
    path = tmp_path_factory.mktemp("cli") / "scene.png"
    scene.image.save(path)
    return path, scene


def test_ask_finds_the_target_and_prints_the_state_as_json(
    scene_path: tuple[Path, Scene], capsys: pytest.CaptureFixture[str]
) -> None:
    path, scene = scene_path
    target = scene.targets[0]
    code = main(["ask", str(path), scene.question, "--shapeworld", "--json", "--quiet"])
    assert code == 0
    state = json.loads(capsys.readouterr().out)
    outcome = state["searches"][target.shape]
    assert outcome["found"]
    assert Box(*outcome["box"]).iou(target.box) > 0.5
    assert target.colour in state["answer"].lower()


def test_ask_streams_progress_to_stderr(
    scene_path: tuple[Path, Scene], capsys: pytest.CaptureFixture[str]
) -> None:
    path, scene = scene_path
    assert main(["ask", str(path), scene.question, "--shapeworld"]) == 0
    captured = capsys.readouterr()
    assert "[search_step]" in captured.err
    assert "patches scored" in captured.out


def test_a_missing_image_is_a_clear_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["ask", str(tmp_path / "nope.jpg"), "What is it?", "--shapeworld"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("seal-agent: ")
    assert "nope.jpg" in err
