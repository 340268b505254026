"""Bad input and misbehaving models end a run with an error that names the problem."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableLambda
from test_graph_fakes import ColourSearchModel, ScriptedChatModel, seal_script

from seal_agent.errors import (
    ChatModelError,
    InvalidImageError,
    InvalidQuestionError,
    SearchModelError,
)
from seal_agent.graph import build_graph
from seal_agent.graph.configuration import SettingsError
from seal_agent.graph.parsing import CuedTargetListing, TargetListing
from seal_agent.models.vision_tokens import VisionProfile


def _graph(config, script=None, search=None):
    chat = ScriptedChatModel(script=script or seal_script())
    return build_graph(chat, search or ColourSearchModel(), config), chat


def test_missing_corrupt_and_non_image_files(tmp_path: Path, config):
    graph, _ = _graph(config)
    with pytest.raises(InvalidImageError, match="not found"):
        graph.invoke({"image": str(tmp_path / "missing.png"), "question": "q?"})
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(InvalidImageError, match=r"corrupt\.png"):
        graph.invoke({"image": str(corrupt), "question": "q?"})
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(InvalidImageError, match="not an image"):
        graph.invoke({"image": str(text), "question": "q?"})
    with pytest.raises(InvalidImageError, match="allow_urls"):
        graph.invoke({"image": "http://127.0.0.1:9/x.png", "question": "q?"})


@pytest.mark.parametrize("question", ["", "   ", None, 3])
def test_empty_or_non_text_question(scene_path, config, question):
    graph, chat = _graph(config)
    with pytest.raises(InvalidQuestionError, match="question"):
        graph.invoke({"image": scene_path, "question": question})
    assert chat.prompts == []


def test_malformed_options(scene_path, config):
    graph, _ = _graph(config)
    with pytest.raises(InvalidQuestionError, match="options"):
        graph.invoke({"image": scene_path, "question": "q?", "options": ["only one"]})
    with pytest.raises(InvalidQuestionError, match="options"):
        graph.invoke({"image": scene_path, "question": "q?", "options": ["o"] * 27})
    with pytest.raises(InvalidImageError, match="no 'image'"):
        graph.invoke({"question": "q?"})


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"question": "What\x00 colour?"}, "the question contains a NUL character"),
        ({"targets": ["square\udcff"]}, "target 1 is not valid Unicode text"),
        ({"options": ["red", "blue\ud800"]}, "option 2 is not valid Unicode text"),
    ],
    ids=["nul-question", "surrogate-target", "surrogate-option"],
)
def test_text_no_checkpoint_store_accepts_is_refused_as_the_input_is_written(
    scene_path, config, fields, needle
):
    # With a checkpointer the input is serialised before any node runs: a lone surrogate
    # made LangGraph's serializer raise TypeError, and without one it reached the model.
    from langgraph.checkpoint.memory import InMemorySaver

    chat = ScriptedChatModel(script=seal_script())
    graph = build_graph(chat, ColourSearchModel(), config, checkpointer=InMemorySaver())
    inputs = {"image": scene_path, "question": "q?", **fields}
    with pytest.raises(InvalidQuestionError, match=needle):
        graph.invoke(inputs, {"configurable": {"thread_id": "t"}})
    assert chat.prompts == []


@pytest.mark.parametrize(
    ("targets", "needle"),
    [
        (["red square", 3], "target 2 must be a non-empty object name"),
        (["   "], "target 1 must be a non-empty object name"),
        (["red square", "x" * 101], "target 2 is 101 characters long"),
    ],
    ids=["not-a-string", "blank", "a-sentence"],
)
def test_a_given_target_that_cannot_be_searched_is_named_not_dropped(
    scene_path, config, targets, needle
):
    graph, chat = _graph(config)
    with pytest.raises(InvalidQuestionError, match=needle):
        graph.invoke({"image": scene_path, "question": "q?", "targets": targets})
    assert chat.prompts == []


def test_given_targets_beyond_max_targets_are_searched_up_to_it_with_a_warning(scene_path, config):
    graph, _ = _graph(config)
    given = ["red square", "Red square", "blue circle", "green triangle"]
    out = graph.invoke(
        {"image": scene_path, "question": "q?", "targets": given},
        context={"max_targets": 2},
    )
    assert list(out["searches"]) == ["red square", "blue circle"]
    assert any(
        "3 distinct targets were given; searched for the first 2" in w for w in out["warnings"]
    )
    quiet = graph.invoke({"image": scene_path, "question": "q?", "targets": given[:2]})
    assert not any("distinct targets" in w for w in quiet["warnings"])


def test_a_chat_model_that_raises_is_named(scene_path, config):
    def script(text, _):
        raise ConnectionError("server unreachable")

    graph, _ = _graph(config, script)
    with pytest.raises(ChatModelError, match=r"ScriptedChatModel.*listing.*server unreachable"):
        graph.invoke({"image": scene_path, "question": "q?"})


def test_an_unreadable_listing_answers_from_the_global_image_with_a_warning(scene_path, config):
    def script(text, _):
        return "B" if "A. " in text else ""

    search = ColourSearchModel()
    graph, _chat = _graph(config, script, search)
    out = graph.invoke({"image": scene_path, "question": "q?", "options": ["x", "y"]})
    assert out["choice"] == 1
    assert sum(search.calls.values()) == 0
    assert any("could not read a target list" in w for w in out["warnings"])


def test_an_empty_final_answer_is_an_error(scene_path, config):
    def script(text, _):
        return "" if "Additional visual" in text else seal_script("red square")(text, _)

    graph, _ = _graph(config, script)
    with pytest.raises(ChatModelError, match="empty answer"):
        graph.invoke({"image": scene_path, "question": "q?"})


def test_an_answer_without_a_recognisable_option_is_kept_with_a_warning(scene_path, config):
    def script(text, _):
        return "purple monkey dishwasher" if "A. " in text else "It is red."

    graph, _ = _graph(config, script)
    out = graph.invoke({"image": scene_path, "question": "q?", "options": ["red", "blue"]})
    assert out["choice"] is None
    assert out["answer"] == "purple monkey dishwasher"
    assert any("option letter" in w for w in out["warnings"])


def test_a_search_model_that_raises(scene_path, config):
    search = ColourSearchModel(fail_on=lambda phrase: True)
    graph, _ = _graph(config, seal_script("red square"), search)
    with pytest.raises(SearchModelError, match="red square"):
        graph.invoke({"image": scene_path, "question": "q?"})
    tolerant = config.model_copy(update={"raise_on_search_error": False})
    graph, chat = _graph(tolerant, seal_script("red square"), search)
    out = graph.invoke({"image": scene_path, "question": "q?"})
    assert out["searches"]["red square"]["stop_reason"] == "model_error"
    assert "red square could not be located" in chat.prompts[-1]


def test_a_context_cue_failure_does_not_end_the_search(scene_path, config):
    def script(text, _):
        if "most likely location" in text:
            raise TimeoutError("slow")
        return seal_script("red square")(text, _)

    graph, _ = _graph(config, script)
    out = graph.invoke({"image": scene_path, "question": "q?"})
    assert out["searches"]["red square"]["found"]


def test_a_bad_per_call_setting_is_refused(scene_path, config):
    graph, _ = _graph(config)
    with pytest.raises((ValueError, TypeError)):
        graph.invoke({"image": scene_path, "question": "q?"}, context={"max_targets": 0})


def test_threshold_overrides_that_do_not_fit_the_model_are_a_settings_error(scene_path, config):
    graph, _ = _graph(config)  # each override is valid alone; low 0.9 > the model's high 0.5
    with pytest.raises(SettingsError, match=r"do not fit the search model.*confidence_low"):
        graph.invoke(
            {"image": scene_path, "question": "q?"}, context={"search": {"confidence_low": 0.9}}
        )


def _profile(**fields: Any) -> VisionProfile:
    base: dict[str, Any] = {
        "family": "own",
        "frame": "native",
        "crop_side": 448,
        "tokens": lambda w, h: 256,
        "default_budget": 2048,
    }
    return VisionProfile(**(base | fields))


def _no_profile() -> VisionProfile:
    raise RuntimeError("profile service down")


@pytest.mark.parametrize(
    ("vision_profile", "message"),
    [
        (_no_profile, r"vision_profile\(\) raised RuntimeError: profile service down"),
        (lambda: _profile(tokens=lambda w, h: float("nan")), r"could not cost a \d+x\d+ image"),
        (lambda: _profile(tokens=lambda w, h: -5), r"costs a \d+x\d+ image -5 tokens"),
        (lambda: _profile(crop_side=10**6), r"crop_side 1000000; expected 1 to 4096"),
    ],
    ids=["raises", "nan_tokens", "negative_tokens", "crop_side_1e6"],
)
def test_a_chat_models_broken_vision_profile_is_a_chat_model_fault(
    scene_path, config, vision_profile, message
):
    class OwnProfile(ScriptedChatModel):
        def vision_profile(self) -> VisionProfile:
            return vision_profile()

    graph = build_graph(OwnProfile(script=seal_script("red square")), ColourSearchModel(), config)
    with pytest.raises(ChatModelError, match=message):
        graph.invoke({"image": scene_path, "question": "q?"})


class _StructuredChat(ScriptedChatModel):
    """A chat model with structured output (as ChatOpenAI has), scripted."""

    structured: Any = None

    def with_structured_output(self, schema, *, include_raw=False, **kwargs):
        assert schema in (TargetListing, CuedTargetListing)
        assert include_raw
        return RunnableLambda(lambda messages: self.structured(messages))


def test_structured_output_is_used_where_the_model_supports_it(scene_path, config):
    search = ColourSearchModel()
    chat = _StructuredChat(script=seal_script())
    chat.structured = lambda m: {
        "parsed": TargetListing(missing_objects=["blue square"]),
        "raw": None,
        "parsing_error": None,
    }
    out = build_graph(chat, search, config).invoke({"image": scene_path, "question": "q?"})
    assert out["targets"] == ["blue square"]
    assert not any("reply exactly in this format" in p for p in chat.prompts)  # no text listing
    assert search.calls["red square"] == 0


def test_unparseable_structured_output_falls_back_to_the_text_format(scene_path, config):
    chat = _StructuredChat(script=seal_script("red square"))
    chat.structured = lambda m: {"parsed": None, "raw": None, "parsing_error": ValueError("x")}
    out = build_graph(chat, ColourSearchModel(), config).invoke(
        {"image": scene_path, "question": "q?"}
    )
    assert out["targets"] == ["red square"]
    assert any("reply exactly in this format" in p for p in chat.prompts)


def test_a_structured_listing_built_without_validation_falls_back_to_the_text_format(
    scene_path, config
):
    chat = _StructuredChat(script=seal_script("red square"))
    unchecked = CuedTargetListing.model_construct(answer=None, missing_objects=[None, 5])
    chat.structured = lambda m: {"parsed": unchecked, "raw": None, "parsing_error": None}
    out = build_graph(chat, ColourSearchModel(), config).invoke(
        {"image": scene_path, "question": "q?"}
    )
    assert out["targets"] == ["red square"]
    assert any("reply exactly in this format" in p for p in chat.prompts)


def test_an_endless_iterator_of_option_scores_is_a_chat_model_fault(scene_path, config):
    class EndlessScores(ScriptedChatModel):
        def score_options(self, messages, options):
            return itertools.count()  # never ends

    graph = build_graph(
        EndlessScores(script=seal_script("red square")), ColourSearchModel(), config
    )
    with pytest.raises(ChatModelError, match="returned more than 2 option scores for 2 options"):
        graph.invoke({"image": scene_path, "question": "q?", "options": ["x", "y"]})


def test_a_models_megabyte_exception_text_is_quoted_briefly(scene_path, config):
    flood = "x" * 1_000_000
    tolerant = config.model_copy(update={"raise_on_search_error": False})
    graph, chat = _graph(tolerant, seal_script("red square"), _LoudSearch(flood))
    out = graph.invoke({"image": scene_path, "question": "q?"})
    outcome = out["searches"]["red square"]
    assert outcome["stop_reason"] == "model_error"
    assert len(outcome["message"]) < 1000  # in the state, its checkpoints and the prompt
    assert all(len(p) < 20_000 for p in chat.prompts)
    graph, _ = _graph(config, seal_script("red square"), _LoudSearch(flood))
    with pytest.raises(SearchModelError, match=r"CUDA error: x+\.\.\.") as raised:
        graph.invoke({"image": scene_path, "question": "q?"})
    assert len(str(raised.value)) < 1000

    def loud_chat(text, _):
        raise ConnectionError(flood)

    graph, _ = _graph(config, loud_chat)
    with pytest.raises(ChatModelError, match=r"ConnectionError: x+") as raised_chat:
        graph.invoke({"image": scene_path, "question": "q?"})
    assert len(str(raised_chat.value)) < 1000


class _LoudSearch(ColourSearchModel):
    """Raises with a megabyte of text (a dumped tensor, a server's HTML page)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def predict(self, views, phrases):  # type: ignore[override]
        raise RuntimeError("CUDA error: " + self.text)


def test_a_megabyte_structured_answer_is_capped_as_a_text_reply_is(scene_path, config):
    chat = _StructuredChat(script=seal_script())
    chat.structured = lambda m: {"parsed": TargetListing(answer="y" * 1_000_000), "raw": None}
    out = build_graph(chat, ColourSearchModel(), config).invoke(
        {"image": scene_path, "question": "q?"}
    )
    assert out["answer"] == "y" * config.max_reply_chars


HUNG_CHAT_SCRIPT = """
import threading, time
from PIL import Image
from test_graph_fakes import ColourSearchModel, ScriptedChatModel, seal_script
from seal_agent.errors import ChatModelError
from seal_agent.graph import SealConfig, build_graph

class Hung(ScriptedChatModel):
    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        threading.Event().wait()  # a provider call without a timeout, forever

graph = build_graph(Hung(script=seal_script()), ColourSearchModel(),
                    SealConfig(cache_dir=CACHE, chat_timeout_s=0.5))
started = time.monotonic()
try:
    graph.invoke({"image": Image.new("RGB", (64, 48)), "question": "q?"})
except ChatModelError as exc:
    print("gave up:", exc)
print("seconds", round(time.monotonic() - started, 1))
"""


def test_a_hung_chat_call_never_keeps_the_process_from_exiting(tmp_path):
    # The timed call is abandoned at chat_timeout_s; its thread must not be joined at exit
    # (a ThreadPoolExecutor's are: the process then never ended).
    import os
    import subprocess
    import sys

    tests = Path(__file__).resolve().parent
    script = HUNG_CHAT_SCRIPT.replace("CACHE", repr(str(tmp_path / "cache")))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)])}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "gave up: the VQA chat model" in done.stdout
