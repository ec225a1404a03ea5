"""The Chorus client: the REST API from Python, typed, and the commands of the `chorus` CLI.

    from pathlib import Path
    from chorus_client import Client

    chorus = Client("http://127.0.0.1:3000", "chr_…")      # or Client.from_config(local=True)
    prediction = chorus.predict("digits-svm", Path("digit.png"))
    print(prediction.status, chorus.download(prediction))

See docs/client.md.
"""

from __future__ import annotations

__version__ = "0.1.0"

from chorus_client.client import Client
from chorus_client.errors import (
    ApiError,
    BadRequest,
    ChorusClientError,
    Conflict,
    DownloadError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    PredictionFailed,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
    UnsupportedMediaType,
    UploadError,
    WaitTimeout,
    WebhookVerificationError,
)
from chorus_client.models import (
    CreatedPrediction,
    Delivery,
    ErrorDetail,
    ErrorResponse,
    Metrics,
    Output,
    Prediction,
    PredictionPage,
    PredictionSummary,
    Service,
    Status,
    Step,
    StepStatus,
    Upload,
)
from chorus_client.transport import RetryEvent, RetryPolicy
from chorus_client.webhooks import verify_webhook

__all__ = [
    "ApiError",
    "BadRequest",
    "ChorusClientError",
    "Client",
    "Conflict",
    "CreatedPrediction",
    "Delivery",
    "DownloadError",
    "ErrorDetail",
    "ErrorResponse",
    "Forbidden",
    "Metrics",
    "NotFound",
    "Output",
    "PayloadTooLarge",
    "Prediction",
    "PredictionFailed",
    "PredictionPage",
    "PredictionSummary",
    "RateLimited",
    "RetryEvent",
    "RetryPolicy",
    "ServerError",
    "Service",
    "Status",
    "Step",
    "StepStatus",
    "TransportError",
    "Unauthorized",
    "UnsupportedMediaType",
    "Upload",
    "UploadError",
    "WaitTimeout",
    "WebhookVerificationError",
    "verify_webhook",
]
