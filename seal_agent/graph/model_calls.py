"""Calling a chat model with a deadline, synchronously or from async code.

A provider that never answers must not hold a run (or the agent that called the tool)
forever. A synchronous call runs in a bounded pool of worker threads and is abandoned at
the deadline (Python cannot kill a thread; the pool's bound keeps hung calls from
growing without limit); an async call is cancelled at the deadline. The caller's context
variables (LangChain callbacks, LangGraph's config) travel with the call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from seal_agent.errors import ChatModelError

T = TypeVar("T")

#: Most chat-model calls in flight at once through the timed path (hung ones included).
MAX_CONCURRENT_CALLS = 64

_POOL: concurrent.futures.ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = concurrent.futures.ThreadPoolExecutor(
                max_workers=MAX_CONCURRENT_CALLS, thread_name_prefix="seal-chat"
            )
        return _POOL


def _timeout_error(doing: str, timeout_s: float, model: str) -> ChatModelError:
    return ChatModelError(
        f"the VQA chat model {model} did not answer within {timeout_s:g} s while {doing} "
        "(SealConfig.chat_timeout_s)"
    )


def call_with_timeout(
    call: Callable[[], T], timeout_s: float | None, *, doing: str, model: str
) -> T:
    """``call()`` within ``timeout_s`` seconds (None: no limit), else ``ChatModelError``."""
    if timeout_s is None:
        return call()
    context = contextvars.copy_context()
    future = _pool().submit(context.run, call)
    try:
        return future.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise _timeout_error(doing, timeout_s, model) from None


async def acall_with_timeout(
    call: Callable[[], Awaitable[T]], timeout_s: float | None, *, doing: str, model: str
) -> T:
    """``await call()`` within ``timeout_s`` seconds (cancelled at the deadline)."""
    if timeout_s is None:
        return await call()
    try:
        return await asyncio.wait_for(call(), timeout_s)
    except TimeoutError:
        raise _timeout_error(doing, timeout_s, model) from None


def cap_reply(text: str, max_chars: int) -> str:
    """A reply cut to ``max_chars`` (an oversized reply is not worth parsing whole)."""
    return text if len(text) <= max_chars else text[:max_chars]


__all__ = ["MAX_CONCURRENT_CALLS", "acall_with_timeout", "call_with_timeout", "cap_reply"]
