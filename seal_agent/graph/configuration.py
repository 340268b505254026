"""Run-time settings of the SEAL graph, set at build time and overridable per call.

Per call, pass ``context=SealConfig(...)`` or a partial dict (LangGraph's runtime context,
the current recommended way), or ``config={"configurable": {"seal": {...}}}`` where only a
``RunnableConfig`` can be passed through (e.g. from a parent agent). Only the fields a
call sets override the graph's build-time settings; nested ``search`` fields merge too.

Deployment settings (``DEPLOYMENT_FIELDS``: what may be read, reached, written or
allocated) are fixed when the graph is built: a call that tries to change one is refused
with ``DeploymentSettingError``, because a call's settings may come from an attacker.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from seal_agent.errors import SealError
from seal_agent.imaging.policy import (
    DEFAULT_FORMATS,
    DEFAULT_MAX_DECODED_BYTES,
    DEFAULT_MAX_DOWNLOAD_BYTES,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_SPILL_MAX_BYTES,
    DEFAULT_SPILL_RETENTION_S,
    ImagePolicy,
)
from seal_agent.search.config import SearchConfig

#: Key under ``config["configurable"]`` that carries per-call overrides.
CONFIGURABLE_KEY = "seal"
#: Hard upper bound of ``max_targets`` (each target is a search and a crop in the prompt).
MAX_TARGETS_LIMIT = 16
#: Settings fixed when the graph is built; a call may repeat them but never change them.
DEPLOYMENT_FIELDS = frozenset(
    {
        "allowed_roots",
        "allow_urls",
        "url_allowed_hosts",
        "url_timeout_s",
        "max_download_bytes",
        "cache_dir",
        "max_image_pixels",
        "max_decoded_bytes",
        "max_file_bytes",
        "image_formats",
        "spill_max_bytes",
        "spill_retention_s",
        "chat_timeout_s",
        "max_reply_chars",
    }
)


class SettingsError(SealError, ValueError):
    """Per-call settings that are not valid ``SealConfig`` fields or values."""


class DeploymentSettingError(SettingsError):
    """A per-call setting tried to change what the deployment fixed at build time."""


class GenerationBudget(BaseModel):
    """New-token limits per node (the chat model's own limit applies where larger).

    Passed to the chat model as its provider's keyword (``max_new_tokens`` for
    ``TransformersChatModel``, ``max_tokens`` for OpenAI/Anthropic, ``num_predict`` for
    Ollama); other models keep their own settings.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    listing: int = Field(
        96, ge=8, description="the target list (reference sentence + up to 5 names)"
    )
    context_cue: int = Field(48, ge=8, description="where a target usually is, one phrase")
    answer: int = Field(256, ge=1, description="the final answer")


