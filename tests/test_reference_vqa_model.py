"""Shape world's reference VQA chat model sees only what its 336 px input can resolve."""

from __future__ import annotations

import base64
import io

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from PIL import Image

from seal_agent.errors import ChatModelError
from seal_agent.graph.prompts import (
    CONTEXT_CUE_QUESTION,
    MISSING_OBJECTS_PREFIX,
    answer_text,
    format_options,
)
from seal_agent.imaging.geometry import crop_box_around
from seal_agent.shapeworld.scene import generate_scene
from seal_agent.shapeworld.vqa_model import ReferenceVQAChatModel


def _block(image: Image.Image) -> dict:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return {
        "type": "image",
        "base64": base64.b64encode(buffer.getvalue()).decode(),
        "mime_type": "image/png",
    }


#: Crops in the spatial tests are cut wider than the VWM's 1.2x: these tests are about how
#: the model reads location lines, and a square filling a 1.2x crop is (for now) beyond
#: shape world's perception, which estimates the background from the crop's border.
CONTEXT_CROP = 1.5


def _crop(image: Image.Image, box, scale: float = CONTEXT_CROP) -> Image.Image:
    return image.crop(tuple(crop_box_around(box, image.width, image.height, scale)))


def _global(image: Image.Image) -> Image.Image:
    view = image.copy()
    view.thumbnail((1024, 1024), Image.Resampling.BOX)
    return view


def _ask(model, images, text, system=None):
    messages = [SystemMessage(system)] if system else []
    messages.append(
        HumanMessage(content=[*(_block(i) for i in images), {"type": "text", "text": text}])
    )
    return model.invoke(messages).text


@pytest.fixture(scope="module")
def model() -> ReferenceVQAChatModel:
    return ReferenceVQAChatModel()


@pytest.fixture(scope="module")
def colour_scene():
    return generate_scene(11, width=4000, height=3000, target_size=(16, 24), n_tables=(2, 3))


@pytest.fixture(scope="module")
def spatial_scene():
    return generate_scene(
        5, width=4000, height=3000, kind="relative_position", target_size=(16, 24)
    )


def test_a_small_target_is_missing_from_the_global_view(model, colour_scene):
    shape = colour_scene.targets[0].shape
    reply = _ask(model, [_global(colour_scene.image)], colour_scene.question)
    assert reply == f"{MISSING_OBJECTS_PREFIX} {shape}."


def test_the_same_target_is_answered_from_its_crop(model, colour_scene):
    target = colour_scene.targets[0]
    w, h = colour_scene.image.size
    crop = colour_scene.image.crop(tuple(crop_box_around(target.box, w, h, 1.2)))
    text = answer_text(
        colour_scene.question,
        located=[(target.shape, target.box)],
        absent=[],
        unlocated=[],
        width=w,
        height=h,
        options=None,
    )
    reply = _ask(model, [_global(colour_scene.image), crop], text)
    assert reply == f"The {target.shape} is {target.colour}."
    shown = [colour_scene.options[2], colour_scene.options[0], *colour_scene.options[3:]]
    lettered = answer_text(
        colour_scene.question,
        located=[(target.shape, target.box)],
        absent=[],
        unlocated=[],
        width=w,
        height=h,
        options=shown,
    )
    assert _ask(model, [_global(colour_scene.image), crop], lettered) == "B"


def test_a_large_target_is_answered_from_the_global_view(model):
    scene = generate_scene(3, width=1200, height=900, target_size=(70, 80))
    target = scene.targets[0]
    assert _ask(model, [_global(scene.image)], scene.question) == (
        f"The {target.shape} is {target.colour}."
    )


def test_left_right_uses_the_location_lines_of_visible_crops(model, spatial_scene):
    first, second = spatial_scene.targets
    w, h = spatial_scene.image.size
    crops = [_crop(spatial_scene.image, t.box) for t in (first, second)]
    truth = "left" if first.box.center[0] < second.box.center[0] else "right"
    text = answer_text(
        spatial_scene.question,
        located=[(first.shape, first.box), (second.shape, second.box)],
        absent=[],
        unlocated=[],
        width=w,
        height=h,
        options=None,
    )
    reply = _ask(model, [_global(spatial_scene.image), *crops], text)
    assert reply == f"The {first.shape} is on the {truth} side of the {second.shape}."
    # Swapped locations flip the answer: the model really reads the lines.
    swapped = answer_text(
        spatial_scene.question,
        located=[(first.shape, second.box), (second.shape, first.box)],
        absent=[],
        unlocated=[],
        width=w,
        height=h,
        options=None,
    )
    other = "right" if truth == "left" else "left"
    reply = _ask(model, [_global(spatial_scene.image), *crops], swapped)
    assert reply == f"The {first.shape} is on the {other} side of the {second.shape}."


def test_a_location_line_for_an_object_the_crop_does_not_show_is_ignored(model, spatial_scene):
    first, second = spatial_scene.targets
    w, h = spatial_scene.image.size
    # The search found a distractor instead of the first target: its crop shows another shape.
    distractor = next(o for o in spatial_scene.objects[2:] if 16 <= o.side <= 30)
    wrong = _crop(spatial_scene.image, distractor.box)
    crop_second = _crop(spatial_scene.image, second.box)
    text = answer_text(
        spatial_scene.question,
        located=[(first.shape, first.box), (second.shape, second.box)],
        absent=[],
        unlocated=[],
        width=w,
        height=h,
        options=None,
    )
    reply = _ask(model, [_global(spatial_scene.image), wrong, crop_second], text)
    assert reply == f"{MISSING_OBJECTS_PREFIX} {first.shape}."


