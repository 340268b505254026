"""Calling a chat model with a deadline, synchronously or from async code.

A provider that never answers must not hold a run (or the agent that called the tool)
forever. A synchronous call runs on a bounded set of daemon worker threads and is
abandoned at the deadline (Python cannot kill a thread; the bound keeps hung calls from
growing without limit, and a hung one never blocks the process's exit); an async call is
cancelled at the deadline. The caller's context
variables (LangChain callbacks, LangGraph's config) travel with the call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from seal_agent.errors import ChatModelError
from seal_agent.search.model_calls import DeadlineWorkers, ModelCallTimeoutError

T = TypeVar("T")

#: Most chat-model calls in flight at once through the timed path (hung ones included).
MAX_CONCURRENT_CALLS = 64

#: Daemon workers: a hung provider call never keeps the process from exiting (a
#: ``ThreadPoolExecutor``'s threads are joined at exit), and it never takes a search
#: model's workers.
_WORKERS = DeadlineWorkers(MAX_CONCURRENT_CALLS, "chat")


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
    try:
        return _WORKERS.call_before(call, time.monotonic() + timeout_s)
    except ModelCallTimeoutError:
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
