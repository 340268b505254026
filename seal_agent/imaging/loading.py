"""Turn whatever a user passes as an image into a small reference, and back into pixels.

A graph checkpoint must never hold pixels (a 12000x9000 scan is 324 MB decoded), yet a
run resumed in a new process must find the same image again. So every input becomes an
``ImageRef``: a plain dict naming a file (the user's own file, or a content-addressed
copy of an in-memory input spilled once to a cache directory) plus its size. Decoded
images live in a process-level LRU cache of ``ImagePyramid``s keyed by the reference,
so the nodes and search branches of one run decode the image once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import re
import tempfile
import threading
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypedDict, TypeGuard, cast

from PIL import Image, ImageOps, UnidentifiedImageError

from seal_agent.errors import InvalidImageError
from seal_agent.imaging.geometry import Box
from seal_agent.imaging.pyramid import ImagePyramid

#: Default limit on decoded pixels: a 12000x12000 scan (144 MP) loads, a decompression
#: bomb does not. PIL's own default (89 MP, error at 178 MP) is replaced by this one.
DEFAULT_MAX_IMAGE_PIXELS = 200_000_000
#: Default limit on bytes downloaded for an http(s) image.
DEFAULT_MAX_DOWNLOAD_BYTES = 200 * 1024 * 1024
#: Default budget of the decoded-image cache (RGB bytes of all cached pyramids).
DEFAULT_CACHE_BYTES = 2 * 1024**3

ImageOrigin = Literal["path", "memory", "url"]
ImageInput = str | os.PathLike[str] | bytes | bytearray | memoryview | Image.Image | dict


class ImageRef(TypedDict, total=False):
    """What the graph state holds instead of pixels (JSON/msgpack-safe).

    ``uri`` is an absolute local path, except for an http(s) image that has not been
    fetched yet (``origin="url"``, no ``width``). ``digest`` (sha256) names spilled
    in-memory inputs and downloads; local files are keyed by path, size and mtime.
    """

    uri: str
    origin: ImageOrigin
    digest: str
    source_url: str
    width: int
    height: int


_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?),", re.I)
_SUFFIX_BY_FORMAT = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp"}


# -- cache directory ---------------------------------------------------------------------
def default_cache_dir() -> Path:
    """``$SEAL_AGENT_CACHE_DIR``, else ``$XDG_CACHE_HOME/seal-agent`` or ``~/.cache/seal-agent``."""
    env = os.environ.get("SEAL_AGENT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "seal-agent"


def _spill_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir else default_cache_dir()


def _write_once(path: Path, data: bytes | Callable[[io.BufferedWriter], None]) -> None:
    """Write a content-addressed file atomically, unless it already exists."""
    if path.exists():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".spill-")
        with os.fdopen(fd, "wb") as fh:
            if isinstance(data, bytes):
                fh.write(data)
            else:
                data(fh)
        os.replace(tmp, path)
    except OSError as exc:
        raise InvalidImageError(
            f"cannot store an in-memory image in the cache directory {path.parent}: {exc} "
            "(set SealConfig.cache_dir or $SEAL_AGENT_CACHE_DIR to a writable folder)"
        ) from exc


# -- PIL's own pixel limit ---------------------------------------------------------------
_PIL_LIMIT_LOCK = threading.Lock()


def _open_unlimited(fp: Any) -> Image.Image:
    """``Image.open`` (header only) without PIL's decompression-bomb check.

    PIL warns above 89 MP and refuses above 178 MP, which would reject ordinary large
    scans; the caller applies its own configurable limit right after, before decoding.
    The global is swapped back within the header parse, under a lock.
    """
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(fp)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _check_size(width: int, height: int, max_pixels: int, what: str) -> None:
    if width < 1 or height < 1:
        raise InvalidImageError(f"{what} has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InvalidImageError(
            f"{what} is {width}x{height} = {width * height / 1e6:.1f} MP, above the limit of "
            f"{max_pixels / 1e6:.1f} MP (raise SealConfig.max_image_pixels to allow it)"
        )


def _decode(fp: Any, what: str, max_pixels: int) -> Image.Image:
    """Open, size-check, fully decode and orient an encoded image."""
    try:
        image = _open_unlimited(fp)
    except FileNotFoundError as exc:
        raise InvalidImageError(f"image file not found: {what}") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError(f"{what} is not an image PIL can read") from exc
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidImageError(f"cannot open {what}: {exc}") from exc
    _check_size(image.width, image.height, max_pixels, what)
    try:
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InvalidImageError(f"{what} is corrupt or truncated: {exc}") from exc
    return image


def _oriented(image: Image.Image) -> Image.Image:
    """Apply EXIF orientation to a caller's image without copying it when upright."""
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:  # a malformed EXIF block must not make an image unusable
        orientation = 1
    return ImageOps.exif_transpose(image) if orientation not in (1, None) else image


