"""Where vstar's forward passes go: per target, each pass and the kinds of view it scored.

A forward pass is one ``predict`` call of the search model; it scores one or more views
(the root, 2x2 splits, candidate or heatmap-peak zooms, confirmations at native detail,
native tiles) or, when the context phrase was not yet known, a view for the context
phrase alone. For each target this prints the passes in order, e.g.
``root | split+split+split | zoom``, and per model mode a summary: success, mean patches
and passes, how many passes held one view, and the commonest pass sequences (runs of one
kind collapsed). It is how the batching rules in ``search/engine.py`` were chosen and
measured; ``search_length.py`` has the side-by-side tables.

    python benchmarks/search_passes.py --n 30                      # shape world, 3 modes
    python benchmarks/search_passes.py --n 30 --mode reference --config '{"batch_size": 4}'
    python benchmarks/search_passes.py --n 16 --photos             # real photos, Haar faces

Writes benchmarks/results/search_passes.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for path in (REPO, REPO / "benchmarks"):
    if str(path) not in sys.path:  # run as a script from a checkout
        sys.path.insert(0, str(path))

from search_length import (  # noqa: E402
    MODES,
    CachedModel,
    context_cue_for,
    make_scene,
    reference_model,
)

from seal_agent.imaging.geometry import Box  # noqa: E402
from seal_agent.imaging.pyramid import ImagePyramid  # noqa: E402
from seal_agent.search.config import SearchConfig  # noqa: E402
from seal_agent.search.engine import VStarSearch  # noqa: E402
from seal_agent.search.protocol import DeclarationsShowThrough  # noqa: E402
from seal_agent.search.result import TraceStep  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "search_passes.json"


class PassRecorder(DeclarationsShowThrough):
    """Wraps a search model and records each predict call's view count and phrases."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.input_size = model.input_size
        self.thresholds = model.thresholds
        self.calls: list[tuple[int, tuple[str, ...]]] = []

    @property
    def declaring_model(self) -> object:
        return self.model

    def predict(self, views: Any, phrases: Any, **kwargs: Any) -> Any:
        self.calls.append((len(views), tuple(phrases)))
        return self.model.predict(views, phrases, **kwargs)


def pass_kinds(
    calls: list[tuple[int, tuple[str, ...]]], steps: list[str], target: str
) -> list[str]:
    """Each pass as its views' kinds joined by '+'; a context-only pass is 'context'."""
    out, start = [], 0
    for count, phrases in calls:
        if phrases and phrases[0] != target:
            out.append("context")
            continue
        out.append("+".join(steps[start : start + count]))
        start += count
    return out


def search_one(
    model: Any, pyramid: ImagePyramid, target: str, truth: Box, cfg: SearchConfig, cue: Any
) -> dict[str, Any]:
    recorder = PassRecorder(model)
    steps: list[str] = []

    def on_step(step: TraceStep) -> None:
        steps.append(str(step.kind))

    result = VStarSearch(recorder, cfg).search(pyramid, target, context_cue=cue, on_step=on_step)
    success = result.found and result.box is not None and result.box.iou(truth) > 0.5
    return {
        "target": target,
        "success": success,
        "patches": result.patches_scored,
        "passes": result.forward_passes,
        "stop_reason": result.stop_reason,
        "sequence": pass_kinds(recorder.calls, steps, target),
    }


def collapse(sequence: list[str]) -> str:
    """A pass sequence with runs of one kind within a pass collapsed (split+split -> splits)."""
    shown = [re.sub(r"\b(\w+)(?:\+\1\b)+", r"\1s", p) for p in sequence]
    return " | ".join(shown)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    passes = [p for r in rows for p in r["sequence"]]
    return {
        "targets": n,
        "success_rate": sum(r["success"] for r in rows) / n,
        "mean_patches": sum(r["patches"] for r in rows) / n,
        "mean_passes": sum(r["passes"] for r in rows) / n,
        "single_view_passes": sum("+" not in p for p in passes) / max(1, len(passes)),
        "commonest": collections.Counter(collapse(r["sequence"]) for r in rows).most_common(8),
    }


def shape_world(n: int, modes: list[str], overrides: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    models = {mode: CachedModel(reference_model(512, mode)) for mode in modes}
    rows: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    for index in range(n):
        scene = make_scene(index, index, allow_scans=False)
        pyramid = ImagePyramid(scene.image)
        cue = context_cue_for(scene)
        for mode, model in models.items():
            model.clear()
            for t in scene.targets:
                cfg = SearchConfig(
                    **{"strategy": "vstar", "max_calls": 4000, "deadline_s": None, **overrides}
                )
                row = search_one(model, pyramid, t.shape, t.box, cfg, cue)
                row.update(scene=index, size=f"{scene.spec.width}x{scene.spec.height}")
                rows[mode].append(row)
                print(f"{mode} s{index} {row['size']} {t.side}px {_line(row)}", flush=True)
    for mode in modes:
        out[mode] = {"summary": summarise(rows[mode]), "targets": rows[mode]}
    return out


def photos(n: int, overrides: dict[str, Any]) -> dict[str, Any]:
    from real_photos import PHRASE
    from real_photos import make_scene as photo_scene

    from seal_agent.photoworld import HaarSearchModel

    model = CachedModel(HaarSearchModel(input_size=512))
    rows = []
    for index in range(n):
        scene = photo_scene(index, index)
        pyramid = ImagePyramid(scene.image)
        model.clear()
        cfg = SearchConfig(
            **{"strategy": "vstar", "max_calls": 256, "deadline_s": None, **overrides}
        )
        row = search_one(model, pyramid, PHRASE, scene.face, cfg, None)
        row.update(scene=index, size=f"{scene.spec.width}x{scene.spec.height}")
        rows.append(row)
        print(f"photos s{index} {row['size']} {scene.face_side}px {_line(row)}", flush=True)
    return {"photos": {"summary": summarise(rows), "targets": rows}}


def _line(row: dict[str, Any]) -> str:
    mark = "ok " if row["success"] else "BAD"
    return (
        f"{mark} {row['patches']} patches {row['passes']} passes {row['stop_reason']}: "
        + " | ".join(row["sequence"])
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=30, help="scenes (default 30, no scans)")
    parser.add_argument("--mode", default="all", choices=[*MODES, "all"])
    parser.add_argument("--photos", action="store_true", help="real photos with Haar faces")
    parser.add_argument("--config", default="{}", help="SearchConfig overrides as JSON")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    overrides = json.loads(args.config)
    if args.photos:
        results = photos(args.n, overrides)
    else:
        modes = list(MODES) if args.mode == "all" else [args.mode]
        results = shape_world(args.n, modes, overrides)
    print()
    for name, found in results.items():
        s = found["summary"]
        print(
            f"== {name}: {s['targets']} targets, success {100 * s['success_rate']:.1f} %, "
            f"patches {s['mean_patches']:.2f}, passes {s['mean_passes']:.2f}, "
            f"{100 * s['single_view_passes']:.0f} % of passes hold one view"
        )
        for sequence, count in s["commonest"]:
            print(f"  {count:>3}  {sequence}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    payload = {"command": " ".join(sys.argv), "config": overrides, "results": results}
    args.output.write_text(json.dumps(payload, indent=1))
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
