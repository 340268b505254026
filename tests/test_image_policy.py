"""The mechanisms behind the image policy: verified references, bounded decoding, the
spill cache's bounds, and chat-model deadlines."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import threading
import time
from pathlib import Path

import hostile_files as hf
import numpy as np
import pytest
from PIL import Image, ImageFile

from seal_agent.errors import ChatModelError, InvalidImageError
from seal_agent.graph.model_calls import acall_with_timeout, call_with_timeout
from seal_agent.imaging.cache import image_cache
from seal_agent.imaging.decoding import DecodeBudget, decode_bytes, decode_cost
from seal_agent.imaging.loading import load_image, to_image_ref
from seal_agent.imaging.paths import caller_image_source
from seal_agent.imaging.policy import ImagePolicy
from seal_agent.imaging.spill import evict


@pytest.fixture(autouse=True)
def _fresh_cache():
    image_cache().clear()
    yield
    image_cache().clear()


def _png(colour: tuple[int, int, int], size: tuple[int, int] = (32, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_forged_digest_cannot_make_a_caller_see_another_image(tmp_path: Path):
    """The 0.1.0 attack: a ref naming blue pixels under red's digest answered "red"."""
    policy = ImagePolicy(cache_dir=tmp_path)
    red = to_image_ref(_png((255, 0, 0)), policy=policy)
    blue = to_image_ref(_png((0, 0, 255)), policy=policy)
    _, pyramid = load_image(red, policy)
    assert pyramid.image.getpixel((0, 0)) == (255, 0, 0)
    forged = {**blue, "digest": red["digest"]}
    with pytest.raises(InvalidImageError, match="does not match the content hash"):
        load_image(forged, policy)
    image_cache().clear()  # a new process: nothing is cached, the file is hashed again
    with pytest.raises(InvalidImageError, match="does not match the content hash"):
        load_image(forged, policy)
    _, honest = load_image(blue, policy)
    assert honest.image.getpixel((0, 0)) == (0, 0, 255)


def test_a_file_changed_after_the_run_started_is_an_error(tmp_path: Path):
    path = tmp_path / "photo.png"
    path.write_bytes(_png((255, 0, 0)))
    ref, _ = load_image(to_image_ref(path))
    path.write_bytes(_png((0, 255, 0)))
    os.utime(path, ns=(1, 1))
    with pytest.raises(InvalidImageError, match="changed since the run started"):
        load_image(ref)


def test_the_cache_is_keyed_by_content_not_by_what_a_ref_claims(tmp_path: Path):
    policy = ImagePolicy(cache_dir=tmp_path / "cache")
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(_png((255, 0, 0)))
    b.write_bytes(_png((255, 0, 0)))
    ref_a, pa = load_image({"uri": str(a), "origin": "path"}, policy)
    ref_b, pb = load_image({"uri": str(b), "origin": "path"}, policy)
    assert ref_a["digest"] == ref_b["digest"]
    assert pa is pb  # same bytes, one decode


def test_bombs_are_refused_before_any_pixel_is_decoded(monkeypatch, tmp_path: Path):
    def no_decoding(self):  # any decode attempt fails the test
        raise AssertionError("decoded a bomb")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    policy = ImagePolicy(cache_dir=tmp_path)
    for data in (
        hf.png(30000, 30000, 1, 0),
        hf.png(13000, 13000, 16, 0),
        hf.png(12000, 12000, 16, 6),
        hf.jpeg(65000, 65000),
        hf.gif(65535, 65535),
        hf.bmp(50000, 50000),
        hf.tiff(60000, 60000),
    ):
        with pytest.raises(InvalidImageError, match="above the limit"):
            decode_bytes(data, policy, "bomb")
    assert not list(tmp_path.rglob("*.png"))


