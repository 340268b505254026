"""OwlSearchModel on tiny random OWLv2 / OWL-ViT checkpoints loaded via from_pretrained."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from models_fixtures import owlv2_dir, owlvit_dir  # noqa: F401  (fixtures)
from PIL import Image

from seal_agent.errors import InvalidImageError, InvalidQuestionError, SearchModelError
from seal_agent.models.devices import DeviceError
from seal_agent.models.owl import OWL_THRESHOLDS, OwlSearchModel, content_grid, query_text
from seal_agent.search.protocol import SearchModel

GRID = 6  # 96 px input / 16 px patches


def _image(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def owl(owlv2_dir: Path) -> OwlSearchModel:  # noqa: F811
    return OwlSearchModel(str(owlv2_dir), min_score=0.0)


def test_loads_lazily_and_implements_the_protocol(owlv2_dir: Path) -> None:  # noqa: F811
    model = OwlSearchModel(str(owlv2_dir))
    assert model._model is None  # nothing loaded by the constructor
    assert isinstance(model, SearchModel)
    assert model.input_size == 96
    assert model.thresholds == OWL_THRESHOLDS
    assert model.device.type == "cpu"
    assert next(model._model.parameters()).dtype == torch.float32


def test_default_checkpoint_sets_up_a_search_without_weights() -> None:
    """input_size of a known checkpoint is answered without loading (offline machines)."""
    from seal_agent.search.engine import VStarSearch

    model = OwlSearchModel()
    assert model.input_size == 960
    engine = VStarSearch(model)
    assert model._model is None
    # the search's batches are OWL's forward passes (4 views), not two forwards each
    assert engine.max_batch_size == model.max_batch_size == 4


def test_shapes_and_heatmap_covers_exactly_the_view(owl: OwlSearchModel) -> None:
    views = [_image(96, 96, 0), _image(96, 48, 1), _image(30, 96, 2)]
    out = owl.predict(views, ["cat", "red cup"])
    assert len(out) == 3
    assert all(len(row) == 2 for row in out)
    # Square view: the whole grid; wide view: the top half; tall view: the left strip.
    assert out[0][0].heatmap.shape == (GRID, GRID)
    assert out[1][0].heatmap.shape == (3, GRID)
    assert out[2][0].heatmap.shape == (GRID, 2)
    for view, row in zip(views, out, strict=True):
        for pred in row:
            assert pred.heatmap.dtype == np.float32
            for det in pred.detections:
                assert 0 <= det.box.x1 < det.box.x2 <= view.width
                assert 0 <= det.box.y1 < det.box.y2 <= view.height
                assert 0.0 <= det.score <= 1.0


def test_padding_is_bottom_right_where_the_heatmap_crop_assumes(owl: OwlSearchModel) -> None:
    """The processor pads a 96x48 view below: grid rows 3.. see only padding."""
    owl.ensure_loaded()
    white = Image.new("RGB", (96, 48), (255, 255, 255))
    pixels = owl._processor.image_processor(images=[white], return_tensors="pt")["pixel_values"]
    rows, cols = content_grid(96, 48, GRID, GRID, pads_to_square=True)
    assert (rows, cols) == (3, GRID)
    patch = 96 // GRID
    padding = pixels[0, :, rows * patch + 1 :, :]
    content = pixels[0, :, : rows * patch - 1, :]
    assert torch.allclose(padding, padding[:, :1, :1].expand_as(padding))
    assert not torch.allclose(content.mean(), padding.mean())


def test_fast_preprocessing_equals_the_processor(owl: OwlSearchModel) -> None:
    """Views at input size skip the scipy resize: same pixels as the processor's path."""
    from seal_agent.models.owl import padded_uint8_batch

    owl.ensure_loaded()
    views = [_image(96, 70, 12), _image(50, 96, 13), _image(96, 96, 14)]
    assert owl._fast_preprocessing_applies(views)
    assert not owl._fast_preprocessing_applies([_image(90, 60, 15)])
    fast = owl._normalize_on_device(padded_uint8_batch(views, 96))
    slow = owl._processor.image_processor(images=views, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)


def test_views_not_at_input_size_go_through_the_processor(owl: OwlSearchModel) -> None:
    small = _image(60, 40, 16)
    assert owl.predict([small], ["cat"])[0][0].heatmap.shape == (4, GRID)


