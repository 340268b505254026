"""Cost-faithful replay: real networks pay for every model call, shape world decides.

Without trained weights a real VLM or OWLv2 would answer nonsense, and the search path
(how many views, which ones, how many chat calls) would be nothing like a real run. So
each model here is a pair:

* the *decider*, a shape-world reference model, gives the answer, the boxes and the
  targets, so the graph walks a realistic path;
* the *cost* network (random weights, real architecture and input sizes) runs the
  same call: OWLv2's image tower on each view the search encodes and its heads on each
  phrase pass; the VLM's real image processor and vision tower on every image of the
  prompt, prefill of the whole prompt, and a fixed number of generated tokens.

Both are counted: chat calls, prompt tokens and the prefill tokens among them (those
not taken from a cached prompt prefix: ``seal_agent.models.prefix_cache``, the same
code ``TransformersChatModel`` runs), VQA images through the vision tower,
search-model image-encoder passes (views) and phrase passes. Used by
``cost_per_question.py`` (tiny networks on the CPU) and ``gpu_latency.py --end-to-end``
(full size on a GPU).

Text tokens: the real tokenizers cannot be downloaded, so text is counted as one token
per 4 characters (English BPE averages ~4) plus the chat template's few tokens per
message; image tokens are exact (the real image processor's grid).
"""

from __future__ import annotations

import math
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from PIL import Image
from pydantic import ConfigDict
from transformers import StoppingCriteria, StoppingCriteriaList

from seal_agent.models.chat import ChatRuntime, find_language_model_path, limit_pixels
from seal_agent.models.content import to_conversation
from seal_agent.models.defaults import DEFAULT_MAX_IMAGE_PIXELS
from seal_agent.models.option_scoring import _scores_with_cache
from seal_agent.models.prefix_cache import PrefixKVCache, prompt_layout, shared_prefix
from seal_agent.models.static_decode import StaticDecoder, generate_with_static_decode
from seal_agent.models.vision_cache import VisionFeatureCache
from seal_agent.search.protocol import (
    DeclarationsShowThrough,
    ModelThresholds,
    PatchPrediction,
)

#: Characters per text token (English BPE) and template tokens per message
#: (``<|im_start|>role\n ... <|im_end|>\n``), plus the generation prompt.
CHARS_PER_TOKEN = 4
TEMPLATE_TOKENS_PER_MESSAGE = 5
GENERATION_PROMPT_TOKENS = 3


@dataclass
class Counters:
    """What a run paid; summed over calls, resettable per question."""

    chat_calls: int = 0
    prompt_tokens: int = 0
    prefill_tokens: int = 0  # prompt tokens minus those reused from a cached prefix
    image_tokens: int = 0
    vqa_images: int = 0  # images shown to the VQA model
    search_views_encoded: int = 0  # search-model image-encoder passes (views)
    search_encoder_calls: int = 0  # batched image-tower calls
    search_phrase_passes: int = 0  # batched phrase-head calls (including full predicts)
    cost_seconds: float = 0.0  # time spent in the cost networks
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> dict[str, float]:
        with self.lock:
            return {k: v for k, v in self.__dict__.items() if k != "lock"}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- VQA ---------------------------------------------------------------------------------------
