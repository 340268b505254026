"""V*Bench's on-disk format: ``<subset>/NAME.<ext>`` images, each with ``NAME.json``.

``{"target_object": ["glove"], "bbox": [[x, y, w, h]], "question": "...", "options":
[correct, wrong, ...]}``. Annotation paths are derived with pathlib (``NAME.json`` next
to the image), never by splitting on ".", which breaks on paths like ``./data``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from seal_agent.errors import SealError
from seal_agent.imaging.geometry import Box

#: The two scored subsets and the names V*Bench's tables give them.
SUBSETS: dict[str, str] = {"direct_attributes": "attribute", "relative_position": "spatial"}
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})


class DatasetError(SealError, ValueError):
    """A benchmark folder or annotation that cannot be read."""


class VStarItem(BaseModel):
    """One question; ``options[0]`` is the correct answer (V*Bench's convention)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="'<subset>/<image file name>', unique within a dataset")
    subset: str
    image_path: Path
    question: str = Field(min_length=1)
    options: tuple[str, ...] = Field(min_length=2)
    target_objects: tuple[str, ...] = ()
    target_boxes: tuple[Box, ...] = Field((), description="original-image pixels, x1 y1 x2 y2")

    @field_validator("options")
    @classmethod
    def _non_empty_options(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not all(isinstance(o, str) and o.strip() for o in value):
            raise ValueError("every option must be a non-empty string")
        return value

    @property
    def category(self) -> str:
        """'attribute' / 'spatial' for V*Bench's subsets, else the subset's own name."""
        return SUBSETS.get(self.subset, self.subset)


def _item(subset: str, image_path: Path, annotation: dict[str, Any]) -> VStarItem:
    boxes = annotation.get("bbox") or []
    if not isinstance(boxes, list) or not all(
        isinstance(b, list | tuple) and len(b) == 4 for b in boxes
    ):
        raise DatasetError(
            f"{image_path.with_suffix('.json')}: bbox must be a list of [x, y, w, h]"
        )
    targets = annotation.get("target_object") or []
    return VStarItem(
        id=f"{subset}/{image_path.name}",
        subset=subset,
        image_path=image_path,
        question=annotation.get("question", ""),
        options=tuple(annotation.get("options") or ()),
        target_objects=tuple(str(t) for t in targets),
        target_boxes=tuple(Box.from_xywh(*(float(v) for v in b)) for b in boxes),
    )


def load_vstar_dataset(
    root: str | Path, subsets: Sequence[str] = tuple(SUBSETS), *, limit: int | None = None
) -> list[VStarItem]:
    """Every item of the given subsets under ``root``, in a stable (sorted) order.

    Images without an annotation file are skipped (V*Bench folders hold nothing else);
    a malformed annotation is an error naming the file.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"benchmark folder not found: {root}")
    items: list[VStarItem] = []
    for subset in subsets:
        folder = root / subset
        if not folder.is_dir():
            raise DatasetError(f"benchmark subset folder not found: {folder}")
        for image_path in sorted(folder.iterdir()):
            if image_path.suffix.lower() not in IMAGE_SUFFIXES or not image_path.is_file():
                continue
            annotation_path = image_path.with_suffix(".json")
            if not annotation_path.is_file():
                continue
            try:
                annotation = json.loads(annotation_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise DatasetError(f"cannot read annotation {annotation_path}: {exc}") from exc
            if not isinstance(annotation, dict):
                raise DatasetError(f"annotation {annotation_path} is not a JSON object")
            try:
                items.append(_item(subset, image_path, annotation))
            except ValidationError as exc:
                raise DatasetError(f"invalid annotation {annotation_path}: {exc}") from exc
            if limit is not None and len(items) >= limit:
                return items
    return items


__all__ = ["IMAGE_SUFFIXES", "SUBSETS", "DatasetError", "VStarItem", "load_vstar_dataset"]
