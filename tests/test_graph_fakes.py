"""Small deterministic stand-ins for the two models, shared by the graph and tool tests.

``ColourSearchModel`` locates a phrase by its colour (a real, resolution-honest rule: a
blob too small in the view scores below ``confidence_high``); ``ScriptedChatModel``
answers each kind of prompt the graph sends with a function of the prompt. The tests at
the bottom pin down the fakes themselves, so a graph test cannot pass on a broken fake.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from PIL import Image, ImageDraw
from pydantic import Field

from seal_agent.imaging.geometry import Box
from seal_agent.search import (
    Detection,
    ModelThresholds,
    PatchPrediction,
    SearchModel,
    validate_predictions,
)

RED = (220, 40, 40)
BLUE = (40, 80, 220)
BROWN = (139, 94, 60)


def make_scene(
    width: int = 2000,
    height: int = 1500,
    objects: Sequence[tuple[tuple[int, int, int], Box]] = (
        (RED, Box(1500, 1100, 1520, 1120)),
        (BLUE, Box(300, 200, 320, 220)),
    ),
) -> Image.Image:
    image = Image.new("RGB", (width, height), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    for colour, box in objects:
        draw.rectangle((box.x1, box.y1, box.x2 - 1, box.y2 - 1), fill=colour)
    return image


class ColourSearchModel:
    """Finds "red ..." / "blue ..." / "table" by colour; counts calls per phrase."""

    def __init__(
        self,
        colours: dict[str, tuple[int, int, int]] | None = None,
        input_size: int = 256,
        fail_on: Callable[[str], bool] | None = None,
    ) -> None:
        self.colours = colours or {"red": RED, "blue": BLUE, "table": BROWN}
        self._input_size = input_size
        self.fail_on = fail_on
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def input_size(self) -> int:
        return self._input_size

    @property
    def thresholds(self) -> ModelThresholds:
        return ModelThresholds()

    def _colour(self, phrase: str) -> tuple[int, int, int] | None:
        for word, colour in self.colours.items():
            if word in phrase.lower():
                return colour
        return None

    def predict(
        self, views: Sequence[Image.Image], phrases: Sequence[str]
    ) -> list[list[PatchPrediction]]:
        with self._lock:
            for phrase in phrases:
                self.calls[phrase] += len(views)
        if self.fail_on is not None and any(self.fail_on(p) for p in phrases):
            raise RuntimeError("search model exploded")
        out = []
        for view in views:
            pixels = np.asarray(view, dtype=np.int16)
            row = []
            for phrase in phrases:
                colour = self._colour(phrase)
                if colour is None:
                    mask = np.zeros(pixels.shape[:2], dtype=bool)
                else:
                    mask = np.abs(pixels - np.array(colour)).sum(axis=2) < 60
                detections: tuple[Detection, ...] = ()
                if mask.any():
                    ys, xs = np.nonzero(mask)
                    box = Box(float(xs.min()), float(ys.min()), xs.max() + 1.0, ys.max() + 1.0)
                    score = min(0.95, 0.95 * min(box.width, box.height) / 12)
                    detections = (Detection(box, score),)
                heatmap = mask.astype(np.float32) * 10.0
                row.append(PatchPrediction(detections=detections, heatmap=heatmap))
            out.append(row)
        return validate_predictions(out, views, phrases)


def _last_text(messages: Sequence[BaseMessage]) -> str:
    content = messages[-1].content
    if isinstance(content, str):
        return content
    return "\n".join(b["text"] for b in content if isinstance(b, dict) and b.get("type") == "text")


def _all_text(messages: Sequence[BaseMessage]) -> str:
    parts = []
    for m in messages:
        if isinstance(m.content, str):
            parts.append(m.content)
        else:
            parts.extend(
                b["text"] for b in m.content if isinstance(b, dict) and b.get("type") == "text"
            )
    return "\n".join(parts)


def count_images(messages: Sequence[BaseMessage]) -> int:
    return sum(
        1
        for m in messages
        if not isinstance(m.content, str)
        for b in m.content
        if isinstance(b, dict) and b.get("type") == "image"
    )


class ScriptedChatModel(BaseChatModel):
    """Replies with ``script(prompt_text, messages)``; records every prompt it saw."""

    script: Callable[[str, Sequence[BaseMessage]], str]
    prompts: list[str] = Field(default_factory=list)
    calls: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted-fake"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = _all_text(messages)
        self.prompts.append(text)
        self.calls.append(list(messages))
        reply = self.script(text, messages)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=reply))])


def seal_script(missing: str = "red square, blue square") -> Callable[[str, Any], str]:
    """The reference's behaviour: list the missing objects, name "table" as the cue,
    answer from the VWM (with the option letter when options are shown)."""

    def script(text: str, messages: Sequence[BaseMessage]) -> str:
        if "most likely location" in text:
            return "It is most likely on the table."
        if "Additional visual information" in text or "not existent" in text:
            if "A. " in text:
                return "A"
            return "The red square is at the bottom right."
        if "A. " in text:
            return "B"
        return (
            "Sorry, I can not answer the question. Some visual information about the "
            f"following objects is missing or unclear: {missing}."
        )

    return script


# -- the fakes' own tests ------------------------------------------------------------------
def test_colour_search_model_is_a_search_model_and_is_resolution_honest():
    model = ColourSearchModel()
    assert isinstance(model, SearchModel)
    scene = make_scene()
    whole = scene.resize((256, 192), Image.Resampling.BOX)
    zoomed = scene.crop((1400, 1000, 1656, 1192))
    root = model.predict([whole], ["red square"])[0][0]
    close = model.predict([zoomed], ["red square"])[0][0]
    assert root.best() is None or root.best().score < 0.5
    assert close.best() is not None
    assert close.best().score > 0.5
    assert model.calls["red square"] == 2


def test_scripted_chat_model_lists_targets_in_the_reference_format():
    from langchain_core.messages import HumanMessage

    model = ScriptedChatModel(script=seal_script("red square"))
    reply = model.invoke([HumanMessage("What is the colour of the square?")])
    assert reply.text.endswith("missing or unclear: red square.")
    assert model.prompts == ["What is the colour of the square?"]
