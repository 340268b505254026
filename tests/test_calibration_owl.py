"""`seal-agent calibrate` end to end on a tiny random-weight OWLv2 loaded like a hub one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from models_fixtures import owlv2_dir  # noqa: F401  (fixture)
from PIL import Image

from seal_agent.calibration import load_profile
from seal_agent.cli import main
from seal_agent.cli.calibrate import search_model_from_name
from seal_agent.evaluation.dataset import load_vstar_dataset
from seal_agent.models import GroundingDinoSearchModel, OwlSearchModel
from seal_agent.models.owl import OWL_THRESHOLDS
from seal_agent.search import ModelThresholds, SearchConfig, VStarSearch
from seal_agent.shapeworld import SceneSpec, write_dataset


@pytest.mark.slow
def test_calibrate_runs_on_a_tiny_owlv2_and_the_profile_drives_a_search(
    owlv2_dir: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "data"
    spec = SceneSpec(width=640, height=512, n_distractors=(20, 30), n_tables=(1, 2))
    write_dataset(data, 1, seed=3, spec=spec)
    out = tmp_path / "owl.json"
    code = main(
        ["calibrate", "--data", str(data), "--search-model", str(owlv2_dir), "--out", str(out)]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert str(out) in captured.out
    assert "[1/2]" in captured.err  # progress per item
    profile = load_profile(out)
    assert profile.model.type == "OwlSearchModel"
    assert profile.model.input_size == 96
    assert profile.model.defaults == OWL_THRESHOLDS
    assert profile.provenance.views > 0
    # random weights: whatever was measured or kept is stated per threshold
    assert all(c.source in ("measured", "model default") for c in profile.choices.values())
    assert json.loads(out.read_text())["format"] == "seal-agent/thresholds-profile"

    model = OwlSearchModel(str(owlv2_dir))
    search = VStarSearch(model, SearchConfig(thresholds=out, max_calls=6))
    assert search.thresholds == profile.thresholds
    assert isinstance(search.thresholds, ModelThresholds)
    item = load_vstar_dataset(data, limit=1)[0]
    result = search.search(_image(item.image_path), item.target_objects[0])
    assert result.patches_scored >= 1


def _image(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def test_search_model_names_pick_the_family(tmp_path: Path) -> None:
    gdino = tmp_path / "gdino"
    gdino.mkdir()
    (gdino / "config.json").write_text(json.dumps({"model_type": "grounding-dino"}))
    assert isinstance(search_model_from_name(str(gdino), "cpu"), GroundingDinoSearchModel)
    owl = tmp_path / "owl"
    owl.mkdir()
    (owl / "config.json").write_text(json.dumps({"model_type": "owlv2"}))
    assert isinstance(search_model_from_name(str(owl), "cpu"), OwlSearchModel)
    assert isinstance(search_model_from_name("owlv2", "cpu"), OwlSearchModel)
    hub = search_model_from_name("IDEA-Research/grounding-dino-tiny", "cpu")
    assert isinstance(hub, GroundingDinoSearchModel)
