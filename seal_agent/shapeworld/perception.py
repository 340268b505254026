"""Resolution-honest pixel perception of shape-world views.

A model here may look only at pixels, and only after the view has been resized so that
its longer side is the model's ``input_size`` (area averaging): a 24 px star in a
4000x3000 scene becomes a 3-pixel smudge at 512 px, and the perception must not
recognise it there, yet must still say "this smudge is more star-like than that one"
(the heatmap a real detector's patch scores give), and must recognise the star plainly
once the search zooms in.

How it works, per view, in model pixels. An image smaller than ``input_size`` (a crop
the VQA model is shown enlarged) is analysed at its own pixels, boxes scaled to the
image: enlarging adds no detail, only smooths the noise into object-like blobs.

1. Local background: tables first, brown regions found by colour, filled (objects on a
   table are holes in it): they are the local background of what lies on them. Then a
   smooth field from block medians of pixels that are neither palette- nor
   table-coloured (nor on a table), interpolated bilinearly, or the view's frame where an
   object fills the view; the noise is measured about it (robustly, at the analysed
   resolution).
2. Coverage: each pixel that differs from its local background beyond the noise is
   unmixed against each palette colour (``pixel = background + a * (colour -
   background)``); area averaging makes a sub-pixel object a partial mixture, so ``a`` is
   the fraction of the model pixel the object covers. Luma weighs more than chroma in
   the fit, as JPEG keeps luma sharp and blurs chroma.
3. Blobs: connected components of covered pixels; per blob the ink (sum of coverage, an
   area), the centroid, the colour (the colour holding most ink).
4. Shape: analysis by synthesis. For each shape hypothesis the shape of that ink and
   centroid is rendered with exact area averaging (a bank of supersampled templates) and
   compared with the observed coverage; the squared errors become a posterior over the
   five shapes. Tiny blobs look alike under every hypothesis (posterior near uniform);
   resolved blobs match one template only.
5. Confidence = posterior x acuity(size in model px) x fit: the acuity term is the
   encoder's resolving power (shapes of a few model pixels cannot be named, whatever the
   pixels say), calibrated on generated scenes (see ``benchmarks/`` and the tests); the
   fit falls with ink that the best template leaves unexplained beyond a hard-edged
   outline's pixel staircase, and with a spread no compact shape of that ink has (two
   smudges merged into one blob, a table edge blurred into a line).
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, NamedTuple

import numpy as np
from PIL import Image, ImageChops
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage

from seal_agent.errors import InvalidImageError
from seal_agent.imaging.geometry import Box
from seal_agent.shapeworld.scene import (
    COLOURS,
    PALETTE,
    SHAPES,
    STAR_INNER_RATIO,
    TABLE_COLOUR,
    Colour,
    Shape,
)


# -- configuration -----------------------------------------------------------------------
class PerceptionConfig(BaseModel):
    """The perception's few physical constants; defaults calibrated on generated scenes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # 8 model px: a ViT detector does not name an object much under half a patch (OWLv2's
    # patches are 16 px at 960, CLIP-L/14's 14 px at 336), and the stand-in must be no more
    # acute than the networks it stands in for (at 5 px it named shapes no encoder would).
    acuity_px: float = Field(
        8.0, gt=0, description="object side (model px) at which a shape is half-resolvable"
    )
    acuity_power: float = Field(4.0, gt=0, description="steepness of the acuity curve")
    evidence_acuity_px: float = Field(
        3.0, gt=0, description="blob side (model px) at which shape evidence counts half"
    )
    template_error: float = Field(
        0.12, gt=0, description="per-pixel coverage error the shape posterior allows for"
    )
    noise_sigmas: float = Field(4.0, gt=0, description="a pixel differs beyond this x noise")
    min_ink: float = Field(0.3, ge=0, description="blobs with less coverage (px²) are noise")
    heatmap_stride: int = Field(4, ge=1, description="model px per heatmap cell")
    heatmap_sigma_px: float = Field(6.0, gt=0, description="heatmap blur, model px")
    misfit_scale: float = Field(
        0.1, gt=0, description="share of a blob's ink left unexplained that halves evidence"
    )
    staircase_error: float = Field(
        0.2,
        ge=0,
        description="ink (px²) per px of outline that a hard-edged rendering may misplace",
    )
    evidence_power: float = Field(
        2.0, gt=0, description="sharpens shape evidence so one good match outweighs clutter"
    )
    max_detections: int = Field(20, ge=1)
    min_detection_score: float = Field(0.02, ge=0, le=1)


DEFAULT_CONFIG = PerceptionConfig()

# -- phrases -------------------------------------------------------------------------------
_SHAPE_WORDS: dict[str, Shape] = {
    "circle": "circle",
    "disc": "circle",
    "disk": "circle",
    "dot": "circle",
    "square": "square",
    "triangle": "triangle",
    "star": "star",
    "pentagram": "star",
    "cross": "cross",
    "plus": "cross",
}
_TABLE_WORDS = frozenset({"table", "desk"})
_COLOUR_WORDS: dict[str, Colour] = {c: c for c in COLOURS} | {"violet": "purple"}


class Phrase(NamedTuple):
    """What a phrase asks for: an object (shape and/or colour), a table, or nothing known."""

    kind: Literal["object", "table", "unknown"]
    shape: Shape | None = None
    colour: Colour | None = None


def _singular(word: str) -> str:
    if word.endswith(("sses", "xes")):  # crosses, boxes
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def parse_phrase(text: str) -> Phrase:
    """'the Red Stars' -> object(star, red); 'desk' -> table; 'giraffe' -> unknown.

    Unknown words (articles, 'small', 'object') are ignored; a phrase with neither a
    shape, a palette colour nor a table word is unknown (no detections, flat heatmap).
    """
    shape: Shape | None = None
    colour: Colour | None = None
    table = False
    for raw in re.findall(r"[a-z]+", str(text).lower()):
        word = _singular(raw)
        if shape is None and (raw in _SHAPE_WORDS or word in _SHAPE_WORDS):
            shape = _SHAPE_WORDS.get(raw) or _SHAPE_WORDS[word]
        elif colour is None and raw in _COLOUR_WORDS:
            colour = _COLOUR_WORDS[raw]
        elif raw in _TABLE_WORDS or word in _TABLE_WORDS:
            table = True
    if shape is not None or colour is not None:
        return Phrase("object", shape, colour)
    if table:
        return Phrase("table")
    return Phrase("unknown")


