"""Resolution-honest pixel perception of shape-world views.

A model here may look only at pixels, and only after the view has been resized so that
its longer side is the model's ``input_size`` (area averaging): a 24 px star in a
4000x3000 scene becomes a 3-pixel smudge at 512 px, and the perception must not
recognise it there, yet must still say "this smudge is more star-like than that one"
(the heatmap a real detector's patch scores give), and must recognise the star plainly
once the search zooms in.

How it works, per view, in model pixels. An image smaller than ``input_size`` (a crop
the VQA model is shown enlarged) is analysed at its own pixels, boxes scaled to the
image: enlarging adds no detail, only smooths the noise into object-like blobs.

1. Local background: tables first, brown regions found by colour, filled (objects on a
   table are holes in it): they are the local background of what lies on them. Then a
   smooth field from block medians of pixels that are neither palette- nor
   table-coloured (nor on a table), interpolated bilinearly, or the view's frame where an
   object fills the view; the noise is measured about it (robustly, at the analysed
   resolution).
2. Coverage: each pixel that differs from its local background beyond the noise is
   unmixed against each palette colour (``pixel = background + a * (colour -
   background)``); area averaging makes a sub-pixel object a partial mixture, so ``a`` is
   the fraction of the model pixel the object covers. Luma weighs more than chroma in
   the fit, as JPEG keeps luma sharp and blurs chroma.
3. Blobs: connected components of covered pixels; per blob the ink (sum of coverage, an
   area), the centroid, the colour (the colour holding most ink).
4. Shape: analysis by synthesis. For each shape hypothesis the shape of that ink and
   centroid is rendered with exact area averaging (a bank of supersampled templates) and
   compared with the observed coverage; the squared errors become a posterior over the
   five shapes. Tiny blobs look alike under every hypothesis (posterior near uniform);
   resolved blobs match one template only.
5. Confidence = posterior x acuity(size in model px) x fit: the acuity term is the
   encoder's resolving power (shapes of a few model pixels cannot be named, whatever the
   pixels say), calibrated on generated scenes (see ``benchmarks/`` and the tests); the
   fit falls with ink that the best template leaves unexplained beyond a hard-edged
   outline's pixel staircase, and with a spread no compact shape of that ink has (two
   smudges merged into one blob, a table edge blurred into a line).
"""

from __future__ import annotations

from seal_agent.shapeworld.perception.acuity import acuity
from seal_agent.shapeworld.perception.analysis import ViewAnalysis
from seal_agent.shapeworld.perception.api import (
    PerceivedObject,
    PerceivedTable,
    Perception,
    perceive,
)
from seal_agent.shapeworld.perception.config import DEFAULT_CONFIG, PerceptionConfig
from seal_agent.shapeworld.perception.degradations import Fallibility, WeakHeatmap
from seal_agent.shapeworld.perception.phrases import Phrase, parse_phrase
from seal_agent.shapeworld.perception.pipeline import analyze_view
from seal_agent.shapeworld.perception.templates import _inside as _inside
from seal_agent.shapeworld.perception.views import analysis_view, model_view

__all__ = [
    "DEFAULT_CONFIG",
    "Fallibility",
    "PerceivedObject",
    "PerceivedTable",
    "Perception",
    "PerceptionConfig",
    "Phrase",
    "ViewAnalysis",
    "WeakHeatmap",
    "acuity",
    "analysis_view",
    "analyze_view",
    "model_view",
    "parse_phrase",
    "perceive",
]
