"""Search length of every strategy, side by side, on generated hard shape-world scenes.

Like the V* paper's search-length table (vstar-reference.md), on N scenes (default 200):
mostly 4000x3000, plus V*Bench-sized 2246x1582 images, 8K frames, 1:15 panoramas in both
orientations, other camera sizes and a few 12000x9000 scans; targets of 12-40 px; tables
in every scene.
For each strategy: success (found and IoU > 0.5 with the true box), mean and median
patches scored (the search length), the paper's search length (mean patches over the
successful searches only), mean forward passes, wall time per target, and how many
searches the call budget cut short; a ``root-only`` row scores the root view alone and a
``ceiling`` row is the share of targets the model confirms (a box with IoU > 0.5 above
``confidence_high``) when shown a native-resolution window centred on them.

``--mode`` picks the search model: shape world's reference model, its weak-heatmap mode
(shape evidence only for shapes of at least a ViT patch in model pixels), its fallible
mode (confident false boxes on clutter, missed detections, seeded per view), or ``all``
three side by side on the same scenes, each with issue 7's targets checked.

Where vstar and the sliding window both run, each search's passes are also priced as
OWLv2-B/16 network time on an H100, from the measured latency of a forward of n views
(``results/gpu_owl_batches_cuda.json``, written by ``gpu_latency.py --vqa none``): a
model, not a GPU run, to show what a pass costs next to a view.

Separately, on one 12000x9000 scene: the time to prepare each visited patch's view
through the pyramid versus cropping and resizing from full resolution, and the peak
memory of a whole vstar search (in a fresh process) relative to the decoded image.

    python benchmarks/search_length.py            # the full run (N=200)
    python benchmarks/search_length.py --n 30     # a quick look during development
    python benchmarks/search_length.py --quick    # smoke run: 6 scenes, no 12000x9000
    python benchmarks/search_length.py --mode all --n 40 --no-views --no-memory

Writes benchmarks/results/search_length.json.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402

from seal_agent.imaging.geometry import Box, view_size  # noqa: E402
from seal_agent.imaging.pyramid import ImagePyramid  # noqa: E402
from seal_agent.search.config import STRATEGIES, SearchConfig  # noqa: E402
from seal_agent.search.engine import VStarSearch  # noqa: E402
from seal_agent.search.protocol import DeclarationsShowThrough, SearchModel  # noqa: E402
from seal_agent.shapeworld.perception.degradations import (  # noqa: E402
    Fallibility,
    WeakHeatmap,
)
from seal_agent.shapeworld.scene import (  # noqa: E402
    Scene,
    SceneSpec,
    SceneSpecError,
    generate_scene,
)

RESULTS = REPO / "benchmarks" / "results" / "search_length.json"

#: One cycle of 20 scene sizes (4000x3000 first, then V*Bench's 2246x1582, 8K frames,
#: 1:15 panoramas both ways, portrait, 3:1, a 20 MP camera frame, a square); every 80th
#: scene (index 19, 99, 179) is a 12000x9000 scan instead: a few, as they cost ~40x more.
SIZE_CYCLE: tuple[tuple[int, int], ...] = (
    *[(4000, 3000)] * 9,
    *[(2246, 1582)] * 3,
    *[(7680, 4320)] * 2,
    (9000, 600),
    (600, 9000),
    (3000, 4000),
    (6000, 2000),
    (5472, 3648),
    (2000, 2000),
)
SCAN_SIZE = (12000, 9000)
SEED_RETRY_STRIDE = 1_000_003

#: vstar variants that switch one departure off (``--ablations``), to measure each.
ABLATIONS: dict[str, dict[str, Any]] = {
    "vstar-no-zoom": {"strategy": "vstar", "candidate_zoom": False},
    "vstar-no-overlap": {"strategy": "vstar", "split_overlap": 0.0},
    "vstar-ref-priority": {"strategy": "vstar", "priority": "reference"},
    "vstar-context-only": {"strategy": "vstar", "weak_cue": "context"},
    "vstar-target-only": {"strategy": "vstar", "weak_cue": "target"},
    "vstar-native-tiles": {"strategy": "vstar", "native_tiles": 9},
    "vstar-batch2": {"strategy": "vstar", "batch_size": 2},
    "vstar-batch4": {"strategy": "vstar", "batch_size": 4},
    "vstar-lazy-context": {"strategy": "vstar", "context_first": False},
    "vstar-peek-windows": {"strategy": "vstar", "peek_windows": True},
    "vstar-no-weak-cue-tiles": {"strategy": "vstar", "weak_cue_tiles": 0},
    "vstar-guess-windows": {"strategy": "vstar", "guess_windows": True},
    "vstar-tie-weak-root": {"strategy": "vstar", "tie_weak_root": True},
}


# -- scenes ---------------------------------------------------------------------------------
def scene_size(index: int) -> tuple[int, int]:
    if index % 80 == 19:
        return SCAN_SIZE
    return SIZE_CYCLE[index % len(SIZE_CYCLE)]


def scene_spec(index: int, allow_scans: bool = True) -> SceneSpec:
    width, height = scene_size(index)
    if not allow_scans and (width, height) == SCAN_SIZE:
        width, height = 4000, 3000
    kind = "relative_position" if index % 4 == 3 else "direct_attributes"
    return SceneSpec(width=width, height=height, kind=kind, n_tables=(1, 4))


def make_scene(index: int, seed: int, allow_scans: bool = True) -> Scene:
    """Scene ``index`` of the benchmark; a spec the generator cannot fill (a crowded
    panorama) is retried with the next seeds, so the size mix stays as designed."""
    spec = scene_spec(index, allow_scans)
    problem: SceneSpecError | None = None
    for attempt in range(5):
        try:
            return generate_scene(seed + attempt * SEED_RETRY_STRIDE, spec)
        except SceneSpecError as exc:
            problem = exc
    raise RuntimeError(f"scene {index} could not be generated: {problem}") from problem


#: The search models ``--mode`` compares; whether each one's heatmap carries signal at
#: coarse views (issue 7's patches <= 0.6x bfs target applies only where it does).
MODES: tuple[str, ...] = ("reference", "weak", "fallible")
HEATMAP_SIGNAL = {"reference": True, "weak": False, "fallible": True}


def reference_model(
    input_size: int, mode: str = "reference", forward_batch: int | None = None
) -> SearchModel:
    """Shape world's reference search model, or one of its honest degradations;
    ``forward_batch``: the views per forward pass it declares (None: none)."""
    from seal_agent.shapeworld.search_model import ReferenceSearchModel

    common: dict[str, Any] = {"input_size": input_size, "max_batch_size": forward_batch}
    if mode == "reference":
        return ReferenceSearchModel(**common)
    if mode == "weak":
        return ReferenceSearchModel(**common, weak_heatmap=WeakHeatmap())
    if mode == "fallible":
        return ReferenceSearchModel(**common, fallible=Fallibility())
    raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")


def context_cue_for(scene: Scene) -> Callable[[str], str | None]:
    """What the reference VQA model answers when asked where a target usually is.

    It names "table" when it sees tables in the global image (shape-world.md); the
    tables are large, so that is whenever the scene has any.
    """
    phrase = "table" if scene.tables else None

    def cue(target: str) -> str | None:
        return phrase

    return cue


# -- a shared prediction cache with honest time accounting ----------------------------------
class CachedModel(DeclarationsShowThrough):
    """Memoises a model's answers per (view pixels, phrases) within one scene.

    The strategies score many of the same patches (bfs, dfs, the random orders and vstar
    share one tree), so the benchmark computes each view's answer once. So that wall
    times stay those of an uncached run, every answer carries the seconds its computation
    took, and a search is charged those seconds whether it computed or reused it:
    ms/target = (search time - model time actually spent) + model time charged.
    """

    def __init__(self, model: SearchModel, memoise: bool = True) -> None:
        self.model = model
        self.input_size = model.input_size
        self.thresholds = model.thresholds
        self.memoise = memoise
        self._scales = _accepts_scales(model)
        self._cache: dict[tuple[bytes, tuple[str, ...], Any], tuple[list[Any], float]] = {}
        self.spent = 0.0  # seconds really spent in the model
        self.charged = 0.0  # seconds an uncached run would have spent
        self.pass_sizes: list[int] = []  # views per predict call, reused answers included

    @property
    def declaring_model(self) -> object:
        """The optional protocol parts (issue 7) are the wrapped model's."""
        return self.model

    def clear(self) -> None:
        self._cache.clear()

    def predict(self, views: Any, phrases: Any, *, scales: Any = None) -> list[list[Any]]:
        self.pass_sizes.append(len(views))
        if not self._scales:
            scales = None
        if not self.memoise:
            self._cache.clear()
        keys = [
            (
                hashlib.blake2b(v.tobytes(), digest_size=16).digest(),
                tuple(phrases),
                None if scales is None else scales[i],
            )
            for i, v in enumerate(views)
        ]
        missing = [i for i, k in enumerate(keys) if k not in self._cache]
        if missing:
            started = time.perf_counter()
            if scales is None:
                answers = self.model.predict([views[i] for i in missing], list(phrases))
            else:
                answers = self.model.predict(  # type: ignore[call-arg]
                    [views[i] for i in missing],
                    list(phrases),
                    scales=[scales[i] for i in missing],
                )
            seconds = time.perf_counter() - started
            self.spent += seconds
            if not isinstance(answers, list) or len(answers) != len(missing):
                return answers  # malformed: let the search report it
            for i, answer in zip(missing, answers, strict=True):
                self._cache[keys[i]] = (answer, seconds / len(missing))
        out = []
        for key in keys:
            answer, seconds = self._cache[key]
            self.charged += seconds
            out.append(answer)
        return out


