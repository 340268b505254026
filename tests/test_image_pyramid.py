"""The view pyramid: right sizes, right pixels, cheap levels, clear errors."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
from PIL import Image

from seal_agent.errors import InvalidBoxError, InvalidImageError
from seal_agent.imaging.geometry import Box
from seal_agent.imaging.pyramid import MIN_LEVEL_SIDE, ImagePyramid, as_pyramid


def gradient_image(width: int, height: int) -> Image.Image:
    """Smooth content, so that any two good downsamplers agree closely."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    rgb = np.stack(
        [np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width)), (x + y) / 2],
        axis=-1,
    )
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def reference_view(image: Image.Image, patch: Box, size: tuple[int, int]) -> np.ndarray:
    """Crop + area-average from full resolution: what a pyramid view must approximate."""
    return np.asarray(image.resize(size, Image.Resampling.BOX, box=tuple(patch)), dtype=np.float32)


@pytest.fixture(scope="module")
def big() -> Image.Image:
    return gradient_image(4000, 3000)


def test_view_has_the_requested_longer_side_and_a_matching_frame(big: Image.Image) -> None:
    pyramid = ImagePyramid(big)
    view, frame = pyramid.view(Box(100, 200, 1100, 700), 512)
    assert view.size == (512, 256)
    assert frame.patch == Box(100, 200, 1100, 700)
    assert (frame.view_width, frame.view_height) == view.size
    assert view.mode == "RGB"


@pytest.mark.parametrize(
    "patch",
    [Box(0, 0, 4000, 3000), Box(1000, 500, 3000, 2000), Box(10.5, 20.25, 800.75, 333.5)],
)
def test_views_from_coarse_levels_match_full_resolution_resizing(
    big: Image.Image, patch: Box
) -> None:
    pyramid = ImagePyramid(big)
    view, _ = pyramid.view(patch, 512)
    expected = reference_view(big, patch, view.size)
    diff = np.abs(np.asarray(view, dtype=np.float32) - expected)
    assert diff.mean() < 2.0
    assert diff.max() < 12.0


def test_coarse_views_build_levels_and_never_downsample_more_than_twofold(
    big: Image.Image,
) -> None:
    pyramid = ImagePyramid(big)
    assert pyramid.levels_built() == 1  # lazy
    pyramid.view(Box(0, 0, 4000, 3000), 512)  # needs 1/7.8 -> level 2 (1000x750)
    assert pyramid.levels_built() == 3
    level = pyramid._level_for(512 / 4000)
    assert level.size == (1000, 750)
    # A native-resolution view comes from level 0.
    assert pyramid._level_for(1.0) is pyramid.image


def test_levels_stop_near_the_minimum_side(big: Image.Image) -> None:
    pyramid = ImagePyramid(big)
    pyramid.view(Box(0, 0, 4000, 3000), 8)  # wants the smallest level there is
    smallest = pyramid._levels[-1]
    assert max(smallest.size) >= MIN_LEVEL_SIDE
    assert max(smallest.size) < 2 * MIN_LEVEL_SIDE


def test_small_object_blurs_into_its_surroundings_when_shrunk() -> None:
    """A 24 px red square shrunk 8x is a 3 px smudge, not a crisp sampled pixel."""
    image = Image.new("RGB", (4096, 4096), (128, 128, 128))
    image.paste((255, 0, 0), (2004, 2004, 2028, 2028))
    view, _ = ImagePyramid(image).view(Box(0, 0, 4096, 4096), 512)
    reds = np.asarray(view)[..., 0].astype(int)
    touched = reds > 130
    assert 4 <= touched.sum() <= 16
    assert reds.max() > 200  # the centre pixels are fully covered


def test_small_patch_is_enlarged_to_the_view_size() -> None:
    image = gradient_image(300, 200)
    view, frame = ImagePyramid(image).view(Box(0, 0, 300, 200), 512)
    assert view.size == (512, 341)
    assert frame.scale_x > 1


