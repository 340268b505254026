"""The cost benchmarks (issue 12 items 5-6): replay counting and CPU smoke runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import cost_replay  # noqa: E402
import gpu_latency  # noqa: E402


def _image_block(width: int, height: int) -> dict:
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 30)).save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    return {"type": "image", "base64": data, "mime_type": "image/png"}


def test_prompt_tokens_follow_the_real_image_processor():
    config = gpu_latency.load_config("qwen2.5-vl-7b", tiny=True)
    builder = cost_replay.QwenPromptBuilder(config)
    text = "x" * 400
    messages = [
        SystemMessage(text),
        HumanMessage([_image_block(1024, 768), {"type": "text", "text": "q?"}]),
    ]
    inputs, prompt, image_tokens = builder.build(messages)
    # 1024x768 at 14 px patches merged 2x2 (the processor rounds to multiples of 28).
    assert image_tokens == (1036 // 28) * (756 // 28)
    assert prompt == int(inputs["input_ids"].shape[1])
    assert prompt > image_tokens + 100  # the system text counts too
    assert int((inputs["input_ids"] == config.image_token_id).sum()) == image_tokens
    two, _, twice = builder.build(
        [
            HumanMessage(
                [_image_block(1024, 768), _image_block(512, 512), {"type": "text", "text": "q"}]
            )
        ]
    )
    assert twice > image_tokens
    assert two["image_grid_thw"].shape[0] == 2


def test_prefill_counts_the_prompt_prefix_the_answer_reuses():
    from seal_agent.models.prefix_cache import PrefixKVCache
    from seal_agent.shapeworld.vqa_model import ReferenceVQAChatModel

    config = gpu_latency.load_config("qwen2.5-vl-7b", tiny=True)
    counters = cost_replay.Counters()
    vqa = cost_replay.VqaCost(None, config, prefix_cache=PrefixKVCache())
    chat = cost_replay.ReplayChatModel(decider=ReferenceVQAChatModel(), cost=vqa, counters=counters)
    prefix = HumanMessage([_image_block(1024, 768), {"type": "text", "text": "q" * 80}])
    chat.invoke([prefix, SystemMessage("list the missing objects " * 10)])
    listing = counters.snapshot()
    assert listing["prefill_tokens"] == listing["prompt_tokens"]  # nothing cached yet
    chat.invoke([prefix, HumanMessage([_image_block(448, 448), {"type": "text", "text": "a"}])])
    answer = counters.snapshot()
    prompt = answer["prompt_tokens"] - listing["prompt_tokens"]
    prefilled = answer["prefill_tokens"] - listing["prefill_tokens"]
    image_tokens = (1036 // 28) * (756 // 28)
    # The shared message (template, global image, question) is not prefilled again.
    assert prompt - prefilled >= image_tokens + 20
    assert prefilled >= (448 // 28) ** 2  # the crop is
    plain = cost_replay.VqaCost(None, config, prefix_cache=PrefixKVCache(), use_cache=False)
    assert plain.prefix_cache is None


@pytest.mark.slow
def test_cost_per_question_runs_and_meets_the_call_targets():
    import cost_per_question

    report = cost_per_question.run(n=1, seed=0, real="none")
    checks = report["checks"]
    assert checks["chat_calls_at_most_2"]
    assert checks["follow_up_at_most_0.3x"]
    assert checks["accuracy_unchanged"]
    assert checks["search_success_unchanged"]
    summary = report["summary"]
    assert (
        summary["after/first"]["search_views_encoded"]
        <= summary["before/first"]["search_views_encoded"]
    )
    after = summary["after/first"]
    assert after["prefill_tokens"] < after["prompt_tokens"]  # the answer reuses the prefix
    assert summary["before/first"]["prefill_tokens"] == summary["before/first"]["prompt_tokens"]


@pytest.mark.slow
def test_end_to_end_smoke_runs_on_the_cpu_with_tiny_networks(tmp_path: Path):
    out = tmp_path / "e2e.json"
    report = gpu_latency.main(
        ["--end-to-end", "--device", "cpu", "--tiny", "--questions", "1", "--out", str(out)]
    )
    assert out.exists()
    assert set(report["summary"]) == {"before", "after"}
    after = report["summary"]["after"]
    assert after["mean_chat_calls"] <= 2
    assert after["mean_seconds"] > after["mean_network_seconds"] > 0