#: OWLv2-B/16 per pass on an H100 (gpu_latency.py --vqa none): ms for one forward of n views.
OWL_PASS_LATENCY = REPO / "benchmarks" / "results" / "gpu_owl_batches_cuda.json"


def owl_pass_cost() -> Callable[[int], float] | None:
    """Milliseconds OWLv2 on an H100 takes for a pass of n views, as the library runs it
    (forwards of at most ``OwlSearchModel``'s ``max_batch_size`` views), from the measured
    per-forward latencies; ``None`` without the measurement.

    A search's network time on a GPU, modelled from its passes' sizes: it shows whether
    fewer, fuller passes or fewer views is what saves time.
    """
    import inspect

    from seal_agent.models.owl import OwlSearchModel

    try:
        rows = json.loads(OWL_PASS_LATENCY.read_text())["search_model"]["batches"]
    except (OSError, KeyError, ValueError):
        return None
    measured = {int(r["batch"]): float(r["latency_ms"]) for r in rows}
    forward = int(inspect.signature(OwlSearchModel).parameters["max_batch_size"].default)
    if any(n not in measured for n in range(1, forward + 1)):
        return None

    def cost(views: int) -> float:
        full, rest = divmod(views, forward)
        return full * measured[forward] + (measured[rest] if rest else 0.0)

    return cost


