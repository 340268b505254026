"""Model handles the graph resolves on first use, and their names for error messages."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    """A model built on first use (the default graph must not load weights at import)."""

    def __init__(self, factory: Callable[[], T], description: str) -> None:
        self._factory = factory
        self._value: T | None = None
        self._lock = threading.Lock()
        self.description = description

    def get(self) -> T:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._factory()
        return self._value

    def __repr__(self) -> str:
        return f"Lazy({self.description})"


def resolve(model: T | Lazy[T]) -> T:
    return model.get() if isinstance(model, Lazy) else model


def model_name(model: object) -> str:
    """A readable name for error messages: the provider's model id where there is one."""
    for attr in ("model_name", "model", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return f"{type(model).__name__}({value})"
    return type(model).__name__


__all__ = ["Lazy", "model_name", "resolve"]
