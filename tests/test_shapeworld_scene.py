"""The shape-world generator follows shape-world.md: seeded, constrained, V*Bench questions."""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pytest
from PIL import Image, ImageDraw

from seal_agent.imaging.geometry import Box
from seal_agent.shapeworld.perception import _inside
from seal_agent.shapeworld.scene import (
    COLOURS,
    PALETTE,
    SHAPES,
    TABLE_COLOUR,
    Scene,
    SceneSpec,
    SceneSpecError,
    draw_shape,
    generate_scene,
)


def _digest(image: Image.Image) -> str:
    return hashlib.sha256(image.tobytes()).hexdigest()


def _min_gap(boxes: list[Box]) -> float:
    """Smallest gap (px) between any two boxes (negative when they overlap)."""
    arr = np.array([tuple(b) for b in boxes], dtype=np.float64)
    gx = np.maximum(arr[:, None, 0] - arr[None, :, 2], arr[None, :, 0] - arr[:, None, 2])
    gy = np.maximum(arr[:, None, 1] - arr[None, :, 3], arr[None, :, 1] - arr[:, None, 3])
    gap = np.maximum(gx, gy)
    np.fill_diagonal(gap, np.inf)
    return float(gap.min())


def _check_scene(scene: Scene) -> None:
    spec = scene.spec
    w, h = scene.image.size
    assert (w, h) == (spec.width, spec.height)
    assert scene.image.mode == "RGB"
    assert len(scene.targets) == spec.n_targets
    # Every target's shape occurs exactly once, so "the star" is unambiguous.
    for target in scene.targets:
        assert sum(o.shape == target.shape for o in scene.objects) == 1
        assert spec.target_size[0] <= target.side <= spec.target_size[1]
    for obj in scene.objects:
        assert obj.box.width == obj.box.height
        assert Box(0, 0, w, h).contains(obj.box)
        if obj not in scene.targets:
            assert spec.distractor_size[0] <= obj.side <= spec.distractor_size[1]
    if len(scene.objects) > 1:
        assert _min_gap([o.box for o in scene.objects]) >= spec.min_gap
    # Tables: at most 4, not overlapping, each side 8-30 % of the image side.
    assert len(scene.tables) <= 4
    if len(scene.tables) > 1:
        assert _min_gap(list(scene.tables)) > 0
    for table in scene.tables:
        assert 0.08 * w - 1 <= table.width <= 0.30 * w + 1
        assert 0.08 * h - 1 <= table.height <= 0.30 * h + 1
    for target in scene.targets:
        assert target.on_table == any(t.contains(target.box) for t in scene.tables)
    # The question and the options, correct first.
    annotation = scene.annotation()
    assert annotation["target_object"] == [t.shape for t in scene.targets]
    assert annotation["bbox"] == [[*map(int, t.box.to_xywh())] for t in scene.targets]
    if spec.kind == "direct_attributes":
        (target,) = scene.targets
        assert scene.question == f"What is the color of the {target.shape}?"
        assert len(scene.options) == 4 == len(set(scene.options))
        assert scene.options[0] == target.colour
        assert set(scene.options) <= set(COLOURS)
    else:
        first, second = scene.targets
        dx = first.box.center[0] - second.box.center[0]
        assert abs(dx) >= spec.min_horizontal_separation * w
        side = "left" if dx < 0 else "right"
        assert scene.options[0] == f"The {first.shape} is on the {side} side of the {second.shape}."
        assert len(scene.options) == 2
        assert first.shape in scene.question
        assert second.shape in scene.question


def _centre_pixel(scene: Scene, box: Box, shape: str) -> tuple[int, ...]:
    # The triangle's box centre is inside it; every other shape is filled at its centre.
    cx, cy = box.center
    return scene.image.getpixel((int(cx), int(cy) + (2 if shape == "triangle" else 0)))


def test_same_seed_same_scene_and_different_seed_differs() -> None:
    a = generate_scene(7, width=700, height=520)
    b = generate_scene(7, width=700, height=520)
    c = generate_scene(8, width=700, height=520)
    assert _digest(a.image) == _digest(b.image)
    assert a.objects == b.objects
    assert a.tables == b.tables
    assert a.options == b.options
    assert _digest(a.image) != _digest(c.image)
    assert a.objects != c.objects


@pytest.mark.parametrize(
    ("width", "height"), [(512, 512), (1200, 900), (2246, 1582), (9000, 600), (600, 9000)]
)
@pytest.mark.parametrize("kind", ["direct_attributes", "relative_position"])
def test_constraints_hold_across_seeds_and_sizes(width: int, height: int, kind: str) -> None:
    for seed in range(3):
        scene = generate_scene(seed, width=width, height=height, kind=kind)
        _check_scene(scene)