def test_crop_is_full_resolution_and_clipped(big: Image.Image) -> None:
    pyramid = ImagePyramid(big)
    crop = pyramid.crop(Box(3990.5, 2990, 4100, 3100))
    assert crop.size == (10, 10)
    np.testing.assert_array_equal(np.asarray(crop), np.asarray(big.crop((3990, 2990, 4000, 3000))))


@pytest.mark.parametrize(
    "bad", [Box(5000, 0, 6000, 100), Box(10, 10, 10, 20), Box(float("nan"), 0, 1, 1)]
)
def test_bad_patches_raise_invalid_box(big: Image.Image, bad: Box) -> None:
    pyramid = ImagePyramid(big)
    with pytest.raises(InvalidBoxError):
        pyramid.view(bad, 512)
    with pytest.raises(InvalidBoxError):
        pyramid.crop(bad)


def test_views_are_clipped_to_the_image() -> None:
    pyramid = ImagePyramid(gradient_image(1000, 800))
    _, frame = pyramid.view(Box(-100, -100, 500, 400), 256)
    assert frame.patch == Box(0, 0, 500, 400)


@pytest.mark.parametrize(
    "mode", ["L", "RGBA", "P", "CMYK", "1", "I;16", "F", "LA", "La", "RGBa", "PA"]
)
def test_any_common_mode_is_converted_to_rgb_once(mode: str) -> None:
    base = gradient_image(600, 400)
    if mode == "La":  # premultiplied: "conversion from La to L not supported" before
        image = base.convert("LA").convert("La")
    elif mode == "RGBa":
        image = base.convert("RGBA").convert("RGBa")
    elif mode == "I;16":
        image = Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257)
    elif mode == "F":
        image = Image.fromarray(np.asarray(base.convert("L"), dtype=np.float32) / 255.0)
    else:
        image = base.convert(mode)
    assert image.mode == mode
    pyramid = ImagePyramid(image)
    assert pyramid.image.mode == "RGB"
    view, _ = pyramid.view(Box(0, 0, 600, 400), 300)
    assert view.mode == "RGB"
    if mode in ("I;16", "F"):  # wide greyscale is rescaled, not clipped to white
        assert np.asarray(pyramid.image).std() > 20


@pytest.mark.parametrize("fill", [np.nan, np.inf, -np.inf])
def test_float_grey_without_finite_values_converts_without_warnings(fill: float) -> None:
    # inf - inf and inf * 0 made numpy warn, an exception where warnings are errors.
    values = np.full((30, 40), fill, dtype=np.float32)
    values[::2, ::3] = -fill if np.isinf(fill) else fill
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pyramid = ImagePyramid(Image.fromarray(values))
    assert (pyramid.width, pyramid.height) == (40, 30)
    assert np.asarray(pyramid.image).max() <= 255


def test_transparent_pixels_become_white() -> None:
    image = Image.new("RGBA", (300, 300), (255, 0, 0, 0))
    assert np.asarray(ImagePyramid(image).image).min() == 255


@pytest.mark.parametrize("bad", [None, "image.png", np.zeros((10, 10, 3), np.uint8)])
def test_non_images_are_rejected_clearly(bad: object) -> None:
    with pytest.raises(InvalidImageError, match="PIL image"):
        ImagePyramid(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidImageError, match="PIL image"):
        as_pyramid(bad)  # type: ignore[arg-type]


def test_empty_image_is_rejected() -> None:
    with pytest.raises(InvalidImageError, match="no pixels"):
        ImagePyramid(Image.new("RGB", (0, 10)))


def test_as_pyramid_passes_a_pyramid_through(big: Image.Image) -> None:
    pyramid = ImagePyramid(big)
    assert as_pyramid(pyramid) is pyramid
    assert as_pyramid(big).size == (4000, 3000)


def test_concurrent_views_build_each_level_once(big: Image.Image) -> None:
    pyramid = ImagePyramid(big)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            view, _ = pyramid.view(Box(0, 0, 4000, 3000), 300)
            results.append(np.asarray(view))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(np.array_equal(results[0], r) for r in results)
    sizes = [level.size for level in pyramid._levels]
    assert len(sizes) == len(set(sizes))  # no level built twice
