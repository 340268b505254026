"""Per-node generation limits, passed to a chat model under its provider's keyword.

The listing needs one sentence, a contextual cue one phrase; letting every node generate
up to the model's default (512 new tokens for ``TransformersChatModel``) wastes decode
time whenever a model rambles. Limits are set per node in ``SealConfig.max_new_tokens``.
LangChain has no provider-neutral keyword for the limit, so it is named per family; a
model not listed keeps its own configured limit (ChatOllama takes ``num_predict`` only
inside ``options``, which would replace its other options).
"""

from __future__ import annotations

from typing import Any

#: Chat model classes and the ``invoke`` keyword that bounds their new tokens.
TOKEN_LIMIT_KEYWORDS: dict[str, str] = {
    "TransformersChatModel": "max_new_tokens",
    "ChatOpenAI": "max_tokens",
    "AzureChatOpenAI": "max_tokens",
    "ChatAnthropic": "max_tokens",
    "ChatMistralAI": "max_tokens",
    "ChatGroq": "max_tokens",
}


def token_limit_kwargs(model: object, max_tokens: int | None) -> dict[str, Any]:
    """``{keyword: limit}`` for ``model.invoke`` (``{}`` where unknown).

    The limit is the smaller of ``max_tokens`` and the model's own configured one, so a
    user who set a tighter limit on the model keeps it.
    """
    if max_tokens is None:
        return {}
    for cls in type(model).__mro__:
        keyword = TOKEN_LIMIT_KEYWORDS.get(cls.__name__)
        if keyword is None:
            continue
        own = getattr(model, keyword, None)
        if own is None:  # TransformersChatModel keeps it in its generation settings
            own = getattr(getattr(model, "generation", None), keyword, None)
        limit = int(max_tokens)
        if isinstance(own, int) and not isinstance(own, bool) and own > 0:
            limit = min(limit, own)
        return {keyword: limit}
    return {}


__all__ = ["TOKEN_LIMIT_KEYWORDS", "token_limit_kwargs"]
