"""V*Bench-style accuracy of the SEAL graph on generated shape-world questions.

Generates ``--n`` questions (both subsets, V*Bench's on-disk format), loads them with the
V*Bench loader, and scores, with options shuffled per item and shown as letters:

  (a) the SEAL graph with the reference VQA model in its fixed 336 px mode (LLaVA-like);
  (b) the SEAL graph with the reference VQA model in its native-resolution mode
      (Qwen2.5-VL-like, 28 px tokens), VWM crops sized for the encoder under the
      visual-token budget (``SealConfig.crop_sizing="encoder"``, the default);
  (c) the same, crops sent as cut (``crop_sizing="as_cut"``, release 0.1.0);
  (d) optionally (``--reference-protocol``) the reference protocol: ``seal`` search
      strategy and the best box shown even for a failed search;
  (e) each VQA mode answering from the global image alone (no search);
  (f) random guessing (and the analytic chance level).

Acceptance: (a) and (b) >= 90 % overall; (c) below 90 % (crops too small for a
native-resolution encoder must fail); (e, fixed) within 15 points of chance. Search
length is reported two ways: ours (patches scored per search, every search) and the
paper's (averaged over successful searches only). Prints the tables and writes JSON to
``benchmarks/results/vstar_shapeworld.json``.

    python benchmarks/vstar_shapeworld.py --n 100 --seed 0
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from seal_agent.evaluation import (  # noqa: E402
    EvaluationReport,
    direct_answerer,
    evaluate,
    format_table,
    graph_answerer,
    load_vstar_dataset,
    random_answerer,
)
from seal_agent.graph import SealConfig, build_graph  # noqa: E402
from seal_agent.imaging.loading import image_cache  # noqa: E402
from seal_agent.shapeworld.vqa_model import ReferenceVQAChatModel  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "vstar_shapeworld.json"
SEAL_MIN_OVERALL = 90.0


class RecordingGraph:
    """The graph, keeping each run's per-target searches for the search-length metrics."""

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.searches: list[dict[str, Any]] = []

    def invoke(self, inputs: Any, **kwargs: Any) -> Any:
        out = self.graph.invoke(inputs, **kwargs)
        self.searches.extend((out.get("searches") or {}).values())
        return out


def search_lengths(searches: list[dict[str, Any]]) -> dict[str, Any]:
    """Ours: mean patches scored over every search. The paper's: over found ones only."""
    found = [s for s in searches if s["found"]]
    n = len(searches)
    return {
        "searches": n,
        "found_pct": round(100 * len(found) / n, 1) if n else None,
        "mean_patches_all": round(sum(s["patches_scored"] for s in searches) / n, 2) if n else None,
        "mean_patches_successful": round(sum(s["patches_scored"] for s in found) / len(found), 2)
        if found
        else None,
    }


NO_SEARCH_MAX_ABOVE_CHANCE = 15.0


def _shapeworld() -> tuple[Any, Any]:
    """The shape-world engineer's dataset writer and reference search model."""
    import seal_agent.shapeworld as shapeworld

    return shapeworld.write_dataset, shapeworld.ReferenceSearchModel


def _progress(label: str, total: int):
    state = {"done": 0, "correct": 0}

    def on_item(result) -> None:
        state["done"] += 1
        state["correct"] += int(result.correct)
        if state["done"] % 10 == 0 or state["done"] == total:
            print(
                f"  {label}: {state['done']}/{total}, "
                f"{100 * state['correct'] / state['done']:.1f}% so far",
                file=sys.stderr,
                flush=True,
            )

    return on_item


