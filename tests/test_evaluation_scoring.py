"""Multiple-choice scoring: seeded shuffling, letters, V*Bench's table, the systems."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from langchain_core.messages import BaseMessage
from test_graph_fakes import ColourSearchModel, ScriptedChatModel, make_scene

from seal_agent.evaluation import (
    chance_accuracy,
    direct_answerer,
    evaluate,
    format_table,
    graph_answerer,
    likelihood_answerer,
    load_vstar_dataset,
    present_options,
    random_answerer,
    summarise,
)
from seal_agent.graph import SealConfig, build_graph


def test_options_are_shuffled_per_item_and_seed_but_reproducibly():
    options = ["right", "w1", "w2", "w3"]
    shown, correct = present_options("a/1.jpg", options, seed=0)
    assert sorted(shown) == sorted(options)
    assert shown[correct] == "right"
    assert present_options("a/1.jpg", options, seed=0) == (shown, correct)
    positions = {present_options(f"a/{i}.jpg", options, seed=0)[1] for i in range(40)}
    assert positions == {0, 1, 2, 3}  # the correct answer is not always first
    other_seed = [present_options(f"a/{i}.jpg", options, seed=1)[1] for i in range(40)]
    assert other_seed != [present_options(f"a/{i}.jpg", options, seed=0)[1] for i in range(40)]


def test_summary_is_micro_averaged_like_vstar_bench():
    results = [("attribute", True)] * 3 + [("attribute", False)] + [("spatial", False)] * 2
    scores = summarise(results)
    assert scores["attribute"].accuracy == 75.0
    assert scores["spatial"].accuracy == 0.0
    assert scores["overall"].accuracy == 50.0
    assert scores["overall"].n == 6


def test_chance_matches_the_papers_random_row():
    expected = chance_accuracy([("attribute", 4)] * 115 + [("spatial", 2)] * 76)
    assert expected == {"attribute": 25.0, "spatial": 50.0, "overall": 34.95}


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """Four V*Bench-format items over the fakes' scene (a red and a blue square)."""
    root = tmp_path / "bench"
    scene = make_scene()
    for subset, name, annotation in [
        (
            "direct_attributes",
            "red",
            {
                "target_object": ["red square"],
                "bbox": [[1500, 1100, 20, 20]],
                "question": "What is the colour of the red square?",
                "options": ["red", "blue", "green", "white"],
            },
        ),
        (
            "direct_attributes",
            "blue",
            {
                "target_object": ["blue square"],
                "bbox": [[300, 200, 20, 20]],
                "question": "What is the colour of the blue square?",
                "options": ["blue", "red", "black", "white"],
            },
        ),
        (
            "relative_position",
            "lr",
            {
                "target_object": ["red square", "blue square"],
                "bbox": [[1500, 1100, 20, 20], [300, 200, 20, 20]],
                "question": "Is the red square on the left or right side of the blue square?",
                "options": ["right", "left"],
            },
        ),
        (
            "relative_position",
            "rl",
            {
                "target_object": ["blue square", "red square"],
                "bbox": [[300, 200, 20, 20], [1500, 1100, 20, 20]],
                "question": "Is the blue square on the left or right side of the red square?",
                "options": ["left", "right"],
            },
        ),
    ]:
        folder = root / subset
        folder.mkdir(parents=True, exist_ok=True)
        scene.save(folder / f"{name}.png")
        (folder / f"{name}.json").write_text(json.dumps(annotation))
    return root


def _oracle_script(text: str, messages: Sequence[BaseMessage]) -> str:
    """Answers from the VWM text alone: the colour named in the question, or the side
    from the two location lines; names both squares as missing at first."""
    import re

    options = dict(re.findall(r"^([A-Z])\. (.+)$", text, re.M))
    if "Additional visual information" not in text:
        if options:
            return "A"  # no VWM, lettered: a fixed guess
        return "Sorry, I can not answer. missing or unclear: red square, blue square."
    if "colour of the" in text:
        wanted = "red" if "red square?" in text else "blue"
    else:
        xs = {
            name: float(x1)
            for name, x1 in re.findall(r"(\w+ square) <object> at location \[([\d.]+)", text)
        }
        first = re.search(r"Is the (\w+ square)", text).group(1)
        second = "blue square" if first == "red square" else "red square"
        wanted = "left" if xs[first] < xs[second] else "right"
    return next(letter for letter, option in options.items() if option == wanted)


