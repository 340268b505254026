"""`seal-agent ask`: ask a question about a high-resolution image from the command line.

``seal-agent ask photo.jpg "What colour is the cup?"`` runs the SEAL graph over local
transformers models (downloaded from the hub on first use); ``--shapeworld`` swaps in the
offline reference models, which need no weights. Progress goes to stderr (a live display
on a terminal), the answer to stdout; ``--json`` prints the final state instead and
``--save-viz out.png`` draws the search.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from pydantic import ValidationError

from seal_agent.errors import SealError
from seal_agent.graph.configuration import MAX_TARGETS_LIMIT
from seal_agent.search.config import STRATEGIES


def _int_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {value}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ask`` to the subcommands."""
    ask = sub.add_parser("ask", help="answer a question about an image with guided search")
    ask.add_argument("image", help="image path, data URL, or http(s) URL with --allow-urls")
    ask.add_argument("question", type=_non_empty)
    ask.add_argument(
        "--option",
        action="append",
        dest="options",
        type=_non_empty,
        help="a multiple-choice option (repeat 2 to 26 times)",
    )
    ask.add_argument(
        "--target", action="append", dest="targets", type=_non_empty, help="search for this object"
    )
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
    ask.add_argument(
        "--max-targets",
        type=_int_at_least(1, MAX_TARGETS_LIMIT),
        default=5,
        help=f"objects searched per question, 1-{MAX_TARGETS_LIMIT}",
    )
    ask.add_argument(
        "--max-calls",
        type=_int_at_least(1),
        default=None,
        help="patches scored per target, at most",
    )
    ask.add_argument(
        "--deadline", type=_positive_float, default=None, help="seconds per target's search"
    )
    ask.add_argument("--allow-urls", action="store_true", help="fetch http(s) image URLs")
    ask.add_argument(
        "--shapeworld", action="store_true", help="use the offline shape-world reference models"
    )
    ask.add_argument("--json", action="store_true", help="print the final state as JSON")
    ask.add_argument(
        "--save-viz",
        type=Path,
        default=None,
        metavar="OUT.png",
        help="draw the search (visited patches, found boxes, heatmaps) to this image file",
    )
    ask.add_argument(
        "--progress",
        choices=("auto", "rich", "plain", "none"),
        default="auto",
        help="progress on stderr: live (rich) on a terminal, lines otherwise (default auto)",
    )
    ask.add_argument("--quiet", action="store_true", help="no progress (same as --progress none)")
    ask.set_defaults(handler=ask_command)


def _check(args: argparse.Namespace) -> None:
    """Flag problems argparse cannot see, as one sentence each, before loading anything."""
    if args.options is not None and not 2 <= len(args.options) <= 26:
        raise SealError(f"--option: give 2 to 26 options, got {len(args.options)}")
    if re.match(r"^https?://", args.image.strip(), re.I) and not args.allow_urls:
        raise SealError(
            f"{args.image[:80]} is a URL and downloads are off: add --allow-urls to fetch it, "
            "or pass a local file"
        )
    if args.save_viz is not None:
        _check_picture_path(args.save_viz.expanduser())
    if args.shapeworld and (args.vqa_model or args.adapter or args.search_model != "owlv2"):
        raise SealError("--shapeworld uses the reference models: drop --vqa-model/--adapter/"
                        "--search-model")  # fmt: skip


def _check_picture_path(out: Path) -> None:
    """Where ``--save-viz`` writes must take an image file, known before the run, not after."""
    from PIL import Image

    folder = out.resolve().parent
    if not folder.is_dir():
        raise SealError(f"--save-viz: the folder {folder} does not exist")
    if out.is_dir():
        raise SealError(f"--save-viz: {out} is a folder; name the picture's file (e.g. search.png)")
    extensions = Image.registered_extensions()
    if extensions.get(out.suffix.lower()) not in Image.SAVE:
        raise SealError(
            f"--save-viz: Pillow cannot write a {out.suffix or 'suffix-less'!r} file; "
            "use .png, .jpg or .webp"
        )


