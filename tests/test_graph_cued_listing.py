"""The default listing: targets and their contextual cues in one reply (issue 12 item 1)."""

from __future__ import annotations

import pytest

from seal_agent.graph.parsing import (
    CuedTargetListing,
    ListedTarget,
    cue_phrase,
    parse_cued_target_listing,
)
from seal_agent.graph.prompts import (
    CUED_LISTING_LINE,
    CUED_LISTING_MARKER,
    CUED_LISTING_SYSTEM_PROMPT,
    MISSING_OBJECTS_PREFIX,
)


def test_the_prompt_shows_the_format_it_asks_for():
    prompt = CUED_LISTING_SYSTEM_PROMPT.format(max_targets=3)
    assert CUED_LISTING_MARKER in prompt
    assert MISSING_OBJECTS_PREFIX in prompt
    assert "at most 3" in prompt


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            f"{MISSING_OBJECTS_PREFIX}\n- red star: usually on the table\n- blue cup: usually "
            "on a table, near a window",
            {"red star": "table", "blue cup": "table"},
        ),
        (
            f"{MISSING_OBJECTS_PREFIX} red star: usually on the table, near the wall, blue "
            "cross: usually in the box.",
            {"red star": "table", "blue cross": "box"},
        ),
        (
            f"{MISSING_OBJECTS_PREFIX} cup (usually on a table); sign (on the wall).",
            {"cup": "table", "sign": "wall"},
        ),
        (
            f"{MISSING_OBJECTS_PREFIX} red star, the blue cross.",
            {"red star": None, "blue cross": None},
        ),
        (
            f"{MISSING_OBJECTS_PREFIX}\n- red star: anywhere\n- cup: table\n\nI need to zoom in.",
            {"red star": None, "cup": "table"},
        ),
    ],
)
def test_targets_and_cues_are_read_from_one_reply(reply, expected):
    listing = parse_cued_target_listing(reply)
    assert listing is not None
    assert listing.answer is None
    assert listing.cues() == expected
    assert listing.to_listing().missing_objects == list(expected)


def test_the_line_format_round_trips():
    line = CUED_LISTING_LINE.format(target="red star", place="on the table")
    listing = parse_cued_target_listing(f"{MISSING_OBJECTS_PREFIX}\n{line}")
    assert listing is not None
    assert listing.cues() == {"red star": "table"}


@pytest.mark.parametrize("text", ["", "   ", None, 3, "I cannot answer the question."])
def test_unreadable_replies_give_none(text):
    assert parse_cued_target_listing(text) is None


def test_a_reply_without_the_marker_is_a_direct_answer():
    listing = parse_cued_target_listing("The star is red.")
    assert listing == CuedTargetListing(answer="The star is red.")


@pytest.mark.parametrize(
    ("location", "target", "expected"),
    [
        ("usually on a table", "cup", "table"),
        ("table", "cup", "table"),
        ("on the wall, near the door", "sign", "wall"),
        ("anywhere", "cup", None),
        ("cup", "cup", None),
        (None, "cup", None),
        ("x" * 400, "cup", None),
    ],
)
def test_cue_phrase(location, target, expected):
    assert cue_phrase(location, target) == expected


def test_structured_listing_cues():
    listing = CuedTargetListing(
        missing_objects=[
            ListedTarget(name="the Red Star", usual_location="on the table"),
            ListedTarget(name="red star", usual_location="on the floor"),
            ListedTarget(name="cup"),
        ]
    )
    assert listing.cues() == {"red star": "table", "cup": None}


def test_the_parser_is_linear_on_hostile_text():
    import time

    hostile = MISSING_OBJECTS_PREFIX + (" a:" + " (" * 5000 + ",") * 20
    started = time.perf_counter()
    parse_cued_target_listing(hostile)
    assert time.perf_counter() - started < 2.0