class SealConfig(BaseModel):
    """Everything a SEAL run can be told, besides the models themselves."""

    model_config = ConfigDict(extra="forbid")

    search: SearchConfig = Field(
        default_factory=SearchConfig, description="V* search settings for every target"
    )
    max_targets: int = Field(
        5, ge=1, le=MAX_TARGETS_LIMIT, description="targets searched per question, at most"
    )
    # -- deployment settings (fixed at build time; see DEPLOYMENT_FIELDS) ---------------
    allowed_roots: list[Path] | None = Field(
        None,
        description=(
            "folders local image paths may name (None: any file the process can read, "
            "for a user's own program; a graph served to others should set roots)"
        ),
    )
    allow_urls: bool = Field(False, description="whether http(s) image URLs may be fetched")
    url_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="hosts or CIDR networks fetched although not public (e.g. '10.0.0.0/8')",
    )
    max_download_bytes: int = Field(
        DEFAULT_MAX_DOWNLOAD_BYTES, ge=1, description="larger downloads are refused"
    )
    max_image_pixels: int = Field(
        DEFAULT_MAX_IMAGE_PIXELS, ge=1, description="larger images are refused"
    )
    max_decoded_bytes: int = Field(
        DEFAULT_MAX_DECODED_BYTES,
        ge=1,
        description="peak bytes one decode may hold (16-bit and alpha modes counted)",
    )
    max_file_bytes: int = Field(
        DEFAULT_MAX_FILE_BYTES, ge=1, description="larger encoded image files are refused"
    )
    image_formats: list[str] = Field(
        default_factory=lambda: list(DEFAULT_FORMATS),
        min_length=1,
        description="Pillow formats that are decoded (others are refused)",
    )
    spill_max_bytes: int = Field(
        DEFAULT_SPILL_MAX_BYTES, ge=0, description="size cap of the spill cache on disk"
    )
    spill_retention_s: float = Field(
        DEFAULT_SPILL_RETENTION_S,
        ge=0,
        description="a spilled image used within this time is never evicted",
    )
    chat_timeout_s: float | None = Field(
        300.0, gt=0, description="timeout of one chat-model call (None: no timeout)"
    )
    max_reply_chars: int = Field(
        20_000, ge=100, description="chat-model replies are cut to this length before use"
    )
    cache_dir: Path | None = Field(
        None,
        description=(
            "where in-memory images are spilled so a resumed run can find them "
            "(None: $SEAL_AGENT_CACHE_DIR or the user cache directory)"
        ),
    )
    url_timeout_s: float = Field(
        20.0, gt=0, description="total deadline of an image download, redirects included"
    )
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
    vwm_token_budget: int | None = Field(
        None,
        ge=64,
        description=(
            "visual tokens the answer's images may spend together (global image + crops); "
            "None: the VQA model family's default (seal_agent.models.vision_tokens)"
        ),
    )
    crop_sizing: Literal["encoder", "as_cut"] = Field(
        "encoder",
        description=(
            "'encoder': each VWM crop is resized so the object spans enough of the VQA "
            "encoder's patches (seal_agent.graph.vwm); 'as_cut': sent as cut (ablation)"
        ),
    )
    answer_with_best_box: bool = Field(
        False,
        description=(
            "show the VQA model the search's best box even when the search failed (the "
            "reference benchmark's protocol); False writes 'not existent' instead"
        ),
    )
    max_new_tokens: GenerationBudget = Field(
        default_factory=GenerationBudget, description="new-token limits per node"
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

    @classmethod
    def reference_protocol(cls, **overrides: Any) -> SealConfig:
        """The reference's benchmark protocol: the ``seal`` search strategy, and the best
        box shown to the VQA model even when a search did not succeed."""
        search = overrides.pop("search", None) or SearchConfig(strategy="seal")
        return cls(search=search, answer_with_best_box=True, **overrides)

    @property
    def crop_scale(self) -> float:
        """VWM crop size relative to the found box (held in ``search.crop_scale``)."""
        return self.search.crop_scale

    def image_policy(self) -> ImagePolicy:
        """The deployment's image rules these settings describe."""
        return ImagePolicy(
            allowed_roots=None if self.allowed_roots is None else tuple(self.allowed_roots),
            cache_dir=self.cache_dir,
            max_pixels=self.max_image_pixels,
            max_decoded_bytes=self.max_decoded_bytes,
            max_file_bytes=self.max_file_bytes,
            formats=tuple(self.image_formats),
            allow_urls=self.allow_urls,
            url_allowed_hosts=tuple(self.url_allowed_hosts),
            url_timeout_s=self.url_timeout_s,
            max_download_bytes=self.max_download_bytes,
            spill_max_bytes=self.spill_max_bytes,
            spill_retention_s=self.spill_retention_s,
        )

    def deployment(self) -> dict[str, Any]:
        """The deployment settings among these (the fields a call may not change)."""
        return {name: getattr(self, name) for name in sorted(DEPLOYMENT_FIELDS)}


def per_call_settings(settings: dict[str, Any]) -> SealConfig:
    """A call's settings dict as a ``SealConfig``, read without touching the filesystem (a
    thresholds profile path is refused before validation would read it); a
    ``SettingsError`` names what is wrong."""
    _refuse_profile_paths(settings)
    try:
        return SealConfig.model_validate(settings)
    except ValidationError as exc:
        raise SettingsError(f"invalid SEAL settings for this call: {exc}") from exc


def merge_overrides(base: SealConfig, override: SealConfig | dict[str, Any] | None) -> SealConfig:
    """``base`` with the fields ``override`` explicitly sets (recursively for ``search``)."""
    if override is None:
        return base
    if isinstance(override, dict):
        override = per_call_settings(override)
    if not isinstance(override, SealConfig):
        raise SettingsError(f"expected SealConfig or dict, got {type(override).__name__}")
    update: dict[str, Any] = {}
    for name in override.model_fields_set:
        value = getattr(override, name)
        if name in DEPLOYMENT_FIELDS:
            if value != getattr(base, name):
                raise DeploymentSettingError(
                    f"the per-call settings try to change {name!r}, a deployment setting "
                    f"fixed when the graph was built; set it in build_graph(config="
                    f"SealConfig({name}=...)) instead"
                )
            continue
        if name == "search":
            fields = {k: getattr(value, k) for k in value.model_fields_set}
            _refuse_raised_budgets(base.search, fields)
            value = base.search.model_copy(update=fields)
        update[name] = value
    return base.model_copy(update=update)


#: Search budgets a call may lower but never raise or remove: they bound what one call
#: can make the process spend.
BUDGET_FIELDS = ("max_calls", "deadline_s")


def _refuse_raised_budgets(base: SearchConfig, fields: dict[str, Any]) -> None:
    for name in BUDGET_FIELDS:
        if name not in fields:
            continue
        limit, wanted = getattr(base, name), fields[name]
        if limit is not None and (wanted is None or wanted > limit):
            raise DeploymentSettingError(
                f"the per-call settings raise the search budget {name!r} to {wanted!r} above "
                f"the graph's {limit!r}; a call may only lower it (set a larger budget in "
                f"build_graph(config=SealConfig(search={{{name!r}: ...}})))"
            )


def _refuse_profile_paths(override: dict[str, Any]) -> None:
    """Per-call settings may carry thresholds, never a profile path for the process to read:
    which files are read is the deployment's decision (a path given at build time)."""
    search = override.get("search")
    thresholds = search.get("thresholds") if isinstance(search, dict) else None
    if isinstance(thresholds, str | os.PathLike):
        raise DeploymentSettingError(
            "the per-call settings name a thresholds profile file; per call, give the "
            "thresholds themselves (a dict of ModelThresholds fields); a profile path is "
            "read only when the graph is built (SealConfig(search={'thresholds': PATH}))"
        )


def resolve_config(
    base: SealConfig, context: object = None, configurable: dict[str, Any] | None = None
) -> SealConfig:
    """The settings of one call: build-time, then ``configurable``, then runtime context."""
    config = base
    if configurable and configurable.get(CONFIGURABLE_KEY) is not None:
        config = merge_overrides(config, configurable[CONFIGURABLE_KEY])
    if context is not None:
        if not isinstance(context, SealConfig | dict):
            raise SettingsError(
                f"the runtime context of a SEAL graph must be a SealConfig, got "
                f"{type(context).__name__}"
            )
        config = merge_overrides(config, context)
    return config


__all__ = [
    "CONFIGURABLE_KEY",
    "DEPLOYMENT_FIELDS",
    "MAX_TARGETS_LIMIT",
    "DeploymentSettingError",
    "GenerationBudget",
    "SealConfig",
    "SettingsError",
    "merge_overrides",
    "per_call_settings",
    "resolve_config",
]
