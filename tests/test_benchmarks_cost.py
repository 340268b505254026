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
    assert checks["before_matches_release_0.1.0"]
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


#: The cost benchmark's first scenes (``--n 4 --seed 0``): seed -> (width, height, subset).
RELEASE_0_1_0_SCENES = {
    0: (2246, 1582, "direct_attributes"),
    1: (2246, 1582, "relative_position"),
    2: (4000, 3000, "direct_attributes"),
    3: (4000, 3000, "relative_position"),
    4: (7680, 4320, "direct_attributes"),
    5: (7680, 4320, "relative_position"),
}
#: Release 0.1.0's own engine on those scenes:
#: ``VStarSearch(ReferenceSearchModel(), SearchConfig())`` run from a checkout of commit
#: 5fbd7ef0a5456e368dece21fdeae1b1431e5b036 (``release_baseline.RELEASE_COMMIT``), the
#: contextual cue "table". Per target: patches scored, stop reason, box (0.1 px) and a
#: digest of the patch sequence (``_trace_digest``). The scenes are generated, not stored.
# fmt: off
RELEASE_0_1_0_SEARCHES = [
    (0, "triangle", 2, "found", [1888.0, 1393.0, 1915.0, 1420.0], "48efc3e504d83c15"),
    (1, "triangle", 2, "found", [1299.5, 61.5, 1330.0, 92.0], "285a3ac234214868"),
    (1, "square", 3, "found", [623.7, 366.9, 635.8, 379.0], "c13e39b7851e330f"),
    (2, "cross", 4, "found", [2407.6, 1019.6, 2434.0, 1046.0], "c1ea00d203e4c6e4"),
    (3, "square", 2, "found", [1596.3, 63.7, 1634.7, 102.2], "4ae826b34b056365"),
    (3, "cross", 5, "found", [2420.6, 174.6, 2438.0, 192.0], "432d4b19bb14cbff"),
    (4, "circle", 29, "found", [3289.0, 2370.0, 3301.0, 2382.0], "2815bb852682b10d"),
    (5, "star", 9, "found", [951.8, 1963.3, 977.2, 1988.8], "d4687bc7a38ef5c5"),
    (5, "square", 7, "found", [2192.0, 2433.0, 2212.0, 2453.0], "2228f46a3d573fb2"),
]
# fmt: on


def _trace_digest(result) -> str:
    import hashlib
    import json

    patches = [[round(v, 1) for v in step.patch] for step in result.trace]
    return hashlib.sha256(json.dumps(patches).encode()).hexdigest()[:16]


def _release_scenes() -> dict[int, object]:
    from seal_agent.shapeworld.scene import generate_scene

    return {
        seed: generate_scene(seed, width=width, height=height, kind=kind)
        for seed, (width, height, kind) in RELEASE_0_1_0_SCENES.items()
    }


def _searches(config, scenes: dict[int, object]) -> list[tuple]:
    from seal_agent.search import VStarSearch
    from seal_agent.shapeworld.search_model import ReferenceSearchModel

    engine = VStarSearch(ReferenceSearchModel(), config)
    out = []
    for seed, target, *_ in RELEASE_0_1_0_SEARCHES:
        result = engine.search(scenes[seed].image, target, context_cue=lambda _: "table")
        box = None if result.box is None else [round(v, 1) for v in result.box]
        digest = _trace_digest(result)
        out.append((seed, target, result.patches_scored, result.stop_reason, box, digest))
    return out


@pytest.mark.slow
def test_release_configuration_scores_the_patches_release_0_1_0_scored():
    """The cost benchmark's "before" is today's code switched back to the release: it
    must visit the release's patches, in its order, and return its boxes."""
    import release_baseline

    from seal_agent.search import SearchConfig

    assert release_baseline.RELEASE_COMMIT.startswith("5fbd7ef")
    scenes = _release_scenes()
    assert _searches(release_baseline.release_search_config(), scenes) == RELEASE_0_1_0_SEARCHES
    # Today's defaults search differently on these scenes (else this proves nothing),
    # and each switch matters: leaving any one of them on changes some search.
    assert _searches(SearchConfig(), scenes) != RELEASE_0_1_0_SEARCHES
    for name, value in release_baseline.RELEASE_SEARCH_FIELDS.items():
        today = SearchConfig.model_fields[name].default
        assert value != today
        changed = release_baseline.release_search_config(**{name: today})
        assert _searches(changed, scenes) != RELEASE_0_1_0_SEARCHES, name
