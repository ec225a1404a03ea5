"""The Python client (client/chorus_client) against a scripted HTTP server on 127.0.0.1: retries and
backoff, Retry-After, typed errors, Prefer: wait and adaptive polling, the presigned upload and
download, pagination."""

from __future__ import annotations

import email.parser
import email.policy
import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chorus_client import (
    Client,
    Conflict,
    NotFound,
    PredictionFailed,
    RateLimited,
    RetryEvent,
    RetryPolicy,
    ServerError,
    Status,
    TransportError,
    UploadError,
    WaitTimeout,
)
from chorus_client.transport import retry_after_seconds
from tests.e2e.conftest import free_port
from tests.support.scripted_api import ScriptedApi

FAST = RetryPolicy(attempts=4, initial_delay=0.01, max_delay=0.02)
ID = "0123456789abcdef0123456789abcdef"


def prediction(status: str = "running", prediction_id: str = ID, **more: Any) -> dict[str, Any]:
    return {
        "id": prediction_id,
        "service": "digits-svm",
        "kind": "model",
        "status": status,
        "createdAt": "2026-11-22T03:10:07.000Z",
        "updatedAt": "2026-11-22T03:10:07.000Z",
        "startedAt": None,
        "completedAt": None,
        "metadata": {},
        "metrics": {},
        **more,
    }


def succeeded(api: ScriptedApi, **more: Any) -> dict[str, Any]:
    expires = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    output = {"url": f"{api.url}/outputs/{ID}", "contentType": "application/json", "expiresAt": expires}
    return prediction("succeeded", output=output, metrics={"totalSeconds": 0.5}, **more)


@pytest.fixture
def api() -> Any:
    server = ScriptedApi()
    yield server
    server.close()


@pytest.fixture
def retries() -> list[RetryEvent]:
    return []


@pytest.fixture
def client(api: ScriptedApi, retries: list[RetryEvent]) -> Any:
    with Client(api.url, "chr_token", retry=FAST, on_retry=retries.append) as chorus:
        yield chorus


# --- retries ----------------------------------------------------------------------------------------


def test_a_429_is_retried_after_the_seconds_retry_after_names(api, retries):
    # Given an API that is over the tenant's rate once, asking for a second's wait
    api.error("GET", f"/predictions/{ID}", 429, "rate_limited", headers={"Retry-After": "1"})
    api.reply("GET", f"/predictions/{ID}", 200, prediction())
    client = Client(api.url, "chr_token", on_retry=retries.append)  # the default policy
    # When the client reads a prediction
    found = client.get(ID)
    # Then it waited the second and got it
    first, second = api.to("GET", f"/predictions/{ID}")
    assert found.id == ID and found.status is Status.RUNNING
    assert second.at - first.at >= 1.0
    assert [(e.status, e.reason, e.delay, e.attempt) for e in retries] == [(429, "rate_limited", 1.0, 1)]


def test_server_errors_of_a_repeatable_request_are_retried_with_backoff(api, client, retries):
    api.error("GET", "/services", 503, "service_unavailable", times=2)
    api.reply("GET", "/services", 200, {"services": []})
    assert client.services() == []
    assert len(api.to("GET", "/services")) == 3
    assert [e.status for e in retries] == [503, 503] and all(0 < e.delay <= FAST.max_delay for e in retries)


def test_a_server_error_of_a_request_that_is_not_repeatable_is_raised_at_once(api, client, retries):
    api.error("POST", f"/predictions/{ID}/webhook/redeliver", 502, "bad_gateway", "upstream")
    with pytest.raises(ServerError) as raised:
        client.redeliver(ID)
    assert (raised.value.status, raised.value.code, raised.value.message) == (502, "bad_gateway", "upstream")
    assert len(api.requests) == 1 and retries == []


def test_a_retry_after_longer_than_the_policy_waits_for_is_raised_at_once(api, client, retries):
    # Given a tenant over its daily quota (resets in an hour)
    api.error("GET", "/services", 429, "quota_exceeded", "resets at 00:00 UTC", headers={"Retry-After": "3600"})
    # Then the error comes at once, saying when to come back
    with pytest.raises(RateLimited) as raised:
        client.services()
    assert raised.value.code == "quota_exceeded" and raised.value.retry_after == 3600
    assert len(api.requests) == 1 and retries == []


def test_after_the_last_attempt_the_apis_error_is_raised(api, client, retries):
    api.error("GET", "/services", 500, "internal_error", "it broke", times=None)
    with pytest.raises(ServerError, match="it broke"):
        client.services()
    assert len(api.requests) == FAST.attempts and len(retries) == FAST.attempts - 1