# -- input -> reference ------------------------------------------------------------------
def is_image_ref(value: object) -> TypeGuard[ImageRef]:
    return isinstance(value, dict) and isinstance(value.get("uri"), str) and "origin" in value


def to_image_ref(
    source: ImageInput,
    *,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    cache_dir: str | os.PathLike[str] | None = None,
) -> ImageRef:
    """A reference for any accepted input, cheaply, without keeping pixels.

    Local paths are only checked to exist (decoding waits for ``load_image``); bytes,
    data URLs and PIL images are spilled once to ``cache_dir`` under their content
    hash; http(s) URLs are returned unfetched (whether they may be fetched is decided
    by the caller's settings when the image is loaded).
    """
    if is_image_ref(source):
        return cast(ImageRef, dict(source))
    if isinstance(source, Image.Image):
        return _ref_from_pil(source, max_pixels=max_pixels, cache_dir=cache_dir)
    if isinstance(source, bytes | bytearray | memoryview):
        return _ref_from_bytes(bytes(source), "image bytes", max_pixels, cache_dir)
    if isinstance(source, os.PathLike):
        return _ref_from_path(Path(source))
    if isinstance(source, str):
        text = source.strip()
        if not text:
            raise InvalidImageError("the image is an empty string; pass a path, URL or image")
        if text[:5].lower() == "data:":
            return _ref_from_bytes(
                _decode_data_url(text), "the data-URL image", max_pixels, cache_dir
            )
        if re.match(r"^https?://", text, re.I):
            return ImageRef(uri=text, origin="url", source_url=text)
        if re.match(r"^[a-z][a-z0-9+.-]*://", text, re.I):
            raise InvalidImageError(
                f"unsupported image URL scheme in {text[:40]!r}: use a local path, "
                "an http(s) URL or a base64 data URL"
            )
        return _ref_from_path(Path(text))
    raise InvalidImageError(
        f"unsupported image input of type {type(source).__name__}: pass a file path, "
        "a PIL image, raw image bytes, a base64 data URL or an http(s) URL"
    )


def _ref_from_path(path: Path) -> ImageRef:
    raw = str(path)
    if len(raw) > 1024 and os.sep not in raw[:256]:
        raise InvalidImageError(
            "the image string is neither an existing file nor a URL; to pass base64 data "
            "use a data URL such as 'data:image/png;base64,...'"
        )
    path = path.expanduser()
    try:
        resolved = path.resolve()
        if not resolved.exists():
            raise InvalidImageError(f"image file not found: {path}")
        if not resolved.is_file():
            raise InvalidImageError(f"image path is not a file: {path}")
    except OSError as exc:
        raise InvalidImageError(f"cannot access image file {path}: {exc}") from exc
    return ImageRef(uri=str(resolved), origin="path")


def _decode_data_url(text: str) -> bytes:
    match = _DATA_URL.match(text)
    if match is None or ";base64" not in (match.group("params") or "").lower():
        raise InvalidImageError("a data-URL image must look like 'data:image/png;base64,...'")
    payload = text[match.end() :]
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImageError(f"the data-URL image is not valid base64: {exc}") from exc