def test_pixels_match_the_annotations() -> None:
    scene = generate_scene(11, width=1500, height=1000, n_tables=2, n_distractors=100)
    for obj in scene.objects:
        assert _centre_pixel(scene, obj.box, obj.shape) == PALETTE[obj.colour]
    assert scene.tables
    for table in scene.tables:
        checked = 0
        for fx, fy in itertools.product(np.linspace(0.05, 0.95, 7), repeat=2):
            x = int(table.x1 + fx * table.width)
            y = int(table.y1 + fy * table.height)
            if any(o.box.contains(Box(x, y, x + 1, y + 1)) for o in scene.objects):
                continue
            assert scene.image.getpixel((x, y)) == TABLE_COLOUR
            checked += 1
        assert checked > 10


def test_targets_lie_on_tables_about_seventy_percent_of_the_time() -> None:
    on, total = 0, 0
    for seed in range(160):
        scene = generate_scene(seed, width=512, height=512, n_tables=(1, 4), n_distractors=(20, 40))
        if scene.tables:
            total += 1
            on += scene.targets[0].on_table
    assert total >= 150
    assert 0.6 <= on / total <= 0.8


def test_forced_target_shapes_and_colours() -> None:
    scene = generate_scene(
        3,
        width=800,
        height=600,
        kind="relative_position",
        target_shapes=("star", "cross"),
        target_colours=("red", "blue"),
    )
    assert [(t.shape, t.colour) for t in scene.targets] == [("star", "red"), ("cross", "blue")]
    _check_scene(scene)


def test_a_12000_by_9000_scene_is_generated_within_the_constraints() -> None:
    scene = generate_scene(1, width=12000, height=9000, n_distractors=400)
    _check_scene(scene)
    assert len(scene.objects) > 300


@pytest.mark.parametrize("shape", SHAPES)
def test_drawn_shapes_match_the_page_geometry(shape: str) -> None:
    s = 48
    image = Image.new("L", (s + 8, s + 8))
    draw_shape(ImageDraw.Draw(image), shape, 4, 4, s, 255)  # type: ignore[arg-type]
    drawn = np.asarray(image)[4 : 4 + s, 4 : 4 + s] > 0
    centres = (np.arange(s) + 0.5) / s
    ideal = _inside(shape, centres[None, :], centres[:, None])  # type: ignore[arg-type]
    iou = (drawn & ideal).sum() / (drawn | ideal).sum()
    # PIL fills the pixels its edges touch, so thin star points come out a little fat.
    assert iou > 0.85, f"{shape}: IoU {iou:.3f} with the ideal shape"
    # Nothing is drawn outside the object's box.
    assert (np.asarray(image) > 0).sum() == drawn.sum()


def test_every_shape_colour_pair_can_be_a_target() -> None:
    seen = set()
    for seed, (shape, colour) in enumerate(itertools.product(SHAPES, COLOURS)):
        scene = generate_scene(
            seed,
            width=512,
            height=512,
            n_distractors=20,
            target_shapes=(shape,),
            target_colours=(colour,),
        )
        seen.add((scene.targets[0].shape, scene.targets[0].colour))
    assert len(seen) == len(SHAPES) * len(COLOURS)


@pytest.mark.parametrize(
    "overrides",
    [
        {"width": 100},
        {"width": 12001},
        {"width": 12000, "height": 512},  # 1:23
        {"target_size": (40, 12)},
        {"kind": "relative_position", "target_shapes": ("star", "star")},
        {"target_shapes": ("star", "cross")},
        {"n_tables": 5},
        {"kind": "counting"},
    ],
)
def test_bad_specifications_raise_a_clear_error(overrides: dict[str, object]) -> None:
    with pytest.raises(SceneSpecError, match="invalid scene specification"):
        generate_scene(0, **overrides)


def test_seed_must_be_an_int() -> None:
    with pytest.raises(SceneSpecError, match="seed"):
        generate_scene("1")  # type: ignore[arg-type]


def test_spec_object_and_overrides_combine() -> None:
    spec = SceneSpec(width=640, height=512, n_distractors=(30, 30), n_tables=0)
    scene = generate_scene(5, spec, kind="relative_position")
    assert scene.spec.width == 640
    assert scene.spec.kind == "relative_position"
    assert len(scene.objects) == 32
    assert scene.tables == ()
