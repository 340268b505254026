"""`seal-agent calibrate`: measure a search model on a labelled set, write a thresholds profile.

``seal-agent calibrate --data DIR --search-model ID`` reads a V*Bench-format folder
(``<subset>/NAME.jpg`` + ``NAME.json`` with ``target_object`` and ``bbox``), shows the
model the views a search would show it, and writes the thresholds chosen for
``--precision`` with the statistics behind them. ``seal-agent ask --thresholds
PROFILE`` (or ``SearchConfig(thresholds=PROFILE)``) then uses them.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from seal_agent.cli.ask import _int_at_least
from seal_agent.evaluation.dataset import SUBSETS

#: Names ``--search-model`` accepts besides a hub id or a local checkpoint directory.
SHAPEWORLD = "shapeworld"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``calibrate`` to the subcommands."""
    cal = sub.add_parser(
        "calibrate",
        help="choose a search model's thresholds on a labelled V*Bench-format set",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cal.add_argument("--data", required=True, help="V*Bench-format folder with annotated boxes")
    cal.add_argument(
        "--search-model",
        required=True,
        help=(
            "owlv2, grounding-dino, shapeworld (the offline reference model), or a hub id / "
            "local directory of an OWLv2, OWL-ViT or Grounding DINO checkpoint"
        ),
    )
    cal.add_argument(
        "--precision",
        type=float,
        default=0.9,
        help="how often a decision above each threshold must be right (default 0.9)",
    )
    cal.add_argument("--out", default="thresholds.json", help="profile to write (JSON)")
    cal.add_argument("--limit", type=int, default=None, help="calibrate on the first N items")
    cal.add_argument(
        "--subset",
        action="append",
        dest="subsets",
        help=f"subset folder to read (repeatable; default: {', '.join(SUBSETS)})",
    )
    cal.add_argument(
        "--layout",
        choices=("vstar", "seal"),
        default="vstar",
        help="lay the views out as this strategy's tree (leaf rule, overlap)",
    )
    cal.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: best available)")
    cal.add_argument(
        "--batch-size", type=_int_at_least(1), default=8, help="views per forward pass"
    )
    cal.add_argument("--quiet", action="store_true", help="do not print progress")
    cal.set_defaults(handler=calibrate_command)


def search_model_from_name(name: str, device: str | None = None) -> Any:
    """The search model ``--search-model`` names (built lazily: no weights load here)."""
    if name == SHAPEWORLD:
        from seal_agent.shapeworld import ReferenceSearchModel

        return ReferenceSearchModel()
    from seal_agent.models import GroundingDinoSearchModel, OwlSearchModel

    if name == "owlv2":
        return OwlSearchModel(device=device)
    if name == "grounding-dino":
        return GroundingDinoSearchModel(device=device)
    if _is_grounding_dino(name):
        return GroundingDinoSearchModel(name, device=device)
    return OwlSearchModel(name, device=device)


def _is_grounding_dino(name: str) -> bool:
    """A local checkpoint says what it is; a hub id is judged by its name."""
    config = Path(name).expanduser() / "config.json"
    if config.is_file():
        try:
            model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type", "")
        except (OSError, ValueError, AttributeError):
            return False
        return "grounding-dino" in str(model_type)
    return "grounding-dino" in name.lower() or "grounding_dino" in name.lower()


def _command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this profile (recorded in its provenance)."""
    words = ["seal-agent", "calibrate", "--data", str(args.data)]
    words += ["--search-model", args.search_model, "--precision", f"{args.precision:g}"]
    words += ["--layout", args.layout]
    if args.limit is not None:
        words += ["--limit", str(args.limit)]
    for subset in args.subsets or ():
        words += ["--subset", subset]
    return shlex.join(words)


def calibrate_command(args: argparse.Namespace) -> int:
    from seal_agent.calibration import calibrate, save_profile

    if not 0 < args.precision <= 1:
        print("seal-agent: --precision must be in (0, 1]", file=sys.stderr)
        return 2
    if args.limit is not None and args.limit < 1:
        print("seal-agent: --limit must be >= 1", file=sys.stderr)
        return 2
    if Path(args.out).expanduser().is_dir():  # known now, not after the calibration
        print(f"seal-agent: --out {args.out} is a folder; name the profile's file", file=sys.stderr)
        return 2
    model = search_model_from_name(args.search_model, args.device)

    def progress(index: int, total: int, item: Any) -> None:
        if not args.quiet:
            print(f"  [{index + 1}/{total}] {item.id}", file=sys.stderr)

    profile = calibrate(
        args.data,
        model,
        precision=args.precision,
        model_name=args.search_model,
        subsets=tuple(args.subsets or SUBSETS),
        limit=args.limit,
        layout=args.layout,
        batch_size=args.batch_size,
        command=_command_line(args),
        on_item=progress,
    )
    path = save_profile(profile, args.out)
    t = profile.thresholds
    print(
        f"wrote {path}: confidence_high {t.confidence_high:.4g}, confidence_low "
        f"{t.confidence_low:.4g}, cue {t.cue_threshold:.4g} x {t.cue_threshold_decay:.3g}"
        f"^(level-1), min {t.cue_threshold_min:.4g} (precision {profile.precision:g}, "
        f"{profile.provenance.targets} targets, {profile.provenance.views} views)"
    )
    for name, choice in profile.choices.items():
        if choice.note and choice.source == "model default":
            print(f"  {name}: kept the model default ({choice.note})")
    return 0
