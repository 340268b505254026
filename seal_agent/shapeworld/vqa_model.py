"""Shape world's reference VQA model: a LangChain chat model that sees only pixels.

It stands in for a multimodal LLM such as SEAL's LLaVA-7B VQA model, with that model's
limits made exact: every image in its messages is looked at through
``perceive(image, input_size=336)``, so a 24 px star in a 4000x3000 scene is invisible
in the global view and plain in a crop. It answers the two shape-world question types
(colour; left/right) about shapes it can resolve in what it was shown, reads the VWM's
``... <object> at location [x1,y1,x2,y2]`` lines for positions, names the missing
objects in the reference's exact words otherwise, and names "table" as the likely place
of a target when it sees tables. Asked to pick a lettered option it cannot resolve, it
guesses (deterministically from the prompt), as real models do.

Two ways of seeing (``resolution``), as in ../shared/shape-world.md:

* ``"fixed"`` (default, a LLaVA-1.5 stand-in): every image at longer side ``input_size``
  (336), in the padded-square frame, 576 tokens per image whatever its size.
* ``"native"`` (a Qwen2.5-VL stand-in): every image at its own pixel size, rescaled only
  to stay within [``min_pixels``, ``max_pixels``] and rounded to 28 px (Qwen's
  ``smart_resize``), i.e. in visual tokens of 28x28 px as seen. A shape must span about
  ``native_min_tokens`` (2) tokens, 56 px as seen, to be made out: the perception
  looks at the rescaled image with its acuity (``acuity_px`` model px) mapped onto that
  many tokens. A 36 px crop of a 30 px target becomes 56x56 px (4 tokens) and shows the
  target at 47 px, too few; the same crop enlarged to 448 px shows it at 373 px.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from PIL import Image, UnidentifiedImageError
from pydantic import Field, PrivateAttr

from seal_agent.errors import ChatModelError
from seal_agent.graph.prompts import (
    CUED_LISTING_LINE,
    CUED_LISTING_MARKER,
    MISSING_OBJECTS_PREFIX,
)
from seal_agent.imaging.frames import frame_location
from seal_agent.imaging.geometry import Box
from seal_agent.models.vision_tokens import (
    NATIVE_CROP_SIDE,
    QWEN_MAX_PIXELS,
    QWEN_MIN_PIXELS,
    VisionProfile,
    qwen_tokens,
    smart_resize,
)
from seal_agent.shapeworld.perception import PerceivedObject, Perception, parse_phrase, perceive
from seal_agent.shapeworld.perception.config import DEFAULT_CONFIG

#: One visual token of a Qwen2-VL-style encoder: 14 px patches merged 2x2.
TOKEN_PX = 28

_CONTEXT_QUESTION = re.compile(r"most likely location of the (?P<target>.+?) in the image", re.I)
_COLOUR_QUESTION = re.compile(r"colou?r of the (?P<object>[\w\s-]+?)\s*\?", re.I)
_SPATIAL_QUESTION = re.compile(
    r"is the (?P<first>[\w\s-]+?) on the left or (?:on the )?right side of the "
    r"(?P<second>[\w\s-]+?)\s*\?",
    re.I,
)
_LOCATION = re.compile(
    r"(?P<name>[\w\s-]+?)\s*<object>\s*at location\s*\[\s*(?P<coords>[-\d.,\s]+)\]", re.I
)
_OPTION = re.compile(r"^\s*(?P<letter>[A-Z])\.\s+(?P<text>.+?)\s*$", re.M)
_LETTER_REQUEST = re.compile(r"option'?s letter", re.I)


def _image_data(block: dict[str, Any]) -> str | None:
    """The base64 payload of a standard (v1), legacy (v0) or OpenAI-style image block."""
    data: str | None = None
    kind = block.get("type")
    if kind == "image":
        if block.get("base64"):
            data = block["base64"]
        elif block.get("source_type") == "base64" and block.get("data"):
            data = block["data"]
        elif str(block.get("url", "")).startswith("data:"):
            data = block["url"].split(",", 1)[1]
    elif kind == "image_url":
        url = block.get("image_url")
        url = url.get("url") if isinstance(url, dict) else url
        if isinstance(url, str) and url.startswith("data:"):
            data = url.split(",", 1)[1]
    return data


def _decode(data: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        image.load()
    except (ValueError, OSError, UnidentifiedImageError) as exc:
        raise ChatModelError(f"ReferenceVQAChatModel could not decode an image: {exc}") from exc
    return image.convert("RGB")


class _PerceptionCache:
    """Perceptions of recently seen images: the graph shows the same global view to the
    listing, every context-cue question and the answer. Same pixels, same perception."""

    def __init__(self, size: int = 32) -> None:
        self._entries: OrderedDict[tuple[str, str], tuple[tuple[int, int], Perception]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()
        self._size = size

    def get(
        self, data: str, input_size: Callable[[int, int], int], mode: str
    ) -> tuple[tuple[int, int], Perception]:
        """The perception of an image seen at ``input_size(width, height)`` model px."""
        key = (hashlib.sha1(data.encode("ascii", "ignore")).hexdigest(), mode)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        image = _decode(data)
        value = (image.size, perceive(image, input_size(image.width, image.height)))
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return value


class _Seen:
    """One image of the prompt and what the model perceives in it.

    A crop is about the object at its centre (the VWM cuts each crop around a found
    box): only objects covering the centre count as what a crop shows, as a person
    looking at a close-up names the thing in the middle, not blotches at its edge.
    """

    def __init__(self, size: tuple[int, int], perception: Perception, is_crop: bool) -> None:
        self.size = size
        self.perception = perception
        self.is_crop = is_crop

    def find(self, name: str, threshold: float) -> list[PerceivedObject]:
        found = self.perception.find(name, threshold)
        if not self.is_crop:
            return found
        cx, cy = self.size[0] / 2, self.size[1] / 2
        return [o for o in found if o.box.x1 <= cx <= o.box.x2 and o.box.y1 <= cy <= o.box.y2]


class ReferenceVQAChatModel(BaseChatModel):
    """Pixel-honest stand-in for a multimodal LLM in shape world (see module docstring)."""

    input_size: int = Field(
        336, ge=8, description="fixed mode: longer side the model sees each image at"
    )
    resolution: Literal["fixed", "native"] = Field(
        "fixed",
        description="'fixed': every image at input_size; 'native': at its own size (Qwen-style)",
    )
    min_pixels: int = Field(QWEN_MIN_PIXELS, ge=TOKEN_PX * TOKEN_PX, description="native mode")
    max_pixels: int = Field(QWEN_MAX_PIXELS, ge=TOKEN_PX * TOKEN_PX, description="native mode")
    native_min_tokens: float = Field(
        2.0, gt=0, description="native mode: tokens a shape must span to be half-resolvable"
    )
    resolve_threshold: float = Field(
        0.5, gt=0, lt=1, description="confidence above which a shape counts as made out"
    )
    _perceptions: _PerceptionCache = PrivateAttr(default_factory=_PerceptionCache)

    @property
    def _llm_type(self) -> str:
        return "shapeworld-reference-vqa"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "resolution": self.resolution,
            "resolve_threshold": self.resolve_threshold,
        }

    # -- how it sees ---------------------------------------------------------------------
    def seen_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of an image as the encoder sees it."""
        if self.resolution == "native":
            h, w = smart_resize(height, width, TOKEN_PX, self.min_pixels, self.max_pixels)
            return w, h
        scale = self.input_size / max(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))

    def perception_size(self, width: int, height: int) -> int:
        """The perception's ``input_size`` for an image: in native mode, the seen image
        scaled so that ``native_min_tokens`` tokens are the perception's acuity."""
        if self.resolution == "fixed":
            return self.input_size
        seen = max(self.seen_size(width, height))
        scale = DEFAULT_CONFIG.acuity_px / (self.native_min_tokens * TOKEN_PX)
        return max(8, round(seen * scale))

    def _mode_key(self) -> str:
        return (
            f"{self.resolution}:{self.input_size}:{self.min_pixels}:{self.max_pixels}:"
            f"{self.native_min_tokens}"
        )

    def vision_profile(self) -> VisionProfile:
        """Frame and token cost, as for the real model each mode stands in for."""
        if self.resolution == "native":

            def tokens(width: int, height: int) -> int:
                return qwen_tokens(
                    width, height, min_pixels=self.min_pixels, max_pixels=self.max_pixels
                )

            return VisionProfile("shapeworld-native", "native", NATIVE_CROP_SIDE, tokens, 2048)
        per_image = (self.input_size // 14) ** 2  # a ViT-L/14 at input_size, like LLaVA

        def fixed(width: int, height: int) -> int:
            return per_image

        return VisionProfile(
            "shapeworld-fixed",
            "padded_square",
            self.input_size,
            fixed,
            6 * per_image,
            fixed_cost=True,
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = self.respond(messages)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=reply))])

    # -- reading the prompt -----------------------------------------------------------
    def respond(self, messages: Sequence[BaseMessage]) -> str:
        reply = self._reply(messages)
        if reply.startswith(MISSING_OBJECTS_PREFIX) and any(
            isinstance(m, SystemMessage) and CUED_LISTING_MARKER in m.text for m in messages
        ):
            return self._cued_listing(reply, messages)
        return reply

    def _cued_listing(self, reply: str, messages: Sequence[BaseMessage]) -> str:
        """The cued listing's format: each missing object with the place it saw for it
        (the same knowledge as its answer to the reference's cue question)."""
        names = reply[len(MISSING_OBJECTS_PREFIX) :].strip().rstrip(".").split(", ")
        blocks = [b for m in messages if isinstance(m.content, list) for b in m.content]
        data = next((d for b in blocks if isinstance(b, dict) and (d := _image_data(b))), None)
        tables = data is not None and bool(
            self._perceptions.get(data, self.perception_size, self._mode_key())[1].tables
        )
        lines = [
            CUED_LISTING_LINE.format(target=name, place="on the table") if tables else f"- {name}"
            for name in names
        ]
        return "\n".join([MISSING_OBJECTS_PREFIX, *lines])

    def _reply(self, messages: Sequence[BaseMessage]) -> str:
        images: list[_Seen] = []
        for message in messages:
            if isinstance(message.content, list):
                for block in message.content:
                    if isinstance(block, dict) and (data := _image_data(block)) is not None:
                        size, perception = self._perceptions.get(
                            data, self.perception_size, self._mode_key()
                        )
                        images.append(_Seen(size, perception, is_crop=bool(images)))
        humans = [m for m in messages if isinstance(m, HumanMessage)]
        text = humans[-1].text if humans else ""
        options = [m.group("text") for m in _OPTION.finditer(text)]
        wants_letter = bool(options) and bool(_LETTER_REQUEST.search(text))

        if (context := _CONTEXT_QUESTION.search(text)) is not None:
            return self._context_answer(context.group("target"), images)
        if (spatial := _SPATIAL_QUESTION.search(text)) is not None:
            first, second = spatial.group("first"), spatial.group("second")
            located = self._positions(text, images, [first, second])
            missing = [name for name in (first, second) if name not in located]
            if not missing:
                side = "left" if located[first] < located[second] else "right"
                statement = f"The {first} is on the {side} side of the {second}."
                return self._choose(statement, [f"{side} side"], options, wants_letter, text)
            return self._cannot_see(missing, options, wants_letter, text)
        if (colour_question := _COLOUR_QUESTION.search(text)) is not None:
            name = colour_question.group("object")
            seen = self._best(name, images)
            if seen is not None:
                statement = f"The {name} is {seen.colour}."
                return self._choose(statement, [seen.colour], options, wants_letter, text)
            return self._cannot_see([name], options, wants_letter, text)
        if wants_letter:
            return self._guess(options, text)
        return "I can not tell from the image."

    # -- perception ------------------------------------------------------------------------
    def _matches(self, name: str, seen: _Seen) -> list[PerceivedObject]:
        if parse_phrase(name).kind != "object":
            return []
        return seen.find(name, self.resolve_threshold)

    def _best(self, name: str, images: Sequence[_Seen]) -> PerceivedObject | None:
        found = [o for seen in images for o in self._matches(name, seen)]
        return max(found, key=lambda o: o.confidence, default=None)

    def _positions(
        self, text: str, images: Sequence[_Seen], names: Sequence[str]
    ) -> dict[str, float]:
        """Horizontal centre of each named object in the frame the model sees the global
        image in, where it can see the object (in a crop or the global view).
        """
        located: dict[str, float] = {}
        entries = list(_LOCATION.finditer(text))
        crops = images[1:]
        for index, entry in enumerate(entries):
            coords = [float(v) for v in entry.group("coords").split(",") if v.strip()]
            if len(coords) != 4:
                continue
            entry_shape = parse_phrase(entry.group("name")).shape
            for name in names:
                if name in located or parse_phrase(name).shape != entry_shape:
                    continue
                # The crops come in the order of the location entries; the model trusts a
                # location only for an object it can actually see in that crop.
                crop = crops[index] if len(crops) == len(entries) else None
                visible = (
                    bool(self._matches(name, crop))
                    if crop is not None
                    else any(self._matches(name, s) for s in images)
                )
                if visible:
                    located[name] = (coords[0] + coords[2]) / 2
        if images:
            width, height = images[0].size
            for name in names:
                if name in located:
                    continue
                matches = self._matches(name, images[0])
                if matches:
                    frame = self.vision_profile().frame
                    x1, _, x2, _ = frame_location(Box(*matches[0].box), width, height, frame)
                    located[name] = (x1 + x2) / 2
        return located

    def _context_answer(self, target: str, images: Sequence[_Seen]) -> str:
        if images and images[0].perception.tables:
            return f"The {target} is most likely on the table."
        return f"The {target} could be anywhere; I see no particular place for it."

    # -- answering -------------------------------------------------------------------------
    def _choose(
        self,
        statement: str,
        keys: Sequence[str],
        options: Sequence[str],
        wants_letter: bool,
        prompt: str,
    ) -> str:
        if not options:
            return statement
        for letter_index, option in enumerate(options):
            words = option.lower()
            if any(re.search(rf"\b{re.escape(k.lower())}\b", words) for k in keys):
                return chr(ord("A") + letter_index) if wants_letter else option
        return self._guess(options, prompt) if wants_letter else statement

    def _cannot_see(
        self, missing: Sequence[str], options: Sequence[str], wants_letter: bool, prompt: str
    ) -> str:
        if wants_letter:
            return self._guess(options, prompt)
        return f"{MISSING_OBJECTS_PREFIX} {', '.join(missing)}."

    @staticmethod
    def _guess(options: Sequence[str], prompt: str) -> str:
        digest = hashlib.sha256(prompt.encode()).digest()
        return chr(ord("A") + int.from_bytes(digest[:4], "big") % len(options))


__all__ = ["ReferenceVQAChatModel"]
