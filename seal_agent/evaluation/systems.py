"""The systems a run compares, each an ``Answerer`` over one shared copy of the models.

An ``Answerer`` is given an item and the options in the order shown and says which one
it chose. ``build_answerers`` turns picklable specs (``ModelSpec``, ``SystemSpec``) into
answerers, so a Ray actor builds its own copy of the models from the same specs.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage
from pydantic import BaseModel, ConfigDict, Field

from seal_agent.errors import SealError
from seal_agent.evaluation.records import Prediction, TargetRecord
from seal_agent.evaluation.scoring import OptionScorer
from seal_agent.graph.configuration import MAX_TARGETS_LIMIT
from seal_agent.graph.parsing import parse_option_choice
from seal_agent.graph.prompts import format_options
from seal_agent.imaging.geometry import Box
from seal_agent.imaging.loading import encoded_global_view, load_image, to_image_ref
from seal_agent.search.config import Strategy

#: The id that selects shape world's offline reference models.
SHAPEWORLD = "shapeworld"
Scoring = Literal["likelihood", "choice"]


class QuestionItem(Protocol):
    """What an answerer reads from an item (``EvalItem`` and ``VStarItem`` both have it)."""

    @property
    def id(self) -> str: ...
    @property
    def image_path(self) -> Path: ...
    @property
    def question(self) -> str: ...
    @property
    def target_objects(self) -> tuple[str, ...]: ...
    @property
    def target_boxes(self) -> tuple[Box, ...]: ...


Answerer = Callable[[Any, list[str]], Prediction]


class EvalSettingsError(SealError, ValueError):
    """Settings of a run that cannot work together."""


class ModelSpec(BaseModel):
    """Which models to load, and how to score options: everything a worker needs."""

    model_config = ConfigDict(frozen=True)

    vqa: str = Field(SHAPEWORLD, description="hub id / local dir of the VQA model, or shapeworld")
    search: str = Field(
        SHAPEWORLD, description="owlv2, grounding-dino, a hub id / local dir, or shapeworld"
    )
    device: str | None = Field(None, description="cuda, cuda:1, cpu; None: best available")
    scoring: Scoring | None = Field(
        None, description="None: likelihood where the VQA model can score options, else choice"
    )
    cache_dir: Path | None = Field(None, description="image cache of the graph")
    max_targets: int = Field(5, ge=1, le=MAX_TARGETS_LIMIT)
    max_calls: int | None = Field(
        None, ge=1, description="patches scored per target, at most (None: SearchConfig's)"
    )


class SystemSpec(BaseModel):
    """One row of the table."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: Literal["seal", "global", "random"]
    strategy: Strategy = "vstar"


def default_systems(strategies: Sequence[Strategy] = ("vstar",)) -> list[SystemSpec]:
    """SEAL with each strategy, the VQA model on the global image alone, and chance."""
    systems = [SystemSpec(name=f"SEAL ({s})", kind="seal", strategy=s) for s in strategies]
    systems.append(SystemSpec(name="global image only", kind="global"))
    systems.append(SystemSpec(name="random guess", kind="random"))
    return systems


def build_vqa_model(model_id: str, device: str | None = None) -> BaseChatModel:
    if model_id == SHAPEWORLD:
        from seal_agent.shapeworld.vqa_model import ReferenceVQAChatModel

        return ReferenceVQAChatModel()
    from seal_agent.models import TransformersChatModel

    return TransformersChatModel(model_id=model_id, device=device)


def build_search_model(model_id: str, device: str | None = None) -> Any:
    if model_id == SHAPEWORLD:
        from seal_agent.shapeworld import ReferenceSearchModel

        return ReferenceSearchModel()
    from seal_agent.models import GroundingDinoSearchModel, OwlSearchModel

    if model_id == "owlv2":
        return OwlSearchModel(device=device)
    if model_id == "grounding-dino":
        return GroundingDinoSearchModel(device=device)
    if "grounding-dino" in model_id.lower() or "groundingdino" in model_id.lower():
        return GroundingDinoSearchModel(model_id, device=device)
    return OwlSearchModel(model_id, device=device)


def resolve_scoring(spec: ModelSpec, vqa: BaseChatModel) -> Scoring:
    """The scoring actually used: likelihood needs a model with ``score_options``."""
    if spec.scoring == "likelihood" and not isinstance(vqa, OptionScorer):
        raise EvalSettingsError(
            f"--scoring likelihood needs a VQA model that scores options; {spec.vqa} does not "
            "(use --scoring choice)"
        )
    if spec.scoring is not None:
        return spec.scoring
    return "likelihood" if isinstance(vqa, OptionScorer) else "choice"


