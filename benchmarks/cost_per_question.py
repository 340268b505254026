"""Model calls and compute per question, release 0.1.0 against today, side by side.

"Before" is release 0.1.0 (commit 5fbd7ef) as a configuration of today's code
(``release_baseline.py``): the release's search engine (no confirmation windows, no
signal-aware descent, one patch per forward pass), one contextual-cue question per
target, every search encoding its own views, the VQA model re-encoding every image.
``tests/test_benchmarks_cost.py`` proves that this engine scores the release's patches,
and with ``--seed 0`` the run checks the before row's patches against those recorded from
the release's own graph. "After" is today's default: today's engine, one listing call that
names targets and their cues, one view cache shared by every search of the graph (views
encoded once, new phrases on cached views run only the heads), and the VQA model's
per-image vision feature cache and its prompt-prefix KV cache (the answer prefills only
what follows the listing's prefix: "prefill tokens" versus "prompt tokens"; with
``--real none`` the reuse is counted by the same prefix matching, without a network).
The chat side of "before" runs today's prompts and visual working memory, with
per-target cue questions and no vision cache.

Search image-encoder passes are decomposed with two more systems, counted without cost
networks: today's engine without the sharing ("engine only") and the release's engine
with today's sharing ("sharing only").

All run the same shape-world questions (both V*Bench subsets; images from 2246x1582
up to 12000x9000) through ``build_graph`` with the cost-faithful replay of
``cost_replay.py``: shape world's reference models decide, tiny random-weight
Qwen2.5-VL and OWLv2 networks (``--real tiny``; ``none`` skips them) run every call of
"before" and "after" at its real input size, so the CPU seconds include real network
work. Image-token counts are those of the real Qwen2.5-VL-7B image processor (tiny
configs keep its patch and merge sizes). After each question, a follow-up about the same
image ("What is the color of the <first target>?") is asked.

Targets (issue 12): <= 2 chat calls per question; search image-encoder passes <= 0.8x
the release's; a follow-up <= 0.3x the first question's encoder passes; accuracy and
search success unchanged.

    python benchmarks/cost_per_question.py --n 4            # 8 questions + 8 follow-ups
    python benchmarks/cost_per_question.py --n 2 --real none  # counts only, fastest
    python benchmarks/cost_per_question.py --n 4 --real none --search-model weak

``--search-model weak|fallible`` lets one of shape world's honest degradations decide
(a heatmap blind to small shapes; confident false boxes and misses), closer to the
detectors users bring than the reference; results go to ``cost_per_question_<model>.json``.

Prints a table and writes JSON to ``benchmarks/results/cost_per_question.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

from cost_replay import (  # noqa: E402
    Counters,
    ReplayChatModel,
    ReplaySearchModel,
    VqaCost,
    install_vision_cache,
)
from gpu_latency import build_owl, build_vqa, load_config  # noqa: E402
from release_baseline import (  # noqa: E402
    RELEASE,
    RELEASE_COMMIT,
    RELEASE_VIEW_CACHE_BYTES,
    release_search_config,
)

from seal_agent.graph import SealConfig, build_graph  # noqa: E402
from seal_agent.imaging.geometry import Box  # noqa: E402
from seal_agent.imaging.loading import (  # noqa: E402
    encoded_global_view,
    image_cache,
    load_image,
    to_image_ref,
)
from seal_agent.models.owl import OwlSearchModel  # noqa: E402
from seal_agent.models.prefix_cache import PrefixKVCache  # noqa: E402
from seal_agent.search import SearchConfig  # noqa: E402
from seal_agent.search.view_cache import DEFAULT_VIEW_CACHE_BYTES  # noqa: E402
from seal_agent.shapeworld.scene import Scene, generate_scene  # noqa: E402
from seal_agent.shapeworld.search_model import (  # noqa: E402
    Fallibility,
    ReferenceSearchModel,
    WeakHeatmap,
)
from seal_agent.shapeworld.vqa_model import ReferenceVQAChatModel  # noqa: E402

RESULTS = ROOT / "results"
SIZES = ((2246, 1582), (4000, 3000), (7680, 4320), (12000, 9000))
SUBSETS = ("direct_attributes", "relative_position")
NEW_TOKENS = 16  # generated tokens per chat call (a listing line or a short answer)
METRICS = (
    ("chat_calls", "chat-model calls"),
    ("prompt_tokens", "prompt tokens"),
    ("prefill_tokens", "prefill tokens"),
    ("vqa_images_encoded", "VQA vision-tower images"),
    ("search_views_encoded", "search image-encoder passes"),
    ("search_phrase_passes", "search phrase passes"),
    ("patches_scored", "patches scored"),
    ("distinct_windows", "distinct windows searched"),
    ("cpu_s", "CPU seconds"),
    ("wall_s", "wall seconds"),
    ("correct", "accuracy %"),
    ("search_success", "search success %"),
)


#: Recorded from release 0.1.0's own graph (a checkout of RELEASE_COMMIT, its reference
#: models, default settings) on this benchmark's questions with ``--seed 0``: search
#: image-encoder passes (= patches scored: it shared no view) per question, in scene order.
RELEASE_ENCODER_PASSES_SEED_0 = {
    "first": (2, 5, 4, 7, 28, 16, 19, 25),
    "follow-up": (2, 2, 4, 2, 28, 9, 19, 13),
}


@dataclass
class System:
    name: str
    graph: Any
    counters: Counters
    vqa: VqaCost


#: (name, engine, sharing, with cost networks): "before" and "after" are the comparison;
#: the other two decompose the search's savings into engine and sharing.
SYSTEMS = (
    ("before", "release", False, True),
    ("after", "today", True, True),
    ("engine_only", "today", False, False),
    ("sharing_only", "release", True, False),
)


#: The search model deciding: shape world's reference, or one of its honest degradations
#: (``perception.degradations``), which behave more like the detectors users bring.
SEARCH_MODELS: dict[str, dict[str, Any]] = {
    "reference": {},
    "weak": {"weak_heatmap": WeakHeatmap()},
    "fallible": {"fallible": Fallibility()},
}


def build_system(
    name: str, engine: str, sharing: bool, real: str, tmp: Path, search_model: str = "reference"
) -> System:
    """A graph whose search engine is the release's or today's, with or without issue
    12's sharing (listed cues, the view cache, the VQA vision cache)."""
    counters = Counters()
    qwen_config = load_config("qwen2.5-vl-7b", tiny=True)  # patch/merge sizes as full size
    owl = vqa_model = None
    if real == "tiny":
        torch.manual_seed(0)
        owl = OwlSearchModel(str(build_owl(tmp / f"owl-{name}", tiny=True)), device="cpu")
        vqa_model = build_vqa("qwen2.5-vl-7b", True, torch.device("cpu"), torch.float32)
    cache = install_vision_cache(vqa_model) if sharing and vqa_model is not None else None
    prefix = PrefixKVCache() if sharing else None  # prompt-prefix KV reuse (issue 12 item 4)
    vqa = VqaCost(vqa_model, qwen_config, new_tokens=NEW_TOKENS, cache=cache, prefix_cache=prefix)
    chat = ReplayChatModel(decider=ReferenceVQAChatModel(), cost=vqa, counters=counters)
    decider = ReferenceSearchModel(**SEARCH_MODELS[search_model])
    search = ReplaySearchModel(decider, owl, counters)
    settings = SealConfig(
        cache_dir=tmp / "images",
        cue_source="listing" if sharing else "question",
        search=release_search_config() if engine == "release" else SearchConfig(),
    )
    view_cache = DEFAULT_VIEW_CACHE_BYTES if sharing else RELEASE_VIEW_CACHE_BYTES
    graph = build_graph(chat, search, settings, view_cache_bytes=view_cache)
    return System(name, graph, counters, vqa)


