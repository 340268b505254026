"""Images inside chat content blocks, as agents and chat APIs carry them.

An agent's conversation holds the user's photo as a content block, in one of a few
shapes: LangChain's standard block (``{"type": "image", "base64" | "url": ...}``, or the
older ``source_type`` form), OpenAI's ``{"type": "image_url", "image_url": {"url": ...}}``,
Anthropic's ``{"type": "image", "source": {...}}`` and MCP's
``{"type": "image", "data": ..., "mimeType": ...}``. This module reads the image out of
any of them as an input ``to_image_ref`` accepts (raw bytes or a URL string), so nobody
has to copy base64 into a tool argument.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

from seal_agent.errors import InvalidImageError

#: Block ``type`` values that carry an image.
IMAGE_BLOCK_TYPES = frozenset({"image", "image_url", "input_image"})


def is_image_block(value: object) -> bool:
    """Whether ``value`` is a content block holding an image (not an ``ImageRef``)."""
    return (
        isinstance(value, Mapping)
        and value.get("type") in IMAGE_BLOCK_TYPES
        and "uri" not in value  # an ImageRef never has a "type"; be explicit anyway
    )


#: Base64 characters handled per step (a multiple of 4). Every whole-string operation
#: (slicing, encoding, ``b64decode``) holds the GIL for its whole input: on a 30 MB data
#: URL each one would freeze an event loop running in another thread for tens of
#: milliseconds, so the text is read in 256 KiB steps, between which the loop runs.
_B64_STEP = 1 << 18
_WHITESPACE = (b"\n", b" ", b"\r", b"\t")
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
#: The URL-safe alphabet's two characters, read as the standard ones.
_URL_SAFE = bytes.maketrans(b"-_", b"+/")


def decode_base64(text: str | bytes, start: int = 0) -> bytes:
    """Base64 from ``text[start:]`` to bytes, stepwise (whitespace ignored, padding optional).

    Any other character is an error (``binascii.Error``): dropping it, as ``b64decode``
    does, turns garbage into a few stray bytes, reported later as a broken image.
    """
    parts: list[bytes] = []
    carry = b""
    for i in range(start, len(text), _B64_STEP):
        piece = text[i : i + _B64_STEP]
        if isinstance(piece, str):
            if not piece.isascii():
                raise binascii.Error("it holds a non-ASCII character")
            piece = piece.encode("ascii")
        raw = piece.translate(_URL_SAFE)
        if any(c in raw for c in _WHITESPACE):
            raw = b"".join(raw.split())
        if raw.translate(None, _ALPHABET):
            bad = raw.translate(None, _ALPHABET)[:1]
            raise binascii.Error(f"it holds the character {bad.decode('latin-1')!r}")
        raw = carry + raw
        cut = len(raw) - len(raw) % 4
        parts.append(base64.b64decode(raw[:cut], validate=False))
        carry = raw[cut:]
    if carry.rstrip(b"="):
        carry = carry.rstrip(b"=")
        parts.append(base64.b64decode(carry + b"=" * (-len(carry) % 4), validate=False))
    decoded = b"".join(parts)
    if not decoded and len(text) > start:
        raise binascii.Error("it holds no data, only padding")
    return decoded


def is_data_url(value: object) -> bool:
    return isinstance(value, str) and value[:5].lower() == "data:"


def data_url_bytes(text: str) -> bytes:
    """The payload of a base64 data URL (``data:image/png;base64,...``)."""
    comma = text.find(",", 0, 512)
    if comma < 0 or ";base64" not in text[:comma].lower():
        raise InvalidImageError("a data-URL image must look like 'data:image/png;base64,...'")
    try:
        return decode_base64(text, comma + 1)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImageError(f"the data-URL image is not valid base64: {exc}") from exc


def _b64(data: object, what: str) -> bytes:
    if not isinstance(data, str | bytes) or not data:
        raise InvalidImageError(f"{what} has no base64 data")
    if isinstance(data, str) and is_data_url(data):
        return data_url_bytes(data)
    try:
        return decode_base64(data)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImageError(f"{what} is not valid base64: {exc}") from exc


def _url(value: object, what: str) -> str:
    if isinstance(value, Mapping):
        value = value.get("url")
    if not isinstance(value, str) or not value.strip():
        raise InvalidImageError(f"{what} has no image URL")
    return value.strip()


def _decoded(url: str) -> bytes | str:
    return data_url_bytes(url) if is_data_url(url) else url


def image_from_block(block: Mapping[str, Any]) -> bytes | str:
    """The image in a content block: decoded bytes, or a URL (http(s) or data URL).

    Raises ``InvalidImageError`` naming the problem for a block without a usable image
    (e.g. a provider ``file_id``, which only that provider can resolve).
    """
    kind = block.get("type")
    what = f"the {kind!r} content block"
    source_type = block.get("source_type")  # LangChain v0 standard block
    if kind == "image_url":  # OpenAI chat completions
        return _decoded(_url(block.get("image_url"), what))
    if kind == "input_image":  # OpenAI responses API
        if block.get("image_url"):
            return _decoded(_url(block.get("image_url"), what))
    elif kind == "image":
        source = block.get("source")
        if isinstance(source, Mapping):  # Anthropic
            if source.get("type") == "base64":
                return _b64(source.get("data"), what)
            if source.get("type") == "url":
                return _decoded(_url(source.get("url"), what))
        if source_type == "base64" or block.get("base64") or block.get("data"):
            return _b64(block.get("base64") or block.get("data"), what)
        if source_type == "url" or block.get("url"):
            return _decoded(_url(block.get("url"), what))
    else:
        raise InvalidImageError(f"{what} is not an image block")
    if block.get("file_id") or block.get("id") or source_type == "id":
        raise InvalidImageError(
            f"{what} refers to a provider-side file id, which only that provider can read; "
            "pass the image itself (base64 or a URL)"
        )
    raise InvalidImageError(f"{what} holds no image data or URL")


def unwrap_image_input(image: object) -> object:
    """An image input with content blocks and data URLs turned into bytes or a URL.

    Anything else is returned as it is, for ``to_image_ref`` to judge.
    """
    if is_image_block(image):
        return image_from_block(image)  # type: ignore[arg-type]
    if is_data_url(image):
        return data_url_bytes(image)  # type: ignore[arg-type]
    return image


def _content_of(message: object) -> object:
    if isinstance(message, Mapping):
        return message.get("content")
    return getattr(message, "content", None)


def images_in_messages(messages: Iterable[object]) -> list[Mapping[str, Any]]:
    """Every image block in a conversation, oldest first (messages or message dicts)."""
    found: list[Mapping[str, Any]] = []
    for message in messages:
        content = _content_of(message)
        if isinstance(content, list):
            found.extend(b for b in content if is_image_block(b))
    return found


__all__ = [
    "IMAGE_BLOCK_TYPES",
    "data_url_bytes",
    "decode_base64",
    "image_from_block",
    "images_in_messages",
    "is_data_url",
    "is_image_block",
    "unwrap_image_input",
]
