"""How long ``graph.ainvoke`` blocks the event loop, per kind of image input.

A heartbeat task sleeps 2 ms at a time while one ``ainvoke`` runs; the longest gap
between wake-ups beyond the requested sleep is the worst stall any other coroutine
(an HTTP server's other requests, a UI) would have suffered. Measured side by side:

  * ``SealGraph.astream`` (this project's graph): the input image is referenced in a
    worker thread before the run starts;
  * the plain ``CompiledStateGraph.astream`` on the same graph: LangGraph writes the
    input channel, and so references the image, in the event loop's thread.

Shape-world reference models, explicit target (no listing), fresh cache directory per
run so every in-memory image is hashed and spilled for real. Target: < 50 ms. The
stall also counts the GIL held by the run's worker threads (PIL's PNG decoder holds it
in chunks) and, on a loaded machine, time the loop's thread waits for a core: the
"noise floor" row is the same heartbeat with an idle loop.

    python benchmarks/async_stall.py --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import io
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from langgraph.graph.state import CompiledStateGraph  # noqa: E402

from seal_agent.graph import SealConfig, build_graph  # noqa: E402
from seal_agent.imaging.loading import image_cache  # noqa: E402
from seal_agent.shapeworld import ReferenceSearchModel, generate_scene  # noqa: E402
from seal_agent.shapeworld.vqa_model import ReferenceVQAChatModel  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "async_stall.json"
TARGET_MS = 50.0


async def _max_stall_ms(run: Callable[[], Any], tick_s: float = 0.002) -> tuple[float, float]:
    """(worst event-loop stall in ms, wall time of the run in s) while ``run()`` runs."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    worst = 0.0

    async def heartbeat() -> None:
        nonlocal worst
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(tick_s)
            worst = max(worst, loop.time() - before - tick_s)

    beat = asyncio.create_task(heartbeat())
    await asyncio.sleep(0.01)  # let the heartbeat start
    start = time.perf_counter()
    try:
        await run()
    finally:
        wall = time.perf_counter() - start
        done.set()
        await beat
    return worst * 1000, wall


async def _plain_ainvoke(graph: Any, inputs: dict[str, Any]) -> Any:
    """``ainvoke`` through LangGraph's own ``astream`` (input referenced in the loop)."""
    out = None
    async for chunk in CompiledStateGraph.astream(graph, inputs, stream_mode="values"):
        out = chunk
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    args = parser.parse_args()

    scene = generate_scene(4, width=args.width, height=args.height, target_size=(20, 24))
    target = scene.targets[0].shape
    buffer = io.BytesIO()
    scene.image.save(buffer, format="PNG")
    png = buffer.getvalue()
    inputs_by_kind: dict[str, Callable[[Path], Any]] = {
        "PIL image": lambda d: scene.image,
        "PNG bytes": lambda d: png,
        "data URL": lambda d: "data:image/png;base64," + base64.b64encode(png).decode(),
        "file path": lambda d: str(d / "scene.png"),
    }
    rows: list[dict[str, Any]] = []
    # The machine's own floor: the same heartbeat while the loop only sleeps for 1 s.
    idle = [asyncio.run(_max_stall_ms(functools.partial(asyncio.sleep, 1.0)))[0]]
    idle += [asyncio.run(_max_stall_ms(functools.partial(asyncio.sleep, 1.0)))[0]]
    rows.append(
        {
            "input": "(none: the loop only sleeps)",
            "path": "noise floor",
            "max_stall_ms": round(max(idle), 1),
            "median_stall_ms": round(statistics.median(idle), 1),
            "median_wall_s": 1.0,
        }
    )
    for kind, make in inputs_by_kind.items():
        for variant in ("SealGraph.astream", "CompiledStateGraph.astream"):
            stalls, walls = [], []
            for _ in range(args.repeats):
                with tempfile.TemporaryDirectory() as tmp:
                    folder = Path(tmp)
                    (folder / "scene.png").write_bytes(png)
                    image_cache().clear()
                    graph = build_graph(
                        ReferenceVQAChatModel(),
                        ReferenceSearchModel(),
                        SealConfig(cache_dir=folder / "cache"),
                    )
                    inputs = {
                        "image": make(folder),
                        "question": f"What is the color of the {target}?",
                        "targets": [target],
                    }
                    run = functools.partial(
                        graph.ainvoke if variant == "SealGraph.astream" else _plain_ainvoke,
                        *(() if variant == "SealGraph.astream" else (graph,)),
                        inputs,
                    )
                    stall, wall = asyncio.run(_max_stall_ms(run))
                    stalls.append(stall)
                    walls.append(wall)
            rows.append(
                {
                    "input": kind,
                    "path": variant,
                    "max_stall_ms": round(max(stalls), 1),
                    "median_stall_ms": round(statistics.median(stalls), 1),
                    "median_wall_s": round(statistics.median(walls), 2),
                }
            )
    print(f"ainvoke event-loop stall, {args.width}x{args.height} scene, {args.repeats} runs each")
    print("| input | path | max stall ms | median stall ms | median run s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['input']} | {r['path']} | {r['max_stall_ms']} | {r['median_stall_ms']} "
            f"| {r['median_wall_s']} |"
        )
    ours = [r["max_stall_ms"] for r in rows if r["path"] == "SealGraph.astream"]
    print(f"worst stall with SealGraph: {max(ours)} ms (target < {TARGET_MS} ms)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "rows": rows,
                "width": args.width,
                "height": args.height,
                "repeats": args.repeats,
                "machine": platform.platform(),
                "target_ms": TARGET_MS,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