def test_no_answer_at_all_is_a_transport_error_after_the_retries(retries):
    client = Client(f"http://127.0.0.1:{free_port()}", "chr_token", retry=FAST, on_retry=retries.append)
    with pytest.raises(TransportError, match="ConnectionError"):
        client.get(ID)
    assert [(e.status, e.reason) for e in retries] == [(None, "ConnectionError")] * (FAST.attempts - 1)


def test_errors_carry_the_apis_code_and_message_and_a_class_per_status(api, client):
    api.error("GET", f"/predictions/{ID}", 404, "not_found", f"prediction {ID!r} not found")
    api.error("POST", f"/predictions/{ID}/cancel", 409, "not_cancelable", "it already succeeded")
    with pytest.raises(NotFound) as missing:
        client.get(ID)
    with pytest.raises(Conflict) as conflict:
        client.cancel(ID)
    assert str(missing.value) == f"not_found: prediction {ID!r} not found (HTTP 404)"
    assert (conflict.value.code, conflict.value.status) == ("not_cancelable", 409)


def test_an_answer_not_in_the_error_shape_still_becomes_an_error(api, client):
    api.reply("GET", "/services", 502, b"<html>Bad Gateway</html>", headers={"Content-Type": "text/html"}, times=None)
    with pytest.raises(ServerError) as raised:
        client.services()
    assert raised.value.code == "http_502" and "Bad Gateway" in raised.value.message


def test_retry_after_is_read_as_seconds_or_as_an_http_date():
    now = datetime(2026, 11, 22, 3, 10, 7, tzinfo=UTC)
    assert retry_after_seconds("3600") == 3600
    assert retry_after_seconds("Sun, 22 Nov 2026 03:10:37 GMT", now) == 30
    assert retry_after_seconds("Sun, 22 Nov 2026 03:00:00 GMT", now) == 0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_every_request_sends_the_token_and_a_create_its_idempotency_key_on_each_try(api, client):
    api.error("POST", "/predictions", 503, "unavailable")
    api.reply("POST", "/predictions", 202, prediction("awaiting_input"))
    client.create("digits-svm", {"pixels": [0] * 64})
    first, second = api.to("POST", "/predictions")
    assert first.headers["authorization"] == second.headers["authorization"] == "Bearer chr_token"
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert first.json() == {"service": "digits-svm", "input": {"pixels": [0] * 64}}


# --- predict and wait -------------------------------------------------------------------------------


def test_inline_input_asks_the_api_to_wait_and_a_finished_answer_needs_no_poll(api, client):
    api.reply("POST", "/predictions", 200, succeeded(api))
    finished = client.predict(
        "digits-svm", {"pixels": [0] * 64}, timeout=10, metadata={"k": "v"}, webhook="https://h.x/y", deadline=60
    )
    [sent] = api.requests
    assert finished.status is Status.SUCCEEDED and finished.output is not None
    assert sent.headers["prefer"] == "wait=10"
    assert sent.json() == {
        "service": "digits-svm",
        "input": {"pixels": [0] * 64},
        "callback": {"type": "webhook", "url": "https://h.x/y"},
        "metadata": {"k": "v"},
        "deadlineSeconds": 60,
    }


def test_waiting_polls_from_a_fifth_of_a_second_growing_half_again_each_time(api, client):
    # Given a prediction that stays queued for five polls, then succeeds
    api.reply("GET", f"/predictions/{ID}", 200, prediction("queued"), times=5)
    api.reply("GET", f"/predictions/{ID}", 200, succeeded(api))
    # When the client waits for it
    started = time.monotonic()
    finished = client.wait(ID)
    # Then the gaps between polls grow x1.5 from 0.2 s
    polls = [r.at for r in api.to("GET", f"/predictions/{ID}")]
    gaps = [b - a for a, b in zip([started, *polls], polls, strict=False)][1:]
    assert finished.status is Status.SUCCEEDED and len(polls) == 6
    for gap, expected in zip(gaps, [0.2, 0.3, 0.45, 0.675, 1.0125], strict=True):
        assert expected <= gap < expected + 0.15, gaps


def test_a_change_brings_the_next_poll_back_to_a_fifth_of_a_second(api, client):
    api.reply("GET", f"/predictions/{ID}", 200, prediction("queued"), times=3)
    api.reply("GET", f"/predictions/{ID}", 200, prediction("running"))
    api.reply("GET", f"/predictions/{ID}", 200, succeeded(api))
    seen: list[str] = []
    client.wait(ID, on_update=lambda p: seen.append(p.status.value))
    polls = [r.at for r in api.to("GET", f"/predictions/{ID}")]
    assert seen == ["queued", "running", "succeeded"]
    assert 0.2 <= polls[-1] - polls[-2] < 0.35  # after running was seen


