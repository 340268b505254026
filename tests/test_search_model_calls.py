"""Search-model calls within a deadline: abandoned when late, on bounded, reused workers."""

from __future__ import annotations

import threading
import time

import pytest

from seal_agent.search.model_calls import DeadlineWorkers, ModelCallTimeoutError, call_before


def test_a_call_that_answers_in_time_returns_its_value_and_raises_its_exception() -> None:
    assert call_before(lambda: 41 + 1, time.monotonic() + 5) == 42
    with pytest.raises(ZeroDivisionError):
        call_before(lambda: 1 / 0, time.monotonic() + 5)

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # Ctrl-C in the model still reaches the caller
        call_before(interrupted, time.monotonic() + 5)


def test_a_late_call_is_abandoned_at_the_deadline() -> None:
    release = threading.Event()
    started = time.monotonic()
    try:
        with pytest.raises(ModelCallTimeoutError, match="did not answer"):
            call_before(lambda: release.wait(30), started + 0.2)
    finally:
        release.set()
    assert time.monotonic() - started < 10


def test_workers_are_bounded_and_reused() -> None:
    workers = DeadlineWorkers(1, "test")
    release = threading.Event()
    hung = workers.submit(lambda: release.wait(30), 1.0)
    with pytest.raises(ModelCallTimeoutError, match="busy"):
        workers.submit(lambda: None, 0.1)  # the only worker is hung: wait, then give up
    release.set()
    hung.result(timeout=10)
    names = {workers.submit(threading.current_thread, 5.0).result(10).name for _ in range(5)}
    assert len(names) == 1  # one worker, reused: a model's per-thread scratch is made once
