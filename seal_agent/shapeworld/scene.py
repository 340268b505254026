"""Seeded shape-world scenes: a dull noisy background, brown tables, small coloured shapes.

The world is specified in ``shape-world.md``; anyone following that page must be able to
render scenes that the reference models perceive the same way, so the geometry of each
shape lives in one place (:func:`shape_polygon` / :func:`draw_shape`) and is shared with
the perception's shape templates.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from seal_agent.errors import SealError
from seal_agent.imaging.geometry import Box

Shape = Literal["circle", "square", "triangle", "star", "cross"]
Colour = Literal["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
SceneKind = Literal["direct_attributes", "relative_position"]

SHAPES: tuple[Shape, ...] = ("circle", "square", "triangle", "star", "cross")
PALETTE: dict[Colour, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 70),
    "blue": (40, 80, 220),
    "yellow": (235, 205, 30),
    "purple": (150, 60, 190),
    "orange": (240, 140, 30),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
COLOURS: tuple[Colour, ...] = tuple(PALETTE)
TABLE_COLOUR: tuple[int, int, int] = (139, 94, 60)
TABLE_NAME = "table"

#: Star inner radius over outer radius (a regular pentagram's 0.382).
STAR_INNER_RATIO = 0.382
#: Side range of background colours, per channel.
BACKGROUND_CHANNEL_RANGE = (90, 170)
MIN_SIDE, MAX_SIDE, MAX_ASPECT = 512, 12000, 20.0

# Samples of background noise generated per chunk: keeps rendering memory-lean
# (a 12000x9000 image is never held as a float array).
_NOISE_CHUNK_SAMPLES = 3_000_000
_GRID_CELL = 64


class SceneSpecError(SealError, ValueError):
    """A scene specification that cannot be generated (bad size, ranges, counts)."""


IntRange = tuple[int, int]


class SceneSpec(BaseModel):
    """What to generate; every range is inclusive and sampled per scene from the seed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    width: int = Field(4000, ge=MIN_SIDE, le=MAX_SIDE)
    height: int = Field(3000, ge=MIN_SIDE, le=MAX_SIDE)
    kind: SceneKind = "direct_attributes"
    target_size: IntRange = Field((12, 40), description="side of each target, px")
    distractor_size: IntRange = Field((6, 60), description="side of each distractor, px")
    n_distractors: IntRange = Field((20, 400), description="distractors asked for (as many fit)")
    n_tables: IntRange = Field((0, 4), description="tables (as many as fit, not overlapping)")
    table_side: tuple[float, float] = Field(
        (0.08, 0.30), description="table side as a fraction of the image side"
    )
    on_table_probability: float = Field(0.7, ge=0, le=1)
    min_gap: int = Field(4, ge=0, description="px between any two objects")
    noise_sigma: float = Field(6.0, ge=0)
    target_shapes: tuple[Shape, ...] | None = Field(
        None, description="shapes of the targets (default: drawn from the seed)"
    )
    target_colours: tuple[Colour, ...] | None = Field(
        None, description="colours of the targets (default: drawn from the seed)"
    )
    min_horizontal_separation: float = Field(
        0.05, ge=0, lt=1, description="relative_position: centre distance / width"
    )

    @field_validator("width", "height", mode="before")
    @classmethod
    def _int_side(cls, value: object) -> object:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    @field_validator("target_size", "distractor_size", "n_distractors", "n_tables", mode="before")
    @classmethod
    def _range(cls, value: object) -> object:
        return (value, value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _consistent(self) -> SceneSpec:
        if max(self.width, self.height) / min(self.width, self.height) > MAX_ASPECT:
            raise ValueError(f"aspect ratio of {self.width}x{self.height} exceeds 1:{MAX_ASPECT:g}")
        for name in ("target_size", "distractor_size", "n_distractors", "n_tables"):
            lo, hi = getattr(self, name)
            if lo > hi or lo < 0:
                raise ValueError(f"{name} must be an increasing range of non-negative ints")
        if self.target_size[0] < 1 or self.distractor_size[0] < 1:
            raise ValueError("object sides must be at least 1 px")
        if self.target_size[1] > min(self.width, self.height) // 2:
            raise ValueError(f"targets of {self.target_size[1]} px do not fit the image")
        if self.distractor_size[1] > min(self.width, self.height) // 2:
            raise ValueError(f"distractors of {self.distractor_size[1]} px do not fit")
        for name in ("target_shapes", "target_colours"):
            chosen = getattr(self, name)
            if chosen is not None and len(chosen) != self.n_targets:
                raise ValueError(f"{name} must name {self.n_targets} target(s) for {self.kind}")
        if self.target_shapes is not None and len(set(self.target_shapes)) != len(
            self.target_shapes
        ):
            raise ValueError("target_shapes must differ (each target's shape is unique)")
        if self.n_tables[1] > 4:
            raise ValueError("at most 4 tables")
        lo, hi = self.table_side
        if not 0 < lo <= hi < 1:
            raise ValueError("table_side must be an increasing range inside (0, 1)")
        return self

    @property
    def n_targets(self) -> int:
        return 2 if self.kind == "relative_position" else 1


class SceneObject(BaseModel):
    """One drawn shape; ``box`` is its square box in image pixels (x2/y2 exclusive)."""

    model_config = ConfigDict(frozen=True)

    shape: Shape
    colour: Colour
    box: Box
    on_table: bool = False

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def side(self) -> int:
        return int(self.box.width)

    def xywh(self) -> list[int]:
        return [int(v) for v in self.box.to_xywh()]


@dataclass(frozen=True)
class Scene:
    """A rendered scene with everything the generator knows (models must not read it)."""

    seed: int
    spec: SceneSpec
    image: Image.Image = field(repr=False)
    objects: tuple[SceneObject, ...]
    tables: tuple[Box, ...]
    targets: tuple[SceneObject, ...]
    question: str
    options: tuple[str, ...]
    background: tuple[tuple[int, int, int], tuple[int, int, int]]

    @property
    def kind(self) -> SceneKind:
        return self.spec.kind

    def annotation(self) -> dict[str, object]:
        """V*Bench's per-image JSON: target names, [x, y, w, h] boxes, question, options."""
        return {
            "target_object": [t.shape for t in self.targets],
            "bbox": [t.xywh() for t in self.targets],
            "question": self.question,
            "options": list(self.options),
        }


# -- shape geometry -------------------------------------------------------------------
def shape_polygon(shape: Shape, x: float, y: float, s: float) -> list[tuple[float, float]]:
    """Vertices of a polygonal shape in continuous coordinates of its box [x, x+s]².

    Only triangle and star are polygons; square, circle and cross are drawn as
    rectangles/ellipses by :func:`draw_shape`.
    """
    if shape == "triangle":
        return [(x, y + s), (x + s, y + s), (x + s / 2, y)]
    if shape == "star":
        cx, cy, outer = x + s / 2, y + s / 2, s / 2
        inner = STAR_INNER_RATIO * outer
        points = []
        for k in range(10):
            radius = outer if k % 2 == 0 else inner
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        return points
    raise ValueError(f"{shape} is not drawn as a polygon")


def draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: Shape,
    x: float,
    y: float,
    s: float,
    fill: int | tuple[int, int, int],
) -> None:
    """Draw a filled shape in the box [x, x+s)², without anti-aliasing.

    PIL addresses pixel centres: a span of s pixels starting at pixel x runs from x to
    x + s - 1, so continuous box coordinates are mapped by the factor (s - 1) / s. The
    cross's bars are s/3 thick, rounded to whole pixels for integer boxes.
    """
    last = s - 1
    if shape == "square":
        draw.rectangle((x, y, x + last, y + last), fill=fill)
    elif shape == "circle":
        draw.ellipse((x, y, x + last, y + last), fill=fill)
    elif shape == "cross":
        bar = max(1.0, s / 3) if isinstance(s, float) else max(1, round(s / 3))
        offset = (s - bar) / 2 if isinstance(s, float) else (s - bar) // 2
        draw.rectangle((x + offset, y, x + offset + bar - 1, y + last), fill=fill)
        draw.rectangle((x, y + offset, x + last, y + offset + bar - 1), fill=fill)
    else:
        factor = last / s if s > 0 else 0.0
        points = [
            (x + (px - x) * factor, y + (py - y) * factor)
            for px, py in shape_polygon(shape, x, y, s)
        ]
        draw.polygon(points, fill=fill)


