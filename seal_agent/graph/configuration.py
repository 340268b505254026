"""Run-time settings of the SEAL graph, set at build time and overridable per call.

Per call, pass ``context=SealConfig(...)`` or a partial dict (LangGraph's runtime context,
the current recommended way), or ``config={"configurable": {"seal": {...}}}`` where only a
``RunnableConfig`` can be passed through (e.g. from a parent agent). Only the fields a
call sets override the graph's build-time settings; nested ``search`` fields merge too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from seal_agent.imaging.loading import DEFAULT_MAX_IMAGE_PIXELS
from seal_agent.search.config import SearchConfig

#: Key under ``config["configurable"]`` that carries per-call overrides.
CONFIGURABLE_KEY = "seal"


class SealConfig(BaseModel):
    """Everything a SEAL run can be told, besides the models themselves."""

    model_config = ConfigDict(extra="forbid")

    search: SearchConfig = Field(
        default_factory=SearchConfig, description="V* search settings for every target"
    )
    max_targets: int = Field(5, ge=1, description="targets searched per question, at most")
    allow_urls: bool = Field(False, description="whether http(s) image URLs may be fetched")
    max_image_pixels: int = Field(
        DEFAULT_MAX_IMAGE_PIXELS, ge=1, description="larger images are refused"
    )
    cache_dir: Path | None = Field(
        None,
        description=(
            "where in-memory images are spilled so a resumed run can find them "
            "(None: $SEAL_AGENT_CACHE_DIR or the user cache directory)"
        ),
    )
    url_timeout_s: float = Field(20.0, gt=0, description="timeout of an image download")
    vqa_image_max_side: int = Field(
        1024,
        ge=64,
        description="longer side of the global image sent to the chat model (it resizes again)",
    )
    image_format: Literal["png", "jpeg"] = Field(
        "png", description="encoding of the images sent to the chat model"
    )
    structured_listing: bool = Field(
        True,
        description=(
            "ask for the target list with with_structured_output where the model supports "
            "it; the text format of the reference is parsed otherwise"
        ),
    )
    option_scoring: Literal["auto", "generate", "likelihood"] = Field(
        "auto",
        description=(
            "with options: 'generate' asks for the option's letter; 'likelihood' picks the "
            "option with the lowest loss (models with score_options(messages, options), the "
            "paper's scoring for open models); 'auto' uses likelihood where available"
        ),
    )
    context_cue: bool = Field(
        True, description="ask the chat model where a target usually is, once per target"
    )
    cue_source: Literal["listing", "question"] = Field(
        "listing",
        description=(
            "where the contextual cues come from: 'listing' names them with the targets in "
            "the listing reply (at most 2 chat calls per question); 'question' asks the "
            "reference's cue question once per target (the seal strategy always does)"
        ),
    )
    raise_on_search_error: bool = Field(
        True,
        description=(
            "a search model that raises ends the run with SearchModelError (resumable from "
            "a checkpoint); False records the target as not found and answers anyway"
        ),
    )

    @property
    def crop_scale(self) -> float:
        """VWM crop size relative to the found box (held in ``search.crop_scale``)."""
        return self.search.crop_scale


def merge_overrides(base: SealConfig, override: SealConfig | dict[str, Any] | None) -> SealConfig:
    """``base`` with the fields ``override`` explicitly sets (recursively for ``search``)."""
    if override is None:
        return base
    if isinstance(override, dict):
        try:
            override = SealConfig.model_validate(override)
        except ValidationError as exc:
            raise ValueError(f"invalid SEAL settings for this call: {exc}") from exc
    if not isinstance(override, SealConfig):
        raise TypeError(f"expected SealConfig or dict, got {type(override).__name__}")
    update: dict[str, Any] = {}
    for name in override.model_fields_set:
        value = getattr(override, name)
        if name == "search":
            fields = {k: getattr(value, k) for k in value.model_fields_set}
            value = base.search.model_copy(update=fields)
        update[name] = value
    return base.model_copy(update=update)


def resolve_config(
    base: SealConfig, context: object = None, configurable: dict[str, Any] | None = None
) -> SealConfig:
    """The settings of one call: build-time, then ``configurable``, then runtime context."""
    config = base
    if configurable and configurable.get(CONFIGURABLE_KEY) is not None:
        config = merge_overrides(config, configurable[CONFIGURABLE_KEY])
    if context is not None:
        if not isinstance(context, SealConfig | dict):
            raise TypeError(
                f"the runtime context of a SEAL graph must be a SealConfig, got "
                f"{type(context).__name__}"
            )
        config = merge_overrides(config, context)
    return config


__all__ = ["CONFIGURABLE_KEY", "SealConfig", "merge_overrides", "resolve_config"]
