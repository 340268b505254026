"""Image inputs become ``ImageRef``s: small, JSON-safe references, never pixels.

A graph checkpoint must never hold pixels (a 12000x9000 scan is 324 MB decoded), yet a
run resumed in a new process must find the same image again. So every input becomes a
plain dict naming a file: the user's own file (checked against the deployment's allowed
roots), or a content-addressed copy of an in-memory input spilled once to the cache
directory after it decoded. A reference is only a claim: ``load_image`` re-validates it.
"""

from __future__ import annotations

import binascii
import hashlib
import io
import os
import re
from pathlib import Path
from typing import Literal, TypedDict, TypeGuard

from PIL import Image

from seal_agent.errors import InvalidImageError
from seal_agent.imaging.cache import image_cache, verified_files
from seal_agent.imaging.content_blocks import decode_base64
from seal_agent.imaging.decoding import decode_bytes, pyramid_from_pil
from seal_agent.imaging.paths import resolve_allowed_path
from seal_agent.imaging.policy import DEFAULT_MAX_IMAGE_PIXELS, ImagePolicy
from seal_agent.imaging.pyramid import ImagePyramid
from seal_agent.imaging.spill import evict, spill_path, write_once

ImageOrigin = Literal["path", "memory", "url"]
ImageInput = str | os.PathLike[str] | bytes | bytearray | memoryview | Image.Image | dict
ORIGINS: tuple[str, ...] = ("path", "memory", "url")


class ImageRef(TypedDict, total=False):
    """What the graph state holds instead of pixels (JSON/msgpack-safe).

    ``uri`` is an absolute local path, except for an http(s) image that has not been
    fetched yet (``origin="url"``, no ``width``). ``digest`` is the sha256 of the file's
    bytes, computed by this package when it read them.
    """

    uri: str
    origin: ImageOrigin
    digest: str
    source_url: str
    width: int
    height: int


_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?),", re.I)
_REF_FIELDS = {"uri": str, "origin": str, "digest": str, "source_url": str}
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
#: Longest text field of a reference (a path, a URL).
_MAX_FIELD_CHARS = 4096


def is_image_ref(value: object) -> TypeGuard[ImageRef]:
    return isinstance(value, dict) and isinstance(value.get("uri"), str) and "origin" in value


def content_key(digest: str) -> str:
    """Key of verified content in the decoded-image cache."""
    return f"sha256:{digest}"


def sanitize_ref(value: object) -> ImageRef:
    """A copy of a caller's reference with only well-typed known fields (still untrusted)."""
    if not is_image_ref(value):
        raise InvalidImageError(f"not an image reference: {type(value).__name__}")
    ref: dict[str, object] = {}
    for name, kind in _REF_FIELDS.items():
        field = value.get(name)
        if field is not None:
            if not isinstance(field, kind) or len(field) > _MAX_FIELD_CHARS:
                raise InvalidImageError(f"the image reference's {name!r} is malformed")
            ref[name] = field
    if ref["origin"] not in ORIGINS:
        raise InvalidImageError(f"the image reference's origin must be one of {ORIGINS}")
    digest = ref.get("digest")
    if digest is not None and not _DIGEST.match(str(digest)):
        raise InvalidImageError("the image reference's digest is not a sha256 hex digest")
    return ImageRef(**ref)  # type: ignore[typeddict-item]


def to_image_ref(
    source: ImageInput,
    *,
    policy: ImagePolicy | None = None,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    cache_dir: str | os.PathLike[str] | None = None,
) -> ImageRef:
    """A reference for any accepted input, without keeping pixels in it.

    Local paths are resolved and checked against the policy's allowed roots (decoding
    waits for ``load_image``); bytes, data URLs and PIL images are decoded within the
    policy's limits and then spilled once under their content hash; http(s) URLs are
    returned unfetched (whether they may be fetched is the policy's ``allow_urls``).
    """
    if policy is None:
        policy = ImagePolicy(
            max_pixels=max_pixels, cache_dir=Path(cache_dir) if cache_dir else None
        )
    if isinstance(source, dict):
        return sanitize_ref(source)
    if isinstance(source, Image.Image):
        return _ref_from_pil(source, policy)
    if isinstance(source, bytes | bytearray | memoryview):
        return ref_from_bytes(bytes(source), "image bytes", policy)
    if isinstance(source, os.PathLike):
        return _ref_from_path(os.fspath(source), policy)
    if isinstance(source, str):
        text = source.strip()
        if not text:
            raise InvalidImageError("the image is an empty string; pass a path, URL or image")
        if text[:5].lower() == "data:":
            return ref_from_bytes(_decode_data_url(text), "the data-URL image", policy)
        if re.match(r"^https?://", text, re.I):
            if len(text) > _MAX_FIELD_CHARS:  # a reference's fields are at most this long
                raise InvalidImageError(
                    f"the image URL is {len(text)} characters long, above the limit of "
                    f"{_MAX_FIELD_CHARS}"
                )
            return ImageRef(uri=text, origin="url", source_url=text)
        if re.match(r"^[a-z][a-z0-9+.-]*://", text, re.I):
            raise InvalidImageError(
                f"unsupported image URL scheme in {text[:40]!r}: use a local path, "
                "an http(s) URL or a base64 data URL"
            )
        return _ref_from_path(text, policy)
    raise InvalidImageError(
        f"unsupported image input of type {type(source).__name__}: pass a file path, "
        "a PIL image, raw image bytes, a base64 data URL or an http(s) URL"
    )


