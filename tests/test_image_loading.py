"""Image inputs become small references; references become (cached) pixels again."""

from __future__ import annotations

import base64
import http.server
import io
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seal_agent.errors import InvalidImageError
from seal_agent.imaging.content_blocks import unwrap_image_input
from seal_agent.imaging.loading import (
    DecodedImageCache,
    ImagePolicy,
    cache_key,
    image_cache,
    load_image,
    to_image_ref,
)
from seal_agent.imaging.pyramid import ImagePyramid


@pytest.fixture(autouse=True)
def _fresh_cache():
    image_cache().clear()
    yield
    image_cache().clear()


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _gradient(width: int = 64, height: int = 48) -> Image.Image:
    xs = np.linspace(0, 255, width, dtype=np.uint8)
    ys = np.linspace(0, 255, height, dtype=np.uint8)
    rgb = np.stack(np.broadcast_arrays(xs[None, :], ys[:, None], np.uint8(90)), axis=2)
    return Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")


def test_local_path_as_str_and_path_loads_the_same_pixels(tmp_path: Path):
    image = _gradient()
    path = tmp_path / "photo.png"
    image.save(path)
    for source in (str(path), path):
        ref, pyramid = load_image(to_image_ref(source))
        assert ref["origin"] == "path"
        assert (ref["width"], ref["height"]) == (64, 48)
        assert np.array_equal(np.asarray(pyramid.image), np.asarray(image))


def test_a_path_with_dots_in_folder_names_is_accepted(tmp_path: Path):
    folder = tmp_path / "data.v1" / "./imgs"
    folder.mkdir(parents=True)
    _gradient().save(folder / "a.b.c.png")
    ref, _ = load_image(to_image_ref(str(folder / "a.b.c.png")))
    assert ref["uri"].endswith("a.b.c.png")


def test_in_memory_inputs_are_spilled_once_under_their_content_hash(tmp_path: Path):
    image = _gradient()
    data = _png_bytes(image)
    data_url = "data:image/png;base64," + base64.b64encode(data).decode()
    from_bytes = to_image_ref(data, cache_dir=tmp_path)
    from_url = to_image_ref(data_url, cache_dir=tmp_path)
    assert from_bytes == from_url  # same bytes, same file
    assert from_bytes["origin"] == "memory"
    assert Path(from_bytes["uri"]).read_bytes() == data
    from_pil = to_image_ref(image, cache_dir=tmp_path)
    again = to_image_ref(image.copy(), cache_dir=tmp_path)
    assert from_pil["uri"] == again["uri"]
    spilled = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert len(spilled) == 2  # the PNG bytes and the PIL image's own PNG


def test_a_spilled_image_is_found_again_by_a_new_process(tmp_path: Path):
    """A resumed run only has the reference: clearing the cache stands in for a new process."""
    image = _gradient()
    ref = to_image_ref(image, cache_dir=tmp_path)
    image_cache().clear()
    reloaded_ref, pyramid = load_image(ref)
    assert reloaded_ref["digest"] == ref["digest"]
    assert np.array_equal(np.asarray(pyramid.image), np.asarray(image))


def test_the_reference_holds_no_pixels(tmp_path: Path):
    ref = to_image_ref(_gradient(), cache_dir=tmp_path)
    assert all(isinstance(v, str | int) for v in ref.values())
    assert len(repr(ref)) < 400


def test_exif_orientation_is_applied(tmp_path: Path):
    image = Image.new("RGB", (60, 20), (200, 30, 30))
    image.paste((30, 30, 200), (0, 0, 10, 20))  # blue band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=95)
    ref, pyramid = load_image(to_image_ref(path))
    assert (ref["width"], ref["height"]) == (20, 60)
    top_left = pyramid.image.getpixel((10, 2))
    assert top_left[2] > 150
    assert top_left[0] < 100
    # The same correction for a PIL image a caller opened without applying it.
    ref2, _ = load_image(to_image_ref(Image.open(path), cache_dir=tmp_path))
    assert (ref2["width"], ref2["height"]) == (20, 60)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "nope.png", "not found"),
        (lambda d: d, "not a file"),
    ],
)
def test_missing_file_and_folder_name_the_problem(tmp_path: Path, make, message):
    with pytest.raises(InvalidImageError, match=message):
        to_image_ref(make(tmp_path))


