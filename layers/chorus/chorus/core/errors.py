"""Domain exceptions. Each carries the API error code it maps to; class names are what
Step Functions `ErrorEquals` match, so they are stable."""

from __future__ import annotations


class ChorusError(Exception):
    code = "internal_error"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(ChorusError):
    code = "invalid_request"
    status = 400


class Unauthorized(ChorusError):
    """The request carries no (well-formed) identity from the authorizer."""

    code = "unauthorized"
    status = 401


class Forbidden(ChorusError):
    """The caller's token lacks the scope the route needs."""

    code = "forbidden"
    status = 403


class UnknownService(ChorusError):
    code = "unknown_service"
    status = 400


class ServiceDisabled(ChorusError):
    code = "service_disabled"
    status = 409


class UnsupportedContentType(ChorusError):
    code = "unsupported_content_type"
    status = 415


class InvalidCallback(ChorusError):
    code = "invalid_callback"
    status = 400


class PayloadTooLarge(ChorusError):
    code = "payload_too_large"
    status = 413


class PredictionNotFound(ChorusError):
    code = "not_found"
    status = 404


class ServiceNotFound(ChorusError):
    """A route on a named service (`/services/{name}/…`) for a name the registry does not have."""

    code = "not_found"
    status = 404


class NotCancelable(ChorusError):
    code = "not_cancelable"
    status = 409


class NotRedeliverable(ChorusError):
    code = "not_redeliverable"
    status = 409


class IdempotencyConflict(ChorusError):
    code = "idempotency_conflict"
    status = 409


class InvalidInput(ChorusError):
    """The uploaded or mapped input cannot be given to the service."""

    code = "invalid_input"
    status = 422


class EndpointError(ChorusError):
    """The model endpoint refused the request for good (not a transient error)."""

    code = "endpoint_error"
    status = 502


class DispatchFailed(ChorusError):
    """The prediction could not be handed to its endpoint or execution, and retrying cannot help."""

    code = "dispatch_failed"
    status = 502


class WebhookRefused(ChorusError):
    """The webhook target is not allowed (scheme, private address, redirect)."""

    code = "webhook_refused"
    status = 400


class RegistryInvalid(ChorusError):
    code = "registry_invalid"


class StepCanceled(ChorusError):
    """An ensemble step was asked to start after its prediction had already finished."""

    code = "step_canceled"
    status = 409
