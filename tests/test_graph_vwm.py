"""The VWM as the VQA model sees it: crop sizes, the token budget, frames, best-box policy."""

from __future__ import annotations

import base64
import io

import pytest
from langchain_core.language_models import BaseChatModel
from PIL import Image
from test_graph_fakes import ColourSearchModel, ScriptedChatModel, count_images, seal_script

from seal_agent.graph import build_graph
from seal_agent.graph.generation import token_limit_kwargs
from seal_agent.graph.vwm import ideal_crop_size, plan_vwm
from seal_agent.imaging.geometry import Box
from seal_agent.models.chat import GenerationSettings, TransformersChatModel
from seal_agent.models.vision_tokens import (
    ANTHROPIC_PROFILE,
    DEFAULT_PROFILE,
    GEMINI_PROFILE,
    LLAVA_PROFILE,
    OPENAI_PROFILE,
    QWEN_PROFILE,
    anthropic_tokens,
    gemini_tokens,
    openai_tokens,
    profile_for,
)


class LlavaServedChat(ScriptedChatModel):
    """A LLaVA behind an API (e.g. vLLM through ChatOpenAI): known by its model name."""

    model_name: str = "llava-hf/llava-1.5-7b-hf"


def _images(messages) -> list[Image.Image]:
    return [
        Image.open(io.BytesIO(base64.b64decode(b["base64"])))
        for m in messages
        if isinstance(m.content, list)
        for b in m.content
        if isinstance(b, dict) and b.get("type") == "image"
    ]


# -- planning ---------------------------------------------------------------------------------
def test_native_crops_are_enlarged_to_the_crop_side_and_larger_ones_kept():
    assert ideal_crop_size(Box(0, 0, 24, 24), QWEN_PROFILE) == (448, 448)
    assert ideal_crop_size(Box(0, 0, 48, 24), QWEN_PROFILE) == (896, 448)  # shorter side
    assert ideal_crop_size(Box(0, 0, 900, 600), QWEN_PROFILE) == (900, 600)  # no upscale
    assert ideal_crop_size(Box(0, 0, 24, 12), LLAVA_PROFILE) == (336, 168)  # longer side
    assert ideal_crop_size(Box(0, 0, 1200, 600), LLAVA_PROFILE) == (336, 168)


def test_one_or_two_targets_get_the_full_share_more_targets_split_the_rest():
    region = Box(0, 0, 36, 36)
    for n in (1, 2):
        plan = plan_vwm(QWEN_PROFILE, 4000, 3000, [region] * n, 2048, 1024)
        assert [c.tokens for c in plan.crops] == [256] * n  # SEAL: 256 per object
        assert plan.total_tokens <= 2048
    five = plan_vwm(QWEN_PROFILE, 4000, 3000, [region] * 5, 2048, 1024)
    assert all(c.shown and c.tokens < 256 for c in five.crops)
    assert five.total_tokens <= 2048
    assert min(c.size[0] for c in five.crops if c.size) >= 224  # still readable


def test_a_tight_budget_shrinks_the_global_image_before_the_crops_vanish():
    region = Box(0, 0, 36, 36)
    roomy = plan_vwm(QWEN_PROFILE, 4000, 3000, [region] * 3, 4096, 1024)
    tight = plan_vwm(QWEN_PROFILE, 4000, 3000, [region] * 3, 800, 1024)
    assert max(tight.global_size) < max(roomy.global_size)
    assert all(c.shown for c in tight.crops)
    assert tight.total_tokens <= 800


def test_a_fixed_cost_encoder_shows_as_many_crops_as_the_budget_holds():
    plan = plan_vwm(LLAVA_PROFILE, 4000, 3000, [Box(0, 0, 36, 36)] * 4, 576 * 3, 1024)
    assert [c.shown for c in plan.crops] == [True, True, False, False]
    assert plan.total_tokens == 576 * 3


def test_as_cut_sends_the_crop_as_it_was_cut():
    plan = plan_vwm(QWEN_PROFILE, 4000, 3000, [Box(0, 0, 36, 30)], 2048, 1024, "as_cut")
    assert plan.crops[0].size == (36, 30)
    assert plan.crops[0].tokens == 6  # smart_resize: 84x56


# -- per-family rules -------------------------------------------------------------------------
def test_api_families_follow_their_published_rules():
    assert openai_tokens(1024, 1024) == 765  # OpenAI's worked example
    assert openai_tokens(2048, 4096) == 1105  # ditto: 768x1536, 6 tiles
    assert anthropic_tokens(1000, 1000) == 1334  # Anthropic: ~1334 for 1000x1000
    assert anthropic_tokens(1092, 1092) == pytest.approx(1590, abs=2)
    assert gemini_tokens(384, 384) == 258
    assert gemini_tokens(1024, 768) == 2 * 258


class ChatOpenAI(ScriptedChatModel):  # the name is what the lookup reads
    model_name: str = "gpt-4o"
    max_tokens: int | None = None


def test_models_are_costed_by_family():
    script = seal_script()
    assert profile_for(ChatOpenAI(script=script)) is OPENAI_PROFILE
    assert profile_for(ChatOpenAI(script=script, model_name="Qwen/Qwen2.5-VL-7B")) is QWEN_PROFILE
    assert profile_for(LlavaServedChat(script=script)) is LLAVA_PROFILE
    claude = ScriptedChatModel(script=script)
    object.__setattr__(claude, "model", "claude-sonnet-4-5")
    assert profile_for(claude) is ANTHROPIC_PROFILE
    gemini = ScriptedChatModel(script=script)
    object.__setattr__(gemini, "model", "gemini-2.5-flash")
    assert profile_for(gemini) is GEMINI_PROFILE
    assert profile_for(ScriptedChatModel(script=script)) is DEFAULT_PROFILE


