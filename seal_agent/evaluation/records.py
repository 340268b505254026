"""What one system answered on one item: the line a run appends to its JSONL file."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TargetRecord(BaseModel):
    """One target a system searched for."""

    name: str
    found: bool
    iou: float | None = Field(None, description="with the annotated box, where one matched")
    patches_scored: int = 0
    forward_passes: int = 0
    stop_reason: str = ""

    @property
    def successful(self) -> bool:
        """Found, and on the annotated object where the item says where it is (IoU > 0.5)."""
        return self.found and (self.iou is None or self.iou > 0.5)


class Prediction(BaseModel):
    """What a system answered for one item; ``choice`` indexes the options as shown."""

    choice: int | None
    answer: str = ""
    patches_scored: int = 0
    forward_passes: int = 0
    targets_searched: int = 0
    targets_localised: int = Field(0, description="annotated targets found with IoU > 0.5")
    targets_annotated: int = Field(0, description="annotated targets a search looked for")
    targets: list[TargetRecord] = Field(default_factory=list)


class ItemRecord(BaseModel):
    """One (system, seed, item): the unit a run appends, resumes and aggregates."""

    system: str
    seed: int
    item_id: str
    category: str
    cycle: str | None = None
    shown_options: list[str]
    correct_index: int
    prediction: Prediction
    correct: bool
    elapsed_s: float
    peak_gpu_mb: float | None = Field(None, description="peak CUDA memory during the item")
    error: str | None = Field(None, description="why the system gave no answer (a model fault)")

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.system, self.seed, self.item_id)


__all__ = ["ItemRecord", "Prediction", "TargetRecord"]