def test_the_graph_system_is_scored_against_the_shuffled_truth(dataset, tmp_path: Path):
    items = load_vstar_dataset(dataset)
    chat = ScriptedChatModel(script=_oracle_script)
    graph = build_graph(chat, ColourSearchModel(), SealConfig(cache_dir=tmp_path / "c"))
    report = evaluate(items, graph_answerer(graph), system="seal", seed=3)
    assert report.scores["overall"].accuracy == 100.0
    assert report.localisation_rate == 100.0
    assert report.mean_patches_scored > 0
    # The options really were shuffled for the graph (the chat model saw letters).
    assert {r.correct_index for r in report.items} != {0}


def test_a_fixed_letter_scores_at_chance_not_at_100(dataset):
    items = load_vstar_dataset(dataset)
    chat = ScriptedChatModel(script=_oracle_script)
    report = evaluate(items, direct_answerer(chat), system="direct", seed=3)
    always_a = sum(r.correct_index == 0 for r in report.items)
    assert report.scores["overall"].correct == always_a < len(items)
    assert all(r.prediction.choice == 0 for r in report.items)


def test_random_answerer_is_reproducible(dataset):
    items = load_vstar_dataset(dataset)
    first = evaluate(items, random_answerer(1), system="random", seed=0)
    again = evaluate(items, random_answerer(1), system="random", seed=0)
    assert [r.prediction.choice for r in first.items] == [r.prediction.choice for r in again.items]


class _LikelihoodModel:
    """Scores options by how often their words appear in the prompt."""

    def __init__(self) -> None:
        self.seen: list[Sequence[BaseMessage]] = []

    def score_options(self, messages: Sequence[BaseMessage], options: Sequence[str]) -> list[float]:
        self.seen.append(messages)
        text = messages[-1].content[-1]["text"]
        return [-float(text.count(option)) for option in options]


def test_likelihood_scoring_picks_the_lowest_loss(dataset):
    items = load_vstar_dataset(dataset)
    model = _LikelihoodModel()
    report = evaluate(items[:2], likelihood_answerer(model), system="likelihood", seed=0)
    # "What is the colour of the red square?" mentions red once: red wins.
    assert report.items[0].prediction.answer == "blue"  # sorted order: blue.png first
    assert report.items[1].prediction.answer == "red"
    assert report.scores["overall"].accuracy == 100.0
    assert "letter" not in model.seen[0][-1].content[-1]["text"]
    with pytest.raises(TypeError):
        likelihood_answerer(object())  # type: ignore[arg-type]


def test_the_graph_uses_likelihood_scoring_when_the_model_offers_it(dataset, tmp_path: Path):
    class Scoring(ScriptedChatModel):
        def score_options(self, messages, options):
            text = messages[-1].content[-1]["text"]
            assert "Additional visual information" in text
            assert "A. " not in text
            return [0.0 if option == "blue" else 1.0 for option in options]

    items = load_vstar_dataset(dataset, subsets=["direct_attributes"])
    chat = Scoring(script=_oracle_script)
    graph = build_graph(chat, ColourSearchModel(), SealConfig(cache_dir=tmp_path / "c"))
    out = graph.invoke(
        {
            "image": str(items[0].image_path),
            "question": items[0].question,
            "options": ["red", "blue"],
        }
    )
    assert out["choice"] == 1
    assert out["answer"] == "blue"
    forced = graph.invoke(
        {
            "image": str(items[0].image_path),
            "question": "What is the colour of the blue square?",
            "options": ["red", "blue"],
        },
        context={"option_scoring": "generate"},
    )
    assert forced["choice"] == 1
    assert forced["answer"] == "B"


def test_the_table_has_the_vstar_bench_columns():
    report_items: list = []
    from seal_agent.evaluation import EvaluationReport

    scores = summarise([("attribute", True), ("spatial", False)])
    report = EvaluationReport(
        system="SEAL (ours)",
        seed=0,
        scores=scores,
        chance={"overall": 37.5},
        mean_patches_scored=4.5,
        localisation_rate=50.0,
        wall_s=1.0,
        mean_s_per_item=0.5,
        items=report_items,
    )
    table = format_table([report])
    header, _, row, counts = table.splitlines()
    assert "attribute" in header
    assert "spatial" in header
    assert "overall" in header
    assert "SEAL (ours)" in row
    assert "100.00" in row
    assert "50.00" in row
    assert counts == "items: attribute 1, spatial 1, overall 2"
