"""The graph's paths: list -> search (one branch per target) -> answer, and its shortcuts."""

from __future__ import annotations

import asyncio

from langchain_core.messages import HumanMessage
from test_graph_fakes import (
    ColourSearchModel,
    ScriptedChatModel,
    count_images,
    make_scene,
    seal_script,
)

from seal_agent.graph import build_graph
from seal_agent.graph.prompts import CUED_LISTING_MARKER, MISSING_OBJECTS_PREFIX
from seal_agent.imaging.geometry import Box


def _chat(script=None) -> ScriptedChatModel:
    return ScriptedChatModel(script=script or seal_script())


def test_missing_objects_are_searched_and_the_answer_sees_the_vwm(scene_path, config):
    chat, search = _chat(), ColourSearchModel()
    graph = build_graph(chat, search, config)
    out = graph.invoke(
        {"image": scene_path, "question": "What colour is the square?", "options": ["red", "blue"]}
    )
    assert out["targets"] == ["red square", "blue square"]
    assert out["target_source"] == "listing"
    red, blue = out["searches"]["red square"], out["searches"]["blue square"]
    assert red["found"]
    assert Box(*red["box"]).iou(Box(1500, 1100, 1520, 1120)) > 0.5
    assert blue["found"]
    assert Box(*blue["box"]).iou(Box(300, 200, 320, 220)) > 0.5
    assert red["patches_scored"] >= 1
    assert red["trace"]
    assert out["answer"] == "A"
    assert out["choice"] == 0
    final = chat.calls[-1]
    assert count_images(final) == 3  # global image + one crop per found target
    text = chat.prompts[-1]
    # A model of unknown family sees the global image at its native aspect (2000x1500),
    # and the coordinates are fractions of that frame.
    assert (
        "Additional visual information to focus on: red square <object> at location "
        "[0.750,0.733,0.760,0.747]; blue square <object> at location" in text
    )
    assert text.rstrip().endswith(
        "Answer with the option's letter from the given choices directly."
    )
    assert "A. red\nB. blue" in text


def test_the_crops_are_cut_around_the_found_boxes(scene_path, config):
    import base64
    import io

    from PIL import Image

    chat = _chat(seal_script("red square"))
    graph = build_graph(chat, ColourSearchModel(), config)
    graph.invoke({"image": scene_path, "question": "What colour is the square?"})
    blocks = [
        b
        for m in chat.calls[-1]
        if isinstance(m.content, list)
        for b in m.content
        if b.get("type") == "image"
    ]
    assert all(b["mime_type"] == "image/png" and "base64" in b for b in blocks)
    crop = Image.open(io.BytesIO(base64.b64decode(blocks[1]["base64"])))
    # 1.2 x the 20 px square = 24 px, enlarged to the native-encoder crop side (448 px)
    assert crop.size == (448, 448)
    assert crop.getpixel((224, 224))[0] > 200  # red in the middle
    assert crop.getpixel((5, 5))[0] < 200  # the grey margin around it


def test_a_target_not_found_gets_an_explicit_line(scene_path, config):
    chat = _chat(seal_script("red square, green circle"))
    exhaustive = config.model_copy(
        update={
            "context_cue": False,
            "search": config.search.model_copy(update={"max_calls": None}),
        }
    )
    out = build_graph(chat, ColourSearchModel(), exhaustive).invoke(
        {"image": scene_path, "question": "Is the square left of the circle?"}
    )
    assert not out["searches"]["green circle"]["found"]
    assert out["searches"]["green circle"]["stop_reason"] == "exhausted"
    assert "green circle not existent in the image." in chat.prompts[-1]
    assert count_images(chat.calls[-1]) == 2  # global + the red square's crop only


def test_a_search_cut_short_by_its_budget_is_not_called_absent(scene_path, config):
    chat = _chat(seal_script("green circle"))
    out = build_graph(chat, ColourSearchModel(), config).invoke(
        {"image": scene_path, "question": "q?"}, context={"search": {"max_calls": 3}}
    )
    assert out["searches"]["green circle"]["stop_reason"] == "budget"
    assert "not existent" not in chat.prompts[-1]
    assert "green circle could not be located" in chat.prompts[-1]