def _ref_from_path(raw: str, policy: ImagePolicy) -> ImageRef:
    if len(raw) > 1024 and os.sep not in raw[:256]:
        raise InvalidImageError(
            "the image string is neither an existing file nor a URL; to pass base64 data "
            "use a data URL such as 'data:image/png;base64,...'"
        )
    real = resolve_allowed_path(raw, policy.allowed_roots, also=(policy.spill_dir(),))
    return ImageRef(uri=str(real), origin="path")


def _decode_data_url(text: str) -> bytes:
    match = _DATA_URL.match(text[:512])
    if match is None or ";base64" not in (match.group("params") or "").lower():
        raise InvalidImageError("a data-URL image must look like 'data:image/png;base64,...'")
    try:
        return decode_base64(text, match.end())
    except (binascii.Error, ValueError) as exc:
        raise InvalidImageError(f"the data-URL image is not valid base64: {exc}") from exc


def _format_of(data: bytes) -> str | None:
    head = data[:12]
    if head.startswith(b"\xff\xd8"):
        return "JPEG"
    if head.startswith(b"\x89PNG"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:3] == b"GIF":
        return "GIF"
    if head[:2] == b"BM":
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    return None


def store_decoded(data: bytes, digest: str, pyramid: ImagePyramid, policy: ImagePolicy) -> ImageRef:
    """Spill bytes that decoded to ``pyramid``; cache the pixels; bound the folder."""
    path = spill_path(policy, digest, _format_of(data))
    write_once(path, data)
    image_cache().put(content_key(digest), pyramid)
    try:
        st = os.stat(path)
        verified_files().put((str(path), st.st_dev, st.st_ino, st.st_size, 0), digest)
    except OSError:
        pass
    evict(policy)
    return ImageRef(
        uri=str(path), origin="memory", digest=digest, width=pyramid.width, height=pyramid.height
    )


def ref_from_bytes(data: bytes, what: str, policy: ImagePolicy) -> ImageRef:
    """Decode (within limits) and spill an encoded image held in memory."""
    if not data:
        raise InvalidImageError(f"{what} is empty (zero bytes): not an image")
    if len(data) > policy.max_file_bytes:
        raise InvalidImageError(
            f"{what} is {len(data) / 2**20:.0f} MiB, above the limit of "
            f"{policy.max_file_bytes / 2**20:.0f} MiB (SealConfig.max_file_bytes)"
        )
    digest = hashlib.sha256(data).hexdigest()
    pyramid = image_cache().get_or_load(
        content_key(digest), lambda: decode_bytes(data, policy, what)
    )
    return store_decoded(data, digest, pyramid, policy)


def _ref_from_pil(image: Image.Image, policy: ImagePolicy) -> ImageRef:
    pyramid = pyramid_from_pil(image, policy, "the PIL image")
    buffer = io.BytesIO()
    try:
        pyramid.image.save(buffer, format="PNG", compress_level=1)
    except (OSError, ValueError) as exc:
        raise InvalidImageError(f"cannot use the PIL image: {exc}") from exc
    data = buffer.getvalue()
    del buffer
    return store_decoded(data, hashlib.sha256(data).hexdigest(), pyramid, policy)


__all__ = [
    "ORIGINS",
    "ImageInput",
    "ImageOrigin",
    "ImageRef",
    "content_key",
    "is_image_ref",
    "ref_from_bytes",
    "sanitize_ref",
    "store_decoded",
    "to_image_ref",
]