def _accepts_scales(model: object) -> bool:
    try:
        from seal_agent.search.protocol import accepts_scales
    except ImportError:  # an engine without the optional scales argument
        return False
    return accepts_scales(model)


# -- runs -------------------------------------------------------------------------------------
@dataclass
class Record:
    mode: str
    strategy: str
    scene: int
    seed: int
    width: int
    height: int
    target: str
    target_side: int
    on_table: bool
    found: bool
    success: bool
    iou: float
    patches_scored: int
    forward_passes: int
    seconds: float
    stop_reason: str
    owl_gpu_ms: float | None = None  # modelled: OWLv2 on an H100 for these passes


def strategy_config(name: str, max_calls: int) -> SearchConfig:
    fields = ABLATIONS.get(name, {"strategy": name})
    return SearchConfig(**fields, max_calls=max_calls, deadline_s=None)


def root_only(model: SearchModel, pyramid: ImagePyramid, target: str) -> tuple[Box | None, float]:
    """The best box on the root view alone (no search), as the VQA model's view would be."""
    view, frame = pyramid.view(Box.full(pyramid.width, pyramid.height), model.input_size)
    prediction = model.predict([view], [target])[0][0]
    best = prediction.best()
    if best is None:
        return None, 0.0
    return frame.to_image(Box(*best.box)).clip(pyramid.width, pyramid.height), best.score


def native_window_confirms(
    model: SearchModel, pyramid: ImagePyramid, truth: Box, phrase: str
) -> bool:
    """The ceiling: does the model confirm the target in a native window centred on it?

    The window is ``input_size`` original pixels square (shifted inside the image), so
    the model sees the target at native resolution; confirmed means a box with IoU > 0.5
    scored at or above ``confidence_high``.
    """
    side = model.input_size
    cx, cy = truth.center
    x1 = min(max(0.0, cx - side / 2), max(0.0, pyramid.width - side))
    y1 = min(max(0.0, cy - side / 2), max(0.0, pyramid.height - side))
    window = Box(x1, y1, x1 + side, y1 + side).clip(pyramid.width, pyramid.height).round_out()
    view, frame = pyramid.view(window, model.input_size)
    prediction = model.predict([view], [phrase])[0][0]
    high = model.thresholds.confidence_high
    return any(
        d.score >= high
        and frame.to_image(Box(*d.box)).clip(pyramid.width, pyramid.height).iou(truth) > 0.5
        for d in prediction.detections
    )