def make_scenes(n: int, seed: int) -> list[Scene]:
    scenes = []
    for i in range(n):
        width, height = SIZES[i % len(SIZES)]
        for j, subset in enumerate(SUBSETS):
            scenes.append(
                generate_scene(seed * 1000 + 2 * i + j, width=width, height=height, kind=subset)
            )
    return scenes


def _success(scene: Scene, outcomes: dict[str, Any]) -> list[bool]:
    results = []
    for name, outcome in outcomes.items():
        truth = [t for t in scene.targets if t.shape in name.lower()]
        box = outcome.get("box")
        results.append(
            bool(outcome["found"])
            and box is not None
            and any(Box(*box).iou(t.box) > 0.5 for t in truth)
        )
    return results


def ask(
    system: System, ref: Any, scene: Scene, question: str, options: list[str] | None
) -> dict[str, Any]:
    before = system.counters.snapshot()
    vision_before = system.vqa.cache.stats.images_encoded if system.vqa.cache else 0
    cpu, wall = time.process_time(), time.perf_counter()
    inputs: dict[str, Any] = {"image": ref, "question": question}
    if options is not None:
        inputs["options"] = options
    out = system.graph.invoke(inputs)
    row: dict[str, Any] = {
        "cpu_s": time.process_time() - cpu,
        "wall_s": time.perf_counter() - wall,
    }
    after = system.counters.snapshot()
    for key in (
        "chat_calls",
        "prompt_tokens",
        "prefill_tokens",
        "search_views_encoded",
        "search_phrase_passes",
        "cost_seconds",
    ):
        row[key] = after[key] - before[key]
    if system.vqa.cache is not None:
        row["vqa_images_encoded"] = system.vqa.cache.stats.images_encoded - vision_before
    else:
        row["vqa_images_encoded"] = after["vqa_images"] - before["vqa_images"]
    searches = out.get("searches") or {}
    row["patches_scored"] = sum(o["patches_scored"] for o in searches.values())
    # Every view is the pyramid's rendering of a window at the model's input size, so
    # equal windows are equal pixels: a view cache can do no better within a question
    # than one encoder pass per distinct window (fewer only where pixels coincide).
    windows = {tuple(s["patch"]) for o in searches.values() for s in o.get("trace") or []}
    row["distinct_windows"] = len(windows)
    success = _success(scene, searches)
    row["search_success"] = 100.0 * sum(success) / len(success) if success else None
    if options is not None:
        row["correct"] = 100.0 * (out.get("choice") == 0)
    else:
        row["correct"] = 100.0 * (scene.targets[0].colour in str(out.get("answer", "")).lower())
    row["answer"] = out.get("answer")
    row["targets"] = out.get("targets")
    return row


