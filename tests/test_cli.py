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


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from seal_agent import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"seal-agent {__version__}"


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--max-targets", "0"], "--max-targets: must be at least 1, got 0"),
        (["--max-targets", "two"], "--max-targets: expected a whole number"),
        (["--max-calls", "-3"], "--max-calls: must be at least 1"),
        (["--deadline", "0"], "--deadline: must be above 0"),
        (["--strategy", "best"], "--strategy: invalid choice"),
        (["--option", "only one"], "--option: give 2 to 26 options, got 1"),
        (["--target", " "], "--target: must not be empty"),
        (["--progress", "loud"], "--progress: invalid choice"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--save-viz", "/no/such/folder/out.png"], "--save-viz: the folder"),
        # Refused before the run, not after it in a failed write.
        (["--save-viz", "/tmp"], "--save-viz: /tmp is a folder"),
        (["--save-viz", "/tmp/search.xyz"], "--save-viz: Pillow cannot write a '.xyz' file"),
        (["--save-viz", "/tmp/search"], "--save-viz: Pillow cannot write a 'suffix-less' file"),
        (["--vqa-model", "x"], "--shapeworld uses the reference models"),
    ],
)
def test_every_bad_flag_is_one_line(
    scene_path: tuple[Path, Scene], capsys: pytest.CaptureFixture[str], flags, needle
) -> None:
    path, scene = scene_path
    try:
        code = main(["ask", str(path), scene.question, "--shapeworld", *flags])
    except SystemExit as exit_info:
        code = exit_info.code
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err
    assert "Traceback" not in err


def test_a_url_without_allow_urls_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "https://example.com/photo.jpg", "What is it?", "--shapeworld"]) == 2
    err = capsys.readouterr().err
    assert "--allow-urls" in err
    assert "SealConfig" not in err


def test_options_print_the_chosen_option_text(
    scene_path: tuple[Path, Scene], capsys: pytest.CaptureFixture[str]
) -> None:
    path, scene = scene_path
    target = scene.targets[0]
    others = [c for c in ("red", "green", "blue", "white") if c != target.colour][:2]
    options = [*others, target.colour]
    argv = ["ask", str(path), scene.question, "--shapeworld", "--quiet"]
    for option in options:
        argv += ["--option", option]
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"C. {target.colour}"
    assert main([*argv, "--json"]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["choice"] == 2
    assert state["chosen_option"] == f"C. {target.colour}"


def test_save_viz_draws_the_search(
    scene_path: tuple[Path, Scene], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    path, scene = scene_path
    out = tmp_path / "search.png"
    code = main(
        ["ask", str(path), scene.question, "--shapeworld", "--quiet", "--save-viz", str(out)]
    )
    assert code == 0
    picture = Image.open(out)
    assert picture.format == "PNG"
    assert picture.width == 1600
    assert str(out) in capsys.readouterr().out


def test_rich_progress_shows_listing_and_search(
    scene_path: tuple[Path, Scene], capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("rich")
    path, scene = scene_path
    assert main(["ask", str(path), scene.question, "--shapeworld", "--progress", "rich"]) == 0
    err = capsys.readouterr().err
    assert f"targets: {scene.targets[0].shape}" in err
    assert f"'{scene.targets[0].shape}': found at [" in err


def test_missing_weights_fail_fast_offline(
    tmp_path: Path, scene_path: tuple[Path, Scene], monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = scene_path
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["ask", str(path), "What is it?"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "not in the local cache and HF_HUB_OFFLINE is set" in err
    assert "--shapeworld" in err
    # Without HF_HUB_OFFLINE, an unreachable hub is found out by one short connect.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert main(["ask", str(path), "What is it?", "--search-model", "grounding-dino"]) == 2
    err = capsys.readouterr().err
    assert "http://127.0.0.1:9 cannot be reached" in err
    assert "IDEA-Research/grounding-dino-tiny" in err


def test_names_with_rich_markup_do_not_break_the_live_display() -> None:
    # A target named "[/bold]" (the user's, or the model's listing) raised rich's
    # MarkupError out of `seal-agent ask` on a terminal.
    from seal_agent.cli.progress import make_progress

    progress = make_progress("rich")
    try:
        for event in (
            {"event": "targets_given", "targets": ["[/bold]", "[link=x]y"]},
            {"event": "search_started", "target": "[/bold]"},
            {"event": "search_step", "target": "[/bold]", "step": 0, "level": 1, "score": 0.5},
            {"event": "target_not_found", "target": "[/bold]", "stop_reason": "[/]"},
        ):
            progress.event(event)
    finally:
        progress.close()


def test_escape_sequences_in_names_and_answers_are_printed_escaped(
    scene_path: tuple[Path, Scene], capsys: pytest.CaptureFixture[str]
) -> None:
    # Names and answers come from the model (and through it from text in the image): an
    # escape sequence among them would retitle or recolour the user's terminal.
    path, scene = scene_path
    hostile = "\x1b]0;pwned\x07\x1b[31mred"
    argv = ["ask", str(path), scene.question, "--shapeworld", "--progress", "plain"]
    assert main([*argv, "--target", hostile]) == 0
    captured = capsys.readouterr()
    for stream in (captured.out, captured.err):
        assert "\x1b" not in stream
        assert "\x07" not in stream
    # The graph drops control characters from target names (graph/parsing.py), so the
    # name arrives inert; the printer's escaping covers what comes from elsewhere.
    assert "]0;pwned[31mred: not found" in captured.out
