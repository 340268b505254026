"""Loading V*Bench-format folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from seal_agent.evaluation import DatasetError, load_vstar_dataset
from seal_agent.imaging.geometry import Box


def _write(folder: Path, name: str, annotation: dict | str | None, suffix: str = ".jpg") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), (100, 100, 100)).save(folder / f"{name}{suffix}")
    if annotation is not None:
        text = annotation if isinstance(annotation, str) else json.dumps(annotation)
        (folder / f"{name}.json").write_text(text)


GLOVE = {
    "target_object": ["glove"],
    "bbox": [[5, 6, 10, 12]],
    "question": "What is the material of the glove?",
    "options": ["rubber", "cotton", "leather", "plastic"],
}
CUP = {
    "target_object": ["cup", "dog"],
    "bbox": [[1, 1, 2, 2], [20, 10, 5, 5]],
    "question": "Is the cup on the left or right side of the dog?",
    "options": [
        "The cup is on the left side of the dog.",
        "The cup is on the right side of the dog.",
    ],
}


def test_both_subsets_load_in_a_stable_order(tmp_path: Path):
    _write(tmp_path / "direct_attributes", "sa_2", GLOVE)
    _write(tmp_path / "direct_attributes", "sa_1", GLOVE, suffix=".png")
    _write(tmp_path / "relative_position", "sa_9", CUP)
    items = load_vstar_dataset(tmp_path)
    assert [i.id for i in items] == [
        "direct_attributes/sa_1.png",
        "direct_attributes/sa_2.jpg",
        "relative_position/sa_9.jpg",
    ]
    glove = items[1]
    assert glove.category == "attribute"
    assert items[2].category == "spatial"
    assert glove.options[0] == "rubber"
    assert glove.target_objects == ("glove",)
    assert glove.target_boxes == (Box(5, 6, 15, 18),)  # [x, y, w, h] -> x1 y1 x2 y2


def test_paths_with_dots_are_not_split(tmp_path: Path, monkeypatch):
    """The reference derived 'NAME.json' with split('.'), which breaks on './data'."""
    root = tmp_path / "v1.0" / "bench.data"
    _write(root / "direct_attributes", "sa.12.34", GLOVE)
    _write(root / "relative_position", "x", CUP)
    monkeypatch.chdir(tmp_path)
    items = load_vstar_dataset(os.path.join(".", "v1.0", "bench.data"))
    assert items[0].image_path.name == "sa.12.34.jpg"
    assert items[0].question == GLOVE["question"]


def test_images_without_annotations_and_other_files_are_skipped(tmp_path: Path):
    _write(tmp_path / "direct_attributes", "a", GLOVE)
    _write(tmp_path / "direct_attributes", "orphan", None)
    (tmp_path / "direct_attributes" / "README.txt").write_text("hello")
    _write(tmp_path / "relative_position", "b", CUP)
    assert len(load_vstar_dataset(tmp_path)) == 2
    assert len(load_vstar_dataset(tmp_path, limit=1)) == 1
    assert len(load_vstar_dataset(tmp_path, subsets=["relative_position"])) == 1


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        ("{not json", "cannot read annotation"),
        ("[1, 2]", "not a JSON object"),
        ({**GLOVE, "options": ["only"]}, "invalid annotation"),
        ({**GLOVE, "question": ""}, "invalid annotation"),
        ({**GLOVE, "bbox": [[1, 2, 3]]}, "bbox"),
    ],
)
def test_malformed_annotations_name_the_file(tmp_path: Path, annotation, message):
    _write(tmp_path / "direct_attributes", "bad", annotation)
    (tmp_path / "relative_position").mkdir()
    with pytest.raises(DatasetError, match=message) as info:
        load_vstar_dataset(tmp_path)
    assert "bad.json" in str(info.value)


def test_missing_folders_are_named(tmp_path: Path):
    with pytest.raises(DatasetError, match="not found"):
        load_vstar_dataset(tmp_path / "nowhere")
    (tmp_path / "direct_attributes").mkdir()
    with pytest.raises(DatasetError, match="relative_position"):
        load_vstar_dataset(tmp_path)
