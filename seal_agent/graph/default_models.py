"""Which models the ready-made graph (``seal_agent.graph:graph``) is built over.

The LangGraph Server, Studio and ``from seal_agent.graph import graph`` all import one
module attribute, so the choice of models cannot be a constructor argument: it is read
from the environment when the default graph is built, and the models themselves are
built on first use (importing the graph never loads weights).

* ``SEAL_AGENT_MODELS=transformers`` (default): a local transformers VLM and OWLv2;
  ``SEAL_AGENT_VQA_MODEL`` / ``SEAL_AGENT_SEARCH_MODEL`` override their hub ids or local
  directories, ``SEAL_AGENT_DEVICE`` the device.
* ``SEAL_AGENT_MODELS=shapeworld``: the offline shape-world reference pair (no weights),
  for demos, tests and trying the server without a GPU.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Literal, cast

from langchain_core.language_models import BaseChatModel

from seal_agent.errors import SealError
from seal_agent.graph.lazy_models import Lazy
from seal_agent.search import SearchModel

ModelSet = Literal["transformers", "shapeworld"]
MODEL_SETS: tuple[ModelSet, ...] = ("transformers", "shapeworld")
ENV_MODELS = "SEAL_AGENT_MODELS"


def model_set_from_env() -> ModelSet:
    """``$SEAL_AGENT_MODELS``, checked (``transformers`` when unset)."""
    value = os.environ.get(ENV_MODELS, "").strip().lower() or "transformers"
    if value not in MODEL_SETS:
        raise SealError(
            f"{ENV_MODELS}={value!r} is not a model set; use one of {', '.join(MODEL_SETS)}"
        )
    return cast(ModelSet, value)


ModelPair = tuple[Lazy[BaseChatModel], Lazy[SearchModel]]

#: One pair per model set and environment: every default graph of the process (the
#: module's, a tool's with its own roots) shares the weights instead of loading them again.
_PAIRS: dict[tuple[str | None, ...], ModelPair] = {}
_PAIRS_LOCK = threading.Lock()


def default_models(models: ModelSet | None = None) -> ModelPair:
    """The (VQA, search) pair of a model set, each built on first use, and shared by
    every default graph built with the same set and environment.

    A bad ``$SEAL_AGENT_MODELS`` fails at the first run, with its sentence, not at import
    (importing ``seal_agent.graph`` must never fail on the environment).
    """
    try:
        chosen = models or model_set_from_env()
    except SealError as exc:
        error = exc

        def refuse() -> Any:
            raise error

        return Lazy(refuse, f"invalid {ENV_MODELS}"), Lazy(refuse, f"invalid {ENV_MODELS}")
    key = (chosen, *(os.environ.get(name) or None for name in _MODEL_ENV))
    with _PAIRS_LOCK:
        if key not in _PAIRS:
            _PAIRS[key] = _model_pair(chosen)
        return _PAIRS[key]


#: The variables that pick the transformers set's models and device.
_MODEL_ENV = ("SEAL_AGENT_VQA_MODEL", "SEAL_AGENT_SEARCH_MODEL", "SEAL_AGENT_DEVICE")


def _model_pair(chosen: ModelSet) -> ModelPair:
    if chosen == "shapeworld":

        def reference_vqa() -> BaseChatModel:
            from seal_agent.shapeworld.vqa_model import ReferenceVQAChatModel

            return ReferenceVQAChatModel()

        def reference_search() -> SearchModel:
            from seal_agent.shapeworld import ReferenceSearchModel

            return ReferenceSearchModel()

        return (
            Lazy(reference_vqa, "ReferenceVQAChatModel()"),
            Lazy(reference_search, "ReferenceSearchModel()"),
        )
    if chosen != "transformers":
        raise SealError(f"unknown model set {chosen!r}; use one of {', '.join(MODEL_SETS)}")
    vqa_id = os.environ.get("SEAL_AGENT_VQA_MODEL") or None
    search_id = os.environ.get("SEAL_AGENT_SEARCH_MODEL") or None
    device = os.environ.get("SEAL_AGENT_DEVICE") or None

    def vqa() -> BaseChatModel:
        from seal_agent.models import TransformersChatModel

        kwargs: dict[str, Any] = {"device": device}
        if vqa_id:
            kwargs["model_id"] = vqa_id
        return TransformersChatModel(**{k: v for k, v in kwargs.items() if v is not None})

    def searcher() -> SearchModel:
        from seal_agent.models import OwlSearchModel

        args = (search_id,) if search_id else ()
        return OwlSearchModel(*args, device=device)

    return (
        Lazy(vqa, f"TransformersChatModel({vqa_id or 'default'})"),
        Lazy(searcher, f"OwlSearchModel({search_id or 'default'})"),
    )


__all__ = ["ENV_MODELS", "MODEL_SETS", "ModelSet", "default_models", "model_set_from_env"]
