"""Real photographs that ship inside an installable package (scikit-image's wheel).

Only files bundled in ``skimage/data`` are read, straight from the installed package
(never through its downloader), so everything here works offline:

* background photos without people: a coffee cup, a rocket, a cat, the Hubble deep
  field, a retina, grass, gravel, bricks, coins, cells, a printed page, the moon, text;
* faces: the 100 faces of scikit-image's LFW subset (real 25x25 grayscale face crops of
  Labeled Faces in the Wild) and the astronaut portrait, whose face box was annotated by
  hand on the 512x512 original;
* clutter: the LFW subset's 100 non-face crops, cut from the same photographs, so a face
  patch cannot be told from clutter by its being a grayscale square.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
from PIL import Image

from seal_agent.errors import SealError
from seal_agent.imaging.geometry import Box

#: Bundled photographs with no person in them (file names in ``skimage/data``).
BACKGROUND_PHOTOS: tuple[str, ...] = (
    "coffee.png",
    "rocket.jpg",
    "chelsea.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "grass.png",
    "gravel.png",
    "brick.png",
    "coins.png",
    "cell.png",
    "page.png",
    "moon.png",
    "text.png",
)
ASTRONAUT = "astronaut.png"
#: The astronaut's face (forehead to chin, ear to ear), annotated by hand on the original.
ASTRONAUT_FACE = Box(178, 66, 272, 160)
#: The head-and-shoulders crop pasted into scenes (the face with its real context).
ASTRONAUT_CROP = Box(118, 10, 332, 236)
LFW_SUBSET = "lfw_subset.npy"
LFW_FACES = 100  # the subset's first 100 crops are faces, the last 100 are not


class PhotoDataError(SealError, RuntimeError):
    """The bundled photographs cannot be read (scikit-image missing or incomplete)."""


def _data_file(name: str) -> resources.abc.Traversable:
    try:
        root = resources.files("skimage") / "data"
    except ModuleNotFoundError as exc:
        raise PhotoDataError(
            "photo world needs scikit-image's bundled images: pip install 'seal-agent[photo]'"
        ) from exc
    path = root / name
    if not path.is_file():
        raise PhotoDataError(f"{name} is not bundled in this scikit-image installation")
    return path


@cache
def photo(name: str) -> Image.Image:
    """A bundled photograph as RGB (grayscale ones converted); cached, do not modify."""
    with _data_file(name).open("rb") as handle:
        image = Image.open(handle)
        image.load()
    return image.convert("RGB")


@cache
def _lfw() -> np.ndarray:
    with _data_file(LFW_SUBSET).open("rb") as handle:
        crops = np.load(handle)
    if crops.ndim != 3 or crops.shape[0] < 2 * LFW_FACES:
        raise PhotoDataError(f"unexpected LFW subset of shape {crops.shape}")
    return np.clip(crops * 255.0 + 0.5, 0, 255).astype(np.uint8)


def lfw_crop(index: int) -> Image.Image:
    """LFW subset crop ``index`` (0-99 faces, 100-199 non-faces) as an RGB image."""
    crops = _lfw()
    if not 0 <= index < crops.shape[0]:
        raise IndexError(f"LFW subset has {crops.shape[0]} crops, not {index + 1}")
    return Image.fromarray(crops[index]).convert("RGB")


@dataclass(frozen=True)
class FaceSource:
    """A real face photo to paste: the image and the face's box in its pixels."""

    name: str
    image: Image.Image
    face: Box


def face_sources() -> list[FaceSource]:
    """Every bundled face: the 100 LFW faces (tight crops) and the astronaut portrait."""
    sources = [
        FaceSource(f"lfw-face-{i}", crop, Box(0, 0, crop.width, crop.height))
        for i in range(LFW_FACES)
        for crop in (lfw_crop(i),)
    ]
    c = ASTRONAUT_CROP
    portrait = photo(ASTRONAUT).crop((int(c.x1), int(c.y1), int(c.x2), int(c.y2)))
    face = Box(
        ASTRONAUT_FACE.x1 - ASTRONAUT_CROP.x1,
        ASTRONAUT_FACE.y1 - ASTRONAUT_CROP.y1,
        ASTRONAUT_FACE.x2 - ASTRONAUT_CROP.x1,
        ASTRONAUT_FACE.y2 - ASTRONAUT_CROP.y1,
    )
    sources.append(FaceSource("astronaut", portrait, face))
    return sources


def clutter_crops() -> list[Image.Image]:
    """The LFW subset's non-face crops (real photo patches)."""
    return [lfw_crop(i) for i in range(LFW_FACES, 2 * LFW_FACES)]


__all__ = [
    "ASTRONAUT_FACE",
    "BACKGROUND_PHOTOS",
    "FaceSource",
    "PhotoDataError",
    "clutter_crops",
    "face_sources",
    "lfw_crop",
    "photo",
]
