"""The ``visual_search`` tool: schema, content and artifact, isolation, errors, agent loop."""

from __future__ import annotations

import asyncio
import base64
import io
import tempfile
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from PIL import Image
from test_graph_fakes import ColourSearchModel, ScriptedChatModel, seal_script

from seal_agent.graph import SealConfig, build_graph
from seal_agent.graph.builder import graph_settings
from seal_agent.tools import create_visual_search_tool

#: Local files are read only inside the tool's allowed roots; the tests' files are here.
TMP = tempfile.gettempdir()


@pytest.fixture
def graph(tmp_path: Path):
    chat = ScriptedChatModel(script=seal_script())
    return build_graph(
        chat,
        ColourSearchModel(),
        SealConfig(cache_dir=tmp_path / "cache"),
        checkpointer=InMemorySaver(),
    )


def _call(tool, args: dict[str, Any], call_id: str = "call-1") -> ToolMessage:
    return tool.invoke({"type": "tool_call", "name": tool.name, "args": args, "id": call_id})


def test_schema_and_name(graph):
    tool = create_visual_search_tool(graph=graph, allowed_roots=[TMP])
    assert tool.name == "visual_search"
    assert tool.response_format == "content_and_artifact"
    schema = tool.tool_call_schema.model_json_schema()
    assert set(schema["properties"]) == {"image", "question", "targets"}
    assert set(schema["required"]) == {"image", "question"}


def test_content_has_the_answer_and_a_box_per_target(graph, scene_path):
    tool = create_visual_search_tool(graph=graph, allowed_roots=[TMP])
    message = _call(tool, {"image": scene_path, "question": "Where is the red square?"})
    assert isinstance(message, ToolMessage)
    assert message.status == "success"
    lines = message.content.splitlines()
    assert lines[0] == "The red square is at the bottom right."
    assert "2000x1500" in lines[1]
    assert lines[2].startswith("- red square: found at [1500, 1100, 1520, 1120]")
    assert lines[3].startswith("- blue square: found at [300, 200, 320, 220]")


def test_artifact_holds_boxes_crops_and_the_trace(graph, scene_path):
    tool = create_visual_search_tool(graph=graph, allowed_roots=[TMP])
    artifact = _call(tool, {"image": scene_path, "question": "q?"}).artifact
    red = artifact["targets"][0]
    assert red["target"] == "red square"
    assert red["found"]
    crop = Image.open(io.BytesIO(base64.b64decode(red["crop_png_base64"])))
    assert crop.format == "PNG"
    assert crop.size == (24, 24)
    assert artifact["searches"]["red square"]["trace"]
    assert [e["event"] for e in artifact["trace"]][-1] == "answered"
    assert artifact["image"]["width"] == 2000


def test_each_call_runs_in_its_own_thread(graph, scene_path):
    tool = create_visual_search_tool(graph=graph, allowed_roots=[TMP])
    first = _call(tool, {"image": scene_path, "question": "q?", "targets": ["blue square"]})
    second = _call(tool, {"image": scene_path, "question": "q?", "targets": ["red square"]})
    assert [t["target"] for t in first.artifact["targets"]] == ["blue square"]
    assert [t["target"] for t in second.artifact["targets"]] == ["red square"]
    threads = {c.config["configurable"]["thread_id"] for c in graph.checkpointer.list(None)}
    assert len(threads) == 2


def test_explicit_targets_are_searched_directly(graph, scene_path):
    tool = create_visual_search_tool(graph=graph, allowed_roots=[TMP])
    message = _call(tool, {"image": scene_path, "question": "q?", "targets": ["blue square"]})
    assert "- blue square: found" in message.content
    assert "- red square" not in message.content


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ({"image": "/no/such/file.png", "question": "q?"}, "image path was refused"),
        ({"image": "SCENE", "question": "  "}, "question"),
        ({"image": "SCENE"}, "question"),
        ({"image": 5, "question": "q?"}, "image"),
    ],
)
def test_errors_come_back_as_readable_messages(graph, scene_path, args, needle):
    tool = create_visual_search_tool(graph=graph, allowed_roots=[TMP])
    args = {k: (scene_path if v == "SCENE" else v) for k, v in args.items()}
    message = _call(tool, args)
    assert isinstance(message, ToolMessage)
    assert message.status == "error"
    assert "visual_search" in message.content
    assert needle in message.content


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ({"targets": ["square\udcff"]}, "target 1 is not valid Unicode text: a lone surrogate"),
        ({"targets": ["red", "a\x00b"]}, "target 2 contains a NUL character"),
        ({"question": "What\x00 colour?"}, "the question contains a NUL character"),
    ],
)
def test_text_no_store_accepts_is_refused_before_the_run(graph, scene_path, args, needle):
    # JSON carries lone surrogates and NULs; with a checkpointer a surrogate target made
    # the graph's serializer raise TypeError, which escaped the tool and crashed the agent.
    tool = create_visual_search_tool(graph=graph, allowed_roots=[TMP])
    message = _call(tool, {"image": scene_path, "question": "q?", **args})
    assert message.status == "error"
    assert needle in message.content


