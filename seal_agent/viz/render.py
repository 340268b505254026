"""A picture of a search: the image, the patches visited in order, what was found.

Drawn with PIL only, from what a run already keeps: a graph state's ``searches`` (or
``SearchResult``s) and the image. Each target gets one colour; every visited patch is
outlined and numbered in visiting order with the priority it was popped with (later
visits drawn stronger); found boxes are labelled with the target and confidence. When
the trace kept heatmaps (``SearchConfig(trace_heatmaps=N)``), a strip of panels below
shows each step's patch with its target heatmap over it, as the reference's saved
search images do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from seal_agent.errors import SealError
from seal_agent.imaging.geometry import Box
from seal_agent.imaging.loading import is_image_ref, load_image
from seal_agent.imaging.pyramid import ImagePyramid
from seal_agent.search.result import SearchResult

#: One colour per target, in order (colour-blind-friendly Okabe-Ito, then more).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (204, 121, 167),
    (213, 94, 0),
    (0, 114, 178),
    (240, 228, 66),
    (255, 255, 255),
)
FOUND_OUTLINE = (255, 40, 40)


@dataclass
class _Step:
    index: int
    patch: Box
    level: int
    priority: float | None
    score: float | None
    kind: str | None
    heatmap: list[list[float]] | None


@dataclass
class _Target:
    name: str
    found: bool
    box: Box | None
    confidence: float | None
    instances: list[tuple[Box, float | None]] = field(default_factory=list)
    steps: list[_Step] = field(default_factory=list)


def _box(value: Any) -> Box | None:
    return None if value is None else Box(*(float(v) for v in value))


def _from_outcome(outcome: Mapping[str, Any]) -> _Target:
    steps = [
        _Step(
            index=int(s["index"]),
            patch=Box(*s["patch"]),
            level=int(s.get("level", 0)),
            priority=s.get("priority"),
            score=s.get("best_score"),
            kind=s.get("kind"),
            heatmap=s.get("heatmap"),
        )
        for s in outcome.get("trace") or []
    ]
    return _Target(
        name=str(outcome.get("target", "?")),
        found=bool(outcome.get("found")),
        box=_box(outcome.get("box")),
        confidence=outcome.get("confidence"),
        instances=[(Box(*i["box"]), i.get("score")) for i in outcome.get("instances") or []],
        steps=steps,
    )


def _from_result(result: SearchResult) -> _Target:
    return _Target(
        name=result.target,
        found=result.found,
        box=result.box,
        confidence=result.confidence,
        instances=[(i.box, i.score) for i in result.instances],
        steps=[
            _Step(s.index, s.patch, s.level, s.priority, s.best_score, s.kind, s.heatmap)
            for s in result.trace
        ],
    )


def _targets(source: object) -> list[_Target]:
    if isinstance(source, SearchResult):
        return [_from_result(source)]
    if isinstance(source, Mapping):
        searches = source.get("searches")
        if isinstance(searches, Mapping):
            order = [t for t in source.get("targets") or [] if t in searches]
            order += [t for t in searches if t not in order]
            return [_from_outcome(searches[t]) for t in order]
        if "trace" in source and "target" in source:  # one TargetOutcome
            return [_from_outcome(source)]
    if isinstance(source, Sequence) and not isinstance(source, str | bytes):
        out: list[_Target] = []
        for item in source:
            out.extend(_targets(item))
        return out
    raise SealError(
        "render_search needs a graph state (with 'searches'), a TargetOutcome, a "
        f"SearchResult or a list of them; got {type(source).__name__}"
    )


def _pyramid(source: object, image: object) -> ImagePyramid:
    if isinstance(image, ImagePyramid):
        return image
    if isinstance(image, Image.Image):
        return ImagePyramid(image)
    if isinstance(image, str | os.PathLike):
        _, pyramid = load_image({"uri": str(Path(image).resolve()), "origin": "path"})
        return pyramid
    if image is None and isinstance(source, Mapping) and is_image_ref(source.get("image")):
        _, pyramid = load_image(source["image"])
        return pyramid
    if is_image_ref(image):
        _, pyramid = load_image(image)
        return pyramid
    raise SealError(
        "render_search needs the image: pass image= (a PIL image, a path or an ImagePyramid) "
        "unless the source is a graph state holding its ImageRef"
    )


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def _label(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    colour: tuple[int, int, int],
    font: Any,
    bounds: tuple[int, int],
) -> None:
    """Text on a dark box, kept inside the canvas."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 6, bottom - top + 4
    x = min(max(0.0, xy[0]), bounds[0] - w)
    y = min(max(0.0, xy[1]), bounds[1] - h)
    draw.rectangle((x, y, x + w, y + h), fill=(0, 0, 0, 170))
    draw.text((x + 3 - left, y + 2 - top), text, fill=(*colour, 255), font=font)


