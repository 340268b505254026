"""Reading a chat model's free text: target lists, context cues and option choices.

Every parser returns ``None`` (or an empty result) for text it cannot read, and never
raises on odd input: what an unreadable answer means is the node's decision. A reply may
be hostile (text an attacker planted, or a model looping): every parser runs in time
linear in the reply (no pattern can backtrack over a run of spaces), and the node caps
the reply's length before it gets here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import islice

from pydantic import BaseModel, Field

from seal_agent.graph.prompts import option_letters


class TargetListing(BaseModel):
    """The listing step's verdict: a direct answer, or the objects to search for.

    Also the schema asked for with ``with_structured_output``.
    """

    answer: str | None = Field(
        None, description="the answer, when the question can be answered from the image"
    )
    missing_objects: list[str] = Field(
        default_factory=list,
        description="short noun phrases of the objects too small, unclear or not visible",
    )


_MISSING_MARKER = re.compile(r"missing\s++or\s++unclear\s*+:?", re.I)
_CANNOT_ANSWER = re.compile(r"\b(?:can\s*+not|cannot|can't|unable to)\s++answer\b", re.I)
#: Only commas, semicolons and line breaks separate targets: "black and white dog" and
#: "salt & pepper shaker" are one object each.
_SPLIT = re.compile(r"[,;\n]")
_BLANK_LINE = re.compile(r"\n[^\S\n]*+\n")
_BULLET = re.compile(r"^(?:[-*\u2022]++|\d++[.)]|\(\d++\))\s*+")
_ARTICLE = re.compile(r"^(?:the|a|an|some|any)\s++", re.I)
_QUOTES = "\"'`\u201c\u201d\u2018\u2019*_"
#: Characters no object name holds, dropped from every phrase read from a reply:
#: control characters other than whitespace (NUL, terminal escapes, C1), the soft
#: hyphen, zero-width characters, bidirectional overrides and isolates, the BOM. A
#: phrase goes to the search model, into the answer prompt and into streamed events
#: that may reach a terminal. Whitespace controls are collapsed to spaces instead.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]"
)
#: Most objects read from one listing (``max_targets`` keeps fewer after cleaning).
MAX_LISTED_OBJECTS = 64
MAX_LIST_CHARS = 8192
#: The place of a contextual cue is named early; later text is not read.
MAX_CUE_CHARS = 4096
#: Longest object name searched for (longer is a sentence, not a name).
MAX_TARGET_CHARS = 100
_NOT_A_TARGET = {"a", "an", "the", "some", "any", "none", "nothing", "n/a", "object", "objects"}


def clean_phrase(text: str) -> str:
    """A target phrase without bullets, quotes, articles, trailing punctuation or
    invisible characters."""
    text = _INVISIBLE.sub("", text).strip()
    if not text:
        return ""
    phrase = _BULLET.sub("", text)
    phrase = phrase.strip().strip(_QUOTES).strip()
    phrase = phrase.rstrip(".!?:").strip().strip(_QUOTES).strip()
    phrase = _ARTICLE.sub("", phrase)
    return re.sub(r"\s+", " ", phrase)


def normalise_targets(targets: Iterable[str], max_targets: int) -> list[str]:
    """Clean, drop empties and duplicates (case-insensitive, first kept), cap the count."""
    seen: set[str] = set()
    result: list[str] = []
    for raw in targets:
        if not isinstance(raw, str):
            continue
        phrase = clean_phrase(raw)
        key = phrase.lower()
        if not phrase or key in seen or key in _NOT_A_TARGET or len(phrase) > MAX_TARGET_CHARS:
            continue
        seen.add(key)
        result.append(phrase)
        if len(result) >= max_targets:
            break
    return result


def parse_target_listing(text: object) -> TargetListing | None:
    """Read the listing step's free text.

    Understands the reference's exact reply (``Sorry, I can not answer the question.
    Some visual information about the following objects is missing or unclear: a, b.``)
    and looser variants (bullets, numbered items, quotes); "and" stays inside a name.
    Text without the missing-objects marker is a direct answer. Returns ``None`` when
    the text is empty or says it cannot answer without naming anything to search for.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    marker = _MISSING_MARKER.search(text)
    if marker is not None:
        # 64 names of <= 100 characters fit in the first 8 KB; the rest is not read.
        tail = text[marker.end() : marker.end() + MAX_LIST_CHARS].strip()
        # The list ends at the first blank line (a model may add an explanation).
        tail = _BLANK_LINE.split(tail, maxsplit=1)[0]
        phrases = (clean_phrase(s) for s in _SPLIT.split(tail))
        objects = list(islice((p for p in phrases if p), MAX_LISTED_OBJECTS))
        return TargetListing(missing_objects=objects) if objects else None
    if _CANNOT_ANSWER.search(text) and len(text) < 200:
        return None
    return TargetListing(answer=text.strip())


