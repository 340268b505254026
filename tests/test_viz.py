"""``seal_agent.viz``: the picture of a search, from a graph state or a SearchResult."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seal_agent.errors import SealError
from seal_agent.graph import SealConfig, build_graph
from seal_agent.search import SearchConfig, VStarSearch
from seal_agent.search.trace_heatmaps import downsample_heatmap
from seal_agent.shapeworld import ReferenceSearchModel, Scene, generate_scene
from seal_agent.shapeworld.vqa_model import ReferenceVQAChatModel
from seal_agent.tools import create_visual_search_tool
from seal_agent.viz import FOUND_OUTLINE, render_search, save_search


@pytest.fixture(scope="module")
def scene() -> Scene:
    return generate_scene(
        4, width=2400, height=1800, kind="direct_attributes", target_size=(20, 24)
    )


def _graph(tmp_path: Path, **search):
    return build_graph(
        ReferenceVQAChatModel(),
        ReferenceSearchModel(),
        SealConfig(cache_dir=tmp_path / "c", search=SearchConfig(**search)),
    )


def _has_colour_near(picture: Image.Image, xy: tuple[float, float], colour, radius: int) -> bool:
    pixels = np.asarray(picture.convert("RGB")).astype(int)
    x, y = int(xy[0]), int(xy[1])
    window = pixels[max(0, y - radius) : y + radius, max(0, x - radius) : x + radius]
    return bool((np.abs(window - np.array(colour)).sum(axis=-1) < 30).any())


def test_a_state_is_drawn_with_its_found_box_and_heatmap_panels(scene, tmp_path):
    target = scene.targets[0]
    state = _graph(tmp_path, trace_heatmaps=16).invoke(
        {"image": scene.image, "question": scene.question}
    )
    outcome = state["searches"][target.shape]
    assert outcome["found"]
    assert all(len(s["heatmap"]) <= 16 for s in outcome["trace"])
    plain = render_search(state, max_side=800, heatmap_panels=False)
    picture = render_search(state, max_side=800)
    assert picture.width == plain.width == 800
    assert picture.height > plain.height  # the heatmap panels sit below the image
    # The found box's red outline is drawn around the target, at the picture's scale.
    legend = plain.height - round(1800 * 800 / 2400)
    cx, cy = (target.box.x1 + target.box.x2) / 2, (target.box.y1 + target.box.y2) / 2
    at = (cx * 800 / 2400, legend + cy * 800 / 2400)
    assert _has_colour_near(plain, at, FOUND_OUTLINE, 14)
    assert not _has_colour_near(
        plain, (at[0], at[1] - 200 if at[1] > 300 else at[1] + 200), FOUND_OUTLINE, 14
    )
    path = save_search(state, tmp_path / "search.png", max_side=800)
    assert Image.open(path).size == picture.size


def test_heatmaps_stay_out_of_the_state_unless_asked(scene, tmp_path):
    state = _graph(tmp_path).invoke(
        {"image": scene.image, "question": scene.question, "targets": [scene.targets[0].shape]}
    )
    trace = state["searches"][scene.targets[0].shape]["trace"]
    assert trace
    assert all("heatmap" not in step for step in trace)
    picture = render_search(state, max_side=600)
    assert picture.height == render_search(state, max_side=600, heatmap_panels=False).height


def test_a_search_result_is_drawn_over_the_given_image(scene):
    result = VStarSearch(ReferenceSearchModel(), SearchConfig(trace_heatmaps=8)).search(
        scene.image, scene.targets[0].shape
    )
    assert result.found
    assert all(s.heatmap is not None for s in result.trace)
    picture = render_search(result, scene.image, max_side=640)
    assert picture.width == 640
    with pytest.raises(SealError, match="needs the image"):
        render_search(result)
    with pytest.raises(SealError, match="graph state"):
        render_search(42, scene.image)


def test_the_tool_artifact_can_carry_the_picture(scene, tmp_path):
    path = tmp_path / "scene.png"
    scene.image.save(path)
    tool = create_visual_search_tool(
        graph=_graph(tmp_path), include_visualization=True, allowed_roots=[tmp_path]
    )
    message = tool.invoke(
        {
            "type": "tool_call",
            "name": "visual_search",
            "args": {"image": str(path), "question": scene.question},
            "id": "v1",
        }
    )
    assert message.status == "success", message.content
    png = base64.b64decode(message.artifact["visualization_png_base64"])
    assert Image.open(io.BytesIO(png)).width == 1280


@pytest.mark.parametrize("size", [(20000, 1), (1, 20000), (9000, 3), (1, 1)])
def test_searches_of_extreme_aspect_images_are_drawn(tmp_path, size):
    # On a 20000x1 image a patch is thinner than a canvas pixel: its rectangle came out
    # with y2 < y1 and PIL's ValueError escaped the tool (crashing the agent) and the CLI.
    path = tmp_path / "line.png"
    Image.new("RGB", size, (200, 30, 30)).save(path)
    tool = create_visual_search_tool(
        graph=_graph(tmp_path), include_visualization=True, allowed_roots=[tmp_path]
    )
    message = tool.invoke(
        {
            "type": "tool_call",
            "name": "visual_search",
            "args": {"image": str(path), "question": "What colour?", "targets": ["square"]},
            "id": "v2",
        }
    )
    assert message.status == "success", message.content
    png = base64.b64decode(message.artifact["visualization_png_base64"])
    assert Image.open(io.BytesIO(png)).format == "PNG"


def test_downsampled_heatmaps_keep_their_mass_and_shape():
    grid = np.zeros((60, 60))
    grid[40:50, 10:20] = 1.0
    small = np.asarray(downsample_heatmap(grid, 12))
    assert small.shape == (12, 12)
    assert np.unravel_index(small.argmax(), small.shape) in {(8, 2), (8, 3), (9, 2), (9, 3)}
    assert np.asarray(downsample_heatmap(np.ones((5, 7)), 12)).shape == (5, 7)
