"""The VQA model encodes each image once per run (issue 12 item 4), outputs unchanged."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from models_fixtures import llava_dir, qwen_dir  # noqa: F401  (fixtures)
from PIL import Image

from seal_agent.models.chat import GenerationSettings, TransformersChatModel
from seal_agent.models.vision_cache import VisionFeatureCache

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _block(width: int, height: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    return {"type": "image", "base64": data, "mime_type": "image/png"}


def _calls() -> list[list]:
    """A question's calls as the graph makes them: listing, then the answer with a crop."""
    whole, crop = _block(64, 48, 1), _block(40, 40, 2)
    return [
        [
            SystemMessage("List what is missing."),
            HumanMessage([whole, {"type": "text", "text": "q?"}]),
        ],
        [
            HumanMessage(
                [{"type": "text", "text": "crops:"}, whole, crop, {"type": "text", "text": "q?"}]
            )
        ],
        [HumanMessage([whole, {"type": "text", "text": "a follow-up?"}])],
    ]


class TowerCounter:
    """Counts the images that actually go through the vision tower's forward."""

    def __init__(self, tower: Any, images_in: Any) -> None:
        self.images = 0
        self.calls = 0
        original = tower.forward

        def forward(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            self.images += images_in(args, kwargs)
            return original(*args, **kwargs)

        tower.forward = forward


def _run(
    model_dir: Path, cache_bytes: int, family: str
) -> tuple[list[str], list[int], TowerCounter, TransformersChatModel]:
    model = TransformersChatModel(
        model_id=str(model_dir),
        generation=GenerationSettings(max_new_tokens=5),
        vision_cache_bytes=cache_bytes,
        prefix_cache_bytes=0,  # this file is about the vision features alone
    )
    runtime = model.runtime()
    if family == "qwen":
        counter = TowerCounter(
            runtime.model.model.visual,
            lambda a, k: int(k.get("grid_thw", a[1] if len(a) > 1 else None).shape[0]),
        )
    else:
        counter = TowerCounter(runtime.model.model.vision_tower, lambda a, k: int(a[0].shape[0]))
    texts, prefill = [], []
    for messages in _calls():
        reply = model.invoke(messages)
        texts.append(reply.text)
        prefill.append(reply.usage_metadata["input_tokens"])
    return texts, prefill, counter, model


@pytest.mark.parametrize("family", ["qwen", "llava"])
def test_each_image_goes_through_the_vision_tower_once(family, request):
    model_dir = request.getfixturevalue("qwen_dir" if family == "qwen" else "llava_dir")
    plain_texts, plain_prefill, plain, _ = _run(model_dir, 0, family)
    texts, prefill, cached, model = _run(model_dir, 64 * 2**20, family)
    assert plain.images == 4  # whole, whole + crop, whole
    assert cached.images == 2  # whole once, the crop once
    assert cached.calls == 2  # the follow-up needs no tower call at all
    assert texts == plain_texts  # same answers
    assert prefill == plain_prefill  # the language model still prefills every token
    stats = model.vision_cache.stats
    assert stats.images_requested == 4
    assert stats.hits == 2
    assert stats.images_encoded == 2


def test_logits_equal_the_uncached_ones(qwen_dir: Path):  # noqa: F811
    import torch

    from seal_agent.models.chat import encode_prompt, limit_pixels
    from seal_agent.models.content import to_conversation

    def logits(cache_bytes: int) -> list[torch.Tensor]:
        model = TransformersChatModel(model_id=str(qwen_dir), vision_cache_bytes=cache_bytes)
        runtime = model.runtime()
        out = []
        for messages in _calls():
            conversation, images = to_conversation(messages)
            images = [limit_pixels(i, model.max_image_pixels) for i in images]
            inputs = encode_prompt(runtime, conversation, images, add_generation_prompt=True)
            with torch.inference_mode():
                out.append(runtime.model(**runtime.to_device(inputs)).logits[0, -1])
        return out

    for a, b in zip(logits(0), logits(2**26), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_the_cache_is_bounded_and_can_be_off(qwen_dir: Path):  # noqa: F811
    off = TransformersChatModel(model_id=str(qwen_dir), vision_cache_bytes=0)
    off.runtime()
    assert off.vision_cache is None
    tiny = TransformersChatModel(
        model_id=str(qwen_dir),
        generation=GenerationSettings(max_new_tokens=2),
        vision_cache_bytes=600,
    )
    for seed in range(3):
        tiny.invoke([HumanMessage([_block(56, 56, seed), {"type": "text", "text": "q?"}])])
    cache = tiny.vision_cache
    assert cache is not None
    assert cache.cached_bytes <= 600
    assert cache.stats.evictions >= 1
    with pytest.raises(ValueError, match="max_bytes"):
        VisionFeatureCache(-1)