def test_a_file_deleted_after_referencing_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "gone.png"
    _gradient().save(path)
    ref = to_image_ref(path)
    path.unlink()
    with pytest.raises(InvalidImageError, match="not found"):
        load_image(ref)


def test_corrupt_truncated_and_non_images_are_refused(tmp_path: Path):
    good = _png_bytes(_gradient(400, 300))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(InvalidImageError, match="corrupt or truncated"):
        load_image(to_image_ref(truncated))
    text = tmp_path / "notes.txt"
    text.write_text("this is not an image")
    with pytest.raises(InvalidImageError, match="not an image"):
        load_image(to_image_ref(text))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InvalidImageError, match="not an image"):
        load_image(to_image_ref(empty))
    with pytest.raises(InvalidImageError, match="empty"):
        to_image_ref(b"")
    with pytest.raises(InvalidImageError, match="not an image"):
        to_image_ref(b"\x00\x01garbage", cache_dir=tmp_path)
    with pytest.raises(InvalidImageError, match="base64"):
        to_image_ref("data:image/png,rawtext", cache_dir=tmp_path)


@pytest.mark.parametrize(
    ("payload", "problem"),
    [("@@@@!!!!****", "character '@'"), ("QUFB" * 300 + "é", "non-ASCII"), ("====", "no data")],
)
def test_invalid_base64_is_named_as_such_not_as_an_empty_image(
    tmp_path: Path, payload: str, problem: str
):
    # b64decode(validate=False) drops what it cannot read: garbage became b"" ("the image
    # is empty") or a few stray bytes ("not an image in an allowed format").
    url = "data:image/png;base64," + payload
    for decode in (lambda: to_image_ref(url, cache_dir=tmp_path), lambda: unwrap_image_input(url)):
        with pytest.raises(InvalidImageError, match=f"not valid base64: .*{problem}"):
            decode()
    block = {"type": "image", "base64": payload, "mime_type": "image/png"}
    with pytest.raises(InvalidImageError, match=f"not valid base64: .*{problem}"):
        unwrap_image_input(block)


def test_url_safe_and_wrapped_base64_still_decode(tmp_path: Path):
    data = _png_bytes(_gradient(64, 48))
    for text in (
        base64.urlsafe_b64encode(data).decode(),
        "\n".join(base64.b64encode(data).decode()[i : i + 76] for i in range(0, 9999, 76)),
    ):
        ref = to_image_ref("data:image/png;base64," + text, cache_dir=tmp_path)
        assert (ref["width"], ref["height"]) == (64, 48)


def test_zero_size_and_unsupported_inputs_are_refused(tmp_path: Path):
    with pytest.raises(InvalidImageError, match="no pixels"):
        to_image_ref(Image.new("RGB", (0, 5)), cache_dir=tmp_path)
    with pytest.raises(InvalidImageError, match="unsupported image input"):
        to_image_ref(12345)  # type: ignore[arg-type]
    with pytest.raises(InvalidImageError, match="data URL"):
        to_image_ref(base64.b64encode(b"x" * 3000).decode())
    with pytest.raises(InvalidImageError, match="scheme"):
        to_image_ref("ftp://example.com/a.png")


def test_pixel_limit_is_configurable_and_replaces_pils_own(tmp_path: Path, monkeypatch):
    path = tmp_path / "wide.png"
    Image.new("RGB", (300, 200), (1, 2, 3)).save(path)
    with pytest.raises(InvalidImageError, match=r"above the limit"):
        load_image(to_image_ref(path), max_pixels=50_000)
    with pytest.raises(InvalidImageError, match=r"above the limit"):
        to_image_ref(path.read_bytes(), max_pixels=50_000, cache_dir=tmp_path)
    # PIL's decompression-bomb guard (warning above its limit, error above twice that)
    # must not override ours: shrink it far below the image and load anyway.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    _ref, pyramid = load_image(to_image_ref(path), max_pixels=60_000)
    assert pyramid.size == (300, 200)
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored after the header parse


