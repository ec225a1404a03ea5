"""`Client`: the Chorus REST API (v1) from Python.

    from chorus_client import Client

    with Client("http://127.0.0.1:3000", "chr_…") as chorus:
        prediction = chorus.predict("digits-svm", Path("digit.png"))   # uploads, waits
        print(chorus.download(prediction))                            # b'{"label": 1, …}'

Waiting: a prediction with inline input is created with `Prefer: wait` (the API holds the answer
up to 25 s, so a fast model answers in one request); then, and for uploads, the client polls
`GET /predictions/{id}`, first after 0.2 s, each wait 1.5 times the last up to 5 s, and back to
0.2 s whenever something changed (a status, an ensemble step). Each poll is a request of its own,
so a wait outlasts any single request's limit: it ends when the prediction does, or at `timeout`.
"""

from __future__ import annotations

import builtins
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import IO, Any, Literal, cast, overload
from urllib.parse import quote

import requests
from pydantic import JsonValue

from chorus_client.errors import ChorusClientError, DownloadError, PredictionFailed, UploadError, WaitTimeout
from chorus_client.models import (
    UNSUCCESSFUL,
    CreatedPrediction,
    EmailCallbackRequest,
    Prediction,
    PredictionPage,
    PredictionRequest,
    PredictionSummary,
    RotatedWebhookSecret,
    Service,
    ServiceList,
    Status,
    Upload,
    WebhookCallbackRequest,
    WebhookSecret,
)
from chorus_client.transport import OnRetry, RetryPolicy, Timeouts, Transport
from chorus_client.uploads import FormBody, Payload

MAX_PREFER_WAIT = 25  # seconds: the API holds an answer at most this long (API Gateway ends requests at 29 s)
FIRST_POLL = 0.2  # seconds
POLL_GROWTH = 1.5
LONGEST_POLL = 5.0
CHUNK = 1 << 20

# A file to upload: a path (a Path: a str is JSON), bytes, or a binary file object.
FileInput = os.PathLike[str] | bytes | bytearray | IO[bytes]
Input = FileInput | JsonValue  # anything that is not a file is inline JSON
OnUpdate = Callable[[Prediction], None]
Event = Literal["start", "step", "completed"]


def _is_file(value: object) -> bool:
    return isinstance(value, os.PathLike | bytes | bytearray) or hasattr(value, "read")


def _seconds(value: float | timedelta | None) -> float | None:
    return value.total_seconds() if isinstance(value, timedelta) else value


