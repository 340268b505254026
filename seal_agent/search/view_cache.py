"""Shared view encodings: a search model wrapper that never encodes the same view twice.

Why: the searches for the targets of one question all start at the same root view and
often walk the same first levels; a follow-up question about the same photo (the usual
case for an agent) repeats every view of the first. On a GPU the image tower is what a
view costs (OWLv2-B/16: ~1.1 TFLOP per 960 px view), while the text-conditioned heads
for one more phrase are cheap. So:

* A view is identified by a digest of its pixels (BLAKE2b over mode, size and bytes):
  the verified content, not a name or a box the caller could get wrong. Equal pixels
  give equal model outputs, so a cached answer is the answer an uncached run gets.
* Models with the split API (``EncodingSearchModel``: ``encode_views`` once per view,
  ``predict_encoded`` for phrases on stored encodings) keep each view's encoding; any
  other ``SearchModel`` is cached per (view, phrase) prediction if it declares
  ``independent_phrases = True`` (a phrase scores the same whatever is asked with it),
  else per (view, phrase list): an early-fusion model such as Grounding DINO reads all
  phrases as one caption, so a phrase scored beside "table" differs from one scored
  alone, and only the same list asked again may be answered from the cache.
* Concurrent requests coalesce: a view (or a view-phrase pair) being computed by one
  thread is waited for by the others, never computed twice. All phrases a request
  wants for a view are scored in one pass (the missing ones only).
* Bounded: a byte budget (encodings report ``nbytes``) and an entry cap, least recently
  used first out. A model fault is not cached: the next request tries again.

Counters (``stats``) report image-encoder passes, phrase passes and hits, which is what
``benchmarks/cost_per_question.py`` measures.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from seal_agent.errors import InvalidImageError
from seal_agent.search.protocol import (
    DeclarationsShowThrough,
    ModelThresholds,
    PatchPrediction,
    SearchModel,
    accepts_scales,
    declared_score_range,
    validate_predictions,
)

#: Default budget: ~45 OWLv2-B/16 view encodings in bf16 (5.5 MB each), several
#: questions' worth of views of one 12000x9000 photo.
DEFAULT_VIEW_CACHE_BYTES = 256 * 1024 * 1024
DEFAULT_VIEW_CACHE_ENTRIES = 4096
#: What an entry without a reported size is assumed to take.
_UNKNOWN_NBYTES = 64 * 1024


@runtime_checkable
class EncodingSearchModel(SearchModel, Protocol):
    """A search model whose image tower can run apart from its phrase heads.

    ``predict_encoded(encode_views(views), phrases)`` must equal
    ``predict(views, phrases)``, and each phrase's prediction must not depend on the
    other phrases asked with it. Encodings should expose ``nbytes`` (their memory).
    """

    def encode_views(self, views: Sequence[Image.Image]) -> list[Any]: ...

    def predict_encoded(
        self, encodings: Sequence[Any], phrases: Sequence[str]
    ) -> list[list[PatchPrediction]]: ...


def view_digest(view: Image.Image) -> str:
    """The view's verified identity: a digest of its mode, size and pixels."""
    if not isinstance(view, Image.Image):
        raise InvalidImageError(f"a view must be a PIL image, got {type(view).__name__}")
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{view.mode}:{view.width}x{view.height}:".encode())
    digest.update(view.tobytes())
    return digest.hexdigest()


def _nbytes(value: Any) -> int:
    size = getattr(value, "nbytes", None)
    return int(size) if isinstance(size, int | np.integer) and size >= 0 else _UNKNOWN_NBYTES


def _prediction_nbytes(prediction: PatchPrediction) -> int:
    return int(prediction.heatmap.nbytes) + 48 * len(prediction.detections) + 64


def _frozen(prediction: PatchPrediction) -> PatchPrediction:
    """The shared copy is read-only: a caller that mutates it in place fails loudly
    instead of changing what the next search sees. It is the cache's own copy: a model
    may write its next heatmap into the same buffer (per-thread scratch, as the protocol
    suggests), which must neither change a cached answer nor be made read-only."""
    heatmap = prediction.heatmap.copy()
    heatmap.setflags(write=False)
    return PatchPrediction(prediction.detections, heatmap)


