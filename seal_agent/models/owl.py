"""OWLv2 / OWL-ViT as a V* search model: boxes, confidences and a heatmap from one pass.

How one ``predict(views, phrases)`` call runs:

* Text: each phrase is embedded once by the text tower and cached (an LRU keyed by
  phrase), so a search that asks for "red cup" on 200 patches runs the text tower
  once. The cached embeddings are fed to the detection heads directly
  (``image_embedder`` -> ``class_predictor`` / ``box_predictor``), which is exactly
  what ``Owlv2ForObjectDetection.forward`` does minus the text tower.
* Images: all views of the batch go through the vision tower in one forward pass.
* Boxes and scores are post-processed with the processor's own
  ``post_process_object_detection`` (sigmoid of the class logit, boxes scaled to the
  target size), called once per phrase so each phrase gets its own boxes.
* Heatmap: the per-patch class logit of the phrase on the model's patch grid (60x60
  for OWLv2-B/16 at 960 px), on the raw logit scale (``sigmoid(logit)`` is the score
  a box anchored at that patch would get).

Frames. OWLv2's processor pads a view to a square (bottom and right) before resizing
it to 960x960, so its normalised boxes and its patch grid describe the padded square.
The processor's box scaling already multiplies by the longer side (boxes come out in
view pixels); we clip them to the view, and crop the heatmap to the rows/columns that
show the view (``round(side / longer_side * grid)`` cells, at most half a cell of
error, i.e. 1/120 of the view at 60x60), so the heatmap covers exactly the view.
OWL-ViT (v1) squashes instead of padding, so its grid covers the view as it is.

Thresholds (``OWL_THRESHOLDS``; a profile from ``seal-agent calibrate`` replaces them,
``SearchConfig`` overrides any one). OWLv2's scores are low by design (sigmoid focal
loss, many pseudo-labels), and none of these numbers has been fitted in this repository
(no weights can be downloaded here); each says where it comes from:

* ``confidence_low = 0.1`` -- public reference: the score at which OWL users accept a
  box. The OWLv2 model cards (``google/owlv2-*``) post-process with ``threshold=0.1``
  and the transformers docs' OWL examples keep boxes at 0.1; the OWL-ViT locators of
  VisProg and ViperGPT use 0.1 as well (as cited in issue 8). A best-effort box below
  it counts as "not found".
* ``confidence_high = 0.2`` -- uncalibrated. The stop threshold must sit above the
  acceptance score, but not far: OWLv2 gives large, clear objects 0.5-0.7 and most
  correct boxes less, small targets the least, and a stop threshold the target never
  reaches runs every search to exhaustion (85 patches on a 4000x3000 image at 960 px)
  before the fallback accepts the same box (issue 8 saw this with the former 0.3).
* Cue threshold ``logit(0.1) = -2.197``, flat (decay 1.0, min equal) -- derived from the
  public 0.1 above, not measured: the target heatmap alone steers once one of its
  patches scores what OWL users accept as a detection; below that the search mixes it
  with the context cue (``vstar``) or uses the context (``seal``). The former -3.5
  (sigmoid 0.03) trusted a heatmap no user would read as a detection. The reference's
  decaying schedule relaxes a *positive* threshold with depth; on negative logits the
  same formula would tighten it, so the schedule is flat.

Calibrate on your own labelled images (``seal-agent calibrate --data DIR --search-model
google/owlv2-base-patch16-ensemble``) to replace all three with measured values.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from seal_agent.errors import InvalidImageError, InvalidQuestionError, SearchModelError
from seal_agent.models.boxes import to_detections
from seal_agent.models.defaults import DEFAULT_SEARCH_MODEL_ID
from seal_agent.models.devices import keeps_in_host_memory
from seal_agent.models.loading import load_or_raise
from seal_agent.models.search_base import (
    TransformersSearchModel,
    check_phrases,
    check_views,
)
from seal_agent.search.protocol import ModelThresholds, PatchPrediction, validate_predictions

DEFAULT_OWL_MODEL_ID = DEFAULT_SEARCH_MODEL_ID

#: Sources in the module docstring: 0.1 public (OWL model cards, transformers docs,
#: VisProg, ViperGPT); 0.2 uncalibrated; the cue logit(0.1) derived from the public 0.1.
OWL_THRESHOLDS = ModelThresholds(
    confidence_high=0.2,
    confidence_low=0.1,
    cue_threshold=-2.197,
    cue_threshold_decay=1.0,
    cue_threshold_min=-2.197,
)

_ARTICLES = ("a ", "an ", "the ")


def query_text(phrase: str, template: str | None) -> str:
    """The text query for a phrase: ``template`` with the phrase's own article dropped."""
    if template is None:
        return phrase
    lowered = phrase.lower()
    for article in _ARTICLES:
        if lowered.startswith(article) and len(phrase) > len(article):
            phrase = phrase[len(article) :]
            break
    return template.format(phrase)