def test_cached_text_path_equals_the_models_own_forward(owl: OwlSearchModel) -> None:
    """Heatmap and scores equal Owlv2ForObjectDetection.forward with text input_ids."""
    from transformers import Owlv2ForObjectDetection

    view = _image(96, 64, 3)
    phrases = ["cat", "dog"]
    out = owl.predict([view], phrases)
    reference = Owlv2ForObjectDetection.from_pretrained(owl.model_id).eval()
    texts = [query_text(p, owl.query_template) for p in phrases]
    inputs = owl._processor(text=[texts], images=[view], return_tensors="pt")
    with torch.no_grad():
        ref = reference(**inputs)
    rows, cols = content_grid(96, 64, GRID, GRID, pads_to_square=True)
    for j in range(len(phrases)):
        expected = ref.logits[0, :, j].reshape(GRID, GRID)[:rows, :cols].numpy()
        np.testing.assert_allclose(out[0][j].heatmap, expected, rtol=1e-4, atol=1e-4)
        # The best box is the processor's best box for this phrase, clipped to the view.
        post = owl._processor.image_processor.post_process_object_detection(
            type(ref)(logits=ref.logits[..., j : j + 1], pred_boxes=ref.pred_boxes),
            threshold=0.0,
            target_sizes=[(64, 96)],
        )[0]
        clipped = post["boxes"].clone()
        clipped[:, 0::2] = clipped[:, 0::2].clamp(0, 96)
        clipped[:, 1::2] = clipped[:, 1::2].clamp(0, 64)
        # Boxes under one view pixel after clipping (slivers in the padding) are dropped.
        visible = (clipped[:, 2] - clipped[:, 0] >= 1) & (clipped[:, 3] - clipped[:, 1] >= 1)
        top = int(torch.argmax(torch.where(visible, post["scores"], -1.0)))
        best = out[0][j].best()
        assert best is not None
        assert best.score == pytest.approx(float(post["scores"][top]), abs=1e-5)
        assert tuple(best.box) == pytest.approx(clipped[top].tolist(), abs=1e-3)


def test_a_known_box_maps_to_the_view_frame(owl: OwlSearchModel, monkeypatch) -> None:
    """Handcrafted head outputs: one hot patch with a box on the padded square."""
    owl.ensure_loaded()
    model = owl._model
    hot_row, hot_col = 1, 4
    # (cx, cy, w, h) normalised on the padded square of side 120 (view is 120x60).
    box = torch.tensor([0.5, 0.25, 0.2, 0.1])

    def class_predictor(features, queries, query_mask=None):
        logits = torch.full((features.shape[0], features.shape[1], queries.shape[1]), -9.0)
        logits[:, hot_row * GRID + hot_col, 0] = 2.0
        return logits, None

    def box_predictor(features, feature_map, interpolate=False):
        boxes = torch.tensor([0.9, 0.9, 0.05, 0.05]).repeat(features.shape[0], features.shape[1], 1)
        boxes[:, hot_row * GRID + hot_col] = box
        return boxes

    monkeypatch.setattr(model, "class_predictor", class_predictor)
    monkeypatch.setattr(model, "box_predictor", box_predictor)
    view = _image(120, 60, 4)
    pred = owl.predict([view], ["cat"])[0][0]
    best = pred.best()
    assert best is not None
    assert best.score == pytest.approx(float(torch.sigmoid(torch.tensor(2.0))))
    # centre (60, 30), size 24x12 in view pixels: the padded square's side is 120.
    assert tuple(best.box) == pytest.approx((48.0, 24.0, 72.0, 36.0), abs=1e-3)
    # Boxes in the padding strip (y > 60) are dropped, not clipped into the view.
    assert all(d.box.y2 <= 60 for d in pred.detections)
    assert len(pred.detections) == 1
    assert pred.heatmap.shape == (3, GRID)
    assert np.unravel_index(pred.heatmap.argmax(), pred.heatmap.shape) == (hot_row, hot_col)


def test_batching_equals_one_by_one(owl: OwlSearchModel) -> None:
    views = [_image(96, 96, 5), _image(80, 40, 6), _image(40, 90, 7)]
    phrases = ["cat", "table"]
    batched = owl.predict(views, phrases)
    for view, row in zip(views, batched, strict=True):
        single = owl.predict([view], phrases)[0]
        for a, b in zip(row, single, strict=True):
            np.testing.assert_allclose(a.heatmap, b.heatmap, rtol=1e-4, atol=1e-5)
            assert len(a.detections) == len(b.detections)
            for da, db in zip(a.detections, b.detections, strict=True):
                assert da.score == pytest.approx(db.score, abs=1e-5)
                # 0.01 px: the one-by-one square view takes the fast pre-processing path
                # (same pixels up to float rounding), the mixed batch the processor's.
                assert tuple(da.box) == pytest.approx(tuple(db.box), abs=1e-2)


