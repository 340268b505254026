"""The process-level cache of decoded images, keyed by verified content only.

An entry's key is the sha256 of the encoded bytes the pixels were decoded from, computed
here (never taken from a caller's reference), so a forged reference cannot make one
caller see another caller's image. ``VerifiedFiles`` remembers which file (device, inode,
size, mtime) hashed to which digest, so a run's nodes do not hash the file again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from seal_agent.imaging.pyramid import ImagePyramid

#: Default budget of the decoded-image cache (RGB bytes of all cached pyramids).
DEFAULT_CACHE_BYTES = 2 * 1024**3


class DecodedImageCache:
    """A thread-safe LRU of decoded pyramids, bounded by their RGB bytes.

    Concurrent requests for the same key wait for one decode instead of each decoding
    (a run's parallel search branches all ask for the image at once).
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, ImagePyramid] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    @staticmethod
    def _cost(pyramid: ImagePyramid) -> int:
        return pyramid.width * pyramid.height * 3 * 4 // 3  # level 0 plus its halvings

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> ImagePyramid | None:
        with self._lock:
            pyramid = self._entries.get(key)
            if pyramid is not None:
                self._entries.move_to_end(key)
            return pyramid

    def put(self, key: str, pyramid: ImagePyramid) -> None:
        with self._lock:
            self._entries[key] = pyramid
            self._entries.move_to_end(key)
            total = sum(self._cost(p) for p in self._entries.values())
            # Evict least recently used entries, but always keep the newest one.
            while total > self.max_bytes and len(self._entries) > 1:
                _, evicted = self._entries.popitem(last=False)
                total -= self._cost(evicted)

    def get_or_load(self, key: str, load: Callable[[], ImagePyramid]) -> ImagePyramid:
        cached = self.get(key)
        if cached is not None:
            return cached
        with self._lock:
            key_lock = self._loading.setdefault(key, threading.Lock())
        try:
            with key_lock:
                cached = self.get(key)
                if cached is None:
                    cached = load()
                    self.put(key, cached)
        finally:
            with self._lock:
                self._loading.pop(key, None)
        return cached

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
        _VERIFIED.clear()


class VerifiedFiles:
    """File identity -> the sha256 this process computed of its bytes (bounded LRU)."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, identity: Hashable) -> str | None:
        with self._lock:
            digest = self._entries.get(identity)
            if digest is not None:
                self._entries.move_to_end(identity)
            return digest

    def put(self, identity: Hashable, digest: str) -> None:
        with self._lock:
            self._entries[identity] = digest
            self._entries.move_to_end(identity)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_CACHE = DecodedImageCache()
_VERIFIED = VerifiedFiles()


def image_cache() -> DecodedImageCache:
    """The process-level decoded-image cache (its ``max_bytes`` may be changed)."""
    return _CACHE


def verified_files() -> VerifiedFiles:
    """The process-level memo of files whose content hash was computed here."""
    return _VERIFIED


__all__ = [
    "DEFAULT_CACHE_BYTES",
    "DecodedImageCache",
    "VerifiedFiles",
    "image_cache",
    "verified_files",
]
