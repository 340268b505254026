"""`seal-agent ask`: ask a question about a high-resolution image from the command line.

``seal-agent ask photo.jpg "What colour is the cup?"`` runs the SEAL graph over local
transformers models (downloaded from the hub on first use); ``--shapeworld`` swaps in the
offline reference models, which need no weights.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, cast

from seal_agent.search.config import STRATEGIES


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ask`` to the subcommands."""
    ask = sub.add_parser("ask", help="answer a question about an image with guided search")
    ask.add_argument("image", help="image path, data URL, or http(s) URL with --allow-urls")
    ask.add_argument("question")
    ask.add_argument("--option", action="append", dest="options", help="a multiple-choice option")
    ask.add_argument("--target", action="append", dest="targets", help="search for this object")
    ask.add_argument("--vqa-model", default=None, help="hub id or local dir of the VQA model")
    ask.add_argument("--adapter", default=None, help="peft LoRA adapter for the VQA model")
    ask.add_argument(
        "--search-model",
        default="owlv2",
        help="owlv2, grounding-dino, or a hub id / local dir of an OWL checkpoint",
    )
    ask.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: best available)")
    ask.add_argument("--strategy", choices=STRATEGIES, default="vstar")
    ask.add_argument(
        "--thresholds", default=None, help="thresholds profile written by `seal-agent calibrate`"
    )
    ask.add_argument("--max-targets", type=int, default=5)
    ask.add_argument("--allow-urls", action="store_true")
    ask.add_argument(
        "--shapeworld", action="store_true", help="use the offline shape-world reference models"
    )
    ask.add_argument("--json", action="store_true", help="print the final state as JSON")
    ask.add_argument("--quiet", action="store_true", help="do not stream search progress")
    ask.set_defaults(handler=ask_command)


def _models(args: argparse.Namespace) -> tuple[Any, Any]:
    if args.shapeworld:
        from seal_agent.shapeworld import ReferenceSearchModel
        from seal_agent.shapeworld.vqa_model import ReferenceVQAChatModel

        return ReferenceVQAChatModel(), ReferenceSearchModel()
    from seal_agent.models import GroundingDinoSearchModel, OwlSearchModel, TransformersChatModel

    chat_kwargs: dict[str, Any] = {"device": args.device, "adapter": args.adapter}
    if args.vqa_model:
        chat_kwargs["model_id"] = args.vqa_model
    vqa = TransformersChatModel(**{k: v for k, v in chat_kwargs.items() if v is not None})
    search: GroundingDinoSearchModel | OwlSearchModel
    if args.search_model == "grounding-dino":
        search = GroundingDinoSearchModel(device=args.device)
    elif args.search_model == "owlv2":
        search = OwlSearchModel(device=args.device)
    else:
        search = OwlSearchModel(args.search_model, device=args.device)
    return vqa, search


def _print_event(event: dict[str, Any]) -> None:
    kind = event.get("event", "?")
    details = ", ".join(f"{k}={v}" for k, v in event.items() if k != "event")
    print(f"  [{kind}] {details}", file=sys.stderr)


def ask_command(args: argparse.Namespace) -> int:
    from seal_agent.graph import SealConfig, build_graph

    search_settings: dict[str, Any] = {"strategy": args.strategy}
    if args.thresholds:
        from seal_agent.calibration import load_profile

        search_settings["thresholds"] = load_profile(args.thresholds)
    config = SealConfig(
        max_targets=args.max_targets,
        allow_urls=args.allow_urls,
        search=search_settings,
    )
    vqa, search = _models(args)
    graph = build_graph(vqa, search, config)
    inputs: dict[str, Any] = {"image": args.image, "question": args.question}
    if args.options:
        inputs["options"] = args.options
    if args.targets:
        inputs["targets"] = args.targets
    final: dict[str, Any] = {}
    for mode, chunk in graph.stream(inputs, stream_mode=["custom", "values"]):
        if mode == "custom" and not args.quiet:
            _print_event(cast(dict[str, Any], chunk))
        elif mode == "values":
            final = cast(dict[str, Any], chunk)
    if args.json:
        print(json.dumps(final, default=str, indent=2))
        return 0
    print(final.get("answer", ""))
    for name, outcome in (final.get("searches") or {}).items():
        where = outcome.get("box") if outcome.get("found") else "not found"
        print(f"  {name}: {where} ({outcome.get('patches_scored')} patches scored)")
    return 0