def _heat_rgba(grid: list[list[float]], size: tuple[int, int]) -> Image.Image:
    """A heatmap as a translucent red-to-yellow overlay of ``size``, scaled to its max."""
    values = np.asarray(grid, dtype=np.float32)
    values = values - values.min()
    peak = float(values.max())
    values = values / peak if peak > 0 else values
    small = Image.fromarray(np.uint8(values * 255), mode="L")
    alpha = small.resize(size, Image.Resampling.BILINEAR)
    a = np.asarray(alpha, dtype=np.float32) / 255.0
    rgba = np.zeros((size[1], size[0], 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[..., 1] = np.uint8(np.clip(a * 2 - 1, 0, 1) * 230)
    rgba[..., 3] = np.uint8(np.power(a, 0.7) * 200)
    return Image.fromarray(rgba, mode="RGBA")


def render_search(
    source: object,
    image: object = None,
    *,
    max_side: int = 1600,
    heatmap_panels: bool = True,
    max_panels_per_target: int = 12,
    panel_side: int = 180,
) -> Image.Image:
    """The picture of a run's searches, as an RGB PIL image.

    ``source``: a graph state or output (its ``searches``; the image is found through its
    ``ImageRef`` unless ``image`` is given), one ``TargetOutcome``, a ``SearchResult``, or
    a list of them. ``image``: a PIL image, a path or an ``ImagePyramid``.
    """
    if max_side < 64:
        raise SealError(f"max_side must be at least 64, got {max_side}")
    targets = _targets(source)
    pyramid = _pyramid(source, image)
    scale = min(1.0, max_side / max(pyramid.width, pyramid.height))
    base, _ = pyramid.view(pyramid.full_box, max(1, round(max(pyramid.size) * scale)))
    bw, bh = base.size
    scale = bw / pyramid.width
    small_size, font_size = max(11, bw // 110), max(13, bw // 80)
    small_font, font = _font(small_size), _font(font_size)

    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)

    def scaled(box: Box) -> tuple[float, float, float, float]:
        # A box thinner than a canvas pixel (a 20000x1 image) still draws as one pixel.
        x1, y1 = box.x1 * scale, box.y1 * scale
        return (x1, y1, max(x1, box.x2 * scale - 1), max(y1, box.y2 * scale - 1))

    for t_index, target in enumerate(targets):
        colour = PALETTE[t_index % len(PALETTE)]
        count = len(target.steps)
        for order, step in enumerate(target.steps):
            strength = 0.35 + 0.65 * (order + 1) / max(1, count)
            draw.rectangle(
                scaled(step.patch),
                outline=(*colour, int(255 * strength)),
                width=3 if step.kind in ("zoom", "tile") else 2,
            )
        for step in target.steps:  # labels after all outlines, so none is drawn over
            x1, y1, _, _ = scaled(step.patch)
            text = f"{step.index}" + (
                f" p={step.priority:.2f}" if step.priority is not None else ""
            )
            _label(draw, (x1 + 2, y1 + 2), text, colour, small_font, base.size)
        boxes = [(b, s) for b, s in target.instances] or (
            [(target.box, target.confidence)] if target.box is not None else []
        )
        for box, score in boxes:
            x1, y1, x2, y2 = scaled(box)
            pad = max(0.0, (10 - (x2 - x1)) / 2)  # keep a tiny target's box visible
            rect = (x1 - pad - 3, y1 - pad - 3, x2 + pad + 3, y2 + pad + 3)
            outline = FOUND_OUTLINE if target.found else (160, 160, 160)
            draw.rectangle(rect, outline=(0, 0, 0, 255), width=6)
            draw.rectangle(rect, outline=(*outline, 255), width=3)
            conf = f" {score:.2f}" if score is not None else ""
            text = f"{target.name}{conf}" + ("" if target.found else " (not found)")
            _label(draw, (rect[0], rect[1] - font_size - 8), text, outline, font, base.size)

    main = Image.alpha_composite(base.convert("RGBA"), overlay).convert("RGB")

    legend_lines = [
        f"{t.name}: "
        + (f"found, confidence {t.confidence:.2f}" if t.found and t.confidence is not None else "")
        + ("not found" if not t.found else "")
        + f", {len(t.steps)} patches visited"
        for t in targets
    ] or ["no search was run"]
    line_h = font_size + 8
    legend_h = line_h * len(legend_lines) + 8

    panels: list[tuple[int, Image.Image]] = []
    if heatmap_panels:
        for t_index, target in enumerate(targets):
            for step in [s for s in target.steps if s.heatmap][:max_panels_per_target]:
                panels.append(
                    (t_index, _panel(pyramid, target, step, panel_side, small_font, small_size))
                )
    columns = max(1, bw // (panel_side + 8))
    rows = -(-len(panels) // columns)
    panels_h = rows * (panel_side + small_size + 14) + (8 if panels else 0)

    canvas = Image.new("RGB", (bw, legend_h + bh + panels_h), (24, 24, 24))
    canvas.paste(main, (0, legend_h))
    cdraw = ImageDraw.Draw(canvas)
    for i, line in enumerate(legend_lines):
        colour = PALETTE[i % len(PALETTE)] if targets else (230, 230, 230)
        cdraw.text((8, 4 + i * line_h), line, fill=colour, font=font)
    for n, (t_index, panel) in enumerate(panels):
        row, col = divmod(n, columns)
        x = 4 + col * (panel_side + 8)
        y = legend_h + bh + 8 + row * (panel_side + small_size + 14)
        canvas.paste(panel, (x, y))
        cdraw.rectangle(
            (x - 1, y - 1, x + panel.width, y + panel.height),
            outline=PALETTE[t_index % len(PALETTE)],
        )
    return canvas


def _panel(
    pyramid: ImagePyramid, target: _Target, step: _Step, side: int, font: Any, font_px: int
) -> Image.Image:
    """One step: its patch as the model saw it, the target heatmap over it, a caption."""
    view, _ = pyramid.view(step.patch, side)
    heat = _heat_rgba(step.heatmap or [[0.0]], view.size)
    shown = Image.alpha_composite(view.convert("RGBA"), heat).convert("RGB")
    caption_h = font_px + 6
    panel = Image.new("RGB", (side, side + caption_h), (16, 16, 16))
    panel.paste(shown, ((side - shown.width) // 2, (side - shown.height) // 2))
    score = f" s={step.score:.2f}" if step.score is not None else ""
    prio = f" p={step.priority:.2f}" if step.priority is not None else ""
    ImageDraw.Draw(panel).text(
        (3, side + 2),
        f"{target.name} #{step.index} L{step.level}{prio}{score}",
        fill=(230, 230, 230),
        font=font,
    )
    return panel


def save_search(
    source: object, path: str | os.PathLike[str], image: object = None, **kwargs: Any
) -> Path:
    """``render_search`` written to ``path`` (PNG, or any format PIL infers from the suffix)."""
    out = Path(path)
    picture = render_search(source, image, **kwargs)
    try:
        picture.save(out)
    except (OSError, ValueError) as exc:
        raise SealError(f"cannot write the search picture to {out}: {exc}") from exc
    return out


__all__ = ["PALETTE", "render_search", "save_search"]
