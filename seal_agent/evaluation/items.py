"""One benchmark question, whatever file layout it came from.

V*Bench stores the correct option first; HR-Bench stores options in their published
order with an answer letter. Both become an ``EvalItem`` holding the options in the
published order and the index of the correct one, so protocol, systems and metrics
never need to know which benchmark they run on.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from seal_agent.imaging.geometry import Box


class EvalItem(BaseModel):
    """A multiple-choice question about one image."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1, description="unique within a benchmark")
    bench: str = Field(description="'vstar' or 'hrbench'")
    category: str = Field(description="the column the item is scored under")
    image_path: Path
    question: str = Field(min_length=1)
    options: tuple[str, ...] = Field(min_length=2, description="in the published order")
    correct_index: int = Field(ge=0)
    target_objects: tuple[str, ...] = ()
    target_boxes: tuple[Box, ...] = Field((), description="original-image pixels, x1 y1 x2 y2")
    cycle: str | None = Field(None, description="HR-Bench's cycle_category")

    @field_validator("options")
    @classmethod
    def _non_empty_options(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not all(isinstance(o, str) and o.strip() for o in value):
            raise ValueError("every option must be a non-empty string")
        return value

    @model_validator(mode="after")
    def _correct_index_in_range(self) -> EvalItem:
        if self.correct_index >= len(self.options):
            raise ValueError(
                f"correct_index {self.correct_index} is out of range for "
                f"{len(self.options)} options"
            )
        return self

    @property
    def stratum(self) -> str:
        """What ``--limit`` samples across: the category, and the cycle where there is one."""
        return self.category if self.cycle is None else f"{self.category}/{self.cycle}"


__all__ = ["EvalItem"]
