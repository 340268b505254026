"""End to end: LangChain's prebuilt agent calls ``visual_search`` on a shape-world scene,
with the offline reference models doing the perception and the search."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from seal_agent.graph import SealConfig, build_graph
from seal_agent.imaging.geometry import Box
from seal_agent.shapeworld.scene import generate_scene
from seal_agent.shapeworld.search_model import ReferenceSearchModel
from seal_agent.shapeworld.vqa_model import ReferenceVQAChatModel
from seal_agent.tools import create_visual_search_tool


class ToolCallingFake(GenericFakeChatModel):
    """LangChain's scripted fake chat model, made to accept ``bind_tools``."""

    def bind_tools(self, tools, **kwargs):
        return self


@pytest.mark.slow
def test_agent_answers_a_colour_question_about_a_tiny_target(tmp_path: Path):
    scene = generate_scene(7, width=4000, height=3000, target_size=(16, 24))
    target = scene.targets[0]
    path = tmp_path / "scene.png"
    scene.image.save(path)
    graph = build_graph(
        ReferenceVQAChatModel(), ReferenceSearchModel(), SealConfig(cache_dir=tmp_path / "c")
    )
    question = f"What is the color of the {target.shape}?"
    model = ToolCallingFake(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[
                        {
                            "name": "visual_search",
                            "args": {"image": str(path), "question": question},
                            "id": "call-1",
                        }
                    ],
                ),
                AIMessage(content="Done."),
            ]
        )
    )
    agent = create_agent(
        model, tools=[create_visual_search_tool(graph=graph, allowed_roots=[tmp_path])]
    )
    out = agent.invoke({"messages": [HumanMessage(f"{question} The image is {path}.")]})
    reply = next(m for m in out["messages"] if isinstance(m, ToolMessage))
    assert reply.status == "success"
    assert reply.content.splitlines()[0] == f"The {target.shape} is {target.colour}."
    found = reply.artifact["targets"][0]
    assert found["target"] == target.shape
    assert found["found"]
    assert Box(*found["box"]).iou(target.box) > 0.5
    assert f"- {target.shape}: found at [" in reply.content
    assert found["crop_png_base64"]
