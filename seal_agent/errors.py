"""Exceptions that name the problem for the caller.

Every error a user can cause (bad image, bad box, bad configuration, a model that
misbehaves) is one of these, so a tool-calling agent receives a sentence it can act
on instead of a traceback from deep inside PIL or torch.
"""

from __future__ import annotations


class SealError(Exception):
    """Base class of all seal-agent errors."""


class InvalidImageError(SealError, ValueError):
    """The image is missing, unreadable, not an image, empty or too large."""


class InvalidBoxError(SealError, ValueError):
    """A box has zero area, a non-finite coordinate, or lies outside the image."""


class InvalidQuestionError(SealError, ValueError):
    """The question is empty or not text."""


class SearchModelError(SealError, RuntimeError):
    """The search model raised or returned output of the wrong shape."""


class ChatModelError(SealError, RuntimeError):
    """The VQA chat model raised or returned something that cannot be used."""


#: Longest part of a model's own exception text quoted in an error or a result.
MAX_QUOTED_CHARS = 500


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception a model raised, cut to ``MAX_QUOTED_CHARS``: a
    model's message may be megabytes (a dumped tensor, a server's HTML page), and it
    travels into results, the graph's state, checkpoints and the answer's prompt."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= MAX_QUOTED_CHARS else text[:MAX_QUOTED_CHARS] + "..."