class QwenPromptBuilder:
    """Qwen2.5-VL inputs for a chat call, built offline (see the module docstring)."""

    def __init__(self, config: Any, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> None:
        from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

        vision = config.vision_config
        self.config = config
        self.merge = vision.spatial_merge_size
        self.max_pixels = max_pixels
        self.processor = Qwen2VLImageProcessorPil(
            patch_size=vision.patch_size,
            merge_size=vision.spatial_merge_size,
            temporal_patch_size=vision.temporal_patch_size,
            max_pixels=max_pixels,
        )
        self.vocab = min(int(config.text_config.vocab_size), 30000)

    def _text_ids(self, text: str) -> list[int]:
        count = max(1, math.ceil(len(text) / CHARS_PER_TOKEN))
        seed = zlib.crc32(text.encode())
        return [100 + (seed + 7919 * i) % (self.vocab - 100) for i in range(count)]

    def build(self, messages: Sequence[BaseMessage]) -> tuple[dict[str, torch.Tensor], int, int]:
        """(model inputs, prompt tokens, image tokens) for these messages."""
        conversation, images = to_conversation(messages)
        images = [limit_pixels(i, self.max_pixels) for i in images]
        ids: list[int] = []
        pixel_values, grids = [], []
        image_index = 0
        image_tokens = 0
        cfg = self.config
        for turn in conversation:
            ids += [1] * TEMPLATE_TOKENS_PER_MESSAGE
            for piece in turn["content"]:
                if piece["type"] == "text":
                    ids += self._text_ids(piece["text"])
                    continue
                out = self.processor(images=[images[image_index]], return_tensors="pt")
                image_index += 1
                grid = out["image_grid_thw"]
                n_image = int(grid.prod()) // self.merge**2
                image_tokens += n_image
                ids += [cfg.vision_start_token_id, *[cfg.image_token_id] * n_image]
                ids.append(cfg.vision_end_token_id)
                pixel_values.append(out["pixel_values"])
                grids.append(grid)
        ids += [1] * GENERATION_PROMPT_TOKENS
        inputs: dict[str, torch.Tensor] = {
            "input_ids": torch.tensor([ids]),
            "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
            "mm_token_type_ids": torch.tensor([[int(t == cfg.image_token_id) for t in ids]]),
        }
        if pixel_values:
            inputs["pixel_values"] = torch.cat(pixel_values)
            inputs["image_grid_thw"] = torch.cat(grids)
        return inputs, len(ids), image_tokens


def install_vision_cache(model: Any) -> VisionFeatureCache:
    """Issue 12's per-image vision-feature cache, as ``TransformersChatModel`` installs it."""
    cache = VisionFeatureCache()
    if not cache.install(model, find_language_model_path(model)):
        raise RuntimeError("could not install the vision cache on the cost model")
    return cache


class PrefixCount:
    """What a prefix cache would reuse, by the same matching rule, for runs without a
    network (``--real none``): the layouts of earlier prompts, the most recent kept."""

    def __init__(self, min_prefix_tokens: int, max_prompts: int = 32) -> None:
        self.min_prefix_tokens = min_prefix_tokens
        self.max_prompts = max_prompts
        self._layouts: list[Any] = []

    def reused(self, inputs: dict[str, torch.Tensor], image_token_id: int) -> int:
        layout = prompt_layout(inputs, image_token_id)
        if layout is None:
            return 0
        best = max(
            (min(shared_prefix(old, layout), layout.length - 1) for old in self._layouts),
            default=0,
        )
        self._layouts = [*self._layouts, layout][-self.max_prompts :]
        return best if best >= self.min_prefix_tokens else 0


@dataclass
class CallCost:
    prompt_tokens: int
    image_tokens: int
    images: int
    seconds: float
    reused_tokens: int = 0


class VqaCost:
    """A real VLM (random weights) that pays each chat call: vision tower, prefill and
    ``new_tokens`` generated tokens. With ``cache`` (installed on ``model``) and
    ``use_cache``, images already seen skip the vision tower; with ``prefix_cache`` (and
    ``use_cache``) a prompt prefix already prefilled is reused; with ``decoder`` (and
    ``use_cache``) tokens after the first decode through it, as ``TransformersChatModel``
    does on CUDA; ``use_cache=False`` runs the same model uncached (two systems can share
    one set of weights)."""

    def __init__(
        self,
        model: Any | None,
        config: Any,
        *,
        new_tokens: int = 16,
        cache: VisionFeatureCache | None = None,
        use_cache: bool = True,
        max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        prefix_cache: PrefixKVCache | None = None,
        decoder: StaticDecoder | None = None,
    ) -> None:
        self.model = model
        #: ``TransformersChatModel``'s static decoding (CUDA graphs), for the system
        #: that has it; None decodes through ``generate`` (release 0.1.0)
        self.decoder = decoder if use_cache else None
        self.builder = QwenPromptBuilder(config, max_pixels)
        self.new_tokens = new_tokens
        self.cache = cache if use_cache else None
        self.prefix_cache = prefix_cache if use_cache else None
        self._prefix_count = (
            PrefixCount(prefix_cache.min_prefix_tokens)
            if model is None and self.prefix_cache is not None
            else None
        )
        self._shared = cache
        self._use_cache = use_cache
        self._lock = threading.Lock()
        #: The model as ``TransformersChatModel`` holds it, for the library's own
        #: likelihood scoring (``score``) and device placement.
        self._runtime = (
            ChatRuntime(
                model=model,
                processor=None,
                device=next(model.parameters()).device,
                dtype=next(model.parameters()).dtype,
                lock=self._lock,
                language_model_path=find_language_model_path(model),
            )
            if model is not None
            else None
        )
        #: Seconds by phase, summed over calls (where a question's time goes): building
        #: the inputs on the CPU (image processor), prefill (vision tower + prompt, up
        #: to the first token) and decoding the remaining tokens.
        self.phase_seconds = {"prep": 0.0, "prefill": 0.0, "decode": 0.0}

    def _reused_without_network(self, inputs: dict[str, torch.Tensor]) -> int:
        if self._prefix_count is None:
            return 0
        with self._lock:
            image_token = int(self.builder.config.image_token_id)
            return self._prefix_count.reused(inputs, image_token)

    def _prepare(
        self, messages: Sequence[BaseMessage]
    ) -> tuple[dict[str, torch.Tensor], int, int, int, float]:
        """(inputs, prompt tokens, image tokens, images, seconds building them)."""
        started = time.perf_counter()
        inputs, prompt_tokens, image_tokens = self.builder.build(messages)
        images = int(inputs["image_grid_thw"].shape[0]) if "image_grid_thw" in inputs else 0
        return inputs, prompt_tokens, image_tokens, images, time.perf_counter() - started

    def run(self, messages: Sequence[BaseMessage]) -> CallCost:
        """What a generated reply pays: inputs built, prefill (from a cached prefix
        where one matches), ``new_tokens`` decoded."""
        inputs, prompt_tokens, image_tokens, images, prep = self._prepare(messages)
        if self._runtime is None:
            reused = self._reused_without_network(inputs)
            return CallCost(prompt_tokens, image_tokens, images, 0.0, reused)
        device = self._runtime.device
        with self._lock, torch.inference_mode():
            if self._shared is not None:
                self._shared.enabled = self._use_cache
            _sync(device)
            started = time.perf_counter()
            first_token: list[float] = []

            def prefilled() -> None:
                _sync(device)
                first_token.append(time.perf_counter())

            # generate's own decoding (release 0.1.0) is clocked per token; the static
            # decoder reports its first token itself.
            clock = (
                {}
                if self.decoder is not None
                else {"stopping_criteria": StoppingCriteriaList([_FirstTokenClock(prefilled)])}
            )
            out = generate_with_static_decode(
                self._runtime.model,
                self._runtime.to_device(inputs),
                self.prefix_cache,
                self.decoder,
                on_first_token=prefilled if self.decoder is not None else None,
                **clock,
                max_new_tokens=self.new_tokens,
                min_new_tokens=self.new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
            )
            _sync(device)
            ended = time.perf_counter()
            seconds = ended - started
            prefill = (first_token[0] if first_token else ended) - started
            self.phase_seconds["prep"] += prep
            self.phase_seconds["prefill"] += prefill
            self.phase_seconds["decode"] += seconds - prefill
        return CallCost(prompt_tokens, image_tokens, images, seconds, out.reused_tokens)

    def score(self, messages: Sequence[BaseMessage], options: Sequence[str]) -> CallCost:
        """What ``score_options`` pays, through the library's own cached scoring
        (``models/option_scoring.py``): the prompt's prefill (from a cached prefix where
        one matches) with its KV state kept, then each option's own tokens (plus the
        end-of-turn token) on top of it. Option tokens count as prompt tokens."""
        inputs, prompt_tokens, image_tokens, images, prep = self._prepare(messages)
        option_ids = [[*self.builder._text_ids(option), 1] for option in options]
        tokens = prompt_tokens + sum(len(ids) - 1 for ids in option_ids)
        if self._runtime is None:
            reused = self._reused_without_network(inputs)
            return CallCost(tokens, image_tokens, images, 0.0, reused)
        device = self._runtime.device
        stats = self.prefix_cache.stats if self.prefix_cache is not None else None
        with self._lock, torch.inference_mode():
            if self._shared is not None:
                self._shared.enabled = self._use_cache
            reused_before = stats.reused_tokens if stats is not None else 0
            _sync(device)
            started = time.perf_counter()
            _scores_with_cache(self._runtime, inputs, option_ids, self.prefix_cache)
            _sync(device)
            seconds = time.perf_counter() - started
            reused = (stats.reused_tokens if stats is not None else 0) - reused_before
            self.phase_seconds["prep"] += prep
            self.phase_seconds["prefill"] += seconds
        return CallCost(tokens, image_tokens, images, seconds, reused)


class _FirstTokenClock(StoppingCriteria):
    """Calls ``at_first`` once the first token exists (prefill done); never stops."""

    def __init__(self, at_first: Any) -> None:
        self.at_first = at_first
        self.called = False

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> Any:
        if not self.called:
            self.called = True
            self.at_first()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class ReplayChatModel(BaseChatModel):
    """The decider's reply; the cost model pays for the call; everything counted."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    decider: BaseChatModel
    cost: Any
    counters: Any

    @property
    def _llm_type(self) -> str:
        return "cost-replay"

    def _count(self, cost: CallCost) -> None:
        with self.counters.lock:
            self.counters.chat_calls += 1
            self.counters.prompt_tokens += cost.prompt_tokens
            self.counters.prefill_tokens += cost.prompt_tokens - cost.reused_tokens
            self.counters.image_tokens += cost.image_tokens
            self.counters.vqa_images += cost.images
            self.counters.cost_seconds += cost.seconds

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self._count(self.cost.run(messages))
        reply = self.decider.invoke(messages)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=reply.content))])

    def score_options(self, messages: Sequence[BaseMessage], options: Sequence[str]) -> list[float]:
        """Multiple choice by likelihood, as ``TransformersChatModel`` answers it (the
        graph's default ``option_scoring="auto"`` scores instead of generating): the
        cost network pays the scoring; the decider picks the option (asked with the
        options lettered, as the generate path would ask it)."""
        self._count(self.cost.score(messages, options))
        choice = _decider_choice(self.decider, messages, options)
        return [0.0 if i == choice else 1.0 for i in range(len(options))]


def _decider_choice(
    decider: BaseChatModel, messages: Sequence[BaseMessage], options: Sequence[str]
) -> int:
    """The option the decider picks when shown the lettered options."""
    from langchain_core.messages import HumanMessage

    from seal_agent.graph.parsing import parse_option_choice
    from seal_agent.graph.prompts import format_options

    *head, last = list(messages)
    content = last.content
    suffix = "\n" + format_options(options)
    if isinstance(content, str):
        content = content + suffix
    else:
        content = [*content, {"type": "text", "text": suffix}]
    reply = decider.invoke([*head, HumanMessage(content=content)])
    choice = parse_option_choice(str(reply.content), list(options))
    return 0 if choice is None else choice


# -- search ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _PairEncoding:
    decider: Any
    cost: Any

    @property
    def nbytes(self) -> int:
        return int(getattr(self.decider, "nbytes", 0)) + int(getattr(self.cost, "nbytes", 0))


class ReplaySearchModel(DeclarationsShowThrough):
    """The reference search model decides; a real OWL network pays every pass.

    Has the split API (``encode_views`` / ``predict_encoded``), so behind the graph's
    view cache each view costs one image-tower pass and each new phrase one head pass;
    without the cache every ``predict`` is a full pass over tower and heads.
    """

    def __init__(self, decider: Any, cost: Any | None, counters: Counters) -> None:
        self.decider = decider
        self.cost = cost
        self.counters = counters

    @property
    def input_size(self) -> int:
        return int(self.decider.input_size)

    @property
    def thresholds(self) -> ModelThresholds:
        return self.decider.thresholds  # type: ignore[no-any-return]

    @property
    def declaring_model(self) -> object:
        """The decider's declarations decide the search path (the cost network pays)."""
        return self.decider

    def _cost_views(self, views: Sequence[Image.Image]) -> list[Image.Image]:
        """The views at the cost network's own input size (what it would be shown)."""
        side = int(self.cost.input_size)
        out = []
        for view in views:
            scale = side / max(view.width, view.height)  # the longer side becomes `side`
            size = (max(1, round(view.width * scale)), max(1, round(view.height * scale)))
            out.append(view.resize(size, Image.Resampling.BILINEAR))
        return out

    def _timed(self, fn: Any) -> tuple[Any, float]:
        device = getattr(self.cost, "device", torch.device("cpu"))
        _sync(device)
        started = time.perf_counter()
        out = fn()
        _sync(device)
        return out, time.perf_counter() - started

    def predict(
        self, views: Sequence[Image.Image], phrases: Sequence[str]
    ) -> list[list[PatchPrediction]]:
        seconds = 0.0
        if self.cost is not None:
            _, seconds = self._timed(lambda: self.cost.predict(self._cost_views(views), phrases))
        with self.counters.lock:
            self.counters.search_views_encoded += len(views)
            self.counters.search_encoder_calls += 1
            self.counters.search_phrase_passes += 1
            self.counters.cost_seconds += seconds
        return self.decider.predict(views, phrases)  # type: ignore[no-any-return]

    def encode_views(self, views: Sequence[Image.Image]) -> list[_PairEncoding]:
        costs: list[Any] = [None] * len(views)
        seconds = 0.0
        if self.cost is not None:
            costs, seconds = self._timed(lambda: self.cost.encode_views(self._cost_views(views)))
        with self.counters.lock:
            self.counters.search_views_encoded += len(views)
            self.counters.search_encoder_calls += 1
            self.counters.cost_seconds += seconds
        deciders = self.decider.encode_views(views)
        return [_PairEncoding(d, c) for d, c in zip(deciders, costs, strict=True)]

    def predict_encoded(
        self, encodings: Sequence[_PairEncoding], phrases: Sequence[str]
    ) -> list[list[PatchPrediction]]:
        seconds = 0.0
        if self.cost is not None:
            cost_encodings = [e.cost for e in encodings]
            _, seconds = self._timed(lambda: self.cost.predict_encoded(cost_encodings, phrases))
        with self.counters.lock:
            self.counters.search_phrase_passes += 1
            self.counters.cost_seconds += seconds
        return self.decider.predict_encoded(  # type: ignore[no-any-return]
            [e.decider for e in encodings], phrases
        )


__all__ = [
    "CallCost",
    "Counters",
    "PrefixCount",
    "QwenPromptBuilder",
    "ReplayChatModel",
    "ReplaySearchModel",
    "VqaCost",
    "install_vision_cache",
]