@dataclass
class ViewCacheStats:
    """What the cache saved; all counts since construction (or ``reset_stats``)."""

    views_requested: int = 0
    view_hits: int = 0  # views whose encoding (or every asked phrase) was already there
    coalesced: int = 0  # views another thread was computing, waited for
    encoder_calls: int = 0  # batched calls into the image tower
    views_encoded: int = 0  # image-encoder passes (one per view)
    phrase_calls: int = 0  # batched calls into the phrase heads
    phrase_evaluations: int = 0  # (view, phrase) pairs scored
    evictions: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


#: What one stored prediction answers: a phrase (phrases independent of each other), or
#: (the phrase list it was asked in, its position there).
_Slot = str | tuple[tuple[str, ...], int]


@dataclass
class _Entry:
    """One view: its encoding (split models) and its predictions per phrase."""

    encoding: Future[Any] | None = None
    predictions: dict[_Slot, Future[PatchPrediction]] = field(default_factory=dict)
    nbytes: int = 0
    done: bool = True  # nothing pending: may be evicted


class ViewCachingSearchModel(DeclarationsShowThrough):
    """A ``SearchModel`` that shares view encodings across searches, threads and questions.

    Wrap the graph's search model once per graph (``build_graph`` does): every search of
    every question through that graph then shares one bounded cache. Results are those
    of the wrapped model, bit for bit (same pixels in, same numbers out).
    """

    def __init__(
        self,
        model: SearchModel,
        *,
        max_bytes: int = DEFAULT_VIEW_CACHE_BYTES,
        max_entries: int = DEFAULT_VIEW_CACHE_ENTRIES,
    ) -> None:
        if max_bytes < 0 or max_entries < 1:
            raise ValueError("max_bytes must be >= 0 and max_entries >= 1")
        self.model = model
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        #: A model that takes each view's scale is cached per (view, scale) and always
        #: through ``predict`` (the split API has no scales).
        self.takes_scales = accepts_scales(model)
        self.split = isinstance(model, EncodingSearchModel) and not self.takes_scales
        #: Whether a phrase's prediction may be reused whatever it was asked with (the
        #: split API promises it; other models must declare it).
        self.independent = self.split or getattr(model, "independent_phrases", False) is True
        self.stats = ViewCacheStats()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    # -- SearchModel ---------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        return self.model.input_size

    @property
    def thresholds(self) -> ModelThresholds:
        return self.model.thresholds

    @property
    def declaring_model(self) -> object:
        """The optional declarations are the wrapped model's: caching changes no box."""
        return self.model

    @property
    def independent_phrases(self) -> bool:
        return self.independent

    @property
    def cached_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"ViewCachingSearchModel({self.model!r}, max_bytes={self.max_bytes})"

    def reset_stats(self) -> None:
        with self._lock:
            self.stats = ViewCacheStats()

    def clear(self) -> None:
        """Forget every finished entry (pending ones finish for their waiters first)."""
        with self._lock:
            for key in [k for k, e in self._entries.items() if e.done]:
                self._bytes -= self._entries.pop(key).nbytes

    def predict(
        self,
        views: Sequence[Image.Image],
        phrases: Sequence[str],
        *,
        scales: Sequence[float] | None = None,
    ) -> list[list[PatchPrediction]]:
        """The wrapped model's predictions; ``scales`` reach a model that takes them (and
        key its entries), and are ignored for one that does not."""
        scales = list(scales) if scales is not None and self.takes_scales else None
        if isinstance(phrases, str) or not all(isinstance(p, str) for p in phrases):
            return self._uncached(views, phrases, scales)  # let the model name the fault
        views, phrases = list(views), list(phrases)
        if not views or not phrases:
            return self._uncached(views, phrases, scales)
        if scales is not None and len(scales) != len(views):
            return self._uncached(views, phrases, scales)
        keys = [view_digest(v) for v in views]
        key_scale: dict[str, float] | None = None
        if scales is not None:
            keys = [f"{k}@{float(s)!r}" for k, s in zip(keys, scales, strict=True)]
            key_scale = {k: float(s) for k, s in zip(keys, scales, strict=True)}
        unique = list(dict.fromkeys(keys))
        first = {k: views[keys.index(k)] for k in unique}
        with self._lock:
            self.stats.views_requested += len(views)
        encodings = self._ensure_encodings(unique, first) if self.split else {}
        # A slot names one stored prediction: the phrase itself, or for a model whose
        # phrases are read together, (the phrase list, the phrase's position in it).
        if self.independent:
            slots: list[_Slot] = list(phrases)
        else:
            group = tuple(phrases)
            slots = [(group, j) for j in range(len(group))]
        per_key = self._ensure_predictions(
            unique, first, list(dict.fromkeys(slots)), encodings, key_scale
        )
        out = [[per_key[k][slot] for slot in slots] for k in keys]
        self._trim()
        return validate_predictions(out, views, phrases, declared_score_range(self.model))

    def _uncached(
        self, views: Any, phrases: Any, scales: list[float] | None
    ) -> list[list[PatchPrediction]]:
        if scales is None:
            return self.model.predict(views, phrases)
        return self.model.predict(views, phrases, scales=scales)  # type: ignore[call-arg]

    # -- encodings (split models) ----------------------------------------------------------
    def _ensure_encodings(self, keys: list[str], views: dict[str, Image.Image]) -> dict[str, Any]:
        """Each view's encoding: stored, being computed by another thread, or computed here
        (all missing views in one batched pass)."""
        mine: list[str] = []
        futures: dict[str, Future[Any]] = {}
        with self._lock:
            for key in keys:
                entry = self._entry(key)
                if entry.encoding is None:
                    entry.encoding = Future()
                    entry.done = False
                    mine.append(key)
                elif not entry.encoding.done():
                    self.stats.coalesced += 1
                futures[key] = entry.encoding
        if mine:
            try:
                encodings = self.model.encode_views([views[k] for k in mine])  # type: ignore[attr-defined]
                if not isinstance(encodings, list) or len(encodings) != len(mine):
                    raise ValueError(
                        f"encode_views returned {type(encodings).__name__} for {len(mine)} views"
                    )
            except BaseException as exc:
                self._fail_encodings(mine, exc)
                raise
            with self._lock:
                self.stats.encoder_calls += 1
                self.stats.views_encoded += len(mine)
                for key, encoding in zip(mine, encodings, strict=True):
                    futures[key].set_result(encoding)
                    stored = self._entries.get(key)
                    if stored is not None and stored.encoding is futures[key]:
                        stored.nbytes += _nbytes(encoding)
                        self._bytes += _nbytes(encoding)
                        self._settle(stored)
        return {key: future.result() for key, future in futures.items()}

    def _fail_encodings(self, keys: list[str], exc: BaseException) -> None:
        """Waiters get the fault; the views are forgotten so the next request retries."""
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is None or entry.encoding is None:
                    continue
                if not entry.encoding.done():
                    entry.encoding.set_exception(exc)
                entry.encoding = None
                self._settle(entry)

    # -- predictions ---------------------------------------------------------------------------
    def _ensure_predictions(
        self,
        keys: list[str],
        views: dict[str, Image.Image],
        slots: list[_Slot],
        encodings: dict[str, Any],
        key_scale: dict[str, float] | None = None,
    ) -> dict[str, dict[_Slot, PatchPrediction]]:
        claimed: dict[str, dict[_Slot, Future[PatchPrediction]]] = {}
        futures: dict[str, dict[_Slot, Future[PatchPrediction]]] = {}
        with self._lock:
            for key in keys:
                entry = self._entry(key)
                futures[key] = {}
                waited = False
                for slot in slots:
                    future = entry.predictions.get(slot)
                    if future is None:
                        future = Future()
                        entry.predictions[slot] = future
                        entry.done = False
                        claimed.setdefault(key, {})[slot] = future
                    elif not future.done():
                        waited = True
                    futures[key][slot] = future
                if key not in claimed:
                    self.stats.view_hits += 1
                    self.stats.coalesced += int(waited)
        if claimed:
            self._compute(claimed, views, encodings, key_scale)
        return {k: {p: f.result() for p, f in per.items()} for k, per in futures.items()}

    def _compute(
        self,
        claimed: dict[str, dict[_Slot, Future[PatchPrediction]]],
        views: dict[str, Image.Image],
        encodings: dict[str, Any],
        key_scale: dict[str, float] | None = None,
    ) -> None:
        """One pass for every claimed (view, slot): the union of the claimed phrases, or,
        for phrases read together, the one phrase list they were asked as."""
        keys = list(claimed)
        slots: list[_Slot] = list(dict.fromkeys(p for k in keys for p in claimed[k]))
        first = slots[0]
        if isinstance(first, str):
            union = [slot for slot in slots if isinstance(slot, str)]
        else:  # one request's slots: all of one list (a list is never half computed)
            group: tuple[str, ...] = first[0]
            slots = [(group, j) for j in range(len(group))]
            union = list(group)
        try:
            if self.split:
                output = self.model.predict_encoded(  # type: ignore[attr-defined]
                    [encodings[k] for k in keys], union
                )
            else:
                output = self._uncached(
                    [views[k] for k in keys],
                    union,
                    [key_scale[k] for k in keys] if key_scale is not None else None,
                )
            output = validate_predictions(
                output, [views[k] for k in keys], union, declared_score_range(self.model)
            )
        except BaseException as exc:
            with self._lock:
                for key in keys:
                    entry = self._entries.get(key)
                    for slot, future in claimed[key].items():
                        future.set_exception(exc)
                        if entry is not None and entry.predictions.get(slot) is future:
                            del entry.predictions[slot]
                    if entry is not None:
                        self._settle(entry)
            raise
        with self._lock:
            if self.split:
                self.stats.phrase_calls += 1
            else:
                self.stats.encoder_calls += 1
                self.stats.views_encoded += len(keys)
            self.stats.phrase_evaluations += len(keys) * len(union)
            for key, row in zip(keys, output, strict=True):
                entry = self._entries.get(key)
                for slot, answer in zip(slots, row, strict=True):
                    prediction = _frozen(answer)
                    mine = claimed[key].get(slot)
                    if mine is not None:
                        mine.set_result(prediction)
                    if entry is None:
                        continue
                    stored = entry.predictions.get(slot)
                    if stored is None:  # scored anyway in the same pass: keep it
                        stored = Future()
                        stored.set_result(prediction)
                        entry.predictions[slot] = stored
                    elif stored is not mine:
                        continue
                    entry.nbytes += _prediction_nbytes(prediction)
                    self._bytes += _prediction_nbytes(prediction)
                if entry is not None:
                    self._settle(entry)

    # -- bookkeeping (lock held) ---------------------------------------------------------------
    def _entry(self, key: str) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        self._entries.move_to_end(key)
        return entry

    @staticmethod
    def _settle(entry: _Entry) -> None:
        entry.done = (entry.encoding is None or entry.encoding.done()) and all(
            f.done() for f in entry.predictions.values()
        )

    def _trim(self) -> None:
        """Least recently used finished entries out until within both bounds."""
        with self._lock:
            if self._bytes <= self.max_bytes and len(self._entries) <= self.max_entries:
                return
            for key in list(self._entries):
                if self._bytes <= self.max_bytes and len(self._entries) <= self.max_entries:
                    break
                entry = self._entries[key]
                if entry.done:
                    del self._entries[key]
                    self._bytes -= entry.nbytes
                    self.stats.evictions += 1


__all__ = [
    "DEFAULT_VIEW_CACHE_BYTES",
    "EncodingSearchModel",
    "ViewCacheStats",
    "ViewCachingSearchModel",
    "view_digest",
]
