"""Shape-world perception: right shapes and colours when resolved, honest when not."""

from __future__ import annotations

import io
import itertools
from functools import cache

import numpy as np
import pytest
from PIL import Image, ImageDraw

from seal_agent.errors import InvalidImageError
from seal_agent.imaging.geometry import Box, crop_box_around
from seal_agent.shapeworld.perception import (
    Phrase,
    analyze_view,
    model_view,
    parse_phrase,
    perceive,
)
from seal_agent.shapeworld.scene import (
    COLOURS,
    PALETTE,
    SHAPES,
    Scene,
    draw_shape,
    generate_scene,
)


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


# -- close-ups, plain crops and tables: what the VQA model is shown ------------------------
def _jpeg(image: Image.Image) -> Image.Image:
    """A JPEG q95 round trip with full chroma, as the V*Bench-format dataset is written."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, subsampling=0)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _crop(image: Image.Image, box: Box) -> Image.Image:
    return image.crop(tuple(int(v) for v in box))


CLOSE_UP_SCALES = (1.1, 1.2, 1.5, 2.0, 3.0)
#: Crops flush with the target on some sides, as where the target touches the image's
#: border and the 1.2x crop is clipped there.
FLUSH_SIDES = ("left", "top", "right bottom", "left top")


def _flush_crop_box(target: Box, sides: str, width: int, height: int) -> Box:
    margin = max(1.0, round(0.1 * target.width))
    x1, y1 = target.x1 - margin, target.y1 - margin
    x2, y2 = target.x2 + margin, target.y2 + margin
    x1 = target.x1 if "left" in sides else x1
    y1 = target.y1 if "top" in sides else y1
    x2 = target.x2 if "right" in sides else x2
    y2 = target.y2 if "bottom" in sides else y2
    return Box(x1, y1, x2, y2).clip(width, height)


@cache
def _close_up_scenes() -> tuple[Scene, ...]:
    """Every shape in every colour, sides spread over 12..40 px, half of them on tables."""
    scenes = []
    for index, (shape, colour) in enumerate(itertools.product(SHAPES, COLOURS)):
        side = 12 + (index * 11) % 29
        scenes.append(
            generate_scene(
                300 + index,
                width=512,
                height=512,
                target_shapes=(shape,),
                target_colours=(colour,),
                target_size=(side, side),
                n_distractors=(40, 80),
                distractor_size=(6, 40),
                n_tables=(1, 2),
                on_table_probability=float(index % 2),
            )
        )
    return tuple(scenes)


@pytest.mark.parametrize("encoding", ["png", "jpeg"])
def test_a_target_filling_a_close_up_is_resolved(encoding: str) -> None:
    """The VQA model's answer step: a crop 1.1x-3x the found box, enlarged to 336 px."""
    failures = []
    checked = 0
    for scene in _close_up_scenes():
        target = scene.targets[0]
        image = scene.image if encoding == "png" else _jpeg(scene.image)
        w, h = image.size
        boxes = [crop_box_around(target.box, w, h, scale=s) for s in CLOSE_UP_SCALES]
        boxes += [_flush_crop_box(target.box, sides, w, h) for sides in FLUSH_SIDES]
        for box in boxes:
            perception = perceive(_crop(image, box), 336)
            cx, cy = target.box.center[0] - box.x1, target.box.center[1] - box.y1
            central = [
                o
                for o in perception.objects
                if o.box.x1 <= cx <= o.box.x2 and o.box.y1 <= cy <= o.box.y2
            ]
            best = max(central, key=lambda o: o.confidence, default=None)
            checked += 1
            if not (
                best is not None
                and (best.shape, best.colour) == (target.shape, target.colour)
                and best.confidence > 0.5
                and best.box.iou(
                    Box(
                        cx - target.side / 2,
                        cy - target.side / 2,
                        cx + target.side / 2,
                        cy + target.side / 2,
                    )
                )
                > 0.5
            ):
                failures.append((scene.seed, target.colour, target.shape, target.side, box, best))
    assert checked == 40 * (len(CLOSE_UP_SCALES) + len(FLUSH_SIDES))
    assert failures == []


def test_the_reported_yellow_square_close_up_is_resolved() -> None:
    scene = _scene(5, width=4000, height=3000, kind="relative_position", target_size=(16, 24))
    square = next(t for t in scene.targets if t.shape == "square")
    for scale in (1.1, 1.2, 1.5):
        crop = _crop(scene.image, crop_box_around(square.box, 4000, 3000, scale=scale))
        found = perceive(crop, 336).find("square")
        assert found, f"no square in the {scale}x close-up"
        assert found[0].colour == square.colour
        assert found[0].confidence > 0.9


