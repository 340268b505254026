"""Durable graph runs on a real PostgreSQL server through LangGraph's Postgres checkpointer.

A run whose second search fails is resumed by another process from the database: the
first target's finished search is not repeated.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph.checkpoint.postgres import PostgresSaver
from postgres_server import URL_ENV, find_bindir, postgres_server
from test_graph_fakes import ColourSearchModel, ScriptedChatModel, make_scene, seal_script

from seal_agent.errors import SearchModelError
from seal_agent.graph import SealConfig, build_graph

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    if os.environ.get(URL_ENV):
        yield os.environ[URL_ENV]
        return
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries not found: make test installs them")
        pytest.skip("PostgreSQL binaries not found (make test installs them)")
    with postgres_server(bindir) as url:
        yield url


RESUME = """
import json, sys
from langgraph.checkpoint.postgres import PostgresSaver
from test_graph_fakes import ColourSearchModel, ScriptedChatModel, seal_script
from seal_agent.graph import SealConfig, build_graph

url, cache, thread_id = sys.argv[1:4]
search = ColourSearchModel()
with PostgresSaver.from_conn_string(url) as saver:
    graph = build_graph(
        ScriptedChatModel(script=seal_script()), search, SealConfig(cache_dir=cache),
        checkpointer=saver,
    )
    out = graph.invoke(None, {"configurable": {"thread_id": thread_id}})
print(json.dumps({"calls": dict(search.calls), "answer": out.get("answer"),
                  "found": {k: v["found"] for k, v in out["searches"].items()}}))
"""


def test_a_run_interrupted_after_its_first_search_resumes_in_another_process(
    postgres_url: str, tmp_path: Path
):
    scene = tmp_path / "scene.png"
    make_scene().save(scene)
    cache = tmp_path / "cache"
    search = ColourSearchModel(fail_on=lambda phrase: phrase == "blue square")
    thread = {"configurable": {"thread_id": "postgres-resume"}, "max_concurrency": 1}
    with PostgresSaver.from_conn_string(postgres_url) as saver:
        saver.setup()
        graph = build_graph(
            ScriptedChatModel(script=seal_script()),
            search,
            SealConfig(cache_dir=cache),
            checkpointer=saver,
        )
        with pytest.raises(SearchModelError, match="blue square"):
            graph.invoke({"image": str(scene), "question": "q?"}, thread)
        assert search.calls["red square"] >= 1  # the first search finished
        assert graph.get_state(thread).next == ("search",)

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS)])}
    result = subprocess.run(
        [sys.executable, "-c", RESUME, postgres_url, str(cache), "postgres-resume"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    resumed = json.loads(result.stdout.strip().splitlines()[-1])
    assert resumed["calls"].get("red square", 0) == 0  # not searched again
    assert resumed["calls"]["blue square"] >= 1
    assert resumed["found"] == {"red square": True, "blue square": True}
    assert resumed["answer"]
