"""The visual working memory as the VQA model sees it: crops sized for its encoder.

Rule. A crop cut around a found box is sent so that the object spans enough of the
encoder's patches to be read, not at the size it was cut (a 30 px target's 36 px crop
is 4 tokens to Qwen2.5-VL, as blurry as in the global view):

* native-resolution encoders (Qwen2-VL style, API models): the crop's shorter side is
  enlarged to the profile's ``crop_side`` (448 px: 16 tokens of 28 px, a square crop is
  256 tokens, SEAL's per-object share). Crops already larger are sent as cut: enlarging
  them adds tokens, not detail;
* fixed-input encoders (LLaVA: everything becomes 336x336 after the square pad): the
  crop's longer side goes to that input side, up or down; any other size adds nothing.

Budget. All images of the answer share a per-question visual-token budget
(``SealConfig.vwm_token_budget``, default per model family). The global image is costed
first, and shrinks (native encoders) until every crop can have at least a half-side
crop; what is left is split as SEAL did, the same share for one or two objects (256 each
for SEAL), evenly thinner beyond (SEAL: 32 each). A crop over its share is shrunk to
fit; with a fixed-cost encoder the budget instead bounds how many crops are shown, and
the objects beyond it keep only their location line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from PIL import Image

from seal_agent.imaging.frames import pad_to_square
from seal_agent.imaging.geometry import Box
from seal_agent.imaging.loading import ImageRef, encoded_global_view
from seal_agent.imaging.pyramid import ImagePyramid

if TYPE_CHECKING:  # the graph imports no model code until a model is used
    from seal_agent.models.vision_tokens import VisionProfile

#: The global image is never shrunk below this longer side to make room for crops.
MIN_GLOBAL_SIDE = 224


@dataclass(frozen=True)
class CropPlan:
    """One crop: its region (image pixels), the size it is sent at, its token cost."""

    region: Box
    size: tuple[int, int] | None  # None: over the budget, not shown
    tokens: int

    @property
    def shown(self) -> bool:
        return self.size is not None


@dataclass(frozen=True)
class VwmPlan:
    """Sizes and token costs of every image of the answer prompt."""

    budget: int
    global_size: tuple[int, int]
    global_tokens: int
    crops: tuple[CropPlan, ...]

    @property
    def total_tokens(self) -> int:
        return self.global_tokens + sum(c.tokens for c in self.crops)


def scaled_size(width: float, height: float, longer: float) -> tuple[int, int]:
    """``width x height`` scaled so its longer side is ``longer`` (each side >= 1)."""
    scale = longer / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def sent_tokens(profile: VisionProfile, size: tuple[int, int]) -> int:
    """Tokens of an image as sent: padded to a square first in the padded frame."""
    w, h = size
    if profile.frame == "padded_square":
        w = h = max(w, h)
    return profile.image_tokens(w, h)


def ideal_crop_size(region: Box, profile: VisionProfile) -> tuple[int, int]:
    """The size a crop is sent at when the budget allows (module docstring: Rule)."""
    w, h = max(1.0, region.width), max(1.0, region.height)
    if profile.frame == "padded_square" or profile.fixed_cost:
        return scaled_size(w, h, profile.crop_side)
    scale = max(1.0, profile.crop_side / min(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))


def fit_to_tokens(
    size: tuple[int, int], profile: VisionProfile, share: int
) -> tuple[int, int] | None:
    """The largest shrink of ``size`` costing at most ``share`` tokens (None: none does)."""
    if sent_tokens(profile, size) <= share:
        return size
    if profile.fixed_cost:
        return None
    longer = max(size)
    lo, hi = 1, longer  # cost is monotone in the longer side; lo may still be over
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sent_tokens(profile, scaled_size(*size, mid)) <= share:
            lo = mid
        else:
            hi = mid - 1
    candidate = scaled_size(*size, lo)
    return candidate if sent_tokens(profile, candidate) <= share else None


def plan_vwm(
    profile: VisionProfile,
    width: int,
    height: int,
    regions: Sequence[Box],
    budget: int,
    global_max_side: int,
    crop_sizing: Literal["encoder", "as_cut"] = "encoder",
) -> VwmPlan:
    """Sizes of the global image and of each crop under ``budget`` tokens.

    ``crop_sizing="as_cut"`` sends every crop at the size it was cut (release 0.1.0's
    behaviour, kept as the ablation that shows why the rule exists).
    """
    n = len(regions)
    side = min(global_max_side, max(width, height))
    global_size = scaled_size(width, height, side)
    global_tokens = sent_tokens(profile, global_size)
    if crop_sizing == "as_cut":
        ideal = [(max(1, round(r.width)), max(1, round(r.height))) for r in regions]
    else:
        ideal = [ideal_crop_size(r, profile) for r in regions]
    if n and not profile.fixed_cost:
        half = max(1, profile.crop_side // 2)
        floor = sent_tokens(profile, (half, half))
        while global_tokens > budget - n * floor and side > MIN_GLOBAL_SIDE:
            side = max(MIN_GLOBAL_SIDE, int(side * 0.9))
            global_size = scaled_size(width, height, side)
            global_tokens = sent_tokens(profile, global_size)
    remaining = max(0, budget - global_tokens)
    share = remaining // max(n, 2)
    crops: list[CropPlan] = []
    for region, size in zip(regions, ideal, strict=True):
        if profile.fixed_cost:
            cost = sent_tokens(profile, size)
            fitted: tuple[int, int] | None = size if cost <= remaining else None
            remaining -= cost if fitted else 0
        else:
            fitted = fit_to_tokens(size, profile, share)
        tokens = sent_tokens(profile, fitted) if fitted else 0
        crops.append(CropPlan(region=region, size=fitted, tokens=tokens))
    return VwmPlan(
        budget=budget, global_size=global_size, global_tokens=global_tokens, crops=tuple(crops)
    )


def crop_image(pyramid: ImagePyramid, region: Box, size: tuple[int, int]) -> Image.Image:
    """The region at ``size``: area-averaged when shrunk, bicubic when enlarged."""
    if size[0] <= region.width and size[1] <= region.height:
        view, _ = pyramid.view(region, max(size))
        return view if view.size == size else view.resize(size, Image.Resampling.BOX)
    return pyramid.crop(region).resize(size, Image.Resampling.BICUBIC)


def for_frame(image: Image.Image, profile: VisionProfile) -> Image.Image:
    """The image in the model's frame: padded to a square for padded-square encoders."""
    if profile.frame == "padded_square":
        return pad_to_square(image, profile.pad_colour)
    return image


def encoded_frame_view(
    ref: ImageRef,
    pyramid: ImagePyramid,
    side: int,
    image_format: Literal["png", "jpeg"],
    profile: VisionProfile,
) -> str:
    """Base64 of the global image at longer side ``side`` in the model's frame, memoised
    (the listing, each cue question and the answer show the same view)."""
    return encoded_global_view(
        ref,
        pyramid,
        side,
        image_format,
        prepare=lambda view: for_frame(view, profile),
        variant=(profile.frame, profile.pad_colour),
    )


__all__ = [
    "MIN_GLOBAL_SIDE",
    "CropPlan",
    "VwmPlan",
    "crop_image",
    "encoded_frame_view",
    "fit_to_tokens",
    "for_frame",
    "ideal_crop_size",
    "plan_vwm",
    "scaled_size",
    "sent_tokens",
]
