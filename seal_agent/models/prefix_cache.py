"""Prefill a prompt prefix once: a bounded cache of the KV state of earlier prompts.

Why: the graph's calls about one image start with the same message (the global image,
then the question; ``graph/prompts.py``), and with a 7B VLM that prefix is ~1,000
image tokens. The listing call leaves its prompt's KV cache here; the answer call finds
the longest prefix it shares with a cached prompt, starts ``generate`` from a copy of
that cache cut to the shared length, and prefills only the rest.

A prefix is shared only where it is the same model input, not merely the same token
ids: every image's placeholder tokens are identical whatever the picture, so each image
in the prompt is keyed by a digest of its own pixel tensor (and grid), and a shared
prefix ends before the first image whose pixels differ or that it would cut through.

How the suffix is run (transformers 5.x ``generate`` continuing from a cache): the
full ``input_ids`` go in with ``cache`` holding the prefix, so ``generate`` prefills only
the uncached tokens; images of the suffix (the VWM's crops) are encoded here and handed
over as ``mm_encoder_outputs`` (raw ``pixel_values`` would be matched against the
suffix's placeholders, which do not include the prefix's images); ``image_grid_thw`` and
``mm_token_type_ids`` stay whole, so Qwen2.5-VL computes its 3-D mRoPE positions over
the whole prompt, after its stale ``rope_deltas`` from an earlier call are cleared.

Anything not understood (videos, other per-image inputs, padding, a cache layer that
cannot be cut, a count of image runs that does not match the images) falls back to a
full prefill: correct first, then fast.

Where entries live: a GPU holds the models and the work in flight; entries of a model
on an accelerator are kept in host memory (``offload``) and copied back when reused
(~5 ms for a 1,300-token prefix of a 7B model, against ~100 ms to prefill it), so the
cache's budget never competes with the models for GPU memory.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from seal_agent.models.devices import keeps_in_host_memory
from seal_agent.models.loading import unwrapped_model

#: ~8 Qwen2.5-VL-7B prompts of ~1,100 tokens (28 layers x 2 x 4 heads x 128 x bf16).
DEFAULT_PREFIX_CACHE_BYTES = 512 * 1024 * 1024

#: Shorter shared prefixes are prefilled again (a cache copy is not worth it).
DEFAULT_MIN_PREFIX_TOKENS = 16

#: Inputs whose per-image layout is understood; any other key means a full prefill.
_KNOWN_KEYS = frozenset(
    {"input_ids", "attention_mask", "pixel_values", "image_grid_thw", "image_sizes"}
    | {"mm_token_type_ids", "token_type_ids"}
)


@dataclass(frozen=True)
class ImageSpan:
    """One image's placeholder tokens ``[start, end)`` and the digest of its pixels."""

    start: int
    end: int
    digest: str


@dataclass(frozen=True)
class PromptLayout:
    """A single prompt's token ids, where its images sit, and each image's own inputs."""

    ids: torch.Tensor  # 1-D, on the CPU
    spans: tuple[ImageSpan, ...]
    image_inputs: tuple[dict[str, torch.Tensor], ...]  # per image: pixel_values, grid...

    @property
    def length(self) -> int:
        return int(self.ids.shape[0])

    def key(self) -> str:
        digest = hashlib.blake2b(digest_size=16)
        digest.update(self.ids.numpy().tobytes())
        for span in self.spans:
            digest.update(f"{span.start}:{span.end}:{span.digest}".encode())
        return digest.hexdigest()


@dataclass
class PrefixCacheStats:
    lookups: int = 0
    hits: int = 0
    reused_tokens: int = 0  # prompt tokens taken from the cache instead of prefilled
    prefilled_tokens: int = 0  # prompt tokens that went through the language model
    stored: int = 0
    evictions: int = 0
    fallbacks: int = 0  # prompts whose layout is not understood (full prefill, not stored)

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _Entry:
    key: str
    layout: PromptLayout
    kv: Any
    nbytes: int
    hits: int = field(default=0)


def _tensor_digest(*parts: Any) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        if isinstance(part, torch.Tensor):
            tensor = part.detach().contiguous().cpu()
            digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(tensor.view(torch.uint8).numpy().tobytes())
        else:
            digest.update(repr(part).encode())
    return digest.hexdigest()


def _runs(mask: torch.Tensor) -> list[tuple[int, int]]:
    """Contiguous ``[start, end)`` runs of True in a 1-D mask."""
    padded = torch.cat([torch.tensor([False]), mask.cpu(), torch.tensor([False])]).to(torch.int8)
    edges = torch.diff(padded)
    starts = torch.nonzero(edges == 1).flatten().tolist()
    ends = torch.nonzero(edges == -1).flatten().tolist()
    return list(zip(starts, ends, strict=True))