def test_max_batch_size_splits_into_several_forwards(owlv2_dir: Path) -> None:  # noqa: F811
    small = OwlSearchModel(str(owlv2_dir), max_batch_size=2, min_score=0.0)
    whole = OwlSearchModel(str(owlv2_dir), min_score=0.0)
    views = [_image(64, 64, s) for s in range(5)]
    for a, b in zip(small.predict(views, ["cat"]), whole.predict(views, ["cat"]), strict=True):
        np.testing.assert_allclose(a[0].heatmap, b[0].heatmap, rtol=1e-4, atol=1e-5)


def test_text_tower_runs_once_per_new_phrase(owlv2_dir: Path, monkeypatch) -> None:  # noqa: F811
    model = OwlSearchModel(str(owlv2_dir))
    model.ensure_loaded()
    base = model._model.base_model
    calls: list[int] = []
    original = base.get_text_features

    def counting(*args, **kwargs):
        calls.append(int(kwargs["input_ids"].shape[0]))
        return original(*args, **kwargs)

    monkeypatch.setattr(base, "get_text_features", counting)
    view = _image(64, 64, 8)
    model.predict([view], ["cat", "dog"])
    model.predict([view, view], ["dog", "cat"])
    assert calls == [2]
    model.predict([view], ["cat", "bird"])
    assert calls == [2, 1]


def test_text_cache_is_bounded(owlv2_dir: Path) -> None:  # noqa: F811
    model = OwlSearchModel(str(owlv2_dir), text_cache_size=2)
    view = _image(64, 64, 9)
    for phrase in ["cat", "dog", "bird", "fish"]:
        model.predict([view], [phrase])
    assert list(model._text_cache) == ["bird", "fish"]


def test_bfloat16_on_cpu_runs_and_returns_float32_heatmaps(owlv2_dir: Path) -> None:  # noqa: F811
    model = OwlSearchModel(str(owlv2_dir), dtype="bf16")
    out = model.predict([_image(64, 48, 10)], ["cat"])
    assert next(model._model.parameters()).dtype == torch.bfloat16
    assert out[0][0].heatmap.dtype == np.float32
    assert np.isfinite(out[0][0].heatmap).all()


def test_unavailable_device_and_unknown_dtype_fail_clearly(owlv2_dir: Path) -> None:  # noqa: F811
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            OwlSearchModel(str(owlv2_dir), device="cuda")
    with pytest.raises(DeviceError, match="unknown dtype"):
        OwlSearchModel(str(owlv2_dir), dtype="int8")


def test_concurrent_callers_get_the_sequential_answers(owl: OwlSearchModel) -> None:
    views = [_image(64, 64 - 8 * k, 20 + k) for k in range(4)]
    expected = [owl.predict([v], ["cat", f"thing {k}"]) for k, v in enumerate(views)]
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            for _ in range(3):
                results[k] = owl.predict([views[k]], ["cat", f"thing {k}"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k in range(4):
        for a, b in zip(results[k][0], expected[k][0], strict=True):
            np.testing.assert_allclose(a.heatmap, b.heatmap, rtol=1e-4, atol=1e-5)


def test_owlvit_squashes_so_the_heatmap_is_the_whole_grid(owlvit_dir: Path) -> None:  # noqa: F811
    model = OwlSearchModel(str(owlvit_dir), min_score=0.0)
    assert model.input_size == 64
    pred = model.predict([_image(100, 40, 11)], ["cat"])[0][0]
    assert pred.heatmap.shape == (4, 4)
    for det in pred.detections:
        assert 0 <= det.box.x1 < det.box.x2 <= 100
        assert 0 <= det.box.y1 < det.box.y2 <= 40


def test_bad_inputs_are_named(owl: OwlSearchModel) -> None:
    with pytest.raises(InvalidImageError, match="view 0"):
        owl.predict([np.zeros((4, 4, 3))], ["cat"])  # type: ignore[list-item]
    with pytest.raises(InvalidQuestionError, match="phrase 1"):
        owl.predict([_image(32, 32, 0)], ["cat", "  "])
    assert owl.predict([], ["cat"]) == []
    assert owl.predict([_image(32, 32, 0)], []) == [[]]
    grey = _image(40, 40, 1).convert("L")
    assert owl.predict([grey], ["cat"])[0][0].heatmap.shape == (GRID, GRID)


def test_missing_or_wrong_checkpoints_raise_search_model_error(tmp_path: Path) -> None:
    with pytest.raises(SearchModelError, match="could not load the OWL config"):
        OwlSearchModel(str(tmp_path / "nowhere")).predict([_image(8, 8, 0)], ["cat"])
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(SearchModelError, match="needs an OWLv2 or OWL-ViT"):
        OwlSearchModel(str(tmp_path / "bert")).ensure_loaded()


def test_query_text_template() -> None:
    assert query_text("the red cup", "a photo of a {}") == "a photo of a red cup"
    assert query_text("cup", None) == "cup"
    assert query_text("an", "a photo of a {}") == "a photo of a an"
