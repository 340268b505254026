"""Shared view encodings (issue 12 items 2-3): fewer encoder passes, identical results."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from models_fixtures import owlv2_dir  # noqa: F401  (fixture)
from PIL import Image

from seal_agent.imaging.pyramid import ImagePyramid
from seal_agent.search import PatchPrediction, SearchConfig, VStarSearch
from seal_agent.search.protocol import (
    Detection,
    accepts_scales,
    declared_max_batch_size,
    declared_max_upsample,
    declared_score_range,
)
from seal_agent.search.view_cache import (
    EncodingSearchModel,
    ViewCachingSearchModel,
    view_digest,
)
from seal_agent.shapeworld.scene import generate_scene
from seal_agent.shapeworld.search_model import ReferenceSearchModel


class CountingReference(ReferenceSearchModel):
    """The shape-world reference model, counting its encoder and head work."""

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__()
        self.encoded: Counter[str] = Counter()
        self.heads: Counter[str] = Counter()
        self.delay_s = delay_s
        self._count_lock = threading.Lock()

    def encode_views(self, views):
        with self._count_lock:
            self.encoded.update(view_digest(v) for v in views)
        time.sleep(self.delay_s)
        return super().encode_views(views)

    def predict_encoded(self, encodings, phrases):
        with self._count_lock:
            self.heads.update(phrases)
        return super().predict_encoded(encodings, phrases)


class PlainReference:
    """The reference model through ``predict`` only (no split API); its phrases are
    independent of each other, and it says so."""

    independent_phrases = True

    def __init__(self) -> None:
        self.inner = ReferenceSearchModel()
        self.calls: list[tuple[int, tuple[str, ...]]] = []
        self.input_size = self.inner.input_size
        self.thresholds = self.inner.thresholds

    def predict(self, views, phrases):
        self.calls.append((len(views), tuple(phrases)))
        return self.inner.predict(views, phrases)


@pytest.fixture(scope="module")
def scene():
    return generate_scene(
        3, width=4000, height=3000, target_size=(16, 24), kind="relative_position", n_tables=(1, 2)
    )


def _same(a, b) -> None:
    assert a.model_dump(exclude={"elapsed_s"}) == b.model_dump(exclude={"elapsed_s"})


def _views(image: Image.Image, count: int) -> list[Image.Image]:
    pyramid = ImagePyramid(image)
    w, h = pyramid.width, pyramid.height
    from seal_agent.imaging.geometry import Box

    boxes = [Box(0, 0, w, h), Box(0, 0, w / 2, h / 2), Box(w / 2, h / 2, w, h)][:count]
    return [pyramid.view(b, 512)[0] for b in boxes]


def _equal_predictions(a: list[list[PatchPrediction]], b: list[list[PatchPrediction]]) -> None:
    assert len(a) == len(b)
    for row_a, row_b in zip(a, b, strict=True):
        for pa, pb in zip(row_a, row_b, strict=True):
            assert pa.detections == pb.detections
            np.testing.assert_array_equal(pa.heatmap, pb.heatmap)


def test_the_reference_model_has_the_split_api_and_it_equals_predict(scene):
    model = ReferenceSearchModel()
    assert isinstance(model, EncodingSearchModel)
    views = _views(scene.image, 3)
    phrases = ["red star", "table"]
    _equal_predictions(
        model.predict_encoded(model.encode_views(views), phrases), model.predict(views, phrases)
    )
    assert model.encode_views(views[:1])[0].nbytes > 0


@pytest.mark.parametrize("strategy", ["vstar", "seal"])
def test_searches_through_the_cache_equal_uncached_ones_and_share_views(scene, strategy):
    config = SearchConfig(strategy=strategy)
    pyramid = ImagePyramid(scene.image)
    targets = [f"{t.colour} {t.shape}" for t in scene.targets]
    uncached = [
        VStarSearch(ReferenceSearchModel(), config).search(
            pyramid, t, context_cue=lambda _: "table"
        )
        for t in targets
    ]
    model = CountingReference()
    cache = ViewCachingSearchModel(model)
    cached = [
        VStarSearch(cache, config).search(pyramid, t, context_cue=lambda _: "table")
        for t in targets
    ]
    for a, b in zip(uncached, cached, strict=True):
        _same(a, b)
    patches = sum(r.patches_scored for r in uncached)
    assert cache.stats.views_encoded == len(model.encoded)  # no view encoded twice
    assert max(model.encoded.values()) == 1
    assert cache.stats.views_encoded < patches  # the root at least is shared
    # A follow-up over the same targets encodes nothing and gives the same results.
    before = cache.stats.views_encoded
    again = [
        VStarSearch(cache, config).search(pyramid, t, context_cue=lambda _: "table")
        for t in targets
    ]
    assert cache.stats.views_encoded == before
    for a, b in zip(uncached, again, strict=True):
        _same(a, b)


def test_a_model_without_the_split_api_is_cached_per_view_and_phrase(scene):
    plain = PlainReference()
    cache = ViewCachingSearchModel(plain)
    assert not cache.split
    views = _views(scene.image, 2)
    first = cache.predict(views, ["red star"])
    second = cache.predict(views, ["red star", "table"])  # only "table" is new
    assert plain.calls == [(2, ("red star",)), (2, ("table",))]
    _equal_predictions(first, [row[:1] for row in second])
    _equal_predictions(second, plain.inner.predict(views, ["red star", "table"]))
    cache.predict(views[:1], ["table", "red star"])
    assert len(plain.calls) == 2


class EarlyFusion(PlainReference):
    """A predict-only model that reads its phrases together, as Grounding DINO reads one
    caption: each phrase's scores depend on how many phrases were asked with it."""

    independent_phrases = False

    def predict(self, views, phrases):
        self.calls.append((len(views), tuple(phrases)))
        damp = np.float32(1.0 - 0.1 * (len(phrases) - 1))
        return [
            [
                PatchPrediction(
                    detections=tuple(
                        Detection(box=d.box, score=float(d.score * damp)) for d in p.detections
                    ),
                    heatmap=p.heatmap * damp,
                )
                for p in row
            ]
            for row in self.inner.predict(views, phrases)
        ]