# -- shape templates -----------------------------------------------------------------------
_WINDOW = 20  # model px: side of the window a small blob is compared in
_DIRECT_EXTENT = 14  # blobs up to this extent are fitted directly, larger ones downsampled
_TRUNCATED_TEMPER = 0.15  # weight of the shape evidence of a blob cut by the view's edge
_SOLID = 0.9  # coverage of a pixel fully inside a shape (up to noise)
# Share of a blob's ink in solid pixels from which on (to which) its outline is taken
# for a hard pixel staircase: ~1 at the source resolution, well under 0.75 once shrunk.
_STAIRCASE_FROM, _STAIRCASE_FULL = 0.75, 0.95
_SPREAD_SLACK = 0.5  # px²: a pixel's own extent and a shrunk view's blur
_SPREAD_TOLERANCE = 1.5  # spread over that of a compact shape of the same ink
_SUPERSAMPLE = 8
_OFFSETS = 4  # sub-pixel centroid positions per axis: -0.5, -0.25, 0, 0.25
_SIZE_MIN, _SIZE_MAX, _SIZE_RATIO = 1.2, 16.0, 1.06
_SIZES = _SIZE_MIN * _SIZE_RATIO ** np.arange(
    int(math.log(_SIZE_MAX / _SIZE_MIN) / math.log(_SIZE_RATIO)) + 1
)
_PALETTE_RGB = np.array([PALETTE[c] for c in COLOURS], dtype=np.float32)
_TABLE_RGB = np.array(TABLE_COLOUR, dtype=np.float32)
_TABLE_INDEX = len(COLOURS)  # colour index used for "brown" in the unmixing
_REFERENCE_RGB = np.vstack([_PALETTE_RGB, _TABLE_RGB[None]])


def _vertices(shape: Shape) -> list[tuple[float, float]]:
    """Polygon of a triangle or star in its unit box [0, 1]²."""
    if shape == "triangle":
        return [(0.0, 1.0), (1.0, 1.0), (0.5, 0.0)]
    inner = STAR_INNER_RATIO * 0.5
    return [
        (
            0.5 + (0.5 if k % 2 == 0 else inner) * math.cos(-math.pi / 2 + k * math.pi / 5),
            0.5 + (0.5 if k % 2 == 0 else inner) * math.sin(-math.pi / 2 + k * math.pi / 5),
        )
        for k in range(10)
    ]


def _outline_length(shape: Shape) -> float:
    """Perimeter of the ideal shape in units of its box side."""
    if shape == "circle":
        return math.pi
    if shape in ("square", "cross"):
        return 4.0  # a plus sign of bars 1/3 thick: twelve edges of 1/3
    vertices = _vertices(shape)
    return sum(math.dist(a, b) for a, b in zip(vertices, vertices[1:] + vertices[:1], strict=True))


