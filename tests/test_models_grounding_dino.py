"""GroundingDinoSearchModel on a tiny random Grounding DINO loaded via from_pretrained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from models_fixtures import grounding_dino_dir  # noqa: F401  (fixture)
from PIL import Image

from seal_agent.errors import SearchModelError
from seal_agent.models.grounding_dino import (
    GROUNDING_DINO_THRESHOLDS,
    GroundingDinoSearchModel,
    build_caption,
    phrase_token_indices,
)
from seal_agent.search.protocol import SearchModel


def _image(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def gdino(grounding_dino_dir: Path) -> GroundingDinoSearchModel:  # noqa: F811
    return GroundingDinoSearchModel(str(grounding_dino_dir), min_score=0.0)


def test_caption_and_phrase_tokens() -> None:
    caption, spans = build_caption(["Red cup", "table.top"])
    assert caption == "red cup. table top."
    assert [caption[a:b] for a, b in spans] == ["red cup", "table top"]
    offsets = [(0, 0), (0, 3), (4, 7), (7, 8), (9, 14), (15, 18), (18, 19), (0, 0)]
    assert phrase_token_indices(offsets, spans) == [[1, 2], [4, 5]]


def test_default_checkpoint_answers_input_size_without_weights() -> None:
    model = GroundingDinoSearchModel()
    assert model.input_size == 1067  # 800 x 4/3: what a 4:3 view becomes, not the 1333 cap
    assert model._model is None


def test_loads_and_implements_the_protocol(gdino: GroundingDinoSearchModel) -> None:
    assert isinstance(gdino, SearchModel)
    # the tiny processor (shortest 64, longest 96) makes a 4:3 view 85x64
    assert gdino.input_size == 85
    assert gdino.thresholds == GROUNDING_DINO_THRESHOLDS
    processed = gdino._processor.image_processor(
        images=[Image.new("RGB", (400, 300))], return_tensors="pt"
    )
    assert processed["pixel_values"].shape[-1] == gdino.input_size


def test_shapes_geometry_and_heatmap_grid(gdino: GroundingDinoSearchModel) -> None:
    views = [_image(96, 48, 0), _image(40, 80, 1)]
    out = gdino.predict(views, ["cat", "red table"])
    assert len(out) == 2
    assert all(len(row) == 2 for row in out)
    shapes = gdino._spatial_shapes
    finest_h, finest_w = shapes[0]
    for view, row in zip(views, out, strict=True):
        for pred in row:
            hm = pred.heatmap
            assert hm.ndim == 2
            assert np.isfinite(hm).all()
            # The heatmap is cropped to the view's unpadded cells, so its aspect follows
            # the view's (within one cell), not the padded batch's.
            assert hm.shape[0] <= finest_h
            assert hm.shape[1] <= finest_w
            assert hm.shape[1] / hm.shape[0] == pytest.approx(view.width / view.height, rel=0.35)
            for det in pred.detections:
                assert 0 <= det.box.x1 < det.box.x2 <= view.width
                assert 0 <= det.box.y1 < det.box.y2 <= view.height
    # The wide view is not padded horizontally: its heatmap spans the full finest width.
    assert out[0][0].heatmap.shape[1] == finest_w


def test_detections_match_the_processors_post_processing(
    gdino: GroundingDinoSearchModel,
) -> None:
    """Per-phrase boxes: the processor's own output for the phrase's tokens, in view pixels."""
    view = _image(96, 64, 2)
    phrases = ["cat", "dog"]
    out = gdino.predict([view], phrases)
    caption, spans = build_caption(phrases)
    inputs = gdino._processor(images=[view], text=[caption], return_tensors="pt")
    with torch.no_grad():
        ref = gdino._model(**inputs)
    tokens = gdino._phrase_tokens(caption, spans)
    for j, idx in enumerate(tokens):
        scores = torch.sigmoid(ref.logits[0][:, idx]).max(-1).values
        best = out[0][j].best()
        assert best is not None
        assert best.score == pytest.approx(float(scores.max()), abs=1e-5)
        cx, cy, w, h = ref.pred_boxes[0, int(scores.argmax())].tolist()
        expected = (
            max(0.0, (cx - w / 2) * 96),
            max(0.0, (cy - h / 2) * 64),
            min(96.0, (cx + w / 2) * 96),
            min(64.0, (cy + h / 2) * 64),
        )
        assert tuple(best.box) == pytest.approx(expected, abs=1e-3)


def test_heatmap_is_the_encoder_phrase_logit(gdino: GroundingDinoSearchModel) -> None:
    """A single view is not padded: the heatmap max is the max valid encoder logit."""
    view = _image(96, 64, 3)
    out = gdino.predict([view], ["cat"])
    caption, spans = build_caption(["cat"])
    inputs = gdino._processor(images=[view], text=[caption], return_tensors="pt")
    with torch.no_grad():
        ref = gdino._model(**inputs)
    idx = gdino._phrase_tokens(caption, spans)[0]
    valid = torch.isfinite(ref.enc_outputs_coord_logits[0]).all(-1)
    expected = ref.enc_outputs_class[0][:, idx].max(-1).values[valid].max()
    assert out[0][0].cue_strength == pytest.approx(float(expected), abs=1e-4)


def test_batching_equals_one_by_one_for_equal_sizes(gdino: GroundingDinoSearchModel) -> None:
    views = [_image(80, 60, 4), _image(80, 60, 5)]
    batched = gdino.predict(views, ["cat", "dog"])
    for view, row in zip(views, batched, strict=True):
        single = gdino.predict([view], ["cat", "dog"])[0]
        for a, b in zip(row, single, strict=True):
            np.testing.assert_allclose(a.heatmap, b.heatmap, rtol=1e-4, atol=1e-4)
            assert [d.score for d in a.detections] == pytest.approx(
                [d.score for d in b.detections], abs=1e-4
            )


def test_wrong_checkpoint_is_named(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "owlv2"}')
    with pytest.raises(SearchModelError, match="needs a Grounding DINO"):
        GroundingDinoSearchModel(str(tmp_path)).ensure_loaded()
