"""The contextual cue: seal asks it at every weak-cue patch, showing that patch (the
reference); vstar asks once per target on the global image."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image
from search_fakes import ScriptedModel, VirtualPyramid
from test_graph_fakes import ScriptedChatModel, seal_script

from seal_agent.graph import build_graph
from seal_agent.search.config import SearchConfig
from seal_agent.search.engine import VStarSearch
from seal_agent.search.protocol import PatchPrediction


def weak_cue_model() -> ScriptedModel:
    """Target heatmap below every cue threshold; the context phrase lights one corner."""

    def answer(call: int, view: int, phrase: str) -> PatchPrediction:
        if phrase == "table":
            return PatchPrediction((), np.array([[0.0, 0.0], [0.0, 1.0]]))
        return PatchPrediction((), np.full((2, 2), 0.01))

    return ScriptedModel(answer)


def test_seal_asks_at_every_weak_cue_patch_showing_that_patch() -> None:
    shown: list[tuple[int, int]] = []

    def cue(target: str, view: Image.Image | None = None) -> str:
        assert view is not None
        shown.append(view.size)
        return "table"

    model = weak_cue_model()
    config = SearchConfig(strategy="seal", max_calls=30)
    pyramid = VirtualPyramid(4000, 3000)
    result = VStarSearch(model, config).search(pyramid, "star", context_cue=cue)
    expanded = [s for s in result.trace if s.cue == "context"]
    assert len(shown) == len(expanded) > 2  # one question per weak-cue patch
    assert shown[0] == (512, 384)  # the root's view
    assert all(s.context_phrase == "table" for s in expanded)


def test_a_per_patch_answer_steers_that_patch_only() -> None:
    """The answer may differ by patch: nothing at the root, "table" below it."""
    answers = iter([None, "table", "table", "table"] + ["table"] * 40)

    def cue(target: str, view: Image.Image | None = None) -> str | None:
        return next(answers)

    config = SearchConfig(strategy="seal", max_calls=12)
    result = VStarSearch(weak_cue_model(), config).search(
        VirtualPyramid(4000, 3000), "star", context_cue=cue
    )
    assert result.trace[0].cue == "target"
    assert result.trace[1].cue == "context"


def test_vstar_and_a_cue_that_cannot_see_a_patch_ask_once() -> None:
    views: list[object] = []

    def cue(target: str, view: Image.Image | None = None) -> str:
        views.append(view)
        return "table"

    VStarSearch(weak_cue_model(), SearchConfig(strategy="vstar", max_calls=30)).search(
        VirtualPyramid(4000, 3000), "star", context_cue=cue
    )
    assert views == [None]
    asked: list[str] = []
    VStarSearch(weak_cue_model(), SearchConfig(strategy="seal", max_calls=30)).search(
        VirtualPyramid(4000, 3000), "star", context_cue=lambda t: asked.append(t) or "table"
    )
    assert asked == ["star"]


def _images(messages) -> list[Image.Image]:
    images = []
    for m in messages:
        for block in m.content if not isinstance(m.content, str) else []:
            if isinstance(block, dict) and block.get("type") == "image":
                data = base64.b64decode(block["base64"])
                images.append(Image.open(io.BytesIO(data)).convert("RGB"))
    return images


def test_the_graph_shows_the_vqa_model_each_weak_patch_for_seal(scene_path, config) -> None:
    """The blue square (not a colour the fake model maps) leaves every target cue weak."""
    settings = config.model_copy(
        update={"search": SearchConfig(strategy="seal", max_calls=6, deadline_s=None)}
    )
    chat = ScriptedChatModel(script=seal_script("green square"))
    graph = build_graph(chat, _NoTargetColourModel(), settings)
    graph.invoke({"image": scene_path, "question": "What colour is the green square?"})
    cue_calls = [c for c in chat.calls if "most likely location" in c[-1].text]
    assert len(cue_calls) > 1
    shown = [_images(c) for c in cue_calls]
    assert all(len(images) == 1 for images in shown)
    assert shown[0][0].size == (256, 192)  # the root, as the search model saw it
    assert len({images[0].tobytes() for images in shown}) > 1  # then other patches


class _NoTargetColourModel:
    """Sees nothing of the target; a flat heatmap everywhere."""

    input_size = 256

    @property
    def thresholds(self):
        from seal_agent.search import ModelThresholds

        return ModelThresholds()

    def predict(self, views, phrases):
        return [[PatchPrediction((), np.zeros((4, 4))) for _ in phrases] for _ in views]