def test_a_wait_that_runs_out_raises_with_the_prediction_as_it_was(api, client):
    api.reply("GET", f"/predictions/{ID}", 200, prediction("running"), times=None)
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as raised:
        client.wait(ID, timeout=0.6)
    assert 0.6 <= time.monotonic() - started < 1.5
    assert raised.value.prediction.status is Status.RUNNING


def test_a_failed_prediction_is_returned_and_raise_for_status_raises_its_error(api, client):
    failure = {"code": "model_error", "message": "pixels must be 64 numbers"}
    api.reply("POST", "/predictions", 200, prediction("failed", error=failure))
    finished = client.predict("digits-svm", {"pixels": [1, 2, 3]})
    assert finished.status is Status.FAILED
    with pytest.raises(PredictionFailed) as raised:
        finished.raise_for_status()
    assert (raised.value.code, raised.value.message) == ("model_error", "pixels must be 64 numbers")


# --- upload and download ----------------------------------------------------------------------------


def created_for_upload(api: ScriptedApi, max_bytes: int = 1000) -> dict[str, Any]:
    fields = {
        "key": f"inputs/local/{ID}/input",
        "Content-Type": "image/png",
        "policy": "cG9saWN5",
        "x-amz-signature": "ab",
    }
    upload = {
        "url": f"{api.url}/upload",
        "method": "POST",
        "fields": fields,
        "expiresAt": "2026-11-22T04:10:07.000Z",
        "maxBytes": max_bytes,
        "contentType": "image/png",
    }
    return prediction("awaiting_input", upload=upload)


