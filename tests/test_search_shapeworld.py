"""End to end on real shape-world scenes: vstar finds small targets the root view cannot see."""

from __future__ import annotations

import pytest

from seal_agent.imaging.pyramid import ImagePyramid
from seal_agent.search.config import SearchConfig
from seal_agent.search.engine import VStarSearch

shapeworld = pytest.importorskip("seal_agent.shapeworld")
ReferenceSearchModel = getattr(shapeworld, "ReferenceSearchModel", None)
if ReferenceSearchModel is None:  # pragma: no cover - while shape world is being written
    pytest.skip("seal_agent.shapeworld has no ReferenceSearchModel yet", allow_module_level=True)
generate_scene = shapeworld.generate_scene


@pytest.fixture(scope="module")
def model():
    return ReferenceSearchModel(input_size=512)


def run_search(model, scene, strategy: str = "vstar"):
    target = scene.targets[0]
    context = "table" if scene.tables else None
    config = SearchConfig(strategy=strategy, max_calls=600, deadline_s=None)
    result = VStarSearch(model, config).search(
        ImagePyramid(scene.image), target.shape, context_cue=lambda _: context
    )
    return target, result


def search_scene(model, seed: int, strategy: str = "vstar", **spec: object):
    scene = generate_scene(seed, n_tables=(1, 4), **spec)
    target, result = run_search(model, scene, strategy)
    return scene, target, result


def assert_found(target, result) -> None:
    assert result.found, result.message
    assert result.box is not None
    assert result.box.iou(target.box) > 0.5, (result.box, target.box)


@pytest.mark.parametrize("seed", [1, 2])
def test_vstar_finds_a_24px_target_in_4000x3000_that_the_root_view_misses(model, seed) -> None:
    _scene, target, result = search_scene(model, seed, width=4000, height=3000, target_size=24)
    assert_found(target, result)
    root = result.trace[0]
    assert root.best_score is None or root.best_score <= model.thresholds.confidence_high
    assert result.patches_scored > 1


@pytest.mark.parametrize(
    ("width", "height"),
    [(9000, 600), (600, 9000), (10240, 512), (2246, 1582), (7680, 4320)],
)
def test_vstar_finds_targets_in_panoramas_8k_frames_and_vstarbench_sized_images(
    model, width: int, height: int
) -> None:
    _, target, result = search_scene(model, 7, width=width, height=height, target_size=(12, 40))
    assert_found(target, result)


@pytest.mark.slow
def test_vstar_finds_a_small_target_in_a_12000x9000_scan(model) -> None:
    scene = generate_scene(3, n_tables=(1, 4), width=12000, height=9000, target_size=20)
    target, result = run_search(model, scene)
    assert_found(target, result)
    # The reference's leaf rule stops at 3000x2250 patches, where 20 px is 3 model px.
    _, seal = run_search(model, scene, "seal")
    assert not (seal.found and seal.box is not None and seal.box.iou(target.box) > 0.5)


def test_a_declared_forward_size_caps_the_search_batches_and_changes_no_answer(model) -> None:
    """max_batch_size stands in for a GPU model's forward (OWLv2: 4): the sliding window
    then scores 4 tiles a pass and finds the same box; a bad value is refused."""
    gpu_like = ReferenceSearchModel(input_size=512, max_batch_size=4)
    assert gpu_like.max_batch_size == 4
    assert model.max_batch_size is None
    scene = generate_scene(3, n_tables=(1, 4), width=2246, height=1582)
    _, wide = run_search(model, scene, "sliding-window")
    _, narrow = run_search(gpu_like, scene, "sliding-window")
    assert narrow.box == wide.box
    assert narrow.forward_passes > wide.forward_passes
    assert narrow.forward_passes >= -(-narrow.patches_scored // 4)
    with pytest.raises(ValueError, match="max_batch_size"):
        ReferenceSearchModel(input_size=512, max_batch_size=0)