# -- placement ------------------------------------------------------------------------
class _Occupancy:
    """Spatial hash of placed boxes, so that spacing checks stay O(1) with 400 objects."""

    def __init__(self, gap: int) -> None:
        self._gap = gap
        self._cells: dict[tuple[int, int], list[Box]] = {}

    def _cells_of(self, box: Box) -> Iterable[tuple[int, int]]:
        g = self._gap
        for cy in range(int(box.y1 - g) // _GRID_CELL, int(box.y2 + g) // _GRID_CELL + 1):
            for cx in range(int(box.x1 - g) // _GRID_CELL, int(box.x2 + g) // _GRID_CELL + 1):
                yield cx, cy

    def is_free(self, box: Box) -> bool:
        g = self._gap
        for cell in self._cells_of(box):
            for other in self._cells.get(cell, ()):
                if (
                    box.x1 < other.x2 + g
                    and other.x1 < box.x2 + g
                    and box.y1 < other.y2 + g
                    and other.y1 < box.y2 + g
                ):
                    return False
        return True

    def add(self, box: Box) -> None:
        for cell in self._cells_of(box):
            self._cells.setdefault(cell, []).append(box)


def _place_tables(rng: random.Random, spec: SceneSpec) -> list[Box]:
    wanted = rng.randint(*spec.n_tables)
    tables: list[Box] = []
    lo, hi = spec.table_side
    gap = max(spec.min_gap, 8)
    for _ in range(wanted * 60):
        if len(tables) == wanted:
            break
        w = round(rng.uniform(lo, hi) * spec.width)
        h = round(rng.uniform(lo, hi) * spec.height)
        x = rng.randint(0, spec.width - w)
        y = rng.randint(0, spec.height - h)
        box = Box(x, y, x + w, y + h)
        if all(
            box.x2 + gap <= t.x1
            or t.x2 + gap <= box.x1
            or box.y2 + gap <= t.y1
            or t.y2 + gap <= box.y1
            for t in tables
        ):
            tables.append(box)
    return tables


def _overlaps_any(box: Box, tables: Sequence[Box]) -> bool:
    return any(not box.intersection(t).is_empty for t in tables)


def _place_target(
    rng: random.Random,
    spec: SceneSpec,
    side: int,
    tables: Sequence[Box],
    occupancy: _Occupancy,
    accept: Callable[[Box], bool],
) -> tuple[Box, bool]:
    """A free box for a target: fully on a table with probability p, else off all tables."""
    fitting = [t for t in tables if t.width >= side and t.height >= side]
    on_table = bool(fitting) and rng.random() < spec.on_table_probability
    for attempt in range(4000):
        # A crowded scene (or a table too small for two targets far enough apart): give
        # up the table preference rather than the scene.
        relax = attempt >= 2000
        if on_table and not relax:
            t = rng.choice(fitting)
            x = rng.randint(int(t.x1), int(t.x2) - side)
            y = rng.randint(int(t.y1), int(t.y2) - side)
        else:
            x = rng.randint(0, spec.width - side)
            y = rng.randint(0, spec.height - side)
        box = Box(x, y, x + side, y + side)
        if not on_table and not relax and _overlaps_any(box, tables):
            continue
        if occupancy.is_free(box) and accept(box):
            return box, on_table
    raise SceneSpecError(
        f"could not place a {side} px target in a {spec.width}x{spec.height} scene"
    )


def _fully_on_table(box: Box, tables: Sequence[Box]) -> bool:
    return any(t.contains(box) for t in tables)


# -- rendering ------------------------------------------------------------------------
def render_background(
    width: int,
    height: int,
    top: tuple[int, int, int],
    bottom: tuple[int, int, int],
    noise_sigma: float,
    rng: np.random.Generator,
) -> Image.Image:
    """Vertical gradient plus Gaussian noise, built in row chunks of uint8.

    Memory stays at the image itself plus one chunk (a few MB), never a float copy of
    the whole frame. The noise is drawn by inverse-CDF lookup of 16 random bits in a
    65536-quantile table of N(0, sigma): indistinguishable after rounding to 8 bits and
    twice as fast as ``standard_normal`` (a 12000x9000 scene has 324 M noise samples).
    """
    image = Image.new("RGB", (width, height))
    rows_per_chunk = max(1, _NOISE_CHUNK_SAMPLES // (3 * width))
    top_arr = np.asarray(top, dtype=np.float32)
    delta = np.asarray(bottom, dtype=np.float32) - top_arr
    denominator = max(1, height - 1)
    quantiles = _gaussian_quantiles(noise_sigma)
    for y0 in range(0, height, rows_per_chunk):
        y1 = min(height, y0 + rows_per_chunk)
        t = np.arange(y0, y1, dtype=np.float32)[:, None, None] / denominator
        base = top_arr + delta * t + 0.5  # +0.5: rounding by truncation below
        bits = np.frombuffer(rng.bytes((y1 - y0) * width * 6), dtype=np.uint16)
        chunk = quantiles[bits.reshape(y1 - y0, width, 3)]
        chunk += base
        np.clip(chunk, 0, 255, out=chunk)
        image.paste(Image.fromarray(chunk.astype(np.uint8), "RGB"), (0, y0))
    return image


def _gaussian_quantiles(sigma: float) -> np.ndarray:
    from scipy.special import ndtri

    probabilities = (np.arange(1 << 16, dtype=np.float64) + 0.5) / (1 << 16)
    return (ndtri(probabilities) * sigma).astype(np.float32)


# -- the generator --------------------------------------------------------------------
def generate_scene(seed: int, spec: SceneSpec | None = None, **overrides: object) -> Scene:
    """Generate scene number ``seed`` (deterministic: same seed and spec, same pixels).

    ``overrides`` are :class:`SceneSpec` fields (``width=9000, height=600,
    kind="relative_position"``), applied on top of ``spec``.
    """
    try:
        if overrides:
            base = spec.model_dump() if spec is not None else {}
            spec = SceneSpec(**{**base, **overrides})
        elif spec is None:
            spec = SceneSpec()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'spec'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SceneSpecError(f"invalid scene specification: {problems}") from exc
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise SceneSpecError(f"seed must be an int, got {type(seed).__name__}")

    rng = random.Random(seed)
    lo, hi = BACKGROUND_CHANNEL_RANGE
    top = (rng.randint(lo, hi), rng.randint(lo, hi), rng.randint(lo, hi))
    bottom = (rng.randint(lo, hi), rng.randint(lo, hi), rng.randint(lo, hi))
    tables = _place_tables(rng, spec)
    occupancy = _Occupancy(spec.min_gap)

    # Targets first, so that a crowded scene never crowds them out.
    drawn_shapes = rng.sample(SHAPES, spec.n_targets)
    target_shapes = list(spec.target_shapes or drawn_shapes)
    targets: list[SceneObject] = []
    min_dx = spec.min_horizontal_separation * spec.width
    for index, shape in enumerate(target_shapes):
        side = rng.randint(*spec.target_size)
        placed = [t.box for t in targets]

        def far_enough(box: Box, placed: list[Box] = placed) -> bool:
            return all(abs(box.center[0] - p.center[0]) >= min_dx for p in placed)

        box, _ = _place_target(rng, spec, side, tables, occupancy, far_enough)
        occupancy.add(box)
        colour = rng.choice(COLOURS)
        targets.append(
            SceneObject(
                shape=shape,
                colour=spec.target_colours[index] if spec.target_colours else colour,
                box=box,
                on_table=_fully_on_table(box, tables),
            )
        )

    distractor_shapes = [s for s in SHAPES if s not in target_shapes]
    distractors: list[SceneObject] = []
    wanted = rng.randint(*spec.n_distractors)
    for _ in range(wanted * 25):
        if len(distractors) >= wanted:
            break
        side = rng.randint(*spec.distractor_size)
        x = rng.randint(0, spec.width - side)
        y = rng.randint(0, spec.height - side)
        box = Box(x, y, x + side, y + side)
        if not occupancy.is_free(box):
            continue
        occupancy.add(box)
        distractors.append(
            SceneObject(
                shape=rng.choice(distractor_shapes),
                colour=rng.choice(COLOURS),
                box=box,
                on_table=_fully_on_table(box, tables),
            )
        )

    question, options = _question(rng, spec.kind, targets)
    noise_rng = np.random.default_rng([seed, 0x5EA1])
    image = render_background(spec.width, spec.height, top, bottom, spec.noise_sigma, noise_rng)
    draw = ImageDraw.Draw(image)
    for table in tables:
        draw.rectangle((table.x1, table.y1, table.x2 - 1, table.y2 - 1), fill=TABLE_COLOUR)
    objects = tuple(targets + distractors)
    for obj in objects:
        draw_shape(draw, obj.shape, obj.box.x1, obj.box.y1, obj.side, PALETTE[obj.colour])
    return Scene(
        seed=seed,
        spec=spec,
        image=image,
        objects=objects,
        tables=tuple(tables),
        targets=tuple(targets),
        question=question,
        options=tuple(options),
        background=(top, bottom),
    )


def _question(
    rng: random.Random, kind: SceneKind, targets: Sequence[SceneObject]
) -> tuple[str, list[str]]:
    """V*Bench-style question and options, the correct option first."""
    if kind == "direct_attributes":
        target = targets[0]
        others = rng.sample([c for c in COLOURS if c != target.colour], 3)
        return f"What is the color of the {target.shape}?", [target.colour, *others]
    first, second = targets
    left = f"The {first.shape} is on the left side of the {second.shape}."
    right = f"The {first.shape} is on the right side of the {second.shape}."
    is_left = first.box.center[0] < second.box.center[0]
    question = f"Is the {first.shape} on the left or right side of the {second.shape}?"
    return question, [left, right] if is_left else [right, left]


__all__ = [
    "COLOURS",
    "PALETTE",
    "SHAPES",
    "STAR_INNER_RATIO",
    "TABLE_COLOUR",
    "TABLE_NAME",
    "Colour",
    "Scene",
    "SceneKind",
    "SceneObject",
    "SceneSpec",
    "SceneSpecError",
    "Shape",
    "draw_shape",
    "generate_scene",
    "render_background",
    "shape_polygon",
]
