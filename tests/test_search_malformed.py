"""Any malformed search-model output ends the search as a model fault naming the problem.

A table of broken outputs, each checked three ways: ``validate_predictions`` raises
``SearchModelError`` (never a raw ``TypeError``/``ValueError``), a search ends with
``stop_reason="model_error"`` and that reason, and the graph honours
``raise_on_search_error`` for every one of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from PIL import Image
from search_fakes import ORACLE_THRESHOLDS, GeometricOracle, VirtualPyramid
from test_graph_fakes import ScriptedChatModel, seal_script

from seal_agent.errors import SearchModelError
from seal_agent.graph import build_graph
from seal_agent.imaging.geometry import Box
from seal_agent.search import Detection, ModelThresholds, PatchPrediction, validate_predictions
from seal_agent.search.config import SearchConfig
from seal_agent.search.engine import VStarSearch
from seal_agent.search.priority import HeatmapMass
from seal_agent.search.protocol import MAX_INPUT_SIZE, MIN_INPUT_SIZE, fit_heatmap_to_view

HM = np.zeros((4, 4), dtype=np.float32)
GOOD_BOX = Box(1, 1, 5, 5)


def one(pred: object) -> object:
    """A one-view, one-phrase output holding ``pred``."""
    return [[pred]]


def det(box: object = GOOD_BOX, score: object = 0.4) -> Detection:
    return Detection(box, score)  # type: ignore[arg-type]  # deliberately malformed


def pred(detections: object = (), heatmap: object = HM) -> PatchPrediction:
    return PatchPrediction(detections, heatmap)  # type: ignore[arg-type]


#: (id, output, fragment of the error message)
MALFORMED: list[tuple[str, object, str]] = [
    ("three-number box", one(pred((det((1, 2, 3)),))), "3 coordinates"),
    ("five-number box", one(pred((det((1, 2, 3, 4, 5)),))), "5 coordinates"),
    ("string coordinates", one(pred((det(("1", "2", "3", "4")),))), "must be numbers"),
    ("None box", one(pred((det(None),))), "NoneType"),
    ("scalar box", one(pred((det(7.0),))), "float"),
    ("inf coordinate", one(pred((det((0, 0, float("inf"), 4)),))), "non-finite coordinate"),
    ("inverted box", one(pred((det((5, 5, 1, 1)),))), "x2 < x1"),
    ("detections None", one(pred(None)), "detections is NoneType"),
    ("detections a dict", one(pred({"box": GOOD_BOX})), "detections is dict"),
    ("tuple instead of Detection", one(pred(((GOOD_BOX, 0.9),))), "expected Detection"),
    ("string score", one(pred((det(score="0.9"),))), "score is str"),
    ("None score", one(pred((det(score=None),))), "score is NoneType"),
    ("bool score", one(pred((det(score=True),))), "score is bool"),
    ("NaN score", one(pred((det(score=float("nan")),))), "non-finite"),
    ("score above 1", one(pred((det(score=1.5),))), "outside the model's range"),
    ("negative score", one(pred((det(score=-0.1),))), "outside the model's range"),
    ("string heatmap", one(pred(heatmap=np.array([["a", "b"], ["c", "d"]]))), "not numeric"),
    ("object heatmap", one(pred(heatmap=np.array([[None, 1]], dtype=object))), "not numeric"),
    ("bool heatmap", one(pred(heatmap=np.ones((2, 2), dtype=bool))), "not numeric"),
    ("complex heatmap", one(pred(heatmap=np.ones((2, 2), dtype=complex))), "not numeric"),
    ("list heatmap", one(pred(heatmap=[[0.0, 1.0], [1.0, 0.0]])), "not a numpy array"),
    ("None heatmap", one(pred(heatmap=None)), "not a numpy array"),
    ("1-D heatmap", one(pred(heatmap=np.zeros(5))), "not a 2-D array"),
    ("3-D heatmap", one(pred(heatmap=np.zeros((2, 2, 3)))), "not a 2-D array"),
    ("empty heatmap", one(pred(heatmap=np.zeros((0, 3)))), "not a 2-D array"),
    ("NaN heatmap", one(pred(heatmap=np.full((2, 2), np.nan))), "NaN or inf"),
    ("1e308 heatmap", one(pred(heatmap=np.full((2, 2), 1e308))), "beyond +-1e+30"),
    ("-1e308 heatmap", one(pred(heatmap=np.array([[-1e308, 0.0], [1.0, 2.0]]))), "beyond"),
    ("flat nesting", [pred()], "malformed result for view 0"),
    ("too deep nesting", [[[pred()]]], "expected PatchPrediction"),
    ("dict instead of prediction", one({"detections": (), "heatmap": HM}), "dict"),
    ("no views", [], "0 results for 1 views"),
    ("None output", None, "NoneType results"),
    ("tuple output", ((pred(),),), "tuple results"),
    ("too many phrases", [[pred(), pred()]], "malformed result for view 0"),
    ("a million detections", one(pred((det(),) * 1_000_000)), "more than 20000"),
]
IDS = [case[0] for case in MALFORMED]


class FixedOutputModel:
    """Returns one fixed (malformed) output for every call."""

    input_size = 512
    thresholds: ModelThresholds = ORACLE_THRESHOLDS

    def __init__(self, output: object) -> None:
        self.output = output

    def predict(self, views: Sequence[Image.Image], phrases: Sequence[str]) -> object:
        return self.output


@pytest.mark.parametrize(("name", "output", "fragment"), MALFORMED, ids=IDS)
def test_validate_predictions_names_every_fault(name: str, output: object, fragment: str) -> None:
    views = [Image.new("RGB", (8, 8))]
    with pytest.raises(SearchModelError) as raised:
        validate_predictions(output, views, ["star"])
    assert fragment in str(raised.value)
    assert type(raised.value) is SearchModelError  # not a TypeError in disguise


@pytest.mark.parametrize(("name", "output", "fragment"), MALFORMED, ids=IDS)
def test_a_search_ends_with_the_fault_as_its_reason(name: str, output: object, fragment: str):
    result = VStarSearch(FixedOutputModel(output)).search(VirtualPyramid(2000, 1500), "star")
    assert result.stop_reason == "model_error"
    assert not result.found
    assert fragment in result.message


def test_a_declared_score_range_is_honoured() -> None:
    class LogitModel(FixedOutputModel):
        score_range = (-10.0, 10.0)

    views = [Image.new("RGB", (8, 8))]
    ok = one(pred((det(score=4.0),)))
    assert validate_predictions(ok, views, ["star"], score_range=(-10.0, 10.0)) is ok
    config = SearchConfig(confidence_high=0.5, max_calls=3)
    result = VStarSearch(LogitModel(ok), config).search(VirtualPyramid(600, 400), "star")
    assert result.stop_reason != "model_error"
    too_high = one(pred((det(score=20.0),)))
    result = VStarSearch(LogitModel(too_high), config).search(VirtualPyramid(600, 400), "star")
    assert result.stop_reason == "model_error"
    assert "[-10, 10]" in result.message


@pytest.mark.parametrize(
    ("attribute", "value", "fragment"),
    [
        ("score_range", (1.0, 0.0), "low < high"),
        ("score_range", "0-1", "two numbers"),
        ("max_upsample", 0.5, ">= 1"),
        ("max_upsample", "2", "finite number"),
        ("max_upsample", float("nan"), "finite number"),
        ("max_batch_size", 0, "positive integer"),
        ("max_batch_size", "4", "positive integer"),
        ("max_batch_size", True, "positive integer"),
        ("max_batch_size", 2.5, "positive integer"),
    ],
)
def test_malformed_optional_declarations_are_refused(attribute, value, fragment) -> None:
    model = FixedOutputModel(one(pred()))
    setattr(model, attribute, value)
    with pytest.raises(SearchModelError, match=fragment):
        VStarSearch(model)


def test_an_absurd_input_size_is_refused_before_any_view_is_rendered_or_tile_queued() -> None:
    model = FixedOutputModel(one(pred()))
    model.input_size = 10**6  # a 10**6 px root view would allocate terabytes
    with pytest.raises(SearchModelError, match="outside 32-8192 px"):
        VStarSearch(model)
    model.input_size = 4  # a 12000x9000 image in 4 px tiles: gigabytes of queued tiles
    with pytest.raises(SearchModelError, match="outside 32-8192 px"):
        VStarSearch(model)
    for accepted in (MIN_INPUT_SIZE, MAX_INPUT_SIZE):
        model.input_size = accepted
        VStarSearch(model)


def test_a_heatmap_finer_than_its_view_is_pooled_keeping_its_peak() -> None:
    view = Image.new("RGB", (40, 30))
    fine = np.random.default_rng(0).random((301, 1000)).astype(np.float32)
    fine[300, 999] = 7.0  # the peak in the ragged last block
    pooled = fit_heatmap_to_view(pred(heatmap=fine), view).heatmap  # type: ignore[arg-type]
    assert pooled.shape[0] <= 30
    assert pooled.shape[1] <= 40
    assert pooled.max() == 7.0
    assert pooled[-1, -1] == 7.0
    assert pooled.dtype == np.float32
    coarse = pred(heatmap=np.ones((30, 40), dtype=np.float32))
    assert fit_heatmap_to_view(coarse, view) is coarse  # a map at or under the view's size


def test_a_search_keeps_no_map_finer_than_the_views_it_scored(monkeypatch) -> None:
    pyramid = VirtualPyramid(4000, 3000)
    oracle = GeometricOracle(pyramid, {"star": [Box(3100, 2200, 3116, 2216)]})

    class FineMaps:  # the oracle's maps upsampled 40x: 640 cells a side, views 512 px
        input_size = oracle.input_size
        thresholds = oracle.thresholds

        def predict(self, views, phrases):
            return [
                [PatchPrediction(p.detections, np.kron(p.heatmap, np.ones((40, 40), "f4")))
                 for p in row]
                for row in oracle.predict(views, phrases)
            ]  # fmt: skip

    shapes: list[tuple[int, ...]] = []
    original = HeatmapMass.from_heatmap.__func__  # type: ignore[attr-defined]

    def recording(cls, normalised, patch, level):
        shapes.append(normalised.shape)
        return original(cls, normalised, patch, level)

    monkeypatch.setattr(HeatmapMass, "from_heatmap", classmethod(recording))
    result = VStarSearch(FineMaps(), SearchConfig(max_calls=40)).search(pyramid, "star")
    assert result.found, result.message
    assert shapes
    assert all(rows <= 512 and cols <= 512 for rows, cols in shapes)


def test_model_thresholds_that_skipped_validation_are_a_model_fault() -> None:
    model = FixedOutputModel(one(pred()))
    fields = {**ORACLE_THRESHOLDS.model_dump(), "confidence_high": float("nan")}
    model.thresholds = ModelThresholds.model_construct(**fields)
    with pytest.raises(SearchModelError, match="thresholds are invalid: confidence_high"):
        VStarSearch(model)


def test_a_model_whose_setup_raises_is_a_model_fault() -> None:
    class Broken:
        thresholds = ORACLE_THRESHOLDS

        @property
        def input_size(self) -> int:
            raise OSError("weights not found")

        def predict(self, views, phrases):  # pragma: no cover - never reached
            return []

    with pytest.raises(SearchModelError, match="weights not found"):
        VStarSearch(Broken())  # type: ignore[arg-type]


# -- through the graph ---------------------------------------------------------------------
GRAPH_CASES = [
    c
    for c in MALFORMED
    if c[0]
    in {
        "three-number box",
        "string coordinates",
        "detections None",
        "string heatmap",
        "flat nesting",
        "score above 1",
    }
]


class _MalformedForGraph(FixedOutputModel):
    """Malformed output sized to whatever the graph asks (one row per view)."""

    def predict(self, views, phrases):
        row = self.output[0] if isinstance(self.output, list) and self.output else self.output
        return [row for _ in views] if isinstance(row, list) else self.output


@pytest.mark.parametrize(
    ("name", "output", "fragment"), GRAPH_CASES, ids=[c[0] for c in GRAPH_CASES]
)
def test_raise_on_search_error_holds_for_every_fault(scene_path, config, name, output, fragment):
    search = _MalformedForGraph(output)
    strict = build_graph(ScriptedChatModel(script=seal_script("red square")), search, config)
    with pytest.raises(SearchModelError, match="red square"):
        strict.invoke({"image": scene_path, "question": "q?"})
    tolerant_config = config.model_copy(update={"raise_on_search_error": False})
    chat = ScriptedChatModel(script=seal_script("red square"))
    tolerant = build_graph(chat, search, tolerant_config)
    out = tolerant.invoke({"image": scene_path, "question": "q?"})
    outcome = out["searches"]["red square"]
    assert outcome["stop_reason"] == "model_error"
    assert fragment in outcome["message"]


def test_raise_on_search_error_holds_for_a_model_that_cannot_be_set_up(scene_path, config):
    class Unloadable:
        thresholds = ORACLE_THRESHOLDS

        @property
        def input_size(self) -> int:
            raise OSError("no weights on this machine")

        def predict(self, views, phrases):  # pragma: no cover - never reached
            return []

    tolerant_config = config.model_copy(update={"raise_on_search_error": False})
    graph = build_graph(
        ScriptedChatModel(script=seal_script("red square")), Unloadable(), tolerant_config
    )
    out = graph.invoke({"image": scene_path, "question": "q?"})
    assert out["searches"]["red square"]["stop_reason"] == "model_error"
    assert "no weights" in out["searches"]["red square"]["message"]
    strict = build_graph(ScriptedChatModel(script=seal_script("red square")), Unloadable(), config)
    with pytest.raises(SearchModelError, match="no weights"):
        strict.invoke({"image": scene_path, "question": "q?"})
