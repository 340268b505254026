"""Fail fast, in one sentence, when model weights are neither cached nor downloadable.

Without cached weights on an offline machine, ``from_pretrained`` sits in the hub
client's download retries for minutes before failing deep in a traceback. Before
building real models, ``seal-agent ask`` checks each checkpoint: a local directory or a
hub id whose ``config.json`` is in the local Hugging Face cache is fine; otherwise the
hub must be reachable (a connect with a short timeout), or the command stops at once.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlparse

from seal_agent.errors import SealError

_TRUE = {"1", "true", "yes", "on"}


def hub_cache_dir() -> Path:
    """Where huggingface_hub keeps downloads ($HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/...)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def is_available_locally(model_id: str, cache_dir: Path) -> bool:
    """A local checkpoint directory, or a hub id whose config is in the local cache."""
    if Path(model_id).expanduser().is_dir():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # transformers depends on it; without it nothing loads anyway
        return False
    try:
        found = try_to_load_from_cache(model_id, "config.json", cache_dir=str(cache_dir))
    except ValueError:  # not a valid repo id (HFValidationError)
        return False
    return isinstance(found, str)


def hub_reachable(endpoint: str, timeout_s: float) -> bool:
    """Whether a TCP connection to the hub opens within ``timeout_s`` (DNS included)."""
    url = urlparse(endpoint)
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme != "http" else 80)
    result: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=connect, daemon=True)  # getaddrinfo has no timeout
    worker.start()
    worker.join(timeout_s + 0.5)
    return bool(result and result[0])


def ensure_weights_obtainable(model_ids: Iterable[str], timeout_s: float = 3.0) -> None:
    """Raise a one-sentence ``SealError`` if some checkpoint cannot be had right now."""
    cache = hub_cache_dir()
    missing = [m for m in dict.fromkeys(model_ids) if not is_available_locally(m, cache)]
    if not missing:
        return
    names = ", ".join(missing)
    advice = (
        f"download them on a connected machine (hf download ID) into {cache}, pass a local "
        "directory, or use --shapeworld for the offline reference models"
    )
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE:
        raise SealError(f"the weights of {names} are not in the local cache and HF_HUB_OFFLINE "
                        f"is set: {advice}")  # fmt: skip
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    if not hub_reachable(endpoint, timeout_s):
        raise SealError(
            f"the weights of {names} are not in the local cache and {endpoint} cannot be "
            f"reached: {advice}"
        )


__all__ = ["ensure_weights_obtainable", "hub_cache_dir", "hub_reachable", "is_available_locally"]
