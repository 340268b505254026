"""Hand-made hostile image files: bombs whose headers claim huge sizes, in every format.

A bomb here is only its header (plus a token of data): the loader must refuse it from
the header, before decoding, so a real multi-gigabyte payload is never needed.
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png(width: int, height: int, depth: int = 8, colour: int = 2, extra: bytes = b"") -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` (colour type: 0 grey, 2 RGB,
    3 palette, 4 grey+alpha, 6 RGBA)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + extra
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )


def png_palette_with_alpha(width: int, height: int) -> bytes:
    return png(
        width,
        height,
        colour=3,
        extra=_chunk(b"PLTE", b"\x00\x00\x00\xff\xff\xff") + _chunk(b"tRNS", b"\x00"),
    )


def _saved(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def jpeg(width: int, height: int) -> bytes:
    """A tiny JPEG whose SOF0 segment is patched to claim ``width`` x ``height``."""
    data = bytearray(_saved(Image.new("RGB", (8, 8), (200, 10, 10)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif(width: int, height: int) -> bytes:
    """A GIF whose screen and first frame claim ``width`` x ``height``."""
    data = bytearray(_saved(Image.new("P", (4, 4)), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    desc = data.index(b"\x2c", 13)
    data[desc + 5 : desc + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def bmp(width: int, height: int, bpp: int = 24) -> bytes:
    header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bpp, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + 64, 0, 0, 54) + header + b"\x00" * 64


def tiff(width: int, height: int, mode: str = "RGB") -> bytes:
    """A tiny TIFF whose width and length tags are patched to the given size."""
    data = bytearray(_saved(Image.new(mode, (3, 5)), "TIFF"))
    for tag, value in ((256, width), (257, height)):
        for kind, packed in (
            (3, struct.pack("<H", 3 if tag == 256 else 5) + b"\x00\x00"),
            (4, struct.pack("<I", 3 if tag == 256 else 5)),
        ):
            entry = struct.pack("<HHI", tag, kind, 1) + packed
            at = data.find(entry)
            if at >= 0:
                value_bytes = (
                    struct.pack("<H", value) + b"\x00\x00"
                    if kind == 3
                    else struct.pack("<I", value)
                )
                data[at + 8 : at + 12] = value_bytes
                break
        else:
            raise AssertionError(f"tag {tag} not found in the TIFF")
    return bytes(data)


def webp(width: int, height: int) -> bytes:
    """An extended WebP (VP8X) claiming ``width`` x ``height`` (at most 16384 each)."""
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00"
    vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x
    return b"RIFF" + struct.pack("<I", len(body)) + body


def other_format(fmt: str) -> bytes:
    """A valid small image in a format outside the default allow-list."""
    mode = {"XBM": "1", "ICO": "RGBA", "IM": "RGB"}.get(fmt, "RGB")
    return _saved(Image.new(mode, (16, 16)), fmt)


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"></svg>'
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
GIF_HTML_POLYGLOT = b"GIF89a/*<html><script>alert(1)</script>*/=1;"
