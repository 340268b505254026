"""The input-embedding table in host memory: a 1 GB lookup table off the GPU.

A 7B VLM's input embeddings are a lookup table (Qwen2.5-VL-7B: 152,064 x 3,584 in bf16,
1.09 GB, 6.6 % of its weights) that each forward reads a few rows of: the prompt's
~1,500 at prefill, one per decoded token. Kept in host memory, a prefill's lookup plus
copy costs ~1-2 ms and a decoded token's ~0.1 ms, while the GPU gains the whole table:
on one H100 with Qwen2.5-VL-7B and OWLv2 that is what brings a question under 18 GB.

Only for models whose output head does not share the table (tied embeddings would leave
the head's copy on the GPU anyway, so nothing is gained); everything else about the
model is unchanged, and its outputs are bit-equal (a lookup is exact on any device).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from seal_agent.models.loading import unwrapped_model


class HostEmbedding(nn.Module):
    """An ``nn.Embedding`` whose table lives on the CPU; looks up there and hands the
    rows to ``device`` (the model's), so the model around it sees no difference."""

    def __init__(self, table: nn.Embedding) -> None:
        super().__init__()
        self.table = table.to("cpu")
        self.num_embeddings = table.num_embeddings
        self.embedding_dim = table.embedding_dim
        self.padding_idx = table.padding_idx

    @property
    def weight(self) -> torch.Tensor:
        return self.table.weight

    def lookup(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Rows for ``input_ids`` (on any device), where the table is."""
        return self.table(input_ids.to(self.table.weight.device))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # The rows go where the ids came from: the model's device.
        return self.lookup(input_ids).to(input_ids.device)


def host_embeddings_reason(model: Any) -> str | None:
    """Why the input embeddings of ``model`` cannot move to host memory (None: they can)."""
    base = unwrapped_model(model)
    get_in = getattr(base, "get_input_embeddings", None)
    get_out = getattr(base, "get_output_embeddings", None)
    table = get_in() if callable(get_in) else None
    head = get_out() if callable(get_out) else None
    if isinstance(table, HostEmbedding):
        return "already in host memory"
    if not isinstance(table, nn.Embedding) or type(table) is not nn.Embedding:
        return f"input embeddings of type {type(table).__name__} (a plain nn.Embedding is moved)"
    if head is None or getattr(head, "weight", None) is None:
        return "no output head found"
    if head.weight.data_ptr() == table.weight.data_ptr():
        return "the output head shares the embedding table (tied weights)"
    if not callable(getattr(base, "set_input_embeddings", None)):
        return "the model cannot set its input embeddings"
    return None


def move_input_embeddings_to_host(model: Any) -> bool:
    """Put ``model``'s input-embedding table in host memory; False (nothing changed)
    where ``host_embeddings_reason`` names a reason."""
    if host_embeddings_reason(model) is not None:
        return False
    base = unwrapped_model(model)
    table = base.get_input_embeddings()
    device = table.weight.device
    base.set_input_embeddings(HostEmbedding(table))
    if device.type == "cuda":
        torch.cuda.empty_cache()  # hand the table's memory back
    return True


__all__ = ["HostEmbedding", "host_embeddings_reason", "move_input_embeddings_to_host"]
