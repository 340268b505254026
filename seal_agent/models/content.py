"""LangChain messages -> a processor chat conversation plus the PIL images it refers to.

Accepted image blocks (what LangChain users and agents actually send):

* LangChain v1 standard: ``{"type": "image", "base64": ..., "mime_type": ...}`` and
  ``{"type": "image", "url": "data:image/png;base64,..."}``;
* LangChain v0: ``{"type": "image", "source_type": "base64", "data": ...}`` (langchain-core
  normalises these to v1 before ``_generate`` is called, but direct callers of
  ``score_options`` may pass them);
* OpenAI chat format: ``{"type": "image_url", "image_url": {"url": "data:..."}}`` or
  ``{"type": "image_url", "image_url": "data:..."}``;
* a local file: ``url`` of the form ``file:///path/to/image.png``.

Remote http(s) URLs are refused with a clear error rather than fetched: a local model is
often run offline, and fetching arbitrary URLs from inside a tool is a security hazard.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlparse

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from PIL import Image

from seal_agent.errors import ChatModelError, InvalidImageError

#: A decoded image may not exceed this many pixels (PIL's own bomb limit is ~179 MP).
MAX_IMAGE_PIXELS = 200_000_000


def _decode_base64_image(data: str) -> Image.Image:
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImageError(f"image block has invalid base64 data: {exc}") from exc
    return _open_image(io.BytesIO(raw), "base64 image")


def _open_image(source: Any, label: str) -> Image.Image:
    try:
        with Image.open(source) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise InvalidImageError(
                    f"{label} is {image.width}x{image.height}, over {MAX_IMAGE_PIXELS} pixels"
                )
            image.load()
            return image.convert("RGB") if image.mode != "RGB" else image.copy()
    except InvalidImageError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidImageError(f"{label} cannot be decoded as an image: {exc}") from exc


def image_from_url(url: str) -> Image.Image:
    """A data URL or a ``file://`` URL -> RGB image."""
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        if ";base64" not in header:
            raise InvalidImageError("image data URL is not base64-encoded")
        return _decode_base64_image(payload)
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return _open_image(unquote(parsed.path), f"image file {parsed.path!r}")
    raise InvalidImageError(
        f"image URL {url[:60]!r} is not fetched: pass the image as base64 "
        "(LangChain image block with 'base64', or a data: URL) or as a file:// URL"
    )


def image_from_block(block: dict[str, Any]) -> Image.Image | None:
    """The image of a content block, or ``None`` when the block is not an image."""
    kind = block.get("type")
    if kind == "image_url":
        value = block.get("image_url")
        url = value.get("url") if isinstance(value, dict) else value
        if not isinstance(url, str):
            raise InvalidImageError("image_url block has no url")
        return image_from_url(url)
    if kind != "image":
        return None
    if isinstance(block.get("base64"), str):
        return _decode_base64_image(block["base64"])
    if block.get("source_type") == "base64" and isinstance(block.get("data"), str):
        return _decode_base64_image(block["data"])
    if isinstance(block.get("url"), str):
        return image_from_url(block["url"])
    if "file_id" in block or block.get("source_type") == "id":
        raise InvalidImageError("image blocks referring to a provider file id are not supported")
    raise InvalidImageError(f"image block has no base64 data or url (keys: {sorted(block)})")


def _role(message: BaseMessage) -> str:
    if isinstance(message, SystemMessage):
        return "system"
    if isinstance(message, AIMessage):
        return "assistant"
    if isinstance(message, HumanMessage | ToolMessage):
        return "user"
    role = getattr(message, "role", None)  # ChatMessage
    if role in ("system", "user", "assistant"):
        return str(role)
    raise ChatModelError(f"unsupported message type {type(message).__name__}")


def to_conversation(
    messages: Sequence[BaseMessage],
) -> tuple[list[dict[str, Any]], list[Image.Image]]:
    """(conversation for ``processor.apply_chat_template``, images in order of appearance).

    Every content becomes a list of ``{"type": "text"}`` / ``{"type": "image"}`` items,
    the form both LLaVA's and Qwen2.5-VL's chat templates expect; consecutive text
    pieces of one message are joined with a newline, so every template renders them
    the same way.
    """
    if not messages:
        raise ChatModelError("no messages to answer")
    conversation: list[dict[str, Any]] = []
    images: list[Image.Image] = []
    for message in messages:
        content: list[dict[str, Any]] = []
        pieces = message.content if isinstance(message.content, list) else [message.content]
        for piece in pieces:
            if isinstance(piece, str):
                _append_text(content, piece)
                continue
            if not isinstance(piece, dict):
                raise ChatModelError(f"unsupported content piece {type(piece).__name__}")
            if piece.get("type") == "text":
                _append_text(content, str(piece.get("text", "")))
                continue
            image = image_from_block(piece)
            if image is None:
                continue  # reasoning, tool-call or other non-visual blocks carry no input
            images.append(image)
            content.append({"type": "image"})
        conversation.append({"role": _role(message), "content": content})
    return conversation, images


def _append_text(content: list[dict[str, Any]], text: str) -> None:
    if not text:
        return
    if content and content[-1]["type"] == "text":
        content[-1]["text"] += "\n" + text
    else:
        content.append({"type": "text", "text": text})