def test_a_question_that_needs_no_search_goes_straight_to_the_answer(scene_path, config):
    chat, search = _chat(lambda text, _: "The image is grey."), ColourSearchModel()
    out = build_graph(chat, search, config).invoke(
        {"image": scene_path, "question": "What colour is the background?"}
    )
    assert out["answer"] == "The image is grey."
    assert out["targets"] == []
    assert out["searches"] == {}
    assert sum(search.calls.values()) == 0
    assert len(chat.prompts) == 1  # the direct answer is reused, not asked again


def test_direct_answer_with_options_is_asked_again_for_a_letter(scene_path, config):
    def script(text, _):
        return "B" if "A. " in text else "It is blue."

    chat = _chat(script)
    out = build_graph(chat, ColourSearchModel(), config).invoke(
        {"image": scene_path, "question": "Which colour?", "options": ["red", "blue"]}
    )
    assert out["choice"] == 1
    assert len(chat.prompts) == 2


def test_explicit_targets_skip_the_listing(scene_path, config):
    chat, search = _chat(), ColourSearchModel()
    out = build_graph(chat, search, config).invoke(
        {"image": scene_path, "question": "Where is it?", "targets": ["blue square", "Blue Square"]}
    )
    assert out["target_source"] == "input"
    assert out["targets"] == ["blue square"]
    assert not any(MISSING_OBJECTS_PREFIX[:20] in p for p in chat.prompts)
    assert all("Where is it?" not in p or "Additional visual" in p for p in chat.prompts)
    assert set(out["searches"]) == {"blue square"}
    assert [e["event"] for e in out["events"]][:2] == ["image_loaded", "targets_given"]


def test_empty_explicit_targets_answer_from_the_global_image(scene_path, config):
    chat, search = _chat(), ColourSearchModel()
    build_graph(chat, search, config).invoke(
        {"image": scene_path, "question": "What colour?", "targets": []}
    )
    assert sum(search.calls.values()) == 0
    assert len(chat.prompts) == 1
    assert count_images(chat.calls[0]) == 1


def test_targets_are_capped_and_deduplicated(scene_path, config):
    chat = _chat(seal_script("red square, Red Square, blue square, cup, mug, hat, dog"))
    out = build_graph(
        chat, ColourSearchModel(), config.model_copy(update={"max_targets": 3})
    ).invoke({"image": scene_path, "question": "q?"})
    assert out["targets"] == ["red square", "blue square", "cup"]


def test_the_seal_strategy_keeps_the_reference_calls_and_question(scene_path, config):
    seal = config.model_copy(
        update={"search": config.search.model_copy(update={"strategy": "seal"})}
    )
    chat = _chat(seal_script("green circle"))
    build_graph(chat, ColourSearchModel(), seal).invoke({"image": scene_path, "question": "q?"})
    assert "usually" not in chat.prompts[0]  # the reference's plain listing
    cue_prompts = [p for p in chat.prompts if "most likely location" in p]
    # The reference asks at every weak-cue patch (showing that patch), always in its words.
    assert cue_prompts
    assert set(cue_prompts) == {
        "According to the common sense knowledge and possible visual cues, what is the most "
        "likely location of the green circle in the image?"
    }


def test_per_call_settings_override_build_time_ones(scene_path, config):
    chat = _chat(seal_script("red square, blue square"))
    graph = build_graph(chat, ColourSearchModel(), config)
    out = graph.invoke({"image": scene_path, "question": "q?"}, context={"max_targets": 1})
    assert out["targets"] == ["red square"]
    out = graph.invoke(
        {"image": scene_path, "question": "q?"},
        config={"configurable": {"seal": {"max_targets": 1, "search": {"max_calls": 1}}}},
    )
    assert out["targets"] == ["red square"]
    assert out["searches"]["red square"]["patches_scored"] == 1
    assert out["searches"]["red square"]["stop_reason"] == "budget"
    out = graph.invoke({"image": scene_path, "question": "q?"})
    assert len(out["targets"]) == 2  # the build-time settings again


