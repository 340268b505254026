"""``seal_agent.graph:graph``'s models come from ``$SEAL_AGENT_MODELS``, built on first use."""

from __future__ import annotations

from pathlib import Path

import pytest

from seal_agent.errors import SealError
from seal_agent.graph import SealConfig, build_default_graph
from seal_agent.graph.default_models import default_models
from seal_agent.shapeworld import generate_scene


def test_the_shapeworld_set_answers_offline(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEAL_AGENT_MODELS", "shapeworld")
    scene = generate_scene(
        4, width=1600, height=1200, kind="direct_attributes", target_size=(20, 24)
    )
    target = scene.targets[0]
    graph = build_default_graph(SealConfig(cache_dir=tmp_path))
    state = graph.invoke(
        {"image": scene.image, "question": f"What is the color of the {target.shape}?"}
    )
    assert state["answer"] == f"The {target.shape} is {target.colour}."


def test_models_are_lazy_and_named_by_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("SEAL_AGENT_MODELS", raising=False)
    monkeypatch.setenv("SEAL_AGENT_VQA_MODEL", "/models/my-vlm")
    vqa, search = default_models()
    assert repr(vqa) == "Lazy(TransformersChatModel(/models/my-vlm))"
    assert repr(search) == "Lazy(OwlSearchModel(default))"


def test_a_bad_model_set_fails_at_the_first_run_not_at_import(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEAL_AGENT_MODELS", "gpt-17")
    graph = build_default_graph(SealConfig(cache_dir=tmp_path))  # building is fine
    scene = generate_scene(4, width=800, height=600, kind="direct_attributes", target_size=(20, 24))
    with pytest.raises(SealError, match="SEAL_AGENT_MODELS='gpt-17' is not a model set"):
        graph.invoke({"image": scene.image, "question": "What is the color of the star?"})
