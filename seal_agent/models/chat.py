"""A local transformers vision-language model as a LangChain chat model.

``TransformersChatModel`` wraps ``AutoModelForImageTextToText`` + ``AutoProcessor`` and
renders messages with the processor's own chat template, so any image-text-to-text
checkpoint with a chat template works; LLaVA-1.5 and Qwen2.5-VL are the tested ones.
Nothing is loaded until the first call (a graph with the default VQA model can be
built, serialised and inspected on a machine without the weights).

Being a ``BaseChatModel``, it is interchangeable with any other LangChain chat model:
an OpenAI-compatible server (vLLM, Ollama, TGI) through ``ChatOpenAI`` plugs into the
graph instead with one argument.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from seal_agent.errors import ChatModelError, InvalidImageError, SealError
from seal_agent.models.content import to_conversation
from seal_agent.models.defaults import DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_VQA_MODEL_ID
from seal_agent.models.devices import resolve_device, resolve_dtype
from seal_agent.models.host_embeddings import (
    host_embeddings_reason,
    move_input_embeddings_to_host,
)
from seal_agent.models.loading import load_or_raise
from seal_agent.models.prefix_cache import DEFAULT_PREFIX_CACHE_BYTES, PrefixKVCache
from seal_agent.models.processor_vision import limit_pixels, prepare_images, processor_profile
from seal_agent.models.static_decode import (
    StaticDecoder,
    generate_with_static_decode,
    unsupported_reason,
)
from seal_agent.models.vision_cache import DEFAULT_VISION_CACHE_BYTES, VisionFeatureCache
from seal_agent.models.vision_tokens import VisionProfile

logger = logging.getLogger(__name__)


class GenerationSettings(BaseModel):
    """Decoding settings; greedy by default, so answers are reproducible."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(512, ge=1, description="upper bound on the answer's tokens")
    do_sample: bool = Field(False, description="sample instead of greedy decoding")
    temperature: float = Field(1.0, gt=0, description="sampling temperature (do_sample only)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass (do_sample only)")
    top_k: int | None = Field(None, ge=1, description="top-k sampling (do_sample only)")
    repetition_penalty: float = Field(
        1.0,
        gt=0,
        description=(
            "always passed to generate, so it overrides the checkpoint's generation_config "
            "(Qwen2.5-VL-Instruct ships 1.05, which would apply silently otherwise)"
        ),
    )

    def generate_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
            "repetition_penalty": self.repetition_penalty,
        }
        if self.do_sample:
            kwargs["temperature"] = self.temperature
            kwargs["top_p"] = self.top_p
            if self.top_k is not None:
                kwargs["top_k"] = self.top_k
        else:  # silence the checkpoint's sampling defaults, which greedy decoding ignores
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs


