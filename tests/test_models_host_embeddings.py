"""The input-embedding table in host memory (issue 12 item 6's memory goal): replies,
static decoding, the prefix cache and option scoring are unchanged on tiny Qwen2.5-VL
and LLaVA; a tied table is left alone. (On the CPU "host" is the model's own device, so
this proves the plumbing; the GPU run measures the memory.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from models_fixtures import llava_dir, qwen_dir  # noqa: F401  (fixtures)
from test_models_prefix_cache import _calls
from torch import nn

from seal_agent.models.chat import GenerationSettings, TransformersChatModel
from seal_agent.models.host_embeddings import (
    HostEmbedding,
    host_embeddings_reason,
    move_input_embeddings_to_host,
)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _model(model_dir: Path, host: bool, static: bool) -> Any:
    return TransformersChatModel(
        model_id=str(model_dir),
        device="cpu",
        dtype="float32",
        generation=GenerationSettings(max_new_tokens=8),
        host_input_embeddings=host,
        static_decode=static,
    )


@pytest.mark.parametrize("family", ["qwen", "llava"])
@pytest.mark.parametrize("static", [False, True])
def test_replies_and_scores_are_unchanged(family, static, request):
    model_dir = request.getfixturevalue(f"{family}_dir")
    plain, host = _model(model_dir, False, False), _model(model_dir, True, static)
    for messages in _calls():
        assert host.invoke(messages).text == plain.invoke(messages).text
    options = ["red", "dark blue", "green"]
    assert host.score_options(_calls()[0], options) == pytest.approx(
        plain.score_options(_calls()[0], options), abs=1e-6
    )
    table = host.runtime().model.get_input_embeddings()
    assert isinstance(table, HostEmbedding)
    assert table.weight.device.type == "cpu"
    assert not isinstance(plain.runtime().model.get_input_embeddings(), HostEmbedding)
    if static:
        assert host._decoder is not None
        assert host._decoder.decoded_tokens > 0
    assert host.prefix_cache is not None
    assert host.prefix_cache.stats.reused_tokens > 0


class _Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.embed.weight

    def get_input_embeddings(self) -> nn.Module:
        return self.embed

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.embed = value

    def get_output_embeddings(self) -> nn.Module:
        return self.head


def test_a_table_the_output_head_shares_stays():
    model = _Tied()
    assert "tied" in (host_embeddings_reason(model) or "")
    assert not move_input_embeddings_to_host(model)
    assert model.embed is model.get_input_embeddings()
    model.head.weight = nn.Parameter(model.embed.weight.detach().clone())  # untie
    assert move_input_embeddings_to_host(model)
    assert isinstance(model.get_input_embeddings(), HostEmbedding)
    assert "already" in (host_embeddings_reason(model) or "")


def test_static_decoding_still_applies_with_the_table_on_the_host(qwen_dir: Path):  # noqa: F811
    from seal_agent.models.static_decode import unsupported_reason

    model = _model(qwen_dir, True, True)
    runtime = model.runtime()
    table = runtime.model.get_input_embeddings()
    assert isinstance(table, HostEmbedding)
    table.table.to("meta")  # stands in for "another device than the model's"
    assert unsupported_reason(runtime.model) is None
