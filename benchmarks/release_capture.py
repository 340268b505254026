"""Capture what release 0.1.0 itself did on the cost benchmark's questions.

The figures that ``tests/test_benchmarks_cost.py`` (``RELEASE_0_1_0_SEARCHES``) and
``cost_per_question.py`` (``RELEASE_ENCODER_PASSES_SEED_0``) hold were printed by this
script run against a checkout of the release, with only APIs the release already had:

    git worktree add --detach /tmp/seal-0.1.0 5fbd7ef0a5456e368dece21fdeae1b1431e5b036
    PYTHONPATH=/tmp/seal-0.1.0 python benchmarks/release_capture.py > release.json
    git worktree remove /tmp/seal-0.1.0

``searches``: the release's engine (``VStarSearch(ReferenceSearchModel(), SearchConfig())``)
per target of the benchmark's first scenes, the contextual cue "table": patches scored,
stop reason, box and a digest of the patch sequence. ``questions``: the release's graph
(``build_graph`` over the reference models, default settings) on each question and its
follow-up: search-model image-encoder passes (every ``predict`` view; the release shared
none). Run against today's checkout with ``--today`` to get the same records from
``release_baseline.py``'s configuration, which must match.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import seal_agent
from seal_agent.graph import SealConfig, build_graph
from seal_agent.search import SearchConfig, VStarSearch
from seal_agent.shapeworld.scene import generate_scene
from seal_agent.shapeworld.search_model import ReferenceSearchModel
from seal_agent.shapeworld.vqa_model import ReferenceVQAChatModel

#: The cost benchmark's scenes for ``--n 4 --seed 0`` (cost_per_question.make_scenes).
SIZES = ((2246, 1582), (4000, 3000), (7680, 4320), (12000, 9000))
SUBSETS = ("direct_attributes", "relative_position")


class _Counting:
    """Counts the views the search model is asked to score (its image-encoder passes)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.views = 0
        self._lock = threading.Lock()

    @property
    def input_size(self) -> int:
        return int(self.model.input_size)

    @property
    def thresholds(self) -> Any:
        return self.model.thresholds

    def predict(self, views: Any, phrases: Any) -> Any:
        with self._lock:
            self.views += len(views)
        return self.model.predict(views, phrases)


def trace_digest(result: Any) -> str:
    patches = [[round(v, 1) for v in step.patch] for step in result.trace]
    return hashlib.sha256(json.dumps(patches).encode()).hexdigest()[:16]


def capture(n: int, seed: int, today: bool) -> dict[str, Any]:
    search_config = SearchConfig()
    settings: dict[str, Any] = {}
    graph_kwargs: dict[str, Any] = {}
    if today:  # today's code switched back to the release (release_baseline.py)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from release_baseline import RELEASE_VIEW_CACHE_BYTES, release_search_config

        search_config = release_search_config()
        settings = {"cue_source": "question", "search": search_config}
        graph_kwargs = {"view_cache_bytes": RELEASE_VIEW_CACHE_BYTES}
    engine = VStarSearch(ReferenceSearchModel(), search_config)
    searches, questions = [], []
    with tempfile.TemporaryDirectory() as tmp:
        counting = _Counting(ReferenceSearchModel())
        config = SealConfig(cache_dir=Path(tmp), **settings)
        graph = build_graph(ReferenceVQAChatModel(), counting, config, **graph_kwargs)
        for i in range(n):
            width, height = SIZES[i % len(SIZES)]
            for j, subset in enumerate(SUBSETS):
                index = 2 * i + j
                scene = generate_scene(seed * 1000 + index, width=width, height=height, kind=subset)
                for kind, question, options in (
                    ("first", scene.question, list(scene.options)),
                    ("follow-up", f"What is the color of the {scene.targets[0].shape}?", None),
                ):
                    before = counting.views
                    inputs: dict[str, Any] = {"image": scene.image, "question": question}
                    if options is not None:
                        inputs["options"] = options
                    out = graph.invoke(inputs)
                    questions.append(
                        {
                            "scene": index,
                            "kind": kind,
                            "targets": out.get("targets"),
                            "encoder_passes": counting.views - before,
                        }
                    )
                    if kind != "first":
                        continue
                    for target in out.get("targets") or []:
                        result = engine.search(scene.image, target, context_cue=lambda _: "table")
                        box = None if result.box is None else [round(v, 1) for v in result.box]
                        digest = trace_digest(result)
                        patches, stop = result.patches_scored, result.stop_reason
                        searches.append([index, target, patches, stop, box, digest])
    return {"seal_agent": seal_agent.__file__, "searches": searches, "questions": questions}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--today", action="store_true", help="release_baseline.py's config")
    args = parser.parse_args(argv)
    print(json.dumps(capture(args.n, args.seed, args.today), indent=1))


if __name__ == "__main__":
    main()
