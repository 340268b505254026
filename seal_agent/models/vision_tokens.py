"""What an image costs a VQA model in visual tokens, and the frame it is seen in.

The VWM (``seal_agent.graph.vwm``) sizes every crop so the found object spans enough of
the encoder's patches, under a per-question token budget. For that it needs, per chat
model, a :class:`VisionProfile`: the frame (native aspect or padded square), the crop
side that makes a crop readable, the token cost of a ``w x h`` image, and a default
budget. ``TransformersChatModel`` builds its profile from its own processor; a model
with a ``vision_profile()`` method (the shape-world reference) answers for itself; any
other chat model gets its provider's published rule from this table:

============  ===========================================================  =============
family        cost of a ``w x h`` image (as the provider documents it)     frame
============  ===========================================================  =============
qwen2-vl      ``smart_resize`` to multiples of 28 px within [56², 1280·28²]  native
              px, one token per 28x28 (14 px patches merged 2x2)
llava         fixed: (336 / 14)² = 576 (CLIP ViT-L/14 at 336, padded square) padded_square
openai        GPT-4o "high" detail: fit 2048², shorter side to 768, then      native
              85 + 170 per 512 px tile
anthropic     long edge <= 1568 px and <= 1600 tokens, then ``w * h / 750``  native
gemini        258 if both sides <= 384 px, else 258 per 768 px tile         native
default       as qwen2-vl (28 px tokens, at most 1280 per image)            native
============  ===========================================================  =============

Sources: Qwen2.5-VL's image processor (``smart_resize``), LLaVA-1.5's config, OpenAI's
vision guide ("Calculating costs"), Anthropic's vision guide ("Calculate image costs"),
Gemini's token documentation (images). Provider rules change; a profile can always be
given explicitly (``SealConfig.vwm_token_budget`` sets the budget).

Crop side: the shorter side a crop is enlarged to. 448 px for native encoders (16
tokens of 28 px across, 256 tokens for a square crop: SEAL's 256 tokens per object);
the encoder's input for fixed-size ones (336 for LLaVA-1.5: it resizes to that anyway).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from seal_agent.errors import ChatModelError, describe
from seal_agent.imaging.frames import CLIP_MEAN_RGB, Frame

#: Crop side for native-resolution encoders: 16 tokens of 28 px (256 for a square).
NATIVE_CROP_SIDE = 448
QWEN_PATCH = 14
QWEN_MERGE = 2
QWEN_MIN_PIXELS = 56 * 56
QWEN_MAX_PIXELS = 1280 * 28 * 28
LLAVA_TOKENS = 576
#: Largest crop side a model's own profile may ask for: every VWM crop is enlarged to it
#: before its token cost is fitted to the budget, and a fixed-cost encoder is not fitted.
MAX_CROP_SIDE = 4096


@dataclass(frozen=True)
class VisionProfile:
    """How one chat model sees images (see the module docstring for the families).

    ``fixed_cost`` marks encoders that spend the same tokens on any image (LLaVA): there
    the budget limits how many crops are shown, not how large they are.
    """

    family: str
    frame: Frame
    crop_side: int
    tokens: Callable[[int, int], int]
    default_budget: int
    fixed_cost: bool = False
    pad_colour: tuple[int, int, int] = CLIP_MEAN_RGB

    def image_tokens(self, width: int, height: int) -> int:
        """Visual tokens the model spends on a ``width x height`` image."""
        w, h = max(1, int(width)), max(1, int(height))
        try:  # a third-party model's own rule: its faults are the chat model's
            tokens = int(self.tokens(w, h))
        except Exception as exc:
            raise ChatModelError(
                f"the vision profile {self.family!r} could not cost a {w}x{h} image: "
                f"{describe(exc)}"
            ) from exc
        if tokens < 0:
            raise ChatModelError(
                f"the vision profile {self.family!r} costs a {w}x{h} image {tokens} tokens"
            )
        return tokens


# -- per-family rules -------------------------------------------------------------------------
def smart_resize(
    height: int,
    width: int,
    factor: int = QWEN_PATCH * QWEN_MERGE,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> tuple[int, int]:
    """Qwen2-VL's resize rule: sides multiples of ``factor``, area within the bounds.

    A copy of ``transformers.models.qwen2_vl.image_processing_pil_qwen2_vl.smart_resize``
    (tested equal to it) so that costing an image does not import transformers.
    """
    height, width = max(1, height), max(1, width)
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def qwen_tokens(
    width: int,
    height: int,
    *,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
    patch: int = QWEN_PATCH,
    merge: int = QWEN_MERGE,
) -> int:
    factor = patch * merge
    h, w = smart_resize(height, width, factor, min_pixels, max_pixels)
    return (h // factor) * (w // factor)


def openai_tokens(width: int, height: int) -> int:
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


def anthropic_tokens(width: int, height: int) -> int:
    scale = min(1.0, 1568 / max(width, height), math.sqrt(1600 * 750 / (width * height)))
    return math.ceil(width * scale * height * scale / 750)


def gemini_tokens(width: int, height: int) -> int:
    if width <= 384 and height <= 384:
        return 258
    return 258 * math.ceil(width / 768) * math.ceil(height / 768)


QWEN_PROFILE = VisionProfile("qwen2-vl", "native", NATIVE_CROP_SIDE, qwen_tokens, 2048)
#: LLaVA-1.5: 576 tokens per image whatever its size; its 4096-token context holds the
#: global image and 5 crops (3456 tokens) with 640 left for text.
LLAVA_PROFILE = VisionProfile(
    "llava", "padded_square", 336, lambda w, h: LLAVA_TOKENS, 6 * LLAVA_TOKENS, fixed_cost=True
)
OPENAI_PROFILE = VisionProfile("openai", "native", 512, openai_tokens, 2048)
ANTHROPIC_PROFILE = VisionProfile("anthropic", "native", NATIVE_CROP_SIDE, anthropic_tokens, 2048)
GEMINI_PROFILE = VisionProfile("gemini", "native", 384, gemini_tokens, 2048)
DEFAULT_PROFILE = VisionProfile("default", "native", NATIVE_CROP_SIDE, qwen_tokens, 2048)


def _model_names(model: object) -> str:
    names = [type(model).__name__]
    for attr in ("model_name", "model", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str):
            names.append(value)
    return " ".join(names).lower()


def profile_for(model: object) -> VisionProfile:
    """The model's own ``vision_profile()``, else its family's rule from the table."""
    try:
        own = getattr(model, "vision_profile", None)
        profile = own() if callable(own) else None
    except Exception as exc:
        raise ChatModelError(
            f"the VQA chat model's vision_profile() raised {describe(exc)}"
        ) from exc
    if isinstance(profile, VisionProfile):
        side = profile.crop_side
        if isinstance(side, bool) or not isinstance(side, int) or not 1 <= side <= MAX_CROP_SIDE:
            raise ChatModelError(
                f"the VQA chat model's vision profile has crop_side {side!r}; expected "
                f"1 to {MAX_CROP_SIDE} px (crops are enlarged to it)"
            )
        return profile
    return _profile_by_name(_model_names(model))


@lru_cache(maxsize=64)
def _profile_by_name(names: str) -> VisionProfile:
    # Open checkpoints first: a vLLM server behind ChatOpenAI serves Qwen or LLaVA.
    if "llava" in names:
        return LLAVA_PROFILE
    if "qwen" in names:
        return QWEN_PROFILE
    if "anthropic" in names or "claude" in names:
        return ANTHROPIC_PROFILE
    if "gemini" in names or "googlegenerativeai" in names or "vertex" in names:
        return GEMINI_PROFILE
    if "openai" in names or any(f" {p}" in f" {names}" for p in ("gpt-", "o1", "o3", "o4")):
        return OPENAI_PROFILE
    return DEFAULT_PROFILE


__all__ = [
    "ANTHROPIC_PROFILE",
    "DEFAULT_PROFILE",
    "GEMINI_PROFILE",
    "LLAVA_PROFILE",
    "MAX_CROP_SIDE",
    "NATIVE_CROP_SIDE",
    "OPENAI_PROFILE",
    "QWEN_PROFILE",
    "VisionProfile",
    "anthropic_tokens",
    "gemini_tokens",
    "openai_tokens",
    "profile_for",
    "qwen_tokens",
    "smart_resize",
]