def _per_image_inputs(inputs: dict[str, Any]) -> list[dict[str, torch.Tensor]] | None:
    """Each image's own slice of the processor's image inputs (None: not understood)."""
    pixels = inputs.get("pixel_values")
    if pixels is None:
        return []
    if not isinstance(pixels, torch.Tensor):
        return None
    grid = inputs.get("image_grid_thw")
    sizes = inputs.get("image_sizes")
    if grid is not None:  # Qwen-style: patch rows of all images concatenated
        if not isinstance(grid, torch.Tensor) or grid.ndim != 2:
            return None
        rows = grid.prod(-1).tolist()
        if sum(rows) != pixels.shape[0]:
            return None
        pieces = torch.split(pixels, rows)
        out = [
            {"pixel_values": p, "image_grid_thw": g.unsqueeze(0)}
            for p, g in zip(pieces, grid.unbind(0), strict=True)
        ]
    else:  # LLaVA-style: one batch row per image
        out = [{"pixel_values": p.unsqueeze(0)} for p in pixels.unbind(0)]
    if sizes is not None:
        if not isinstance(sizes, torch.Tensor) or sizes.shape[0] != len(out):
            return None
        for piece, size in zip(out, sizes.unbind(0), strict=True):
            piece["image_sizes"] = size.unsqueeze(0)
    return out


def prompt_layout(inputs: dict[str, Any], image_token_id: int | None) -> PromptLayout | None:
    """The layout of a one-prompt batch, or None where reuse would not be safe."""
    if set(inputs) - _KNOWN_KEYS:
        return None
    ids = inputs.get("input_ids")
    if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.shape[0] != 1:
        return None
    mask = inputs.get("attention_mask")
    if mask is not None and not bool((mask == 1).all()):
        return None
    flat = ids[0].detach().cpu()
    images = _per_image_inputs(inputs)
    if images is None:
        return None
    if not images:
        return PromptLayout(ids=flat, spans=(), image_inputs=())
    if image_token_id is None:
        return None
    runs = _runs(flat == image_token_id)
    if len(runs) != len(images):  # back-to-back images or an unknown layout
        return None
    spans = tuple(
        ImageSpan(start, end, _tensor_digest(*(piece[k] for k in sorted(piece))))
        for (start, end), piece in zip(runs, images, strict=True)
    )
    return PromptLayout(ids=flat, spans=spans, image_inputs=tuple(images))


def shared_prefix(cached: PromptLayout, new: PromptLayout) -> int:
    """Tokens at the start of ``new`` whose KV state ``cached`` holds exactly."""
    n = min(cached.length, new.length)
    differ = torch.nonzero(cached.ids[:n] != new.ids[:n]).flatten()
    length = int(differ[0]) if differ.numel() else n
    for index, span in enumerate(new.spans):
        if span.start >= length:
            break
        other = cached.spans[index] if index < len(cached.spans) else None
        if (
            span.end > length
            or other is None
            or (other.start, other.end) != (span.start, span.end)
            or other.digest != span.digest
        ):
            return span.start
    return length


def _croppable(kv: Any) -> bool:
    from transformers.cache_utils import DynamicCache, DynamicLayer

    if type(kv) is not DynamicCache:
        return False
    layers = list(kv.layers)
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def _cut(kv: Any, length: int) -> None:
    """Keep the first ``length`` tokens of a croppable cache, in compact tensors (a slice
    alone would keep the whole storage alive)."""
    remove = kv.get_seq_length() - length
    if remove > 0:
        kv.crop(-remove)  # transformers 5.x: a negative count of tokens to remove
    for layer in kv.layers:
        if isinstance(getattr(layer, "keys", None), torch.Tensor):
            layer.keys = layer.keys.contiguous().clone()
            layer.values = layer.values.contiguous().clone()


def _kv_copy(kv: Any, device: Any, length: int) -> Any:
    """A new cache holding the first ``length`` tokens of ``kv``, on ``device`` (None:
    where they are), in tensors of its own."""
    out = copy.copy(kv)
    out.layers = []
    for layer in kv.layers:
        new = copy.copy(layer)
        for name in ("keys", "values"):
            tensor = getattr(layer, name)[..., :length, :]
            moved = tensor.to(device) if device is not None else tensor
            setattr(new, name, moved.clone() if moved.data_ptr() == tensor.data_ptr() else moved)
        if hasattr(new, "device"):
            new.device = new.keys.device
        out.layers.append(new)
    return out


def _kv_bytes(kv: Any) -> int:
    total = 0
    for layer in kv.layers:
        for tensor in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if isinstance(tensor, torch.Tensor):
                total += tensor.element_size() * tensor.nelement()
    return total