def test_generation_limits_use_each_providers_keyword():
    local = TransformersChatModel(generation=GenerationSettings(max_new_tokens=20))
    assert token_limit_kwargs(local, 96) == {"max_new_tokens": 20}  # the tighter one wins
    assert token_limit_kwargs(TransformersChatModel(), 96) == {"max_new_tokens": 96}
    assert token_limit_kwargs(ChatOpenAI(script=seal_script()), 48) == {"max_tokens": 48}
    unknown: BaseChatModel = ScriptedChatModel(script=seal_script())
    assert token_limit_kwargs(unknown, 48) == {}


def test_the_checkpoints_repetition_penalty_is_overridden():
    kwargs = GenerationSettings().generate_kwargs()
    assert kwargs["repetition_penalty"] == 1.0  # passed, so Qwen's 1.05 does not apply


# -- the graph ----------------------------------------------------------------------------------
def test_a_llava_style_model_gets_square_images_and_square_frame_coordinates(scene_path, config):
    chat = LlavaServedChat(script=seal_script("red square"))
    build_graph(chat, ColourSearchModel(), config).invoke(
        {"image": scene_path, "question": "What colour is the square?"}
    )
    for call in chat.calls:
        assert all(i.width == i.height for i in _images(call))
    listing_global = _images(chat.calls[0])[0]
    assert listing_global.size == (1024, 1024)  # the 2000x1500 scene padded, not squashed
    assert listing_global.getpixel((512, 20)) == LLAVA_PROFILE.pad_colour
    # 2000x1500 in a 2000 square: 250 px bands above and below
    assert "[0.750,0.675,0.760,0.685]" in chat.prompts[-1]


def test_a_native_model_gets_the_native_aspect(scene_path, config):
    chat = ScriptedChatModel(script=seal_script("red square"))
    build_graph(chat, ColourSearchModel(), config).invoke(
        {"image": scene_path, "question": "What colour is the square?"}
    )
    assert _images(chat.calls[0])[0].size == (1024, 768)
    assert "[0.750,0.733,0.760,0.747]" in chat.prompts[-1]


def test_the_answer_reports_its_visual_tokens(scene_path, config):
    chat = ScriptedChatModel(script=seal_script())
    out = build_graph(chat, ColourSearchModel(), config).invoke(
        {"image": scene_path, "question": "What colour is the square?"}
    )
    answered = next(e for e in out["events"] if e["event"] == "answered")
    assert answered["visual_token_budget"] == DEFAULT_PROFILE.default_budget
    assert answered["visual_tokens"] <= answered["visual_token_budget"]
    assert answered["visual_tokens"] >= 2 * 256  # two enlarged crops


def test_a_budget_too_small_for_all_crops_warns(scene_path, config):
    chat = LlavaServedChat(script=seal_script())
    tight = config.model_copy(update={"vwm_token_budget": 2 * 576})
    out = build_graph(chat, ColourSearchModel(), tight).invoke(
        {"image": scene_path, "question": "What colour is the square?"}
    )
    assert count_images(chat.calls[-1]) == 2  # global + one crop
    assert any("leaves no crop" in w for w in out["warnings"])
    assert "blue square <object> at location" in chat.prompts[-1]  # location still given


def test_best_box_policy_shows_a_failed_searchs_best_guess(scene_path, config):
    # The colour model scores the too-small square below confidence_high at coarse views;
    # with a single-patch budget the search stops with only its best box, kept below
    # confidence_low so the budget's fallback (issue 7) does not count it as found.
    capped = config.model_copy(
        update={
            "context_cue": False,
            "search": config.search.model_copy(update={"max_calls": 1, "confidence_low": 0.5}),
        }
    )
    default_chat = ScriptedChatModel(script=seal_script("red square"))
    out = build_graph(default_chat, ColourSearchModel(), capped).invoke(
        {"image": scene_path, "question": "What colour is the square?"}
    )
    search = out["searches"]["red square"]
    assert not search["found"]
    assert search["box"] is not None
    assert "<object>" not in default_chat.prompts[-1]
    reference = capped.model_copy(update={"answer_with_best_box": True})
    chat = ScriptedChatModel(script=seal_script("red square"))
    out = build_graph(chat, ColourSearchModel(), reference).invoke(
        {"image": scene_path, "question": "What colour is the square?"}
    )
    assert out["searches"]["red square"]["box"] is not None  # its best (fallback) guess
    assert "red square <object> at location" in chat.prompts[-1]
    assert count_images(chat.calls[-1]) == 2


def test_the_reference_protocol_turns_the_best_box_policy_on():
    from seal_agent.graph import SealConfig

    assert SealConfig().answer_with_best_box is False
    reference = SealConfig.reference_protocol(max_targets=3)
    assert reference.answer_with_best_box is True
    assert reference.search.strategy == "seal"
    assert reference.max_targets == 3


def test_each_node_asks_for_its_own_generation_limit(scene_path, config):
    limits: list[int] = []

    class TransformersChatModel(ScriptedChatModel):  # named like the class the limit keys on
        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            limits.append(kwargs["max_new_tokens"])
            return super()._generate(messages, stop, run_manager, **kwargs)

    chat = TransformersChatModel(script=seal_script("red square"))
    build_graph(chat, ColourSearchModel(), config).invoke(
        {"image": scene_path, "question": "What colour is the square?"}
    )
    budget = config.max_new_tokens
    cues = [i for i, p in enumerate(chat.prompts) if "most likely location" in p]
    assert limits[0] == budget.listing
    assert all(limits[i] == budget.context_cue for i in cues)
    assert limits[-1] == budget.answer
