"""The progress of a run on stderr: a live rich display on a terminal, lines otherwise.

Fed with the graph's custom events (``image_loaded``, ``targets_listed``,
``search_started``, ``search_step``, ``target_found`` ...), so listing and every search
show as they happen; stdout stays clean for the answer or ``--json``.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Literal, Protocol

ProgressMode = Literal["auto", "rich", "plain", "none"]

#: C0 and C1 control characters but newline and tab: escape sequences among them.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_text(value: object) -> str:
    """``value`` as text safe to print on a terminal, control characters shown escaped.

    Target names and answers come from the model (and, through it, from text in the
    image): an escape sequence among them would retitle, recolour or rewrite the
    user's terminal.
    """
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


class ProgressDisplay(Protocol):
    def event(self, event: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class NoProgress:
    def event(self, event: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class PlainProgress:
    """One line per event (logs, pipes, CI)."""

    def event(self, event: dict[str, Any]) -> None:
        kind = event.get("event", "?")
        details = ", ".join(f"{k}={v}" for k, v in event.items() if k not in ("event", "reply"))
        print(terminal_text(f"  [{kind}] {details}"), file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


class RichProgress:
    """A spinner for the listing step and one live line per target's search."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),  # "[/b]" in a name: no markup
            console=Console(stderr=True),
        )
        self._progress.start()
        self._tasks: dict[str, Any] = {}

    def _task(self, key: str, description: str) -> Any:
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(description, total=None)
        return self._tasks[key]

    def _done(self, key: str, description: str) -> None:
        task = self._task(key, description)
        self._progress.update(task, description=description, total=1, completed=1)

    def event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "image_loaded":
            size = f"{event.get('width')}x{event.get('height')}"
            self._done("image", f"image loaded ({size})")
            self._task("listing", "listing the objects to search for")
        elif kind in ("targets_listed", "targets_given"):
            targets = ", ".join(event.get("targets") or []) or "none (answering directly)"
            self._done("listing", f"targets: {targets}")
        elif kind == "search_started":
            self._task(f"search:{event['target']}", f"searching for {event['target']!r}")
        elif kind == "search_step":
            target = event["target"]
            task = self._task(f"search:{target}", f"searching for {target!r}")
            score = event.get("score")
            best = f", score {score:.2f}" if isinstance(score, int | float) else ""
            self._progress.update(
                task,
                description=f"searching for {target!r}: patch {event.get('step', 0) + 1}, "
                f"level {event.get('level')}{best}",
            )
        elif kind in ("target_found", "target_not_found"):
            target = event["target"]
            if kind == "target_found":
                box = ", ".join(f"{v:.0f}" for v in event.get("box") or [])
                confidence = event.get("confidence")
                conf = f", confidence {confidence:.2f}" if isinstance(confidence, float) else ""
                text = f"{target!r}: found at [{box}]{conf}"
            else:
                text = f"{target!r}: not found ({event.get('stop_reason')})"
            self._done(f"search:{target}", f"{text}, {event.get('patches_scored')} patches")
        elif kind == "answered":
            self._done("answer", "answered")

    def close(self) -> None:
        self._progress.stop()


def make_progress(mode: ProgressMode) -> ProgressDisplay:
    """``auto``: rich on a terminal when installed, plain lines otherwise."""
    if mode == "none":
        return NoProgress()
    if mode == "plain":
        return PlainProgress()
    try:
        import rich  # noqa: F401
    except ImportError:
        if mode == "rich":
            from seal_agent.errors import SealError

            raise SealError("--progress rich needs rich: pip install 'seal-agent[cli]'") from None
        return PlainProgress()
    if mode == "rich" or sys.stderr.isatty():
        return RichProgress()
    return PlainProgress()


__all__ = ["ProgressMode", "make_progress", "terminal_text"]
