"""Grounding DINO as a V* search model (the alternative to OWLv2).

Text and image are fused early in Grounding DINO (the text goes through BERT and then
through cross-attention with the image), so unlike OWL there is no image-independent
text embedding to cache: each call runs the whole model once for the batch of views,
with all phrases joined into one caption ``"red cup. table."`` as the model was
trained. Each phrase's tokens are located in the caption (tokenizer offsets), and:

* Boxes/scores: the decoder's 900 query logits restricted to the phrase's tokens,
  post-processed by the processor's own ``post_process_grounded_object_detection``
  (score = max over the phrase's tokens of the sigmoid), then NMS and a clip to the view.
* Heatmap: the two-stage encoder's per-location phrase logits (``enc_outputs_class``).
  Grounding DINO scores *every* encoder token (each cell of each feature level) against
  the caption to pick its 900 query proposals; that dense, location-indexed score is
  the model's own answer to "where does this phrase appear", which is what V*'s target
  cue needs. Per phrase we take the max over its tokens, crop each feature level to the
  view's valid (unpadded) cells, mark cells the model itself excludes from proposals
  (padding, proposals too close to the border: non-finite ``enc_outputs_coord_logits``),
  upsample every level to the finest (stride-8) grid, and take the max over levels.
  The scale is the logit of the encoder's proposal score (``sigmoid`` gives a
  probability on the same scale as the box scores). We did not splat decoder boxes
  into a map instead: 900 query boxes concentrate on whatever the model already
  believes in, and give no graded signal in the regions it has not proposed.

Frames. The processor resizes each view keeping its aspect ratio (shorter side 800,
longer at most 1333) and pads the batch to a common size (bottom/right, with a pixel
mask). Boxes are normalised to each image's valid region, so scaling by the view's
size (``target_sizes``) maps them straight to view pixels. Views of different sizes in
one batch are padded, which changes backbone features near the padding slightly:
batched results equal one-by-one results exactly only for views of equal size.

torchvision: not needed. transformers 5 ships a PIL/numpy image processor
(``GroundingDinoImageProcessorPil``) that ``AutoProcessor`` picks when torchvision is
absent; the model's deformable attention has a pure-PyTorch path.

Thresholds (``GROUNDING_DINO_THRESHOLDS``; a profile from ``seal-agent calibrate``
replaces them, ``SearchConfig`` overrides any one). Not fitted here (no weights can be
downloaded in this repository); each says where it comes from:

* ``confidence_high = 0.35`` -- public reference: the authors' box threshold
  (``BOX_TRESHOLD = 0.35`` in the IDEA-Research/GroundingDINO README and demos), the
  score at which they accept a box. Our score (max over the phrase's tokens of the
  sigmoid) is the quantity that threshold is applied to.
* ``confidence_low = 0.25`` -- public reference, reused: the authors' text threshold
  (``TEXT_TRESHOLD = 0.25``), the token score at which they still attribute a phrase to
  a box. Using it as the fallback floor is our mapping (uncalibrated); Grounding DINO
  also grounds an absent phrase on something similar at 0.3-0.4, which only a
  calibration on labelled data can weigh.
* Cue threshold ``-2.0`` on the encoder's proposal-logit scale (sigmoid 0.12), flat --
  uncalibrated: the encoder scores every location to propose queries, no public
  threshold exists for it; flat for the same reason as OWL's (negative logits).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image

from seal_agent.errors import SearchModelError
from seal_agent.models.boxes import to_detections
from seal_agent.models.loading import load_or_raise
from seal_agent.models.search_base import TransformersSearchModel
from seal_agent.search.protocol import ModelThresholds, PatchPrediction

DEFAULT_GROUNDING_DINO_MODEL_ID = "IDEA-Research/grounding-dino-tiny"

#: Sources in the module docstring: 0.35 / 0.25 the authors' box / text thresholds
#: (public); the cue -2.0 uncalibrated.
GROUNDING_DINO_THRESHOLDS = ModelThresholds(
    confidence_high=0.35,
    confidence_low=0.25,
    cue_threshold=-2.0,
    cue_threshold_decay=1.0,
    cue_threshold_min=-2.0,
)

_MODEL_TYPES = ("grounding-dino", "mm-grounding-dino")


def build_caption(phrases: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """Grounding DINO's caption for several phrases and each phrase's character span.

    Lower-case, '.'-separated, ending with '.' (what the model was trained on); a '.'
    inside a phrase would split it in two, so it becomes a space.
    """
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    position = 0
    for phrase in phrases:
        clean = " ".join(phrase.lower().replace(".", " ").split())
        spans.append((position, position + len(clean)))
        parts.append(clean)
        position += len(clean) + 2  # ". "
    return ". ".join(parts) + ".", spans


def phrase_token_indices(
    offsets: list[tuple[int, int]], spans: list[tuple[int, int]]
) -> list[list[int]]:
    """For each phrase span, the indices of the tokens whose characters fall inside it."""
    indices: list[list[int]] = []
    for start, end in spans:
        indices.append([k for k, (a, b) in enumerate(offsets) if b > a and a >= start and b <= end])
    return indices


def effective_input_size(shortest: int | None, longest: int | None, aspect: float = 4 / 3) -> int:
    """Longer side the model sees for a view of ``aspect`` (4:3, a camera's) after the
    processor's resize (shorter side to ``shortest``, longer side capped at ``longest``)."""
    if shortest and longest:
        return min(int(longest), round(int(shortest) * aspect))
    return int(longest or (round(int(shortest) * aspect) if shortest else 1067))


class GroundingDinoSearchModel(TransformersSearchModel):
    """Grounding DINO (``IDEA-Research/grounding-dino-tiny`` by default) as a ``SearchModel``."""

    default_thresholds = GROUNDING_DINO_THRESHOLDS
    # What the processor really gives the model (shorter side 800, longer at most 1333):
    # a 4:3 view is resized to 1067x800, so 1067, not 1333, is the longer side it sees
    # (``effective_input_size``); the leaf rule would otherwise overrate views by 25 %.
    known_input_sizes = {  # noqa: RUF012
        DEFAULT_GROUNDING_DINO_MODEL_ID: 1067,
        "IDEA-Research/grounding-dino-base": 1067,
    }

    def __init__(
        self,
        model_id: str = DEFAULT_GROUNDING_DINO_MODEL_ID,
        *,
        device: str | None = None,
        dtype: str | None = None,
        thresholds: ModelThresholds | None = None,
        min_score: float = 0.05,
        max_detections: int = 16,
        nms_iou: float = 0.5,
        max_batch_size: int = 8,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
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
        self._model: Any = None
        self._processor: Any = None
        self._max_text_len = 256
        self._spatial_shapes: list[tuple[int, int]] = []

    # -- loading -------------------------------------------------------------------------
    def _load(self) -> None:
        from transformers import AutoConfig, AutoModelForZeroShotObjectDetection, AutoProcessor

        config = load_or_raise(
            "the Grounding DINO config",
            self.model_id,
            lambda: AutoConfig.from_pretrained(self.model_id),
            SearchModelError,
        )
        if config.model_type not in _MODEL_TYPES:
            raise SearchModelError(
                f"{self.model_id!r} is a {config.model_type!r} checkpoint; "
                "GroundingDinoSearchModel needs a Grounding DINO one "
                "(use OwlSearchModel for OWLv2/OWL-ViT)"
            )
        processor = load_or_raise(
            "the Grounding DINO processor",
            self.model_id,
            lambda: AutoProcessor.from_pretrained(self.model_id),
            SearchModelError,
        )
        model = load_or_raise(
            "the Grounding DINO model",
            self.model_id,
            lambda: AutoModelForZeroShotObjectDetection.from_pretrained(
                self.model_id, config=config, dtype=self.dtype, **self.model_kwargs
            ),
            SearchModelError,
        )
        self._model = model.to(self.device).eval()
        self._processor = processor
        self._max_text_len = int(config.max_text_len)
        size = processor.image_processor.size
        longest = size.get("longest_edge") if hasattr(size, "get") else None
        shortest = size.get("shortest_edge") if hasattr(size, "get") else None
        self._input_size = effective_input_size(shortest, longest)
        # The encoder's feature-level shapes are not in the model output; the heatmap needs
        # them to un-flatten the per-location logits. Captured under the forward lock.
        self._model.model.encoder.register_forward_pre_hook(self._capture_shapes, with_kwargs=True)

    def _capture_shapes(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        shapes = kwargs.get("spatial_shapes_list")
        if shapes is None:
            shapes = [tuple(int(v) for v in s) for s in kwargs["spatial_shapes"].tolist()]
        self._spatial_shapes = [(int(h), int(w)) for h, w in shapes]

    # -- prediction ----------------------------------------------------------------------
    def _phrase_tokens(self, caption: str, spans: list[tuple[int, int]]) -> list[list[int]]:
        encoding = self._processor.tokenizer(caption, return_offsets_mapping=True)
        indices = phrase_token_indices([tuple(o) for o in encoding["offset_mapping"]], spans)
        for phrase_index, tokens in enumerate(indices):
            if not tokens or max(tokens) >= self._max_text_len:
                raise SearchModelError(
                    f"phrase {phrase_index} does not fit in Grounding DINO's "
                    f"{self._max_text_len}-token caption (caption: {caption!r})"
                )
        return indices

    def _predict_chunk(
        self, views: list[Image.Image], phrases: list[str]
    ) -> list[list[PatchPrediction]]:
        caption, spans = build_caption(phrases)
        tokens = self._phrase_tokens(caption, spans)
        inputs = self._processor(images=views, text=[caption] * len(views), return_tensors="pt")
        pixel_mask = inputs["pixel_mask"]
        with self._forward_lock, torch.inference_mode():
            model_inputs = {
                k: (v.to(self.device, self.dtype) if k == "pixel_values" else v.to(self.device))
                for k, v in inputs.items()
            }
            out = self._model(**model_inputs)
            shapes = list(self._spatial_shapes)
        if out.enc_outputs_class is None:
            raise SearchModelError(
                f"{self.model_id!r} is not a two-stage Grounding DINO: it has no per-location "
                "encoder scores to build a heatmap from"
            )
        logits = out.logits.float().cpu()
        boxes = out.pred_boxes.float().cpu()
        enc_logits = out.enc_outputs_class.float().cpu()
        enc_valid = torch.isfinite(out.enc_outputs_coord_logits.float().cpu()).all(-1)
        input_ids = inputs["input_ids"]
        target_sizes = [(view.height, view.width) for view in views]

        from transformers.models.grounding_dino.modeling_grounding_dino import (
            GroundingDinoObjectDetectionOutput,
        )

        per_phrase = []
        for token_idx in tokens:
            per_phrase.append(
                self._processor.post_process_grounded_object_detection(
                    GroundingDinoObjectDetectionOutput(
                        logits=logits[..., token_idx], pred_boxes=boxes
                    ),
                    input_ids=input_ids[:, token_idx],
                    threshold=self.min_score,
                    text_threshold=0.0,
                    target_sizes=target_sizes,
                )
            )
        heatmaps = encoder_heatmaps(enc_logits, enc_valid, pixel_mask, shapes, tokens)
        results: list[list[PatchPrediction]] = []
        for i, view in enumerate(views):
            row: list[PatchPrediction] = []
            for j in range(len(phrases)):
                found = per_phrase[j][i]
                detections = to_detections(
                    found["boxes"],
                    found["scores"],
                    view.width,
                    view.height,
                    nms_iou=self.nms_iou,
                    max_detections=self.max_detections,
                )
                row.append(PatchPrediction(detections=detections, heatmap=heatmaps[i][j]))
            results.append(row)
        return results


def encoder_heatmaps(
    enc_logits: torch.Tensor,
    enc_valid: torch.Tensor,
    pixel_mask: torch.Tensor,
    shapes: list[tuple[int, int]],
    phrase_tokens: list[list[int]],
) -> list[list[np.ndarray]]:
    """[view][phrase] heatmaps on the finest level's grid, cropped to each view's valid cells.

    ``enc_logits`` is (views, locations, text tokens) over all feature levels flattened
    level by level; ``enc_valid`` marks the locations the model kept as proposals.
    """
    if sum(h * w for h, w in shapes) != enc_logits.shape[1]:
        raise SearchModelError(
            f"Grounding DINO encoder shapes {shapes} do not match its "
            f"{enc_logits.shape[1]} scored locations"
        )
    per_phrase = torch.stack(
        [enc_logits[..., idx].max(dim=-1).values for idx in phrase_tokens], dim=-1
    )  # (views, locations, phrases)
    per_phrase = per_phrase.masked_fill(~enc_valid.unsqueeze(-1), float("nan"))
    # The model's own per-level masks: nearest-neighbour downsampling of the pixel mask.
    mask = pixel_mask.float().unsqueeze(0)
    out: list[list[np.ndarray]] = []
    level_maps: list[torch.Tensor] = []
    level_extents: list[torch.Tensor] = []
    start = 0
    for h, w in shapes:
        level_maps.append(
            per_phrase[:, start : start + h * w].reshape(-1, h, w, per_phrase.shape[-1])
        )
        level_mask = F.interpolate(mask, size=(h, w))[0].bool()
        level_extents.append(
            torch.stack((level_mask[:, :, 0].sum(1), level_mask[:, 0, :].sum(1)), dim=-1)
        )
        start += h * w
    for i in range(per_phrase.shape[0]):
        fine_h, fine_w = (max(1, int(v)) for v in level_extents[0][i])
        stacked = []
        for level_map, extents in zip(level_maps, level_extents, strict=True):
            vh, vw = (max(1, int(v)) for v in extents[i])
            crop = level_map[i, :vh, :vw].permute(2, 0, 1).unsqueeze(0)  # (1, phrases, vh, vw)
            stacked.append(F.interpolate(crop, size=(fine_h, fine_w), mode="nearest")[0])
        fused = torch.stack(stacked).nan_to_num(nan=float("-inf")).amax(dim=0)
        row = []
        for j in range(fused.shape[0]):
            grid = fused[j]
            finite = torch.isfinite(grid)
            floor = float(grid[finite].min()) if finite.any() else 0.0
            row.append(
                np.ascontiguousarray(torch.where(finite, grid, floor).numpy(), dtype=np.float32)
            )
        out.append(row)
    return out
