"""The base of every event model: AWS adds fields to its events over time, so unknown fields are
ignored (requests from clients, by contrast, forbid them)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class LooseModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
