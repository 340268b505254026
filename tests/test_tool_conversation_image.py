"""The agent's own image, by reference: ``image="latest"`` inside a prebuilt agent, with
the search's events relayed live to the agent's stream (shape world, offline models)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver

from seal_agent.errors import InvalidImageError
from seal_agent.graph import SealConfig, build_graph
from seal_agent.imaging.geometry import Box
from seal_agent.shapeworld import ReferenceSearchModel, Scene, generate_scene
from seal_agent.shapeworld.vqa_model import ReferenceVQAChatModel
from seal_agent.tools import create_visual_search_tool
from seal_agent.tools.conversation_images import parse_image_reference, resolve_conversation_image


class ToolCallingFake(GenericFakeChatModel):
    """LangChain's scripted fake chat model, made to accept ``bind_tools``."""

    def bind_tools(self, tools, **kwargs):
        return self


@pytest.fixture(scope="module")
def scene() -> Scene:
    return generate_scene(
        4, width=2400, height=1800, kind="direct_attributes", target_size=(20, 24)
    )


@pytest.fixture(scope="module")
def scene_b64(scene: Scene) -> str:
    buffer = io.BytesIO()
    scene.image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@pytest.fixture
def graph(tmp_path: Path):
    return build_graph(
        ReferenceVQAChatModel(), ReferenceSearchModel(), SealConfig(cache_dir=tmp_path / "c")
    )


def _agent(graph, question: str, image_arg: Any = "latest", **kwargs):
    model = ToolCallingFake(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[
                        {
                            "name": "visual_search",
                            "args": {"image": image_arg, "question": question},
                            "id": "call-1",
                        }
                    ],
                ),
                AIMessage(content="Done."),
            ]
        )
    )
    return create_agent(model, tools=[create_visual_search_tool(graph=graph)], **kwargs)


def test_the_agent_hands_over_its_own_image_by_reference(graph, scene, scene_b64):
    target = scene.targets[0]
    question = f"What is the color of the {target.shape}?"
    photo = {"type": "image", "base64": scene_b64, "mime_type": "image/png"}
    agent = _agent(graph, question, checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "conversation-1"}}
    custom: list[tuple[tuple[str, ...], dict]] = []
    for namespace, mode, chunk in agent.stream(
        {"messages": [HumanMessage(content=[{"type": "text", "text": question}, photo])]},
        config,
        stream_mode=["custom", "updates"],
        subgraphs=True,
    ):
        if mode == "custom":
            custom.append((namespace, chunk))
    out = agent.get_state(config).values
    reply = next(m for m in out["messages"] if isinstance(m, ToolMessage))
    assert reply.status == "success", reply.content
    assert reply.content.splitlines()[0] == f"The {target.shape} is {target.colour}."
    found = reply.artifact["targets"][0]
    assert found["found"]
    assert Box(*found["box"]).iou(target.box) > 0.5
    # No image data travelled through the model's tool-call arguments.
    calls = [c for m in out["messages"] if isinstance(m, AIMessage) for c in m.tool_calls]
    assert calls
    assert all(len(json.dumps(c["args"])) < 200 for c in calls)
    assert scene_b64[:64] not in json.dumps([c["args"] for c in calls])
    # Every search step reached the agent's custom stream, tagged with its tool call.
    steps = [e for _, e in custom if e.get("event") == "search_step"]
    assert len(steps) == found["patches_scored"] >= 2
    assert all(e["tool_call_id"] == "call-1" for e in steps)
    assert [e["event"] for _, e in custom][-1] == "answered"
    # The tool's graph kept its own thread: the agent's checkpoints hold no search state.
    saved = agent.checkpointer.list(config)
    assert all("searches" not in c.checkpoint["channel_values"] for c in saved)


