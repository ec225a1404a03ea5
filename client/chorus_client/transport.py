"""HTTP with retries: the API (with the bearer token) and the presigned S3 URLs (without it).

What is retried, with backoff:
- `429` (rate_limited): always — the gateway refused it before anything ran. `Retry-After` is
  honoured (seconds or an HTTP date); one longer than `RetryPolicy.max_retry_after` (a daily
  quota's 3600 s) is not waited for: the error is raised at once.
- `500`, `502`, `503`, `504`, a connection error or a timeout: only for a request that is safe to
  repeat (`idempotent=True`: every GET, a cancel, and a create sent with an Idempotency-Key, which
  the client always sends). `Retry-After` is honoured here too (S3's 503 SlowDown).
Without `Retry-After` the wait grows `initial_delay * multiplier**n` up to `max_delay`, with jitter
(half of it random) so clients that failed together do not retry together.
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from chorus_client import __version__
from chorus_client.errors import ApiError, TransportError, api_error

RETRYABLE_SERVER_STATUSES = frozenset({500, 502, 503, 504})
CONNECT_TIMEOUT = 10.0
Timeouts = tuple[float, float]  # (connect, read) seconds


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # tries in all, the first included (1: no retries)
    initial_delay: float = 0.5  # seconds before the first retry without Retry-After
    multiplier: float = 2.0
    max_delay: float = 8.0
    max_retry_after: float = 60.0  # a longer Retry-After is not waited for: the error is raised

    def backoff(self, retry: int) -> float:
        """The wait before retry number `retry` (1, 2, …) when the answer named none."""
        ceiling = min(self.max_delay, self.initial_delay * self.multiplier ** (retry - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass(frozen=True)
class RetryEvent:
    """Told to `on_retry` before each wait: which try failed, why, and how long until the next."""

    method: str
    url: str
    attempt: int  # the try that failed (1 is the first)
    attempts: int  # tries in all
    delay: float  # seconds until the next
    status: int | None  # None: no answer (connection error or timeout)
    reason: str  # the API's error code, or the exception's name


OnRetry = Callable[[RetryEvent], None]


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds from now: a number of seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def error_of(response: requests.Response) -> tuple[str, str]:
    """The API's `{"error": {"code", "message"}}`; for anything else (a proxy's HTML page, S3's
    XML) a code and message made from what there is."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        if isinstance(error.get("code"), str) and isinstance(error.get("message"), str):
            return error["code"], error["message"]
    text = response.text or ""
    code = re.search(r"<Code>([^<]{1,200})</Code>", text)  # S3's XML errors
    message = re.search(r"<Message>([^<]{1,1000})</Message>", text)
    if code:
        return code.group(1), message.group(1) if message else response.reason or ""
    return f"http_{response.status_code}", (text.strip()[:200] or response.reason or "no error message")


class Transport:
    """One HTTP session; `api()` for the API's routes, `storage()` for presigned S3 URLs."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        on_retry: OnRetry | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._authorization = f"Bearer {token}"
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.on_retry = on_retry
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = f"chorus-client/{__version__} {requests.utils.default_user_agent()}"

    def close(self) -> None:
        self._session.close()

    def api(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        read_timeout: float | None = None,
    ) -> requests.Response:
        """An API request: its 2xx answer, else the API's error as an `ApiError` (after retries)."""
        url = f"{self.base_url}{path}"
        sent_headers = {"Authorization": self._authorization, "Accept": "application/json", **(headers or {})}
        response = self._send(
            method,
            url,
            idempotent=idempotent,
            send=lambda: self._session.request(
                method,
                url,
                params=params,
                json=json,
                headers=sent_headers,
                timeout=(CONNECT_TIMEOUT, read_timeout or self.timeout),
            ),
        )
        if response.ok:
            return response
        raise self.error(response)

    def presigned(
        self, method: str, url: str, send: Callable[[requests.Session, Timeouts], requests.Response]
    ) -> requests.Response:
        """A request to a presigned S3 URL, made by `send` (called again for every try): no token,
        the URL is the credential. Retried as a repeatable request: a presigned POST names one key,
        so sending it again replaces the same object. The answer is returned whatever its status."""
        timeouts = (CONNECT_TIMEOUT, self.timeout)
        return self._send(method, url, idempotent=True, send=lambda: send(self._session, timeouts))

    @staticmethod
    def error(response: requests.Response) -> ApiError:
        code, message = error_of(response)
        return api_error(response.status_code, code, message, retry_after_seconds(response.headers.get("Retry-After")))

    def _send(
        self, method: str, url: str, *, idempotent: bool, send: Callable[[], requests.Response]
    ) -> requests.Response:
        policy = self.retry
        attempt = 0
        while True:
            attempt += 1
            try:
                response = send()
            except (requests.ConnectionError, requests.Timeout) as exc:
                if not idempotent or attempt >= policy.attempts:
                    raise TransportError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
                status, reason, delay = None, type(exc).__name__, policy.backoff(attempt)
            else:
                status = response.status_code
                retryable = status == 429 or (idempotent and status in RETRYABLE_SERVER_STATUSES)
                if not retryable or attempt >= policy.attempts:
                    return response
                asked = retry_after_seconds(response.headers.get("Retry-After"))
                if asked is not None and asked > policy.max_retry_after:
                    return response  # a quota that resets in an hour: say so now rather than hang
                reason = error_of(response)[0]
                delay = asked if asked is not None else policy.backoff(attempt)
                response.close()
            if self.on_retry is not None:
                self.on_retry(RetryEvent(method, url, attempt, policy.attempts, delay, status, reason))
            time.sleep(delay)