_PREPOSITIONS = {
    "on", "in", "inside", "near", "under", "underneath", "beneath", "at", "beside", "by",
    "behind", "above", "below", "atop", "within", "along", "against", "around",
}  # fmt: skip
_DETERMINERS = {"the", "a", "an", "some", "this", "that"}
_PHRASE_END = {
    "of", "in", "on", "near", "where", "which", "that", "because", "since", "as", "or",
    "and", "with",
}  # fmt: skip
#: Words (letters and hyphens), the punctuation that ends a place phrase, and any other
#: character (a digit, an apostrophe, a bracket), which spoils the phrase it is in.
_TOKEN = re.compile(r"[a-z][a-z\-]*+|[.,;:!?)]|[^\sa-z]", re.I)
_PHRASE_PUNCTUATION = frozenset(".,;:!?)")
_FILLER = {"image", "picture", "photo", "scene", "frame", "top", "middle", "center", "left"}


def _place_phrases(text: str) -> list[str]:
    """Noun phrases after a place preposition, in order: one pass over the words."""
    tokens = [m.group(0) for m in _TOKEN.finditer(text, 0, MAX_CUE_CHARS)]
    phrases: list[str] = []
    i = 0
    while i < len(tokens):
        word = tokens[i].lower()
        start = None
        if word == "next" and i + 1 < len(tokens) and tokens[i + 1].lower() == "to":
            start = i + 2
        elif word in _PREPOSITIONS:
            start = i + 1
        if start is None:
            i += 1
            continue
        if start < len(tokens) and tokens[start].lower() in _DETERMINERS:
            start += 1
        end = start
        while (
            end < len(tokens)
            and tokens[end][0].isalpha()
            and tokens[end].lower() not in _PHRASE_END
        ):
            end += 1
        ends_well = (
            end == len(tokens)
            or tokens[end] in _PHRASE_PUNCTUATION
            or tokens[end][0].isalpha()  # a joining word
        )
        if end > start and ends_well:
            phrases.append(" ".join(tokens[start:end]))
        i = max(i + 1, end)  # like finditer: go on after the phrase (linear time)
    return phrases