@dataclass
class ChatRuntime:
    """The loaded model and processor; ``lock`` serialises forward passes."""

    model: Any
    processor: Any
    device: Any
    dtype: Any
    lock: threading.Lock
    language_model_path: str

    def to_device(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Tensors to the model's device; pixel tensors to its dtype (not the int ids)."""
        moved: dict[str, Any] = {}
        for key, value in inputs.items():
            if hasattr(value, "to"):
                if key.startswith("pixel_values") and value.is_floating_point():
                    moved[key] = value.to(self.device, self.dtype)
                else:
                    moved[key] = value.to(self.device)
            else:
                moved[key] = value
        return moved


class TransformersChatModel(BaseChatModel):
    """A local VLM (default: Qwen2.5-VL-7B-Instruct) behind the LangChain chat interface.

    ``adapter`` is a peft LoRA directory; it is applied to the language model only, even
    when its config names modules (``q_proj``...) that also exist in the vision tower.
    """

    model_id: str = Field(DEFAULT_VQA_MODEL_ID, description="hub id or local directory")
    adapter: str | None = Field(None, description="peft LoRA adapter (hub id or directory)")
    merge_adapter: bool = Field(
        False, description="fold the LoRA into the weights after loading (faster decoding)"
    )
    device: str | None = Field(None, description="cuda, cuda:1, mps, cpu; None: best available")
    dtype: str | None = Field(None, description="bfloat16, float16, float32; None: per device")
    generation: GenerationSettings = Field(
        default_factory=lambda: GenerationSettings.model_validate({})
    )
    max_image_pixels: int | None = Field(
        DEFAULT_MAX_IMAGE_PIXELS,
        ge=1,
        description="larger images are downscaled (aspect kept) before the processor; None: never",
    )
    processor_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="extra AutoProcessor.from_pretrained arguments"
    )
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="extra from_pretrained arguments (attn_implementation, device_map...)",
    )

    vision_cache_bytes: int = Field(
        DEFAULT_VISION_CACHE_BYTES,
        ge=0,
        description="budget for reusing an image's vision features across calls (0: off)",
    )
    prefix_cache_bytes: int = Field(
        DEFAULT_PREFIX_CACHE_BYTES,
        ge=0,
        description=(
            "budget for the KV state of earlier prompts, so a prompt sharing their prefix "
            "prefills only the rest (0: off)"
        ),
    )
    static_decode: bool | None = Field(
        None,
        description=(
            "greedy replies decode through a static KV cache, one CUDA graph replay per "
            "token (token-equal to generate; several times faster per token on a GPU, "
            "where generate's per-token Python dominates a 7B model). None: on CUDA only"
        ),
    )

    host_input_embeddings: bool | None = Field(
        None,
        description=(
            "keep the input-embedding table (a lookup table; 1.09 GB for Qwen2.5-VL-7B) in "
            "host memory, where the output head does not share it: ~1-2 ms per prefill and "
            "~0.1 ms per decoded token for a GB of GPU memory. None: on CUDA"
        ),
    )

    _runtime: ChatRuntime | None = PrivateAttr(default=None)
    _decoder: StaticDecoder | None = PrivateAttr(default=None)
    _vision_cache: VisionFeatureCache | None = PrivateAttr(default=None)
    _prefix_cache: PrefixKVCache | None = PrivateAttr(default=None)
    _load_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _processor: Any = PrivateAttr(default=None)
    _processor_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _profile: VisionProfile | None = PrivateAttr(default=None)

    # -- LangChain ---------------------------------------------------------------------
    @property
    def _llm_type(self) -> str:
        return "transformers-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "adapter": self.adapter,
            "merge_adapter": self.merge_adapter,
            "device": self.device,
            "dtype": self.dtype,
            "max_image_pixels": self.max_image_pixels,
            **self.generation.model_dump(),
        }

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        overrides = {k: v for k, v in kwargs.items() if k in GenerationSettings.model_fields}
        settings = (
            GenerationSettings(**{**self.generation.model_dump(), **overrides})
            if overrides
            else self.generation
        )
        runtime = self.runtime()
        conversation, images = to_conversation(messages)
        images = self.prepare_images(images)
        inputs = encode_prompt(runtime, conversation, images, add_generation_prompt=True)
        generate_kwargs = settings.generate_kwargs()
        tokenizer = runtime.processor.tokenizer
        if stop:
            generate_kwargs.update(stop_strings=list(stop), tokenizer=tokenizer)
        prompt_length = int(inputs["input_ids"].shape[1])
        try:
            import torch

            with runtime.lock, torch.inference_mode():
                generation = generate_with_static_decode(
                    runtime.model,
                    runtime.to_device(inputs),
                    self._prefix_cache,
                    self._decoder,
                    **generate_kwargs,
                )
        except RuntimeError as exc:
            raise ChatModelError(f"{self.model_id} failed to generate: {exc}") from exc
        new_ids = generation.sequences[0, prompt_length:].tolist()
        text = tokenizer.decode(new_ids, skip_special_tokens=True)
        finish_reason = "length" if len(new_ids) >= settings.max_new_tokens else "stop"
        if stop:
            cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
            if cut >= 0:
                text, finish_reason = text[:cut], "stop"
        message = AIMessage(
            content=text.strip(),
            response_metadata={"model_name": self.model_id, "finish_reason": finish_reason},
            usage_metadata={
                "input_tokens": prompt_length,
                "output_tokens": len(new_ids),
                "total_tokens": prompt_length + len(new_ids),
                # prompt tokens whose KV state came from an earlier call's prefix
                "input_token_details": {"cache_read": generation.reused_tokens},
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def score_options(
        self,
        messages: str | Sequence[BaseMessage],
        options: Sequence[str],
        *,
        end_of_turn: bool = True,
    ) -> list[float]:
        """Mean token loss of each option, end-of-turn token included (lower = likelier).

        The paper's likelihood scoring of multiple-choice answers; the graph's answer node
        and the evaluation harness use it when ``option_scoring`` asks for it.
        """
        from seal_agent.models.option_scoring import score_options

        return score_options(self, messages, options, end_of_turn=end_of_turn)

    # -- images --------------------------------------------------------------------------
    def prepare_images(self, images: list[Image.Image]) -> list[Image.Image]:
        """Pixel-limited and, for processors that centre-crop (LLaVA), padded to a square."""
        return prepare_images(images, self.processor(), self.max_image_pixels)

    def vision_profile(self) -> VisionProfile:
        """Frame and token cost per image, from the processor (the weights stay unloaded)."""
        if self._profile is None:
            self._profile = processor_profile(self.processor(), self.max_image_pixels)
        return self._profile

    # -- loading -------------------------------------------------------------------------
    @property
    def vision_cache(self) -> VisionFeatureCache | None:
        """The vision-feature cache once loaded (None: off, or a layout it cannot wrap)."""
        return self._vision_cache

    @property
    def prefix_cache(self) -> PrefixKVCache | None:
        """The prompt-prefix KV cache once loaded (None: off)."""
        return self._prefix_cache

    @property
    def is_loaded(self) -> bool:
        return self._runtime is not None

    def processor(self) -> Any:
        """The processor alone (loaded on first use; cheap, no weights)."""
        if self._processor is None:
            with self._processor_lock:
                if self._processor is None:
                    self._processor = load_processor(self.model_id, **self.processor_kwargs)
        return self._processor

    def runtime(self) -> ChatRuntime:
        """The loaded model and processor (loaded here on first use, once)."""
        if self._runtime is None:
            with self._load_lock:
                if self._runtime is None:
                    self._runtime = self._load()
        return self._runtime

    def _load(self) -> ChatRuntime:
        from transformers import AutoModelForImageTextToText

        device = resolve_device(self.device)
        dtype = resolve_dtype(self.dtype, device)
        processor = self.processor()
        model: Any = load_or_raise(
            "the VQA model",
            self.model_id,
            lambda: AutoModelForImageTextToText.from_pretrained(
                self.model_id, dtype=dtype, **self.model_kwargs
            ),
            ChatModelError,
        )
        if "device_map" not in self.model_kwargs:
            model = model.to(device)
        else:
            device = model.device
        language_model_path = find_language_model_path(model)
        if self.vision_cache_bytes:  # issue 12: each image through the vision tower once
            cache = VisionFeatureCache(self.vision_cache_bytes)
            self._vision_cache = cache if cache.install(model, language_model_path) else None
        if self.prefix_cache_bytes:  # issue 12: the listing's prefix, prefilled once
            self._prefix_cache = PrefixKVCache(self.prefix_cache_bytes)
        if self.adapter is not None:
            model = apply_lora_adapter(model, self.adapter, language_model_path)
            if self.merge_adapter:
                model = model.merge_and_unload()
        model.eval()
        host_table = (
            self.host_input_embeddings
            if self.host_input_embeddings is not None
            else device.type == "cuda"
        )
        if host_table and not move_input_embeddings_to_host(model) and self.host_input_embeddings:
            logger.warning(
                "input embeddings of %s stay on %s: %s",
                self.model_id,
                device,
                host_embeddings_reason(model),
            )
        wanted = self.static_decode if self.static_decode is not None else device.type == "cuda"
        if wanted:
            reason = unsupported_reason(model)
            if reason is None:
                self._decoder = StaticDecoder(model)
            elif self.static_decode:
                logger.warning("static decoding is off for %s: %s", self.model_id, reason)
        return ChatRuntime(
            model=model,
            processor=processor,
            device=device,
            dtype=dtype,
            lock=threading.Lock(),
            language_model_path=language_model_path,
        )

    def __repr__(self) -> str:
        return (
            f"TransformersChatModel(model_id={self.model_id!r}, adapter={self.adapter!r}, "
            f"device={self.device!r}, dtype={self.dtype!r})"
        )


# -- helpers shared with option scoring -------------------------------------------------------
def encode_prompt(
    runtime: ChatRuntime,
    conversation: list[dict[str, Any]],
    images: list[Any],
    *,
    add_generation_prompt: bool,
) -> dict[str, Any]:
    """Render with the processor's chat template, then tokenize text and images together."""
    processor = runtime.processor
    if getattr(processor, "chat_template", None) is None:
        raise ChatModelError(
            "the processor has no chat template; pass a chat checkpoint "
            "(e.g. llava-hf/llava-1.5-7b-hf, Qwen/Qwen2.5-VL-7B-Instruct)"
        )
    try:
        prompt = processor.apply_chat_template(
            conversation, add_generation_prompt=add_generation_prompt, tokenize=False
        )
        encoded = processor(text=[prompt], images=images or None, return_tensors="pt")
    except SealError:
        raise
    except (ValueError, TypeError, OSError) as exc:
        raise InvalidImageError(f"the processor rejected the prompt or images: {exc}") from exc
    return dict(encoded)


def load_processor(model_id: str, **kwargs: Any) -> Any:
    """``AutoProcessor``, or, without torchvision, the same processor minus video support.

    Qwen2.5-VL's processor insists on a video processor, and transformers' video
    processors need torchvision. Image-only chat does not use it, so when (and only
    when) that is the failure, the processor is assembled from its image processor and
    tokenizer with ``video_processor=None``.
    """
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(model_id, **kwargs)
    except ImportError as exc:
        if "torchvision" not in str(exc).lower():
            raise ChatModelError(f"could not load the processor {model_id!r}: {exc}") from exc
        return load_or_raise(
            "the processor (without video support)",
            model_id,
            lambda: _processor_without_video(model_id, **kwargs),
            ChatModelError,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ChatModelError(f"could not load the processor {model_id!r}: {exc}") from exc


_PROCESSOR_PATCH_LOCK = threading.Lock()


def _processor_without_video(model_id: str, **kwargs: Any) -> Any:
    import transformers
    from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES
    from transformers.processing_utils import ProcessorMixin

    model_type = AutoConfig.from_pretrained(model_id).model_type
    class_name = PROCESSOR_MAPPING_NAMES.get(model_type)
    processor_class = getattr(transformers, class_name, None) if class_name else None
    if processor_class is None:
        raise ChatModelError(f"no processor class known for model type {model_type!r}")
    image_processor = AutoImageProcessor.from_pretrained(model_id, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(model_id)
    original = ProcessorMixin.check_argument_for_proper_class

    def allow_missing_video(self: Any, name: str, argument: Any) -> Any:
        if name == "video_processor" and argument is None:
            return None
        return original(self, name, argument)

    with _PROCESSOR_PATCH_LOCK:
        ProcessorMixin.check_argument_for_proper_class = allow_missing_video  # type: ignore[method-assign]
        try:
            return processor_class(
                image_processor=image_processor,
                tokenizer=tokenizer,
                video_processor=None,
                chat_template=tokenizer.chat_template,
            )
        finally:
            ProcessorMixin.check_argument_for_proper_class = original  # type: ignore[method-assign]


def find_language_model_path(model: Any) -> str:
    """Dotted module path of the language model inside a VLM (``model.language_model``)."""
    language_model = None
    get_decoder = getattr(model, "get_decoder", None)
    if callable(get_decoder):
        try:
            language_model = get_decoder()
        except (AttributeError, NotImplementedError):
            language_model = None
    for name, module in model.named_modules():
        if language_model is not None and module is language_model and name:
            return name
    for name, _ in model.named_modules():
        if name.endswith("language_model"):
            return name
    raise ChatModelError(f"cannot find the language model inside {type(model).__name__}")


def apply_lora_adapter(model: Any, adapter: str, language_model_path: str) -> Any:
    """Load a peft LoRA onto the language model only.

    A LoRA config usually lists bare module names (``["q_proj", "v_proj"]``); peft would
    match them in the vision tower too (CLIP has ``q_proj``), adding adapters there that
    the checkpoint has no weights for. The names are rewritten into a regex scoped to
    the language model; an explicit regex that reaches outside it is refused.
    """
    from peft import PeftConfig, PeftModel
    from peft.tuners.lora import LoraLayer

    config = load_or_raise(
        "the adapter config", adapter, lambda: PeftConfig.from_pretrained(adapter), ChatModelError
    )
    targets = getattr(config, "target_modules", None)
    if isinstance(targets, list | set | tuple) and targets:
        names = "|".join(re.escape(str(t)) for t in sorted(targets))
        config.target_modules = rf"{re.escape(language_model_path)}\.(?:.*\.)?(?:{names})"
    peft_model = load_or_raise(
        "the LoRA adapter",
        adapter,
        lambda: PeftModel.from_pretrained(model, adapter, config=config, is_trainable=False),
        ChatModelError,
    )
    prefix = f"base_model.model.{language_model_path}."
    outside = [
        name
        for name, module in peft_model.named_modules()
        if isinstance(module, LoraLayer) and not name.startswith(prefix)
    ]
    if outside:
        raise ChatModelError(
            f"adapter {adapter!r} targets modules outside the language model, e.g. {outside[0]!r}"
        )
    return peft_model


__all__ = [
    "ChatRuntime",
    "GenerationSettings",
    "TransformersChatModel",
    "apply_lora_adapter",
    "encode_prompt",
    "find_language_model_path",
    "limit_pixels",
    "load_processor",
]