def test_pillows_global_limit_is_never_changed(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    seen: list[object] = []
    policy = ImagePolicy(cache_dir=tmp_path)
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(Image.MAX_IMAGE_PIXELS)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(20):
            image_cache().clear()
            _, pyramid = load_image(
                to_image_ref(_png((1, 2, 3), (300, 200)), policy=policy), policy
            )
            assert pyramid.size == (300, 200)
    finally:
        stop.set()
        watcher.join()
    assert set(seen) == {1000}


@pytest.mark.parametrize(
    ("mode", "per_pixel"),
    [("RGB", 4), ("L", 5), ("1", 5), ("RGBA", 8), ("LA", 8), ("PA", 12), ("I;16", 5), ("F", 5)],
)
def test_decode_cost_counts_wide_and_alpha_modes(mode: str, per_pixel: int):
    assert decode_cost(mode, 100, 10) == 1000 * per_pixel


def test_wide_and_alpha_images_still_decode_correctly(tmp_path: Path):
    policy = ImagePolicy(cache_dir=tmp_path)
    grey16 = Image.fromarray(np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20)
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    for image, corner in ((grey16, (0, 0, 0)), (rgba, (255, 255, 255))):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        pyramid = decode_bytes(buffer.getvalue(), policy, "image")
        assert pyramid.image.mode == "RGB"
        assert pyramid.image.getpixel((0, 0)) == corner


def test_parallel_decodes_wait_for_the_memory_budget():
    budget = DecodeBudget(capacity=100, wait_s=0.3)
    inside = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with budget.reserve(80, "first"):
            inside.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    inside.wait(5)
    with pytest.raises(InvalidImageError, match="too many large images"), budget.reserve(80, "2"):
        pass
    with budget.reserve(20, "small"):  # what fits still runs
        assert budget.in_use == 100
    release.set()
    holder.join()
    with budget.reserve(80, "third"):
        assert budget.in_use == 80
    assert budget.in_use == 0


def test_the_spill_cache_is_capped_least_recently_used_first(tmp_path: Path):
    policy = ImagePolicy(cache_dir=tmp_path, spill_max_bytes=0, spill_retention_s=3600)
    refs = [to_image_ref(_png((i, 0, 0)), policy=policy) for i in range(5)]
    paths = [Path(r["uri"]) for r in refs]
    assert all(p.exists() for p in paths)  # all used within the retention: all kept
    now = time.time()
    for i, path in enumerate(paths):  # used 5, 4, ... 1 hours ago
        os.utime(path, (now - 3600 * (5 - i), now - 3600 * (5 - i)))
    two_newest = sum(p.stat().st_size for p in paths[3:])
    capped = policy.model_copy(update={"spill_max_bytes": two_newest})
    removed = evict(capped, now=now + 1)
    assert sorted(removed) == sorted(paths[:3])  # the least recently used went first
    assert all(p.exists() for p in paths[3:])
    load_image(refs[4], capped)  # still loads
    # Over the cap, an image used within the retention (a live run's) is still kept.
    kept = policy.model_copy(update={"spill_max_bytes": 0, "spill_retention_s": 5400})
    assert evict(kept, now=now + 1) == [paths[3]]
    assert paths[4].exists()


def test_only_inputs_that_decode_are_spilled_and_no_temp_files_remain(tmp_path: Path):
    policy = ImagePolicy(cache_dir=tmp_path)
    for bad in (hf.png(30000, 30000, 1, 0), _png((1, 1, 1))[:40], b"not an image", hf.EPS):
        with pytest.raises(InvalidImageError):
            to_image_ref(bad, policy=policy)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    to_image_ref(_png((9, 9, 9)), policy=policy)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 1
    assert not files[0].name.startswith(".")


def test_a_fifo_is_refused_without_blocking(tmp_path: Path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(InvalidImageError, match="not a file"):
        to_image_ref(fifo)
    with pytest.raises(InvalidImageError, match="not a file"):
        load_image({"uri": str(fifo), "origin": "path"})
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("roots", [None, "tmp"])
def test_a_path_longer_than_path_max_is_refused_before_it_is_resolved(
    tmp_path: Path, roots: str | None
):
    # Base64 pasted as a "path" holds a '/' every ~64 characters; resolving megabytes of
    # it component by component took minutes. It names no file: refused from its length.
    policy = ImagePolicy(allowed_roots=None if roots is None else (tmp_path,))
    pasted = base64.b64encode(os.urandom(150_000)).decode().replace("+", "/")
    for text in (pasted, str(tmp_path) + "/a" * 100_000):
        with pytest.raises(InvalidImageError, match=r"characters long, above the limit of 4096"):
            to_image_ref(text, policy=policy)
        with pytest.raises(InvalidImageError, match=r"characters long, above the limit of 4096"):
            caller_image_source(text, policy.allowed_roots)


def test_chat_calls_time_out_sync_and_async():
    started = time.monotonic()
    with pytest.raises(ChatModelError, match=r"did not answer within 0\.2 s while testing"):
        call_with_timeout(lambda: time.sleep(2), 0.2, doing="testing", model="M")
    assert time.monotonic() - started < 1.5
    assert call_with_timeout(lambda: 7, 1.0, doing="x", model="M") == 7

    async def slow() -> int:
        await asyncio.sleep(2)
        return 1

    async def fast() -> int:
        return 2

    started = time.monotonic()
    with pytest.raises(ChatModelError, match="did not answer within"):
        asyncio.run(acall_with_timeout(slow, 0.2, doing="testing", model="M"))
    assert time.monotonic() - started < 1.5
    assert asyncio.run(acall_with_timeout(fast, 1.0, doing="x", model="M")) == 2


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
@pytest.mark.parametrize("codec", ["imagecodecs", "pillow-decoder"])
def test_webp_decodes_to_pillows_pixels_without_its_decoder_buffers(
    mode: str, codec: str, monkeypatch: pytest.MonkeyPatch
):
    if codec == "pillow-decoder":  # the fallback when imagecodecs is not installed
        monkeypatch.setitem(__import__("sys").modules, "imagecodecs", None)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (48, 64, len(mode)), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, format="WEBP", lossless=True)
    data = buffer.getvalue()
    pyramid = decode_bytes(data, ImagePolicy(), "a WebP")
    expected = Image.open(io.BytesIO(data))
    expected.load()
    if mode == "RGBA":  # transparency flattened onto white, as for every format
        canvas = Image.new("RGB", expected.size, (255, 255, 255))
        canvas.paste(expected, mask=expected.getchannel("A"))
        expected = canvas
    assert np.array_equal(np.asarray(pyramid.image), np.asarray(expected.convert("RGB")))