def test_an_openai_image_url_block_counts_as_the_latest_image(graph, scene, scene_b64):
    target = scene.targets[0]
    question = f"What is the color of the {target.shape}?"
    block = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{scene_b64}"}}
    older = {"type": "image", "base64": scene_b64[:0] or scene_b64, "mime_type": "image/png"}
    agent = _agent(graph, question, image_arg="image:-1")
    out = agent.invoke(
        {"messages": [HumanMessage(content=[older]), HumanMessage(content=[question, block])]}
    )
    reply = next(m for m in out["messages"] if isinstance(m, ToolMessage))
    assert reply.status == "success", reply.content
    assert reply.content.splitlines()[0] == f"The {target.shape} is {target.colour}."


def test_a_reference_without_an_image_in_the_conversation_is_a_readable_error(graph):
    agent = _agent(graph, "What is the color of the star?")
    out = agent.invoke({"messages": [HumanMessage("What colour is the star?")]})
    reply = next(m for m in out["messages"] if isinstance(m, ToolMessage))
    assert reply.status == "error"
    assert "holds no image" in reply.content


def test_graph_invoke_and_the_tool_accept_image_blocks_directly(graph, scene, scene_b64):
    target = scene.targets[0]
    question = f"What is the color of the {target.shape}?"
    blocks = [
        {"type": "image", "base64": scene_b64, "mime_type": "image/png"},
        {"type": "image", "source_type": "base64", "data": scene_b64, "mime_type": "image/png"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{scene_b64}"}},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": scene_b64},
        },
    ]
    for block in blocks:
        state = graph.invoke({"image": block, "question": question, "targets": [target.shape]})
        assert state["answer"] == f"The {target.shape} is {target.colour}.", block["type"]
        assert state["image"]["origin"] == "memory"
    tool = create_visual_search_tool(graph=graph)
    message = tool.invoke(
        {
            "type": "tool_call",
            "name": "visual_search",
            "args": {"image": blocks[0], "question": question, "targets": [target.shape]},
            "id": "direct",
        }
    )
    assert message.status == "success", message.content
    assert message.content.splitlines()[0] == f"The {target.shape} is {target.colour}."


@pytest.mark.parametrize(
    ("text", "index"),
    [
        ("latest", -1),
        ("the latest image", -1),
        ("last", -1),
        ("first", 0),
        ("image:2", 1),
        ("image #3", 2),
        ("image:-2", -2),
        ("photo.jpg", None),
        ("/tmp/latest.png", None),
    ],
)
def test_image_references_parse(text: str, index: int | None):
    assert parse_image_reference(text) == index


def test_references_out_of_range_or_without_a_conversation_say_why():
    messages = [HumanMessage(content=[{"type": "image", "url": "https://example.com/a.png"}])]
    assert resolve_conversation_image("latest", messages) == "https://example.com/a.png"
    with pytest.raises(InvalidImageError, match="holds 1 image"):
        resolve_conversation_image("image:2", messages)
    with pytest.raises(InvalidImageError, match="came without one"):
        resolve_conversation_image("latest", None)
    with pytest.raises(InvalidImageError, match="numbered from 1"):
        resolve_conversation_image("image:0", messages)


class _Recorder(BaseCallbackHandler):
    """Records which runs a callback handler given to the agent sees."""

    def __init__(self) -> None:
        self.chat_models: list[str] = []
        self.graph_parents: list[Any] = []

    def on_chat_model_start(self, serialized, messages, **kwargs) -> None:
        self.chat_models.append((serialized or {}).get("name", "?"))

    def on_chain_start(self, serialized, inputs, **kwargs) -> None:
        if kwargs.get("name") == "seal":
            self.graph_parents.append(kwargs.get("parent_run_id"))


def test_the_parents_callbacks_reach_the_tools_graph(graph, scene, scene_b64):
    recorder = _Recorder()
    photo = {"type": "image", "base64": scene_b64, "mime_type": "image/png"}
    agent = _agent(graph, scene.question)
    agent.invoke({"messages": [HumanMessage(content=[photo])]}, {"callbacks": [recorder]})
    # The graph's run is nested under the tool's run, and its chat model calls are traced.
    assert len(recorder.graph_parents) == 1
    assert recorder.graph_parents[0] is not None
    assert "ReferenceVQAChatModel" in recorder.chat_models
