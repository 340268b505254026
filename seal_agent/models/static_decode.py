"""Greedy decoding through a fixed-size KV cache, replayed as one CUDA graph per token.

A 7B model's decoding step is a thousand small kernels: launched one by one from the
Python of ``generate`` they cost 20-70 ms per token on an H100 (host-bound, and slower
still while the graph's other threads hold the GIL), against ~8 ms of GPU work. Here the
prompt is prefilled as usual (``generate`` with one new token, through the prompt-prefix
cache), its KV state is copied into a ``transformers.StaticCache`` of a fixed bucketed
length, and each later token is one replay of a captured CUDA graph: embed, the language
model with an explicit 4D mask and explicit positions, the LM head, argmax. Tokens are
collected on the device and read back every few steps, so the host never waits per token.

Only what this path reproduces exactly takes it: greedy decoding, batch one, no
repetition penalty, no stop strings, SDPA or eager attention, 1D rope or Qwen-VL's
mRoPE (positions continue the prompt's ``rope_deltas``), full attention in every layer.
Everything else goes to ``generate`` as before. Off the GPU the same static path runs
without graphs (tests prove it token-equal to ``generate``); by default it is used on
CUDA only.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from seal_agent.models.host_embeddings import HostEmbedding
from seal_agent.models.loading import unwrapped_model
from seal_agent.models.prefix_cache import (
    PrefixGeneration,
    PrefixKVCache,
    generate_with_prefix_cache,
)

logger = logging.getLogger(__name__)

#: Cache lengths are powers of two from here up, so prompts of similar length share one
#: captured graph (a new bucket costs two warm-up steps and a capture, ~0.1 s).
MIN_BUCKET_TOKENS = 1024
#: Tokens are read back (one host sync) every this many steps; a reply that ended
#: mid-way has wasted at most this many steps of GPU work.
READBACK_EVERY = 8
SUPPORTED_ATTENTION = ("sdpa", "eager")


def attention_mask(allowed: torch.Tensor, attention: str, dtype: torch.dtype) -> torch.Tensor:
    """``allowed`` (True: may attend) as the 4D mask the model's attention takes as given:
    boolean for SDPA, additive (0 / the dtype's minimum) for eager attention."""
    if attention == "eager":
        mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
        allowed = mask.masked_fill(~allowed, torch.finfo(dtype).min)
    while allowed.dim() < 4:
        allowed = allowed.unsqueeze(0)
    return allowed


def _language_model(base: Any) -> Any:
    inner = getattr(base, "model", None)
    decoder = getattr(inner, "language_model", None)
    if decoder is None and callable(getattr(base, "get_decoder", None)):
        decoder = base.get_decoder()
    return decoder


def unsupported_reason(model: Any) -> str | None:
    """Why ``model`` cannot decode through the static path (None: it can)."""
    base = unwrapped_model(model)
    decoder = _language_model(base)
    head = (
        base.get_output_embeddings()
        if callable(getattr(base, "get_output_embeddings", None))
        else None
    )
    if decoder is None or head is None:
        return "no language model / LM head found"
    host_tables = {
        id(p) for m in base.modules() if isinstance(m, HostEmbedding) for p in m.parameters()
    }
    devices = {p.device for p in base.parameters() if id(p) not in host_tables}
    if len(devices) > 1:
        return "the model is spread over several devices"
    config = base.config.get_text_config(decoder=True)
    attention = getattr(config, "_attn_implementation", None)
    if attention not in SUPPORTED_ATTENTION:
        return f"attention implementation {attention!r} (static decoding needs sdpa or eager)"
    layer_types = getattr(config, "layer_types", None) or ["full_attention"]
    if any(kind != "full_attention" for kind in layer_types):
        return "sliding or linear attention layers"
    if getattr(config, "use_sliding_window", False):
        return "sliding-window attention"
    from transformers.cache_utils import StaticLayer

    if not isinstance(
        getattr(StaticLayer(max_cache_len=1), "cumulative_length", None), torch.Tensor
    ):
        return "this transformers' StaticCache keeps its length on the host"
    return None


def _cache_argument(decoder: Any) -> str:
    """The language model's name for its KV cache argument (``cache`` from transformers
    5.2x, ``past_key_values`` before)."""
    try:
        parameters = inspect.signature(decoder.forward).parameters
    except (TypeError, ValueError):
        return "cache"
    return "cache" if "cache" in parameters else "past_key_values"


def uses_mrope(base: Any) -> bool:
    """Qwen-VL style 3D positions: the prompt's ``rope_deltas`` carry on."""
    return hasattr(getattr(base, "model", None), "rope_deltas")


@dataclass
class _Bucket:
    """Static state for one cache length: the cache, the step's inputs and outputs, and
    (on CUDA) the captured graph reading and writing exactly these tensors."""

    length: int
    cache: Any
    token: torch.Tensor  # [1, 1] the token fed at this step
    position: torch.Tensor  # [3, 1, 1] (mRoPE) or [1, 1]: its position
    block: torch.Tensor  # [vocab] additive: -inf on end tokens while min_new_tokens holds
    produced: torch.Tensor  # [length] tokens produced, by step
    step: torch.Tensor  # [1] steps taken
    positions_ahead: torch.Tensor  # [length] 0..length-1, for the mask
    embeds: torch.Tensor | None = None  # [1, 1, hidden]: the token's row, from the host
    graph: Any = None


class StaticDecoder:
    """Continues a prefilled prompt greedily, one graph replay per token on CUDA.

    Holds one bucket (the last cache length used): its static cache costs
    ``2 * layers * kv_heads * head_dim * length`` elements, e.g. 117 MiB for a 7B
    Qwen2.5 at 2048 tokens. Not thread-safe by itself: callers hold the model's lock.
    """

    def __init__(self, model: Any, *, cuda_graphs: bool | None = None) -> None:
        self.model = model
        self.base = unwrapped_model(model)
        self.decoder = _language_model(self.base)
        self.head = self.base.get_output_embeddings()
        self.config = self.base.config.get_text_config(decoder=True)
        parameter = next(self.base.parameters())
        self.device = parameter.device
        self.dtype = parameter.dtype
        self.mrope = uses_mrope(self.base)
        # A table in host memory is looked up outside the graph, one token at a time.
        table = getattr(self.decoder, "embed_tokens", None)
        self._host_table = table if isinstance(table, HostEmbedding) else None
        self._cache_argument = _cache_argument(self.decoder)
        wanted = self.device.type == "cuda" if cuda_graphs is None else cuda_graphs
        self.cuda_graphs = bool(wanted) and self.device.type == "cuda"
        self._bucket: _Bucket | None = None
        self._lock = threading.Lock()
        #: Why graphs were turned off (a capture that failed), for reports.
        self.graph_failure: str | None = None
        self.captures = 0
        self.decoded_tokens = 0  # tokens produced here (after each reply's first)

    # -- buckets -------------------------------------------------------------------------
    @staticmethod
    def bucket_length(needed: int) -> int:
        length = MIN_BUCKET_TOKENS
        while length < needed:
            length *= 2
        return length

    def _new_bucket(self, length: int) -> _Bucket:
        from transformers import StaticCache

        self._bucket = None  # the old bucket's cache is freed before the new one is made
        cache = StaticCache(config=self.config, max_cache_len=length)
        vocab = int(self.head.weight.shape[0])
        rows = 3 if self.mrope else 1
        bucket = _Bucket(
            length=length,
            cache=cache,
            token=torch.zeros(1, 1, dtype=torch.long, device=self.device),
            position=torch.zeros(rows, 1, 1, dtype=torch.long, device=self.device)
            if self.mrope
            else torch.zeros(1, 1, dtype=torch.long, device=self.device),
            block=torch.zeros(vocab, dtype=torch.float32, device=self.device),
            produced=torch.zeros(length, dtype=torch.long, device=self.device),
            step=torch.zeros(1, dtype=torch.long, device=self.device),
            positions_ahead=torch.arange(length, device=self.device),
        )
        if self._host_table is not None:
            hidden = self._host_table.embedding_dim
            bucket.embeds = torch.zeros(1, 1, hidden, dtype=self.dtype, device=self.device)
        # Warm-up steps allocate the cache's tensors (lazily, on first update) and, on
        # CUDA, cuBLAS's workspaces; they write garbage that _load overwrites.
        if self.cuda_graphs:
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                for _ in range(2):
                    self._step(bucket)
            torch.cuda.current_stream(self.device).wait_stream(stream)
        else:
            self._step(bucket)
        self._reset(bucket, 0)
        if self.cuda_graphs:
            try:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    self._step(bucket)
                bucket.graph = graph
                self.captures += 1
            except Exception as exc:  # any capture fault: decode eagerly
                self.graph_failure = f"{type(exc).__name__}: {exc}"
                logger.warning("CUDA graph capture failed, decoding eagerly: %s", exc)
                self.cuda_graphs = False
                torch.cuda.synchronize(self.device)
        self._bucket = bucket
        return bucket

    def _reset(self, bucket: _Bucket, length: int) -> None:
        for layer in bucket.cache.layers:
            if getattr(layer, "is_initialized", False):
                layer.cumulative_length.fill_(length)
        bucket.step.zero_()

    # -- one step (captured on CUDA) -----------------------------------------------------
    def _step(self, bucket: _Bucket) -> None:
        layer = bucket.cache.layers[0]
        seen = layer.cumulative_length if getattr(layer, "is_initialized", False) else 0
        allowed = bucket.positions_ahead <= seen  # the cached tokens and this one
        mask = attention_mask(allowed, self.config._attn_implementation, self.dtype)
        if bucket.embeds is not None:
            embeds = bucket.embeds
        else:
            embeds = self.decoder.embed_tokens(bucket.token)
        out = self.decoder(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=bucket.position,
            use_cache=True,
            **{self._cache_argument: bucket.cache},
        )
        logits = self.head(out.last_hidden_state)[:, -1].float() + bucket.block
        chosen = logits.argmax(-1)  # [1]
        bucket.produced.index_copy_(0, bucket.step, chosen)
        bucket.step.add_(1)
        bucket.token.copy_(chosen.view(1, 1))
        bucket.position.add_(1)

    # -- decoding ------------------------------------------------------------------------
    def _load(self, bucket: _Bucket, kv: Any, prompt_length: int) -> None:
        for static, dynamic in zip(bucket.cache.layers, kv.layers, strict=True):
            static.keys[:, :, :prompt_length].copy_(dynamic.keys[:, :, :prompt_length])
            static.values[:, :, :prompt_length].copy_(dynamic.values[:, :, :prompt_length])
        self._reset(bucket, prompt_length)

    def decode(
        self,
        kv: Any,
        *,
        prompt_length: int,
        first_token: int,
        max_new_tokens: int,
        min_new_tokens: int = 0,
        eos_token_ids: list[int] | tuple[int, ...] = (),
        rope_delta: int = 0,
    ) -> list[int]:
        """Tokens after ``first_token`` (at most ``max_new_tokens - 1``; it counts as
        the first), greedy, stopping after an end token once ``min_new_tokens`` are out.

        ``kv`` holds exactly the prompt (``prompt_length`` tokens); it is read, never
        changed (it may be the prefix cache's own entry).
        """
        steps = max_new_tokens - 1
        if steps <= 0:
            return []
        with self._lock:
            needed = prompt_length + max_new_tokens
            bucket = self._bucket
            if (
                bucket is None
                or bucket.length < needed
                or bucket.length > 2 * self.bucket_length(needed)
            ):
                bucket = self._new_bucket(self.bucket_length(needed))
            self._load(bucket, kv, prompt_length)
            bucket.token.fill_(first_token)
            bucket.position.fill_(prompt_length + rope_delta)
            ends = [t for t in eos_token_ids if 0 <= t < bucket.block.shape[0]]
            # The first token was produced already: tokens so far = 1 + steps taken.
            blocking = min_new_tokens > 1 and bool(ends)
            bucket.block.zero_()
            if blocking:
                bucket.block[ends] = float("-inf")
            out: list[int] = []
            taken = 0
            host = self._host_table
            while taken < steps:
                # With the table in host memory each token is read back before the next.
                run = 1 if host is not None else min(READBACK_EVERY, steps - taken)
                if blocking:  # unblock exactly at the step where min_new_tokens is met
                    run = min(run, max(1, min_new_tokens - 1 - taken))
                for _ in range(run):
                    if host is not None and bucket.embeds is not None:
                        token = out[-1] if out else first_token
                        row = host.lookup(torch.tensor([[token]]))
                        bucket.embeds.copy_(row.to(self.dtype))
                    if bucket.graph is not None:
                        bucket.graph.replay()
                    else:
                        self._step(bucket)
                taken += run
                if blocking and taken + 1 >= min_new_tokens:
                    bucket.block.zero_()
                    blocking = False
                fresh = bucket.produced[len(out) : taken].tolist()  # the host waits here
                self.decoded_tokens += len(fresh)
                for token in fresh:
                    out.append(int(token))
                    if token in ends and len(out) + 1 >= min_new_tokens:
                        return out
            return out

    def release(self) -> None:
        """Frees the bucket (its cache and graph)."""
        with self._lock:
            self._bucket = None


# -- generate ----------------------------------------------------------------------------------
#: generate arguments this path reproduces; any other (a logits processor, stopping
#: criteria, stop strings, beams, sampling) sends the call to ``generate`` whole.
_HANDLED = {
    "max_new_tokens",
    "min_new_tokens",
    "do_sample",
    "temperature",
    "top_p",
    "top_k",
    "repetition_penalty",
    "eos_token_id",
}


def static_decoding_applies(inputs: dict[str, Any], generate_kwargs: dict[str, Any]) -> bool:
    """Whether a ``generate`` call is one the static path reproduces token for token."""
    if any(key not in _HANDLED for key in generate_kwargs):
        return False
    if generate_kwargs.get("do_sample"):
        return False
    if generate_kwargs.get("repetition_penalty") not in (None, 1.0):
        return False
    if int(generate_kwargs.get("max_new_tokens") or 0) < 2:
        return False
    return int(inputs["input_ids"].shape[0]) == 1


def _end_tokens(model: Any, generate_kwargs: dict[str, Any]) -> list[int]:
    value = generate_kwargs.get("eos_token_id")
    if value is None:
        value = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if value is None:
        return []
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    return [int(v) for v in (value if isinstance(value, list | tuple) else [value])]


def rope_delta(base: Any) -> int:
    """The offset of Qwen-VL's text positions after its last prompt (0 for others)."""
    deltas = getattr(getattr(base, "model", None), "rope_deltas", None)
    return int(deltas.reshape(-1)[0]) if isinstance(deltas, torch.Tensor) else 0


def generate_with_static_decode(
    model: Any,
    inputs: dict[str, Any],
    cache: PrefixKVCache | None,
    decoder: StaticDecoder | None,
    *,
    on_first_token: Callable[[], None] | None = None,
    **generate_kwargs: Any,
) -> PrefixGeneration:
    """``generate_with_prefix_cache``, with greedy decoding after the first token through
    ``decoder`` where the call allows it (``static_decoding_applies``).

    ``on_first_token`` is called once the first new token exists (prefill done), for
    callers that time the phases.
    """
    if decoder is None or not static_decoding_applies(inputs, generate_kwargs):
        out = generate_with_prefix_cache(model, inputs, cache, **generate_kwargs)
        if on_first_token is not None:
            on_first_token()
        return out
    max_new = int(generate_kwargs["max_new_tokens"])
    min_new = int(generate_kwargs.get("min_new_tokens") or 0)
    first_call = {**generate_kwargs, "max_new_tokens": 1}
    first_call.pop("min_new_tokens", None)
    if min_new:
        first_call["min_new_tokens"] = 1
    prefill = generate_with_prefix_cache(model, inputs, cache, share_kv=True, **first_call)
    prompt_length = prefill.prompt_tokens
    first = int(prefill.sequences[0, prompt_length])  # waits for the prefill
    if on_first_token is not None:
        on_first_token()
    ends = _end_tokens(decoder.base, generate_kwargs)
    if prefill.kv is None or (first in ends and min_new <= 1):
        return PrefixGeneration(prefill.sequences, prompt_length, prefill.reused_tokens)
    rest = decoder.decode(
        prefill.kv,
        prompt_length=prompt_length,
        first_token=first,
        max_new_tokens=max_new,
        min_new_tokens=min_new,
        eos_token_ids=ends,
        rope_delta=rope_delta(decoder.base),
    )
    tail = torch.tensor([rest], dtype=prefill.sequences.dtype, device=prefill.sequences.device)
    sequences = torch.cat([prefill.sequences, tail], dim=1) if rest else prefill.sequences
    return PrefixGeneration(sequences, prompt_length, prefill.reused_tokens)


__all__ = [
    "MIN_BUCKET_TOKENS",
    "SUPPORTED_ATTENTION",
    "StaticDecoder",
    "attention_mask",
    "generate_with_static_decode",
    "rope_delta",
    "static_decoding_applies",
    "unsupported_reason",
    "uses_mrope",
]
