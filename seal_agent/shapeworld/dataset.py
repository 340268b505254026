"""Write generated scenes in V*Bench's on-disk format, so that one loader serves both.

Layout (as V*Bench): ``ROOT/direct_attributes/NAME.jpg`` + ``NAME.json`` and the same
under ``relative_position/``; each JSON holds ``target_object``, ``bbox`` ([x, y, w, h]),
``question`` and ``options`` (the correct one first).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from seal_agent.errors import SealError
from seal_agent.shapeworld.scene import Scene, SceneKind, SceneSpec, generate_scene

SUBSETS: tuple[SceneKind, ...] = ("direct_attributes", "relative_position")


class DatasetWriteError(SealError, OSError):
    """The dataset could not be written (bad root, disk full, permissions)."""


class WrittenItem(BaseModel):
    """One written benchmark item: where it lies and what it holds."""

    model_config = ConfigDict(frozen=True)

    subset: SceneKind
    name: str
    image_path: Path
    annotation_path: Path
    seed: int = Field(description="the scene's seed: generate_scene(seed, spec) re-renders it")
    width: int
    height: int


def item_seed(seed: int, subset: SceneKind, index: int) -> int:
    """A scene seed per (dataset seed, subset, index), stable across runs and machines."""
    state = np.random.SeedSequence([seed, SUBSETS.index(subset), index]).generate_state(1)
    return int(state[0])


def check_request(n: int, subsets: Sequence[SceneKind]) -> None:
    """The item count and subsets every dataset writer accepts."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    unknown = [s for s in subsets if s not in SUBSETS]
    if unknown:
        raise ValueError(f"unknown subset(s) {unknown}; expected some of {list(SUBSETS)}")


def subset_scenes(
    subset: SceneKind,
    n: int,
    seed: int,
    spec: SceneSpec,
    sizes: Sequence[tuple[int, int]] | None,
) -> Iterator[tuple[int, Scene]]:
    """The ``n`` scenes of one subset, in order: every layout writes the same questions.

    ``spec`` sets everything but the kind; ``sizes``, if given, is cycled per item.
    """
    for index in range(n):
        overrides: dict[str, object] = {"kind": subset}
        if sizes:
            width, height = sizes[index % len(sizes)]
            overrides |= {"width": width, "height": height}
        yield index, generate_scene(item_seed(seed, subset, index), spec, **overrides)


def annotation_path_for(image_path: Path) -> Path:
    """NAME.jpg -> NAME.json in the same folder (never split on '.': './data' breaks)."""
    return image_path.with_name(image_path.stem + ".json")


def write_dataset(
    root: str | Path,
    n: int,
    seed: int = 0,
    *,
    spec: SceneSpec | None = None,
    sizes: Sequence[tuple[int, int]] | None = None,
    subsets: Sequence[SceneKind] = SUBSETS,
    quality: int = 95,
) -> list[WrittenItem]:
    """Write ``n`` scenes per subset under ``root``; returns what was written.

    ``spec`` sets everything but the kind (taken from the subset); ``sizes``, if given,
    is cycled through per item (width, height), for a mix of sizes and aspect ratios.
    JPEG at ``quality`` with 4:4:4 chroma: V*Bench ships JPEGs, and chroma subsampling
    would smear the colour of a 12 px target across its neighbours.
    """
    check_request(n, subsets)
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    root = Path(root)
    base = spec or SceneSpec()
    written: list[WrittenItem] = []
    for subset in subsets:
        folder = root / subset
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatasetWriteError(f"cannot create {folder}: {exc}") from exc
        for index, scene in subset_scenes(subset, n, seed, base, sizes):
            name = f"shapeworld_{index:05d}"
            image_path = folder / f"{name}.jpg"
            annotation_path = annotation_path_for(image_path)
            try:
                scene.image.save(image_path, format="JPEG", quality=quality, subsampling=0)
                annotation_path.write_text(json.dumps(scene.annotation()), encoding="utf-8")
            except OSError as exc:
                raise DatasetWriteError(f"cannot write {image_path}: {exc}") from exc
            written.append(
                WrittenItem(
                    subset=subset,
                    name=name,
                    image_path=image_path,
                    annotation_path=annotation_path,
                    seed=scene.seed,
                    width=scene.spec.width,
                    height=scene.spec.height,
                )
            )
    return written


__all__ = [
    "SUBSETS",
    "DatasetWriteError",
    "WrittenItem",
    "annotation_path_for",
    "check_request",
    "item_seed",
    "subset_scenes",
    "write_dataset",
]
