"""Does calibration recover the shipped thresholds? Shape world's reference search model.

Calibrates ``ReferenceSearchModel`` on a generated V*Bench-format set (``--calib``
scenes per subset, seed 1; measured once, thresholds chosen for each ``--precision``),
then runs the vstar search on a separate generated set (``--eval`` scenes per subset,
seed 2: no scene is shared) side by side: with the shipped ``REFERENCE_THRESHOLDS`` and
with each calibrated profile. Success = found with IoU > 0.5 (V*Bench's criterion);
patches = the search length. The claim (issue 8) holds when a calibrated row is within
2 points of success and 10 % of mean patches of the shipped one.

Every scene has tables, and the context cue names "table" (what the reference VQA model
answers when it sees tables); sizes alternate between 4000x3000 and V*Bench's 2246x1582.

    python benchmarks/calibration.py                   # 20 + 30 scenes per subset
    python benchmarks/calibration.py --calib 6 --eval 8 --precision 0.9

Writes benchmarks/results/calibration.json (and the profiles beside it).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from seal_agent.calibration import build_profile, measure_items, save_profile  # noqa: E402
from seal_agent.evaluation.dataset import load_vstar_dataset  # noqa: E402
from seal_agent.imaging.loading import load_image, to_image_ref  # noqa: E402
from seal_agent.search import ModelThresholds, SearchConfig, VStarSearch  # noqa: E402
from seal_agent.shapeworld import (  # noqa: E402
    REFERENCE_THRESHOLDS,
    ReferenceSearchModel,
    SceneSpec,
    write_dataset,
)

RESULTS = REPO / "benchmarks" / "results" / "calibration.json"
PROFILE = REPO / "benchmarks" / "results" / "calibration_profile.json"
SIZES = ((4000, 3000), (2246, 1582))
SPEC = SceneSpec(n_tables=(1, 4))


def run_searches(
    data: Path, model: ReferenceSearchModel, thresholds: ModelThresholds, max_calls: int
) -> dict[str, Any]:
    config = SearchConfig(thresholds=thresholds, max_calls=max_calls, deadline_s=None)
    search = VStarSearch(model, config)
    rows = []
    for item in load_vstar_dataset(data):
        _, pyramid = load_image(to_image_ref(item.image_path))
        for name, truth in zip(item.target_objects, item.target_boxes, strict=True):
            result = search.search(pyramid, name, context_cue=lambda _t: "table")
            iou = result.box.iou(truth) if result.box is not None else 0.0
            rows.append((result.found and iou > 0.5, result.patches_scored, result.stop_reason))
    return {
        "targets": len(rows),
        "success_rate": statistics.fmean(r[0] for r in rows),
        "mean_patches": statistics.fmean(r[1] for r in rows),
        "median_patches": statistics.median(r[1] for r in rows),
        "fallbacks": sum(r[2] == "fallback" for r in rows),
        "budget_hits": sum(r[2] == "budget" for r in rows),
    }


def _verdict(name: str, within: bool) -> str:
    if name == "shipped":
        return ""
    return " within" if within else " NOT within"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calib", type=int, default=20, help="calibration scenes per subset")
    parser.add_argument("--eval", type=int, default=30, help="evaluation scenes per subset")
    parser.add_argument(
        "--precision",
        type=float,
        action="append",
        help="precision(s) to calibrate for (repeatable; default 0.9 and 0.95)",
    )
    parser.add_argument("--max-calls", type=int, default=256)
    args = parser.parse_args(argv)
    precisions = args.precision or [0.9, 0.95]
    model = ReferenceSearchModel()
    with tempfile.TemporaryDirectory() as tmp:
        calib_dir, eval_dir = Path(tmp, "calib"), Path(tmp, "eval")
        write_dataset(calib_dir, args.calib, seed=1, spec=SPEC, sizes=SIZES)
        write_dataset(eval_dir, args.eval, seed=2, spec=SPEC, sizes=SIZES)
        started = time.perf_counter()
        # one measurement, thresholds chosen for each precision from it
        measurements = measure_items(model, load_vstar_dataset(calib_dir))
        calibration_s = time.perf_counter() - started
        profiles = {
            p: build_profile(
                measurements,
                model,
                precision=p,
                model_name="shapeworld",
                dataset=f"shape world, seed 1, {args.calib} scenes per subset",
                command=shlex.join(["python", "benchmarks/calibration.py", *sys.argv[1:]]),
            )
            for p in precisions
        }
        thresholds = {"shipped": REFERENCE_THRESHOLDS} | {
            f"calibrated @ {p:g}": profile.thresholds for p, profile in profiles.items()
        }
        rows = {
            name: run_searches(eval_dir, model, t, args.max_calls) for name, t in thresholds.items()
        }
    print(
        f"calibrated on {len(measurements.targets)} targets ({len(measurements.views)} views, "
        f"{calibration_s:.0f} s); evaluated (vstar) on {rows['shipped']['targets']} targets "
        "of other scenes\n"
    )
    print(
        "| thresholds | high | low | cue (start, decay, min) | success | mean patches "
        "| median | fallbacks | vs shipped |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    shipped = rows["shipped"]
    verdicts: dict[str, dict[str, Any]] = {}
    for name, row in rows.items():
        t = thresholds[name]
        gap = 100 * (row["success_rate"] - shipped["success_rate"])
        ratio = row["mean_patches"] / shipped["mean_patches"]
        within = abs(gap) <= 2 and abs(ratio - 1) <= 0.10
        verdicts[name] = {"success_gap_points": gap, "patches_ratio": ratio, "within": within}
        print(
            f"| {name} | {t.confidence_high:.3f} | {t.confidence_low:.3f} | "
            f"{t.cue_threshold:.3f}, {t.cue_threshold_decay:.2f}, {t.cue_threshold_min:.3f} | "
            f"{100 * row['success_rate']:.1f} % | {row['mean_patches']:.2f} | "
            f"{row['median_patches']:g} | {row['fallbacks']} | "
            f"{gap:+.1f} pt, x{ratio:.3f}{_verdict(name, within)} |"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    for p, profile in profiles.items():
        save_profile(profile, PROFILE.with_name(f"calibration_profile_{p:g}.json"))
    RESULTS.write_text(
        json.dumps(
            {
                "args": vars(args),
                "calibration_seconds": calibration_s,
                "thresholds": {k: v.model_dump() for k, v in thresholds.items()},
                "rows": rows,
                "vs_shipped": verdicts,
                "criterion": "within 2 points of success and 10 % of mean patches",
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {RESULTS.relative_to(REPO)} and the profiles beside it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