def build_answerers(
    models: ModelSpec, systems: Sequence[SystemSpec], *, seed: int = 0
) -> dict[str, Answerer]:
    """One answerer per system, all over one copy of each model."""
    from seal_agent.graph import SealConfig, build_graph

    vqa = build_vqa_model(models.vqa, models.device)
    scoring = resolve_scoring(models, vqa)
    answerers: dict[str, Answerer] = {}
    graph = None
    for system in systems:
        if system.kind == "seal":
            if graph is None:
                budget = {} if models.max_calls is None else {"max_calls": models.max_calls}
                config = SealConfig(
                    cache_dir=models.cache_dir,
                    max_targets=models.max_targets,
                    option_scoring="likelihood" if scoring == "likelihood" else "generate",
                    search=budget,  # a budget is set when the graph is built, not per call
                )
                graph = build_graph(vqa, build_search_model(models.search, models.device), config)
            search: dict[str, Any] = {"strategy": system.strategy}
            answerers[system.name] = graph_answerer(graph, context={"search": search})
        elif system.kind == "global":
            answerers[system.name] = (
                likelihood_answerer(vqa) if scoring == "likelihood" else direct_answerer(vqa)  # type: ignore[arg-type]
            )
        else:
            answerers[system.name] = random_answerer(seed)
    return answerers


# -- answerers ------------------------------------------------------------------------------
def _iou_by_target(item: QuestionItem, searches: dict[str, Any]) -> dict[str, float]:
    """IoU of each searched target with the annotated box of the object it names."""
    ious: dict[str, float] = {}
    for name, truth in zip(item.target_objects, item.target_boxes, strict=False):
        pattern = re.compile(rf"\b{re.escape(name.lower())}\b")
        target = next((t for t in searches if pattern.search(t.lower())), None)
        if target is None or target in ious:
            continue
        outcome = searches[target]
        box = outcome.get("box") if outcome.get("found") else None
        ious[target] = Box(*box).iou(truth) if box else 0.0
    return ious


def graph_answerer(graph: Any, *, context: Any = None) -> Answerer:
    """The SEAL graph; ``context`` is passed as the per-call settings."""

    def answer(item: QuestionItem, shown: list[str]) -> Prediction:
        out = graph.invoke(
            {"image": str(item.image_path), "question": item.question, "options": shown},
            context=context,
        )
        searches: dict[str, Any] = out.get("searches") or {}
        ious = _iou_by_target(item, searches)
        targets = [
            TargetRecord(
                name=name,
                found=bool(o["found"]),
                iou=round(ious[name], 4) if name in ious else None,
                patches_scored=int(o["patches_scored"]),
                forward_passes=int(o.get("forward_passes") or 0),
                stop_reason=str(o.get("stop_reason", "")),
            )
            for name, o in searches.items()
        ]
        return Prediction(
            choice=out.get("choice"),
            answer=str(out.get("answer", "")),
            patches_scored=sum(t.patches_scored for t in targets),
            forward_passes=sum(t.forward_passes for t in targets),
            targets_searched=len(targets),
            targets_localised=sum(1 for v in ious.values() if v > 0.5),
            targets_annotated=len(ious),
            targets=targets,
        )

    return answer


def _global_message(
    item: QuestionItem, text: str, max_side: int, image_format: str
) -> list[BaseMessage]:
    ref, pyramid = load_image(to_image_ref(item.image_path))
    data = encoded_global_view(ref, pyramid, max_side, image_format)  # type: ignore[arg-type]
    block = {"type": "image", "base64": data, "mime_type": f"image/{image_format}"}
    return [HumanMessage(content=[block, {"type": "text", "text": text}])]


def direct_answerer(
    model: BaseChatModel, *, max_side: int = 1024, image_format: str = "png"
) -> Answerer:
    """The chat model answering from the global image alone, with lettered options."""

    def answer(item: QuestionItem, shown: list[str]) -> Prediction:
        text = f"{item.question}\n{format_options(shown)}"
        reply = model.invoke(_global_message(item, text, max_side, image_format)).text
        return Prediction(choice=parse_option_choice(reply, shown), answer=reply)

    return answer


def likelihood_answerer(
    model: OptionScorer, *, max_side: int = 1024, image_format: str = "png"
) -> Answerer:
    """The paper's scoring for open models: the option with the lowest mean token loss."""
    if not isinstance(model, OptionScorer):
        raise TypeError(f"{type(model).__name__} cannot score options (no score_options)")

    def answer(item: QuestionItem, shown: list[str]) -> Prediction:
        messages = _global_message(item, item.question, max_side, image_format)
        losses = model.score_options(messages, shown)
        if len(losses) != len(shown):
            raise ValueError(f"score_options returned {len(losses)} losses for {len(shown)}")
        best = min(range(len(shown)), key=lambda i: losses[i])
        return Prediction(choice=best, answer=shown[best])

    return answer


def random_answerer(seed: int = 0) -> Answerer:
    """Uniform guessing (seeded per item), the chance baseline."""

    def answer(item: QuestionItem, shown: list[str]) -> Prediction:
        return Prediction(choice=random.Random(f"random:{seed}:{item.id}").randrange(len(shown)))

    return answer


__all__ = [
    "SHAPEWORLD",
    "Answerer",
    "EvalSettingsError",
    "ModelSpec",
    "QuestionItem",
    "Scoring",
    "SystemSpec",
    "build_answerers",
    "build_search_model",
    "build_vqa_model",
    "default_systems",
    "direct_answerer",
    "graph_answerer",
    "likelihood_answerer",
    "random_answerer",
    "resolve_scoring",
]
