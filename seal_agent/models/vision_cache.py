"""Encode each image once per run: a cache of a VLM's vision-encoder output per image.

Why: a SEAL question shows the chat model the same global image at least twice (the
listing and the answer; the reference adds one cue question per target), and with
a 7B VLM the vision tower plus projector is a large part of each call. Transformers'
multimodal models compute image features in ``get_image_features`` of their inner
model (``Qwen2_5_VLModel``, ``LlavaModel``), whose output's ``pooler_output`` holds one
tensor per image; the forward pass only concatenates those and scatters them into the
image-token positions. So this module wraps that method on the model instance:

* each image of a call is identified by a digest of its own pixel tensor (and its
  grid, for Qwen's variable-resolution patches) plus the call's non-tensor settings;
* images already seen are taken from the cache; the others go through the original
  method in one batch, and the per-image outputs are put back in the prompt's order;
* a byte budget bounds the cache, least recently used first out.

Outputs equal the uncached ones (same pixels in, same features out; only the batch an
image is encoded in may differ, which changes nothing but float rounding).

Features of a model on an accelerator are kept in host memory (``offload``) and copied
back on a hit (~1 ms for a global image's 9 MB), so the cache's budget never competes
with the models for GPU memory.

The KV cache of a shared prompt prefix (the listing's and the answer's first message)
is reused by ``seal_agent.models.prefix_cache``; with it, a prefix's images are not
encoded again at all, and this cache serves the images that fall outside a prefix.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from seal_agent.models.devices import keeps_in_host_memory

#: ~35 Qwen2.5-VL-7B global images (1,000 tokens x 3,584 x bf16 = 7 MB each).
DEFAULT_VISION_CACHE_BYTES = 256 * 1024 * 1024


@dataclass
class VisionCacheStats:
    images_requested: int = 0
    images_encoded: int = 0  # images that went through the vision tower
    encoder_calls: int = 0  # calls of the original get_image_features
    hits: int = 0
    evictions: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _digest(*parts: Any) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        if isinstance(part, torch.Tensor):
            tensor = part.detach().contiguous().cpu()
            digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(tensor.view(torch.uint8).numpy().tobytes())
        else:
            digest.update(repr(part).encode())
    return digest.hexdigest()


class VisionFeatureCache:
    """Per-image vision features of one model, reused across calls (see module doc)."""

    def __init__(
        self, max_bytes: int = DEFAULT_VISION_CACHE_BYTES, offload: bool | None = None
    ) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        #: Entries in host memory: None (default) for features on an accelerator, True
        #: always, False never.
        self.offload = offload
        #: False bypasses the cache (the wrapped method runs as if not installed).
        self.enabled = True
        self.stats = VisionCacheStats()
        self._entries: OrderedDict[str, torch.Tensor] = OrderedDict()
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

    # -- installing --------------------------------------------------------------------------
    def install(self, model: Any, language_model_path: str) -> bool:
        """Wrap ``get_image_features`` of the module that holds the language model.

        Returns False (and changes nothing) for a model whose layout is not understood:
        the model then simply runs uncached.
        """
        parent_path = language_model_path.rpartition(".")[0]
        try:
            inner = model.get_submodule(parent_path) if parent_path else model
        except AttributeError:
            return False
        original = getattr(inner, "get_image_features", None)
        if not callable(original) or getattr(original, "_seal_vision_cache", None) is not None:
            return False
        wrapped = self._wrap(original)
        wrapped._seal_vision_cache = self  # type: ignore[attr-defined]
        inner.get_image_features = wrapped
        return True

    def _wrap(self, original: Callable[..., Any]) -> Callable[..., Any]:
        # The original's signature shows through (``generate`` reads it to pick the
        # encoder's arguments, e.g. ``image_grid_thw``).
        @functools.wraps(original)
        def get_image_features(pixel_values: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            return self._features(original, pixel_values, args, kwargs)

        return get_image_features

    # -- the cached call ---------------------------------------------------------------------
    def _features(
        self,
        original: Callable[..., Any],
        pixel_values: torch.Tensor,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        grid = kwargs.get("image_grid_thw", args[0] if args else None)
        if (
            not self.enabled
            or kwargs.get("image_sizes") is not None
            or (grid is not None and not isinstance(grid, torch.Tensor))
        ):
            return original(pixel_values, *args, **kwargs)  # a layout not split here
        settings = {
            k: v for k, v in kwargs.items() if k != "image_grid_thw" and not torch.is_tensor(v)
        }
        pieces, grids = self._split(pixel_values, grid)
        keys = [_digest(piece, g, settings) for piece, g in zip(pieces, grids, strict=True)]
        with self._lock:
            self.stats.images_requested += len(keys)
            found = {
                k: self._entries[k].to(pixel_values.device) for k in keys if k in self._entries
            }
            for key in found:
                self._entries.move_to_end(key)
            self.stats.hits += len([k for k in keys if k in found])
        missing = [i for i, k in enumerate(keys) if k not in found]
        if missing:
            fresh = self._encode(original, pieces, grids, missing, args, kwargs)
            with self._lock:
                self.stats.encoder_calls += 1
                self.stats.images_encoded += len(missing)
                for i, features in zip(missing, fresh, strict=True):
                    found[keys[i]] = features
                    self._store(keys[i], features)
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        per_image: Any = tuple(found[k] for k in keys)  # as the models' own: one per image
        return BaseModelOutputWithPooling(pooler_output=per_image)

    @staticmethod
    def _split(
        pixel_values: torch.Tensor, grid: torch.Tensor | None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
        """One pixel tensor per image: Qwen's rows per grid, else the batch dimension."""
        if grid is None:
            return list(pixel_values.unbind(0)), [None] * pixel_values.shape[0]
        rows = grid.prod(-1).tolist()
        return list(torch.split(pixel_values, rows)), list(grid.unbind(0))

    @staticmethod
    def _encode(
        original: Callable[..., Any],
        pieces: list[torch.Tensor],
        grids: list[torch.Tensor | None],
        missing: list[int],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> list[torch.Tensor]:
        if grids[0] is None:
            batch = torch.stack([pieces[i] for i in missing])
            out = original(batch, *args, **kwargs)
        else:
            batch = torch.cat([pieces[i] for i in missing])
            grid = torch.stack([grids[i] for i in missing])  # type: ignore[misc]
            rest = {k: v for k, v in kwargs.items() if k != "image_grid_thw"}
            out = original(batch, grid, *args[1:], **rest)
        features = out.pooler_output if hasattr(out, "pooler_output") else out
        features = list(features)
        if len(features) != len(missing):
            raise RuntimeError(
                f"get_image_features returned {len(features)} feature sets for "
                f"{len(missing)} images"
            )
        return features

    def _store(self, key: str, features: torch.Tensor) -> None:
        size = features.element_size() * features.nelement()
        if size > self.max_bytes:
            return
        offload = keeps_in_host_memory(self.offload, features.device)
        self._entries[key] = features.to("cpu", copy=True) if offload else features
        self._bytes += size
        while self._bytes > self.max_bytes and self._entries:
            _, old = self._entries.popitem(last=False)
            self._bytes -= old.element_size() * old.nelement()
            self.stats.evictions += 1


__all__ = ["DEFAULT_VISION_CACHE_BYTES", "VisionCacheStats", "VisionFeatureCache"]