def padded_uint8_batch(views: list[Image.Image], side: int) -> torch.Tensor:
    """Views pasted at the top-left of black ``side``-square canvases, as uint8 (B, S, S, 3)."""
    batch = np.zeros((len(views), side, side, 3), dtype=np.uint8)
    for i, view in enumerate(views):
        batch[i, : view.height, : view.width] = np.asarray(view, dtype=np.uint8)
    return torch.from_numpy(batch)


def content_grid(
    view_width: int, view_height: int, grid_h: int, grid_w: int, pads_to_square: bool
) -> tuple[int, int]:
    """(rows, cols) of the model's patch grid that show the view (the rest is padding)."""
    if not pads_to_square:
        return grid_h, grid_w
    longer = max(view_width, view_height)
    rows = max(1, min(grid_h, round(view_height / longer * grid_h)))
    cols = max(1, min(grid_w, round(view_width / longer * grid_w)))
    return rows, cols


@dataclass(frozen=True, slots=True)
class OwlViewEncoding:
    """One view through OWL's image tower: what any phrase's heads need, nothing more.

    ``feature_map`` (grid_h, grid_w, dim) is in the model's dtype (5.5 MB for OWLv2-B/16
    in bf16); ``encode_views`` puts it in host memory (a view cache may keep hundreds;
    the GPU holds the models and the pass in flight; on an H100 the round trip adds ~2 ms
    a view, gpu_latency.py's "cached path"), while a plain ``predict`` leaves it on the
    device. ``boxes`` (grid_h * grid_w, 4), float32 on the CPU, are the box head's
    output, which does not depend on the phrase.
    """

    feature_map: torch.Tensor
    boxes: torch.Tensor
    width: int
    height: int

    @property
    def nbytes(self) -> int:
        return sum(t.element_size() * t.nelement() for t in (self.feature_map, self.boxes))


