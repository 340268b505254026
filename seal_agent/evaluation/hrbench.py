"""HR-Bench 4K / 8K from its published TSV (the VLMEvalKit layout).

One row per question and cycle: ``index``, ``question``, ``answer`` (a letter),
``category`` (``single`` = FSP, ``cross`` = FCP), the options in columns ``A``..``D``,
``image`` (base64, or, as VLMEvalKit allows, the ``index`` of an earlier row holding the
same image) and ``cycle_category``. Each image is decoded from base64 once and spilled
to the image cache under its content hash, through the same size limit as any input;
the items then refer to that file, so workers read images themselves.
"""

from __future__ import annotations

import base64
import binascii
import csv
import os
import string
import sys
from pathlib import Path

from pydantic import ValidationError

from seal_agent.errors import SealError
from seal_agent.evaluation.dataset import DatasetError
from seal_agent.evaluation.items import EvalItem
from seal_agent.imaging.loading import DEFAULT_MAX_IMAGE_PIXELS, to_image_ref

#: HR-Bench's two sub-tasks as its tables name them.
CATEGORIES: dict[str, str] = {"single": "FSP", "cross": "FCP"}
REQUIRED_COLUMNS = ("index", "question", "answer", "category", "image", "cycle_category")
#: A field this short is a reference to another row's image, not base64 (VLMEvalKit's rule).
_IMAGE_REFERENCE_MAX_CHARS = 64


def _raise_field_limit() -> None:
    # One base64 8K image is tens of MB, far above csv's 128 KiB default field limit.
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 2


def load_hrbench(
    path: str | Path,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> list[EvalItem]:
    """Every row of an HR-Bench TSV as an ``EvalItem``, options in their given order."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"HR-Bench TSV not found: {path}")
    _raise_field_limit()
    items: list[EvalItem] = []
    images: dict[str, Path] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")  # quoting as pandas writes it
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{path}: not an HR-Bench TSV, missing column(s) {missing}")
        letters = [c for c in string.ascii_uppercase if c in (reader.fieldnames or [])]
        for row in reader:
            where = f"{path}, row index {row.get('index')!r}"
            options = [row[c].strip() for c in letters if (row[c] or "").strip() not in ("", "nan")]
            answer = (row["answer"] or "").strip().upper()
            if answer not in letters[: len(options)]:
                raise DatasetError(f"{where}: answer {answer!r} is not one of its option letters")
            image = _image_path(row, images, where, cache_dir, max_pixels)
            images.setdefault(row["index"], image)
            try:
                items.append(
                    EvalItem(
                        id=row["index"],
                        bench="hrbench",
                        category=row["category"].strip(),
                        image_path=image,
                        question=row["question"].strip(),
                        options=tuple(options),
                        correct_index=letters.index(answer),
                        cycle=(row["cycle_category"] or "").strip() or None,
                    )
                )
            except ValidationError as exc:
                raise DatasetError(f"{where}: invalid row: {exc}") from exc
    if len({item.id for item in items}) != len(items):
        raise DatasetError(f"{path}: the index column repeats a value")
    return items


def _image_path(
    row: dict[str, str],
    images: dict[str, Path],
    where: str,
    cache_dir: str | os.PathLike[str] | None,
    max_pixels: int,
) -> Path:
    field = (row["image"] or "").strip()
    if len(field) <= _IMAGE_REFERENCE_MAX_CHARS:
        if field in images:
            return images[field]
        raise DatasetError(f"{where}: image {field!r} is neither base64 nor an earlier index")
    try:
        data = base64.b64decode(field, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DatasetError(f"{where}: the image column is not valid base64: {exc}") from exc
    try:
        ref = to_image_ref(data, max_pixels=max_pixels, cache_dir=cache_dir)
    except SealError as exc:
        raise DatasetError(f"{where}: {exc}") from exc
    return Path(ref["uri"])


__all__ = ["CATEGORIES", "REQUIRED_COLUMNS", "load_hrbench"]
