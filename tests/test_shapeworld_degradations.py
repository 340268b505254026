"""The reference search model's honest degradations: a weak heatmap and a fallible detector."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from pydantic import ValidationError

from seal_agent.imaging.geometry import Box
from seal_agent.imaging.pyramid import ImagePyramid
from seal_agent.shapeworld.scene import Scene, generate_scene
from seal_agent.shapeworld.search_model import (
    Fallibility,
    ReferenceSearchModel,
    WeakHeatmap,
)

REFERENCE = ReferenceSearchModel()
WEAK = ReferenceSearchModel(weak_heatmap=WeakHeatmap())


@cache
def _star_scene(seed: int) -> Scene:
    return generate_scene(seed, width=4000, height=3000, target_size=24, target_shapes=("star",))


def _window(scene: Scene, side: int) -> Box:
    cx, cy = scene.targets[0].box.center
    box = Box(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    return box.clip(scene.spec.width, scene.spec.height).round_out()


def test_weak_heatmap_is_shape_blind_where_shapes_span_too_few_model_pixels() -> None:
    """At the root of a 4000x3000 scene every object is < 8 model px: the 'star' and the
    'square' maps must be the same objectness, while the reference's differ."""
    scene = _star_scene(0)
    root, _ = ImagePyramid(scene.image).view(Box(0, 0, 4000, 3000), 512)
    weak = WEAK.predict([root], ["star", "square"])[0]
    ref = REFERENCE.predict([root], ["star", "square"])[0]
    np.testing.assert_array_equal(weak[0].heatmap, weak[1].heatmap)
    assert not np.array_equal(ref[0].heatmap, ref[1].heatmap)
    assert weak[0].heatmap.any(), "objectness remains"
    # Boxes are the detector's, not the heatmap's: unchanged.
    assert weak[0].detections == ref[0].detections


def test_weak_heatmap_keeps_shape_evidence_once_the_shape_is_seen_at_native_detail() -> None:
    scene = _star_scene(1)
    pyramid = ImagePyramid(scene.image)
    view, frame = pyramid.view(_window(scene, 400), 512)  # 24 px star at >= 24 model px
    weak, ref = WEAK.predict([view], ["star"])[0][0], REFERENCE.predict([view], ["star"])[0][0]
    cx, cy = frame.to_view(scene.targets[0].box).center
    h, w = weak.heatmap.shape
    at = weak.heatmap[int(cy / view.height * h), int(cx / view.width * w)]
    assert at > 0.5
    assert weak.heatmap.argmax() == ref.heatmap.argmax()


def test_weak_heatmap_colour_phrases_keep_the_colour_match() -> None:
    scene = generate_scene(
        2, width=4000, height=3000, target_size=24, target_shapes=("star",), target_colours=("red",)
    )
    root, _ = ImagePyramid(scene.image).view(Box(0, 0, 4000, 3000), 512)
    red, blue = (p.heatmap for p in WEAK.predict([root], ["red star", "blue star"])[0])
    assert not np.array_equal(red, blue)


def test_fallible_answers_are_the_same_for_the_same_view_and_phrase() -> None:
    scene = _star_scene(2)
    pyramid = ImagePyramid(scene.image)
    views = [pyramid.view(Box(x, 0, x + 1000, 1500), 512)[0] for x in (0, 1000, 2000)]
    model = ReferenceSearchModel(fallible=Fallibility(false_box_rate=0.5, miss_rate=0.5))
    again = ReferenceSearchModel(fallible=Fallibility(false_box_rate=0.5, miss_rate=0.5))
    first = model.predict(views, ["star", "circle"])
    second = again.predict(list(reversed(views)), ["star", "circle"])[::-1]
    for a_row, b_row in zip(first, second, strict=True):
        for a, b in zip(a_row, b_row, strict=True):
            assert a.detections == b.detections
            np.testing.assert_array_equal(a.heatmap, b.heatmap)


def test_fallible_rates_false_boxes_on_clutter_and_misses() -> None:
    """Over many views, false boxes and misses come at about the set rates, false boxes
    are confident, lie on clutter, and show in the heatmap."""
    scene = _star_scene(3)
    pyramid = ImagePyramid(scene.image)
    cx, cy = scene.targets[0].box.center
    # Native windows around the star (the reference confirms it), shifted so each differs.
    windows = [
        Box(cx - 200 + dx, cy - 200 + dy, cx + 200 + dx, cy + 200 + dy).clip(4000, 3000)
        for dx in (-120, -40, 40, 120)
        for dy in (-120, -60, 0, 60, 120)
    ]
    views = [pyramid.view(w.round_out(), 512)[0] for w in windows]
    settings = Fallibility(false_box_rate=0.5, miss_rate=0.5, false_score=(0.6, 0.7))
    fallible = ReferenceSearchModel(fallible=settings).predict(views, ["star"])
    reference = REFERENCE.predict(views, ["star"])
    false_boxes = misses = 0
    for (fal,), (ref,) in zip(fallible, reference, strict=True):
        true_best = ref.best()
        assert true_best is not None
        assert true_best.score > 0.5
        kept_true = [d for d in fal.detections if d in ref.detections]
        extra = [d for d in fal.detections if d not in ref.detections]
        assert len(extra) <= 1
        if extra:
            false_boxes += 1
            (false,) = extra
            assert 0.6 <= false.score <= 0.7
            assert false.box.iou(true_best.box) < 0.1, "the false box is on clutter"
            assert fal.heatmap.max() >= ref.heatmap.max() - 1e-6
        if true_best not in kept_true:
            misses += 1
        else:
            assert not extra or not np.array_equal(fal.heatmap, ref.heatmap)
    n = len(views)
    assert 0.2 * n <= false_boxes <= 0.8 * n
    assert 0.2 * n <= misses <= 0.8 * n


def test_fallible_seed_changes_the_draws_and_zero_rates_change_nothing() -> None:
    scene = _star_scene(4)
    pyramid = ImagePyramid(scene.image)
    views = [
        pyramid.view(Box(x, y, x + 800, y + 600), 512)[0] for x in (0, 1600) for y in (0, 1200)
    ]
    off = ReferenceSearchModel(fallible=Fallibility(false_box_rate=0.0, miss_rate=0.0))
    pairs = zip(off.predict(views, ["star"]), REFERENCE.predict(views, ["star"]), strict=True)
    for (a,), (b,) in pairs:
        assert a.detections == b.detections
        np.testing.assert_array_equal(a.heatmap, b.heatmap)
    answers = [
        ReferenceSearchModel(fallible=Fallibility(false_box_rate=0.5, seed=seed)).predict(
            views, ["star"]
        )
        for seed in (0, 1, 2)
    ]
    signatures = {tuple(tuple(row[0].detections) for row in answer) for answer in answers}
    assert len(signatures) > 1


def test_settings_are_validated() -> None:
    with pytest.raises(ValidationError):
        Fallibility(false_box_rate=1.5)
    with pytest.raises(ValidationError):
        Fallibility(false_score=(0.8, 0.6))
    with pytest.raises(ValidationError):
        WeakHeatmap(min_shape_px=0)
    assert "weak_heatmap" in repr(WEAK)
    assert repr(REFERENCE) == "ReferenceSearchModel(input_size=512)"
