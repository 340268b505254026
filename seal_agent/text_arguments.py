"""Text a caller passes (question, targets, options): real text, checked before a run.

JSON can carry a lone surrogate (``"\\ud800"``) and a NUL; Python strings hold both,
but no UTF-8 encoder, checkpoint serializer, PostgreSQL text column or chat API takes
them. Left in, they end the run deep inside a checkpointer or a model call (or, with a
checkpointer, escape the tool as a ``TypeError`` that crashes the calling agent), so
the front doors (the graph's input, the tool, the MCP server) refuse them, naming the
argument.
"""

from __future__ import annotations

from collections.abc import Iterable

from seal_agent.errors import InvalidQuestionError


def check_text(value: object, what: str) -> None:
    """Raise ``InvalidQuestionError`` if ``value`` is a string no encoder or store accepts."""
    if not isinstance(value, str):
        return  # the type is the schema's (or the graph's) to judge
    if "\x00" in value:
        raise InvalidQuestionError(
            f"{what} contains a NUL character (at position {value.index(chr(0))})"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidQuestionError(
            f"{what} is not valid Unicode text: a lone surrogate "
            f"\\u{ord(value[exc.start]):04x} at position {exc.start}"
        ) from None


def check_text_arguments(
    question: object,
    targets: Iterable[object] | None = None,
    options: Iterable[object] | None = None,
) -> None:
    """``check_text`` on a call's question, each target and each option."""
    check_text(question, "the question")
    for i, target in enumerate(targets or ()):
        check_text(target, f"target {i + 1}")
    for i, option in enumerate(options or ()):
        check_text(option, f"option {i + 1}")


__all__ = ["check_text", "check_text_arguments"]