def test_a_reused_thread_starts_each_question_afresh(scene_path, config):
    from langgraph.checkpoint.memory import InMemorySaver

    chat = _chat()
    graph = build_graph(chat, ColourSearchModel(), config, checkpointer=InMemorySaver())
    thread = {"configurable": {"thread_id": "same"}}
    graph.invoke({"image": scene_path, "question": "q1?", "targets": ["red square"]}, thread)
    out = graph.invoke({"image": scene_path, "question": "q2?"}, thread)
    assert out["target_source"] == "listing"
    assert set(out["searches"]) == {"red square", "blue square"}
    assert out["events"][0]["event"] == "image_loaded"


def test_pil_bytes_and_data_url_inputs_give_the_same_result(config):
    import base64
    import io

    image = make_scene()
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = buffer.getvalue()
    inputs = [image, data, "data:image/png;base64," + base64.b64encode(data).decode()]
    boxes = []
    for source in inputs:
        graph = build_graph(_chat(seal_script("red square")), ColourSearchModel(), config)
        out = graph.invoke({"image": source, "question": "q?"})
        assert out["image"]["origin"] == "memory"
        boxes.append(out["searches"]["red square"]["box"])
    assert boxes[0] == boxes[1] == boxes[2]


def test_async_invoke_gives_the_same_answer(scene_path, config):
    graph = build_graph(_chat(), ColourSearchModel(), config)
    question = {"image": scene_path, "question": "q?", "options": ["red", "blue"]}
    sync_out = graph.invoke(question)
    async_out = asyncio.run(graph.ainvoke(question))
    assert async_out["answer"] == sync_out["answer"]
    assert async_out["searches"]["red square"]["box"] == sync_out["searches"]["red square"]["box"]


def test_the_listing_prompt_shows_the_global_image_and_the_question(scene_path, config):
    chat = _chat()
    build_graph(chat, ColourSearchModel(), config).invoke({"image": scene_path, "question": "Q?"})
    listing = chat.calls[0]
    assert count_images(listing) == 1
    human = next(m for m in listing if isinstance(m, HumanMessage))
    assert human.content[-1] == {"type": "text", "text": "Q?"}
    assert MISSING_OBJECTS_PREFIX in listing[-1].content  # the instructions show the format


def test_the_listing_and_the_answer_start_with_the_same_message(scene_path, config):
    """The shared prefix a local model reuses the KV cache of (models.prefix_cache)."""
    chat = _chat(seal_script("red square"))
    graph = build_graph(chat, ColourSearchModel(), config)
    graph.invoke({"image": scene_path, "question": "What colour is the square?"})
    listing, answer = chat.calls[0], chat.calls[-1]
    assert listing is not answer
    assert len(chat.calls) == 2
    assert listing[0] == answer[0]
    assert isinstance(answer[0], HumanMessage)
    assert count_images([answer[0]]) == 1
    assert answer[0].content[-1] == {"type": "text", "text": "What colour is the square?"}
    assert count_images(answer) == 2  # the crop comes after the shared prefix
    assert "Additional visual information" in answer[-1].text


def _cued_script(text, messages):
    """Lists each target with its usual place, as the default listing prompt asks."""
    if CUED_LISTING_MARKER in text and "Additional visual" not in text:
        return f"{MISSING_OBJECTS_PREFIX}\n- green circle: usually on the table\n- blue square"
    return seal_script()(text, messages)


def test_one_call_lists_the_targets_with_their_cues_and_no_cue_is_asked(scene_path, config):
    chat = _chat(_cued_script)
    out = build_graph(chat, ColourSearchModel(), config).invoke(
        {"image": scene_path, "question": "q?"}
    )
    assert out["targets"] == ["green circle", "blue square"]
    assert len(chat.calls) == 2  # the listing and the answer, however many targets
    assert not any("most likely location" in p for p in chat.prompts)
    # "green" is invisible to the colour model, so its search needs the listed cue.
    assert out["searches"]["green circle"]["context_phrase"] == "table"
    assert out["searches"]["blue square"]["found"]
    cue_events = [e for e in out["events"] if e["event"] == "targets_listed"]
    assert cue_events[0]["cues"] == {"green circle": "table", "blue square": None}
