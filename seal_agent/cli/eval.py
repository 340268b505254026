"""`seal-agent eval`: a benchmark table with one command.

``seal-agent eval --bench vstar --data ./vstar_bench --vqa Qwen/Qwen2.5-VL-7B-Instruct
--search owlv2 --out runs/vstar`` scores SEAL beside the VQA model on the global image
alone and random guessing, appending each finished item to ``runs/vstar/results.jsonl``
and writing ``table.md``, ``summary.json`` and ``figure.png`` there. ``--resume``
continues a killed run; ``--workers`` answers items concurrently; ``--ray`` spreads
them over a Ray cluster.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from seal_agent.cli.ask import _int_at_least
from seal_agent.graph.configuration import MAX_TARGETS_LIMIT
from seal_agent.search.config import STRATEGIES


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``eval`` to the subcommands."""
    ev = sub.add_parser("eval", help="score SEAL and its baselines on V*Bench or HR-Bench")
    ev.add_argument("--bench", choices=("vstar", "hrbench"), required=True)
    ev.add_argument("--data", type=Path, required=True, help="V*Bench folder, or HR-Bench TSV file")
    ev.add_argument("--vqa", required=True, help="VQA model: hub id or local dir, or 'shapeworld'")
    ev.add_argument(
        "--search",
        required=True,
        help="search model: owlv2, grounding-dino, a hub id or local dir, or 'shapeworld'",
    )
    ev.add_argument(
        "--strategy",
        action="append",
        choices=STRATEGIES,
        dest="strategies",
        help="a SEAL row with this search strategy (repeatable; default vstar)",
    )
    ev.add_argument(
        "--scoring",
        choices=("likelihood", "choice"),
        default=None,
        help="likelihood (lowest option loss) or choice (answer a letter); default: "
        "likelihood where the VQA model can score options",
    )
    ev.add_argument("--order", choices=("official", "shuffled"), default="official")
    ev.add_argument("--seeds", type=int, default=1, help="repeat the run with seeds 0..N-1")
    ev.add_argument("--limit", type=int, default=None, help="sample N items across subsets")
    ev.add_argument(
        "--exploratory", action="store_true", help="V*Bench: also the OCR and GPT4V-hard folders"
    )
    ev.add_argument("--workers", type=int, default=1, help="items answered concurrently")
    ev.add_argument("--resume", action="store_true", help="continue the run in --out")
    ev.add_argument("--out", type=Path, default=Path("eval-out"))
    ev.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: best available)")
    ev.add_argument(
        "--max-targets",
        type=_int_at_least(1, MAX_TARGETS_LIMIT),
        default=5,
        help=f"objects searched per question, 1-{MAX_TARGETS_LIMIT}",
    )
    ev.add_argument(
        "--max-calls", type=int, default=None, help="patches scored per target, at most"
    )
    ev.add_argument("--cache-dir", type=Path, default=None, help="image cache directory")
    ev.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="run items on Ray: no value starts a local instance; 'auto' or "
        "ray://head:10001 joins a cluster",
    )
    ev.add_argument("--ray-actors", type=int, default=None, help="model copies (actors)")
    ev.add_argument("--ray-gpus-per-actor", type=float, default=0.0)
    ev.add_argument("--ray-num-cpus", type=int, default=None, help="CPUs of a local instance")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.set_defaults(handler=eval_command)


def eval_command(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from seal_agent.evaluation import EvalSpec, ModelSpec, default_systems, evaluate_run
    from seal_agent.evaluation.run import EvalSettingsError

    try:
        spec = EvalSpec(
            bench=args.bench,
            data=args.data,
            models=ModelSpec(
                vqa=args.vqa,
                search=args.search,
                device=args.device,
                scoring=args.scoring,
                cache_dir=args.cache_dir,
                max_targets=args.max_targets,
                max_calls=args.max_calls,
            ),
            systems=tuple(default_systems(args.strategies or ["vstar"])),
            order=args.order,
            seeds=args.seeds,
            limit=args.limit,
            exploratory=args.exploratory,
            workers=args.workers,
            out=args.out,
            resume=args.resume,
            ray_address=args.ray,
            ray_actors=args.ray_actors,
            ray_gpus_per_actor=args.ray_gpus_per_actor,
            ray_num_cpus=args.ray_num_cpus,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise EvalSettingsError(f"invalid eval settings: {problems}") from exc
    result = evaluate_run(spec, progress=not args.no_progress)
    print(result.files["table"].read_text(encoding="utf-8"), end="")
    print(
        f"{result.records} results ({result.ran} answered now) in "
        f"{result.files['table'].parent}: table.md, summary.json, figure.png, results.jsonl"
    )
    return 0