def test_a_corrupt_image_is_reported_to_the_agent(graph, tmp_path: Path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 20)
    message = _call(
        create_visual_search_tool(graph=graph, allowed_roots=[TMP]),
        {"image": str(bad), "question": "q?"},
    )
    assert message.status == "error"
    assert "bad.jpg" in message.content


def test_async_tool_call(graph, scene_path):
    tool = create_visual_search_tool(graph=graph, allowed_roots=[TMP])
    message = asyncio.run(
        tool.ainvoke(
            {
                "type": "tool_call",
                "name": "visual_search",
                "args": {"image": scene_path, "question": "q?"},
                "id": "a1",
            }
        )
    )
    assert message.status == "success"
    assert "- red square: found" in message.content


def test_per_tool_settings_reach_the_graph(graph, scene_path):
    tool = create_visual_search_tool(graph=graph, allowed_roots=[TMP], config={"max_targets": 1})
    artifact = _call(tool, {"image": scene_path, "question": "q?"}).artifact
    assert [t["target"] for t in artifact["targets"]] == ["red square"]


class ToolCallingFake(GenericFakeChatModel):
    """LangChain's scripted fake chat model, made to accept ``bind_tools``."""

    def bind_tools(self, tools, **kwargs):
        return self


def test_a_prebuilt_agent_drives_the_tool(graph, scene_path):
    from langchain.agents import create_agent

    model = ToolCallingFake(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[
                        {
                            "name": "visual_search",
                            "args": {"image": scene_path, "question": "Where is the red square?"},
                            "id": "call-7",
                        },
                        {
                            "name": "visual_search",
                            "args": {"image": "/missing.png", "question": "q?"},
                            "id": "call-8",
                        },
                    ],
                ),
                AIMessage(content="The red square is at the bottom right."),
            ]
        )
    )
    agent = create_agent(model, tools=[create_visual_search_tool(graph=graph, allowed_roots=[TMP])])
    out = agent.invoke({"messages": [HumanMessage("Where is the red square in scene.png?")]})
    tool_messages = {m.tool_call_id: m for m in out["messages"] if isinstance(m, ToolMessage)}
    assert "- red square: found at [1500, 1100, 1520, 1120]" in tool_messages["call-7"].content
    assert tool_messages["call-7"].artifact["targets"][0]["crop_png_base64"]
    assert tool_messages["call-8"].status == "error"
    assert "image path was refused" in tool_messages["call-8"].content
    assert out["messages"][-1].content == "The red square is at the bottom right."


def test_a_crop_of_a_huge_box_is_scaled_down_in_the_artifact(tmp_path: Path):
    # A box covering most of a scan was cut at full resolution: a PNG of the whole
    # image (hundreds of MB of base64 at 200 MP) in the artifact and the MCP reply.
    from seal_agent.imaging.loading import to_image_ref
    from seal_agent.imaging.policy import ImagePolicy
    from seal_agent.tools.visual_search import MAX_CROP_SIDE, result_artifact

    path = tmp_path / "scan.png"
    Image.new("RGB", (5000, 3000), (90, 120, 40)).save(path)
    policy = ImagePolicy(cache_dir=tmp_path / "cache")
    outcome = {
        "target": "field",
        "found": True,
        "box": [10.0, 10.0, 4990.0, 2990.0],
        "confidence": 0.9,
        "instances": [],
        "stop_reason": "found",
        "message": "",
        "patches_scored": 1,
    }
    out = {"image": to_image_ref(path, policy=policy), "targets": ["field"]}
    out["searches"] = {"field": outcome}
    (entry,) = result_artifact(out, policy=policy)["targets"]
    crop = Image.open(io.BytesIO(base64.b64decode(entry["crop_png_base64"])))
    assert max(crop.size) == MAX_CROP_SIDE
    assert list(crop.size) == entry["crop_size"]
    assert entry["crop_box"] == [0, 0, 5000, 3000]


def test_the_default_graph_of_a_tool_with_roots_reads_only_inside_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # The tool hands the graph the real path it checked; the module's default graph
    # (allowed_roots=None) would read whatever that path names when it opens it (a folder
    # swapped for a symlink in between). The tool's own default graph checks the roots too.
    from seal_agent.errors import InvalidImageError
    from seal_agent.graph.default_models import default_models
    from seal_agent.shapeworld import generate_scene
    from seal_agent.tools import visual_search

    monkeypatch.setenv("SEAL_AGENT_MODELS", "shapeworld")
    roots = tmp_path / "photos"
    roots.mkdir()
    scene = generate_scene(3, width=800, height=600, kind="direct_attributes")
    scene.image.save(roots / "scene.png")
    outside = tmp_path / "outside.png"
    scene.image.save(outside)

    tool = create_visual_search_tool(allowed_roots=[roots])
    message = _call(tool, {"image": str(roots / "scene.png"), "question": scene.question})
    assert message.status != "error", message.content

    hits = visual_search._default_graph_reading.cache_info().hits
    own = visual_search._default_graph_reading((roots.resolve(),))
    assert visual_search._default_graph_reading.cache_info().hits == hits + 1  # the tool's
    assert graph_settings(own).image_policy().allowed_roots == (roots.resolve(),)
    with pytest.raises(InvalidImageError, match="refused"):
        own.invoke({"image": str(outside), "question": "q?"})
    # It shares the default models: a second default graph loads no second copy.
    assert default_models() is default_models()