def run(
    n: int, seed: int, data_dir: Path | None, out: Path, reference_protocol: bool = False
) -> dict[str, Any]:
    write_dataset, reference_search_model = _shapeworld()
    with tempfile.TemporaryDirectory(prefix="vstar-shapeworld-") as tmp:
        root = data_dir or Path(tmp) / "bench"
        started = time.perf_counter()
        # write_dataset writes n scenes per subset; --n counts questions in all.
        write_dataset(root, n=math.ceil(n / 2), seed=seed)
        generation_s = time.perf_counter() - started
        items = load_vstar_dataset(root)
        print(f"generated {len(items)} questions in {generation_s:.1f} s under {root}")

        systems: list[tuple[str, ReferenceVQAChatModel, SealConfig]] = [
            ("SEAL, fixed-336 VQA", ReferenceVQAChatModel(), SealConfig()),
            (
                "SEAL, native VQA, sized crops",
                ReferenceVQAChatModel(resolution="native"),
                SealConfig(crop_sizing="encoder"),
            ),
            (
                "SEAL, native VQA, crops as cut",
                ReferenceVQAChatModel(resolution="native"),
                SealConfig(crop_sizing="as_cut"),
            ),
        ]
        if reference_protocol:
            systems.append(
                (
                    "SEAL reference protocol, fixed",
                    ReferenceVQAChatModel(),
                    SealConfig.reference_protocol(),
                )
            )
        reports: list[EvaluationReport] = []
        lengths: dict[str, dict[str, Any]] = {}
        for name, vqa, config in systems:
            config = config.model_copy(update={"cache_dir": Path(tmp) / "c"})
            graph = RecordingGraph(build_graph(vqa, reference_search_model(), config))
            reports.append(
                evaluate(
                    items,
                    graph_answerer(graph),
                    system=name,
                    seed=seed,
                    on_item=_progress(name, len(items)),
                )
            )
            lengths[name] = search_lengths(graph.searches)
        for name, vqa in (
            ("fixed-336 VQA, global image only", ReferenceVQAChatModel()),
            ("native VQA, global image only", ReferenceVQAChatModel(resolution="native")),
        ):
            reports.append(
                evaluate(
                    items,
                    direct_answerer(vqa),
                    system=name,
                    seed=seed,
                    on_item=_progress(name, len(items)),
                )
            )
        reports.append(evaluate(items, random_answerer(seed), system="random guess", seed=seed))
        image_cache().clear()

    by_name = {r.system: r for r in reports}
    seal = by_name["SEAL, fixed-336 VQA"]
    direct = by_name["fixed-336 VQA, global image only"]

    chance = seal.chance
    print()
    print(format_table(reports))
    print(
        "chance (expected): "
        + ", ".join(f"{k} {v:.2f}" for k, v in chance.items())
        + f"  |  SEAL mean patches scored per question: {seal.mean_patches_scored:.2f}"
        + f", targets localised (IoU > 0.5): {seal.localisation_rate}%"
    )
    print()
    print("| system | searches | found | patches / search (ours: all) | (paper: successful only) |")
    print("|---|---|---|---|---|")
    for name, row in lengths.items():
        print(
            f"| {name} | {row['searches']} | {row['found_pct']}% | {row['mean_patches_all']} "
            f"| {row['mean_patches_successful']} |"
        )
    overall = {r.system: r.scores["overall"].accuracy for r in reports}
    checks = {
        "seal_overall_at_least_90": seal.scores["overall"].accuracy >= SEAL_MIN_OVERALL,
        "native_sized_crops_at_least_90": overall["SEAL, native VQA, sized crops"]
        >= SEAL_MIN_OVERALL,
        "native_crops_as_cut_fail": overall["SEAL, native VQA, crops as cut"] < SEAL_MIN_OVERALL,
        "no_search_within_15_of_chance": abs(direct.scores["overall"].accuracy - chance["overall"])
        <= NO_SEARCH_MAX_ABOVE_CHANCE,
    }
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    summary = {
        "benchmark": "vstar_shapeworld",
        "n_requested": n,
        "n_items": len(items),
        "seed": seed,
        "generation_s": round(generation_s, 2),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "chance": chance,
        "checks": checks,
        "systems": [
            {
                "system": r.system,
                "scores": {k: v.model_dump() for k, v in r.scores.items()},
                "mean_patches_scored": r.mean_patches_scored,
                "localisation_rate": r.localisation_rate,
                "search_length": lengths.get(r.system),
                "wall_s": r.wall_s,
                "mean_s_per_item": r.mean_s_per_item,
            }
            for r in reports
        ],
        "items": {
            r.system: [item.model_dump(mode="json") for item in r.items] for r in reports[:-1]
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print(f"wrote {out}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="questions to generate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data", type=Path, default=None, help="write the dataset here (default: a temp dir)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--reference-protocol",
        action="store_true",
        help="also run the reference protocol (seal strategy, best box even when not found)",
    )
    args = parser.parse_args(argv)
    summary = run(args.n, args.seed, args.data, args.out, args.reference_protocol)
    return 0 if all(summary["checks"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
