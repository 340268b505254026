"""V*Bench's on-disk format: ``<subset>/NAME.<ext>`` images, each with ``NAME.json``.

``{"target_object": ["glove"], "bbox": [[x, y, w, h]], "question": "...", "options":
[correct, wrong, ...]}``. Annotation paths are derived with pathlib (``NAME.json`` next
to the image), never by splitting on ".", which breaks on paths like ``./data``.

The published dataset also ships ``test_questions.jsonl`` (one line per scored question:
``image``, ``text`` with the options as ``(A) ...`` lines, ``label`` letter). Where it is
present, ``vstar_items`` takes the option order from it: that is the order the paper's
numbers were produced with.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from seal_agent.errors import SealError
from seal_agent.evaluation.items import EvalItem
from seal_agent.imaging.geometry import Box

#: The two scored subsets and the names V*Bench's tables give them.
SUBSETS: dict[str, str] = {"direct_attributes": "attribute", "relative_position": "spatial"}
#: Folders the release ships beside the scored subsets; evaluated only on request.
EXPLORATORY_SUBSETS: tuple[str, ...] = ("OCR", "GPT4V-hard")
#: The fixed-order questions file of the published release, at the dataset root.
QUESTIONS_FILE = "test_questions.jsonl"
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


_OPTION_LINE = re.compile(r"^\(([A-Z])\)\s*(.+?)\s*$")


def _fixed_order(root: Path) -> dict[str, tuple[str, ...]]:
    """``'<subset>/<image name>' -> options in the published order`` from the questions file."""
    path = root / QUESTIONS_FILE
    if not path.is_file():
        return {}
    orders: dict[str, tuple[str, ...]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            image, text = str(row["image"]), str(row["text"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{path}:{number}: not a questions-file row ({exc})") from exc
        options: list[str] = []
        for text_line in text.splitlines():
            match = _OPTION_LINE.match(text_line.strip())
            if match and ord(match.group(1)) - ord("A") == len(options):
                options.append(match.group(2))
        if len(options) < 2:
            raise DatasetError(f"{path}:{number}: no '(A) ...' option lines in its text")
        orders[image.replace("\\", "/").removeprefix("./")] = tuple(options)
    return orders


def vstar_items(
    root: str | Path,
    subsets: Sequence[str] = tuple(SUBSETS),
    *,
    fixed_order: bool = True,
) -> list[EvalItem]:
    """V*Bench as ``EvalItem``s, options in the published order.

    The published order is the questions file's where it lists the item (and
    ``fixed_order``), else the annotation's (correct option first).
    """
    root = Path(root).expanduser()
    items = load_vstar_dataset(root, subsets)
    orders = _fixed_order(root) if fixed_order else {}
    converted: list[EvalItem] = []
    for item in items:
        options = item.options
        correct = 0
        published = orders.get(item.id)
        if published is not None:
            if sorted(published) != sorted(options):
                raise DatasetError(
                    f"{QUESTIONS_FILE} lists other options for {item.id} than its annotation: "
                    f"{list(published)} vs {list(options)}"
                )
            options, correct = published, published.index(item.options[0])
        converted.append(
            EvalItem(
                id=item.id,
                bench="vstar",
                category=item.category,
                image_path=item.image_path,
                question=item.question,
                options=options,
                correct_index=correct,
                target_objects=item.target_objects,
                target_boxes=item.target_boxes,
            )
        )
    return converted


def as_eval_item(item: VStarItem | EvalItem) -> EvalItem:
    """A V*Bench item as stored (correct option first) as an ``EvalItem``."""
    if isinstance(item, EvalItem):
        return item
    return EvalItem(
        id=item.id,
        bench="vstar",
        category=item.category,
        image_path=item.image_path,
        question=item.question,
        options=item.options,
        correct_index=0,
        target_objects=item.target_objects,
        target_boxes=item.target_boxes,
    )


__all__ = [
    "EXPLORATORY_SUBSETS",
    "IMAGE_SUFFIXES",
    "QUESTIONS_FILE",
    "SUBSETS",
    "DatasetError",
    "VStarItem",
    "as_eval_item",
    "load_vstar_dataset",
    "vstar_items",
]