def run_scene(
    index: int,
    scene: Scene,
    model: SearchModel,
    strategies: list[str],
    max_calls: int,
    mode: str = "reference",
    pass_cost: Callable[[int], float] | None = None,
) -> Iterator[Record]:
    pyramid = ImagePyramid(scene.image)
    # Build the coarse levels once, outside the timed searches (every strategy shares them).
    pyramid.view(Box.full(pyramid.width, pyramid.height), model.input_size)
    cue = context_cue_for(scene)
    low = model.thresholds.confidence_low
    cached = model if isinstance(model, CachedModel) else None
    if cached is not None:
        cached.clear()
    for target in scene.targets:
        truth = target.box
        for name in strategies:
            spent = cached.spent if cached is not None else 0.0
            charged = cached.charged if cached is not None else 0.0
            first_pass = len(cached.pass_sizes) if cached is not None else 0
            started = time.perf_counter()
            if name == "root-only":
                box, score = root_only(model, pyramid, target.shape)
                found, patches, passes, reason = score >= low, 1, 1, "root"
            elif name == "ceiling":
                found = native_window_confirms(model, pyramid, truth, target.shape)
                box = truth if found else None
                patches, passes, reason = 1, 1, "native-window"
            else:
                result = VStarSearch(model, strategy_config(name, max_calls)).search(
                    pyramid, target.shape, context_cue=cue
                )
                box, found = result.box, result.found
                patches, passes, reason = (
                    result.patches_scored,
                    result.forward_passes,
                    result.stop_reason,
                )
            seconds = time.perf_counter() - started
            if cached is not None:  # charge the model time an uncached run would spend
                seconds += (cached.charged - charged) - (cached.spent - spent)
            iou = box.iou(truth) if box is not None else 0.0
            owl_ms = None
            if cached is not None and pass_cost is not None:
                owl_ms = round(sum(map(pass_cost, cached.pass_sizes[first_pass:])), 2)
            yield Record(
                mode=mode,
                strategy=name,
                scene=index,
                seed=scene.seed,
                width=scene.spec.width,
                height=scene.spec.height,
                target=target.shape,
                target_side=target.side,
                on_table=target.on_table,
                found=found,
                success=found and iou > 0.5,
                iou=round(iou, 4),
                patches_scored=patches,
                forward_passes=passes,
                seconds=seconds,
                stop_reason=reason,
                owl_gpu_ms=owl_ms,
            )


