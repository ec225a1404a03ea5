"""What the approval workflow (statemachines/versions/approval.asl.json) hands its Lambda tasks."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from chorus.model.registry import ServiceName
from chorus.model.versions import VERSION_ID


class ApprovalTask(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    action: Literal["request_approval", "start_canary", "judge_canary", "promote", "expire"]
    service: ServiceName
    version: Annotated[str, Field(pattern=VERSION_ID)]
    task_token: Annotated[str | None, Field(alias="taskToken", max_length=8192)] = None
    link_base_url: Annotated[str | None, Field(alias="linkBaseUrl", pattern=r"^https?://\S+$")] = None