class OwlSearchModel(TransformersSearchModel):
    """OWLv2 (default) or OWL-ViT checkpoint as a thread-safe, batched ``SearchModel``.

    Weights are loaded on first use, so constructing one is free. ``device``/``dtype``
    default to CUDA + bf16 (fp16 on cards without bf16) and to CPU + fp32.
    """

    default_thresholds = OWL_THRESHOLDS
    # The processor's square side: 960 for OWLv2-B/16 (a 60x60 grid), 768 for OWL-ViT-B.
    known_input_sizes = {  # noqa: RUF012
        DEFAULT_SEARCH_MODEL_ID: 960,
        "google/owlv2-base-patch16": 960,
        "google/owlv2-base-patch16-finetuned": 960,
        "google/owlvit-base-patch32": 768,
        "google/owlvit-base-patch16": 768,
    }

    def __init__(
        self,
        model_id: str = DEFAULT_OWL_MODEL_ID,
        *,
        device: str | None = None,
        dtype: str | None = None,
        thresholds: ModelThresholds | None = None,
        query_template: str | None = "a photo of a {}",
        text_cache_size: int = 1024,
        min_score: float = 0.01,
        max_detections: int = 16,
        nms_iou: float = 0.5,
        max_batch_size: int = 4,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        # max_batch_size: views per forward of the image tower. A 960 px view's
        # activations are ~80 MB in bf16; 4 views a forward reach 91 % of batch 16's
        # throughput on an H100 (153 against 168 views/s, benchmarks/gpu_latency.py) at a
        # quarter of the activation memory next to a 7B VQA model.
        super().__init__(
            model_id,
            device=device,
            dtype=dtype,
            thresholds=thresholds,
            min_score=min_score,
            max_detections=max_detections,
            nms_iou=nms_iou,
            max_batch_size=max_batch_size,
            model_kwargs=model_kwargs,
        )
        if query_template is not None and "{}" not in query_template:
            raise ValueError(f"query_template must contain '{{}}', got {query_template!r}")
        if text_cache_size < 1:
            raise ValueError(f"text_cache_size must be >= 1, got {text_cache_size}")
        self.query_template = query_template
        self.text_cache_size = text_cache_size
        self._text_cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._model: Any = None
        self._processor: Any = None
        self._pads_to_square = True
        self._max_text_len = 16
        self._native_image_size = 0

    # -- loading -------------------------------------------------------------------------
    def _load(self) -> None:
        from transformers import (
            AutoConfig,
            Owlv2ForObjectDetection,
            Owlv2Processor,
            OwlViTForObjectDetection,
            OwlViTProcessor,
        )

        config = load_or_raise(
            "the OWL config",
            self.model_id,
            lambda: AutoConfig.from_pretrained(self.model_id),
            SearchModelError,
        )
        model_cls: Any
        processor_cls: Any
        if config.model_type == "owlv2":
            model_cls, processor_cls, self._pads_to_square = (
                Owlv2ForObjectDetection,
                Owlv2Processor,
                True,
            )
        elif config.model_type == "owlvit":
            model_cls, processor_cls, self._pads_to_square = (
                OwlViTForObjectDetection,
                OwlViTProcessor,
                False,
            )
        else:
            raise SearchModelError(
                f"{self.model_id!r} is a {config.model_type!r} checkpoint; OwlSearchModel "
                "needs an OWLv2 or OWL-ViT one (use GroundingDinoSearchModel for Grounding DINO)"
            )
        processor = load_or_raise(
            "the OWL processor",
            self.model_id,
            lambda: processor_cls.from_pretrained(self.model_id),
            SearchModelError,
        )
        model: Any = load_or_raise(
            "the OWL model",
            self.model_id,
            lambda: model_cls.from_pretrained(
                self.model_id, config=config, dtype=self.dtype, **self.model_kwargs
            ),
            SearchModelError,
        )
        self._model = model.to(self.device).eval()
        self._processor = processor
        size = processor.image_processor.size
        height = size["height"] if "height" in size else size.get("shortest_edge")
        self._input_size = int(height or config.vision_config.image_size)
        self._native_image_size = int(config.vision_config.image_size)
        self._max_text_len = int(config.text_config.max_position_embeddings)

    # -- text ----------------------------------------------------------------------------
    def _query_embeddings(self, phrases: list[str]) -> torch.Tensor:
        """(len(phrases), dim) text embeddings; the text tower runs only for new phrases.

        Called with the forward lock held (the cache and the model are shared).
        """
        missing = list(dict.fromkeys(p for p in phrases if p not in self._text_cache))
        if missing:
            texts = [query_text(p, self.query_template) for p in missing]
            tokens = self._processor.tokenizer(
                texts,
                padding="max_length",
                truncation=True,
                max_length=self._max_text_len,
                return_tensors="pt",
            )
            features = self._model.base_model.get_text_features(
                input_ids=tokens["input_ids"].to(self.device),
                attention_mask=tokens["attention_mask"].to(self.device),
            )
            if not isinstance(features, torch.Tensor):
                features = features.pooler_output
            for phrase, embedding in zip(missing, features, strict=True):
                self._text_cache[phrase] = embedding
        for phrase in phrases:
            self._text_cache.move_to_end(phrase)
        stacked = torch.stack([self._text_cache[p] for p in phrases])
        while len(self._text_cache) > self.text_cache_size:
            self._text_cache.popitem(last=False)
        return stacked

    # -- prediction ----------------------------------------------------------------------
    def _predict_chunk(
        self, views: list[Image.Image], phrases: list[str]
    ) -> list[list[PatchPrediction]]:
        # Nothing keeps these encodings: the feature maps stay on the device for the heads.
        return self._heads_chunk(self._encode_chunk(views, to_host=False), phrases)

    # -- split API (search/view_cache.py): image tower once, phrase heads per phrase -----
    def encode_views(self, views: Sequence[Image.Image]) -> list[OwlViewEncoding]:
        """The image tower's output per view (and its phrase-independent boxes).

        ``predict_encoded(encode_views(v), p)`` is ``predict(v, p)``: ``predict`` runs
        exactly these two steps. A view cache keeps the encodings, so a new phrase on a
        view already seen costs only the class head.
        """
        checked = check_views(views)
        self.ensure_loaded()
        out: list[OwlViewEncoding] = []
        for start in range(0, len(checked), self.max_batch_size):
            chunk = checked[start : start + self.max_batch_size]
            out.extend(
                self._guarded(len(chunk), lambda c=chunk: self._encode_chunk(c, to_host=True))
            )
        return out

    def predict_encoded(
        self, encodings: Sequence[OwlViewEncoding], phrases: Sequence[str]
    ) -> list[list[PatchPrediction]]:
        checked_phrases = check_phrases(phrases)
        if not all(isinstance(e, OwlViewEncoding) for e in encodings):
            raise SearchModelError("predict_encoded needs encodings made by encode_views")
        if not encodings:
            return []
        if not checked_phrases:
            return [[] for _ in encodings]
        self.ensure_loaded()
        out: list[list[PatchPrediction]] = []
        for start in range(0, len(encodings), self.max_batch_size):
            chunk = list(encodings[start : start + self.max_batch_size])
            out.extend(
                self._guarded(len(chunk), lambda c=chunk: self._heads_chunk(c, checked_phrases))
            )
        return validate_predictions(out, encodings, checked_phrases)  # type: ignore[arg-type]

    def _guarded(self, count: int, run: Any) -> Any:
        try:
            return run()
        except (SearchModelError, InvalidImageError, InvalidQuestionError):
            raise
        except (RuntimeError, ValueError) as exc:  # CUDA OOM, dtype/shape errors
            raise SearchModelError(
                f"{type(self).__name__} ({self.model_id}) failed on a batch of {count} views: {exc}"
            ) from exc

    def _encode_chunk(self, views: list[Image.Image], *, to_host: bool) -> list[OwlViewEncoding]:
        """``to_host``: the encodings go to a cache, so their feature maps leave the GPU
        (``keeps_in_host_memory``); a plain ``predict`` skips that round trip."""
        fast = self._fast_preprocessing_applies(views)
        if fast:
            pixel_values = padded_uint8_batch(views, self._input_size)
        else:
            pixel_values = self._processor.image_processor(images=views, return_tensors="pt")[
                "pixel_values"
            ]
        interpolate = pixel_values.shape[-1] != self._native_image_size
        with self._forward_lock, torch.inference_mode():
            if fast:
                pixel_values = self._normalize_on_device(pixel_values)
            pixel_values = pixel_values.to(self.device, self.dtype)
            feature_map = self._model.image_embedder(
                pixel_values=pixel_values, interpolate_pos_encoding=interpolate
            )[0]
            batch, grid_h, grid_w, dim = feature_map.shape
            features = feature_map.reshape(batch, grid_h * grid_w, dim)
            boxes = self._model.box_predictor(features, feature_map, interpolate)
        boxes = boxes.float().cpu()
        offload = to_host and keeps_in_host_memory(None, feature_map.device)
        # One tensor per view (a slice would keep the whole batch's storage alive); a
        # view's copy to the host is already its own tensor.
        return [
            OwlViewEncoding(
                feature_map[i].cpu() if offload else feature_map[i].clone(),
                boxes[i].clone(),
                view.width,
                view.height,
            )
            for i, view in enumerate(views)
        ]

    def _heads_chunk(
        self, encodings: list[OwlViewEncoding], phrases: list[str]
    ) -> list[list[PatchPrediction]]:
        grid_h, grid_w, dim = encodings[0].feature_map.shape
        if any(e.feature_map.shape != encodings[0].feature_map.shape for e in encodings):
            raise SearchModelError("encodings of different grid sizes cannot share a pass")
        with self._forward_lock, torch.inference_mode():
            queries = self._query_embeddings(phrases)
            # Each view to the device, then stacked there (no batch-sized host copy).
            feature_map = torch.stack([e.feature_map.to(self.device) for e in encodings])
            batch = feature_map.shape[0]
            features = feature_map.reshape(batch, grid_h * grid_w, dim)
            logits = self._model.class_predictor(
                features, queries.unsqueeze(0).expand(batch, -1, -1)
            )[0]
        logits = logits.float().cpu()
        boxes = torch.stack([e.boxes for e in encodings])
        sizes = [(e.width, e.height) for e in encodings]
        return self._postprocess(sizes, phrases, logits, boxes, grid_h, grid_w)

    # -- pre-processing ------------------------------------------------------------------
    def _fast_preprocessing_applies(self, views: list[Image.Image]) -> bool:
        """True when the processor's resize would be the identity (OWLv2, view at size).

        The search shows the model views whose longer side is ``input_size``; OWLv2's
        processor then pads to an ``input_size`` square and its scipy resize (Gaussian
        anti-aliasing with sigma 0, zoom factor 1) returns the padded image unchanged.
        Doing the pad on uint8 and the rescale/normalise on the device gives the same
        numbers at a fraction of the cost (the scipy path takes ~0.1 s a view on a CPU
        core, longer than the GPU forward of a whole batch).
        """
        ip = self._processor.image_processor
        return (
            self._pads_to_square
            and getattr(ip, "do_pad", False)
            and getattr(ip, "do_resize", True)
            and getattr(ip, "do_rescale", False)
            and getattr(ip, "do_normalize", False)
            and all(max(v.width, v.height) == self._input_size for v in views)
        )

    def _normalize_on_device(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 (B, S, S, 3) -> normalised float32 (B, 3, S, S), as the processor does."""
        ip = self._processor.image_processor
        mean = torch.tensor(ip.image_mean, dtype=torch.float32, device=self.device)
        std = torch.tensor(ip.image_std, dtype=torch.float32, device=self.device)
        pixels = batch.to(self.device).permute(0, 3, 1, 2).to(torch.float32)
        pixels = pixels * float(ip.rescale_factor)
        return (pixels - mean[:, None, None]) / std[:, None, None]

    def _postprocess(
        self,
        sizes: list[tuple[int, int]],
        phrases: list[str],
        logits: torch.Tensor,
        boxes: torch.Tensor,
        grid_h: int,
        grid_w: int,
    ) -> list[list[PatchPrediction]]:
        """Per phrase: the processor's post-processing, then our clip/NMS; heatmap crop."""
        output_type = _detection_output_type(self._pads_to_square)
        target_sizes = [(height, width) for width, height in sizes]
        per_phrase = []
        for j in range(len(phrases)):
            per_phrase.append(
                self._processor.image_processor.post_process_object_detection(
                    output_type(logits=logits[..., j : j + 1], pred_boxes=boxes),
                    threshold=self.min_score,
                    target_sizes=target_sizes,
                )
            )
        results: list[list[PatchPrediction]] = []
        for i, (width, height) in enumerate(sizes):
            rows, cols = content_grid(width, height, grid_h, grid_w, self._pads_to_square)
            grid = logits[i].reshape(grid_h, grid_w, len(phrases))[:rows, :cols]
            row: list[PatchPrediction] = []
            for j in range(len(phrases)):
                found = per_phrase[j][i]
                detections = to_detections(
                    found["boxes"],
                    found["scores"],
                    width,
                    height,
                    nms_iou=self.nms_iou,
                    max_detections=self.max_detections,
                )
                heatmap = np.ascontiguousarray(grid[..., j].numpy(), dtype=np.float32)
                row.append(PatchPrediction(detections=detections, heatmap=heatmap))
            results.append(row)
        return results


def _detection_output_type(owlv2: bool) -> Any:
    """``Owlv2ObjectDetectionOutput`` or ``OwlViTObjectDetectionOutput`` for the processor."""
    if owlv2:
        from transformers.models.owlv2.modeling_owlv2 import Owlv2ObjectDetectionOutput

        return Owlv2ObjectDetectionOutput
    from transformers.models.owlvit.modeling_owlvit import OwlViTObjectDetectionOutput

    return OwlViTObjectDetectionOutput