@pytest.mark.slow
def test_a_12000x9000_scan_loads(tmp_path: Path):
    path = tmp_path / "scan.jpg"
    Image.new("RGB", (12000, 9000), (120, 130, 140)).save(path, quality=50)
    ref, pyramid = load_image(to_image_ref(path))
    assert (ref["width"], ref["height"]) == (12000, 9000)
    view, _ = pyramid.view(pyramid.full_box, 512)
    assert max(view.size) == 512


def test_an_overlong_url_is_named_as_such(tmp_path: Path):
    # It became a reference that the loader then called "malformed".
    url = "https://example.com/" + "a" * 5000
    with pytest.raises(InvalidImageError, match="image URL is 5020 characters long"):
        to_image_ref(url, cache_dir=tmp_path)


def test_http_urls_are_fetched_only_when_allowed(tmp_path: Path):
    data = _png_bytes(_gradient())

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/img.png"
        ref = to_image_ref(url)
        assert ref["origin"] == "url"
        assert "width" not in ref
        with pytest.raises(InvalidImageError, match="allow_urls"):
            load_image(ref)
        # Enabled, a loopback address is still refused unless the deployer allows it.
        with pytest.raises(InvalidImageError, match="non-public address"):
            load_image(ref, allow_urls=True, cache_dir=tmp_path)
        policy = ImagePolicy(allow_urls=True, url_allowed_hosts=("127.0.0.1",), cache_dir=tmp_path)
        resolved, pyramid = load_image(ref, policy)
        assert resolved["source_url"] == url
        assert Path(resolved["uri"]).read_bytes() == data
        assert pyramid.size == (64, 48)
    finally:
        server.shutdown()
        server.server_close()


def test_decoded_images_are_cached_and_an_edited_file_is_decoded_again(tmp_path: Path):
    path = tmp_path / "a.png"
    _gradient().save(path)
    _, first = load_image(to_image_ref(path))
    _, second = load_image(to_image_ref(path))
    assert first is second
    Image.new("RGB", (10, 10), (0, 0, 0)).save(path)
    import os

    os.utime(path, ns=(1, 1))  # a different mtime, whatever the clock's resolution
    _, third = load_image(to_image_ref(path))
    assert third is not first
    assert third.size == (10, 10)


def test_the_cache_evicts_least_recently_used_by_bytes():
    cache = DecodedImageCache(max_bytes=3 * 100 * 100 * 3)
    pyramids = {k: ImagePyramid(Image.new("RGB", (100, 100))) for k in "abc"}
    cache.put("a", pyramids["a"])
    cache.put("b", pyramids["b"])
    assert cache.get("a") is pyramids["a"]  # a is now the most recent
    cache.put("c", pyramids["c"])
    assert "b" not in cache
    assert "a" in cache
    assert "c" in cache


def test_concurrent_loads_of_one_image_decode_it_once():
    cache = DecodedImageCache()
    decodes = []
    gate = threading.Event()

    def load() -> ImagePyramid:
        decodes.append(1)
        gate.wait(1)
        return ImagePyramid(Image.new("RGB", (8, 8)))

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_load("k", load)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert len(decodes) == 1
    assert len({id(r) for r in results}) == 1


def test_cache_key_tracks_content_not_location(tmp_path: Path):
    ref_a = to_image_ref(_png_bytes(_gradient()), cache_dir=tmp_path / "one")
    ref_b = to_image_ref(_png_bytes(_gradient()), cache_dir=tmp_path / "two")
    assert ref_a["uri"] != ref_b["uri"]
    assert cache_key(ref_a) == cache_key(ref_b)