def form_parts(request: Any) -> list[tuple[str, str | None, bytes]]:
    """(name, filename, content) of each part of a multipart/form-data body, in order."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode() + request.body
    )
    return [
        (part.get_param("name", header="content-disposition"), part.get_filename(), part.get_payload(decode=True))
        for part in message.iter_parts()
    ]


def test_a_file_is_uploaded_through_the_presigned_post_fields_first_then_the_file(api, client, tmp_path):
    # Given a PNG file and an API that answers with an upload form
    image = tmp_path / "digit.png"
    image.write_bytes(b"\x89PNG fake image")
    api.reply("POST", "/predictions", 202, created_for_upload(api))
    api.reply("POST", "/upload", 204, b"")
    api.reply("GET", f"/predictions/{ID}", 200, succeeded(api))
    # When it is predicted
    finished = client.predict("digits-svm", image)
    # Then the request named its content type, and the form carried every field, then the file
    assert api.to("POST", "/predictions")[0].json() == {"service": "digits-svm", "contentType": "image/png"}
    [upload] = api.to("POST", "/upload")
    assert "authorization" not in upload.headers and upload.headers["content-length"] == str(len(upload.body))
    parts = form_parts(upload)
    assert [name for name, _, _ in parts] == ["key", "Content-Type", "policy", "x-amz-signature", "file"]
    assert parts[0][2] == f"inputs/local/{ID}/input".encode()
    assert parts[-1][1:] == ("digit.png", b"\x89PNG fake image")
    assert finished.status is Status.SUCCEEDED


def test_an_upload_retried_after_s3_slows_down_sends_the_whole_file_again(api, client):
    api.reply("POST", "/predictions", 202, created_for_upload(api))
    slow_down = b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"
    api.reply("POST", "/upload", 503, slow_down, headers={"Content-Type": "application/xml"})
    api.reply("POST", "/upload", 204, b"")
    created = client.predict("digits-svm", io.BytesIO(b"0123456789"), wait=False)
    assert created.status is Status.AWAITING_INPUT
    assert [form_parts(r)[-1][2] for r in api.to("POST", "/upload")] == [b"0123456789", b"0123456789"]


def test_a_file_larger_than_the_service_takes_is_not_sent_and_its_prediction_canceled(api, client):
    api.reply("POST", "/predictions", 202, created_for_upload(api, max_bytes=4))
    api.reply("POST", f"/predictions/{ID}/cancel", 200, prediction("canceled"))
    with pytest.raises(UploadError, match="at most 4"):
        client.predict("digits-svm", b"12345")
    assert api.to("POST", "/upload") == [] and len(api.to("POST", f"/predictions/{ID}/cancel")) == 1


def test_s3_refusing_the_upload_is_an_upload_error_naming_s3s_code(api, client):
    api.reply("POST", "/predictions", 202, created_for_upload(api))
    denied = b"<Error><Code>AccessDenied</Code><Message>Policy expired.</Message></Error>"
    api.reply("POST", "/upload", 403, denied, headers={"Content-Type": "application/xml"})
    api.reply("POST", f"/predictions/{ID}/cancel", 200, prediction("canceled"))
    with pytest.raises(UploadError, match="AccessDenied: Policy expired"):
        client.predict("digits-svm", b"12345")


def test_a_missing_file_fails_before_anything_is_created(api, client, tmp_path):
    with pytest.raises(FileNotFoundError):
        client.predict("digits-svm", tmp_path / "nothing.png")
    assert api.requests == []


def test_download_fetches_the_output_without_the_token_and_refreshes_an_expired_url(api, client, tmp_path):
    stale = succeeded(api)
    stale["output"]["expiresAt"] = "2020-01-01T00:00:00.000Z"
    api.reply("GET", f"/predictions/{ID}", 200, succeeded(api), times=None)
    api.reply("GET", f"/outputs/{ID}", 200, b'{"label": 1}', times=None)
    from chorus_client import Prediction

    assert client.download(Prediction.model_validate(stale)) == b'{"label": 1}'  # fetched the prediction again
    assert client.download(ID, to=tmp_path / "out.json") == len(b'{"label": 1}')
    assert (tmp_path / "out.json").read_bytes() == b'{"label": 1}'
    assert all("authorization" not in r.headers for r in api.to("GET", f"/outputs/{ID}"))


def test_download_of_a_failed_prediction_raises_its_error(api, client):
    error = {"code": "model_error", "message": "bad pixels"}
    api.reply("GET", f"/predictions/{ID}", 200, prediction("failed", error=error))
    with pytest.raises(PredictionFailed, match="model_error: bad pixels"):
        client.download(ID)


# --- listing ------------------------------------------------------------------------------------------


def test_list_follows_next_cursor_page_after_page_with_its_filters(api, client):
    api.reply("GET", "/predictions", 200, {"predictions": [prediction("failed")], "nextCursor": "c1"})
    api.reply("GET", "/predictions", 200, {"predictions": [prediction("failed", "p2")], "nextCursor": None})
    pages = list(client.list(service="digits-svm", status=Status.FAILED, limit=1))
    assert [[p.id for p in page.predictions] for page in pages] == [[ID], ["p2"]]
    first, second = api.to("GET", "/predictions")
    assert first.query == {"limit": ["1"], "service": ["digits-svm"], "status": ["failed"]}
    assert second.query == {**first.query, "cursor": ["c1"]}


def test_an_ensembles_steps_and_fields_added_later_are_read(api, client):
    steps = [
        {"name": "svm", "kind": "model", "service": "digits-svm", "status": "succeeded", "id": "c1",
         "startedAt": "2026-11-22T03:10:07.000Z", "completedAt": "2026-11-22T03:10:08.000Z", "durationSeconds": 1.0},
        {"name": "decide", "kind": "rule", "service": None, "status": "pending"},
    ]  # fmt: skip
    api.reply("GET", f"/predictions/{ID}", 200, prediction("running", kind="ensemble", steps=steps, newField=1))
    found = client.get(ID)
    assert found.steps is not None and [s.status.finished for s in found.steps] == [True, False]
    assert found.to_json()["newField"] == 1


def test_a_prediction_id_cannot_leave_its_route(api, client):
    api.reply("GET", "/predictions/..%2Fservices", 200, prediction())
    client.get("../services")
    assert [r.path for r in api.requests] == ["/predictions/..%2Fservices"]


def test_the_clients_dependencies_are_the_ones_the_repository_pins():
    import tomllib

    from packaging.requirements import Requirement

    repo = Path(__file__).resolve().parents[2]
    declared = tomllib.loads((repo / "client" / "pyproject.toml").read_text())["project"]["dependencies"]
    pins: dict[str, str] = {}
    for source in ("requirements-dev.txt", "layers/chorus/requirements.txt"):
        for line in (repo / source).read_text().splitlines():
            name, _, version = line.split("#")[0].strip().partition("==")
            if version:
                pins[Requirement(name).name.lower()] = version
    for requirement in map(Requirement, declared):
        assert requirement.name.lower() in pins, f"{requirement.name} is not pinned in requirements-dev.txt"
        assert requirement.specifier.contains(pins[requirement.name.lower()]), (requirement, pins[requirement.name])
