"""What the client raises. Everything derives from `ChorusClientError`.

- `ApiError` (and one subclass per status family): the API answered an error, after any retries.
  `code` and `message` are the API's own (`{"error": {"code", "message"}}`); `status` is the HTTP
  status; `retry_after` the seconds the API asked to wait, if it did.
- `TransportError`: no answer at all (connection refused, DNS, a timeout), after any retries.
- `UploadError`: the input could not be uploaded (the prediction was canceled); `DownloadError`:
  the output could not be fetched from its presigned URL.
- `PredictionFailed`: a prediction ended failed, canceled or expired; `code` and `message` are its error's.
- `WaitTimeout`: a prediction was still unfinished when the wait ran out.
- `WebhookVerificationError`: a webhook's signature, timestamp or headers do not verify.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chorus_client.models import PredictionSummary


class ChorusClientError(Exception):
    """Anything the Chorus client raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(ChorusClientError):
    """The API answered with an error status."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.retry_after = status, code, retry_after

    def __str__(self) -> str:
        return f"{self.code}: {self.message} (HTTP {self.status})"


class BadRequest(ApiError):
    """400: invalid_request, unknown_service, invalid_callback."""


class Unauthorized(ApiError):
    """401: no token, or a malformed, unknown, expired or revoked one."""


class Forbidden(ApiError):
    """403: the token lacks the route's scope, or its tenant has no usage plan yet."""


class NotFound(ApiError):
    """404: no such prediction (or route) for this tenant."""


class Conflict(ApiError):
    """409: service_disabled, not_cancelable, idempotency_conflict, not_redeliverable, conflict."""


class PayloadTooLarge(ApiError):
    """413: inline input larger than the service accepts."""


class UnsupportedMediaType(ApiError):
    """415: a content type the service does not accept, or a request body that is not JSON."""


class RateLimited(ApiError):
    """429: rate_limited or quota_exceeded; `retry_after` says when to try again."""


class ServerError(ApiError):
    """5xx: the API or its gateway failed."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    429: RateLimited,
}


def api_error(status: int, code: str, message: str, retry_after: float | None = None) -> ApiError:
    """The exception for an error answer: its status's class, or ApiError/ServerError."""
    kind = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return kind(status, code, message, retry_after)


class TransportError(ChorusClientError):
    """The request got no answer (connection, DNS, timeout) after every retry."""


class UploadError(ChorusClientError):
    """The input could not be sent to the prediction's presigned URL (the prediction was canceled)."""

    def __init__(self, prediction_id: str, message: str) -> None:
        super().__init__(message)
        self.prediction_id = prediction_id

    def __str__(self) -> str:
        return f"upload of prediction {self.prediction_id} failed: {self.message}"


class DownloadError(ChorusClientError):
    """The output could not be fetched from its presigned URL."""

    def __init__(self, prediction_id: str, message: str) -> None:
        super().__init__(message)
        self.prediction_id = prediction_id

    def __str__(self) -> str:
        return f"download of prediction {self.prediction_id}'s output failed: {self.message}"


class PredictionFailed(ChorusClientError):
    """A prediction ended failed, canceled or expired."""

    def __init__(self, prediction: PredictionSummary) -> None:
        error = prediction.error
        self.prediction = prediction
        self.code = error.code if error else prediction.status.value
        super().__init__(error.message if error else f"the prediction is {prediction.status.value}")

    def __str__(self) -> str:
        return f"prediction {self.prediction.id} {self.prediction.status.value}: {self.code}: {self.message}"


class WaitTimeout(ChorusClientError):
    """The wait ran out before the prediction finished; it goes on running."""

    def __init__(self, prediction: PredictionSummary, waited: float) -> None:
        self.prediction, self.waited = prediction, waited
        super().__init__(f"prediction {prediction.id} is still {prediction.status.value} after {waited:.0f} s")


class WebhookVerificationError(ChorusClientError):
    """A webhook that does not verify: missing headers, a stale timestamp or no matching signature."""