def _prepared(scene: Scene, tmp: Path) -> Any:
    """The scene's image referenced, decoded, its pyramid levels and global view built:
    work both systems share through the process caches, done outside the timings."""
    ref = to_image_ref(scene.image, cache_dir=tmp / "images")
    ref, pyramid = load_image(ref, cache_dir=tmp / "images")
    pyramid.view(Box.full(pyramid.width, pyramid.height), 64)
    settings = SealConfig()
    encoded_global_view(ref, pyramid, settings.vqa_image_max_side, settings.image_format)
    return ref


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.fmean(values) if values else None


def run(n: int, seed: int, real: str, search_model: str = "reference") -> dict[str, Any]:
    torch.set_num_threads(2)
    scenes = make_scenes(n, seed)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cost-per-question-") as tmp_name:
        tmp = Path(tmp_name)
        systems = [
            build_system(name, engine, sharing, real if costed else "none", tmp, search_model)
            for name, engine, sharing, costed in SYSTEMS
        ]
        warm = generate_scene(seed + 999, width=1024, height=768)
        for system in systems:  # lazy set-up (templates, torch kernels) outside the timings
            ask(system, _prepared(warm, tmp), warm, warm.question, list(warm.options))
        for index, scene in enumerate(scenes):
            ref = _prepared(scene, tmp)
            follow_up = f"What is the color of the {scene.targets[0].shape}?"
            # Alternate which system goes first, so neither always meets colder caches.
            for system in systems if index % 2 == 0 else systems[::-1]:
                for kind, question, options in (
                    ("first", scene.question, list(scene.options)),
                    ("follow-up", follow_up, None),
                ):
                    row = ask(system, ref, scene, question, options)
                    row |= {
                        "system": system.name,
                        "question_kind": kind,
                        "scene": index,
                        "subset": scene.spec.kind,
                        "size": [scene.spec.width, scene.spec.height],
                        "question": question,
                    }
                    rows.append(row)
                    print(
                        f"  {system.name:<6} {kind:<9} {scene.spec.width}x{scene.spec.height} "
                        f"{scene.spec.kind:<17} chat {row['chat_calls']} enc "
                        f"{row['search_views_encoded']} patches {row['patches_scored']} "
                        f"cpu {row['cpu_s']:.2f}s",
                        file=sys.stderr,
                        flush=True,
                    )
            image_cache().clear()
    summary: dict[str, dict[str, Any]] = {}
    for system, *_ in SYSTEMS:
        for kind in ("first", "follow-up"):
            group = [r for r in rows if r["system"] == system and r["question_kind"] == kind]
            summary[f"{system}/{kind}"] = {key: _mean(group, key) for key, _ in METRICS}
    b, a = summary["before/first"], summary["after/first"]
    af = summary["after/follow-up"]
    firsts_after = [r for r in rows if r["system"] == "after" and r["question_kind"] == "first"]
    checks = {
        "chat_calls_at_most_2": max(r["chat_calls"] for r in firsts_after) <= 2,
        "encoder_passes_at_most_0.8x": a["search_views_encoded"] <= 0.8 * b["search_views_encoded"],
        "follow_up_at_most_0.3x": af["search_views_encoded"] <= 0.3 * a["search_views_encoded"],
        "accuracy_unchanged": a["correct"] == b["correct"]
        and af["correct"] == summary["before/follow-up"]["correct"],
        "search_success_unchanged": a["search_success"] == b["search_success"],
        "no_window_encoded_twice_in_a_question": all(
            r["search_views_encoded"] <= r["distinct_windows"] for r in firsts_after
        ),
    }
    passes = {name: summary[f"{name}/first"]["search_views_encoded"] for name, *_ in SYSTEMS}
    ratios = {
        "engine_only": passes["engine_only"] / passes["before"],
        "sharing_only": passes["sharing_only"] / passes["before"],
        "together": passes["after"] / passes["before"],
        "sharing_on_today_engine": passes["after"] / passes["engine_only"],
    }
    if seed == 0 and search_model == "reference":  # the before row against the release's
        recorded = {
            kind: counts[: len(scenes)] for kind, counts in RELEASE_ENCODER_PASSES_SEED_0.items()
        }
        measured = {
            kind: tuple(
                r["search_views_encoded"]
                for r in sorted(rows, key=lambda r: r["scene"])
                if r["system"] == "before" and r["question_kind"] == kind
            )[: len(recorded[kind])]
            for kind in recorded
        }
        checks["before_matches_release_0.1.0"] = measured == recorded
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "real_networks": real,
        "search_model": search_model,
        "before": f"release {RELEASE} ({RELEASE_COMMIT[:7]}) as configured by release_baseline.py",
        "questions": len(scenes),
        "sizes": [list(s) for s in SIZES],
        "new_tokens_per_call": NEW_TOKENS,
        "summary": summary,
        "checks": checks,
        "encoder_pass_ratios": ratios,
        "rows": rows,
    }


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def print_table(report: dict[str, Any]) -> None:
    s = report["summary"]
    print(
        f"\n{report['questions']} questions (+ one follow-up each), means per question; "
        f"real networks: {report['real_networks']} (before and after); search model: "
        f"{report['search_model']}\nbefore: {report['before']}"
    )
    header = (
        f"{'metric':<30} {'before':>9} {'after':>9} {'after/before':>12} "
        f"{'follow-up before':>17} {'follow-up after':>16} {'f-up/first (after)':>19}"
    )
    print(header)
    print("-" * len(header))
    for key, label in METRICS:
        b, a = s["before/first"][key], s["after/first"][key]
        fb, fa = s["before/follow-up"][key], s["after/follow-up"][key]
        ratio = _fmt(a / b) + "x" if a is not None and b else "n/a"
        follow = _fmt(fa / a) + "x" if fa is not None and a else "n/a"
        print(
            f"{label:<30} {_fmt(b):>9} {_fmt(a):>9} {ratio:>12} {_fmt(fb):>17} "
            f"{_fmt(fa):>16} {follow:>19}"
        )
    labels = {
        "before": f"{RELEASE} (engine, no sharing)",
        "engine_only": "today's engine, no sharing",
        "sharing_only": f"{RELEASE} engine + sharing",
        "after": "today's engine + sharing",
    }
    print(
        "\nsearch image-encoder passes per question, decomposed "
        "(engine: which patches a search scores; sharing: view cache, listed cues)"
    )
    header = (
        f"{'system':<34} {'encoder passes':>14} {'x before':>9} {'patches':>8} "
        f"{'distinct windows':>17} {'follow-up passes':>17}"
    )
    print(header)
    print("-" * len(header))
    for name in ("before", "engine_only", "sharing_only", "after"):
        first, follow = s[f"{name}/first"], s[f"{name}/follow-up"]
        ratio = first["search_views_encoded"] / s["before/first"]["search_views_encoded"]
        print(
            f"{labels[name]:<34} {_fmt(first['search_views_encoded']):>14} "
            f"{_fmt(ratio) + 'x':>9} {_fmt(first['patches_scored']):>8} "
            f"{_fmt(first['distinct_windows']):>17} {_fmt(follow['search_views_encoded']):>17}"
        )
    print(
        "\nchecks: "
        + ", ".join(f"{k} {'OK' if v else 'FAIL'}" for k, v in report["checks"].items())
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4, help="scenes per subset (sizes cycle)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real", choices=["tiny", "none"], default="tiny")
    parser.add_argument(
        "--search-model",
        choices=list(SEARCH_MODELS),
        default="reference",
        help="the deciding search model: shape world's reference or a degraded one",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    report = run(args.n, args.seed, args.real, args.search_model)
    if args.out is None:
        suffix = "" if args.search_model == "reference" else f"_{args.search_model}"
        args.out = RESULTS / f"cost_per_question{suffix}.json"
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwrote {args.out}")
    return report


if __name__ == "__main__":
    main()
