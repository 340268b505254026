"""Checkpoints hold no pixels, and an interrupted run resumes without repeating searches."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from test_graph_fakes import ColourSearchModel, ScriptedChatModel, make_scene, seal_script

from seal_agent.errors import SearchModelError
from seal_agent.graph import SealConfig, build_graph
from seal_agent.imaging.loading import image_cache

PNG_SIGNATURE = b"\x89PNG"


@pytest.fixture(params=["memory", "sqlite"])
def saver_factory(request, tmp_path: Path) -> Iterator:
    """Builds a saver; for sqlite, each call opens a new connection to the same file,
    as a new process would."""
    connections: list[sqlite3.Connection] = []

    def make():
        if request.param == "memory":
            if not hasattr(make, "saver"):
                make.saver = InMemorySaver()
            return make.saver
        conn = sqlite3.connect(tmp_path / "checkpoints.sqlite", check_same_thread=False)
        connections.append(conn)
        return SqliteSaver(conn)

    yield make
    for conn in connections:
        conn.close()


def _serialised_checkpoints(saver, thread: dict) -> list[bytes]:
    blobs = []
    for item in saver.list(thread):
        for value in item.checkpoint["channel_values"].values():
            blobs.append(saver.serde.dumps_typed(value)[1])
        for write in item.pending_writes or []:
            blobs.append(saver.serde.dumps_typed(write[2])[1])
    return blobs


@pytest.mark.parametrize("source", ["pil", "bytes"])
def test_no_checkpoint_holds_pixels(saver_factory, tmp_path: Path, source):
    import io

    image = make_scene()
    if source == "bytes":
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        image = buffer.getvalue()
    saver = saver_factory()
    chat = ScriptedChatModel(script=seal_script())
    graph = build_graph(
        chat, ColourSearchModel(), SealConfig(cache_dir=tmp_path), checkpointer=saver
    )
    thread = {"configurable": {"thread_id": f"no-pixels-{source}"}}
    out = graph.invoke({"image": image, "question": "q?"}, thread)
    assert out["searches"]["red square"]["found"]
    blobs = _serialised_checkpoints(saver, thread)
    assert blobs, "the run wrote no checkpoints"
    assert not any(PNG_SIGNATURE in b for b in blobs)
    assert max(len(b) for b in blobs) < 100_000  # the 2000x1500 image is 9 MB decoded


def test_an_interrupted_run_resumes_without_repeating_the_finished_search(
    saver_factory, tmp_path: Path
):
    """The second target's search fails; on resume only it is run again."""
    scene = tmp_path / "scene.png"
    make_scene().save(scene)
    broken = {"blue square": True}
    search = ColourSearchModel(fail_on=lambda phrase: broken.get(phrase, False))
    chat = ScriptedChatModel(script=seal_script())
    config = SealConfig(cache_dir=tmp_path / "cache")
    thread = {"configurable": {"thread_id": "resume"}, "max_concurrency": 1}
    graph = build_graph(chat, search, config, checkpointer=saver_factory())
    with pytest.raises(SearchModelError, match="blue square"):
        graph.invoke({"image": str(scene), "question": "q?"}, thread)
    red_calls = search.calls["red square"]
    assert red_calls >= 1  # the first target's search finished
    assert graph.get_state(thread).next == ("search",)

    # A new graph over a new connection, with an empty image cache: a new process.
    broken["blue square"] = False
    image_cache().clear()
    prompts_before = len(chat.prompts)
    resumed = build_graph(chat, search, config, checkpointer=saver_factory())
    out = resumed.invoke(None, thread)
    assert search.calls["red square"] == red_calls  # not searched again
    assert out["searches"]["red square"]["found"]
    assert out["searches"]["blue square"]["found"]
    assert not any("missing or unclear" in p for p in chat.prompts[prompts_before:])
    assert out["answer"]


def test_interrupt_before_the_answer_and_resume(saver_factory, tmp_path: Path):
    scene = tmp_path / "scene.png"
    make_scene().save(scene)
    search = ColourSearchModel()
    chat = ScriptedChatModel(script=seal_script())
    graph = build_graph(
        chat,
        search,
        SealConfig(cache_dir=tmp_path / "cache"),
        checkpointer=saver_factory(),
        interrupt_before=["answer"],
    )
    thread = {"configurable": {"thread_id": "pause"}}
    paused = graph.invoke({"image": str(scene), "question": "q?", "options": ["a", "b"]}, thread)
    assert "answer" not in paused
    assert set(graph.get_state(thread).values["searches"]) == {"red square", "blue square"}
    calls = dict(search.calls)
    out = graph.invoke(None, thread)
    assert dict(search.calls) == calls
    assert out["choice"] == 0
