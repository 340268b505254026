"""write_dataset emits V*Bench's on-disk format, both subsets, correct option first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from seal_agent.shapeworld.dataset import (
    SUBSETS,
    annotation_path_for,
    item_seed,
    write_dataset,
)
from seal_agent.shapeworld.scene import SceneSpec, generate_scene

SMALL = SceneSpec(width=640, height=512, n_distractors=(20, 40))


def test_both_subsets_are_written_in_vstar_format(tmp_path: Path) -> None:
    items = write_dataset(tmp_path, 2, seed=3, spec=SMALL)
    assert len(items) == 4
    for subset in SUBSETS:
        jpgs = sorted((tmp_path / subset).glob("*.jpg"))
        jsons = sorted((tmp_path / subset).glob("*.json"))
        assert len(jpgs) == len(jsons) == 2
        assert [p.stem for p in jpgs] == [p.stem for p in jsons]
    for item in items:
        annotation = json.loads(item.annotation_path.read_text())
        assert set(annotation) == {"target_object", "bbox", "question", "options"}
        # The written annotation is the scene's: re-render it from its seed and compare.
        scene = generate_scene(item.seed, SMALL, kind=item.subset)
        assert annotation == scene.annotation()
        assert annotation["options"][0] == scene.options[0]
        for box in annotation["bbox"]:
            assert len(box) == 4
            assert all(isinstance(v, int) for v in box)
        with Image.open(item.image_path) as image:
            assert image.format == "JPEG"
            assert image.size == (640, 512)
        if item.subset == "direct_attributes":
            assert annotation["options"][0] == scene.targets[0].colour
            assert len(annotation["target_object"]) == 1
        else:
            assert len(annotation["target_object"]) == 2
            assert len(annotation["options"]) == 2


def test_jpeg_keeps_target_colours(tmp_path: Path) -> None:
    (item,) = write_dataset(tmp_path, 1, seed=5, spec=SMALL, subsets=["direct_attributes"])
    scene = generate_scene(item.seed, SMALL, kind="direct_attributes")
    target = scene.targets[0]
    cx, cy = target.box.center
    with Image.open(item.image_path) as image:
        pixel = image.convert("RGB").getpixel((int(cx), int(cy) + 2))
    expected = scene.image.getpixel((int(cx), int(cy) + 2))
    assert max(abs(a - b) for a, b in zip(pixel, expected, strict=True)) <= 12


def test_same_seed_writes_the_same_dataset(tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "a", 2, seed=9, spec=SMALL)
    b = write_dataset(tmp_path / "b", 2, seed=9, spec=SMALL)
    assert [i.annotation_path.read_text() for i in a] == [i.annotation_path.read_text() for i in b]
    c = write_dataset(tmp_path / "c", 2, seed=10, spec=SMALL)
    assert [i.seed for i in a] != [i.seed for i in c]


def test_sizes_are_cycled(tmp_path: Path) -> None:
    items = write_dataset(
        tmp_path, 3, seed=1, spec=SMALL, sizes=[(600, 520), (1100, 540)], subsets=SUBSETS[:1]
    )
    assert [(i.width, i.height) for i in items] == [(600, 520), (1100, 540), (600, 520)]


def test_annotation_path_survives_dots_in_folders(tmp_path: Path) -> None:
    root = tmp_path / "v1.0.bench" / "."
    items = write_dataset(root, 1, seed=2, spec=SMALL, subsets=["relative_position"])
    assert items[0].annotation_path.name == items[0].image_path.stem + ".json"
    assert items[0].annotation_path.exists()
    assert annotation_path_for(Path("./data.v2/img.1.jpg")) == Path("./data.v2/img.1.json")


def test_item_seeds_differ_per_subset_and_index() -> None:
    seeds = {item_seed(0, s, i) for s in SUBSETS for i in range(50)}
    assert len(seeds) == 100


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": -1}, "n must be"),
        ({"n": 1, "quality": 0}, "quality"),
        ({"n": 1, "subsets": ["OCR"]}, "subset"),
    ],
)
def test_bad_arguments_raise(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_dataset(tmp_path, **kwargs)  # type: ignore[arg-type]
