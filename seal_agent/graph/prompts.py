"""The texts the VQA chat model is shown, kept together so they can be read and tuned.

Layout: every call about an image starts with the same message, the global image then
the question; what a call asks of the model comes after it (the listing instructions as
a system message, the answer's crops, location lines, question and options as a second
user message). A local model can then prefill that prefix once per question and reuse
its KV cache (``seal_agent.models.prefix_cache``).

The reference (SEAL) phrasings are kept verbatim where a model may have been trained on
them: the missing-objects answer, the contextual-cue question and the VWM's location
lines. Coordinates in the location lines are normalised to [0, 1] in the frame the VQA
model sees the global image in (``seal_agent.imaging.frames``): the image itself for
native-aspect encoders (Qwen2.5-VL, API models), the image padded to a square for
LLaVA-style ones (the reference's ``expand2square``).
"""

from __future__ import annotations

import string
from collections.abc import Sequence

from seal_agent.imaging.frames import Frame, frame_location
from seal_agent.imaging.geometry import Box

#: The reference VQA model's answer when it needs a search (exact text).
MISSING_OBJECTS_PREFIX = (
    "Sorry, I can not answer the question. Some visual information about the following "
    "objects is missing or unclear:"
)

LISTING_SYSTEM_PROMPT = f"""\
You answer questions about an image. The image you see is downscaled, so small objects \
may be invisible or unclear.
If you can answer the question reliably from what you see, answer it directly and briefly.
If you cannot, because objects the question is about are too small, unclear or not \
visible, do not guess: reply exactly in this format, naming each such object with a \
short noun phrase (at most {{max_targets}}):
{MISSING_OBJECTS_PREFIX} object1, object2."""

STRUCTURED_LISTING_INSTRUCTION = """\
Decide whether you can answer the question from the image. If you can, set `answer`. \
If objects the question depends on are too small, unclear or not visible, leave \
`answer` empty and list those objects as short noun phrases in `missing_objects`."""

#: The default (``vstar``) listing: the missing objects AND where each usually is, in one
#: reply, so a question costs at most two chat calls (listing, answer) however many
#: targets it has; the reference asks ``CONTEXT_CUE_QUESTION`` once per target instead.
#: The first line is the reference's own, so a model trained on SEAL's format still
#: starts its reply the way the parser expects.
CUED_LISTING_SYSTEM_PROMPT = f"""\
You answer questions about an image. The image you see is downscaled, so small objects \
may be invisible or unclear.
If you can answer the question reliably from what you see, answer it directly and briefly.
If you cannot, because objects the question is about are too small, unclear or not \
visible, do not guess: reply exactly in this format, one line per object (at most \
{{max_targets}}), naming each object with a short noun phrase and, after a colon, where \
such an object usually is in this image, by common sense and what you can see:
{MISSING_OBJECTS_PREFIX}
- object1: usually on/in/near <a larger, easy-to-see thing>
- object2: usually on/in/near <a larger, easy-to-see thing>"""

#: Says that a listing prompt asks for cues (a model reading prompts may look for it).
CUED_LISTING_MARKER = "where such an object usually is"

#: One object line of the cued listing format (``- cup: usually on a table``).
CUED_LISTING_LINE = "- {target}: usually {place}"

STRUCTURED_CUED_LISTING_INSTRUCTION = """\
Decide whether you can answer the question from the image. If you can, set `answer`. \
If objects the question depends on are too small, unclear or not visible, leave \
`answer` empty and list each such object in `missing_objects`: its `name` as a short \
noun phrase and, in `usual_location`, where such an object usually is in this image \
("on a table", "on the wall"), or null when there is no such place."""

#: The reference's contextual-cue question (vstar-reference.md), verbatim.
CONTEXT_CUE_QUESTION = (
    "According to the common sense knowledge and possible visual cues, what is the most "
    "likely location of the {target} in the image?"
)

FOCUS_PREFIX = "Additional visual information to focus on: "
LOCATION_LINE = "{name} <object> at location [{x1:.3f},{y1:.3f},{x2:.3f},{y2:.3f}]"
NOT_FOUND_LINE = "{target} not existent in the image."
NOT_SEARCHED_LINE = "{target} could not be located ({reason})."
CROPS_CAPTION = (
    "The first image is the whole image. Each following image is a close-up crop of one "
    "object found by a visual search, in the order of the <object> entries below."
)
OPTIONS_INSTRUCTION = "Answer with the option's letter from the given choices directly."


def option_letters(n: int) -> list[str]:
    if n > len(string.ascii_uppercase):
        raise ValueError(f"at most {len(string.ascii_uppercase)} options, got {n}")
    return list(string.ascii_uppercase[:n])


def format_options(options: Sequence[str]) -> str:
    """``A. first\\nB. second ...`` followed by the letter instruction."""
    letters = option_letters(len(options))
    lines = [f"{letter}. {text}" for letter, text in zip(letters, options, strict=True)]
    return "\n".join([*lines, OPTIONS_INSTRUCTION])


def padded_square_location(box: Box, width: int, height: int) -> tuple[float, ...]:
    """A box in [0, 1] coordinates of the image centred in a ``max(w, h)`` square.

    The reference pads the global image to a square before the VQA model sees it and
    states locations in that frame; the offsets are integer, as ``expand2square``'s.
    """
    return frame_location(box, width, height, "padded_square")


def focus_text(
    located: Sequence[tuple[str, Box]],
    width: int,
    height: int,
    frame: Frame = "padded_square",
) -> str:
    """The reference's VWM line: ``Additional visual information to focus on: ...``."""
    parts = []
    for name, box in located:
        x1, y1, x2, y2 = frame_location(box, width, height, frame)
        parts.append(LOCATION_LINE.format(name=name, x1=x1, y1=y1, x2=x2, y2=y2))
    return FOCUS_PREFIX + "; ".join(parts) + "."


def answer_text(
    question: str,
    *,
    located: Sequence[tuple[str, Box]],
    absent: Sequence[str],
    unlocated: Sequence[tuple[str, str]],
    width: int,
    height: int,
    options: Sequence[str] | None,
    frame: Frame = "padded_square",
) -> str:
    """The final prompt: VWM lines, the question, then lettered options if any.

    ``frame`` is the frame the model sees the global image in (coordinates follow it).
    """
    lines: list[str] = []
    if located:
        lines.append(focus_text(located, width, height, frame))
    lines.extend(NOT_FOUND_LINE.format(target=t) for t in absent)
    lines.extend(NOT_SEARCHED_LINE.format(target=t, reason=r) for t, r in unlocated)
    lines.append(question)
    if options:
        lines.append(format_options(options))
    return "\n".join(lines)


__all__ = [
    "CONTEXT_CUE_QUESTION",
    "CROPS_CAPTION",
    "CUED_LISTING_LINE",
    "CUED_LISTING_MARKER",
    "CUED_LISTING_SYSTEM_PROMPT",
    "FOCUS_PREFIX",
    "LISTING_SYSTEM_PROMPT",
    "MISSING_OBJECTS_PREFIX",
    "OPTIONS_INSTRUCTION",
    "STRUCTURED_CUED_LISTING_INSTRUCTION",
    "STRUCTURED_LISTING_INSTRUCTION",
    "answer_text",
    "focus_text",
    "format_options",
    "option_letters",
    "padded_square_location",
]
