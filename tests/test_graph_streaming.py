"""Progress events stream live from every node, sync and async; the default graph is lazy."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from test_graph_fakes import ColourSearchModel, ScriptedChatModel, make_scene, seal_script

from seal_agent.graph import SealConfig, build_graph


@pytest.fixture
def graph_and_scene(tmp_path: Path):
    path = tmp_path / "scene.png"
    make_scene().save(path)
    chat = ScriptedChatModel(script=seal_script())
    graph = build_graph(chat, ColourSearchModel(), SealConfig(cache_dir=tmp_path / "cache"))
    return graph, {"image": str(path), "question": "q?", "options": ["red", "blue"]}


def _check_events(events: list[dict]) -> None:
    kinds = [e["event"] for e in events]
    assert kinds[0] == "image_loaded"
    assert kinds[1] == "targets_listed"
    assert events[1]["targets"] == ["red square", "blue square"]
    steps = [e for e in events if e["event"] == "search_step"]
    assert {e["target"] for e in steps} == {"red square", "blue square"}
    for target in ("red square", "blue square"):
        own = [e for e in steps if e["target"] == target]
        assert own[0]["step"] == 0
        assert own[0]["priority"] is None
        assert all(len(e["patch"]) == 4 for e in own)
        assert [e["step"] for e in own] == list(range(len(own)))  # in visiting order
        assert all("priority" in e and "score" in e and "level" in e for e in own)
        found = kinds.index("target_found")
        assert found > kinds.index("search_step")
    assert kinds.count("target_found") == 2
    assert kinds[-1] == "answered"
    assert events[-1]["choice"] == 0


def test_custom_stream_shows_the_search_live(graph_and_scene):
    graph, question = graph_and_scene
    events = list(graph.stream(question, stream_mode="custom"))
    _check_events(events)


def test_async_stream_shows_the_same_events(graph_and_scene):
    graph, question = graph_and_scene

    async def collect() -> list[dict]:
        return [e async for e in graph.astream(question, stream_mode="custom")]

    events = asyncio.run(collect())
    _check_events(events)


def test_the_state_keeps_a_compact_trace_without_the_steps(graph_and_scene):
    graph, question = graph_and_scene
    out = graph.invoke(question)
    kinds = [e["event"] for e in out["events"]]
    assert "search_step" not in kinds
    assert kinds[:2] == ["image_loaded", "targets_listed"]
    assert kinds[-1] == "answered"
    assert kinds.count("target_found") == 2


def test_importing_the_default_graph_loads_no_model():
    code = (
        "import sys\n"
        "import seal_agent.graph as module\n"
        "from langgraph.graph.state import CompiledStateGraph\n"
        "from seal_agent.graph import graph\n"
        "assert isinstance(graph, CompiledStateGraph), type(graph)\n"
        "assert 'graph' in vars(module)  # a real attribute, as the LangGraph Server needs\n"
        "from seal_agent.graph import graph as again\n"
        "assert again is graph\n"
        "heavy = [m for m in ('torch', 'transformers', 'seal_agent.models') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