def test_the_context_cue_names_tables_when_it_sees_them(model, colour_scene):
    assert colour_scene.tables
    question = CONTEXT_CUE_QUESTION.format(target="star")
    assert _ask(model, [_global(colour_scene.image)], question) == (
        "The star is most likely on the table."
    )
    plain = generate_scene(1, width=2000, height=1500, n_tables=0)
    assert "table" not in _ask(model, [_global(plain.image)], question)


def test_unresolvable_lettered_questions_are_guessed_deterministically(model, colour_scene):
    view = _global(colour_scene.image)
    options = format_options(list(colour_scene.options))
    first = _ask(model, [view], f"{colour_scene.question}\n{options}")
    assert first in {"A", "B", "C", "D"}
    assert _ask(model, [view], f"{colour_scene.question}\n{options}") == first
    guesses = {_ask(model, [view], f"{colour_scene.question} ({i})\n{options}") for i in range(6)}
    assert len(guesses) > 1  # a guess, not a fixed letter


def test_the_system_prompt_does_not_confuse_the_question(model, colour_scene):
    system = (
        "If you cannot, reply: ... missing or unclear: object1, object2. "
        "What is the color of the cross?"
    )
    reply = _ask(model, [_global(colour_scene.image)], colour_scene.question, system=system)
    assert reply.endswith(f"{colour_scene.targets[0].shape}.")


def test_openai_style_image_blocks_are_read(model):
    scene = generate_scene(3, width=1200, height=900, target_size=(70, 80))
    block = _block(_global(scene.image))
    url = f"data:image/png;base64,{block['base64']}"
    message = HumanMessage(
        content=[
            {"type": "image_url", "image_url": {"url": url}},
            {"type": "text", "text": scene.question},
        ]
    )
    assert model.invoke([message]).text.startswith(f"The {scene.targets[0].shape} is")


def test_an_undecodable_image_is_a_chat_model_error(model):
    message = HumanMessage(
        content=[
            {
                "type": "image",
                "base64": base64.b64encode(b"nope").decode(),
                "mime_type": "image/png",
            },
            {"type": "text", "text": "What is the color of the star?"},
        ]
    )
    with pytest.raises(ChatModelError, match="decode"):
        model.invoke([message])


# -- native-resolution mode (shape-world.md, last section) ------------------------------------
@pytest.fixture(scope="module")
def native() -> ReferenceVQAChatModel:
    return ReferenceVQAChatModel(resolution="native")


def test_native_mode_sees_qwen_sized_images(native):
    assert native.seen_size(4000, 3000) == (1148, 840)  # smart_resize within 1280 tokens
    assert native.seen_size(36, 36) == (56, 56)  # raised to min_pixels: 4 tokens
    assert native.seen_size(448, 448) == (448, 448)
    profile = native.vision_profile()
    assert profile.frame == "native"
    assert profile.image_tokens(448, 448) == 256
    assert ReferenceVQAChatModel().vision_profile().frame == "padded_square"


def _crop_text(scene, target) -> str:
    w, h = scene.image.size
    return answer_text(
        scene.question,
        located=[(target.shape, target.box)],
        absent=[],
        unlocated=[],
        width=w,
        height=h,
        options=None,
        frame="native",
    )


def test_native_mode_cannot_read_a_crop_sent_as_cut(native, colour_scene):
    target = colour_scene.targets[0]
    w, h = colour_scene.image.size
    crop = colour_scene.image.crop(tuple(crop_box_around(target.box, w, h, 1.2)))
    assert max(crop.size) <= 30  # a 16-24 px target: fewer than 2 tokens as seen
    reply = _ask(native, [_global(colour_scene.image), crop], _crop_text(colour_scene, target))
    assert reply == f"{MISSING_OBJECTS_PREFIX} {target.shape}."


def test_native_mode_reads_the_same_crop_enlarged_for_the_encoder(native, colour_scene):
    target = colour_scene.targets[0]
    w, h = colour_scene.image.size
    crop = colour_scene.image.crop(tuple(crop_box_around(target.box, w, h, 1.2)))
    enlarged = crop.resize((448, 448), Image.Resampling.BICUBIC)
    reply = _ask(native, [_global(colour_scene.image), enlarged], _crop_text(colour_scene, target))
    assert reply == f"The {target.shape} is {target.colour}."


def test_native_mode_misses_a_small_target_in_the_global_view(native, colour_scene):
    shape = colour_scene.targets[0].shape
    reply = _ask(native, [colour_scene.image], colour_scene.question)
    assert reply == f"{MISSING_OBJECTS_PREFIX} {shape}."


def test_the_cued_listing_names_each_missing_object_with_its_place(model, colour_scene):
    from seal_agent.graph.parsing import parse_cued_target_listing
    from seal_agent.graph.prompts import CUED_LISTING_SYSTEM_PROMPT

    assert colour_scene.tables
    system = CUED_LISTING_SYSTEM_PROMPT.format(max_targets=5)
    reply = _ask(model, [_global(colour_scene.image)], colour_scene.question, system=system)
    listing = parse_cued_target_listing(reply)
    assert listing is not None
    assert listing.missing_objects
    assert set(listing.cues().values()) == {"table"}
    plain = generate_scene(1, width=2000, height=1500, n_tables=0)
    reply = _ask(model, [_global(plain.image)], plain.question, system=system)
    listing = parse_cued_target_listing(reply)
    assert listing is not None
    assert set(listing.cues().values()) == {None}