def _checkpoints(args: argparse.Namespace) -> list[str]:
    from seal_agent.models.defaults import DEFAULT_SEARCH_MODEL_ID, DEFAULT_VQA_MODEL_ID
    from seal_agent.models.grounding_dino import DEFAULT_GROUNDING_DINO_MODEL_ID

    search = {"owlv2": DEFAULT_SEARCH_MODEL_ID, "grounding-dino": DEFAULT_GROUNDING_DINO_MODEL_ID}
    ids = [args.vqa_model or DEFAULT_VQA_MODEL_ID, search.get(args.search_model, args.search_model)]
    if args.adapter and not Path(args.adapter).expanduser().is_dir():
        ids.append(args.adapter)
    return ids


def _models(args: argparse.Namespace) -> tuple[Any, Any]:
    if args.shapeworld:
        from seal_agent.shapeworld import ReferenceSearchModel
        from seal_agent.shapeworld.vqa_model import ReferenceVQAChatModel

        return ReferenceVQAChatModel(), ReferenceSearchModel()
    from seal_agent.cli.weights import ensure_weights_obtainable

    ensure_weights_obtainable(_checkpoints(args))
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


def _settings(args: argparse.Namespace) -> Any:
    from seal_agent.graph import SealConfig

    search: dict[str, Any] = {"strategy": args.strategy}
    if args.max_calls is not None:
        search["max_calls"] = args.max_calls
    if args.deadline is not None:
        search["deadline_s"] = args.deadline
    if args.save_viz is not None:
        search["trace_heatmaps"] = 24  # the picture shows each step's heatmap
    if args.thresholds:
        from seal_agent.calibration import load_profile

        search["thresholds"] = load_profile(args.thresholds)
    try:
        return SealConfig(max_targets=args.max_targets, allow_urls=args.allow_urls, search=search)
    except ValidationError as exc:  # argparse checks first; this names anything left
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SealError(f"invalid settings: {problems}") from None


def chosen_option(state: dict[str, Any]) -> str | None:
    """``"B. the text of option B"`` for a multiple-choice run, else None."""
    options, choice = state.get("options") or [], state.get("choice")
    if choice is None or not 0 <= choice < len(options):
        return None
    return f"{chr(ord('A') + choice)}. {options[choice]}"


def ask_command(args: argparse.Namespace) -> int:
    from seal_agent.cli.progress import make_progress, terminal_text
    from seal_agent.graph import build_graph

    _check(args)
    config = _settings(args)
    vqa, search = _models(args)
    graph = build_graph(vqa, search, config)
    inputs: dict[str, Any] = {"image": args.image, "question": args.question}
    if args.options:
        inputs["options"] = args.options
    if args.targets:
        inputs["targets"] = args.targets
    final: dict[str, Any] = {}
    progress = make_progress("none" if args.quiet else args.progress)
    try:
        for mode, chunk in graph.stream(inputs, stream_mode=["custom", "values"]):
            if mode == "custom":
                progress.event(cast(dict[str, Any], chunk))
            elif mode == "values":
                final = cast(dict[str, Any], chunk)
    finally:
        progress.close()
    if args.save_viz is not None:
        from seal_agent.viz import save_search

        save_search(final, args.save_viz.expanduser())
    if args.json:
        print(json.dumps({**final, "chosen_option": chosen_option(final)}, default=str, indent=2))
        return 0
    print(terminal_text(chosen_option(final) or final.get("answer", "")))
    for name, outcome in (final.get("searches") or {}).items():
        where = outcome.get("box") if outcome.get("found") else "not found"
        line = f"  {name}: {where} ({outcome.get('patches_scored')} patches scored)"
        print(terminal_text(line))
    if args.save_viz is not None:
        print(f"  picture of the search: {args.save_viz}")
    return 0