class PrefixKVCache:
    """Prompt KV states of one model, LRU within a byte budget (see the module doc)."""

    def __init__(
        self,
        max_bytes: int = DEFAULT_PREFIX_CACHE_BYTES,
        min_prefix_tokens: int = DEFAULT_MIN_PREFIX_TOKENS,
        offload: bool | None = None,
    ) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        if min_prefix_tokens < 1:
            raise ValueError(f"min_prefix_tokens must be >= 1, got {min_prefix_tokens}")
        self.max_bytes = max_bytes
        self.min_prefix_tokens = min_prefix_tokens
        #: Entries in host memory: None (default) for states on an accelerator, True
        #: always, False never (they stay where the model made them).
        self.offload = offload
        #: False: every call prefills its whole prompt (and nothing is stored).
        self.enabled = True
        self.stats = PrefixCacheStats()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def cached_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def longest_prefix(self, layout: PromptLayout) -> tuple[int, _Entry | None]:
        """(tokens reusable, the entry holding them); at least one token is left to run."""
        best, found = 0, None
        with self._lock:
            self.stats.lookups += 1
            for entry in self._entries.values():
                length = min(shared_prefix(entry.layout, layout), layout.length - 1)
                if length > best:
                    best, found = length, entry
            if found is None or best < self.min_prefix_tokens:
                return 0, None
            self._entries.move_to_end(found.key)
            found.hits += 1
            self.stats.hits += 1
        return best, found

    def record(self, *, reused: int = 0, prefilled: int = 0, fallback: bool = False) -> None:
        """Count one prompt's tokens (reused, prefilled) or a layout not understood."""
        with self._lock:
            self.stats.reused_tokens += reused
            self.stats.prefilled_tokens += prefilled
            self.stats.fallbacks += int(fallback)

    def take(self, layout: PromptLayout, device: Any = None) -> tuple[int, Any]:
        """(reused tokens, a private copy of the cache cut to them, on ``device``: the
        entry's own by default) or (0, None)."""
        length, entry = self.longest_prefix(layout)
        if entry is None:
            return 0, None
        # Entries are never mutated; the copy (cut while copying) is the caller's.
        return length, _kv_copy(entry.kv, device, length)

    def store(self, layout: PromptLayout, kv: Any, *, shared: bool = False) -> bool:
        """Keep ``kv`` (exactly the prompt's tokens) for later prompts; False if not kept.

        ``shared``: the caller goes on using ``kv``, so the cache keeps a copy (it does
        anyway when it offloads to host memory).
        """
        if not _croppable(kv) or kv.get_seq_length() != layout.length:
            return False
        if keeps_in_host_memory(self.offload, *(layer.keys.device for layer in kv.layers)):
            kv = _kv_copy(kv, "cpu", layout.length)
        elif shared:
            kv = copy.deepcopy(kv)
        size = _kv_bytes(kv)
        if size > self.max_bytes:
            return False
        key = layout.key()
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return True
            self._entries[key] = _Entry(key=key, layout=layout, kv=kv, nbytes=size)
            self._bytes += size
            self.stats.stored += 1
            while self._bytes > self.max_bytes and self._entries:
                _, old = self._entries.popitem(last=False)
                self._bytes -= old.nbytes
                self.stats.evictions += 1
        return True


