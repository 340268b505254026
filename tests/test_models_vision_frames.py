"""Tiny Qwen2.5-VL and LLaVA: what the processor makes of VWM crops and of the global image.

The processors are the checkpoints' own, loaded through ``TransformersChatModel``; the
Qwen one is given the hub checkpoint's pixel bounds (56² .. 1280·28²) and the LLaVA one
the hub's 336 px input, so token counts are those of the full-size models (the random
weights never run here: only the processor does).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from models_fixtures import llava_dir, qwen_dir  # noqa: F401  (fixtures)
from PIL import Image, ImageDraw

from seal_agent.graph.vwm import crop_image, for_frame, plan_vwm
from seal_agent.imaging.frames import frame_location
from seal_agent.imaging.geometry import Box, crop_box_around
from seal_agent.imaging.pyramid import ImagePyramid
from seal_agent.models.chat import TransformersChatModel
from seal_agent.models.processor_vision import counted_image_tokens
from seal_agent.models.vision_tokens import qwen_tokens, smart_resize

QWEN_HUB_PIXELS = {"min_pixels": 56 * 56, "max_pixels": 1280 * 28 * 28}
LLAVA_HUB_SIZE = {
    "size": {"shortest_edge": 336},
    "crop_size": {"height": 336, "width": 336},
    "patch_size": 14,
}
RED = (220, 40, 40)


@pytest.fixture(scope="module")
def qwen(qwen_dir: Path) -> TransformersChatModel:  # noqa: F811
    return TransformersChatModel(model_id=str(qwen_dir), processor_kwargs=QWEN_HUB_PIXELS)


@pytest.fixture(scope="module")
def llava(llava_dir: Path) -> TransformersChatModel:  # noqa: F811
    return TransformersChatModel(model_id=str(llava_dir), processor_kwargs=LLAVA_HUB_SIZE)


def _scene(width: int, height: int, box: Box) -> Image.Image:
    image = Image.new("RGB", (width, height), (128, 128, 128))
    ImageDraw.Draw(image).rectangle(
        (box.x1, box.y1, box.x2 - 1, box.y2 - 1), fill=RED
    )  # PIL's rectangle includes its end pixel
    return image


def _red_extent(rgb: np.ndarray) -> Box:
    """Bounding box of the red pixels of an HxWx3 array (red > 170, green < 100)."""
    mask = (rgb[..., 0] > 170) & (rgb[..., 1] < 100)
    ys, xs = np.nonzero(mask)
    assert xs.size, "the red box is not in the processed image"
    return Box(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def _denormalise(chw: np.ndarray, processor) -> np.ndarray:
    ip = processor.image_processor
    mean = np.array(ip.image_mean)[:, None, None]
    std = np.array(ip.image_std)[:, None, None]
    return np.clip((chw * std + mean) * 255, 0, 255).transpose(1, 2, 0)


def _qwen_image(pixel_values, grid_thw, processor) -> np.ndarray:
    """Undo Qwen2-VL's patch flattening: (t*h*w, C*T*p*p) -> H x W x 3 of the first frame."""
    ip = processor.image_processor
    p, m, t = ip.patch_size, ip.merge_size, ip.temporal_patch_size
    _, gh, gw = (int(v) for v in grid_thw[0])
    x = pixel_values.float().numpy().reshape(gh // m, gw // m, m, m, 3, t, p, p)[..., 0, :, :]
    # axes: (bh, bw, mh, mw, C, ph, pw) -> (C, bh, mh, ph, bw, mw, pw)
    chw = x.transpose(4, 0, 2, 5, 1, 3, 6).reshape(3, gh * p, gw * p)
    return _denormalise(chw, processor)


# -- item 1: tokens per crop, before and after ---------------------------------------------
def _crop_tokens(model: TransformersChatModel, target: int, sizing: str) -> tuple[int, float]:
    """(visual tokens of the crop, target span in encoder tokens) for a ``target`` px box."""
    width, height = 4000, 3000
    box = Box(2000, 1500, 2000 + target, 1500 + target)
    pyramid = ImagePyramid(_scene(width, height, box))
    region = crop_box_around(box, width, height, 1.2)
    profile = model.vision_profile()
    plan = plan_vwm(profile, width, height, [region], profile.default_budget, 1024, sizing)  # type: ignore[arg-type]
    crop = plan.crops[0]
    assert crop.size is not None
    image = for_frame(crop_image(pyramid, region, crop.size), profile)
    (prepared,) = model.prepare_images([image])
    processor = model.processor()
    tokens = counted_image_tokens(processor, prepared)
    assert tokens == crop.tokens  # the plan's cost is the processor's
    encoded = processor(text=[processor.image_token], images=[prepared], return_tensors="pt")
    if "image_grid_thw" in encoded:
        rgb = _qwen_image(encoded["pixel_values"], encoded["image_grid_thw"], processor)
        token_px = 28
    else:
        rgb = _denormalise(encoded["pixel_values"][0].numpy(), processor)
        token_px = 14 * rgb.shape[0] / 336  # a ViT-L/14 patch at 336 px
    return tokens, _red_extent(rgb).width / token_px


TARGETS = (20, 40, 100)


def test_qwen_crops_are_enlarged_until_the_target_spans_several_tokens(qwen):
    before = {t: _crop_tokens(qwen, t, "as_cut") for t in TARGETS}
    after = {t: _crop_tokens(qwen, t, "encoder") for t in TARGETS}
    print("\nQwen2.5-VL tokens per crop (target span in tokens): before -> after")
    for t in TARGETS:
        print(
            f"  {t:>3} px target: {before[t][0]} ({before[t][1]:.1f}) -> "
            f"{after[t][0]} ({after[t][1]:.1f})"
        )
    # as cut: 24, 48 and 120 px crops are 4, 4 and 16 tokens; the 20 px target < 2 tokens
    assert [before[t][0] for t in TARGETS] == [4, 4, 16]
    assert before[20][1] < 2
    # enlarged to a 448 px crop: 256 tokens, the target ~13 tokens (448 / 1.2 / 28) across
    for t in TARGETS:
        tokens, span = after[t]
        assert tokens == 256
        assert 12 <= span <= 14


def test_llava_crops_cost_a_fixed_576_tokens_and_fill_the_336_input(llava):
    processor = llava.processor()
    assert counted_image_tokens(processor, Image.new("RGB", (24, 24))) == 576  # (336 / 14)²
    for t in TARGETS:
        before, span_before = _crop_tokens(llava, t, "as_cut")
        after, span_after = _crop_tokens(llava, t, "encoder")
        assert before == after  # fixed cost; the processor enlarged the crop itself
        assert span_after == pytest.approx(span_before, abs=1)
        assert span_after == pytest.approx(24 / 1.2, abs=1)  # the target fills 1/1.2 of 336
        print(f"\nLLaVA {t} px target: {before} ({span_before:.1f}) -> {after} ({span_after:.1f})")


def test_the_plan_costs_what_the_processor_counts(qwen):
    profile = qwen.vision_profile()
    for w, h in ((24, 24), (448, 448), (1024, 768), (9000, 600), (600, 9000)):
        (image,) = qwen.prepare_images([Image.new("RGB", (w, h))])
        assert profile.image_tokens(w, h) == counted_image_tokens(qwen.processor(), image)


def test_smart_resize_is_transformers_own():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as theirs

    for h, w in ((10, 10), (24, 24), (3000, 4000), (600, 9000), (56, 57), (1000, 20)):
        assert smart_resize(h, w) == theirs(h, w)
    assert qwen_tokens(4000, 3000) == (smart_resize(3000, 4000)[0] // 28) * (
        smart_resize(3000, 4000)[1] // 28
    )


# -- item 2: boxes land at the stated coordinates --------------------------------------------
def test_llava_pads_to_a_square_and_keeps_the_edges(llava):
    width, height = 1024, 768
    box = Box(0, 300, 96, 396)  # at the left edge: centre-cropping would cut it away
    image = _scene(width, height, box)
    profile = llava.vision_profile()
    assert profile.frame == "padded_square"
    processor = llava.processor()
    mean = tuple(int(v * 255) for v in processor.image_processor.image_mean)
    assert profile.pad_colour == mean
    (prepared,) = llava.prepare_images([image])
    assert prepared.size == (1024, 1024)
    assert prepared.getpixel((512, 10)) == mean  # the top band is the mean colour
    encoded = processor(text=[processor.image_token], images=[prepared], return_tensors="pt")
    rgb = _denormalise(encoded["pixel_values"][0].numpy(), processor)
    side = rgb.shape[0]
    x1, y1, x2, y2 = frame_location(box, width, height, "padded_square")
    found = _red_extent(rgb)
    assert found.x1 == pytest.approx(x1 * side, abs=2)
    assert found.y1 == pytest.approx(y1 * side, abs=2)
    assert found.x2 == pytest.approx(x2 * side, abs=2)
    assert found.y2 == pytest.approx(y2 * side, abs=2)


def test_without_the_pad_the_llava_processor_would_crop_the_edge_away(llava):
    processor = llava.processor()
    box = Box(0, 300, 96, 396)
    raw = processor(
        text=[processor.image_token], images=[_scene(1024, 768, box)], return_tensors="pt"
    )
    rgb = _denormalise(raw["pixel_values"][0].numpy(), processor)
    mask = (rgb[..., 0] > 170) & (rgb[..., 1] < 100)
    assert not mask.any()  # the reason for the pad: a 128 px band each side is lost


def test_qwen_sees_the_native_aspect_and_the_box_where_stated(qwen):
    width, height = 1024, 768
    box = Box(700, 100, 800, 180)
    profile = qwen.vision_profile()
    assert profile.frame == "native"
    (prepared,) = qwen.prepare_images([_scene(width, height, box)])
    assert prepared.size == (width, height)
    processor = qwen.processor()
    encoded = processor(text=[processor.image_token], images=[prepared], return_tensors="pt")
    rgb = _qwen_image(encoded["pixel_values"], encoded["image_grid_thw"], processor)
    h, w = rgb.shape[:2]
    assert (h, w) == smart_resize(height, width)
    x1, y1, x2, y2 = frame_location(box, width, height, "native")
    found = _red_extent(rgb)
    assert found.x1 / w == pytest.approx(x1, abs=3 / w)
    assert found.y1 / h == pytest.approx(y1, abs=3 / h)
    assert found.x2 / w == pytest.approx(x2, abs=3 / w)
    assert found.y2 / h == pytest.approx(y2, abs=3 / h)
