"""How a transformers processor sees images: frame, square padding, token cost.

LLaVA-1.5 (and SEAL) pad every image to a square with the image processor's mean
colour before resizing (``expand2square``). The llava-hf checkpoints' processor instead
resizes the shorter side to 336 and centre-crops, so a 1024x768 image loses a 128 px
band on each side. A processor that would centre-crop is therefore given images padded
to a square first: the crop then removes nothing. Processors that keep the aspect
(Qwen2-VL's ``smart_resize``) get the image as it is.

The token cost of a ``w x h`` image is the processor's own count
(``_get_num_multimodal_tokens``, what vLLM uses to plan its batches), checked against
and, where that method is missing, replaced by counting the image tokens the processor
actually writes for a blank image of that size.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, partial
from typing import Any

from PIL import Image

from seal_agent.imaging.frames import CLIP_MEAN_RGB, pad_to_square
from seal_agent.models.vision_tokens import NATIVE_CROP_SIDE, VisionProfile


def limit_pixels(image: Image.Image, max_pixels: int | None) -> Image.Image:
    """Downscale (aspect kept) so the image has at most ``max_pixels`` pixels."""
    if max_pixels is None or image.width * image.height <= max_pixels:
        return image
    scale = (max_pixels / (image.width * image.height)) ** 0.5
    size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)


def square_pad_colour(processor: Any) -> tuple[int, int, int] | None:
    """The pad colour where the image processor would centre-crop (LLaVA), else None."""
    image_processor = getattr(processor, "image_processor", processor)
    if not getattr(image_processor, "do_center_crop", False):
        return None
    mean = getattr(image_processor, "image_mean", None)
    if isinstance(mean, list | tuple) and len(mean) == 3:
        r, g, b = (int(float(v) * 255) for v in mean)  # expand2square's int(x * 255)
        return (r, g, b)
    return CLIP_MEAN_RGB


def prepare_images(
    images: list[Image.Image], processor: Any, max_pixels: int | None
) -> list[Image.Image]:
    """Images as the processor should get them: pixel-limited, square-padded if it crops."""
    colour = square_pad_colour(processor)
    prepared = [limit_pixels(image, max_pixels) for image in images]
    if colour is not None:
        prepared = [pad_to_square(image, colour) for image in prepared]
    return prepared


def processor_image_tokens(processor: Any, max_pixels: int | None, width: int, height: int) -> int:
    """Visual tokens the processor spends on a ``width x height`` image."""
    probe = Image.new("RGB", (max(1, width), max(1, height)))
    (image,) = prepare_images([probe], processor, max_pixels)
    counter = getattr(processor, "_get_num_multimodal_tokens", None)
    if callable(counter):
        try:
            counts = counter(image_sizes=[(image.height, image.width)])["num_image_tokens"]
            return int(counts[0])
        except (AttributeError, KeyError, TypeError, ValueError, IndexError):
            pass
    return counted_image_tokens(processor, image)


def counted_image_tokens(processor: Any, image: Image.Image) -> int:
    """Image tokens in the ids the processor writes for one image (the ground truth)."""
    token = getattr(processor, "image_token", None) or "<image>"
    token_id = getattr(processor, "image_token_id", None)
    if token_id is None:
        token_id = processor.tokenizer.convert_tokens_to_ids(token)
    encoded = processor(text=[token], images=[image], return_tensors="pt")
    return int((encoded["input_ids"][0] == token_id).sum())


def processor_profile(processor: Any, max_pixels: int | None) -> VisionProfile:
    """The :class:`VisionProfile` of a chat model that uses ``processor``."""
    colour = square_pad_colour(processor)
    tokens: Callable[[int, int], int] = lru_cache(maxsize=4096)(
        partial(processor_image_tokens, processor, max_pixels)
    )
    fixed = tokens(64, 64) == tokens(1024, 768)
    if colour is not None:
        image_processor = getattr(processor, "image_processor", processor)
        crop = getattr(image_processor, "crop_size", None) or {}
        side = int(crop.get("height") or crop.get("shortest_edge") or 336)
        return VisionProfile(
            family="transformers-padded",
            frame="padded_square",
            crop_side=side,
            tokens=tokens,
            default_budget=6 * tokens(side, side),
            fixed_cost=fixed,
            pad_colour=colour,
        )
    return VisionProfile(
        family="transformers-native",
        frame="native",
        crop_side=NATIVE_CROP_SIDE,
        tokens=tokens,
        default_budget=2048,
        fixed_cost=fixed,
    )


__all__ = [
    "counted_image_tokens",
    "limit_pixels",
    "prepare_images",
    "processor_image_tokens",
    "processor_profile",
    "square_pad_colour",
]