def _clear_of(box: Box, others: list[Box], gap: float) -> bool:
    return all(
        not (
            o.x1 < box.x2 + gap
            and box.x1 < o.x2 + gap
            and o.y1 < box.y2 + gap
            and box.y1 < o.y2 + gap
        )
        for o in others
    )


@pytest.mark.parametrize("encoding", ["png", "jpeg"])
def test_plain_background_crops_show_no_objects(encoding: str) -> None:
    """Enlarged background noise is no object, whatever the crop's size and colours."""
    rng = np.random.default_rng(7)
    seen = []
    checked = 0
    for seed in range(8):
        scene = _scene(seed, width=800, height=800, n_distractors=(20, 40), n_tables=(1, 2))
        image = scene.image if encoding == "png" else _jpeg(scene.image)
        occupied = [o.box for o in scene.objects] + list(scene.tables)
        for side in (10, 16, 30, 48, 80, 120, 200):
            for _ in range(30):
                x, y = (int(v) for v in rng.integers(0, 800 - side, size=2))
                box = Box(x, y, x + side, y + side)
                if _clear_of(box, occupied, gap=3):
                    break
            else:
                continue
            checked += 1
            perception = perceive(_crop(image, box), 336)
            seen += [
                (seed, side, o.name, o.confidence) for o in perception.objects if o.confidence > 0.3
            ]
    assert checked >= 40
    assert seen == []


def test_table_crops_show_a_table_and_no_objects() -> None:
    rng = np.random.default_rng(3)
    inside = edges = 0
    for seed in range(8):
        scene = _scene(seed, width=1500, height=1200, n_distractors=(20, 60), n_tables=(2, 4))
        objects = [o.box for o in scene.objects]
        for table in scene.tables:
            for side in (10, 20, 40, 80, 160):
                if table.width > side + 2 and table.height > side + 2:
                    x = int(rng.integers(table.x1, table.x2 - side))
                    y = int(rng.integers(table.y1, table.y2 - side))
                    box = Box(x, y, x + side, y + side)
                    if _clear_of(box, objects, gap=3):
                        perception = perceive(_crop(scene.image, box), 336)
                        assert perception.tables, (seed, box)
                        assert not perception.resolved(0.3), (seed, box)
                        inside += 1
                # Across the table's right edge: half cloth, half background.
                y = int(rng.integers(table.y1, max(table.y1 + 1, table.y2 - side)))
                box = Box(table.x2 - side // 2, y, table.x2 + side - side // 2, y + side)
                box = box.clip(1500, 1200)
                if box.width >= 5 and box.height >= 5 and _clear_of(box, objects, gap=3):
                    assert not perceive(_crop(scene.image, box), 336).resolved(0.3), (seed, box)
                    edges += 1
    assert inside >= 30
    assert edges >= 30


def test_enlarging_adds_no_detail() -> None:
    """A shape of 3 source pixels stays a smudge however large the crop is shown."""
    image = Image.new("RGB", (40, 40), (120, 130, 110))
    draw = ImageDraw.Draw(image)
    draw_shape(draw, "star", 18, 18, 3, PALETTE["red"])
    draw_shape(draw, "star", 2, 2, 14, PALETTE["blue"])
    perception = perceive(image, 336)
    assert [o.name for o in perception.resolved()] == ["blue star"]
    assert perception.resolved()[0].box.iou(Box(2, 2, 16, 16)) > 0.7  # the crop's pixels
    assert all(o.confidence < 0.3 for o in perception.objects if o.colour == "red")


@pytest.mark.parametrize("enlarge", [1, 2, 11])
def test_noise_is_measured_at_source_resolution(enlarge: int) -> None:
    """Interpolation smooths noise into blobs; they must not pass for objects.

    ``perceive`` analyses a crop smaller than its input size at the crop's own pixels; a
    view that reaches the model already enlarged (a search patch smaller than 512 px) is
    analysed as given, with the noise measured about the background, which interpolation
    shrinks far less than it shrinks the differences between neighbouring pixels.
    """
    scene = _scene(2, width=1200, height=900, n_tables=0, n_distractors=(20, 20))
    occupied = [o.box for o in scene.objects]
    corners = ((x, y) for x in range(0, 1160, 20) for y in range(0, 860, 20))
    box = next(
        b for b in (Box(x, y, x + 40, y + 40) for x, y in corners) if _clear_of(b, occupied, 3)
    )
    crop = _crop(scene.image, box)
    view = crop.resize((40 * enlarge,) * 2, Image.Resampling.BILINEAR)
    assert not perceive(view, 336).resolved(0.3)
    analysis, _, _ = analyze_view(view, 512)
    # The scene's sigma is 6; bilinear interpolation leaves about half of it between the
    # source pixels' centres.
    assert 2.5 <= analysis.noise_sigma <= 8.0
    assert not (analysis.shape_confidence > 0.3).any()
