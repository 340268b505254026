"""Decoding encoded images within a memory budget, without touching Pillow's globals.

The size and mode are read from the header first; an image is refused before a single
pixel is decoded when its pixels, or the bytes its decode would hold at the peak (the
decoded mode with 16-bit samples and alpha counted, plus the RGB conversion), are over
the policy's limits. A process-wide byte budget bounds the decodes in flight, so N
parallel bombs just under the limit cannot add up.
"""

from __future__ import annotations

import io
import struct
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image

from seal_agent.errors import InvalidImageError
from seal_agent.imaging.policy import ImagePolicy
from seal_agent.imaging.pyramid import ImagePyramid, to_rgb, wide_grey_to_l

#: Bytes Pillow stores per pixel for each mode (every other mode takes 4).
_STORED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
_WIDE_GREY = {"I", "F", "I;16", "I;16L", "I;16B", "I;16N"}
_ALPHA = {"RGBA", "RGBa", "LA"}
_CONVERTED_ALPHA = {"La", "PA"}
#: Formats whose decoder holds a second full-size buffer (libwebp's RGBA frame).
_BUFFERED_FORMATS = {"WEBP": 8}

#: EXIF orientation -> the transpose that shows the image upright.
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def decode_cost(
    mode: str, width: int, height: int, transparency: bool = False, image_format: str = ""
) -> int:
    """Peak bytes of decoding an image of this mode and converting it to RGB.

    Pillow keeps RGB in 4 bytes per pixel; the extra terms follow ``to_rgb``: a canvas
    for alpha, an RGBA copy for LA/PA/transparent palettes, an 8-bit band for wide grey.
    """
    pixels = width * height
    stored = _STORED_BYTES.get(mode, 4)
    if mode == "RGB":
        extra = 0
    elif mode in _ALPHA:
        extra = 4
    elif mode in _CONVERTED_ALPHA or (mode == "P" and transparency):
        extra = 8
    elif mode in _WIDE_GREY:
        # An 8-bit band beside the wide samples, then RGB once the samples are freed.
        extra = max(stored + 1, 1 + 4) - stored
    else:
        extra = 4
    return pixels * (stored + extra + _BUFFERED_FORMATS.get(image_format, 0))


class DecodeBudget:
    """Bytes of decodes in flight, process-wide; a decode waits for room (bounded)."""

    def __init__(self, capacity: int = 2 * 1024**3, wait_s: float = 120.0) -> None:
        self.capacity = capacity
        self.wait_s = wait_s
        self._used = 0
        self._cond = threading.Condition()

    @property
    def in_use(self) -> int:
        return self._used

    @contextmanager
    def reserve(self, nbytes: int, what: str) -> Iterator[None]:
        need = min(nbytes, self.capacity)  # one decode alone always fits
        deadline = time.monotonic() + self.wait_s
        with self._cond:
            while self._used + need > self.capacity:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise InvalidImageError(
                        f"too many large images are being decoded at once; {what} waited "
                        f"{self.wait_s:.0f} s for memory (try again later)"
                    )
                self._cond.wait(left)
            self._used += need
        try:
            yield
        finally:
            with self._cond:
                self._used -= need
                self._cond.notify_all()


_BUDGET = DecodeBudget()


def decode_budget() -> DecodeBudget:
    """The process-level budget of decodes in flight (its ``capacity`` may be changed)."""
    return _BUDGET


def check_pixels(width: int, height: int, max_pixels: int, what: str) -> None:
    if width < 1 or height < 1:
        raise InvalidImageError(f"{what} has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InvalidImageError(
            f"{what} is {width}x{height} = {width * height / 1e6:.1f} MP, above the limit of "
            f"{max_pixels / 1e6:.1f} MP (raise SealConfig.max_image_pixels to allow it)"
        )


def check_cost(image: Image.Image, policy: ImagePolicy, what: str) -> int:
    """The decode cost of an opened image, refused above ``max_decoded_bytes``."""
    check_pixels(image.width, image.height, policy.max_pixels, what)
    cost = decode_cost(
        image.mode, image.width, image.height, "transparency" in image.info, image.format or ""
    )
    if cost > policy.max_decoded_bytes:
        raise InvalidImageError(
            f"{what} ({image.width}x{image.height}, mode {image.mode}) would take "
            f"{cost / 2**20:.0f} MiB to decode, above the limit of "
            f"{policy.max_decoded_bytes / 2**20:.0f} MiB (raise SealConfig.max_decoded_bytes "
            "to allow it)"
        )
    return cost


