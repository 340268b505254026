"""Loading transformers checkpoints with errors a user can act on.

``from_pretrained`` fails deep inside the hub client when a model id is wrong, the
machine is offline, or an optional dependency is missing; these helpers turn that into
one sentence naming the checkpoint and the likely cause.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from seal_agent.errors import SealError

T = TypeVar("T")


def unwrapped_model(model: Any) -> Any:
    """The transformers model under a peft wrapper (a plain model as is): where its
    config, embeddings and submodules are, which a ``PeftModel`` only forwards."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def load_or_raise(
    what: str,
    model_id: str,
    loader: Callable[[], T],
    error: type[SealError],
) -> T:
    """Run ``loader`` and re-raise any failure as ``error`` naming ``what`` and ``model_id``."""
    try:
        return loader()
    except SealError:
        raise
    except (OSError, ValueError, KeyError, ImportError, TypeError, AttributeError) as exc:
        hint = ""
        text = str(exc)
        if "torchvision" in text or "VIDEO_PROCESSOR_MAPPING" in text:
            hint = " (this processor needs torchvision: pip install torchvision)"
        elif isinstance(exc, OSError):
            hint = (
                " (is the id right, and is the checkpoint in the local Hugging Face cache or "
                "a local directory? weights are not downloaded when the machine is offline)"
            )
        raise error(
            f"could not load {what} {model_id!r}: {type(exc).__name__}: {text}{hint}"
        ) from exc