def parse_context_cue(text: object, target: str) -> str | None:
    """The noun phrase naming where ``target`` usually is ("The star is on the table." ->
    "table"), or ``None`` when the answer names no place other than the target itself.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    target_key = clean_phrase(target).lower()
    for raw in _place_phrases(_INVISIBLE.sub("", text[:MAX_CUE_CHARS])):
        phrase = clean_phrase(raw)
        words = phrase.lower().split()
        if not words or phrase.lower() == target_key or words[-1] in _FILLER:
            continue
        return " ".join(phrase.split()[-3:])
    return None


_LETTER_PATTERNS = (
    re.compile(r"^\s*+\(?([A-Z])\)?\s*+(?:[.:)\-]|$)"),  # "B", "(B)", "B.", "B) text"
    re.compile(r"\b(?i:answer|option|choice)\s*+(?:(?i:is|:)\s*+)?\(?([A-Z])\)?(?![A-Za-z])"),
)


def parse_option_choice(text: object, options: Sequence[str]) -> int | None:
    """Index of the option a reply chose: by its letter ("B", "(B)", "Answer: B") or,
    failing that, by quoting exactly one option's text. ``None`` when unclear.
    """
    if not isinstance(text, str) or not text.strip() or not options:
        return None
    letters = option_letters(len(options))
    reply = text.strip()
    for pattern in _LETTER_PATTERNS:
        match = pattern.search(reply)
        if match and match.group(1).upper() in letters:
            return letters.index(match.group(1).upper())
    lowered = reply.lower().rstrip(".")
    exact = [i for i, o in enumerate(options) if o.lower().rstrip(".") == lowered]
    if len(exact) == 1:
        return exact[0]
    quoted = [i for i, o in enumerate(options) if o.lower().rstrip(".") in lowered]
    return quoted[0] if len(quoted) == 1 else None


# -- the cued listing (targets and their contextual cues in one reply) -----------------------
class ListedTarget(BaseModel):
    """One object to search for and where such an object usually is."""

    name: str = Field(description="short noun phrase of the object")
    usual_location: str | None = Field(
        None,
        description="where such an object usually is in this image, e.g. 'on a table'; "
        "null when there is no such place",
    )


class CuedTargetListing(BaseModel):
    """The default listing's verdict: a direct answer, or the objects with their cues.

    Also the schema asked for with ``with_structured_output``.
    """

    answer: str | None = Field(
        None, description="the answer, when the question can be answered from the image"
    )
    missing_objects: list[ListedTarget] = Field(
        default_factory=list,
        description="the objects too small, unclear or not visible, each with its usual place",
    )

    def to_listing(self) -> TargetListing:
        return TargetListing(
            answer=self.answer, missing_objects=[t.name for t in self._read_objects()]
        )

    def cues(self) -> dict[str, str | None]:
        """Context phrase per cleaned, lower-cased target name (first mention wins)."""
        cues: dict[str, str | None] = {}
        for item in self._read_objects():
            key = clean_phrase(item.name).lower()
            if key and key not in cues:
                cues[key] = cue_phrase(item.usual_location, item.name)
        return cues

    def _read_objects(self) -> list[ListedTarget]:
        """The objects read, as many as the text listing reads: a structured reply is
        not cut to ``max_reply_chars``, and 10,000 items took seconds to read."""
        return self.missing_objects[:MAX_LISTED_OBJECTS]


_NO_PLACE = {"anywhere", "unknown", "none", "null", "n/a", "nowhere", "unclear", "everywhere"}
_USUALLY = ("usually ", "typically ", "often ", "most likely ", "likely ", "normally ")


def cue_phrase(location: object, target: str) -> str | None:
    """The context phrase in a listed location: "usually on a table" -> "table".

    A bare noun phrase ("table") is taken as it is; "anywhere" or the target itself is
    no cue.
    """
    if not isinstance(location, str) or not location.strip() or len(location) > 300:
        return None
    text = " ".join(location.split())
    phrase = parse_context_cue(text, target)
    if phrase is not None:
        return phrase
    lowered = text.lower()
    for word in _USUALLY:
        if lowered.startswith(word):
            text, lowered = text[len(word) :], lowered[len(word) :]
    bare = clean_phrase(text)
    words = bare.lower().split()
    if not words or len(words) > 4 or words[0] in _NO_PLACE or words[-1] in _FILLER:
        return None
    if bare.lower() == clean_phrase(target).lower():
        return None
    return bare


_MARKER_TEXT = "missing or unclear"


def _listed_items(tail: str) -> list[str]:
    """The items of a listing's tail: one per line, else split on ';' or ','.

    On one line, a ','-piece without a ':' continues the previous item's place ("cup:
    usually on a table, near a window") when the items carry places at all.
    """
    block = tail.replace("\r\n", "\n").split("\n\n", 1)[0]
    lines = [line.strip() for line in block.split("\n") if line.strip()]
    if len(lines) > 1:
        return lines
    line = lines[0] if lines else ""
    if ";" in line:
        return [p for p in (x.strip() for x in line.split(";")) if p]
    pieces = [p.strip() for p in line.split(",") if p.strip()]
    if ":" not in line:
        return pieces
    items: list[str] = []
    for piece in pieces:
        if items and ":" not in piece and ":" in items[-1]:
            items[-1] = f"{items[-1]}, {piece}"
        else:
            items.append(piece)
    return items


def _split_item(item: str) -> tuple[str, str | None]:
    """``name: place`` / ``name (place)`` / ``name - place`` / ``name``."""
    item = _BULLET.sub("", item.strip())
    for separator in (":", " - ", " \u2013 ", " \u2014 "):
        name, found, place = item.partition(separator)
        if found and name.strip():
            return name, place.strip()
    name, found, place = item.partition("(")
    if found and name.strip():
        return name, place.rstrip(". ").removesuffix(")").strip()
    return item, None


def parse_cued_target_listing(text: object) -> CuedTargetListing | None:
    """Read the cued listing's free text (``CUED_LISTING_SYSTEM_PROMPT``'s format).

    Also reads the reference's plain list (objects without places). Text without the
    missing-objects marker is a direct answer (as ``parse_target_listing`` reads it).
    Linear in the text's length: only ``str`` methods and the bullet pattern on items.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    start = text.lower().find(_MARKER_TEXT)
    if start < 0:
        plain = parse_target_listing(text)
        if plain is None:
            return None
        return CuedTargetListing(answer=plain.answer)
    tail = text[start + len(_MARKER_TEXT) :].lstrip(" \t:").strip()
    listed: list[ListedTarget] = []
    for item in _listed_items(tail):
        name, place = _split_item(item)
        name = clean_phrase(name)
        if name:
            listed.append(ListedTarget(name=name, usual_location=place))
    return CuedTargetListing(missing_objects=listed) if listed else None


__all__ = [
    "MAX_TARGET_CHARS",
    "CuedTargetListing",
    "ListedTarget",
    "TargetListing",
    "clean_phrase",
    "cue_phrase",
    "normalise_targets",
    "parse_context_cue",
    "parse_cued_target_listing",
    "parse_option_choice",
    "parse_target_listing",
]