# -- generate with a cached prefix ------------------------------------------------------------
def _image_token_id(model: Any) -> int | None:
    config = model.config
    for name in ("image_token_id", "image_token_index"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def _encode_images(model: Any, images: Sequence[dict[str, torch.Tensor]], dtype: Any) -> Any:
    """Features of ``images`` the way ``generate`` pre-encodes them (so the vision-feature
    cache wrapping ``get_image_features`` sees these calls too)."""
    encoder = model.base_model.get_image_features
    keys = images[0].keys()
    batch: dict[str, Any] = {}
    for key in keys:
        parts = [image[key] for image in images]
        batch[key] = torch.cat(parts)
    if dtype is not None and batch["pixel_values"].is_floating_point():
        batch["pixel_values"] = batch["pixel_values"].to(dtype)
    accepted = set(inspect.signature(encoder).parameters)
    kwargs = {k: v for k, v in batch.items() if k in accepted}
    return encoder(**kwargs, return_dict=True)


def _clear_rope_state(model: Any) -> None:
    """Qwen-VL models keep the last prompt's ``rope_deltas``; a continued prompt must not
    use a different prompt's (``generate`` recomputes them over the whole prompt)."""
    inner = getattr(model, "base_model", None)
    for module in (model, inner):
        if module is not None and getattr(module, "rope_deltas", None) is not None:
            module.rope_deltas = None


@dataclass
class PrefixGeneration:
    """What ``generate_with_prefix_cache`` did: sequences, and prompt tokens reused."""

    sequences: torch.Tensor
    prompt_tokens: int
    reused_tokens: int
    logits: tuple[torch.Tensor, ...] | None = None  # with ``output_logits=True``
    kv: Any = None  # the prompt's KV state, with ``keep_kv=True`` (the caller's own)

    @property
    def prefilled_tokens(self) -> int:
        return self.prompt_tokens - self.reused_tokens


def generate_with_prefix_cache(
    model: Any,
    inputs: dict[str, Any],
    cache: PrefixKVCache | None,
    *,
    keep_kv: bool = False,
    share_kv: bool = False,
    **generate_kwargs: Any,
) -> PrefixGeneration:
    """``model.generate(**inputs, **generate_kwargs)``, continuing from the longest cached
    prefix of this prompt and leaving the prompt's KV state in ``cache`` for later calls.

    ``inputs`` are on the model's device already (pixel values in its dtype).
    ``keep_kv`` also hands the caller the prompt's KV state (cut to the prompt; with
    ``max_new_tokens=1`` it is exactly the prompt's), to continue it as it likes;
    ``share_kv`` hands it the same state without a copy, to read only (it may be the
    cache's own entry).
    """
    generate_kwargs.pop("return_dict_in_generate", None)  # always on here
    prompt_tokens = int(inputs["input_ids"].shape[1])
    base = unwrapped_model(model)
    layout = None
    if cache is not None and cache.enabled:
        layout = prompt_layout(inputs, _image_token_id(base)) if _continuable(base) else None
        if layout is None:
            cache.record(prefilled=prompt_tokens, fallback=True)
    if layout is None or cache is None:
        return _full_prefill(model, inputs, generate_kwargs, keep_kv or share_kv)
    reused, kv = cache.take(layout, inputs["input_ids"].device)
    call = dict(inputs)
    if kv is not None:
        suffix_images = [
            image
            for span, image in zip(layout.spans, layout.image_inputs, strict=True)
            if span.start >= reused
        ]
        call.pop("pixel_values", None)
        call.pop("image_sizes", None)
        if suffix_images:
            dtype = inputs["pixel_values"].dtype
            call["mm_encoder_outputs"] = {"image": _encode_images(base, suffix_images, dtype)}
        call["cache"] = kv
        _clear_rope_state(base)
    try:
        out = model.generate(**call, **generate_kwargs, return_dict_in_generate=True)
    except (ValueError, TypeError):
        if kv is None:
            raise
        # A model whose generate cannot continue this prompt: the full prefill is right.
        cache.record(prefilled=prompt_tokens, fallback=True)
        _clear_rope_state(base)
        return _full_prefill(model, inputs, generate_kwargs, keep_kv or share_kv)
    final = _output_kv(out)
    if final is not None and _croppable(final):
        _cut(final, prompt_tokens)
        cache.store(layout, final, shared=keep_kv)  # share_kv: read only
    cache.record(reused=reused, prefilled=prompt_tokens - reused)
    return PrefixGeneration(
        out.sequences,
        prompt_tokens,
        reused,
        getattr(out, "logits", None),
        final if keep_kv or share_kv else None,
    )


def _continuable(model: Any) -> bool:
    """Whether the model takes pre-encoded images (``mm_encoder_outputs``, transformers
    5.x VLMs), which the suffix's images need."""
    try:
        return "mm_encoder_outputs" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _full_prefill(
    model: Any, inputs: dict[str, Any], generate_kwargs: dict[str, Any], keep_kv: bool
) -> PrefixGeneration:
    out = model.generate(**inputs, **generate_kwargs, return_dict_in_generate=True)
    kv = _output_kv(out) if keep_kv else None
    if kv is not None and _croppable(kv):
        _cut(kv, int(inputs["input_ids"].shape[1]))
    prompt_tokens = int(inputs["input_ids"].shape[1])
    return PrefixGeneration(out.sequences, prompt_tokens, 0, getattr(out, "logits", None), kv)


def _output_kv(out: Any) -> Any:
    kv = getattr(out, "cache", None)
    return kv if kv is not None else getattr(out, "past_key_values", None)


__all__ = [
    "DEFAULT_MIN_PREFIX_TOKENS",
    "DEFAULT_PREFIX_CACHE_BYTES",
    "ImageSpan",
    "PrefixCacheStats",
    "PrefixGeneration",
    "PrefixKVCache",
    "PromptLayout",
    "generate_with_prefix_cache",
    "prompt_layout",
    "shared_prefix",
]