def test_a_model_that_reads_phrases_together_is_cached_per_phrase_list(scene):
    model = EarlyFusion()
    cache = ViewCachingSearchModel(model)
    assert not cache.independent
    views = _views(scene.image, 2)
    cache.predict(views, ["red star"])
    both = cache.predict(views, ["red star", "table"])  # "red star" alone is not reused
    assert model.calls == [(2, ("red star",)), (2, ("red star", "table"))]
    _equal_predictions(both, EarlyFusion().predict(views, ["red star", "table"]))
    _equal_predictions(cache.predict(views[1:], ["red star", "table"]), [both[1]])
    cache.predict(views[:1], ["table", "red star"])  # another list: scored as asked
    assert model.calls[2:] == [(1, ("table", "red star"))]


def test_searches_of_several_targets_through_an_early_fusion_model_equal_uncached_ones():
    """Two targets' searches share views and the context phrase: a phrase scored beside
    one target must not be served to the other's search (it differs from the phrase
    scored beside that target)."""
    scene = generate_scene(7, width=12000, height=9000, kind="relative_position")
    pyramid = ImagePyramid(scene.image)
    targets = list(dict.fromkeys(t.shape for t in scene.targets))
    assert len(targets) == 2
    uncached = [
        VStarSearch(EarlyFusion()).search(pyramid, t, context_cue=lambda _: "table")
        for t in targets
    ]
    model = EarlyFusion()
    cache = ViewCachingSearchModel(model)
    cached = [VStarSearch(cache).search(pyramid, t, context_cue=lambda _: "table") for t in targets]
    for a, b in zip(uncached, cached, strict=True):
        _same(a, b)
    # Each search scores its own target beside the context from the root on
    # (context_first), so an early-fusion model has no phrase list in common between the
    # two searches: nothing may be shared, and nothing is scored more than uncached.
    assert len(model.calls) <= sum(r.forward_passes for r in uncached)


