"""approvals: the model-version approval workflow's tasks (e-mail the approvers, start a canary,
judge it, expire) and the pages the approvers' links open (GET /approvals/{token} shows what the
link would decide and changes nothing; the page's POST decides, once).

The pages have no bearer token: approvers are people reached by e-mail, and the link itself is the
credential (signed with the stack's KMS HMAC key, single-use, expiring: domain/approval_links.py)."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qs

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from chorus.api.approval_pages import HEADERS, render
from chorus.core import settings
from chorus.core.observability import logger, metrics, tracer
from chorus.domain import approval_links, promotion
from chorus.events.approvals import ApprovalTask
from chorus.model.approvals import LinkState

MAX_FORM_BYTES = 16 * 1024
app = APIGatewayRestResolver()


def _page(state: LinkState) -> Response[str]:
    return Response(
        status_code=state.status, content_type="text/html; charset=utf-8", body=render(state), headers=dict(HEADERS)
    )


@app.get("/approvals/<token>")
def open_link(token: str) -> Response[str]:
    return _page(approval_links.open_link(token))


@app.post("/approvals/<token>")
def decide(token: str) -> Response[str]:
    comment = _comment(app.current_event.raw_event)
    if comment is None:
        return _page(LinkState("invalid", reason="The form could not be read (send it from the page)."))
    return _page(approval_links.submit(token, comment))


def _comment(event: dict[str, Any]) -> str | None:
    """The form's comment (empty when none); None when the body is not a readable form."""
    raw = event.get("body") or ""
    try:
        body = base64.b64decode(raw, validate=True) if event.get("isBase64Encoded") else raw.encode()
        if len(body) > MAX_FORM_BYTES:
            return None
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=10)
    except (binascii.Error, UnicodeError, ValueError):
        return None
    return (fields.get("comment") or [""])[0]


@app.not_found
def _no_route(_: Exception) -> Response[str]:
    return _page(LinkState("invalid", reason="There is no such page."))


def on_task(task: ApprovalTask) -> dict[str, Any]:
    logger.append_keys(service=task.service, version=task.version)
    if task.action == "request_approval":
        assert task.task_token and task.link_base_url, "request_approval needs taskToken and linkBaseUrl"
        promotion.request_approval(task.service, task.version, task.task_token, task.link_base_url)
        return {"requested": True}
    if task.action == "start_canary":
        promotion.start_canary(task.service, task.version)
        return {"canary": True}
    if task.action == "judge_canary":
        margin = settings.load(settings.ApprovalSettings).canary_failure_margin
        return {"outcome": promotion.judge_canary(task.service, task.version, margin)}
    if task.action == "expire":
        promotion.expire(task.service, task.version)
        return {"outcome": "expired"}
    promotion.promote(task.service, task.version, by="workflow")
    return {"outcome": "live"}


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "httpMethod" in event:
        return app.resolve(event, context)
    return on_task(ApprovalTask.model_validate(event))
