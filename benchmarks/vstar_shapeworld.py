"""V*Bench-style accuracy of the SEAL graph on generated shape-world questions.

Generates ``--n`` questions (both subsets, V*Bench's on-disk format), loads them with the
V*Bench loader, and scores, with options shuffled per item and shown as letters:

  (a) the SEAL graph: reference VQA model + reference search model (shape world);
  (b) the same VQA model answering from the global image alone (no search);
  (c) random guessing (and the analytic chance level).

Acceptance: (a) >= 90 % overall; (b) within 15 points of chance. Prints the table and
writes JSON to ``benchmarks/results/vstar_shapeworld.json``.

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


def run(n: int, seed: int, data_dir: Path | None, out: Path) -> dict[str, Any]:
    write_dataset, reference_search_model = _shapeworld()
    with tempfile.TemporaryDirectory(prefix="vstar-shapeworld-") as tmp:
        root = data_dir or Path(tmp) / "bench"
        started = time.perf_counter()
        # write_dataset writes n scenes per subset; --n counts questions in all.
        write_dataset(root, n=math.ceil(n / 2), seed=seed)
        generation_s = time.perf_counter() - started
        items = load_vstar_dataset(root)
        print(f"generated {len(items)} questions in {generation_s:.1f} s under {root}")

        graph = build_graph(
            ReferenceVQAChatModel(), reference_search_model(), SealConfig(cache_dir=Path(tmp) / "c")
        )
        reports: list[EvaluationReport] = [
            evaluate(
                items,
                graph_answerer(graph),
                system="SEAL graph (ref VQA + ref search)",
                seed=seed,
                on_item=_progress("SEAL", len(items)),
            ),
            evaluate(
                items,
                direct_answerer(ReferenceVQAChatModel()),  # its own perception cache
                system="ref VQA, global image only",
                seed=seed,
                on_item=_progress("no search", len(items)),
            ),
            evaluate(items, random_answerer(seed), system="random guess", seed=seed),
        ]
        image_cache().clear()

    seal, direct, _ = reports
    chance = seal.chance
    print()
    print(format_table(reports))
    print(
        "chance (expected): "
        + ", ".join(f"{k} {v:.2f}" for k, v in chance.items())
        + f"  |  SEAL mean patches scored per question: {seal.mean_patches_scored:.2f}"
        + f", targets localised (IoU > 0.5): {seal.localisation_rate}%"
    )
    checks = {
        "seal_overall_at_least_90": seal.scores["overall"].accuracy >= SEAL_MIN_OVERALL,
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
                "wall_s": r.wall_s,
                "mean_s_per_item": r.mean_s_per_item,
            }
            for r in reports
        ],
        "items": {
            r.system: [item.model_dump(mode="json") for item in r.items] for r in reports[:2]
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
    args = parser.parse_args(argv)
    summary = run(args.n, args.seed, args.data, args.out)
    return 0 if all(summary["checks"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
