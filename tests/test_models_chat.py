"""TransformersChatModel on tiny random LLaVA / Qwen2.5-VL checkpoints and a LoRA adapter."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from models_fixtures import llava_dir, lora_dir, qwen_dir  # noqa: F401  (fixtures)
from PIL import Image

from seal_agent.errors import ChatModelError, InvalidImageError
from seal_agent.models.chat import GenerationSettings, TransformersChatModel, limit_pixels
from seal_agent.models.defaults import DEFAULT_VQA_MODEL_ID

pytestmark = pytest.mark.filterwarnings(
    # expected from the refused vision-tower adapter, and a peft/transformers deprecation
    "ignore:Found missing adapter keys:UserWarning",
    "ignore:`is_gradient_checkpointing` is deprecated:FutureWarning",
)


def _png_base64(width: int = 40, height: int = 30, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _question(data: str, text: str = "What colour is the cup?") -> list:
    return [
        HumanMessage(
            content=[
                {"type": "image", "base64": data, "mime_type": "image/png"},
                {"type": "text", "text": text},
            ]
        )
    ]


@pytest.fixture(scope="module")
def llava(llava_dir: Path) -> TransformersChatModel:  # noqa: F811
    return TransformersChatModel(
        model_id=str(llava_dir), generation=GenerationSettings(max_new_tokens=6)
    )


def test_default_model_builds_without_weights() -> None:
    model = TransformersChatModel()
    assert model.model_id == DEFAULT_VQA_MODEL_ID
    assert not model.is_loaded
    assert model._llm_type == "transformers-chat"
    params = model._identifying_params
    assert params["model_id"] == DEFAULT_VQA_MODEL_ID
    assert params["max_new_tokens"] == 512
    assert params["do_sample"] is False


def test_llava_answers_image_and_text_through_the_chat_template(
    llava: TransformersChatModel,
) -> None:
    data = _png_base64()
    reply = llava.invoke(_question(data))
    assert isinstance(reply, AIMessage)
    assert isinstance(reply.content, str)
    runtime = llava.runtime()
    # Same answer as the processor + generate path done by hand.
    image = Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
    conversation = [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": "What colour is the cup?"}],
        }
    ]
    prompt = runtime.processor.apply_chat_template(conversation, add_generation_prompt=True)
    assert prompt == "USER: <image>\nWhat colour is the cup? ASSISTANT:"
    # LLaVA-1.5's expand2square: the 40x30 image centred in a square of the processor's mean
    mean = tuple(int(v * 255) for v in runtime.processor.image_processor.image_mean)
    square = Image.new("RGB", (40, 40), mean)
    square.paste(image, (0, 5))
    inputs = runtime.processor(text=[prompt], images=[square], return_tensors="pt")
    with torch.no_grad():
        ids = runtime.model.generate(**inputs, max_new_tokens=6, do_sample=False)
    expected = runtime.processor.tokenizer.decode(
        ids[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True
    ).strip()
    assert reply.content == expected
    usage = reply.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] == inputs["input_ids"].shape[1]
    assert 1 <= usage["output_tokens"] <= 6
    assert reply.response_metadata["model_name"] == llava.model_id


def test_openai_data_url_and_v1_block_give_the_same_answer(llava: TransformersChatModel) -> None:
    data = _png_base64(seed=1)
    v1 = llava.invoke(_question(data))
    openai_style = llava.invoke(
        [
            HumanMessage(
                content=[
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
                    {"type": "text", "text": "What colour is the cup?"},
                ]
            )
        ]
    )
    assert v1.content == openai_style.content


def test_text_only_and_system_messages(llava: TransformersChatModel) -> None:
    reply = llava.invoke([SystemMessage("Be brief."), HumanMessage("Hello?")])
    assert isinstance(reply.content, str)


def test_generation_settings_and_per_call_overrides(llava: TransformersChatModel) -> None:
    reply = llava.invoke(_question(_png_base64()), max_new_tokens=2)
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["output_tokens"] <= 2
    assert GenerationSettings(do_sample=True, temperature=0.5).generate_kwargs()[
        "temperature"
    ] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationSettings(max_new_tokens=0)


def test_stop_sequences_end_the_answer(llava_dir: Path) -> None:  # noqa: F811
    model = TransformersChatModel(
        model_id=str(llava_dir), generation=GenerationSettings(max_new_tokens=12)
    )
    full = str(model.invoke("Hello there, what is it?").content)
    cut = next(i for i, ch in enumerate(full) if i > 0 and ch.isascii() and ch.isprintable())
    stopped = model.invoke("Hello there, what is it?", stop=[full[cut]])
    assert stopped.content == full[:cut].strip()
    assert stopped.response_metadata["finish_reason"] == "stop"


def test_bad_images_are_named(llava: TransformersChatModel) -> None:
    with pytest.raises(InvalidImageError, match="cannot be decoded"):
        llava.invoke(_question(base64.b64encode(b"not an image").decode()))
    with pytest.raises(InvalidImageError, match="not fetched"):
        llava.invoke(
            [HumanMessage(content=[{"type": "image", "url": "https://example.com/a.png"}])]
        )


def test_large_images_are_downscaled_to_the_pixel_budget() -> None:
    image = Image.new("RGB", (4000, 3000))
    small = limit_pixels(image, 1_000_000)
    assert small.width * small.height <= 1_000_000
    assert small.width / small.height == pytest.approx(4 / 3, rel=0.01)
    assert limit_pixels(image, None) is image


def test_missing_checkpoint_raises_chat_model_error(tmp_path: Path) -> None:
    model = TransformersChatModel(model_id=str(tmp_path / "nowhere"))
    with pytest.raises(ChatModelError, match="could not load"):
        model.invoke("hi")


def test_lora_adapter_is_applied_to_the_language_model_only(
    llava_dir: Path,  # noqa: F811
    lora_dir: Path,  # noqa: F811
) -> None:
    from peft.tuners.lora import LoraLayer

    adapted = TransformersChatModel(model_id=str(llava_dir), adapter=str(lora_dir))
    runtime = adapted.runtime()
    lora_modules = [n for n, m in runtime.model.named_modules() if isinstance(m, LoraLayer)]
    # 2 layers x (q_proj, v_proj) in the language model; CLIP's q_proj/v_proj untouched.
    assert len(lora_modules) == 4
    assert all(f".{runtime.language_model_path}." in n for n in lora_modules)
    assert not any("vision_tower" in n for n in lora_modules)
    # The adapter's (non-zero) weights are loaded: outputs differ from the base model.
    base = TransformersChatModel(model_id=str(llava_dir)).runtime()
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        lora_logits = runtime.model(input_ids=ids).logits
        base_logits = base.model(input_ids=ids).logits
    assert not torch.allclose(lora_logits, base_logits, atol=1e-4)
    # Merged: same function, no LoRA layers left.
    merged = TransformersChatModel(
        model_id=str(llava_dir), adapter=str(lora_dir), merge_adapter=True
    ).runtime()
    assert not any(isinstance(m, LoraLayer) for m in merged.model.modules())
    with torch.no_grad():
        merged_logits = merged.model(input_ids=ids).logits
    torch.testing.assert_close(merged_logits, lora_logits, atol=1e-4, rtol=1e-4)


def test_adapter_reaching_into_the_vision_tower_is_refused(
    llava_dir: Path,  # noqa: F811
    lora_dir: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    import shutil

    bad = tmp_path / "bad_adapter"
    shutil.copytree(lora_dir, bad)
    config = json.loads((bad / "adapter_config.json").read_text())
    config["target_modules"] = r".*vision_tower.*\.q_proj"
    (bad / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ChatModelError, match="outside the language model"):
        TransformersChatModel(model_id=str(llava_dir), adapter=str(bad)).runtime()


def test_qwen2_5_vl_answers_through_from_pretrained(qwen_dir: Path) -> None:  # noqa: F811
    model = TransformersChatModel(
        model_id=str(qwen_dir), generation=GenerationSettings(max_new_tokens=4)
    )
    reply = model.invoke(_question(_png_base64(64, 48)))
    assert isinstance(reply.content, str)
    runtime = model.runtime()
    assert type(runtime.processor).__name__ == "Qwen2_5_VLProcessor"
    usage = reply.usage_metadata
    assert usage is not None
    # 64x48 -> 56x56 after Qwen's 28-px rounding and min_pixels -> 2x2 merged tokens.
    image_pad = runtime.processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "x"}]}]
    prompt = runtime.processor.apply_chat_template(conversation, add_generation_prompt=True)
    image = Image.new("RGB", (64, 48))
    encoded = runtime.processor(text=[prompt], images=[image], return_tensors="pt")
    assert int((encoded["input_ids"] == image_pad).sum()) == int(
        encoded["image_grid_thw"].prod() // 4
    )


def test_bfloat16_on_cpu_generates(llava_dir: Path) -> None:  # noqa: F811
    model = TransformersChatModel(
        model_id=str(llava_dir), dtype="bfloat16", generation=GenerationSettings(max_new_tokens=2)
    )
    reply = model.invoke(_question(_png_base64()))
    assert isinstance(reply.content, str)
    assert next(model.runtime().model.parameters()).dtype == torch.bfloat16
