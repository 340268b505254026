"""Seeded scenes built from real photographs, with one small real face to find.

A scene is a mosaic of bundled photographs (each enlarged 1-4x, as a high-resolution
camera would see such surfaces), strewn with real non-face photo patches (clutter), and
one real face of 24-64 px pasted at a random place: V*Bench's difficulty (a target too
small to be seen once the whole image is shrunk to a model's input) with real pixels.
The face's box is known from the paste, so success can be scored; models never see it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator

from seal_agent.imaging.geometry import Box
from seal_agent.photoworld.photos import (
    BACKGROUND_PHOTOS,
    FaceSource,
    clutter_crops,
    face_sources,
    photo,
)

IntRange = tuple[int, int]
FloatRange = tuple[float, float]


class PhotoSceneSpec(BaseModel):
    """What a photo scene looks like; defaults follow issue 7 (a 24-64 px face)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    width: int = Field(4000, ge=512, le=12000)
    height: int = Field(3000, ge=512, le=12000)
    face_side: IntRange = Field((24, 64), description="side of the pasted face box, px")
    n_clutter: IntRange = Field((20, 60), description="non-face photo patches strewn about")
    clutter_side: IntRange = Field((20, 80), description="side of a clutter patch, px")
    photo_scale: FloatRange = Field((1.0, 4.0), description="enlargement of background photos")
    margin: int = Field(8, ge=0, description="min px between the face and clutter or edges")

    @model_validator(mode="after")
    def _ranges(self) -> PhotoSceneSpec:
        for name in ("face_side", "n_clutter", "clutter_side", "photo_scale"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must be a range 0 <= low <= high, got {(lo, hi)}")
        if self.face_side[0] < 8:
            raise ValueError("face_side below 8 px holds no face")
        if self.face_side[1] + 2 * self.margin > min(self.width, self.height):
            raise ValueError("the face does not fit in the scene")
        return self


@dataclass(frozen=True)
class PhotoScene:
    """A rendered scene and its one face (original-image pixels)."""

    seed: int
    spec: PhotoSceneSpec
    image: Image.Image
    face: Box
    face_source: str
    clutter: tuple[Box, ...] = field(default=())

    @property
    def face_side(self) -> int:
        return round(self.face.width)


def build_scene(seed: int, spec: PhotoSceneSpec | None = None, **overrides: object) -> PhotoScene:
    """Render scene ``seed`` (deterministic for the same seed and spec)."""
    base = spec or PhotoSceneSpec()
    spec = base.model_validate({**base.model_dump(), **overrides}) if overrides else base
    rng = random.Random(seed)
    canvas = _mosaic(rng, spec)
    taken: list[Box] = []

    source = _pick_face(rng)
    side = rng.randint(*spec.face_side)
    pasted, face = _scaled(source, side)
    face_box = _free_spot(rng, spec, pasted.size, face, taken)
    x, y = int(face_box.x1), int(face_box.y1)
    canvas.paste(pasted, (x, y))
    face_in_scene = Box(x + face.x1, y + face.y1, x + face.x2, y + face.y2)
    taken.append(Box(x, y, x + pasted.width, y + pasted.height))

    crops = clutter_crops()
    clutter: list[Box] = []
    for _ in range(rng.randint(*spec.n_clutter)):
        s = rng.randint(*spec.clutter_side)
        crop = crops[rng.randrange(len(crops))].resize((s, s), Image.Resampling.LANCZOS)
        whole = Box(0, 0, s, s)
        try:
            spot = _free_spot(rng, spec, (s, s), whole, taken, tries=50)
        except _NoRoomError:
            continue
        canvas.paste(crop, (int(spot.x1), int(spot.y1)))
        taken.append(spot)
        clutter.append(spot)
    return PhotoScene(
        seed=seed,
        spec=spec,
        image=canvas,
        face=face_in_scene,
        face_source=source.name,
        clutter=tuple(clutter),
    )


def _mosaic(rng: random.Random, spec: PhotoSceneSpec) -> Image.Image:
    """Rows of enlarged background photos covering the canvas (cropped at its edges)."""
    canvas = Image.new("RGB", (spec.width, spec.height))
    y = 0
    while y < spec.height:
        first = photo(rng.choice(BACKGROUND_PHOTOS))
        row_h = max(64, round(first.height * rng.uniform(*spec.photo_scale)))
        x = 0
        while x < spec.width:
            name = rng.choice(BACKGROUND_PHOTOS)
            src = photo(name)
            w = max(64, round(src.width * row_h / src.height))
            tile = src.resize((w, row_h), Image.Resampling.BICUBIC)
            if rng.random() < 0.5:
                tile = tile.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            canvas.paste(tile, (x, y))
            x += w
        y += row_h
    return canvas


def _pick_face(rng: random.Random) -> FaceSource:
    sources = face_sources()
    astronaut = [s for s in sources if s.name == "astronaut"]
    lfw = [s for s in sources if s.name != "astronaut"]
    # One scene in five shows the astronaut (a face with its real surroundings).
    return astronaut[0] if rng.random() < 0.2 else lfw[rng.randrange(len(lfw))]


def _scaled(source: FaceSource, side: int) -> tuple[Image.Image, Box]:
    """The source resized so its face box is ``side`` px wide; the face box in it."""
    scale = side / source.face.width
    w = max(1, round(source.image.width * scale))
    h = max(1, round(source.image.height * scale))
    image = source.image.resize((w, h), Image.Resampling.LANCZOS)
    f = source.face
    face = Box(f.x1 * scale, f.y1 * scale, f.x1 * scale + side, f.y1 * scale + side)
    return image, face


class _NoRoomError(Exception):
    pass


def _free_spot(
    rng: random.Random,
    spec: PhotoSceneSpec,
    size: tuple[int, int],
    keep_clear: Box,
    taken: list[Box],
    tries: int = 200,
) -> Box:
    """A random top-left placement of a ``size`` paste whose ``keep_clear`` part (its own
    coordinates) stays ``margin`` px from the edges and from everything ``taken``."""
    w, h = size
    m = spec.margin
    lo_x, hi_x = m - keep_clear.x1, spec.width - m - keep_clear.x2
    lo_y, hi_y = m - keep_clear.y1, spec.height - m - keep_clear.y2
    lo_x, lo_y = max(lo_x, -w / 2), max(lo_y, -h / 2)
    if hi_x < lo_x or hi_y < lo_y:
        raise _NoRoomError
    for _ in range(tries):
        x, y = round(rng.uniform(lo_x, hi_x)), round(rng.uniform(lo_y, hi_y))
        box = Box(x, y, x + w, y + h)
        if all(not _near(box, other, m) for other in taken):
            return box
    raise _NoRoomError


def _near(a: Box, b: Box, margin: int) -> bool:
    return not (
        a.x2 + margin <= b.x1
        or b.x2 + margin <= a.x1
        or a.y2 + margin <= b.y1
        or b.y2 + margin <= a.y1
    )


__all__ = ["PhotoScene", "PhotoSceneSpec", "build_scene"]
