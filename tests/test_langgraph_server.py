"""LangGraph Server: ``langgraph dev`` serves ``langgraph.json``'s graph over HTTP.

The server runs as a subprocess on 127.0.0.1 with the offline shape-world models, in
its default mode that raises on any blocking call in the event loop (no
``--allow-blocking``); a question goes through ``langgraph_sdk``'s client with
streaming. Skipped only when the ``server`` extra is not installed.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from seal_agent.imaging.geometry import Box
from seal_agent.shapeworld import generate_scene

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 120
RUN_TIMEOUT_S = 180

pytest.importorskip("langgraph_cli", reason="the 'server' extra is not installed")
pytest.importorskip("langgraph_api", reason="the 'server' extra is not installed")
langgraph_sdk = pytest.importorskip("langgraph_sdk")


def test_langgraph_json_names_the_graph_module_attribute():
    config = json.loads((ROOT / "langgraph.json").read_text())
    module, _, attribute = config["graphs"]["seal"].partition(":")
    assert (module, attribute) == ("seal_agent.graph", "graph")
    import seal_agent.graph

    assert attribute in vars(seal_agent.graph)
    for schema in (
        seal_agent.graph.graph.get_input_jsonschema(),
        seal_agent.graph.graph.get_output_jsonschema(),
        seal_agent.graph.graph.get_context_jsonschema(),
    ):
        assert schema["type"] == "object"
        assert schema["properties"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("langgraph-dev")
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SEAL_AGENT_MODELS": "shapeworld",
        "SEAL_AGENT_CACHE_DIR": str(workdir / "cache"),  # fresh: the spill really writes
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGSMITH_TRACING": "false",
    }
    log = (workdir / "server.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "langgraph_cli", "dev",
            "--config", str(ROOT / "langgraph.json"),
            "--host", "127.0.0.1", "--port", str(port),
            "--no-browser", "--no-reload",
        ],
        cwd=workdir,  # the dev server keeps its in-memory state files here
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"langgraph dev exited: {(workdir / 'server.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/ok", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"langgraph dev did not start in {STARTUP_TIMEOUT_S} s")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()
        server_log = (workdir / "server.log").read_text()
        assert "BlockingError" not in server_log, server_log[-3000:]


@pytest.mark.slow
def test_a_question_streams_through_the_server(server: str):
    scene = generate_scene(
        4, width=2400, height=1800, kind="direct_attributes", target_size=(20, 24)
    )
    target = scene.targets[0]
    buffer = io.BytesIO()
    scene.image.save(buffer, format="PNG")
    data_url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()

    async def run() -> tuple[list, list]:
        client = langgraph_sdk.get_client(url=server)
        assistants = await client.assistants.search(graph_id="seal")
        schemas = await client.assistants.get_schemas(assistants[0]["assistant_id"])
        parts = []
        async for part in client.runs.stream(
            None,
            "seal",
            input={"image": data_url, "question": f"What is the color of the {target.shape}?"},
            context={"search": {"max_calls": 64}},
            stream_mode=["custom", "values"],
        ):
            parts.append(part)
        return schemas, parts

    schemas, parts = asyncio.run(asyncio.wait_for(run(), RUN_TIMEOUT_S))
    assert {"image", "question", "options", "targets"} <= set(schemas["input_schema"]["properties"])
    assert "answer" in schemas["output_schema"]["properties"]
    assert "search" in schemas["context_schema"]["properties"]
    errors = [p.data for p in parts if p.event == "error"]
    assert not errors, errors
    events = [p.data for p in parts if p.event == "custom"]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "image_loaded"
    assert kinds[-1] == "answered"
    assert "search_step" in kinds
    final = next(p.data for p in reversed(parts) if p.event == "values")
    assert final["answer"] == f"The {target.shape} is {target.colour}."
    outcome = final["searches"][target.shape]
    assert outcome["found"]
    assert Box(*outcome["box"]).iou(target.box) > 0.5
    assert final["image"]["origin"] == "memory"  # the data URL was spilled, not stored
