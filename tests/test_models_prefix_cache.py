"""Prompt-prefix KV reuse (issue 12 item 4): the answer call prefills only what follows
the listing's prefix, with the same outputs, on tiny Qwen2.5-VL and LLaVA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from models_fixtures import llava_dir, lora_dir, qwen_dir  # noqa: F401  (fixtures)
from test_models_vision_cache import TowerCounter, _block

from seal_agent.models.chat import GenerationSettings, TransformersChatModel, encode_prompt
from seal_agent.models.content import to_conversation
from seal_agent.models.prefix_cache import (
    ImageSpan,
    PrefixKVCache,
    PromptLayout,
    generate_with_prefix_cache,
    prompt_layout,
    shared_prefix,
)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

QUESTION = {"type": "text", "text": "What is the colour of the small star next to the table?"}


def _prefix(image: dict[str, Any]) -> HumanMessage:
    return HumanMessage([image, QUESTION])


def _calls() -> list[list[BaseMessage]]:
    """A question's calls as the graph now makes them, with another image's listing in
    between (Qwen keeps the last prompt's rope deltas: they must not leak)."""
    whole, other = _block(64, 48, 1), _block(40, 72, 4)
    crop, crop2 = _block(40, 40, 2), _block(30, 50, 3)
    listing = SystemMessage("List the objects you cannot see, one per line.")
    return [
        [_prefix(whole), listing],
        [_prefix(other), listing],
        [
            _prefix(whole),
            HumanMessage(
                [
                    {"type": "text", "text": "Crops:"},
                    crop,
                    crop2,
                    {"type": "text", "text": "star <object> at [0.1,0.2,0.3,0.4]. Which colour?"},
                ]
            ),
        ],
        [_prefix(whole), HumanMessage("Answer from the whole image only.")],
    ]


class TokenCounter:
    """Sequence positions that go through the language model (prefill and decoding)."""

    def __init__(self, module: Any) -> None:
        self.tokens = 0
        original = module.forward

        def forward(*args: Any, **kwargs: Any) -> Any:
            embeds = kwargs.get("inputs_embeds")
            self.tokens += int(embeds.shape[1]) if embeds is not None else 0
            return original(*args, **kwargs)

        module.forward = forward


def _model(model_dir: Path, prefix_bytes: int, **kwargs: Any) -> TransformersChatModel:
    return TransformersChatModel(
        model_id=str(model_dir),
        device="cpu",
        dtype="float32",
        generation=GenerationSettings(max_new_tokens=4),
        vision_cache_bytes=0,  # the prefix cache alone is under test
        prefix_cache_bytes=prefix_bytes,
        **kwargs,
    )


def _tower(model: TransformersChatModel, family: str) -> TowerCounter:
    inner = model.runtime().model.model
    if family == "qwen":
        return TowerCounter(
            inner.visual,
            lambda a, k: int(k.get("grid_thw", a[1] if len(a) > 1 else None).shape[0]),
        )
    return TowerCounter(inner.vision_tower, lambda a, k: int(a[0].shape[0]))


def _ids(model: TransformersChatModel, messages: list[BaseMessage]) -> torch.Tensor:
    conversation, images = to_conversation(messages)
    inputs = encode_prompt(
        model.runtime(), conversation, model.prepare_images(images), add_generation_prompt=True
    )
    return inputs["input_ids"][0]


def _common(a: torch.Tensor, b: torch.Tensor) -> int:
    n = min(len(a), len(b))
    differ = torch.nonzero(a[:n] != b[:n]).flatten()
    return int(differ[0]) if differ.numel() else n


@pytest.mark.parametrize("family", ["qwen", "llava"])
def test_the_answer_prefills_only_what_follows_the_shared_prefix(family, request):
    model_dir = request.getfixturevalue(f"{family}_dir")
    runs = {}
    for name, budget in (("plain", 0), ("cached", 64 * 2**20)):
        model = _model(model_dir, budget)
        runtime = model.runtime()
        tokens = TokenCounter(runtime.model.get_submodule(runtime.language_model_path))
        tower = _tower(model, family)
        replies = [model.invoke(messages) for messages in _calls()]
        runs[name] = (model, replies, tokens.tokens, tower.images)
    plain_model, plain, plain_tokens, plain_images = runs["plain"]
    model, cached, tokens, images = runs["cached"]
    assert [r.text for r in cached] == [r.text for r in plain]
    assert plain_model.prefix_cache is None
    reused = [r.usage_metadata["input_token_details"]["cache_read"] for r in cached]
    calls = _calls()
    shared = _common(_ids(model, calls[0]), _ids(model, calls[2]))
    image_tokens = int((_ids(model, calls[0]) == _image_token(model)).sum())
    assert shared > image_tokens  # the prefix holds the global image and the question
    assert reused[:2] == [0, 0]  # a first prompt, then another image: nothing to share
    assert reused[2] == shared  # the answer: exactly the listing's prefix
    assert reused[3] >= shared  # the follow-up shares as much with the answer
    assert tokens == plain_tokens - sum(reused)  # the language model ran that much less
    # plain: whole, other, whole + 2 crops, whole; cached: the prefix's image once
    assert plain_images == 6
    assert images == 4
    stats = model.prefix_cache.stats
    assert stats.reused_tokens == sum(reused)
    assert stats.prefilled_tokens == sum(r.usage_metadata["input_tokens"] for r in cached) - sum(
        reused
    )


def _generate(
    model: TransformersChatModel,
    messages: list[BaseMessage],
    cache: PrefixKVCache | None,
    **kwargs: Any,
) -> Any:
    """Three new tokens for ``messages`` through ``generate_with_prefix_cache``."""
    runtime = model.runtime()
    conversation, images = to_conversation(messages)
    inputs = encode_prompt(
        runtime, conversation, model.prepare_images(images), add_generation_prompt=True
    )
    with torch.inference_mode():
        return generate_with_prefix_cache(
            runtime.model, runtime.to_device(inputs), cache, max_new_tokens=3, **kwargs
        )


def _image_token(model: TransformersChatModel) -> int:
    config = model.runtime().model.config
    return int(getattr(config, "image_token_id", None) or config.image_token_index)


@pytest.mark.parametrize(
    ("family", "dtype", "tolerance"),
    [
        ("qwen", "float32", 1e-5),
        ("llava", "float32", 1e-5),
        # bf16: a suffix prefilled apart from its prefix multiplies matrices of other
        # shapes, so bit-equality is not promised (it held on this CPU); greedy tokens are.
        ("qwen", "bfloat16", 2e-2),
    ],
)
def test_logits_equal_the_full_prefills(family, dtype, tolerance, request):
    model_dir = request.getfixturevalue(f"{family}_dir")
    model = _model(model_dir, 0)
    model = model.model_copy(update={"dtype": dtype})
    cache = PrefixKVCache(64 * 2**20)

    def logits(messages: list[BaseMessage], with_cache: PrefixKVCache | None) -> Any:
        return _generate(model, messages, with_cache, do_sample=False, output_logits=True)

    # All full prefills first, then the cached run in order: a continued prompt must not
    # inherit the previous call's state (Qwen's rope deltas).
    fulls = [logits(messages, None) for messages in _calls()]
    for messages, full in zip(_calls(), fulls, strict=True):
        reused = logits(messages, cache)
        assert torch.equal(full.sequences, reused.sequences)
        for a, b in zip(full.logits, reused.logits, strict=True):
            torch.testing.assert_close(a, b, rtol=tolerance, atol=tolerance)
    assert cache.stats.reused_tokens > 0


def test_an_image_with_other_pixels_is_not_a_shared_prefix(qwen_dir: Path):  # noqa: F811
    model = _model(qwen_dir, 64 * 2**20)
    first = model.invoke([_prefix(_block(64, 48, 1)), HumanMessage("one")])
    # Same size, so the same placeholder tokens; other pixels.
    second = model.invoke([_prefix(_block(64, 48, 9)), HumanMessage("one")])
    assert first.usage_metadata["input_tokens"] == second.usage_metadata["input_tokens"]
    assert second.usage_metadata["input_token_details"]["cache_read"] == 0
    plain = _model(qwen_dir, 0).invoke([_prefix(_block(64, 48, 9)), HumanMessage("one")])
    assert second.text == plain.text


def test_the_cache_is_bounded_and_can_be_off(qwen_dir: Path):  # noqa: F811
    model = _model(qwen_dir, 64 * 2**20)
    model.invoke([_prefix(_block(64, 48, 5)), HumanMessage("one")])
    cache = model.prefix_cache
    assert cache is not None
    one_prompt = cache.cached_bytes  # each prompt below is as long
    small = _model(qwen_dir, int(one_prompt * 1.5))
    for seed in range(3):
        small.invoke([_prefix(_block(64, 48, seed)), HumanMessage("one")])
    assert small.prefix_cache is not None
    assert small.prefix_cache.cached_bytes <= int(one_prompt * 1.5)
    assert len(small.prefix_cache) == 1
    assert small.prefix_cache.stats.evictions == 2
    cache.enabled = False
    reply = model.invoke(_calls()[2])
    assert reply.usage_metadata["input_token_details"]["cache_read"] == 0
    with pytest.raises(ValueError, match="max_bytes"):
        PrefixKVCache(-1)


# -- layouts, without a model --------------------------------------------------------------
def _layout(ids: list[int], spans: list[tuple[int, int, str]]) -> PromptLayout:
    return PromptLayout(
        ids=torch.tensor(ids),
        spans=tuple(ImageSpan(a, b, d) for a, b, d in spans),
        image_inputs=tuple({} for _ in spans),
    )


def test_a_shared_prefix_stops_before_an_image_it_would_cut_or_that_differs():
    cached = _layout([1, 2, 9, 9, 9, 3, 4, 5], [(2, 5, "a")])
    assert shared_prefix(cached, _layout([1, 2, 9, 9, 9, 3, 4, 7], [(2, 5, "a")])) == 7
    assert shared_prefix(cached, _layout([1, 2, 9, 9, 9, 3, 4, 7], [(2, 5, "b")])) == 2
    # The ids part ways inside the image's placeholder run (another size): cut before it.
    assert shared_prefix(cached, _layout([1, 2, 9, 9, 6], [(2, 4, "a")])) == 2
    assert shared_prefix(cached, _layout([1, 8], [])) == 1


def test_layouts_it_does_not_understand_are_prefilled_in_full():
    ids = torch.tensor([[1, 9, 9, 2]])
    pixels = torch.zeros(1, 3, 4, 4)
    assert prompt_layout({"input_ids": ids, "pixel_values": pixels}, 9) is not None
    assert prompt_layout({"input_ids": ids, "pixel_values_videos": pixels}, 9) is None
    padded = {"input_ids": ids, "attention_mask": torch.tensor([[0, 1, 1, 1]])}
    assert prompt_layout(padded, 9) is None
    two_images_one_run = {"input_ids": ids, "pixel_values": torch.zeros(2, 3, 4, 4)}
    assert prompt_layout(two_images_one_run, 9) is None
    assert prompt_layout({"input_ids": torch.cat([ids, ids])}, 9) is None  # a batch


def test_a_lora_adapted_model_reuses_prefixes_with_the_same_answers(
    llava_dir: Path,  # noqa: F811
    lora_dir: Path,  # noqa: F811
):
    calls = _calls()
    plain = _model(llava_dir, 0, adapter=str(lora_dir))
    cached = _model(llava_dir, 64 * 2**20, adapter=str(lora_dir))
    expected = [plain.invoke(messages).text for messages in calls]
    replies = [cached.invoke(messages) for messages in calls]
    assert [r.text for r in replies] == expected
    assert replies[2].usage_metadata["input_token_details"]["cache_read"] > 0


@pytest.mark.parametrize("family", ["qwen", "llava"])
def test_option_scoring_prefills_only_what_follows_the_listing(family, request):
    """The answer node scores lettered options by likelihood with a local model: that
    prompt's prefill goes through the prefix cache too, with the same scores."""
    model_dir = request.getfixturevalue(f"{family}_dir")
    listing, _, answer, _ = _calls()
    options = ["red", "dark blue", "green"]
    scores = {}
    for name, budget in (("plain", 0), ("cached", 64 * 2**20)):
        model = _model(model_dir, budget)
        model.invoke(listing)
        scores[name] = model.score_options(answer, options)
        if name == "cached":
            stats = model.prefix_cache.stats
            assert stats.hits == 1
            assert stats.reused_tokens == _common(_ids(model, listing), _ids(model, answer))
            # scoring again reuses the whole prompt but its last token
            assert model.score_options(answer, options) == pytest.approx(scores[name])
            assert stats.reused_tokens > 2 * _common(_ids(model, listing), _ids(model, answer))
    torch.testing.assert_close(
        torch.tensor(scores["cached"]), torch.tensor(scores["plain"]), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("scoring", ["generate", "likelihood"])
def test_the_graphs_answer_reuses_the_listings_prefix(
    scoring: str,
    qwen_dir: Path,  # noqa: F811
    tmp_path: Path,
):
    """Through the graph's own prompts and a real chat template: listing, then answer
    (generated, or options scored by likelihood), the answer prefilling only its suffix."""
    from langchain_core.callbacks import BaseCallbackHandler

    from seal_agent.graph import SealConfig, build_graph
    from seal_agent.shapeworld.scene import generate_scene
    from seal_agent.shapeworld.search_model import ReferenceSearchModel

    class Prompts(BaseCallbackHandler):
        def __init__(self) -> None:
            self.seen: list[list[BaseMessage]] = []

        def on_chat_model_start(self, serialized, messages, **kwargs):
            self.seen.extend(messages)

    model = _model(qwen_dir, 64 * 2**20)
    scene = generate_scene(3, width=768, height=512)
    settings = SealConfig(cache_dir=tmp_path / "c", option_scoring=scoring)
    graph = build_graph(model, ReferenceSearchModel(), settings)
    inputs = {"image": scene.image, "question": scene.question, "options": list(scene.options)}
    prompts = Prompts()
    out = graph.invoke(inputs, config={"callbacks": [prompts]})
    assert out["answer"]
    stats = model.prefix_cache.stats
    assert stats.lookups == 2  # the listing (nothing cached yet) and the answer
    assert stats.hits == 1
    listing = _ids(model, prompts.seen[0])
    first_message = int((listing == _image_token(model)).sum()) + len(scene.question)
    assert stats.reused_tokens > first_message  # the global image, the question, template
    if scoring == "generate":  # a generated answer: its prompt is seen, the reuse exact
        assert len(prompts.seen) == 2
        assert stats.reused_tokens == _common(listing, _ids(model, prompts.seen[1]))


def _kv(length: int, seed: int) -> Any:
    from transformers.cache_utils import DynamicCache

    generator = torch.Generator().manual_seed(seed)
    kv = DynamicCache()
    for layer in range(2):
        k, v = (torch.randn(1, 2, length, 4, generator=generator) for _ in range(2))
        kv.update(k, v, layer)
    return kv


def test_takes_and_stores_from_many_threads_stay_within_the_budget():
    import threading

    one = 2 * 2 * 2 * 40 * 4 * 4  # layers x (k, v) x heads x tokens x dim x float32
    cache = PrefixKVCache(max_bytes=3 * one, min_prefix_tokens=4)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(20):
                ids = [worker % 3] * 20 + [100 + worker * 50 + i] * 20
                layout = _layout(ids, [])
                reused, kv = cache.take(layout)
                if kv is not None:  # a copy of the shared 20-token prefix, private
                    assert kv.get_seq_length() == reused == 20
                    kv.layers[0].keys.zero_()
                cache.store(layout, _kv(40, worker * 100 + i))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert cache.cached_bytes <= 3 * one
    assert len(cache) == 3
    assert cache.stats.stored == 120
    assert cache.stats.evictions == 117
    assert cache.stats.hits > 0
    for entry in cache._entries.values():  # no caller's write reached a stored entry
        assert bool(entry.kv.layers[0].keys.abs().sum() > 0)


def test_a_model_that_cannot_continue_a_prompt_gets_a_full_prefill(
    qwen_dir: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
):
    listing, _, answer, _ = _calls()
    expected = _model(qwen_dir, 0).invoke(answer).text
    model = _model(qwen_dir, 64 * 2**20)
    model.invoke(listing)
    runtime = model.runtime()
    original = runtime.model.generate

    def generate(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("cache") is not None:
            raise ValueError("this model cannot continue from a cache")
        return original(*args, **kwargs)

    monkeypatch.setattr(runtime.model, "generate", generate)
    reply = model.invoke(answer)
    assert reply.text == expected
    assert reply.usage_metadata["input_token_details"]["cache_read"] == 0
    assert model.prefix_cache.stats.fallbacks == 1


def test_offloaded_entries_are_copies_and_change_nothing(qwen_dir: Path):  # noqa: F811
    """offload=True (the default for a model on a GPU) keeps entries as copies in host
    memory: the caller's KV state is never the cache's, and outputs are the same."""
    model = _model(qwen_dir, 0)
    cache = PrefixKVCache(64 * 2**20, offload=True)
    calls = _calls()

    def run(messages: list[BaseMessage], with_cache: PrefixKVCache | None) -> Any:
        return _generate(model, messages, with_cache, keep_kv=True)

    for messages in calls:
        plain, cached = run(messages, None), run(messages, cache)
        assert torch.equal(plain.sequences, cached.sequences)
        stored = {layer.keys.data_ptr() for e in cache._entries.values() for layer in e.kv.layers}
        assert not stored & {layer.keys.data_ptr() for layer in cached.kv.layers}
    assert cache.stats.reused_tokens > 0
