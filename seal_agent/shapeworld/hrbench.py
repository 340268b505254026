"""Write generated scenes in HR-Bench's TSV layout (VLMEvalKit's), so its loader is tested
offline like the V*Bench one.

Columns ``index question answer category A B C D image cycle_category``: each scene is
one question asked in ``cycles`` rows whose options are rotated by the cycle number (as
HR-Bench's cycles are), the answer letter following the correct option. The image is
base64 JPEG in the scene's first row; later rows hold that row's index instead, as
VLMEvalKit's format allows for repeated images. Attribute scenes are the single-instance
task (``single``, FSP), relative-position scenes the cross-instance one (``cross``, FCP).
"""

from __future__ import annotations

import base64
import csv
import io
import string
from collections.abc import Sequence
from pathlib import Path

from seal_agent.shapeworld.dataset import SUBSETS, DatasetWriteError, check_request, subset_scenes
from seal_agent.shapeworld.scene import SceneKind, SceneSpec

COLUMNS = ("index", "question", "answer", "category", "A", "B", "C", "D", "image")
CYCLE_COLUMN = "cycle_category"
CATEGORY_BY_SUBSET: dict[SceneKind, str] = {
    "direct_attributes": "single",
    "relative_position": "cross",
}


def write_hrbench(
    path: str | Path,
    n: int,
    seed: int = 0,
    *,
    cycles: int = 4,
    spec: SceneSpec | None = None,
    sizes: Sequence[tuple[int, int]] | None = None,
    subsets: Sequence[SceneKind] = SUBSETS,
    quality: int = 95,
) -> int:
    """Write ``n`` scenes per subset, ``cycles`` rows each, to the TSV ``path``.

    Returns the number of rows written. Scenes are the same as ``write_dataset``'s for
    the same seed, so the two layouts hold the same questions.
    """
    check_request(n, subsets)
    if not 1 <= cycles <= 26:
        raise ValueError(f"cycles must be in 1..26, got {cycles}")
    path = Path(path)
    base = spec or SceneSpec()
    rows = 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
            writer.writerow((*COLUMNS, CYCLE_COLUMN))
            for subset in subsets:
                for _, scene in subset_scenes(subset, n, seed, base, sizes):
                    buffer = io.BytesIO()
                    scene.image.save(buffer, format="JPEG", quality=quality, subsampling=0)
                    image = base64.b64encode(buffer.getvalue()).decode("ascii")
                    first_row = rows
                    for cycle in range(cycles):
                        options = list(scene.options)
                        shift = cycle % len(options)
                        shown = options[shift:] + options[:shift]
                        letters = list(string.ascii_uppercase[: len(shown)])
                        padded = shown + [""] * (4 - len(shown))
                        writer.writerow(
                            (
                                rows,
                                scene.question,
                                letters[shown.index(options[0])],
                                CATEGORY_BY_SUBSET[subset],
                                *padded[:4],
                                image if cycle == 0 else str(first_row),
                                f"cycle{cycle + 1}",
                            )
                        )
                        rows += 1
    except OSError as exc:
        raise DatasetWriteError(f"cannot write {path}: {exc}") from exc
    return rows


__all__ = ["CATEGORY_BY_SUBSET", "COLUMNS", "write_hrbench"]
