"""``seal-agent mcp`` over stdio, driven by the official MCP SDK's own client.

The server is started as a subprocess with the offline shape-world models; the test
checks the answer text, the crops as image content, the boxes as structured content,
the progress notifications, and the image policy (paths only inside allowed roots).
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from seal_agent.imaging.geometry import Box
from seal_agent.shapeworld import Scene, generate_scene

mcp = pytest.importorskip("mcp", reason="the 'mcp' extra is not installed")
from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CALL_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Scene, Path]:
    scene = generate_scene(
        4, width=2400, height=1800, kind="direct_attributes", target_size=(20, 24)
    )
    folder = tmp_path_factory.mktemp("mcp-root")
    scene.image.save(folder / "scene.png")
    return scene, folder


def _server(root: Path, cache: Path) -> StdioServerParameters:
    code = (
        "import sys; from seal_agent.cli import main; "
        f"sys.exit(main(['mcp', '--shapeworld', '--allow-root', {str(root)!r}]))"
    )
    return StdioServerParameters(
        command=sys.executable,
        args=["-c", code],
        env={
            "PYTHONPATH": str(ROOT),
            "SEAL_AGENT_CACHE_DIR": str(cache),
            "PATH": os.environ.get("PATH", ""),
        },
        cwd=str(root),
    )


def _session(root: Path, cache: Path, calls: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        results: dict[str, Any] = {"progress": {}}
        async with Client(_server(root, cache), read_timeout_seconds=CALL_TIMEOUT_S) as client:
            results["tools"] = await client.list_tools()
            for name, args in calls:
                progress: list[tuple[float, float | None, str | None]] = []

                async def on_progress(
                    p: float, total: float | None, message: str | None, log=progress
                ):
                    log.append((p, total, message))

                results[name] = await client.call_tool(
                    "visual_search", args, progress_callback=on_progress
                )
                results["progress"][name] = progress
        return results

    return asyncio.run(asyncio.wait_for(run(), CALL_TIMEOUT_S * 2))


@pytest.mark.slow
def test_visual_search_over_stdio(scene: tuple[Scene, Path], tmp_path: Path):
    image_scene, root = scene
    target = image_scene.targets[0]
    buffer = io.BytesIO()
    image_scene.image.save(buffer, format="PNG")
    b64 = base64.b64encode(buffer.getvalue()).decode("ascii")
    question = f"What is the color of the {target.shape}?"
    outside = tmp_path / "outside.png"
    image_scene.image.save(outside)
    results = _session(
        root,
        tmp_path / "cache",
        [
            ("base64", {"image": b64, "question": question}),
            (
                "path",
                {
                    "image": str(root / "scene.png"),
                    "question": question,
                    "targets": [target.shape],
                    "options": ["green", target.colour],
                },
            ),
            ("outside", {"image": str(outside), "question": question}),
            ("url", {"image": "https://example.com/a.png", "question": question}),
        ],
    )
    (tool,) = results["tools"].tools
    assert tool.name == "visual_search"
    assert {"image", "question", "targets", "options"} <= set(tool.input_schema["properties"])

    first = results["base64"]
    assert not first.is_error, first.content
    assert first.content[0].type == "text"
    assert first.content[0].text.splitlines()[0] == f"The {target.shape} is {target.colour}."
    crops = [c for c in first.content if c.type == "image"]
    assert len(crops) == 1
    assert crops[0].mime_type == "image/png"
    assert base64.b64decode(crops[0].data)[:8] == b"\x89PNG\r\n\x1a\n"
    structured = first.structured_content
    assert structured["answer"] == f"The {target.shape} is {target.colour}."
    (found,) = structured["targets"]
    assert found["target"] == target.shape
    assert found["found"]
    assert Box(*found["box"]).iou(target.box) > 0.5
    progress = results["progress"]["base64"]
    assert [p for p, _, _ in progress] == sorted(p for p, _, _ in progress)
    messages = [m or "" for _, _, m in progress]
    assert sum(m.startswith("search_step") for m in messages) == found["patches_scored"]
    assert messages[-1].startswith("answered")

    by_path = results["path"]
    assert not by_path.is_error, by_path.content
    assert by_path.structured_content["choice"] == 1
    assert f"Chosen option: {target.colour}" in by_path.content[0].text

    assert results["outside"].is_error
    assert "the image path was refused" in results["outside"].content[0].text
    assert results["url"].is_error
    assert "--allow-urls" in results["url"].content[0].text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_streamable_http_serves_on_localhost(tmp_path: Path):
    port = _free_port()
    code = (
        "import sys; from seal_agent.cli import main; "
        f"sys.exit(main(['mcp', '--shapeworld', '--transport', 'http', '--port', '{port}']))"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(ROOT), "SEAL_AGENT_CACHE_DIR": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (
                process.stderr.read().decode()[-2000:] if process.stderr else ""
            )
            try:
                urllib.request.urlopen(url, timeout=2)
            except urllib.error.HTTPError:
                break  # the endpoint answers (a bare GET is not an MCP request)
            except OSError:
                assert time.monotonic() < deadline, "the MCP HTTP server did not start"
                time.sleep(0.3)

        async def tools() -> list[str]:
            async with Client(url) as client:
                return [t.name for t in (await client.list_tools()).tools]

        assert asyncio.run(asyncio.wait_for(tools(), 60)) == ["visual_search"]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


def test_the_server_refuses_to_start_without_obtainable_weights(
    tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from seal_agent.cli import main

    monkeypatch.delenv("SEAL_AGENT_MODELS", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    assert main(["mcp"]) == 2
    err = capsys.readouterr().err
    assert "not in the local cache" in err
    assert "--shapeworld" in err
    assert main(["mcp", "--allow-root", str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_bare_base64_without_data_is_refused_as_invalid_base64() -> None:
    from seal_agent.errors import InvalidImageError
    from seal_agent.servers.mcp import ClientImageSources

    sources = ClientImageSources((), allow_urls=False)
    with pytest.raises(InvalidImageError, match="base64 data is not valid: it holds no data"):
        sources.image_input("====" * 100)
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    wrapped = base64.encodebytes(png.getvalue() * 4).decode()  # 76-character lines
    assert sources.image_input(wrapped) == png.getvalue() * 4


def test_text_arguments_no_store_accepts_are_refused_in_process(tmp_path: Path) -> None:
    # Over JSON a client can send "\ud800"; it reached the chat model, whose failure
    # blamed the model ("the VQA chat model ... failed: UnicodeEncodeError").
    from seal_agent.graph import SealConfig, build_graph
    from seal_agent.servers.mcp import build_mcp_server
    from seal_agent.shapeworld import ReferenceSearchModel
    from seal_agent.shapeworld.vqa_model import ReferenceVQAChatModel

    graph = build_graph(
        ReferenceVQAChatModel(), ReferenceSearchModel(), SealConfig(cache_dir=tmp_path / "cache")
    )
    server = build_mcp_server(graph, allowed_roots=[tmp_path])
    Image.new("RGB", (64, 48), (40, 90, 200)).save(tmp_path / "blue.png")
    image = str(tmp_path / "blue.png")

    async def call(**args: Any) -> Any:
        async with Client(server, read_timeout_seconds=60) as client:
            return await client.call_tool("visual_search", {"image": image, **args})

    for args, needle in [
        ({"question": "Which?", "options": ["red\ud800", "blue"]}, "option 1 is not valid Unicode"),
        ({"question": "Which\x00?"}, "the question contains a NUL character"),
        ({"question": "Which?", "targets": ["\udcff"]}, "target 1 is not valid Unicode"),
    ]:
        result = asyncio.run(asyncio.wait_for(call(**args), 60))
        assert result.is_error
        assert needle in result.content[0].text


def test_the_shapeworld_server_with_allow_urls_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `seal-agent mcp --shapeworld --allow-urls` built its graph without allow_urls and
    # sent allow_urls=True as every call's context: each call was refused as a change of
    # a deployment setting.
    from mcp.server.mcpserver import MCPServer

    from seal_agent.cli import main
    from seal_agent.graph import SealConfig, build_graph
    from seal_agent.graph.configuration import DeploymentSettingError
    from seal_agent.servers.mcp import build_mcp_server
    from seal_agent.shapeworld import ReferenceSearchModel
    from seal_agent.shapeworld.vqa_model import ReferenceVQAChatModel

    monkeypatch.setenv("SEAL_AGENT_CACHE_DIR", str(tmp_path / "cache"))
    served: list[MCPServer] = []
    monkeypatch.setattr(MCPServer, "run", lambda self, *a, **k: served.append(self))
    assert main(["mcp", "--shapeworld", "--allow-urls", "--allow-root", str(tmp_path)]) == 0
    Image.new("RGB", (64, 48), (40, 90, 200)).save(tmp_path / "blue.png")

    async def call() -> Any:
        async with Client(served[0], read_timeout_seconds=60) as client:
            args = {"image": str(tmp_path / "blue.png"), "question": "What is it?"}
            return await client.call_tool("visual_search", args)

    result = asyncio.run(asyncio.wait_for(call(), 60))
    assert not result.is_error, result.content[0].text

    graph = build_graph(ReferenceVQAChatModel(), ReferenceSearchModel(), SealConfig())
    with pytest.raises(DeploymentSettingError, match=r"graph built with allow_urls=False"):
        build_mcp_server(graph, allow_urls=True)


def test_the_default_graph_enforces_the_servers_roots_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from seal_agent.servers import mcp as server_module

    built: list[Any] = []
    monkeypatch.setattr(
        server_module, "build_default_graph", lambda settings: built.append(settings) or object()
    )
    server_module.build_mcp_server(allowed_roots=[tmp_path])
    server_module.build_mcp_server()
    assert built[0].allowed_roots == [tmp_path.resolve()]
    assert built[1].allowed_roots == []  # no roots: no local file at all, not any file
    assert built[0].image_policy().allowed_roots == (tmp_path.resolve(),)
