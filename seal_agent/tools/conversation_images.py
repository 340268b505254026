"""The calling agent's own images, named by reference instead of copied as base64.

A user's photo sits in the agent's conversation as a content block; a 4000x3000 PNG is
tens of megabytes of base64, which no model can (or should) write into a tool argument.
So the tool's ``image`` may name an image of the conversation ("latest", "image:2"),
resolved here from the agent's messages, which LangGraph injects into the tool.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from seal_agent.errors import InvalidImageError
from seal_agent.imaging.content_blocks import image_from_block, images_in_messages

_LATEST = re.compile(r"^(?:the\s+)?(?:latest|last|most\s+recent)(?:\s+image)?$", re.I)
_FIRST = re.compile(r"^(?:the\s+)?first(?:\s+image)?$", re.I)
_INDEXED = re.compile(r"^image\s*[:#]?\s*(?P<n>-?\d{1,6})$", re.I)

REFERENCE_HELP = (
    "'latest' (the most recent image in this conversation) or 'image:N' (its N-th image, "
    "1 = first, -1 = latest)"
)


def parse_image_reference(text: str) -> int | None:
    """The list index an image reference names (``-1`` for "latest"), or None if none."""
    text = text.strip()
    if _LATEST.match(text):
        return -1
    if _FIRST.match(text):
        return 0
    match = _INDEXED.match(text)
    if match is None:
        return None
    n = int(match.group("n"))
    if n == 0:
        raise InvalidImageError("image:0 names no image; images are numbered from 1 (or -1)")
    return n - 1 if n > 0 else n


def messages_of(state: object) -> list[Any]:
    """The messages of an injected agent state (a dict, an object, or a message list)."""
    if isinstance(state, Mapping):
        messages = state.get("messages")
    elif isinstance(state, list):
        messages = state
    else:
        messages = getattr(state, "messages", None)
    return list(messages) if isinstance(messages, Iterable) else []


def resolve_conversation_image(reference: str, messages: list[Any] | None) -> bytes | str:
    """The image a reference names, read out of the conversation's content blocks.

    Raises ``InvalidImageError`` with a sentence the calling agent can act on when the
    reference is malformed, there is no conversation, or no such image.
    """
    index = parse_image_reference(reference)
    if index is None:
        raise InvalidImageError(f"{reference!r} is not an image reference; use {REFERENCE_HELP}")
    if messages is None:
        raise InvalidImageError(
            f"{reference!r} names an image of the calling agent's conversation, but this call "
            "came without one (call the tool from a LangGraph agent, or pass a path or URL)"
        )
    blocks = images_in_messages(messages)
    if not blocks:
        raise InvalidImageError(
            f"{reference!r} names an image of the conversation, but it holds no image "
            "content block; pass a file path or URL instead"
        )
    if not -len(blocks) <= index < len(blocks):
        raise InvalidImageError(
            f"{reference!r} is out of range: the conversation holds {len(blocks)} image(s)"
        )
    return image_from_block(blocks[index])


__all__ = [
    "REFERENCE_HELP",
    "messages_of",
    "parse_image_reference",
    "resolve_conversation_image",
]
