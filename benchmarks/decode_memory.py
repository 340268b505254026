"""Peak memory of loading an image, per format and mode, each in a fresh process.

For every accepted input: the peak RSS (Linux VmHWM, reset after the imports) a fresh
process reaches while ``load_image`` decodes it (and builds the first pyramid level, as a
search's root view does), minus the RSS before loading, divided by the image's decoded
RGB size (3 bytes per pixel). Issue 9
asks for at most 3x plus a constant. For every bomb (a file whose header claims a size
above the limits): the time and RSS growth of the refusal, which happens from the header,
before a pixel is decoded.

    python benchmarks/decode_memory.py              # 24 MP inputs (6000x4000)
    python benchmarks/decode_memory.py --side 3000  # a quick look (3000x2000)

Writes benchmarks/results/decode_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

_CHILD = r"""
import json, sys, time
from seal_agent.imaging.loading import load_image, to_image_ref
from seal_agent.imaging.policy import ImagePolicy
from seal_agent.errors import InvalidImageError

def status(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0

def rss_now():
    return status("VmRSS")

path, cache = sys.argv[1], sys.argv[2]
policy = ImagePolicy(cache_dir=cache)
with open("/proc/self/clear_refs", "w") as fh:  # reset the peak (VmHWM) to the RSS now
    fh.write("5")
before = rss_now()
started = time.perf_counter()
try:
    ref, pyramid = load_image(to_image_ref(path, policy=policy), policy)
    view, _ = pyramid.view(pyramid.full_box, 512)
    outcome = "accepted"
except InvalidImageError as exc:
    outcome = "refused: " + str(exc)[:90]
elapsed = time.perf_counter() - started
peak = status("VmHWM")
print(json.dumps({"before": before, "peak": peak, "elapsed_s": elapsed, "outcome": outcome}))
"""


def _inputs(folder: Path, width: int, height: int) -> dict[str, tuple[Path, int]]:
    """Files of every accepted mode (a smooth photo-like picture) and bombs."""
    import hostile_files as hf
    import numpy as np
    from PIL import Image

    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = (np.sin(xs / 97.0) * 60 + np.cos(ys / 53.0) * 60 + 128).astype(np.uint8)
    rgb = Image.fromarray(np.stack([base, base[::-1], base[:, ::-1]], axis=2), "RGB")
    grey = Image.fromarray(base, "L")
    made: dict[str, Image.Image | bytes] = {
        "jpeg_rgb.jpg": rgb,
        "jpeg_grey.jpg": grey,
        "png_rgb.png": rgb,
        "png_rgba.png": rgb.convert("RGBA"),
        "png_grey16.png": Image.fromarray(base.astype(np.uint16) * 257),
        "png_grey_alpha.png": grey.convert("LA"),
        "png_palette.png": rgb.quantize(64),
        "png_1bit.png": grey.convert("1"),
        "gif.gif": rgb.quantize(64),
        "webp.webp": rgb,
        "bmp.bmp": rgb,
        "tiff.tif": rgb,
        "bomb_png_1bit_900mp.png": hf.png(30000, 30000, 1, 0),
        "bomb_png_16bit_169mp.png": hf.png(13000, 13000, 16, 0),
        "bomb_png_rgba16_144mp.png": hf.png(12000, 12000, 16, 6),
        "bomb_jpeg_4gp.jpg": hf.jpeg(65000, 65000),
        "bomb_gif_4gp.gif": hf.gif(65535, 65535),
        "bomb_tiff_3gp.tif": hf.tiff(60000, 60000),
    }
    out: dict[str, tuple[Path, int]] = {}
    for name, item in made.items():
        path = folder / name
        if isinstance(item, bytes):
            path.write_bytes(item)
            pixels = 0
        else:
            item.save(path, quality=90) if name.endswith(".jpg") else item.save(path)
            pixels = width * height
        out[name] = (path, pixels)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=6000, help="width; height is 2/3 of it")
    args = parser.parse_args()
    width, height = args.side, args.side * 2 // 3
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        for name, (path, pixels) in _inputs(folder, width, height).items():
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, str(path), str(folder / "cache")],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            growth = result["peak"] - result["before"]
            rgb = 3 * pixels
            rows.append(
                {
                    "input": name,
                    "file_kib": round(path.stat().st_size / 1024, 1),
                    "pixels": pixels,
                    "rgb_mib": round(rgb / 2**20, 1),
                    "rss_before_mib": round(result["before"] / 2**20, 1),
                    "rss_peak_mib": round(result["peak"] / 2**20, 1),
                    "growth_mib": round(growth / 2**20, 1),
                    "growth_over_rgb": round(growth / rgb, 2) if rgb else None,
                    "elapsed_s": round(result["elapsed_s"], 3),
                    "outcome": result["outcome"],
                }
            )
            row = rows[-1]
            ratio = "-" if row["growth_over_rgb"] is None else f"{row['growth_over_rgb']:.2f}x"
            print(
                f"{name:28s} {row['file_kib']:>9.1f} KiB  RGB {row['rgb_mib']:>6.1f} MiB  "
                f"peak {row['rss_peak_mib']:>7.1f} MiB  growth {row['growth_mib']:>6.1f} MiB "
                f"({ratio:>6s})  {row['elapsed_s']:.3f} s  {row['outcome'][:60]}"
            )
    results = REPO / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    out = results / "decode_memory.json"
    out.write_text(json.dumps({"width": width, "height": height, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