def _inside(shape: Shape, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Point membership of the ideal shape in its unit box [0, 1]²."""
    if shape == "square":
        return (x >= 0) & (x < 1) & (y >= 0) & (y < 1)
    if shape == "circle":
        return (x - 0.5) ** 2 + (y - 0.5) ** 2 <= 0.25
    if shape == "cross":
        in_box = (x >= 0) & (x < 1) & (y >= 0) & (y < 1)
        return in_box & ((np.abs(x - 0.5) <= 1 / 6) | (np.abs(y - 0.5) <= 1 / 6))
    vertices = _vertices(shape)
    inside = np.zeros(np.broadcast(x, y).shape, dtype=bool)
    for (x1, y1), (x2, y2) in zip(vertices, vertices[1:] + vertices[:1], strict=True):
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (x < x_at)
    return inside


@dataclass(frozen=True)
class _TemplateBank:
    """Area-averaged renderings of each shape at each size and sub-pixel centroid offset.

    ``templates[k, i, oy, ox]`` is a ``_WINDOW`` x ``_WINDOW`` coverage map of shape k at
    side ``_SIZES[i]`` whose centroid lies at window coordinate
    ``_WINDOW / 2 + (o - 2) / 4`` (o = 0..3) on each axis.
    """

    templates: np.ndarray  # (5, n_sizes, 4, 4, W*W) float32
    energy: np.ndarray  # (5, n_sizes, 4, 4) sum of squares
    hard: np.ndarray  # (5, n_sizes, 4, 4, W*W) bool: the template as hard-edged pixels
    area_fraction: np.ndarray  # (5,) shape area / box area
    centroid: np.ndarray  # (5, 2) centroid in units of the box side (x, y)
    perimeter: np.ndarray  # (5,) outline length in units of the box side
    spread: np.ndarray  # (5,) mean squared distance from the centroid, box side = 1

    @staticmethod
    def build() -> _TemplateBank:
        fine = (np.arange(1024) + 0.5) / 1024
        fx, fy = np.meshgrid(fine, fine)
        area, centroid, spread = [], [], []
        for shape in SHAPES:
            mask = _inside(shape, fx, fy)
            area.append(mask.mean())
            gx, gy = fx[mask].mean(), fy[mask].mean()
            centroid.append((gx, gy))
            spread.append(((fx[mask] - gx) ** 2 + (fy[mask] - gy) ** 2).mean())
        area_fraction = np.array(area, dtype=np.float32)
        centroids = np.array(centroid, dtype=np.float32)

        ss, w = _SUPERSAMPLE, _WINDOW
        n = (w + 1) * ss
        # Canvas coordinate relative to the centroid (model px); template offset m is the
        # slice starting at (ss - 2m) (a quarter pixel is ss/4 = 2 canvas samples).
        rel = (np.arange(n) + 0.5) / ss - (w / 2 + 0.5)
        templates = np.zeros((len(SHAPES), len(_SIZES), _OFFSETS, _OFFSETS, w * w), np.float32)
        for k, shape in enumerate(SHAPES):
            for i, side in enumerate(_SIZES):
                ux = rel / side + centroids[k, 0]
                uy = rel / side + centroids[k, 1]
                canvas = _inside(shape, ux[None, :], uy[:, None]).astype(np.float32)
                for oy in range(_OFFSETS):
                    y0 = ss - 2 * oy
                    rows = canvas[y0 : y0 + w * ss]
                    for ox in range(_OFFSETS):
                        x0 = ss - 2 * ox
                        block = rows[:, x0 : x0 + w * ss].reshape(w, ss, w, ss)
                        templates[k, i, oy, ox] = block.mean(axis=(1, 3)).ravel()
        energy = (templates**2).sum(axis=-1)
        perimeter = np.array([_outline_length(shape) for shape in SHAPES], dtype=np.float32)
        return _TemplateBank(
            templates,
            energy,
            templates >= 0.5,
            area_fraction,
            centroids,
            perimeter,
            np.array(spread, dtype=np.float32),
        )


_BANK: _TemplateBank | None = None
_BANK_LOCK = threading.Lock()


def _bank() -> _TemplateBank:
    global _BANK
    if _BANK is None:
        with _BANK_LOCK:
            if _BANK is None:
                _BANK = _TemplateBank.build()
    return _BANK


# -- view analysis --------------------------------------------------------------------------
def model_view(image: Image.Image, input_size: int) -> Image.Image:
    """The view as the model sees it: longer side ``input_size``, area-averaged when shrunk."""
    image = _checked_rgb(image, input_size)
    longer = max(image.size)
    if longer == input_size:
        return image
    scale = input_size / longer
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if scale < 1:
        return image.resize(size, Image.Resampling.BOX, reducing_gap=3.0)
    return image.resize(size, Image.Resampling.BILINEAR)


def analysis_view(image: Image.Image, input_size: int) -> Image.Image:
    """The pixels the perception analyses: the model's view when it shrinks the image,
    the image itself when the model would enlarge it.

    Enlarging adds no information: a 30 px crop shown at 336 px holds 30 px of detail,
    and its noise, smoothed into 11 px blobs by interpolation, would look like faint
    objects. Analysing the source pixels and scaling the boxes sees exactly what the
    enlarged view holds, with the noise measured where it is independent per pixel, and
    the acuity judged on the detail really there (an object of 3 source px stays a
    smudge however large it is shown).
    """
    image = _checked_rgb(image, input_size)
    if max(image.size) <= input_size:
        return image
    return model_view(image, input_size)


def _checked_rgb(image: Image.Image, input_size: int) -> Image.Image:
    if not isinstance(image, Image.Image):
        raise InvalidImageError(f"expected a PIL image, got {type(image).__name__}")
    if image.width < 1 or image.height < 1:
        raise InvalidImageError(f"image has no pixels ({image.width}x{image.height})")
    if input_size < 8:
        raise ValueError(f"input_size must be >= 8, got {input_size}")
    return image if image.mode == "RGB" else image.convert("RGB")


def acuity(side_px: np.ndarray | float, config: PerceptionConfig = DEFAULT_CONFIG) -> np.ndarray:
    """How resolvable a shape of this side (model px) is, 0..1 (0.5 at ``acuity_px``)."""
    side = np.maximum(np.asarray(side_px, dtype=np.float64), 1e-6)
    return 1.0 / (1.0 + (config.acuity_px / side) ** config.acuity_power)


def _evidence_weight(side_px: np.ndarray, config: PerceptionConfig) -> np.ndarray:
    """Weight of a blob's template evidence: its pixels count as much as it is resolved.

    Softer than :func:`acuity` (which gates naming a shape): a 3 px smudge cannot be
    named, yet whether it is rather star-like or rather square-like still guides a search.
    """
    side = np.maximum(np.asarray(side_px, dtype=np.float64), 1e-6)
    return 1.0 / (1.0 + (config.evidence_acuity_px / side) ** config.acuity_power)


@dataclass(frozen=True, eq=False)
class ViewAnalysis:
    """Everything perceived in one model view; immutable, so safe to share across threads.

    Coordinates are model pixels (continuous, pixel i covers [i, i+1)).
    """

    width: int
    height: int
    noise_sigma: float
    ink: np.ndarray  # (N,) coverage sum per blob, px²
    centroid: np.ndarray  # (N, 2) x, y
    colour_fraction: np.ndarray  # (N, 8) share of each palette colour in the ink
    shape_posterior: np.ndarray  # (N, 5)
    side: np.ndarray  # (N, 5) box side under each shape hypothesis
    misfit: np.ndarray  # (N,) share of the ink the best template leaves unexplained
    #: beyond what a pixel staircase along its outline accounts for
    table_mask: np.ndarray  # (ceil(H/2), ceil(W/2)) bool, on a grid of 2 model px
    table_boxes: tuple[Box, ...]
    table_scores: tuple[float, ...]
    config: PerceptionConfig

    @property
    def n_blobs(self) -> int:
        return int(self.ink.shape[0])

    @cached_property
    def fit_quality(self) -> np.ndarray:
        """(N,) 1 when the best template explains the blob, falling as ink is left over.

        Two shapes that touch once shrunk make one blob that no single shape explains;
        whichever template fits it least badly must not be believed.
        """
        return 1.0 / (1.0 + (self.misfit / self.config.misfit_scale) ** 2)

    @cached_property
    def shape_confidence(self) -> np.ndarray:
        """(N, 5): posterior x acuity at the hypothesis' size x fit; a detector's score."""
        return self.shape_posterior * acuity(self.side, self.config) * self.fit_quality[:, None]

    def boxes(self, shape_index: int) -> np.ndarray:
        """(N, 4) x1, y1, x2, y2 of every blob under a shape hypothesis, model px."""
        side = self.side[:, shape_index]
        g = _bank().centroid[shape_index]
        x1 = self.centroid[:, 0] - g[0] * side
        y1 = self.centroid[:, 1] - g[1] * side
        return np.stack([x1, y1, x1 + side, y1 + side], axis=1)

    def phrase_scores(self, phrase: Phrase) -> np.ndarray:
        """(N,) detection confidence of each blob for an object phrase."""
        scores = np.ones(self.n_blobs)
        if phrase.shape is not None:
            scores = scores * self.shape_confidence[:, SHAPES.index(phrase.shape)]
        if phrase.colour is not None:
            scores = scores * self.colour_fraction[:, COLOURS.index(phrase.colour)]
            if phrase.shape is None:
                # A colour alone is seen as soon as there is ink of it; its box is only as
                # good as the blob's extent, so it too needs a few pixels.
                scores = scores * acuity(np.sqrt(self.ink) * 2, self.config)
        return scores

    def phrase_evidence(self, phrase: Phrase) -> np.ndarray:
        """(N,) soft evidence for the heatmap: looks like this rather than the alternatives."""
        evidence = np.ones(self.n_blobs)
        if phrase.shape is not None:
            # Only what looks MORE like the shape than chance (1 in 5) counts: hundreds of
            # featureless smudges at the prior would otherwise outweigh one telling blob.
            p = self.shape_posterior[:, SHAPES.index(phrase.shape)] * self.fit_quality
            chance = 1.0 / len(SHAPES)
            lift = np.clip((p - chance) / (1.0 - chance), 0.0, 1.0)
            evidence = evidence * lift**self.config.evidence_power
        if phrase.colour is not None:
            evidence = evidence * self.colour_fraction[:, COLOURS.index(phrase.colour)]
        return evidence

    def heatmap(self, phrase: Phrase) -> np.ndarray:
        """Blurred evidence on a grid of ``heatmap_stride`` model px, values in [0, 1]."""
        cfg = self.config
        stride = cfg.heatmap_stride
        grid = np.zeros((-(-self.height // stride), -(-self.width // stride)), np.float32)
        sigma = cfg.heatmap_sigma_px / stride
        if phrase.kind == "table":
            if self.table_boxes:
                cells = _block_mean(
                    self.table_mask.astype(np.float32), max(1, stride // _TABLE_STRIDE)
                )
                grid[: cells.shape[0], : cells.shape[1]] = cells
                grid = ndimage.gaussian_filter(grid, sigma, mode="constant")
            return np.clip(grid, 0.0, 1.0)
        if phrase.kind == "unknown" or self.n_blobs == 0:
            return grid
        evidence = self.phrase_evidence(phrase).astype(np.float32)
        keep = evidence > 1e-4
        if not keep.any():
            return grid
        cx = np.clip((self.centroid[keep, 0] / stride).astype(np.intp), 0, grid.shape[1] - 1)
        cy = np.clip((self.centroid[keep, 1] / stride).astype(np.intp), 0, grid.shape[0] - 1)
        np.add.at(grid, (cy, cx), evidence[keep] / _kernel_peak(sigma))
        grid = ndimage.gaussian_filter(grid, sigma, mode="constant")
        return np.clip(grid, 0.0, 1.0)

    def detections(self, phrase: Phrase) -> list[tuple[Box, float]]:
        """(box in model px, confidence) for the phrase, best first."""
        cfg = self.config
        if phrase.kind == "table":
            return sorted(zip(self.table_boxes, self.table_scores, strict=True), key=_by_score)
        if phrase.kind == "unknown" or self.n_blobs == 0:
            return []
        scores = self.phrase_scores(phrase)
        if phrase.shape is not None:
            boxes = self.boxes(SHAPES.index(phrase.shape))
        else:
            best_shape = self.shape_posterior.argmax(axis=1)
            all_boxes = np.stack([self.boxes(k) for k in range(len(SHAPES))], axis=1)
            boxes = all_boxes[np.arange(self.n_blobs), best_shape]
        order = np.argsort(-scores)[: cfg.max_detections]
        return [
            (Box(*(float(v) for v in boxes[i])), float(scores[i]))
            for i in order
            if scores[i] >= cfg.min_detection_score
        ]


def _by_score(item: tuple[Box, float]) -> float:
    return -item[1]


_PEAKS: dict[float, float] = {}


def _kernel_peak(sigma: float) -> float:
    """Peak of a unit impulse after ``gaussian_filter`` (so that a lone blob's peak = e)."""
    peak = _PEAKS.get(sigma)
    if peak is None:
        size = 2 * math.ceil(4 * sigma) + 1
        impulse = np.zeros((size, size), np.float32)
        impulse[size // 2, size // 2] = 1.0
        peak = float(ndimage.gaussian_filter(impulse, sigma, mode="constant").max())
        _PEAKS[sigma] = peak
    return peak


def _block_mean(values: np.ndarray, stride: int) -> np.ndarray:
    h, w = values.shape
    hp, wp = -(-h // stride) * stride, -(-w // stride) * stride
    if (hp, wp) != (h, w):
        values = np.pad(values, ((0, hp - h), (0, wp - w)))
    return values.reshape(hp // stride, stride, wp // stride, stride).mean(axis=(1, 3))


def analyze_view(
    view: Image.Image, input_size: int, config: PerceptionConfig = DEFAULT_CONFIG
) -> tuple[ViewAnalysis, float, float]:
    """Perceive one view; returns the analysis and the view-px-per-model-px scales (x, y)."""
    shown = analysis_view(view, input_size)
    analysis = _analyze(shown, config)
    return analysis, view.width / shown.width, view.height / shown.height


# -- the pipeline ----------------------------------------------------------------------------
_BLOCK = 32  # model px per background block
_COLOURED = 24  # max-channel distance (0..255) within which a pixel is a reference colour
_MIN_BLOCK_PIXELS = 4  # background pixels a block needs for its own estimate
_NEAR_TABLE = 10  # max channel difference (0..255) of a pixel that is table brown


def _analyze(image: Image.Image, config: PerceptionConfig) -> ViewAnalysis:
    w, h = image.size
    pixels = np.asarray(image)  # (h, w, 3) uint8, read-only view of PIL's buffer
    brown_distance = _max_channel_difference(image, _solid(w, h))
    table_mask, table_boxes, table_scores = _find_tables(brown_distance <= _NEAR_TABLE)
    in_table = np.zeros((h, w), dtype=bool)  # the tables proper: their cloth is background
    near_table = np.zeros((h, w), dtype=bool)  # and 2 px around, where pixels mix with it
    for box in table_boxes:
        x1, y1, x2, y2 = (int(v) for v in box.clip(w, h))
        in_table[y1:y2, x1:x2] = True
        x1, y1, x2, y2 = (int(v) for v in box.expand(2, 2).clip(w, h))
        near_table[y1:y2, x1:x2] = True
    bg_image, sigma = _estimate_background(image, in_table)
    bg_pixels = np.asarray(bg_image)
    threshold = max(2.0, config.noise_sigmas * sigma)

    differs = _max_channel_difference(image, bg_image) > threshold
    if table_boxes:
        # Table cloth is the local background of what lies on it, not an object.
        differs &= ~((brown_distance <= max(threshold, _NEAR_TABLE)) & near_table)

    index = np.flatnonzero(differs)
    ys, xs = np.divmod(index, w)
    observed = pixels.reshape(-1, 3)[index].astype(np.float32)
    local_bg = bg_pixels.reshape(-1, 3)[index].astype(np.float32)
    coverage, colour, residual = _unmix(observed, local_bg, allow_table=True)
    on_table = np.flatnonzero(near_table.reshape(-1)[index])
    if on_table.size:
        # Near a table a pixel may mix a shape with brown or with the dull background
        # (a shape at the table's edge); the background that explains it best wins.
        brown = np.broadcast_to(_TABLE_RGB, (on_table.size, 3))
        c2, k2, r2 = _unmix(observed[on_table], brown, allow_table=False)
        better = r2 < residual[on_table]
        coverage[on_table[better]] = c2[better]
        colour[on_table[better]] = k2[better]
    keep = (colour != _TABLE_INDEX) & (coverage > 0.05)
    index, xs, ys, coverage, colour = index[keep], xs[keep], ys[keep], coverage[keep], colour[keep]

    mask = np.zeros(h * w, dtype=bool)
    mask[index] = True
    labels, n_components = ndimage.label(mask.reshape(h, w), structure=_EIGHT_CONNECTED)
    blob, n = _split_by_colour(labels.reshape(-1)[index] - 1, n_components, colour, coverage)
    ink = np.bincount(blob, coverage, minlength=n)
    valid = ink >= config.min_ink
    blob_ids = np.flatnonzero(valid)
    remap = np.full(n, -1, dtype=np.intp)
    remap[blob_ids] = np.arange(blob_ids.size)
    pix_blob = remap[blob]
    sel = pix_blob >= 0
    pix_blob, xs, ys, coverage, colour = pix_blob[sel], xs[sel], ys[sel], coverage[sel], colour[sel]
    m = blob_ids.size
    ink = ink[blob_ids]
    safe_ink = np.maximum(ink, 1e-9)
    cx = np.bincount(pix_blob, coverage * (xs + 0.5), minlength=m) / safe_ink
    cy = np.bincount(pix_blob, coverage * (ys + 0.5), minlength=m) / safe_ink
    n_colours = len(COLOURS)
    colour_ink = np.bincount(pix_blob * n_colours + colour, coverage, minlength=m * n_colours)
    colour_fraction = colour_ink.reshape(m, n_colours) / safe_ink[:, None]
    centroid = np.stack([cx, cy], axis=1)

    posterior, side, misfit = _classify_shapes(
        xs, ys, coverage, pix_blob, ink, centroid, w, h, config
    )
    return ViewAnalysis(
        width=w,
        height=h,
        noise_sigma=sigma,
        ink=ink,
        centroid=centroid,
        colour_fraction=colour_fraction,
        shape_posterior=posterior,
        side=side,
        misfit=misfit,
        table_mask=table_mask,
        table_boxes=table_boxes,
        table_scores=table_scores,
        config=config,
    )


_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def _split_by_colour(
    component: np.ndarray, n_components: int, colour: np.ndarray, coverage: np.ndarray
) -> tuple[np.ndarray, int]:
    """Blob index per pixel: a component holding two colours in earnest is two blobs.

    Objects a few pixels apart touch once shrunk; when they differ in colour, colour
    tells them apart (as it does for a real encoder). Colours holding little of a
    component's ink are its edge pixels' noise and stay with the dominant colour.
    """
    n_colours = len(COLOURS)
    per_colour = np.bincount(
        component * n_colours + colour, coverage, minlength=n_components * n_colours
    ).reshape(n_components, n_colours)
    significant = per_colour >= np.maximum(1.0, 0.2 * per_colour.sum(axis=1, keepdims=True))
    dominant = per_colour.argmax(axis=1)
    effective = np.where(significant[component, colour], colour, dominant[component])
    keys, blob = np.unique(component * n_colours + effective, return_inverse=True)
    return blob.reshape(-1), keys.size


def _solid(w: int, h: int) -> Image.Image:
    return Image.new("RGB", (w, h), TABLE_COLOUR)


def _max_channel_difference(a: Image.Image, b: Image.Image) -> np.ndarray:
    r, g, bl = ImageChops.difference(a, b).split()
    return np.asarray(ImageChops.lighter(ImageChops.lighter(r, g), bl))


def _estimate_background(image: Image.Image, in_table: np.ndarray) -> _Background:
    """The smooth local background of the view (an RGB image of its size) and its noise.

    Block medians of pixels that are neither palette- nor table-coloured nor next to
    such a pixel (a median, because the mixed edge pixels of a small shape are neither
    and would bias a mean); blocks without such pixels are filled from their neighbours.
    The block grid is extended linearly by one block on each side and interpolated
    bilinearly, so that a gradient stays a gradient up to the borders.

    Pixels on a table (``in_table``) are left out: brown is the background there, and a
    blurred (JPEG) object on a table is neither brown nor palette-coloured at its edges.
    A close-up of one object (a crop 1.1x its box) may leave no block with background:
    then the view's frame is the background (:func:`_border_level`). Never the median of
    the whole view: that is the object's colour, and an object on a background of its
    own colour is invisible.
    """
    w, h = image.size
    shorter = min(w, h)
    factor = 4 if shorter >= 128 else 2 if shorter >= 64 else 1
    small_image = image.reduce(factor) if factor > 1 else image
    small = np.asarray(small_image, dtype=np.float32)
    sh, sw = small.shape[:2]
    # Blocks of _BLOCK px, smaller in a thin view (a panorama's 512x34 root) so that the
    # gradient across it is still sampled by several blocks.
    block = min(_BLOCK, max(8, shorter // 4))
    k = max(1, block // factor)  # block side in reduced pixels
    by, bx = -(-sh // k), -(-sw // k)
    palette_distance, brown_distance = _distance_to_references(small_image)
    coloured = (palette_distance <= _COLOURED) | (brown_distance <= _COLOURED)
    coloured |= in_table[: sh * factor : factor, : sw * factor : factor]
    valid = ~_dilate(coloured)
    grid, filled = _block_medians(small, valid, k, by, bx)
    noise_samples = None
    if filled.any():
        grid = _fill_empty_blocks(grid, filled)
    else:
        level, noise_samples = _border_level(np.asarray(image), palette_distance, factor)
        grid = np.broadcast_to(level, (by, bx, 3))
    padded = np.pad(grid.astype(np.float64), ((1, 1), (1, 1), (0, 0)), mode="edge")
    if by >= 2:
        padded[0, 1:-1] = 2 * grid[0] - grid[1]
        padded[-1, 1:-1] = 2 * grid[-1] - grid[-2]
    if bx >= 2:
        padded[:, 0] = 2 * padded[:, 1] - padded[:, 2]
        padded[:, -1] = 2 * padded[:, -2] - padded[:, -3]
    # Bilinear between block centres at every reduced pixel (numpy, small), then nearest
    # up to full size (PIL, fast): a gradient of <= 0.25 level/px steps by < 1 level.
    block_px = k * factor
    gy = _interpolation_positions(sh, by, block_px / factor)
    gx = _interpolation_positions(sw, bx, block_px / factor)
    y0 = np.floor(gy).astype(np.intp)
    x0 = np.floor(gx).astype(np.intp)
    fy = (gy - y0)[:, None, None]
    fx = (gx - x0)[None, :, None]
    rows = padded[y0] * (1 - fy) + padded[y0 + 1] * fy
    smooth = rows[:, x0] * (1 - fx) + rows[:, x0 + 1] * fx
    cells = Image.fromarray(np.clip(np.rint(smooth), 0, 255).astype(np.uint8), "RGB")
    bg_image = cells if factor == 1 else cells.resize((w, h), Image.Resampling.NEAREST)
    if noise_samples is None:
        cloth = in_table[: sh * factor : factor, : sw * factor : factor] & (
            brown_distance <= _COLOURED
        )
        noise_samples = _noise_samples(image, bg_image, valid, cloth, factor)
    return _Background(bg_image, _robust_sigma(noise_samples))


class _Background(NamedTuple):
    image: Image.Image
    noise_sigma: float


_NOISE_ROW_STEP = 12  # rows sampled for the noise estimate in a large view
_MIN_NOISE_SAMPLES = 24
_MAD_TO_SIGMA = 1.4826  # sigma of a normal distribution over its median absolute deviation


def _noise_samples(
    image: Image.Image, bg_image: Image.Image, valid: np.ndarray, cloth: np.ndarray, factor: int
) -> np.ndarray:
    """Deviations from the background of plain pixels, on every 12th row of a large view.

    Deviations from the local background rather than differences of neighbouring
    pixels, which an interpolated (enlarged) view has smoothed away: the noise of a view
    enlarged 2x is correlated across 2 px, and a threshold taken from neighbour
    differences would make its every ripple an object. Plain pixels are those the
    background was estimated from (``valid``, on the grid reduced by ``factor``); a view
    with no plain background (inside a table) measures its cloth about brown.
    """
    w, h = image.size
    step = _NOISE_ROW_STEP if h >= 8 * _NOISE_ROW_STEP else 1
    rows = np.arange(step // 2, h, step)
    pixels = np.asarray(image)[rows].astype(np.int16)
    small_rows = np.minimum(rows // factor, valid.shape[0] - 1)
    plain = np.repeat(valid[small_rows], factor, axis=1)[:, :w]
    samples = (pixels - np.asarray(bg_image)[rows])[plain]
    if samples.shape[0] < _MIN_NOISE_SAMPLES:
        on_cloth = np.repeat(cloth[small_rows], factor, axis=1)[:, :w]
        samples = pixels[on_cloth] - np.rint(_TABLE_RGB).astype(np.int16)
    return samples


def _border_level(
    pixels: np.ndarray, palette_distance: np.ndarray, factor: int
) -> tuple[np.ndarray, np.ndarray]:
    """A uniform background for a view that an object (or a table) fills: the median of
    the view's outermost pixels that are not palette-coloured, and their deviations.

    In a close-up the frame around the object is background (dull, or the cloth of the
    table it lies on); inner non-palette pixels are the object's own blurred edge (a
    JPEG's chroma), which would pull the level towards the object's colour.
    """
    h, w = pixels.shape[:2]
    ring = np.zeros((h, w), dtype=bool)
    depth = 2 if min(h, w) >= 16 else 1
    ring[:depth] = ring[-depth:] = True
    ring[:, :depth] = ring[:, -depth:] = True
    palette = np.kron(palette_distance, np.ones((factor, factor), dtype=palette_distance.dtype))
    plain = np.zeros((h, w), dtype=bool)
    plain[: palette.shape[0], : palette.shape[1]] = palette[:h, :w] > _COLOURED
    candidates = pixels[ring & plain].astype(np.float32)
    if candidates.shape[0] < _MIN_BLOCK_PIXELS:  # one colour fills the view
        candidates = pixels.reshape(-1, 3).astype(np.float32)
    level = np.median(candidates, axis=0)
    return level, candidates - level


def _dilate(mask: np.ndarray) -> np.ndarray:
    return ndimage.binary_dilation(mask, structure=_EIGHT_CONNECTED)


def _block_medians(
    small: np.ndarray, valid: np.ndarray, k: int, by: int, bx: int
) -> tuple[np.ndarray, np.ndarray]:
    """(by, bx, 3) median of the valid pixels of each k x k block, and which blocks have
    enough of them for an estimate of their own."""
    sh, sw = small.shape[:2]
    padded_values = np.full((by * k, bx * k, 3), np.nan, dtype=np.float32)
    padded_values[:sh, :sw] = np.where(valid[..., None], small, np.nan)
    blocks = padded_values.reshape(by, k, bx, k, 3).transpose(0, 2, 1, 3, 4)
    blocks = np.sort(blocks.reshape(by, bx, k * k, 3), axis=2)  # NaN (not valid) last
    counts = np.count_nonzero(~np.isnan(blocks[..., 0]), axis=2)
    middle = np.maximum((counts - 1) // 2, 0)[..., None, None]
    grid = np.take_along_axis(blocks, np.broadcast_to(middle, (by, bx, 1, 3)), axis=2)[:, :, 0]
    return grid, counts >= min(_MIN_BLOCK_PIXELS, k * k)


def _interpolation_positions(length: int, blocks: int, block_size: float) -> np.ndarray:
    """Fractional index into the padded block grid of each pixel's centre."""
    centres = np.arange(length) + 0.5
    position = centres / block_size - 0.5 + 1  # +1: the padding block
    return np.clip(position, 0.0, blocks + 1 - 1e-6)


def _distance_to_references(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the max-channel distance to the nearest palette colour and to brown."""
    distances = [
        _max_channel_difference(image, Image.new("RGB", image.size, _rgb(rgb)))
        for rgb in _PALETTE_RGB
    ]
    return np.minimum.reduce(distances), _max_channel_difference(image, _solid(*image.size))


def _rgb(values: np.ndarray) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in values)
    return r, g, b


def _fill_empty_blocks(grid: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """Blocks without background (under a table) take the mean of their known neighbours,
    front by front, so that a gradient runs on across a table rather than stepping to the
    value of whichever side is nearest: the mixed pixels along a table's edge are only
    recognised as cloth-and-background where that background is right."""
    if filled.all():
        return grid
    out = np.where(filled[..., None], grid, 0.0).astype(np.float64)
    known = filled.copy()
    kernel = np.ones((3, 3))
    while not known.all():
        count = ndimage.convolve(known.astype(np.float64), kernel, mode="constant")
        sums = np.stack(
            [ndimage.convolve(out[..., c], kernel, mode="constant") for c in range(3)], axis=-1
        )
        front = ~known & (count > 0)
        out[front] = sums[front] / count[front, None]
        known |= front
    return out


def _robust_sigma(samples: np.ndarray) -> float:
    """Per-channel sigma from the median absolute deviation, averaged over channels."""
    if samples.shape[0] < _MIN_NOISE_SAMPLES:  # flat colours only
        return 0.5
    median = np.median(samples, axis=0)
    mad = np.median(np.abs(samples - median), axis=0).astype(np.float64)
    return max(0.5, float(_MAD_TO_SIGMA * mad.mean()))


_TABLE_STRIDE = 2  # tables are large: found on every other pixel, 4x cheaper
_MIN_TABLE_CELLS = 24
_FINE_TABLE_VIEW = 128  # views with a shorter side below this are searched at every pixel


def _find_tables(
    near_brown: np.ndarray,
) -> tuple[np.ndarray, tuple[Box, ...], tuple[float, ...]]:
    """Large solid brown regions, with the objects lying on them filled in.

    Returns the mask on a grid of ``_TABLE_STRIDE`` model px, and boxes in model px.
    Solidity counts the objects on a table as table (the holes are filled first): in a
    close-up of an object on a table, the cloth is only a ring around it. Thin brown-ish
    structures (the mixed edge pixels of a red or orange shape) enclose nothing solid
    and are dropped. A small view is searched at every pixel, so that a ring one pixel
    thin is not lost between the samples.
    """
    st = _TABLE_STRIDE if min(near_brown.shape) >= _FINE_TABLE_VIEW else 1
    coarse = near_brown[::st, ::st]
    mask = np.zeros(coarse.shape, dtype=bool)
    boxes: list[Box] = []
    scores: list[float] = []
    if np.count_nonzero(coarse) >= _MIN_TABLE_CELLS:
        labels, n = ndimage.label(coarse)
        areas = np.bincount(labels.reshape(-1), minlength=n + 1)
        for i, region in enumerate(ndimage.find_objects(labels), start=1):
            if region is None or areas[i] < _MIN_TABLE_CELLS:
                continue
            y, x = region
            bh, bw = y.stop - y.start, x.stop - x.start
            filled = ndimage.binary_fill_holes(labels[region] == i)
            solidity = np.count_nonzero(filled) / (bh * bw)
            if min(bh, bw) * st < 6 or solidity < 0.5:
                continue
            mask[region] |= filled
            boxes.append(Box(x.start * st, y.start * st, x.stop * st, y.stop * st))
            side = min(bh, bw) * st / 2
            scores.append(round(float(min(1.0, solidity / 0.9) * acuity(side)), 4))
    if st != _TABLE_STRIDE:
        mask = mask[::_TABLE_STRIDE, ::_TABLE_STRIDE]
    return mask, tuple(boxes), tuple(scores)


#: Unmixing weighs luma above chroma (JPEG's YCbCr, chroma at half weight): a JPEG keeps
#: luma sharp and blurs chroma, so a small shape's outline is in its luma.
_UNMIX_SPACE = np.diag([1.0, 0.5, 0.5]).astype(np.float32) @ np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]],
    dtype=np.float32,
)
_REFERENCE_UNMIX = _REFERENCE_RGB @ _UNMIX_SPACE.T


def _unmix(
    observed: np.ndarray, local_bg: np.ndarray, *, allow_table: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel: coverage, index and residual of the reference colour that explains it.

    ``pixel - bg = a * (colour - bg) + residual``, for every reference colour at once,
    written with (n, 3) @ (3, 9) products instead of (n, 9, 3) temporaries.
    """
    observed = observed @ _UNMIX_SPACE.T
    local_bg = local_bg @ _UNMIX_SPACE.T
    diff = observed - local_bg  # (n, 3)
    ref = _REFERENCE_UNMIX
    ref_sq = (ref**2).sum(axis=1)[None, :]
    diff_dot = diff @ ref.T - (diff * local_bg).sum(axis=1, keepdims=True)  # d . (c - b)
    norm2 = ref_sq - 2 * (local_bg @ ref.T) + (local_bg**2).sum(axis=1, keepdims=True)
    norm2 = np.maximum(norm2, 1.0)
    alpha = np.clip(diff_dot / norm2, 0.0, 1.0)
    residual = (diff**2).sum(axis=1, keepdims=True) - alpha * (2 * diff_dot - alpha * norm2)
    if not allow_table:  # on a table, brown is the background, not a colour
        residual[:, _TABLE_INDEX] = np.inf
    best = residual.argmin(axis=1)
    rows = np.arange(best.size)
    return alpha[rows, best].astype(np.float32), best, residual[rows, best]


def _classify_shapes(
    xs: np.ndarray,
    ys: np.ndarray,
    coverage: np.ndarray,
    pix_blob: np.ndarray,
    ink: np.ndarray,
    centroid: np.ndarray,
    width: int,
    height: int,
    config: PerceptionConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shape posterior (N, 5), box side per hypothesis (N, 5) and misfit (N,) of each blob.

    A blob wider than ``_DIRECT_EXTENT`` is compared at a coarser scale (its coverage
    block-averaged by 2, 4, ...): it is resolved anyway, and a fixed window keeps the
    comparison one vectorised product for all blobs of a scale.

    The misfit forgives what rasterisation explains: a shape drawn without anti-aliasing
    has a pixel staircase for an outline, which the ideal shape misses by up to a pixel
    all along it (a 13 px star's thin points leave a tenth of its ink unexplained by any
    ideal star). Only where the blob shows that staircase, i.e. in proportion to the
    share of its ink in solid pixels (squared): a shrunk view averages the staircase
    away, and there a second shape merged into a blob must still count against it.
    """
    bank = _bank()
    m = ink.size
    n_shapes = len(SHAPES)
    side = np.sqrt(ink[:, None] / bank.area_fraction[None, :])
    posterior = np.full((m, n_shapes), 1.0 / n_shapes)
    misfit = np.zeros(m)
    if m == 0:
        return posterior, side, misfit
    order = np.argsort(pix_blob, kind="stable")
    starts = np.searchsorted(pix_blob[order], np.arange(m))
    sx, sy = xs[order], ys[order]
    x_lo, x_hi = np.minimum.reduceat(sx, starts), np.maximum.reduceat(sx, starts)
    y_lo, y_hi = np.minimum.reduceat(sy, starts), np.maximum.reduceat(sy, starts)
    extent = np.maximum(x_hi - x_lo, y_hi - y_lo) + 1
    # A blob cut by the view's edge is a part of a shape: a cross's bar end looks like a
    # square. Its shape evidence is weak, as a detector's is for a truncated object;
    # the search's overlapping patches show it whole elsewhere.
    truncated = (x_lo == 0) | (y_lo == 0) | (x_hi == width - 1) | (y_hi == height - 1)
    # Blobs too faint to carry any shape (under ~1.5 px at the largest hypothesis) keep
    # the uniform prior.
    informative = side.max(axis=1) >= 1.5
    # A blob shows a pixel staircase where nearly all its ink lies in solid pixels; a
    # shrunk view's partly covered edge pixels average the staircase away.
    solid_ink = np.bincount(pix_blob, np.where(coverage >= _SOLID, coverage, 0.0), minlength=m)
    solid_share = solid_ink / np.maximum(ink, 1e-9)
    hard_edged = np.clip(
        (solid_share - _STAIRCASE_FROM) / (_STAIRCASE_FULL - _STAIRCASE_FROM), 0, 1
    )
    scale = np.ones(m, dtype=np.intp)
    wide = extent > _DIRECT_EXTENT
    scale[wide] = 2 ** np.ceil(np.log2(extent[wide] / _DIRECT_EXTENT)).astype(np.intp)
    cells = _WINDOW * _WINDOW
    for q in np.unique(scale[informative]):
        ids = np.flatnonzero(informative & (scale == q))
        slot = np.full(m, -1, dtype=np.intp)
        slot[ids] = np.arange(ids.size)
        pix_slot = slot[pix_blob]
        sel = pix_slot >= 0
        pix_slot = pix_slot[sel]
        origin = np.rint(centroid[ids] / q).astype(np.intp) - _WINDOW // 2  # (n, 2) x, y
        wx = xs[sel] // q - origin[pix_slot, 0]
        wy = ys[sel] // q - origin[pix_slot, 1]
        inside = (wx >= 0) & (wx < _WINDOW) & (wy >= 0) & (wy < _WINDOW)
        flat_index = pix_slot[inside] * cells + wy[inside] * _WINDOW + wx[inside]
        windows = np.bincount(
            flat_index, coverage[sel][inside] / float(q * q), minlength=ids.size * cells
        ).reshape(ids.size, cells)
        frac = centroid[ids] / q - (origin + _WINDOW // 2)
        sse, hard_sse = _template_sse(windows.astype(np.float32), frac, side[ids] / q, bank)
        # The evidence counts only as much as the blob is resolvable: a 3 px smudge
        # whose pixels happen to fit the star template best is only weakly star-like
        # to a real encoder (tempered log-likelihoods); a 10 px star is plainly a star.
        temper = _evidence_weight(np.median(side[ids], axis=1), config)[:, None]
        temper = np.where(truncated[ids, None], _TRUNCATED_TEMPER * temper, temper)
        # Misfit: ink the best template leaves unexplained, as area-averaged coverage or as
        # hard-edged pixels (a view not shrunk shows the shape's pixel staircase).
        unexplained = np.maximum(np.minimum(sse.min(axis=1), hard_sse), 0.0)
        best = sse.argmin(axis=1)
        outline = bank.perimeter[best] * side[ids, best] / q  # window px
        staircase = config.staircase_error * outline / q * hard_edged[ids]
        misfit[ids] = np.maximum(unexplained - staircase, 0.0) / np.maximum(
            ink[ids] / float(q * q), 1e-6
        )
        posterior[ids] = _softmax(-sse * temper / (2 * config.template_error**2))
    # A blob far more spread out than any shape of its ink is no shape: a table's edge
    # blurred into a faint line along it, or a chain of touching smudges. Its fit must
    # fail even where a coarse comparison window has averaged it into a dot.
    dx = xs + 0.5 - centroid[pix_blob, 0]
    dy = ys + 0.5 - centroid[pix_blob, 1]
    spread = np.bincount(pix_blob, coverage * (dx * dx + dy * dy), minlength=m) / np.maximum(
        ink, 1e-9
    )
    expected = (bank.spread[None, :] * side**2).min(axis=1) + _SPREAD_SLACK
    excess = np.maximum(spread / expected - _SPREAD_TOLERANCE, 0.0)
    misfit = np.maximum(misfit, config.misfit_scale * excess)
    return posterior, side, misfit


def _template_sse(
    windows: np.ndarray, frac: np.ndarray, side: np.ndarray, bank: _TemplateBank
) -> tuple[np.ndarray, np.ndarray]:
    """(N, 5) squared error between each observed window and each shape's template, and
    (N,) the error against the hard-edged rendering of the best-fitting template."""
    n = windows.shape[0]
    size_index = np.clip(
        np.rint(np.log(np.maximum(side, 1e-6) / _SIZE_MIN) / math.log(_SIZE_RATIO)),
        0,
        len(_SIZES) - 1,
    ).astype(np.intp)
    # Sub-pixel centroid offset in [-0.5, 0.5) -> template offset index 0..3.
    offset = np.clip(np.rint(frac * _OFFSETS).astype(np.intp) + 2, 0, _OFFSETS)
    offset[offset == _OFFSETS] = _OFFSETS - 1
    shape_index = np.arange(len(SHAPES))[None, :]
    oy, ox = offset[:, 1:2], offset[:, 0:1]
    templates = bank.templates[shape_index, size_index, oy, ox]  # (N, 5, W*W)
    energy = bank.energy[shape_index, size_index, oy, ox]  # (N, 5)
    if n == 0:
        return np.zeros((0, len(SHAPES))), np.zeros(0)
    cross = np.matmul(templates, windows[:, :, None])[..., 0]
    observed = (windows.astype(np.float64) ** 2).sum(axis=1)[:, None]
    sse = observed - 2 * cross + energy
    best = sse.argmin(axis=1)
    rows = np.arange(n)
    hard = bank.hard[best, size_index[rows, best], oy[:, 0], ox[:, 0]]  # (N, W*W)
    hard_sse = observed[:, 0] - 2 * (windows * hard).sum(axis=1) + hard.sum(axis=1)
    return sse, hard_sse


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


# -- public API for the VQA model -------------------------------------------------------------
class PerceivedObject(BaseModel):
    """A shape the model can see, with its box in the pixels of the image it was given."""

    model_config = ConfigDict(frozen=True)

    shape: Shape
    colour: Colour
    box: Box
    confidence: float = Field(description="shape and colour both made out (0..1)")
    size_px: float = Field(description="side as the model saw it, model px")

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


class PerceivedTable(BaseModel):
    model_config = ConfigDict(frozen=True)

    box: Box
    confidence: float


@dataclass(frozen=True)
class Perception:
    """What a model of ``input_size`` sees in an image: shapes it resolves, and tables."""

    image_size: tuple[int, int]
    input_size: int
    objects: tuple[PerceivedObject, ...]
    tables: tuple[PerceivedTable, ...]

    def resolved(self, threshold: float = 0.5) -> list[PerceivedObject]:
        """Objects whose shape and colour are made out above ``threshold``, best first."""
        return [o for o in self.objects if o.confidence > threshold]

    def find(self, phrase: str, threshold: float = 0.5) -> list[PerceivedObject]:
        """Resolved objects matching 'red star' / 'star' / 'red', best first."""
        parsed = parse_phrase(phrase)
        if parsed.kind != "object":
            return []
        return [
            o
            for o in self.resolved(threshold)
            if (parsed.shape is None or o.shape == parsed.shape)
            and (parsed.colour is None or o.colour == parsed.colour)
        ]


def perceive(
    image: Image.Image, input_size: int = 336, config: PerceptionConfig = DEFAULT_CONFIG
) -> Perception:
    """Look at the whole ``image`` at ``input_size`` and list what can be made out.

    Every blob is listed with its best shape and colour and a confidence (posterior x
    acuity x colour purity), so that the caller can tell "a red star" from "something
    small and red"; boxes are in ``image``'s pixels.
    """
    analysis, sx, sy = analyze_view(image, input_size, config)
    objects: list[PerceivedObject] = []
    if analysis.n_blobs:
        best_shape = analysis.shape_confidence.argmax(axis=1)
        best_colour = analysis.colour_fraction.argmax(axis=1)
        boxes = np.stack([analysis.boxes(k) for k in range(len(SHAPES))], axis=1)
        for i in range(analysis.n_blobs):
            k, c = int(best_shape[i]), int(best_colour[i])
            confidence = float(analysis.shape_confidence[i, k] * analysis.colour_fraction[i, c])
            x1, y1, x2, y2 = boxes[i, k]
            box = Box(x1 * sx, y1 * sy, x2 * sx, y2 * sy).clip(image.width, image.height)
            if box.is_empty:
                continue
            objects.append(
                PerceivedObject(
                    shape=SHAPES[k],
                    colour=COLOURS[c],
                    box=box,
                    confidence=round(confidence, 4),
                    size_px=round(float(analysis.side[i, k]), 2),
                )
            )
    objects.sort(key=lambda o: -o.confidence)
    tables = tuple(
        PerceivedTable(box=Box(b.x1 * sx, b.y1 * sy, b.x2 * sx, b.y2 * sy), confidence=s)
        for b, s in zip(analysis.table_boxes, analysis.table_scores, strict=True)
    )
    return Perception(
        image_size=image.size, input_size=input_size, objects=tuple(objects), tables=tables
    )


__all__ = [
    "DEFAULT_CONFIG",
    "PerceivedObject",
    "PerceivedTable",
    "Perception",
    "PerceptionConfig",
    "Phrase",
    "ViewAnalysis",
    "acuity",
    "analysis_view",
    "analyze_view",
    "model_view",
    "parse_phrase",
    "perceive",
]
