"""References back into pixels: validated, verified, decoded once, cached.

A reference coming from outside (the input, a checkpoint) is never trusted: its file
must lie in the cache directory (in-memory and downloaded images) or, for a local path,
inside the deployment's allowed roots; its bytes are hashed before their pixels are
used or cached, and a digest it claims must match. The decoded pyramid is cached under
that verified hash, so the nodes and search branches of one run decode the image once.

This module also re-exports the imaging API older callers import from here.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Literal, cast

from PIL import Image

from seal_agent.errors import InvalidImageError
from seal_agent.imaging.cache import (
    DEFAULT_CACHE_BYTES,
    DecodedImageCache,
    image_cache,
    verified_files,
)
from seal_agent.imaging.decoding import check_pixels, decode_bytes, decode_cost
from seal_agent.imaging.fetching import fetch_url
from seal_agent.imaging.geometry import Box
from seal_agent.imaging.paths import is_within, read_regular_file, resolve_allowed_path
from seal_agent.imaging.policy import (
    DEFAULT_MAX_DOWNLOAD_BYTES,
    DEFAULT_MAX_IMAGE_PIXELS,
    ImagePolicy,
    default_cache_dir,
)
from seal_agent.imaging.pyramid import ImagePyramid
from seal_agent.imaging.refs import (
    ImageInput,
    ImageOrigin,
    ImageRef,
    content_key,
    is_image_ref,
    sanitize_ref,
    store_decoded,
    to_image_ref,
)
from seal_agent.imaging.spill import touch


def cache_key(ref: ImageRef) -> str:
    """Key of a (loaded) reference in the decoded-image cache: its verified content."""
    if ref.get("digest"):
        return content_key(ref["digest"])
    if ref.get("origin") == "url":
        return f"url:{ref['uri']}"
    try:
        st = os.stat(ref["uri"])
    except FileNotFoundError as exc:
        raise InvalidImageError(f"image file not found: {ref['uri']}") from exc
    except (OSError, ValueError) as exc:
        raise InvalidImageError(f"cannot access image file {ref['uri']}: {exc}") from exc
    return f"path:{ref['uri']}:{st.st_size}:{st.st_mtime_ns}"


def _legacy_policy(
    max_pixels: int | None,
    allow_urls: bool | None,
    cache_dir: str | os.PathLike[str] | None,
    url_timeout_s: float | None,
    max_download_bytes: int | None,
) -> ImagePolicy:
    fields = {
        "max_pixels": max_pixels,
        "allow_urls": allow_urls,
        "cache_dir": Path(cache_dir) if cache_dir else None,
        "url_timeout_s": url_timeout_s,
        "max_download_bytes": max_download_bytes,
    }
    return ImagePolicy(**{k: v for k, v in fields.items() if v is not None})


def load_image(
    ref: ImageRef,
    policy: ImagePolicy | None = None,
    *,
    max_pixels: int | None = None,
    allow_urls: bool | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    url_timeout_s: float | None = None,
    max_download_bytes: int | None = None,
) -> tuple[ImageRef, ImagePyramid]:
    """The decoded image of a reference, and the reference completed (digest, size).

    ``policy`` holds the deployment's rules (the keyword arguments build one for older
    callers). An unfetched URL is downloaded here, only when the policy allows it, and
    spilled like any in-memory input.
    """
    if policy is None:
        policy = _legacy_policy(
            max_pixels, allow_urls, cache_dir, url_timeout_s, max_download_bytes
        )
    ref = sanitize_ref(ref)
    if ref["origin"] == "url" and not ref.get("digest"):
        return _load_url(ref["uri"], policy)
    uri = ref["uri"]
    if "\x00" not in uri and not os.path.isabs(uri):
        raise InvalidImageError(
            f"the image reference's uri must be an absolute local path, got {uri[:60]!r}"
        )
    spill_dir = policy.spill_dir()
    # Without allowed roots (a user's own program) any file may be named; the hash is
    # still verified. With roots, spilled images must be in the cache directory.
    roots = policy.allowed_roots
    if ref["origin"] != "path" and roots is not None:
        roots = ()
    real = resolve_allowed_path(uri, roots, also=(spill_dir,))
    what = ref.get("source_url") or str(real)
    claimed = ref.get("digest")
    pyramid: ImagePyramid | None = None
    try:
        st = os.stat(real)
    except OSError as exc:
        raise InvalidImageError(f"image file not found: {what}") from exc
    spilled = is_within(real, spill_dir)
    digest = verified_files().get(_identity(real, st, spilled))
    if digest is not None and (claimed is None or claimed == digest):
        pyramid = image_cache().get(content_key(digest))
    if pyramid is None:
        data, st = read_regular_file(real, policy.max_file_bytes, what)
        digest = hashlib.sha256(data).hexdigest()
        if claimed is not None and claimed != digest:
            raise InvalidImageError(
                f"the image file {what} does not match the content hash in its reference "
                "(the file changed since the run started, or the reference was forged)"
            )
        verified_files().put(_identity(real, st, spilled), digest)
        pyramid = image_cache().get_or_load(
            content_key(digest), lambda: decode_bytes(data, policy, what)
        )
        del data
    elif claimed is not None and claimed != digest:
        raise InvalidImageError(
            f"the image file {what} does not match the content hash in its reference "
            "(the file changed since the run started, or the reference was forged)"
        )
    _check_within_policy(pyramid, policy, what)
    if spilled:
        touch(real)
    assert digest is not None
    loaded = cast(
        ImageRef,
        {
            **ref,
            "uri": str(real),
            "digest": digest,
            "width": pyramid.width,
            "height": pyramid.height,
        },
    )
    return loaded, pyramid


def _identity(real: Path, st: os.stat_result, spilled: bool) -> tuple[str, int, int, int, int]:
    """A file's identity for the verified-hash memo.

    A spilled file is written once under its hash and replaced only by a rename (a new
    inode); its mtime is the spill cache's LRU clock, so it is left out of the identity.
    """
    return (str(real), st.st_dev, st.st_ino, st.st_size, 0 if spilled else st.st_mtime_ns)


def _check_within_policy(pyramid: ImagePyramid, policy: ImagePolicy, what: str) -> None:
    """A cached image decoded under another graph's limits must fit this one's too."""
    check_pixels(pyramid.width, pyramid.height, policy.max_pixels, what)
    if decode_cost("RGB", pyramid.width, pyramid.height) > policy.max_decoded_bytes:
        raise InvalidImageError(
            f"{what} ({pyramid.width}x{pyramid.height}) is above this deployment's limit of "
            f"{policy.max_decoded_bytes / 2**20:.0f} MiB decoded (SealConfig.max_decoded_bytes)"
        )


def _load_url(url: str, policy: ImagePolicy) -> tuple[ImageRef, ImagePyramid]:
    if not re.match(r"^https?://", url, re.I):
        raise InvalidImageError(f"the image reference's URL must be http(s), got {url[:40]!r}")
    data = fetch_url(url, policy)
    what = f"the image at {url[:80]}"
    digest = hashlib.sha256(data).hexdigest()
    pyramid = image_cache().get_or_load(
        content_key(digest), lambda: decode_bytes(data, policy, what)
    )
    spilled = store_decoded(data, digest, pyramid, policy)
    _check_within_policy(pyramid, policy, what)
    return cast(ImageRef, {**spilled, "origin": "url", "source_url": url}), pyramid


# -- encoding for chat models ------------------------------------------------------------
_ENCODED_LOCK = threading.Lock()
_ENCODED: OrderedDict[tuple[str, int, str, Hashable], str] = OrderedDict()
_ENCODED_MAX = 16


def encode_image(image: Image.Image, image_format: Literal["png", "jpeg"] = "png") -> str:
    """Base64 of a small image (a view or a crop) in PNG or JPEG."""
    buffer = io.BytesIO()
    if image_format == "jpeg":
        image.convert("RGB").save(buffer, format="JPEG", quality=90)
    else:
        image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def encoded_global_view(
    ref: ImageRef,
    pyramid: ImagePyramid,
    max_side: int,
    image_format: Literal["png", "jpeg"] = "png",
    *,
    prepare: Callable[[Image.Image], Image.Image] | None = None,
    variant: Hashable = None,
) -> str:
    """Base64 of the whole image downscaled to ``max_side``, memoised per image.

    The listing, every contextual-cue question and the final answer all show the chat
    model the same global view; it is resized and encoded once. ``prepare`` turns the
    view into what a model sees (a square pad, say); ``variant`` names that preparation
    in the memo's key.
    """
    side = min(max_side, max(pyramid.width, pyramid.height))
    key = (cache_key(ref), side, image_format, variant)
    with _ENCODED_LOCK:
        if key in _ENCODED:
            _ENCODED.move_to_end(key)
            return _ENCODED[key]
    view, _ = pyramid.view(Box.full(pyramid.width, pyramid.height), side)
    encoded = encode_image(view if prepare is None else prepare(view), image_format)
    with _ENCODED_LOCK:
        _ENCODED[key] = encoded
        while len(_ENCODED) > _ENCODED_MAX:
            _ENCODED.popitem(last=False)
    return encoded


__all__ = [
    "DEFAULT_CACHE_BYTES",
    "DEFAULT_MAX_DOWNLOAD_BYTES",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DecodedImageCache",
    "ImageInput",
    "ImageOrigin",
    "ImagePolicy",
    "ImageRef",
    "cache_key",
    "default_cache_dir",
    "encode_image",
    "encoded_global_view",
    "image_cache",
    "is_image_ref",
    "load_image",
    "to_image_ref",
]