def summarise(records: list[Record], strategies: list[str]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for name in strategies:
        rows = [r for r in records if r.strategy == name]
        if not rows:
            continue
        patches = [r.patches_scored for r in rows]
        table[name] = {
            "targets": len(rows),
            "success_rate": sum(r.success for r in rows) / len(rows),
            "mean_patches": statistics.fmean(patches),
            "median_patches": statistics.median(patches),
            "mean_passes": statistics.fmean(r.forward_passes for r in rows),
            "mean_patches_when_found": (
                statistics.fmean(r.patches_scored for r in rows if r.success)
                if any(r.success for r in rows)
                else None
            ),
            "ms_per_target": 1000 * statistics.fmean(r.seconds for r in rows),
            "budget_hits": sum(r.stop_reason == "budget" for r in rows),
            "mean_owl_gpu_ms": (
                statistics.fmean(r.owl_gpu_ms for r in rows if r.owl_gpu_ms is not None)
                if all(r.owl_gpu_ms is not None for r in rows)
                else None
            ),
        }
    bfs = table.get("bfs")
    for row in table.values():
        row["patches_vs_bfs"] = row["mean_patches"] / bfs["mean_patches"] if bfs else None
    return table


def by_size(records: list[Record], strategies: list[str]) -> dict[str, dict[str, Any]]:
    sizes = sorted({(r.width, r.height) for r in records}, key=lambda s: -s[0] * s[1])
    out: dict[str, dict[str, Any]] = {}
    for w, h in sizes:
        subset = [r for r in records if (r.width, r.height) == (w, h)]
        out[f"{w}x{h}"] = {
            name: {
                "success_rate": statistics.fmean(r.success for r in rows),
                "mean_patches": statistics.fmean(r.patches_scored for r in rows),
                "targets": len(rows),
            }
            for name in strategies
            if (rows := [r for r in subset if r.strategy == name])
        }
    return out


# -- views and memory on a 12000x9000 scan ---------------------------------------------------
def view_timing(scene: Scene, model: SearchModel, max_calls: int) -> dict[str, Any]:
    """Median ms per view of the patches vstar and bfs visit: pyramid vs full resolution."""
    image = scene.image
    pyramid = ImagePyramid(image)
    started = time.perf_counter()
    pyramid.view(Box.full(image.width, image.height), 8)  # builds every level
    build_ms = 1000 * (time.perf_counter() - started)
    target = scene.targets[0].shape
    size = model.input_size
    traces: dict[str, list[tuple[Box, int]]] = {}
    for name in ("vstar", "bfs"):
        result = VStarSearch(model, strategy_config(name, max_calls)).search(
            pyramid, target, context_cue=context_cue_for(scene)
        )
        traces[name] = [(step.patch, step.level) for step in result.trace]

    def through_pyramid(patch: Box) -> None:
        pyramid.view(patch, size)

    def from_full_resolution(patch: Box) -> None:
        # What the reference does: crop the patch, then resize it for the model.
        b = patch.round_out()
        crop = image.crop((int(b.x1), int(b.y1), int(b.x2), int(b.y2)))
        crop.resize(view_size(patch, size), Image.Resampling.BOX)

    def timed(fn: Callable[[Box], None], patch: Box) -> float:
        started = time.perf_counter()
        fn(patch)
        return 1000 * (time.perf_counter() - started)

    out: dict[str, Any] = {"levels_build_ms": build_ms, "sets": {}}
    for name, visited in traces.items():
        pyr = [timed(through_pyramid, p) for p, _ in visited]
        full = [timed(from_full_resolution, p) for p, _ in visited]
        levels = sorted({lv for _, lv in visited})
        per_level = {}
        for level in levels:
            idx = [i for i, (_, lv) in enumerate(visited) if lv == level]
            per_level[str(level)] = {
                "views": len(idx),
                "pyramid_median_ms": statistics.median(pyr[i] for i in idx),
                "full_median_ms": statistics.median(full[i] for i in idx),
            }
        out["sets"][name] = {
            "views": len(visited),
            "pyramid_median_ms": statistics.median(pyr),
            "full_resolution_median_ms": statistics.median(full),
            "speedup_of_medians": statistics.median(full) / statistics.median(pyr),
            "pyramid_total_ms": sum(pyr),
            "full_resolution_total_ms": sum(full),
            "per_level": per_level,
        }
    return out


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_probe(path: str, target: str, input_size: int, context: str | None) -> None:
    """Child process: decode the image, run one vstar search, report RSS (KiB) as JSON."""
    model = reference_model(input_size)
    model.predict([Image.new("RGB", (input_size, input_size))], [target])  # lazy init
    baseline = _rss_kib("VmRSS")
    image = Image.open(path)
    image.load()  # decode in place (a .copy() here would double the peak)
    decoded = _rss_kib("VmRSS")
    result = VStarSearch(model, SearchConfig(max_calls=4000, deadline_s=None)).search(
        image, target, context_cue=lambda t: context
    )
    print(
        json.dumps(
            {
                "baseline_kib": baseline,
                "after_decode_kib": decoded,
                "peak_kib": _rss_kib("VmHWM"),
                "width": image.width,
                "height": image.height,
                "found": result.found,
                "patches_scored": result.patches_scored,
            }
        )
    )


def peak_memory(scene: Scene, input_size: int) -> dict[str, Any]:
    """Peak RSS of a whole vstar search in a fresh process, relative to the decoded image.

    tracemalloc does not see PIL's pixel buffers, so the child reads the kernel's RSS
    high-water mark (VmHWM). The baseline (interpreter, numpy, scipy, the model) is the
    RSS just before the image is decoded; the search's cost is the peak above it, which
    includes the decoded image itself (PIL keeps RGB at 4 bytes a pixel), the pyramid's
    levels and every view, heatmap and table of the search.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "scan.ppm")  # uncompressed: decoding streams, no file copy
        scene.image.save(path, format="PPM")
        context = "table" if scene.tables else "none"
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--memory-probe",
                path,
                "--probe-target",
                scene.targets[0].shape,
                "--probe-context",
                context,
                "--input-size",
                str(input_size),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    decoded_bytes = probe["width"] * probe["height"] * 3
    search_bytes = (probe["peak_kib"] - probe["baseline_kib"]) * 1024
    return {
        **probe,
        "decoded_image_bytes": decoded_bytes,
        "peak_above_baseline_bytes": search_bytes,
        "peak_over_decoded": search_bytes / decoded_bytes,
    }


# -- printing ---------------------------------------------------------------------------------
def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def print_table(table: dict[str, dict[str, Any]]) -> None:
    header = (
        f"{'strategy':<20}{'targets':>8}{'success':>9}{'mean':>8}{'median':>8}"
        f"{'paper len':>10}{'passes':>8}{'vs bfs':>8}{'ms/target':>11}{'budget':>8}"
        f"{'OWL ms*':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, row in table.items():
        ratio = row["patches_vs_bfs"]
        print(
            f"{name:<20}{row['targets']:>8}{_pct(row['success_rate']):>9}"
            f"{row['mean_patches']:>8.1f}{row['median_patches']:>8.1f}"
            f"{_num(row['mean_patches_when_found']):>10}{row['mean_passes']:>8.1f}"
            f"{(f'{ratio:.2f}x' if ratio is not None else '-'):>8}"
            f"{row['ms_per_target']:>11.0f}{row['budget_hits']:>8}"
            f"{_num(row['mean_owl_gpu_ms']):>9}"
        )
    print("* OWLv2 network ms per search on an H100, modelled from each pass's views")


def print_side_by_side(tables: dict[str, dict[str, dict[str, Any]]]) -> None:
    """One row per strategy, the modes' success / patches / passes / vs-bfs side by side."""
    modes = list(tables)
    names: list[str] = []
    for table in tables.values():
        names += [n for n in table if n not in names]
    cell = f"{'success':>8}{'patches':>8}{'len':>7}{'passes':>8}{'vs bfs':>7}"
    print(f"{'':<20}" + "".join(f"{m:^38}|" for m in modes))
    print(f"{'strategy':<20}" + "".join(f"{cell}|" for _ in modes))
    print("-" * (20 + 39 * len(modes)))
    for name in names:
        line = f"{name:<20}"
        for mode in modes:
            row = tables[mode].get(name)
            if row is None:
                line += f"{'':>38}|"
                continue
            ratio = row["patches_vs_bfs"]
            line += (
                f"{_pct(row['success_rate']):>8}{row['mean_patches']:>8.1f}"
                f"{_num(row['mean_patches_when_found']):>7}{row['mean_passes']:>8.1f}"
                f"{(f'{ratio:.2f}x' if ratio is not None else '-'):>7}|"
            )
        print(line)


def print_owl_gpu_time(tables: dict[str, dict[str, dict[str, Any]]]) -> None:
    """vstar against the sliding window in passes and in modelled OWLv2 GPU time."""
    print(
        "\nOWLv2-B/16 network time per search on an H100, modelled from each pass's views "
        f"({OWL_PASS_LATENCY.name}; forwards of at most 4 views):"
    )
    print(f"{'mode':<12}{'vstar ms':>10}{'SW ms':>9}{'ratio':>8}{'passes ratio':>14}")
    for mode, table in tables.items():
        v, sw = table.get("vstar"), table.get("sliding-window")
        if not v or not sw or v["mean_owl_gpu_ms"] is None or sw["mean_owl_gpu_ms"] is None:
            continue
        print(
            f"{mode:<12}{v['mean_owl_gpu_ms']:>10.1f}{sw['mean_owl_gpu_ms']:>9.1f}"
            f"{v['mean_owl_gpu_ms'] / sw['mean_owl_gpu_ms']:>7.2f}x"
            f"{v['mean_passes'] / sw['mean_passes']:>13.2f}x"
        )


Check = tuple[str, bool | None, str]


def check_targets(
    table: dict[str, dict[str, Any]], views: dict[str, Any] | None, memory: dict[str, Any] | None
) -> list[Check]:
    """Issue 2's targets on the reference model (kept for comparison with 0.1.0)."""
    checks: list[Check] = []
    v = table.get("vstar")
    if v:
        checks.append(
            ("vstar success >= 95%", v["success_rate"] >= 0.95, f"{100 * v['success_rate']:.1f}%")
        )
        if (sw := table.get("sliding-window")) is not None:
            gap = 100 * (sw["success_rate"] - v["success_rate"])
            checks.append(("vstar within 2 points of sliding-window", gap <= 2, f"gap {gap:.1f}"))
        for name, bound in (("bfs", 0.6), ("random-bfs", 1.0), ("seal", 1.0)):
            if (other := table.get(name)) is not None:
                ratio = v["mean_patches"] / other["mean_patches"]
                op = "<=" if name == "bfs" else "<"
                ok = ratio <= bound if name == "bfs" else ratio < bound
                checks.append((f"vstar mean patches {op} {bound}x {name}", ok, f"{ratio:.2f}x"))
    if (root := table.get("root-only")) is not None:
        checks.append(
            (
                "root-only success <= 20%",
                root["success_rate"] <= 0.2,
                f"{100 * root['success_rate']:.1f}%",
            )
        )
    if views:
        s = views["sets"]["vstar"]["speedup_of_medians"]
        checks.append(("pyramid >= 5x faster per view (vstar's views)", s >= 5, f"{s:.1f}x"))
    if memory:
        m = memory["peak_over_decoded"]
        checks.append(("peak memory < 3x decoded image", m < 3, f"{m:.2f}x"))
    return checks


#: Today's figures on the reference model (README, 200 scenes): not to be lost.
REFERENCE_SUCCESS = 0.992
REFERENCE_PATCHES = 5.5


def issue7_targets(
    table: dict[str, dict[str, Any]], mode: str, signal: bool | None = None
) -> list[Check]:
    """Issue 7 item 7's targets for one mode; ``None`` marks a target that does not apply.

    ``signal``: whether the model's coarse heatmaps carry signal (default: by mode).
    """
    checks: list[Check] = []
    v, sw, bfs = table.get("vstar"), table.get("sliding-window"), table.get("bfs")
    ceiling = table.get("ceiling")
    if v is None:
        return checks
    if sw is not None:
        checks.append(
            (
                "vstar success >= sliding-window's",
                v["success_rate"] >= sw["success_rate"],
                f"{_pct(v['success_rate'])} vs {_pct(sw['success_rate'])}",
            )
        )
    if ceiling is not None:
        allows = ceiling["success_rate"] >= 0.95
        checks.append(
            (
                "vstar success >= 95% (the ceiling allows it)"
                if allows
                else "vstar success >= 95% (n/a: ceiling below 95%)",
                v["success_rate"] >= 0.95 if allows else None,
                f"{_pct(v['success_rate'])}, ceiling {_pct(ceiling['success_rate'])}",
            )
        )
    if sw is not None:
        ratio = v["mean_passes"] / sw["mean_passes"]
        checks.append(
            (
                "vstar forward passes <= 0.5x sliding-window's",
                ratio <= 0.5,
                f"{ratio:.2f}x ({v['mean_passes']:.1f} vs {sw['mean_passes']:.1f})",
            )
        )
    if bfs is not None:
        ratio = v["mean_patches"] / bfs["mean_patches"]
        if signal is None:
            signal = HEATMAP_SIGNAL.get(mode, True)
        checks.append(
            (
                "vstar patches <= 0.6x bfs's"
                + ("" if signal else " (n/a: coarse heatmap carries no signal)"),
                ratio <= 0.6 if signal else None,
                f"{ratio:.2f}x",
            )
        )
    if mode == "reference":
        checks.append(
            (
                f"reference: vstar success >= {100 * REFERENCE_SUCCESS:.1f}%",
                v["success_rate"] >= REFERENCE_SUCCESS,
                _pct(v["success_rate"]),
            )
        )
        checks.append(
            (
                f"reference: vstar mean patches <= {REFERENCE_PATCHES}",
                v["mean_patches"] <= REFERENCE_PATCHES,
                f"{v['mean_patches']:.2f}",
            )
        )
    return checks


def print_checks(title: str, checks: list[Check]) -> None:
    print(title)
    for label, ok, value in checks:
        mark = "n/a " if ok is None else ("met " if ok else "MISS")
        print(f"  [{mark}] {label}: {value}")


# -- main -------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="scenes (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="first scene seed")
    parser.add_argument(
        "--strategies",
        default=",".join([*STRATEGIES, "root-only", "ceiling"]),
        help="comma-separated; also root-only, ceiling and the vstar ablations: "
        + ", ".join(ABLATIONS),
    )
    parser.add_argument(
        "--mode",
        default="reference",
        choices=[*MODES, "all"],
        help="search model: shape world's reference, its weak-heatmap or fallible mode, or all",
    )
    parser.add_argument("--ablations", action="store_true", help="add every vstar ablation")
    parser.add_argument("--quick", action="store_true", help="6 scenes, no scans, no extras")
    parser.add_argument("--max-calls", type=int, default=4000, help="per-search call budget")
    parser.add_argument("--input-size", type=int, default=512)
    parser.add_argument(
        "--forward-batch",
        type=int,
        default=None,
        help="the model declares this many views per forward pass (OWLv2 on a GPU: 4); "
        "every batching strategy then batches at most that many",
    )
    parser.add_argument("--no-views", action="store_true", help="skip the 12000x9000 timing")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory probe")
    parser.add_argument("--no-scans", action="store_true", help="4000x3000 instead of 12000x9000")
    parser.add_argument(
        "--no-cache", action="store_true", help="recompute every view (slower; same numbers)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    parser.add_argument("--probe-target", help=argparse.SUPPRESS)
    parser.add_argument("--probe-context", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.memory_probe:
        context = None if args.probe_context in (None, "none") else args.probe_context
        memory_probe(args.memory_probe, args.probe_target, args.input_size, context)
        return 0

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if args.ablations:
        strategies += [a for a in ABLATIONS if a not in strategies]
    known = {*STRATEGIES, "root-only", "ceiling", *ABLATIONS}
    if unknown := [s for s in strategies if s not in known]:
        parser.error(f"unknown strategies: {', '.join(unknown)}")
    n = 6 if args.quick else args.n
    modes = list(MODES) if args.mode == "all" else [args.mode]
    models: dict[str, SearchModel] = {}
    for mode in modes:
        model = reference_model(args.input_size, mode, args.forward_batch)
        models[mode] = CachedModel(model, memoise=not args.no_cache)
    pass_cost = owl_pass_cost()

    records: list[Record] = []
    started = time.perf_counter()
    for index in range(n):
        seed = args.seed + index
        scene = make_scene(index, seed, allow_scans=not (args.quick or args.no_scans))
        progress = []
        for mode, model in models.items():
            scene_records = list(
                run_scene(index, scene, model, strategies, args.max_calls, mode, pass_cost)
            )
            records.extend(scene_records)
            progress.append(
                f"{mode}: "
                + ", ".join(
                    f"{r.target}({r.target_side}px):{r.patches_scored}{'' if r.success else '!'}"
                    for r in scene_records
                    if r.strategy == "vstar"
                )
            )
        print(
            f"[{index + 1}/{n}] {scene.spec.width}x{scene.spec.height} vstar "
            f"{'; '.join(progress)}  {time.perf_counter() - started:.0f}s",
            file=sys.stderr,
            flush=True,
        )
        del scene
        gc.collect()
    search_seconds = time.perf_counter() - started

    tables = {mode: summarise([r for r in records if r.mode == mode], strategies) for mode in modes}
    views = memory = None
    if not args.quick and not (args.no_views and args.no_memory):
        scan = generate_scene(
            args.seed + 100_000, SceneSpec(width=12000, height=9000, n_tables=(1, 4))
        )
        if not args.no_views:
            views = view_timing(scan, models[modes[0]], args.max_calls)
        if not args.no_memory:
            memory = peak_memory(scan, args.input_size)
        del scan
        gc.collect()

    n_targets = sum(1 for r in records if r.mode == modes[0] and r.strategy == strategies[0])
    print(
        f"\nSearch length on {n} scenes, {n_targets} targets (seed {args.seed}, input_size "
        f"{args.input_size}, max_calls {args.max_calls}, modes {', '.join(modes)}); "
        f"{search_seconds:.0f} s"
    )
    print(
        "success: found and IoU > 0.5; mean/median: patches scored; paper len: mean "
        "patches over successful searches (the paper's search length); passes: forward passes"
    )
    for mode in modes:
        print(f"\n== mode: {mode} ==")
        print_table(tables[mode])
    if len(modes) > 1:
        print("\nSide by side (len = the paper's search length, successful searches only):")
        print_side_by_side(tables)
    if pass_cost is not None and "vstar" in strategies and "sliding-window" in strategies:
        print_owl_gpu_time(tables)
    if views:
        print("\nView preparation on a 12000x9000 scan (median ms per view):")
        for name, s in views["sets"].items():
            print(
                f"  {name:<6} {s['views']:>4} views: pyramid {s['pyramid_median_ms']:.2f} ms, "
                f"full resolution {s['full_resolution_median_ms']:.2f} ms "
                f"({s['speedup_of_medians']:.1f}x); totals {s['pyramid_total_ms']:.0f} vs "
                f"{s['full_resolution_total_ms']:.0f} ms"
            )
        print(f"  building all pyramid levels once: {views['levels_build_ms']:.0f} ms")
    if memory:
        print(
            f"\nPeak memory of a vstar search on {memory['width']}x{memory['height']}: "
            f"{memory['peak_above_baseline_bytes'] / 2**20:.0f} MiB above the baseline, "
            f"{memory['peak_over_decoded']:.2f}x the decoded RGB image "
            f"({memory['decoded_image_bytes'] / 2**20:.0f} MiB)"
        )
    checks: dict[str, list[Check]] = {}
    if "reference" in tables:
        checks["issue 2 (reference)"] = check_targets(tables["reference"], views, memory)
    for mode in modes:
        checks[f"issue 7 ({mode})"] = issue7_targets(tables[mode], mode)
    for title, found in checks.items():
        if found:
            print_checks(f"\nTargets, {title}:", found)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "config": {
            "n": n,
            "seed": args.seed,
            "modes": modes,
            "strategies": strategies,
            "max_calls": args.max_calls,
            "input_size": args.input_size,
            "search_seconds": search_seconds,
            "command": " ".join(sys.argv),
        },
        "summary": tables[modes[0]] if len(modes) == 1 else tables,
        "by_mode": tables,
        "by_size": {
            mode: by_size([r for r in records if r.mode == mode], strategies) for mode in modes
        },
        "view_timing": views,
        "memory": memory,
        "targets": {
            title: [{"check": c, "met": ok, "value": v} for c, ok, v in found]
            for title, found in checks.items()
        },
        "records": [asdict(r) for r in records],
    }
    args.output.write_text(json.dumps(payload, indent=1))
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
