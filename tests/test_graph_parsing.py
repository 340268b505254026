"""The parsers that read a chat model's free text."""

from __future__ import annotations

import pytest

from seal_agent.graph.parsing import (
    MAX_LISTED_OBJECTS,
    CuedTargetListing,
    normalise_targets,
    parse_context_cue,
    parse_option_choice,
    parse_target_listing,
)
from seal_agent.graph.prompts import (
    MISSING_OBJECTS_PREFIX,
    format_options,
    padded_square_location,
)
from seal_agent.imaging.geometry import Box


def test_the_reference_missing_objects_reply_is_read_exactly():
    reply = f"{MISSING_OBJECTS_PREFIX} red star, the blue cross."
    listing = parse_target_listing(reply)
    assert listing is not None
    assert listing.missing_objects == ["red star", "blue cross"]
    assert listing.answer is None


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("missing or unclear: cup, saucer", ["cup", "saucer"]),
        ("missing or unclear: black and white dog", ["black and white dog"]),
        (
            "missing or unclear: salt & pepper shaker; the red and blue flag",
            ["salt & pepper shaker", "red and blue flag"],
        ),
        ("Sorry. Missing or unclear:\n- the mug\n- 'sign'\n\nI need to zoom.", ["mug", "sign"]),
        ("missing or unclear: 1. glove; 2. dog leash.", ["glove", "dog leash"]),
    ],
)
def test_looser_target_lists_are_read(reply, expected):
    listing = parse_target_listing(reply)
    assert listing is not None
    assert listing.missing_objects == expected


def test_a_reply_without_the_marker_is_a_direct_answer():
    listing = parse_target_listing("The star is red.")
    assert listing is not None
    assert listing.answer == "The star is red."
    assert listing.missing_objects == []


@pytest.mark.parametrize(
    "reply", ["", "   ", None, 42, f"{MISSING_OBJECTS_PREFIX} .", "I cannot answer that."]
)
def test_unreadable_listings_are_none(reply):
    assert parse_target_listing(reply) is None


def test_targets_are_cleaned_deduplicated_and_capped():
    raw = ["Red Star", "red star.", "  ", "the cross", "'cup'", "a", "mug", "sign", "dog"]
    assert normalise_targets(raw, 4) == ["Red Star", "cross", "cup", "mug"]
    assert normalise_targets(raw, 1) == ["Red Star"]


def test_invisible_and_control_characters_never_reach_a_target_or_cue():
    reply = MISSING_OBJECTS_PREFIX + " \x00\x1b[2J\x07cir\u200bcle, \u202etriangle\u202c, \x00\x7f."
    listing = parse_target_listing(reply)
    assert listing is not None
    assert normalise_targets(listing.missing_objects, 5) == ["[2Jcircle", "triangle"]
    assert parse_context_cue("It is on the \x1b\x9btab\x00le\u200b.", "star") == "table"
    cued = CuedTargetListing.model_validate(
        {"missing_objects": [{"name": "star\x00", "usual_location": "on a \u2066table\u2069"}]}
    )
    assert cued.cues() == {"star": "table"}
    assert normalise_targets(["red\tsquare\n"], 5) == ["red square"]  # whitespace: a space


def test_a_structured_listing_is_read_no_further_than_a_text_listing():
    items = [{"name": f"thing {i}", "usual_location": "on a table"} for i in range(10_000)]
    cued = CuedTargetListing.model_validate({"missing_objects": items})
    assert len(cued.cues()) == MAX_LISTED_OBJECTS
    assert len(cued.to_listing().missing_objects) == MAX_LISTED_OBJECTS


@pytest.mark.parametrize(
    ("reply", "target", "expected"),
    [
        ("The star is most likely on the table.", "star", "table"),
        ("It is usually found in the kitchen, near the sink.", "cup", "kitchen"),
        ("Most likely on a wooden shelf near the window.", "book", "wooden shelf"),
        ("It could be anywhere in the image.", "star", None),
        ("I don't know.", "star", None),
        ("", "star", None),
    ],
)
def test_context_cue_pulls_the_place(reply, target, expected):
    assert parse_context_cue(reply, target) == expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("B", 1),
        ("(C)", 2),
        ("A.", 0),
        ("D) green", 3),
        ("The answer is B.", 1),
        ("Answer: (A)", 0),
        ("blue", 1),
        ("The star is green.", 3),
        ("A red star", 0),  # the option's text, not the letter A
        ("E", None),
        ("I think so", None),
        ("the answer is a guess", None),
    ],
)
def test_option_choice_by_letter_or_by_text(reply, expected):
    assert parse_option_choice(reply, ["red", "blue", "white", "green"]) == expected


def test_options_are_lettered_with_the_letter_instruction():
    text = format_options(["red", "blue"])
    assert text.splitlines()[:2] == ["A. red", "B. blue"]
    assert "letter" in text.splitlines()[-1]


def test_locations_are_in_the_padded_square_frame():
    # 2000x1000: padded to 2000x2000 with 500 px above and below.
    assert padded_square_location(Box(0, 0, 2000, 1000), 2000, 1000) == (0.0, 0.25, 1.0, 0.75)
    # Tall image: padding left and right.
    x1, y1, x2, y2 = padded_square_location(Box(0, 0, 100, 400), 100, 400)
    assert (x1, x2, y1, y2) == (0.375, 0.625, 0.0, 1.0)
