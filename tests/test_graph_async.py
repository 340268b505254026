"""``ainvoke`` runs nothing blocking in the event loop, whatever form the image takes.

``blockbuster`` (as ``langgraph dev`` uses it) raises on a blocking call (file I/O,
``os.mkdir``, ``time.sleep`` ...) made in the loop's thread; the graph's worker threads
may block freely. Every in-memory input is spilled to a fresh cache directory, so the
conversion really writes.
"""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path

import pytest

from seal_agent.graph import SealConfig, build_graph
from seal_agent.imaging.loading import image_cache
from seal_agent.shapeworld import ReferenceSearchModel, generate_scene
from seal_agent.shapeworld.vqa_model import ReferenceVQAChatModel

blockbuster = pytest.importorskip("blockbuster", reason="installed with the 'server' extra")


@pytest.mark.parametrize("form", ["pil", "bytes", "data_url", "block", "path"])
def test_ainvoke_makes_no_blocking_call_in_the_loop(form: str, tmp_path: Path) -> None:
    scene = generate_scene(
        4, width=1600, height=1200, kind="direct_attributes", target_size=(20, 24)
    )
    target = scene.targets[0]
    buffer = io.BytesIO()
    scene.image.save(buffer, format="PNG")
    png = buffer.getvalue()
    b64 = base64.b64encode(png).decode()
    (tmp_path / "scene.png").write_bytes(png)
    image = {
        "pil": scene.image,
        "bytes": png,
        "data_url": f"data:image/png;base64,{b64}",
        "block": {"type": "image", "base64": b64, "mime_type": "image/png"},
        "path": str(tmp_path / "scene.png"),
    }[form]
    graph = build_graph(
        ReferenceVQAChatModel(), ReferenceSearchModel(), SealConfig(cache_dir=tmp_path / "cache")
    )
    image_cache().clear()
    inputs = {"image": image, "question": f"What is the color of the {target.shape}?"}

    async def run() -> dict:
        with blockbuster.blockbuster_ctx():
            return await graph.ainvoke(inputs)

    state = asyncio.run(run())
    assert state["answer"] == f"The {target.shape} is {target.colour}."
