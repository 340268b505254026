"""Multiple-choice answering by likelihood: the paper's scoring of open models on V*Bench.

For each option, the mean negative log-likelihood of its tokens given the prompt (the
chat-formatted question with its images, up to the start of the assistant's turn),
followed by the end-of-turn token, as the reference scores them: an option that is
only the start of a longer answer ("red" before "reddish brown") is not rewarded for
it. The option with the lowest loss is the model's answer. This avoids both parsing a
free-form answer and the letter-position bias of shuffled lettered options.

Cost: the prompt (hundreds to thousands of image tokens) is run once with
``use_cache=True``; each option then runs only its own tokens on top of that KV cache,
which is cropped back to the prompt afterwards. For V*Bench's 2-4 short options this
makes scoring cost about one prefill instead of one per option. That prefill goes through
the model's prompt-prefix cache (``prefix_cache.py``): the answer's prompt shares the
listing's first message, so only what follows it is prefilled.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage

from seal_agent.errors import ChatModelError, InvalidQuestionError
from seal_agent.models.chat import (
    ChatRuntime,
    TransformersChatModel,
    encode_prompt,
)
from seal_agent.models.content import to_conversation
from seal_agent.models.loading import unwrapped_model
from seal_agent.models.prefix_cache import PrefixKVCache, generate_with_prefix_cache


def score_options(
    model: TransformersChatModel,
    prompt: str | Sequence[BaseMessage],
    options: Sequence[str],
    *,
    use_cache: bool = True,
    end_of_turn: bool = True,
) -> list[float]:
    """Mean token loss of each option after ``prompt`` (lower = more likely), in order.

    ``prompt`` is a question string or LangChain messages (with image blocks).
    ``use_cache=False`` recomputes the prompt for every option (the reference
    computation the cached path is tested against). ``end_of_turn`` appends the chat
    template's end-of-turn token to every option (the reference's scoring).
    """
    if isinstance(options, str) or not options:
        raise InvalidQuestionError("options must be a non-empty list of strings")
    for i, option in enumerate(options):
        if not isinstance(option, str) or not option.strip():
            raise InvalidQuestionError(f"option {i} is empty or not text: {option!r}")
    messages = [HumanMessage(content=prompt)] if isinstance(prompt, str) else list(prompt)
    runtime = model.runtime()
    conversation, images = to_conversation(messages)
    images = model.prepare_images(images)
    inputs = encode_prompt(runtime, conversation, images, add_generation_prompt=True)
    tokenizer = runtime.processor.tokenizer
    option_ids = [tokenizer(option, add_special_tokens=False)["input_ids"] for option in options]
    if any(not ids for ids in option_ids):
        raise InvalidQuestionError("an option encodes to no tokens")
    if end_of_turn:
        eot = end_of_turn_id(runtime.processor)
        option_ids = [[*ids, eot] for ids in option_ids]
    import torch

    try:
        with runtime.lock, torch.inference_mode():
            if use_cache:
                return _scores_with_cache(runtime, inputs, option_ids, model.prefix_cache)
            return _scores_without_cache(runtime, inputs, option_ids)
    except RuntimeError as exc:
        raise ChatModelError(f"{model.model_id} failed to score options: {exc}") from exc


_EOT_MARK = "SEALOPTIONMARK"


def end_of_turn_id(processor: Any) -> int:
    """The token that ends the assistant's turn in the processor's chat template.

    Rendered, not guessed: the first special token the template writes after an
    assistant reply (``<|im_end|>`` for Qwen); templates that write none (llava-hf's)
    end the turn with the tokenizer's EOS (``</s>``, LLaVA-1.5's conversation separator).
    """
    tokenizer = processor.tokenizer
    conversation = [
        {"role": "user", "content": [{"type": "text", "text": "q"}]},
        {"role": "assistant", "content": [{"type": "text", "text": _EOT_MARK}]},
    ]
    try:
        rendered = processor.apply_chat_template(conversation, tokenize=False)
    except Exception:  # a template without assistant turns: fall back to EOS
        rendered = ""
    tail = rendered.split(_EOT_MARK, 1)[1] if _EOT_MARK in rendered else ""
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    for token_id in tokenizer(tail.strip(), add_special_tokens=False)["input_ids"][:2]:
        if token_id in special:
            return int(token_id)
    if tokenizer.eos_token_id is None:
        raise ChatModelError("the tokenizer has no end-of-turn or EOS token to score with")
    return int(tokenizer.eos_token_id)


def best_option(
    model: TransformersChatModel, prompt: str | Sequence[BaseMessage], options: Sequence[str]
) -> int:
    """Index of the most likely option."""
    scores = score_options(model, prompt, options)
    return min(range(len(scores)), key=scores.__getitem__)


def _forward_parameters(model: Any) -> set[str]:
    return set(inspect.signature(unwrapped_model(model).forward).parameters)


def _scores_with_cache(
    runtime: ChatRuntime,
    inputs: dict[str, Any],
    option_ids: list[list[int]],
    prefix_cache: PrefixKVCache | None = None,
) -> list[float]:
    import torch

    model = runtime.model
    parameters = _forward_parameters(model)
    cache_name = "cache" if "cache" in parameters else "past_key_values"
    # One generated step = the prompt's prefill (from a cached prefix where one matches):
    # its raw logits are the first option token's, its KV state is exactly the prompt's.
    prompt = generate_with_prefix_cache(
        model,
        runtime.to_device(inputs),
        prefix_cache,
        keep_kv=True,
        max_new_tokens=1,
        do_sample=False,
        temperature=None,
        top_p=None,
        top_k=None,
        output_logits=True,
    )
    cache = prompt.kv
    prompt_length = int(inputs["input_ids"].shape[1])
    if prompt.logits is None or cache is None or cache.get_seq_length() != prompt_length:
        raise ChatModelError(
            "the model returned no prompt KV cache to score options on; "
            "use score_options(..., use_cache=False)"
        )
    first_log_probs = torch.log_softmax(prompt.logits[0][0].float(), dim=-1)
    rest = _continuations_together(model, cache, option_ids, prompt_length, cache_name)
    if rest is None:
        rest = [
            _continuation_alone(model, cache, ids, prompt_length, cache_name) for ids in option_ids
        ]
    return [
        (-float(first_log_probs[ids[0]]) - later) / len(ids)
        for ids, later in zip(option_ids, rest, strict=True)
    ]


def _continuation_alone(
    model: Any, cache: Any, ids: list[int], prompt_length: int, cache_name: str
) -> float:
    """Log-likelihood of ``ids[1:]`` after the prompt and ``ids[0]``: one forward of the
    option's own tokens on the prompt's KV state, cropped back afterwards."""
    import torch

    if len(ids) < 2:
        return 0.0
    device = cache.layers[0].keys.device
    continuation = torch.tensor([ids[:-1]], device=device)
    step = model(input_ids=continuation, use_cache=True, **{cache_name: cache})
    log_probs = torch.log_softmax(step.logits[0].float(), dim=-1)
    targets = torch.tensor(ids[1:], device=log_probs.device)
    total = float(log_probs.gather(-1, targets[:, None]).sum())
    _crop_back(cache, len(ids) - 1, prompt_length)
    return total


def _crop_back(cache: Any, added: int, prompt_length: int) -> None:
    cache.crop(-added)
    if cache.get_seq_length() != prompt_length:
        raise ChatModelError(
            "the model's KV cache could not be cropped back to the prompt; "
            "use score_options(..., use_cache=False)"
        )


def _continuations_together(
    model: Any, cache: Any, option_ids: list[list[int]], prompt_length: int, cache_name: str
) -> list[float] | None:
    """Every option's continuation in ONE forward: their tokens side by side after the
    prompt, each seeing the prompt and its own earlier tokens only (a block-causal 4D
    mask) at the positions it would have alone. A 7B model's forward over a few tokens
    costs the same as over one (launch-bound), so 4 options cost one pass, not 4.

    None where the layout is not one this reproduces exactly (attention other than SDPA
    or eager, positions other than 1D rope or Qwen-VL's mRoPE): the caller goes option
    by option.
    """
    import torch

    from seal_agent.models.static_decode import (
        SUPPORTED_ATTENTION,
        attention_mask,
        rope_delta,
        uses_mrope,
    )

    pieces = [ids[:-1] for ids in option_ids if len(ids) > 1]
    if len(pieces) < 2:
        return None
    base = unwrapped_model(model)
    config = base.config.get_text_config(decoder=True)
    attention = getattr(config, "_attn_implementation", None)
    if attention not in SUPPORTED_ATTENTION:
        return None
    mrope = uses_mrope(base)
    device = cache.layers[0].keys.device
    tokens: list[int] = []
    offsets: list[int] = []  # each token's position within its option
    owner: list[int] = []  # the option piece it belongs to
    for index, piece in enumerate(pieces):
        tokens += piece
        offsets += list(range(len(piece)))
        owner += [index] * len(piece)
    count = len(tokens)
    own = torch.tensor(owner, device=device)
    offset = torch.tensor(offsets, device=device)
    same = own[:, None] == own[None, :]
    earlier = offset[:, None] >= offset[None, :]
    allowed = torch.cat(
        [torch.ones(count, prompt_length, dtype=torch.bool, device=device), same & earlier],
        dim=1,
    )
    mask = attention_mask(allowed, attention, next(base.parameters()).dtype)
    positions = offset + prompt_length
    if mrope:
        position_ids = (positions + rope_delta(base)).view(1, 1, -1).expand(3, 1, -1)
    else:
        position_ids = positions.view(1, -1)
    out = model(
        input_ids=torch.tensor([tokens], device=device),
        attention_mask=mask,
        position_ids=position_ids,
        use_cache=True,
        **{cache_name: cache},
    )
    log_probs = torch.log_softmax(out.logits[0].float(), dim=-1)
    _crop_back(cache, count, prompt_length)
    totals: list[float] = []
    start = 0  # where each option's rows begin: its piece is ids[:-1], laid out in order
    for ids in option_ids:
        if len(ids) < 2:
            totals.append(0.0)
            continue
        targets = torch.tensor(ids[1:], device=log_probs.device)
        rows = log_probs[start : start + len(targets)]
        totals.append(float(rows.gather(-1, targets[:, None]).sum()))
        start += len(targets)
    return totals


def _scores_without_cache(
    runtime: ChatRuntime, inputs: dict[str, Any], option_ids: list[list[int]]
) -> list[float]:
    import torch

    model = runtime.model
    prompt_length = int(inputs["input_ids"].shape[1])
    scores: list[float] = []
    for ids in option_ids:
        option = torch.tensor([ids], dtype=inputs["input_ids"].dtype)
        full = dict(inputs)
        full["input_ids"] = torch.cat([inputs["input_ids"], option], dim=1)
        full["attention_mask"] = torch.ones_like(full["input_ids"])
        if "mm_token_type_ids" in inputs:  # Qwen2.5-VL marks image tokens; options are text
            full["mm_token_type_ids"] = torch.cat(
                [inputs["mm_token_type_ids"], torch.zeros_like(option)], dim=1
            )
        out = model(**runtime.to_device(full), use_cache=False)
        logits = out.logits[0, prompt_length - 1 : prompt_length - 1 + len(ids)].float()
        log_probs = torch.log_softmax(logits, dim=-1)
        targets = torch.tensor(ids, device=log_probs.device)
        scores.append(-float(log_probs.gather(-1, targets[:, None]).sum()) / len(ids))
    return scores