class Client:
    """The API of one Chorus deployment, as one tenant (the token's).

    `url` is the API's root (`https://….execute-api.….amazonaws.com/v1`, or `make local`'s
    `http://127.0.0.1:3000`); `token` a `chr_…` API token. `retry` says how 429s and server
    errors are retried (`RetryPolicy(attempts=1)`: never); `on_retry` hears of each retry;
    `timeout` bounds each request's read (not a whole wait).
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        on_retry: OnRetry | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self._http = Transport(url, token, retry=retry, timeout=timeout, on_retry=on_retry, session=session)

    @classmethod
    def from_config(cls, *, profile: str | None = None, local: Path | bool = False, **options: Any) -> Client:
        """A client configured as the `chorus` command is: `local` (True, or a ready file) for a
        running `make local`; else `profile`, CHORUS_API_URL / CHORUS_API_TOKEN, CHORUS_PROFILE or
        the `default` profile of ~/.config/chorus/config.toml (see chorus_client.config)."""
        from chorus_client import config

        found = config.resolve(
            profile=profile, use_local=local is not False, local_file=local if isinstance(local, Path) else None
        )
        return cls(found.url, found.token, **options)

    @property
    def url(self) -> str:
        return self._http.base_url

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- predictions -------------------------------------------------------------------------------

    def create(
        self,
        service: str,
        input: JsonValue = None,
        *,
        content_type: str | None = None,
        webhook: str | None = None,
        webhook_events: Sequence[Event] | None = None,
        email: str | None = None,
        metadata: Mapping[str, JsonValue] | None = None,
        deadline: float | timedelta | None = None,
        idempotency_key: str | None = None,
        prefer_wait: int = 0,
    ) -> CreatedPrediction:
        """`POST /predictions`. With `input` (inline JSON) the prediction starts at once; without
        it the answer's `upload` says where to send the input (`upload()`). `deadline` cancels what
        has not finished by then (1 s to 7 days); `prefer_wait` (≤ 25 s, inline input only) asks
        the API to hold the answer until the prediction finishes. The request carries an
        Idempotency-Key (a new one unless given), so retrying it can never create two predictions."""
        if webhook is not None and email is not None:
            raise ValueError("a prediction has one callback: give `webhook` or `email`, not both")
        callback: WebhookCallbackRequest | EmailCallbackRequest | None = None
        if webhook is not None:
            callback = WebhookCallbackRequest(url=webhook, events=list(webhook_events) if webhook_events else None)
        elif email is not None:
            callback = EmailCallbackRequest(address=email)
        seconds = _seconds(deadline)
        body = PredictionRequest(
            service=service,
            input=input,
            content_type=content_type,
            callback=callback,
            metadata=dict(metadata) if metadata else None,
            deadline_seconds=None if seconds is None else max(1, round(seconds)),
        )
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        wait = min(max(0, prefer_wait), MAX_PREFER_WAIT)
        if wait:
            headers["Prefer"] = f"wait={wait}"
        response = self._http.api(
            "POST",
            "/predictions",
            idempotent=True,
            json=body.to_json(),
            headers=headers,
            read_timeout=wait + self._http.timeout if wait else None,
        )
        return CreatedPrediction.model_validate(response.json())

    def upload(self, prediction: CreatedPrediction, file: FileInput | str) -> None:
        """Send `file` through the prediction's presigned POST: every field of `upload.fields`,
        then the file, as multipart/form-data to `upload.url`. On failure the prediction is
        canceled (its input can no longer come) and `UploadError` raised."""
        if prediction.upload is None:
            raise ValueError(f"prediction {prediction.id} takes no upload: its input was inline")
        self._upload(prediction.id, prediction.upload, Payload.of(file))

    def predict(
        self,
        service: str,
        file_or_input: Input,
        *,
        wait: bool = True,
        timeout: float | timedelta | None = None,
        content_type: str | None = None,
        webhook: str | None = None,
        webhook_events: Sequence[Event] | None = None,
        email: str | None = None,
        metadata: Mapping[str, JsonValue] | None = None,
        deadline: float | timedelta | None = None,
        idempotency_key: str | None = None,
        on_update: OnUpdate | None = None,
    ) -> Prediction:
        """Create a prediction, upload its input if it is a file, and (with `wait`) wait until it
        ends: the prediction as it ended, whatever its status (`raise_for_status()` raises on
        failed, canceled or expired). `file_or_input`: a `Path`, bytes or a binary file is
        uploaded (its content type from `content_type`, else guessed from the file name, else the
        service's first); anything else (a dict, a list, a number, even a str) is inline JSON.
        `timeout` bounds the whole call (`WaitTimeout` after it; the prediction goes on).
        `on_update` is told the prediction first and then every time its status or a step changes."""
        started = time.monotonic()
        limit = _seconds(timeout)
        options: dict[str, Any] = dict(
            webhook=webhook,
            webhook_events=webhook_events,
            email=email,
            metadata=metadata,
            deadline=deadline,
            idempotency_key=idempotency_key,
        )
        if _is_file(file_or_input):
            payload = Payload.of(file_or_input).check()  # a missing or empty file fails before anything is created
            created = self.create(service, content_type=content_type or payload.content_type, **options)
            if on_update is not None:
                on_update(created)
            if created.upload is not None:
                self._upload(created.id, created.upload, payload)
        else:
            prefer = MAX_PREFER_WAIT if limit is None else min(MAX_PREFER_WAIT, int(limit))
            inline = cast(JsonValue, file_or_input)
            created = self.create(
                service, inline, content_type=content_type, prefer_wait=prefer if wait else 0, **options
            )
            if on_update is not None:
                on_update(created)
        if not wait or created.terminal:
            return created
        remaining = None if limit is None else max(0.0, limit - (time.monotonic() - started))
        return self.wait(created, timeout=remaining, on_update=on_update)

    def get(self, prediction_id: str) -> Prediction:
        """`GET /predictions/{id}`."""
        return Prediction.model_validate(self._http.api("GET", _path(prediction_id), idempotent=True).json())

    def list(
        self,
        *,
        service: str | None = None,
        status: Status | str | None = None,
        parent_id: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Iterator[PredictionPage]:
        """`GET /predictions`, a page at a time (`limit` per page, 1-100), newest first, following
        `nextCursor` until the last page; each page is fetched when the iterator reaches it.
        Without `parent_id` only top-level predictions; with it, that ensemble prediction's steps."""
        params: dict[str, str] = {"limit": str(limit)}
        for name, value in (
            ("service", service),
            ("status", status),
            ("parentId", parent_id),
            ("createdAfter", created_after),
            ("createdBefore", created_before),
            ("cursor", cursor),
        ):
            if isinstance(value, datetime):
                value = (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
            if value is not None:
                params[name] = str(value)
        while True:
            page = PredictionPage.model_validate(
                self._http.api("GET", "/predictions", idempotent=True, params=params).json()
            )
            yield page
            if not page.next_cursor:
                return
            params["cursor"] = page.next_cursor

    def cancel(self, prediction_id: str) -> Prediction:
        """`POST /predictions/{id}/cancel`: the canceled prediction (also when it already was);
        `Conflict` (not_cancelable) when it had already succeeded, failed or expired."""
        response = self._http.api("POST", f"{_path(prediction_id)}/cancel", idempotent=True)
        return Prediction.model_validate(response.json())

    def redeliver(self, prediction_id: str) -> Prediction:
        """`POST /predictions/{id}/webhook/redeliver`: send its webhook events again."""
        response = self._http.api("POST", f"{_path(prediction_id)}/webhook/redeliver", idempotent=False)
        return Prediction.model_validate(response.json())

    def wait(
        self,
        prediction: PredictionSummary | str,
        *,
        timeout: float | timedelta | None = None,
        on_update: OnUpdate | None = None,
    ) -> Prediction:
        """Poll until the prediction ends (any terminal status) and return it; `WaitTimeout`
        after `timeout` seconds (None: no limit). `on_update` hears of every change from the
        `Prediction` given (given an id or a summary, of the state first read too)."""
        started = time.monotonic()
        limit = _seconds(timeout)
        if isinstance(prediction, Prediction):
            current = prediction
        else:
            current = self.get(_id(prediction))
            if on_update is not None:
                on_update(current)
        delay = FIRST_POLL
        while not current.terminal:
            waited = time.monotonic() - started
            if limit is not None and waited >= limit:
                raise WaitTimeout(current, waited)
            time.sleep(delay if limit is None else min(delay, limit - waited))
            latest = self.get(current.id)
            if _signature(latest) != _signature(current):
                delay = FIRST_POLL  # something moves: look again soon
                if on_update is not None:
                    on_update(latest)
            else:
                delay = min(delay * POLL_GROWTH, LONGEST_POLL)
            current = latest
        return current

    @overload
    def download(self, prediction: PredictionSummary | str, to: None = None) -> bytes: ...

    @overload
    def download(self, prediction: PredictionSummary | str, to: str | os.PathLike[str] | IO[bytes]) -> int: ...

    def download(
        self, prediction: PredictionSummary | str, to: str | os.PathLike[str] | IO[bytes] | None = None
    ) -> bytes | int:
        """A succeeded prediction's output, through its presigned URL (fetched again when the one
        given has expired): the bytes, or with `to` (a path or a binary file) the number of bytes
        written there. `PredictionFailed` if it failed, was canceled or expired."""
        current = prediction if isinstance(prediction, Prediction) else self.get(_id(prediction))
        if current.output is not None and current.output.expires_at <= datetime.now(UTC) + timedelta(seconds=5):
            current = self.get(current.id)
        if current.status in UNSUCCESSFUL:
            raise PredictionFailed(current)
        if current.output is None:
            raise ChorusClientError(f"prediction {current.id} is {current.status.value}: it has no output yet")
        url = current.output.url
        response = self._http.presigned(
            "GET", url, lambda session, timeouts: session.get(url, stream=True, timeout=timeouts)
        )
        with response:
            if not response.ok:
                error = self._http.error(response)
                raise DownloadError(current.id, f"{error.code}: {error.message} (HTTP {response.status_code})")
            if to is None:
                return response.content
            if isinstance(to, str | os.PathLike):
                with open(to, "wb") as file:
                    return _copy(response, file)
            return _copy(response, to)

    # --- services and webhooks ---------------------------------------------------------------------

    def services(self) -> builtins.list[Service]:
        """`GET /services`: every registered service, its content types and limits."""
        return ServiceList.model_validate(self._http.api("GET", "/services", idempotent=True).json()).services

    def webhook_secret(self) -> str:
        """`GET /webhooks/secret`: the `whsec_…` secret the tenant's webhooks are signed with now."""
        return WebhookSecret.model_validate(self._http.api("GET", "/webhooks/secret", idempotent=True).json()).key

    def rotate_webhook_secret(self) -> RotatedWebhookSecret:
        """`POST /webhooks/secret/rotate` (scope admin): a new secret; the old one signs beside it for 24 h."""
        response = self._http.api("POST", "/webhooks/secret/rotate", idempotent=False)
        return RotatedWebhookSecret.model_validate(response.json())

    # --- inside ------------------------------------------------------------------------------------

    def _upload(self, prediction_id: str, upload: Upload, payload: Payload) -> None:
        """The presigned POST; on any failure the prediction is canceled (its input can no longer
        come; it would expire anyway) and `UploadError` raised."""
        try:
            payload.check(upload.max_bytes)
            response = self._http.presigned(upload.method, upload.url, partial(_post_form, upload, payload))
        except ChorusClientError as exc:  # too large, or no answer from S3 after the retries
            self._cancel_quietly(prediction_id)
            raise UploadError(prediction_id, str(exc)) from exc
        if not response.ok:
            error = self._http.error(response)
            self._cancel_quietly(prediction_id)
            raise UploadError(prediction_id, f"{error.code}: {error.message} (HTTP {response.status_code})")

    def _cancel_quietly(self, prediction_id: str) -> None:
        """Cancel a prediction whose input will never come; it expires anyway if this fails."""
        try:
            self.cancel(prediction_id)
        except ChorusClientError:
            return


def _id(prediction: PredictionSummary | str) -> str:
    return prediction if isinstance(prediction, str) else prediction.id


def _path(prediction_id: str) -> str:
    return f"/predictions/{quote(prediction_id, safe='')}"


def _signature(prediction: PredictionSummary) -> tuple[object, ...]:
    """What a watcher sees change: the status and each step's status."""
    steps = prediction.steps if isinstance(prediction, Prediction) else None
    return (prediction.status, tuple((s.name, s.status, s.items) for s in steps or ()))


def _post_form(upload: Upload, payload: Payload, session: requests.Session, timeouts: Timeouts) -> requests.Response:
    """One try of the presigned POST: every field of `upload.fields`, then the file."""
    with payload.opened() as file:
        body = FormBody(upload.fields, payload.name, upload.content_type, file, payload.size)
        return session.request(
            upload.method, upload.url, data=body, headers={"Content-Type": body.content_type}, timeout=timeouts
        )


def _copy(response: requests.Response, file: IO[bytes]) -> int:
    written = 0
    for chunk in response.iter_content(CHUNK):
        file.write(chunk)
        written += len(chunk)
    return written