def test_concurrent_requests_for_a_view_encode_it_once(scene):
    model = CountingReference(delay_s=0.2)
    cache = ViewCachingSearchModel(model)
    views = _views(scene.image, 1)
    phrases = [["red star"], ["blue circle"], ["table"], ["red star", "table"]]
    results: list = [None] * len(phrases)

    def ask(i: int) -> None:
        results[i] = cache.predict(views, phrases[i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(phrases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(model.encoded.values()) == 1
    assert cache.stats.coalesced >= 1
    reference = ReferenceSearchModel().predict(views, ["red star", "blue circle", "table"])
    _equal_predictions(results[0], [[reference[0][0]]])
    _equal_predictions(results[3], [[reference[0][0], reference[0][2]]])


def test_the_cache_stays_within_its_budget(scene):
    model = CountingReference()
    one = ReferenceSearchModel().encode_views(_views(scene.image, 1))[0].nbytes
    cache = ViewCachingSearchModel(model, max_bytes=int(one * 1.5))
    views = _views(scene.image, 3)
    for view in views:
        cache.predict([view], ["red star"])
    assert cache.cached_bytes <= cache.max_bytes
    assert len(cache) == 1
    assert cache.stats.evictions == 2
    cache.predict(views[:1], ["red star"])  # evicted: encoded again
    assert model.encoded[view_digest(views[0])] == 2
    bounded = ViewCachingSearchModel(model, max_entries=2)
    for view in views:
        bounded.predict([view], ["red star"])
    assert len(bounded) == 2


def test_a_model_fault_is_raised_to_every_waiter_and_not_cached(scene):
    class Flaky(CountingReference):
        fail = True

        def encode_views(self, views):
            if self.fail:
                raise RuntimeError("out of memory")
            return super().encode_views(views)

    model = Flaky()
    cache = ViewCachingSearchModel(model)
    views = _views(scene.image, 1)
    with pytest.raises(RuntimeError, match="out of memory"):
        cache.predict(views, ["red star"])
    model.fail = False
    _equal_predictions(cache.predict(views, ["red star"]), model.predict(views, ["red star"]))
    result = VStarSearch(ViewCachingSearchModel(Flaky())).search(
        ImagePyramid(scene.image), "red star"
    )
    assert result.stop_reason == "model_error"


def test_cached_heatmaps_are_read_only(scene):
    cache = ViewCachingSearchModel(ReferenceSearchModel())
    prediction = cache.predict(_views(scene.image, 1), ["red star"])[0][0]
    with pytest.raises(ValueError, match="read-only"):
        prediction.heatmap[0, 0] = 1.0


class OneBuffer(PlainReference):
    """Writes every heatmap into one buffer of its own and returns it (per-thread
    scratch, as the protocol suggests), overwriting it on the next call."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer: np.ndarray | None = None

    def predict(self, views, phrases):
        out = []
        for row in super().predict(views, phrases):
            hm = row[0].heatmap
            if self.buffer is None or self.buffer.shape != hm.shape:
                self.buffer = np.empty_like(hm)
            self.buffer[...] = hm
            out.append([PatchPrediction(row[0].detections, self.buffer)])
        return out


def test_a_model_that_reuses_its_heatmap_buffer_keeps_working_and_its_answers_cached(scene):
    model, plain = OneBuffer(), PlainReference()
    cache = ViewCachingSearchModel(model)
    root, quarter = _views(scene.image, 2)
    quarter = quarter.resize(root.size)  # the same shape: the model reuses its buffer
    first = cache.predict([root], ["table"])
    second = cache.predict([quarter], ["table"])  # the model writes into its buffer again
    _equal_predictions(first, plain.predict([root], ["table"]))
    _equal_predictions(second, plain.predict([quarter], ["table"]))
    _equal_predictions(cache.predict([root], ["table"]), first)  # from the cache


def test_a_declared_score_range_holds_through_the_cache(scene):
    class Logits(PlainReference):
        score_range = (-10.0, 10.0)

        def predict(self, views, phrases):
            return [
                [
                    PatchPrediction(
                        tuple(Detection(d.box, d.score * 10 - 5) for d in p.detections), p.heatmap
                    )
                    for p in row
                ]
                for row in super().predict(views, phrases)
            ]

    target = scene.targets[0]
    config = SearchConfig(confidence_high=0.5, confidence_low=0.3, max_calls=40)
    result = VStarSearch(ViewCachingSearchModel(Logits()), config).search(
        ImagePyramid(scene.image), target.shape
    )
    assert result.stop_reason != "model_error", result.message


def test_owl_split_api_equals_predict_and_the_cache_runs_only_heads(owlv2_dir: Path):  # noqa: F811
    from seal_agent.models.owl import OwlSearchModel

    owl = OwlSearchModel(str(owlv2_dir), min_score=0.0)
    assert isinstance(owl, EncodingSearchModel)
    rng = np.random.default_rng(0)
    views = [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        for w, h in ((96, 72), (60, 96))
    ]
    phrases = ["red cup", "table"]
    direct = owl.predict(views, phrases)
    encodings = owl.encode_views(views)
    assert encodings[0].feature_map.shape[:2] == (6, 6)
    assert encodings[0].nbytes > 0
    split = owl.predict_encoded(encodings, phrases)
    for row_a, row_b in zip(direct, split, strict=True):
        for a, b in zip(row_a, row_b, strict=True):
            np.testing.assert_allclose(a.heatmap, b.heatmap, rtol=1e-5, atol=1e-5)
            assert len(a.detections) == len(b.detections)
    calls = Counter()
    original = owl._model.image_embedder

    def counted(*args, **kwargs):
        calls["image"] += 1
        return original(*args, **kwargs)

    owl._model.image_embedder = counted
    try:
        cache = ViewCachingSearchModel(owl)
        first = cache.predict(views, ["red cup"])
        second = cache.predict(views, ["table", "red cup"])
    finally:
        owl._model.image_embedder = original
    assert calls["image"] == 1  # both views in one tower pass, then heads only
    for i in range(2):
        np.testing.assert_allclose(first[i][0].heatmap, direct[i][0].heatmap, atol=1e-5)
        np.testing.assert_allclose(second[i][0].heatmap, direct[i][1].heatmap, atol=1e-5)


@pytest.mark.slow
def test_a_graph_shares_views_across_targets_and_follow_up_questions(scene, tmp_path: Path):
    from seal_agent.graph import SealConfig, build_graph
    from seal_agent.shapeworld.vqa_model import ReferenceVQAChatModel

    path = tmp_path / "scene.png"
    scene.image.save(path)
    config = SealConfig(cache_dir=tmp_path / "cache")
    questions = [scene.question, f"What is the color of the {scene.targets[0].shape}?"]
    model = CountingReference()
    cached = build_graph(ReferenceVQAChatModel(), model, config)
    plain = build_graph(ReferenceVQAChatModel(), ReferenceSearchModel(), config, view_cache_bytes=0)
    passes = []
    for question in questions:
        before = sum(model.encoded.values())
        out = cached.invoke({"image": str(path), "question": question})
        passes.append(sum(model.encoded.values()) - before)
        reference = plain.invoke({"image": str(path), "question": question})
        assert out["answer"] == reference["answer"]
        for target, outcome in reference["searches"].items():
            mine = out["searches"][target]
            assert {**mine, "elapsed_s": 0} == {**outcome, "elapsed_s": 0}
    patches = sum(o["patches_scored"] for o in out["searches"].values())
    assert out["searches"]
    assert patches >= 1
    assert passes[0] >= 1
    assert passes[1] <= 0.3 * passes[0]


class Declaring(CountingReference):
    """A model with the optional protocol parts: scales, upsampling, score range."""

    max_upsample = 1.5
    score_range = (-10.0, 10.0)
    framing_invariant = True
    max_batch_size = 3

    def __init__(self) -> None:
        super().__init__()
        self.scales: list[list[float]] = []

    def predict(self, views, phrases, *, scales=None):  # type: ignore[override]
        self.scales.append(list(scales) if scales is not None else [])
        return super().predict(views, phrases)


def test_the_wrapped_models_declarations_show_through_the_cache():
    cache = ViewCachingSearchModel(Declaring())
    assert declared_max_upsample(cache) == 1.5
    assert declared_score_range(cache) == (-10.0, 10.0)
    assert cache.framing_invariant is True
    assert declared_max_batch_size(cache) == 3
    assert accepts_scales(cache)
    plain = ViewCachingSearchModel(CountingReference())
    assert declared_max_upsample(plain) == 1.0
    assert declared_max_batch_size(plain) is None
    assert plain.framing_invariant is ReferenceSearchModel().framing_invariant


def test_scales_reach_a_model_that_takes_them_and_key_its_entries(scene):
    model = Declaring()
    cache = ViewCachingSearchModel(model)
    views = _views(scene.image, 1)
    cache.predict(views, ["red star"], scales=[4.0])
    cache.predict(views, ["red star"], scales=[4.0])  # same view, same scale: cached
    cache.predict(views, ["red star"], scales=[2.0])  # same pixels, other scale: scored
    assert model.scales == [[4.0], [2.0]]
    plain = CountingReference()
    ViewCachingSearchModel(plain).predict(views, ["red star"], scales=[4.0])  # ignored
    assert sum(plain.encoded.values()) == 1
