"""Calling the search model within the search's deadline.

A model that never answers (a remote detector without a timeout, a wedged GPU) must not
hold a search, and the graph run around it, past ``deadline_s``. With a deadline, each
``predict`` runs on a worker thread and is abandoned when the deadline passes (Python
cannot kill a thread). The workers are reused, so a model's per-thread scratch
(``protocol.SearchModel``: ``threading.local`` buffers, CUDA streams) is made once per
worker, not once per call; they are daemon threads, so a hung call never blocks the
interpreter's exit; and at most ``MAX_CONCURRENT_CALLS`` calls are in flight (hung ones
included): a caller waits for a free worker only until its own deadline.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: Most search-model calls in flight at once through the deadline path.
MAX_CONCURRENT_CALLS = 64


class ModelCallTimeoutError(Exception):
    """The search model did not answer (or no worker was free) before the deadline."""


_Item = tuple[concurrent.futures.Future[Any], Callable[[], Any]]


class _Workers:
    """A bounded set of reusable daemon threads running one call each at a time."""

    def __init__(self, size: int) -> None:
        self._slots = threading.BoundedSemaphore(size)
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def submit(self, call: Callable[[], T], wait_s: float) -> concurrent.futures.Future[T]:
        """Queue ``call``; ``ModelCallTimeoutError`` if no worker frees up in ``wait_s``."""
        if not self._slots.acquire(timeout=max(wait_s, 0.0)):
            raise ModelCallTimeoutError(
                f"all {MAX_CONCURRENT_CALLS} search-model workers are busy (hung calls?)"
            )
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._idle == 0:
                self._threads += 1
                threading.Thread(
                    target=self._work, name=f"seal-search-{self._threads}", daemon=True
                ).start()
            else:
                self._idle -= 1
        self._queue.put((future, call))
        return future

    def _work(self) -> None:
        while True:
            future, call = self._queue.get()
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(call())
                    except BaseException as exc:  # the caller re-raises it, Ctrl-C included
                        future.set_exception(exc)
            finally:
                del future, call
                with self._lock:
                    self._idle += 1
                self._slots.release()


_WORKERS: _Workers | None = None
_WORKERS_LOCK = threading.Lock()


def _workers() -> _Workers:
    global _WORKERS
    with _WORKERS_LOCK:
        if _WORKERS is None:
            _WORKERS = _Workers(MAX_CONCURRENT_CALLS)
        return _WORKERS


def call_before(call: Callable[[], T], deadline: float | None) -> T:
    """``call()``, or ``ModelCallTimeoutError`` once ``time.monotonic()`` passes
    ``deadline`` (None: called here, without a limit). Exceptions propagate as raised."""
    if deadline is None:
        return call()
    context = contextvars.copy_context()
    future = _workers().submit(lambda: context.run(call), deadline - time.monotonic())
    try:
        return future.result(timeout=max(deadline - time.monotonic(), 0.0))
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise ModelCallTimeoutError("the search model did not answer before the deadline") from None


__all__ = ["MAX_CONCURRENT_CALLS", "ModelCallTimeoutError", "call_before"]