def open_header(data: bytes, formats: tuple[str, ...], what: str) -> Image.Image:
    """Identify ``data`` among the allowed formats and read its header (no pixels).

    Pillow's ``Image.open`` applies its global ``MAX_IMAGE_PIXELS`` guard, which would
    refuse ordinary 180 MP scans; our own limits apply instead, so the allowed plugins
    are tried here directly, in order, as ``Image.open`` does.
    """
    Image.init()
    prefix = data[:16]
    fp = io.BytesIO(data)
    for name in formats:
        entry = Image.OPEN.get(name)
        if entry is None:
            continue
        factory, accept = entry
        try:
            accepted = True if accept is None else accept(prefix)
            if isinstance(accepted, str) or not accepted:
                continue
            fp.seek(0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                return factory(fp, "")
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue
        except Image.DecompressionBombError as exc:
            raise InvalidImageError(f"{what} is refused as a decompression bomb: {exc}") from exc
        except (OSError, ValueError, EOFError) as exc:
            raise InvalidImageError(f"cannot open {what}: {exc}") from exc
    allowed = ", ".join(formats)
    raise InvalidImageError(
        f"{what} is not an image in an allowed format ({allowed}; SealConfig.image_formats "
        "adds more)"
    )


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(0x0112, 1)
    except Exception:  # a malformed EXIF block must not make an image unusable
        return 1
    return value if isinstance(value, int) else 1


def _webp_first_frame(image: Image.Image, data: bytes) -> Image.Image | None:
    """A WebP's first frame decoded with bounded memory, or None to decode as usual.

    Pillow's only WebP path is libwebp's animation decoder, which holds two full RGBA
    canvases and a bytes copy of the frame beside the image (5.4x the RGB size at peak).
    imagecodecs decodes straight into one array (2.4x with the image built from it);
    without it, the frame is taken from Pillow's decoder and the decoder freed before
    the image is built (4.1x). Private Pillow attributes: any surprise falls back.
    """
    if image.format != "WEBP":
        return None
    try:
        import imagecodecs
    except ImportError:
        return _webp_frame_from_pillow(image)
    try:
        pixels = imagecodecs.webp_decode(data)
    except Exception as exc:  # imagecodecs raises its own WebpError
        raise InvalidImageError(f"the WebP image is corrupt: {exc}") from None
    if pixels.ndim != 3 or pixels.shape[:2] != (image.height, image.width):
        raise InvalidImageError("the WebP frame does not match its header")
    info = dict(image.info)
    image.close()
    frame = Image.fromarray(pixels, "RGBA" if pixels.shape[2] == 4 else "RGB")
    frame.info.update(info)
    return frame


def _webp_frame_from_pillow(image: Image.Image) -> Image.Image | None:
    decoder = getattr(image, "_decoder", None)
    rawmode = getattr(image, "rawmode", None)
    if decoder is None or rawmode not in ("RGBA", "RGBX"):
        return None
    try:
        decoder.reset()
        frame = decoder.get_next()
    except (AttributeError, TypeError):
        return None
    if not isinstance(frame, tuple) or not isinstance(frame[0], bytes):
        return None
    data, size, info = frame[0], image.size, dict(image.info)
    del frame
    image._decoder = None  # type: ignore[attr-defined]  # libwebp's canvas goes here
    del decoder
    image.close()
    mode = "RGBA" if rawmode == "RGBA" else "RGB"
    try:
        frame_image = Image.frombuffer(mode, size, data, "raw", rawmode, 0, 1)
    except ValueError:
        raise InvalidImageError("the WebP frame does not match its header") from None
    frame_image.info.update(info)
    return frame_image


def decode_bytes(data: bytes, policy: ImagePolicy, what: str) -> ImagePyramid:
    """The upright RGB pyramid of an encoded image, within the policy's limits."""
    if not data:
        raise InvalidImageError(f"{what} is empty (zero bytes): not an image")
    image = open_header(data, policy.formats, what)
    cost = check_cost(image, policy, what)
    with decode_budget().reserve(cost, what):
        try:
            webp = _webp_first_frame(image, data)
            if webp is not None:
                image = webp
            elif getattr(image, "n_frames", 1) > 1:
                image.seek(0)  # GIF, WebP, TIFF, MPO: the first frame only
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image.load()
            orientation = _orientation(image)
            if image.mode in _WIDE_GREY:  # free the wide samples before the RGB copy
                grey = wide_grey_to_l(image)
                image.close()
                rgb = grey.convert("RGB")
                del grey
            else:
                rgb = to_rgb(image)
            if rgb is image and (getattr(image, "n_frames", 1) > 1 or image.format == "WEBP"):
                # Do not keep the encoded frames, or libwebp's decoder canvas, alive in
                # the cache: the copy holds only pixels; closing the original frees them.
                rgb = image.copy()
        except InvalidImageError:
            raise
        except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
            raise InvalidImageError(f"{what} is corrupt or truncated: {exc}") from exc
        except (Image.DecompressionBombError, MemoryError) as exc:
            raise InvalidImageError(f"{what} cannot be decoded within limits: {exc}") from exc
        if rgb is not image:
            image.close()  # frees the decoded mode before the pyramid is built
        del image
        method = _ORIENTATION.get(orientation)
        if method is not None:
            rgb = rgb.transpose(method)
        return ImagePyramid(rgb)


def pyramid_from_pil(image: Image.Image, policy: ImagePolicy, what: str) -> ImagePyramid:
    """A caller's PIL image as an upright RGB pyramid, within the policy's limits."""
    cost = check_cost(image, policy, what)
    with decode_budget().reserve(cost, what):
        try:
            image.load()
            orientation = _orientation(image)
            rgb = to_rgb(image)
            if rgb is image:
                rgb = image.copy()  # the caller may change its image after the call
        except InvalidImageError:
            raise
        except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
            raise InvalidImageError(f"cannot use {what}: {exc}") from exc
        method = _ORIENTATION.get(orientation)
        if method is not None:
            rgb = rgb.transpose(method)
        return ImagePyramid(rgb)


__all__ = [
    "DecodeBudget",
    "check_cost",
    "check_pixels",
    "decode_budget",
    "decode_bytes",
    "decode_cost",
    "open_header",
    "pyramid_from_pil",
]
