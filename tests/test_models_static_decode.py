"""Static decoding (issue 12 item 6): greedy replies through a fixed-size KV cache (one
CUDA graph per token on a GPU) are token-equal to ``generate``, on tiny Qwen2.5-VL
(mRoPE) and LLaVA (1D rope), with and without the prompt-prefix cache. The graphs
themselves need CUDA; the static path they replay runs here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from models_fixtures import llava_dir, lora_dir, qwen_dir  # noqa: F401  (fixtures)
from test_models_prefix_cache import _calls

from seal_agent.models.chat import GenerationSettings, TransformersChatModel, encode_prompt
from seal_agent.models.content import to_conversation
from seal_agent.models.prefix_cache import PrefixKVCache, generate_with_prefix_cache
from seal_agent.models.static_decode import (
    MIN_BUCKET_TOKENS,
    StaticDecoder,
    generate_with_static_decode,
    static_decoding_applies,
    unsupported_reason,
)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _model(model_dir: Path, static: bool, prefix_bytes: int, tokens: int = 10) -> Any:
    return TransformersChatModel(
        model_id=str(model_dir),
        device="cpu",
        dtype="float32",
        generation=GenerationSettings(max_new_tokens=tokens),
        vision_cache_bytes=0,
        prefix_cache_bytes=prefix_bytes,
        static_decode=static,
    )


@pytest.mark.parametrize("family", ["qwen", "llava"])
@pytest.mark.parametrize("prefix_bytes", [0, 64 * 2**20])
def test_static_decoding_replies_equal_generate(family, prefix_bytes, request):
    model_dir = request.getfixturevalue(f"{family}_dir")
    plain = _model(model_dir, False, prefix_bytes)
    static = _model(model_dir, True, prefix_bytes)
    expected = [plain.invoke(messages).text for messages in _calls()]
    got = [static.invoke(messages) for messages in _calls()]
    assert [r.text for r in got] == expected
    decoder = static._decoder
    assert decoder is not None
    assert plain._decoder is None
    # Every reply ran to the limit or an end token; all but the first token came from here.
    produced = sum(r.usage_metadata["output_tokens"] for r in got)
    assert decoder.decoded_tokens == produced - len(got)
    assert decoder.captures == 0  # no CUDA here: the static path ran without graphs


def _inputs(model: TransformersChatModel, messages: list[Any]) -> dict[str, Any]:
    runtime = model.runtime()
    conversation, images = to_conversation(messages)
    inputs = encode_prompt(
        runtime, conversation, model.prepare_images(images), add_generation_prompt=True
    )
    return runtime.to_device(inputs)


def test_end_tokens_stop_the_reply_once_min_new_tokens_allow(qwen_dir: Path):  # noqa: F811
    model = _model(qwen_dir, False, 0)
    runtime = model.runtime()
    inputs = _inputs(model, _calls()[0])
    prompt = int(inputs["input_ids"].shape[1])
    with torch.inference_mode():
        free = generate_with_prefix_cache(runtime.model, inputs, None, max_new_tokens=12)
    tokens = free.sequences[0, prompt:].tolist()
    end = tokens[4]  # make the fifth token an end token
    decoder = StaticDecoder(runtime.model)
    for min_new in (0, 3, 9):
        kwargs = {"max_new_tokens": 12, "eos_token_id": [end], "do_sample": False}
        if min_new:
            kwargs["min_new_tokens"] = min_new
        with torch.inference_mode():
            want = generate_with_prefix_cache(runtime.model, inputs, None, **kwargs)
            got = generate_with_static_decode(runtime.model, inputs, None, decoder, **kwargs)
        assert got.sequences.tolist() == want.sequences.tolist(), min_new
    # the stop came where generate stops: at the end token, unless min_new_tokens held it off
    assert got.sequences.shape[1] - prompt > 5


def test_a_longer_prompt_gets_a_larger_bucket_and_the_same_tokens(qwen_dir: Path):  # noqa: F811
    model = _model(qwen_dir, False, 0)
    runtime = model.runtime()
    decoder = StaticDecoder(runtime.model)
    inputs = _inputs(model, _calls()[0])
    prompt = int(inputs["input_ids"].shape[1])
    lengths = []
    for max_new in (6, MIN_BUCKET_TOKENS - prompt + 40, 6):
        kwargs = {"max_new_tokens": max_new, "min_new_tokens": max_new, "do_sample": False}
        if max_new > 6:  # only the bucket's size matters here, not a long reply
            kwargs = {"max_new_tokens": max_new, "do_sample": False, "eos_token_id": [0]}
        with torch.inference_mode():
            want = generate_with_prefix_cache(runtime.model, inputs, None, **kwargs)
            got = generate_with_static_decode(runtime.model, inputs, None, decoder, **kwargs)
        assert got.sequences.tolist() == want.sequences.tolist()
        assert decoder._bucket is not None
        lengths.append(decoder._bucket.length)
    # grown for the long reply, then kept (within 2x) rather than captured again
    assert lengths == [MIN_BUCKET_TOKENS, 2 * MIN_BUCKET_TOKENS, 2 * MIN_BUCKET_TOKENS]


def test_calls_it_cannot_reproduce_go_to_generate():
    ids = {"input_ids": torch.zeros(1, 5, dtype=torch.long)}
    assert static_decoding_applies(ids, {"max_new_tokens": 8, "do_sample": False})
    assert not static_decoding_applies(ids, {"max_new_tokens": 8, "do_sample": True})
    assert not static_decoding_applies(ids, {"max_new_tokens": 8, "repetition_penalty": 1.05})
    assert not static_decoding_applies(ids, {"max_new_tokens": 8, "stop_strings": ["\n"]})
    assert not static_decoding_applies(ids, {"max_new_tokens": 1})
    batch = {"input_ids": torch.zeros(2, 5, dtype=torch.long)}
    assert not static_decoding_applies(batch, {"max_new_tokens": 8})


def test_stop_strings_and_sampling_still_work_with_static_decoding_on(qwen_dir: Path):  # noqa: F811
    static = _model(qwen_dir, True, 0)
    plain = _model(qwen_dir, False, 0)
    messages = _calls()[0]
    assert static.invoke(messages, stop=["x"]).text == plain.invoke(messages, stop=["x"]).text
    assert static._decoder is not None
    assert static._decoder.decoded_tokens == 0


def test_unsupported_attention_is_named(qwen_dir: Path):  # noqa: F811
    model = _model(qwen_dir, False, 0).runtime().model
    assert unsupported_reason(model) is None
    config = model.config.get_text_config(decoder=True)
    saved = config._attn_implementation
    try:
        config._attn_implementation = "flash_attention_2"
        assert "flash_attention_2" in (unsupported_reason(model) or "")
    finally:
        config._attn_implementation = saved


def test_the_prefix_cache_entry_is_read_not_changed(qwen_dir: Path):  # noqa: F811
    model = _model(qwen_dir, False, 0)
    runtime = model.runtime()
    cache = PrefixKVCache(64 * 2**20)
    decoder = StaticDecoder(runtime.model)
    inputs = _inputs(model, _calls()[0])
    with torch.inference_mode():
        generate_with_static_decode(runtime.model, inputs, cache, decoder, max_new_tokens=6)
        (entry,) = cache._entries.values()
        before = [layer.keys.clone() for layer in entry.kv.layers]
        generate_with_static_decode(runtime.model, inputs, cache, decoder, max_new_tokens=6)
    after = [layer.keys for layer in entry.kv.layers]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert cache.stats.reused_tokens > 0


class HeadOutputs:
    """Every LM-head output (one per decoding step for both paths: generate keeps only
    the last position's logits)."""

    def __init__(self, head: Any) -> None:
        self.outputs: list[torch.Tensor] = []
        head.register_forward_hook(lambda _m, _a, out: self.outputs.append(out[:, -1].clone()))


@pytest.mark.parametrize("family", ["qwen", "llava"])
def test_static_decoding_logits_equal_generate(family, request):
    """Logits, not just tokens: a position off by the prompt's rope delta (Qwen's images
    take fewer positions than tokens) would leave a tiny model's argmax alone."""
    from langchain_core.messages import HumanMessage
    from test_models_vision_cache import _block

    model = _model(request.getfixturevalue(f"{family}_dir"), False, 0)
    runtime = model.runtime()
    heads = HeadOutputs(runtime.model.get_output_embeddings())
    messages = [HumanMessage([_block(320, 240, 5), {"type": "text", "text": "Describe it."}])]
    inputs = _inputs(model, messages)
    decoder = StaticDecoder(runtime.model)
    kwargs = {"max_new_tokens": 8, "min_new_tokens": 8, "do_sample": False}
    with torch.inference_mode():
        generate_with_static_decode(runtime.model, inputs, None, decoder, **kwargs)  # warm
        heads.outputs = []
        want = generate_with_prefix_cache(runtime.model, inputs, None, **kwargs)
        expected, heads.outputs = heads.outputs, []
        got = generate_with_static_decode(runtime.model, inputs, None, decoder, **kwargs)
    assert got.sequences.tolist() == want.sequences.tolist()
    assert len(heads.outputs) == len(expected) == 8
    if family == "qwen":
        assert int(runtime.model.model.rope_deltas) <= -4  # positions really were shifted
    for a, b in zip(expected, heads.outputs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_a_lora_adapted_model_decodes_the_same(llava_dir: Path, lora_dir: Path):  # noqa: F811
    def model(static: bool) -> TransformersChatModel:
        return _model(llava_dir, static, 0).model_copy(update={"adapter": str(lora_dir)})

    static, plain = model(True), model(False)
    messages = _calls()[2]
    assert static.invoke(messages).text == plain.invoke(messages).text
    assert static._decoder is not None
    assert static._decoder.decoded_tokens > 0
