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


class DeadlineWorkers:
    """A bounded set of reusable daemon threads running one call each at a time.

    Daemon threads, unlike ``ThreadPoolExecutor``'s (which the interpreter joins at exit),
    let a process end while a hung call still runs. Each kind of model gets its own set,
    so hung calls of one kind never take the workers of another.
    """

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._slots = threading.BoundedSemaphore(size)
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def call_before(self, call: Callable[[], T], deadline: float) -> T:
        """``call()`` on a worker, or ``ModelCallTimeoutError`` once ``time.monotonic()``
        passes ``deadline``; the caller's context variables travel with the call."""
        context = contextvars.copy_context()
        future = self.submit(lambda: context.run(call), deadline - time.monotonic())
        try:
            return future.result(timeout=max(deadline - time.monotonic(), 0.0))
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ModelCallTimeoutError(
                f"the {self._name} model did not answer before the deadline"
            ) from None

    def submit(self, call: Callable[[], T], wait_s: float) -> concurrent.futures.Future[T]:
        """Queue ``call``; ``ModelCallTimeoutError`` if no worker frees up in ``wait_s``."""
        if not self._slots.acquire(timeout=max(wait_s, 0.0)):
            raise ModelCallTimeoutError(
                f"all {self._size} {self._name}-model workers are busy (hung calls?)"
            )
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._idle == 0:
                self._threads += 1
                threading.Thread(
                    target=self._work, name=f"seal-{self._name}-{self._threads}", daemon=True
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


_WORKERS = DeadlineWorkers(MAX_CONCURRENT_CALLS, "search")


def call_before(call: Callable[[], T], deadline: float | None) -> T:
    """``call()``, or ``ModelCallTimeoutError`` once ``time.monotonic()`` passes
    ``deadline`` (None: called here, without a limit). Exceptions propagate as raised."""
    if deadline is None:
        return call()
    return _WORKERS.call_before(call, deadline)


__all__ = ["MAX_CONCURRENT_CALLS", "DeadlineWorkers", "ModelCallTimeoutError", "call_before"]