def _ref_from_bytes(
    data: bytes, what: str, max_pixels: int, cache_dir: str | os.PathLike[str] | None
) -> ImageRef:
    if not data:
        raise InvalidImageError(f"{what} is empty (zero bytes)")
    # Identify and size-check from the header before spilling anything to disk.
    try:
        header = _open_unlimited(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise InvalidImageError(f"{what} is not an image PIL can read") from exc
    except (OSError, ValueError) as exc:
        raise InvalidImageError(f"cannot open {what}: {exc}") from exc
    _check_size(header.width, header.height, max_pixels, what)
    suffix = _SUFFIX_BY_FORMAT.get(header.format or "", ".img")
    digest = hashlib.sha256(data).hexdigest()
    path = _spill_dir(cache_dir) / "images" / digest[:2] / f"{digest}{suffix}"
    _write_once(path, data)
    return ImageRef(uri=str(path), origin="memory", digest=digest)


def _ref_from_pil(
    image: Image.Image, *, max_pixels: int, cache_dir: str | os.PathLike[str] | None
) -> ImageRef:
    _check_size(image.width, image.height, max_pixels, "the PIL image")
    try:
        pyramid = ImagePyramid(_oriented(image))
    except InvalidImageError:
        raise
    except (OSError, ValueError) as exc:
        raise InvalidImageError(f"cannot use the PIL image: {exc}") from exc
    rgb = pyramid.image
    digest = _pixel_digest(rgb)
    path = _spill_dir(cache_dir) / "images" / digest[:2] / f"{digest}.png"
    _write_once(path, lambda fh: rgb.save(fh, format="PNG", compress_level=1))
    ref = ImageRef(
        uri=str(path), origin="memory", digest=digest, width=rgb.width, height=rgb.height
    )
    # The caller already holds the decoded pixels: cache them, no need to read the file.
    image_cache().put(cache_key(ref), pyramid)
    return ref


def _pixel_digest(rgb: Image.Image, stripe_bytes: int = 16 * 1024 * 1024) -> str:
    """sha256 of the RGB pixels, hashed in row stripes (no whole-image byte copy)."""
    h = hashlib.sha256(f"RGB:{rgb.width}x{rgb.height}:".encode())
    rows = max(1, stripe_bytes // (3 * rgb.width))
    for y in range(0, rgb.height, rows):
        h.update(rgb.crop((0, y, rgb.width, min(rgb.height, y + rows))).tobytes())
    return h.hexdigest()


# -- reference -> pixels -----------------------------------------------------------------
def cache_key(ref: ImageRef) -> str:
    """Key of a reference in the decoded-image cache.

    Spilled inputs are content-addressed; a local file is keyed by path, size and mtime
    so that an edited file is decoded again.
    """
    if ref.get("digest"):
        return f"sha256:{ref['digest']}"
    uri = ref["uri"]
    if ref.get("origin") == "url":
        return f"url:{uri}"
    try:
        st = os.stat(uri)
    except FileNotFoundError as exc:
        raise InvalidImageError(f"image file not found: {uri}") from exc
    except OSError as exc:
        raise InvalidImageError(f"cannot access image file {uri}: {exc}") from exc
    return f"path:{uri}:{st.st_size}:{st.st_mtime_ns}"


def load_image(
    ref: ImageRef,
    *,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    allow_urls: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    url_timeout_s: float = 20.0,
    max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
) -> tuple[ImageRef, ImagePyramid]:
    """The decoded image of a reference (cached), and the reference completed with its size.

    An unfetched URL is downloaded here (only when ``allow_urls``) and spilled like any
    in-memory input, so the returned reference points at a local file.
    """
    if not is_image_ref(ref):
        raise InvalidImageError(f"not an image reference: {type(ref).__name__}")
    if ref["origin"] == "url" and not ref.get("digest"):
        url = ref["uri"]
        if not allow_urls:
            raise InvalidImageError(
                f"image URLs are disabled: {url[:80]} was not fetched (set "
                "SealConfig(allow_urls=True) to allow downloads, or pass a local file)"
            )
        data = _download(url, url_timeout_s, max_download_bytes)
        spilled = _ref_from_bytes(data, f"the image at {url[:80]}", max_pixels, cache_dir)
        ref = cast(ImageRef, {**spilled, "origin": "url", "source_url": url})
    key = cache_key(ref)
    what = ref.get("source_url") or ref["uri"]

    def decode() -> ImagePyramid:
        try:
            with open(ref["uri"], "rb") as fh:
                image = _decode(fh, what, max_pixels)
        except FileNotFoundError as exc:
            raise InvalidImageError(f"image file not found: {ref['uri']}") from exc
        except IsADirectoryError as exc:
            raise InvalidImageError(f"image path is not a file: {ref['uri']}") from exc
        except PermissionError as exc:
            raise InvalidImageError(f"cannot read image file {ref['uri']}: {exc}") from exc
        return ImagePyramid(image)

    pyramid = image_cache().get_or_load(key, decode)
    _check_size(pyramid.width, pyramid.height, max_pixels, what)
    resolved = cast(ImageRef, {**ref, "width": pyramid.width, "height": pyramid.height})
    return resolved, pyramid


def _download(url: str, timeout_s: float, max_bytes: int) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "seal-agent"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            data = response.read(max_bytes + 1)
    except (OSError, ValueError) as exc:
        raise InvalidImageError(f"cannot download the image at {url[:80]}: {exc}") from exc
    if len(data) > max_bytes:
        raise InvalidImageError(
            f"the image at {url[:80]} is larger than {max_bytes / 2**20:.0f} MiB"
        )
    return data


# -- the decoded-image cache -------------------------------------------------------------
class DecodedImageCache:
    """A thread-safe LRU of decoded pyramids, bounded by their RGB bytes.

    Concurrent requests for the same key wait for one decode instead of each decoding
    (a run's parallel search branches all ask for the image at once).
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, ImagePyramid] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    @staticmethod
    def _cost(pyramid: ImagePyramid) -> int:
        return pyramid.width * pyramid.height * 3 * 4 // 3  # level 0 plus its halvings

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> ImagePyramid | None:
        with self._lock:
            pyramid = self._entries.get(key)
            if pyramid is not None:
                self._entries.move_to_end(key)
            return pyramid

    def put(self, key: str, pyramid: ImagePyramid) -> None:
        with self._lock:
            self._entries[key] = pyramid
            self._entries.move_to_end(key)
            total = sum(self._cost(p) for p in self._entries.values())
            # Evict least recently used entries, but always keep the newest one.
            while total > self.max_bytes and len(self._entries) > 1:
                _, evicted = self._entries.popitem(last=False)
                total -= self._cost(evicted)

    def get_or_load(self, key: str, load: Callable[[], ImagePyramid]) -> ImagePyramid:
        cached = self.get(key)
        if cached is not None:
            return cached
        with self._lock:
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            cached = self.get(key)
            if cached is None:
                cached = load()
                self.put(key, cached)
        with self._lock:
            self._loading.pop(key, None)
        return cached

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_CACHE = DecodedImageCache()


def image_cache() -> DecodedImageCache:
    """The process-level decoded-image cache (its ``max_bytes`` may be changed)."""
    return _CACHE


# -- encoding for chat models ------------------------------------------------------------
_ENCODED_LOCK = threading.Lock()
_ENCODED: OrderedDict[tuple[str, int, str], str] = OrderedDict()
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
) -> str:
    """Base64 of the whole image downscaled to ``max_side``, memoised per image.

    The listing, every contextual-cue question and the final answer all show the chat
    model the same global view; it is resized and encoded once.
    """
    side = min(max_side, max(pyramid.width, pyramid.height))
    key = (cache_key(ref), side, image_format)
    with _ENCODED_LOCK:
        if key in _ENCODED:
            _ENCODED.move_to_end(key)
            return _ENCODED[key]
    view, _ = pyramid.view(Box.full(pyramid.width, pyramid.height), side)
    encoded = encode_image(view, image_format)
    with _ENCODED_LOCK:
        _ENCODED[key] = encoded
        while len(_ENCODED) > _ENCODED_MAX:
            _ENCODED.popitem(last=False)
    return encoded


__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DecodedImageCache",
    "ImageInput",
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
