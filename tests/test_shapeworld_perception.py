"""Shape-world perception: right shapes and colours when resolved, honest when not."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from PIL import Image

from seal_agent.errors import InvalidImageError
from seal_agent.imaging.geometry import Box
from seal_agent.shapeworld.perception import (
    Phrase,
    analyze_view,
    model_view,
    parse_phrase,
    perceive,
)
from seal_agent.shapeworld.scene import SHAPES, Scene, generate_scene


@cache
def _scene(seed: int, **kwargs: object) -> Scene:
    return generate_scene(seed, **kwargs)  # type: ignore[arg-type]


def _match(perceived: list, box: Box):  # type: ignore[type-arg]
    cx, cy = box.center
    near = [
        o
        for o in perceived
        if abs(o.box.center[0] - cx) <= box.width / 2 and abs(o.box.center[1] - cy) <= box.width / 2
    ]
    return max(near, key=lambda o: o.box.iou(box), default=None)


def test_resolved_objects_have_the_right_shape_colour_and_box() -> None:
    scene = _scene(21, width=1400, height=1000, n_distractors=(120, 120))
    perception = perceive(scene.image, input_size=1400)  # every object >= 6 model px
    right = 0
    resolved = [o for o in scene.objects if o.side >= 12]
    for obj in resolved:
        seen = _match(list(perception.objects), obj.box)
        if (
            seen is not None
            and seen.shape == obj.shape
            and seen.colour == obj.colour
            and seen.box.iou(obj.box) > 0.5
            and seen.confidence > 0.5
        ):
            right += 1
    assert len(resolved) > 80
    assert right / len(resolved) >= 0.95


def test_shrinking_makes_small_shapes_unresolvable() -> None:
    # 4000 px shown at 336 px: every shape (<= 40 px) is at most 3.4 model px.
    scene = _scene(4, width=4000, height=3000, target_size=(12, 24), distractor_size=(6, 40))
    perception = perceive(scene.image, input_size=336)
    assert perception.objects  # the smudges are seen...
    assert not perception.resolved(0.5)  # ...but no shape is made out
    zoom = scene.targets[0].box.scale_about_center(12).clip(4000, 3000).round_out()
    crop = scene.image.crop(tuple(int(v) for v in zoom))
    found = perceive(crop, input_size=336).find(scene.targets[0].shape)
    assert found, "the target is plain once zoomed in"
    assert found[0].colour == scene.targets[0].colour


def test_tables_are_found() -> None:
    scene = _scene(8, width=2000, height=1500, n_tables=(3, 4))
    perception = perceive(scene.image, input_size=512)
    assert len(scene.tables) >= 3
    for table in scene.tables:
        best = max((t.box.iou(table) for t in perception.tables), default=0.0)
        assert best > 0.8
    analysis, _, _ = analyze_view(scene.image, 512)
    heat = analysis.heatmap(Phrase("table"))
    assert 0.9 <= heat.max() <= 1.0


def test_no_tables_no_table_evidence() -> None:
    scene = _scene(2, width=1200, height=900, n_tables=0)
    analysis, _, _ = analyze_view(scene.image, 512)
    assert analysis.table_boxes == ()
    assert not analysis.heatmap(Phrase("table")).any()


def test_unknown_phrase_gives_nothing() -> None:
    scene = _scene(2, width=1200, height=900)
    analysis, _, _ = analyze_view(scene.image, 512)
    unknown = parse_phrase("giraffe")
    assert unknown.kind == "unknown"
    assert analysis.detections(unknown) == []
    heat = analysis.heatmap(unknown)
    assert heat.ndim == 2
    assert not heat.any()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("star", Phrase("object", "star")),
        ("the Red Stars", Phrase("object", "star", "red")),
        ("a white CROSS.", Phrase("object", "cross", "white")),
        ("circles", Phrase("object", "circle")),
        ("blue", Phrase("object", None, "blue")),
        ("the table", Phrase("table")),
        ("desks", Phrase("table")),
        ("the star on the table", Phrase("object", "star")),
        ("giraffe", Phrase("unknown")),
        ("", Phrase("unknown")),
    ],
)
def test_phrases_are_parsed_robustly(text: str, expected: Phrase) -> None:
    assert parse_phrase(text) == expected


def test_colour_phrase_heatmap_follows_the_colour() -> None:
    scene = _scene(
        5, width=1200, height=900, target_colours=("red",), target_shapes=("star",), target_size=30
    )
    analysis, sx, sy = analyze_view(scene.image, 512)
    heat = analysis.heatmap(Phrase("object", None, "red"))
    reds = [o for o in scene.objects if o.colour == "red"]
    others = [o for o in scene.objects if o.colour != "red"]

    def heat_at(box: Box) -> float:
        stride = analysis.config.heatmap_stride
        x, y = box.center
        return float(heat[int(y / sy / stride), int(x / sx / stride)])

    assert np.mean([heat_at(o.box) for o in reds]) > 3 * np.mean([heat_at(o.box) for o in others])


def test_confidence_rises_with_size_in_model_pixels() -> None:
    scene = _scene(6, width=2400, height=1800, target_shapes=("star",), target_size=40)
    target = scene.targets[0]
    scores = []
    for input_size in (160, 256, 512, 1024):
        perception = perceive(scene.image, input_size=input_size)
        seen = _match(list(perception.objects), target.box)
        star = seen.confidence if seen is not None and seen.shape == "star" else 0.0
        scores.append(star)
    # 2.7, 4.3, 8.5, 17 model px.
    assert scores[0] < 0.5
    assert scores[-1] > 0.8
    assert scores == sorted(scores) or max(scores[2:]) > 0.8


def test_model_view_shrinks_to_the_input_size_by_area() -> None:
    image = Image.new("RGB", (2000, 500), (100, 100, 100))
    image.paste((255, 255, 255), (0, 0, 4, 4))  # a 4x4 white dot
    view = model_view(image, 500)
    assert view.size == (500, 125)
    # Area averaging: one model pixel holds the dot, fully white.
    assert view.getpixel((0, 0)) == (255, 255, 255)
    assert model_view(image, 2000) is image


def test_bad_images_raise() -> None:
    with pytest.raises(InvalidImageError):
        perceive("not an image", 336)  # type: ignore[arg-type]
    with pytest.raises(InvalidImageError):
        perceive(Image.new("RGB", (0, 0)), 336)


def test_grey_and_rgba_images_are_accepted() -> None:
    scene = _scene(2, width=1200, height=900)
    assert perceive(scene.image.convert("RGBA"), 512).objects
    assert perceive(scene.image.convert("L"), 512).image_size == (1200, 900)


def test_every_shape_is_recognised_when_resolved() -> None:
    for seed, shape in enumerate(SHAPES):
        scene = _scene(100 + seed, width=1024, height=768, target_shapes=(shape,), target_size=40)
        found = perceive(scene.image, 1024).find(shape)
        assert found
        assert found[0].box.iou(scene.targets[0].box) > 0.6
